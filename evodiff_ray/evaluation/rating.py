"""HumanRating: the ``rating`` objective, from users' ratings where there are some, else predicted.

The objective is ``rating = 5 - mean rating`` (minimised like every objective; 0 means
every rater gave 5 stars, 4 means every rater gave 1). The gap form keeps it non-negative
like the other objectives, so a front table, a hypervolume and a log axis read the
usual way; the mean itself is kept in ``extras["rating_mean"]``.

For a candidate whose genome key has ratings (joined by
:mod:`evodiff_ray.search.ratings` from what the serving loop stored), the value is the
mean of those ratings: ``extras["rating_source"] = "human"``, with ``rating_n`` ratings and
``rating_std`` the standard error of the mean. Elsewhere it is the prediction of a
:class:`~evodiff_ray.evaluation.rating_model.RatingModel` from the candidate's measured
objectives and genome features: ``rating_source = "predicted"``, ``rating_std`` the
predictor's standard deviation, and ``rating`` is listed in ``measured_on["predicted"]``
as every predicted objective is.

Why a wrapper outside the fitness cache (and outside the multi-fidelity rungs): ratings
change over time while a cached fitness is forever, keyed by the genome and the
evaluation settings only. The cache therefore stores the measured objectives alone, and
every outcome, a cache hit included, gets its rating here from the ratings this search
read when it started. The told record (checkpoint, front, MLflow) keeps the value it was
told with. STYLE 6: wrap, don't fork.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from evodiff_ray.core.evaluator import Evaluator, EvaluatorWrapper, Outcome
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.core.front import RATING_COUNT, RATING_MEAN, RATING_SOURCE, RATING_STD
from evodiff_ray.evaluation.rating_model import LOWEST_RATING, TOP_RATING, RatingModel, mean_and_error
from evodiff_ray.problems.base import SearchProblem
from evodiff_ray.problems.extra_objectives import ExtraObjectives

#: the objective's name
RATING = "rating"
#: its hypervolume reference value: the worst gap (every rater gave 1) plus 10%
RATING_REFERENCE = 1.1 * (TOP_RATING - LOWEST_RATING)
#: extras a rated record carries
SOURCE, MEAN, STD, COUNT = RATING_SOURCE, RATING_MEAN, RATING_STD, RATING_COUNT
HUMAN, PREDICTED = "human", "predicted"

#: (candidate JSON, its measured objectives) -> the predictor's features
Features = Callable[[Any, Mapping[str, float]], Mapping[str, float]]


def rating_gap(mean: float) -> float:
    """The objective's value for a mean rating: ``5 - mean``."""
    return TOP_RATING - float(mean)


def rate(fitness: Fitness, human: Sequence[float] | None, predict: Callable[[], tuple[float, float]],
         rater_var: float) -> Fitness:
    """``fitness`` with the ``rating`` objective and its provenance (pure but for ``predict``).

    Args:
        fitness: the measured fitness (without ``rating``).
        human: the candidate's human ratings, or None/empty when it has none.
        predict: called only without human ratings: ``(mean rating, std)``.
        rater_var: the pooled rater variance (the standard error of a human mean).

    Returns:
        A new Fitness. An infeasible one gets ``rating = inf`` and no rating extras.
    """
    if not fitness.feasible:
        return dataclasses.replace(fitness, objectives={**fitness.objectives, RATING: math.inf})
    measured_on = dict(fitness.measured_on)
    if human:
        mean, std = mean_and_error(human, rater_var)
        extras = {SOURCE: HUMAN, MEAN: mean, STD: std, COUNT: len(human)}
    else:
        mean, std = predict()
        extras = {SOURCE: PREDICTED, MEAN: float(mean), STD: float(std), COUNT: 0}
        measured_on["predicted"] = [*[n for n in measured_on.get("predicted", []) if n != RATING], RATING]
    return dataclasses.replace(fitness, objectives={**fitness.objectives, RATING: rating_gap(extras[MEAN])},
                               extras={**fitness.extras, **extras}, measured_on=measured_on)


@dataclass(frozen=True)
class RatingObjective:
    """What the ``rating`` objective of one search is made of.

    Attributes:
        human: genome key -> its human ratings (1-5).
        model: the predictor fitted on the rated genomes.
        features: the predictor's features of a candidate (its JSON and measured objectives).
    """

    human: Mapping[str, Sequence[float]]
    model: RatingModel
    features: Features

    def problem(self, inner: SearchProblem) -> ExtraObjectives:
        """``inner`` as the search sees it: its objectives and ``rating``."""
        return ExtraObjectives(inner, (RATING,), reference=(RATING_REFERENCE,))

    def wrap(self, inner: Evaluator) -> "HumanRating":
        """``inner`` with every outcome rated (put it outside the cache and the rungs)."""
        return HumanRating(inner, self)


class HumanRating(EvaluatorWrapper):
    """Wraps an evaluator; every outcome gains the ``rating`` objective (see the module doc).

    Args:
        inner: the evaluator to wrap (the cache, rungs and pool inside it).
        objective: the human ratings, the predictor and its features.
    """

    def __init__(self, inner: Evaluator, objective: RatingObjective):
        super().__init__(inner)
        self.objective = objective
        self.counts = {HUMAN: 0, PREDICTED: 0}

    def _rate(self, o: Outcome) -> Outcome:
        obj = self.objective
        human = obj.human.get(o.task.key)

        def predict() -> tuple[float, float]:
            mean, std = obj.model.predict([obj.features(o.task.x, o.fitness.objectives)])
            return float(mean[0]), float(std[0])

        fit = rate(o.fitness, human, predict, obj.model.rater_var)
        if fit.feasible:
            self.counts[fit.extras[SOURCE]] += 1
        return dataclasses.replace(o, fitness=fit)

    def poll(self, timeout: float | None = None) -> list[Outcome]:
        return [self._rate(o) for o in self.inner.poll(timeout)]

    def restore(self, records: Sequence[dict[str, Any]]) -> None:
        """Count the resumed search's rated records again (human or predicted), then pass on."""
        for r in records:
            fit = r.get("fitness") or {}
            source = (fit.get("extras") or {}).get(SOURCE)
            if fit.get("feasible") and source in self.counts:
                self.counts[source] += 1
        self.inner.restore(records)

    def stats(self) -> dict[str, Any]:
        return {**self.inner.stats(), "rating": dict(self.counts)}
