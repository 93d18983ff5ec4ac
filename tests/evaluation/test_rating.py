"""The ``rating`` objective's wrapper: human ratings where a genome has them, else predicted, marked."""

import math

import pytest

from evodiff_ray.core.evaluator import Task
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.evaluation.local import LocalEvaluator
from evodiff_ray.evaluation.rating import (RATING, RATING_REFERENCE, HumanRating, RatingObjective, rate,
                                           rating_gap)
from evodiff_ray.evaluation.rating_model import fit_rating_model
from evodiff_ray.problems import make_problem
from evodiff_ray.search.ratings import candidate_features


def measured(**objectives) -> Fitness:
    return Fitness(objectives=objectives, measured_on={"node": "n", "device": "cpu", "predicted": ["f2"]})


def never():
    raise AssertionError("a human-rated candidate is never predicted")


def test_human_ratings_are_kept_as_their_mean_with_its_standard_error():
    fit = rate(measured(f1=0.5, f2=2.0), [5, 4, 3, 4], never, rater_var=1.0)
    assert fit.objectives == {"f1": 0.5, "f2": 2.0, RATING: pytest.approx(1.0)}   # 5 - mean 4
    assert fit.extras == {"rating_source": "human", "rating_mean": 4.0, "rating_std": pytest.approx(0.5),
                          "rating_n": 4}
    assert fit.measured_on["predicted"] == ["f2"]          # a human rating is not predicted


def test_without_ratings_the_value_is_predicted_with_its_std_and_marked_predicted():
    fit = rate(measured(f1=0.5, f2=2.0), None, lambda: (3.5, 0.4), rater_var=1.0)
    assert fit.objectives[RATING] == pytest.approx(rating_gap(3.5)) == pytest.approx(1.5)
    assert fit.extras == {"rating_source": "predicted", "rating_mean": 3.5, "rating_std": 0.4, "rating_n": 0}
    assert fit.measured_on["predicted"] == ["f2", RATING]
    bad = rate(Fitness.infeasible(("f1", "f2"), "boom"), [5], never, rater_var=1.0)
    assert bad.objectives[RATING] == math.inf and "rating_source" not in bad.extras
    assert RATING_REFERENCE == pytest.approx(4.4)


def test_the_wrapper_rates_every_outcome_and_counts_the_sources():
    problem = make_problem("zdt1", {"n_var": 3})
    features = candidate_features(problem, problem.objective_names)
    xs = [[0.1, 0.0, 0.0], [0.9, 0.5, 0.5], [0.4, 0.2, 0.1], [0.6, 0.9, 0.3]]
    fits = [problem.evaluate(problem.from_json(x)) for x in xs]
    model = fit_rating_model([features(x, f.objectives) for x, f in zip(xs[:2], fits)], [[5, 5, 4], [1, 2]])
    rated_key = problem.key(problem.from_json(xs[0]))
    objective = RatingObjective(human={rated_key: (5, 5, 4)}, model=model, features=features)
    ev = objective.wrap(LocalEvaluator(problem))
    assert isinstance(ev, HumanRating)
    tasks = [Task(i, problem.key(problem.from_json(x)), x) for i, x in enumerate(xs)]
    outcomes = ev.evaluate(tasks, poll_s=0.01)
    first, *rest = [o.fitness for o in outcomes]
    assert first.extras["rating_source"] == "human" and first.extras["rating_n"] == 3
    assert first.objectives[RATING] == pytest.approx(5 - 14 / 3)
    assert RATING not in first.measured_on["predicted"]
    for f in rest:
        assert f.extras["rating_source"] == "predicted" and f.extras["rating_std"] > 0
        assert RATING in f.measured_on["predicted"] and 0 <= f.objectives[RATING] <= 4
        assert set(f.objectives) == {"f1", "f2", RATING}
    assert ev.stats()["rating"] == {"human": 1, "predicted": 3}
    # a resumed search counts its told records' sources again
    again = objective.wrap(LocalEvaluator(problem))
    again.restore([{"key": o.task.key, "fitness": o.fitness.to_dict()} for o in outcomes])
    assert again.stats()["rating"] == {"human": 1, "predicted": 3}
    # the problem as the search sees it counts the new objective
    searched = objective.problem(problem)
    assert searched.objective_names == ("f1", "f2", RATING)
    assert list(searched.reference_point()[-1:]) == [pytest.approx(RATING_REFERENCE)]
