"""The product problem: search denoiser architectures for quality, latency and memory.

Candidates are :class:`~evodiff_ray.genome.Genome` objects in an object-typed pymoo
column. Objectives (all minimised) come from a real evaluation
(:class:`~evodiff_ray.problems.diffusion.bench.DiffusionBench`); constraints come from
the :class:`~evodiff_ray.space.SearchSpace` (analytic, no training needed).

A genome with more levels than the dataset's resolution allows (the resolution must be
a multiple of ``2**(levels-1)``) gets an infeasible Fitness with reason
``unsuitable: ...`` rather than an error, because in a search it is the candidate's
fault; ``evodiff-ray evaluate`` reports the same mismatch as a usage error instead.
"""

from __future__ import annotations

import importlib.resources
import math
from pathlib import Path
from typing import Any

from pymoo.core.problem import Problem

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.genome import Genome
from evodiff_ray.problems.base import SearchProblem
from evodiff_ray.problems.diffusion.settings import OBJECTIVES, DiffusionSettings

#: the defaults of the options, stated once (in DiffusionSettings); the signature refers to them
_D = DiffusionSettings


def baseline_genome() -> Genome:
    """The shipped hand-designed reference UNet (``assets/baseline_unet.json``)."""
    text = importlib.resources.files("evodiff_ray").joinpath("assets/baseline_unet.json").read_text()
    return Genome.from_json(text, where="baseline_unet.json")


class GenomeProblem(Problem):
    """pymoo's view: one object variable (a Genome), evaluated outside pymoo via ask/tell."""

    def __init__(self, n_obj: int, n_ieq_constr: int):
        super().__init__(n_var=1, n_obj=n_obj, n_ieq_constr=n_ieq_constr, vtype=object)

    def _evaluate(self, X, out, *args, **kwargs):
        raise NotImplementedError("diffusion candidates are evaluated outside pymoo (ask/tell)")


class DiffusionProblem(SearchProblem):
    """Architecture search for diffusion denoisers.

    The options that change a measured number become one frozen
    :class:`~evodiff_ray.problems.diffusion.settings.DiffusionSettings` (``self.settings``),
    which states their defaults, goes whole to the bench, and is the cache key once
    resolved (:meth:`evaluation_settings`).

    Args:
        fidelity: training budget name (``smoke``, ``quick``, ``standard``, ``full``).
        dataset: ``"digits"``, an image folder or an ``.npz`` path.
        resolution: resize user images to this side (None: keep theirs).
        seed: evaluation seed (model init, data order, noise: the same for every candidate).
        fd_samples: samples for ``quality_fd`` (None: the whole held-out split).
        latency_batch: images per sampling run for latency and memory.
        latency_repeats: timed sampling runs.
        time_limit_s: per-candidate wall-time limit (None: none).
        device: ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``.
        threads: torch threads per evaluator process (None: torch's default); on Ray the
            search sets it from ``actor.num_cpus`` (:meth:`worker_options`).
        target: hardware target (``m2-max``, ``apple_silicon``, ``any``); a chip target adds
            the ``memory_budget`` constraint (unified memory x usable fraction).
        target_mode: ``"measure"`` (evaluators run on the target's nodes) or ``"predict"``
            (no node has the chip: latency and memory are predicted for it and labelled);
            set by the search from the cluster (see ``plan_hardware_target``).
        memory_fraction: usable share of unified memory (None: Metal's recommended
            working set on a real Mac, else 0.75, an estimate; see ``hardware/budget.py``).
        memory_gb: which memory configuration of the chip (None: its smallest).
        predictor_calibration: a fitted correction for the chip's predictor: JSON data, or
            the path of a ``predictor_calibration.json`` a search on that device wrote.
        space: SearchSpace settings (a dict for ``SearchSpace.from_dict``); None: defaults.
        cache_dir: feature-network cache (None: ``$EVODIFF_CACHE_DIR`` or ``~/.cache/evodiff-ray``);
            multi-fidelity trunks are stored in its ``trunks/`` (a path every node mounts
            on a cluster, so any actor can continue any candidate).
        rungs: multi-fidelity rung factors, e.g. ``[0.25, 1, 4]`` (None: single fidelity).
    """

    name = "diffusion"
    produces_models = True   # train_model gives a servable pyfunc (registered at the end of a search)
    objective_names = OBJECTIVES
    #: what a preset means here, where evaluations train networks:
    #: quick = 6 + 2 x 6 = 18 candidates at the quick fidelity (about 4 minutes on 2 cores);
    #: standard = 24 + 9 x 24 = 240 candidates (tens of minutes on 2 cores).
    #: ``standard`` is the configuration benchmarks/bench_search_quality.py measured best
    #: (multi-fidelity NSGA-II, async: the highest hypervolume per wall-clock on every seed).
    #: ``quick`` stays single-fidelity and generational: 18 candidates are too few for
    #: halving to pay, and its rerun must ask the same candidates (every one a cache hit),
    #: which async arrival order does not guarantee.
    presets = {
        "quick": {"pop_size": 6, "generations": 3, "fidelity": "quick"},
        "standard": {"pop_size": 24, "generations": 10, "fidelity": "quick", "rungs": "0.25,1,4",
                     "mode": "async"},
    }
    #: SearchConfig fields carried into this problem's options
    config_options = ("fidelity", "target", "rungs")

    def __init__(
        self,
        fidelity: str = _D.fidelity,
        dataset: str = _D.dataset,
        resolution: int | None = _D.resolution,
        seed: int = _D.seed,
        fd_samples: int | None = _D.fd_samples,
        latency_batch: int = _D.latency_batch,
        latency_repeats: int = _D.latency_repeats,
        time_limit_s: float | None = _D.time_limit_s,
        device: str | None = _D.device,
        threads: int | None = _D.threads,
        target: str | None = _D.target,
        space: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        target_mode: str | None = _D.target_mode,
        memory_fraction: float | None = _D.memory_fraction,
        memory_gb: int | None = _D.memory_gb,
        predictor_calibration: dict[str, Any] | str | None = _D.predictor_calibration,
        rungs: list[float] | str | None = _D.rungs,
    ):
        from evodiff_ray.hardware.calibration import load_calibration
        from evodiff_ray.space import SearchSpace

        if not isinstance(dataset, str) or not dataset:
            raise UsageError(f"diffusion: dataset must be 'digits' or a path, got {dataset!r}")
        self.space = SearchSpace.from_dict(_space_for_data(dict(space or {}), dataset, resolution))
        #: how candidates are trained and measured: one frozen object, handed whole to the bench
        self.settings = DiffusionSettings(
            fidelity=fidelity, dataset=dataset, resolution=resolution, seed=seed, fd_samples=fd_samples,
            latency_batch=latency_batch, latency_repeats=latency_repeats, time_limit_s=time_limit_s,
            device=device, threads=threads, target=target, target_mode=target_mode,
            memory_fraction=memory_fraction, memory_gb=memory_gb,
            predictor_calibration=load_calibration(predictor_calibration), space=self.space.to_dict(),
            rungs=rungs,
        )
        self.cache_dir = cache_dir
        self.constraint_names = tuple(self.space.constraint_names)
        self.chip = self.settings.chip
        self.budget_mb: float | None = None
        if self.chip is not None:
            from evodiff_ray.hardware.budget import CONSTRAINT_NAME, memory_budget_mb

            self.budget_mb = memory_budget_mb(self.chip, memory_fraction, memory_gb=memory_gb)
            self.constraint_names += (CONSTRAINT_NAME,)
        self._resolved: DiffusionSettings | None = None
        self._evaluator = None
        self._predictor = None

    @property
    def fidelity(self):
        """The training budget (a :class:`~evodiff_ray.diffusion.fidelity.Fidelity`)."""
        return self.settings.fidelity

    @property
    def target_mode(self) -> str:
        """``"measure"`` or ``"predict"`` (meaningful with a chip target)."""
        return self.settings.target_mode

    @property
    def predictor_calibration(self) -> dict[str, Any] | None:
        """The chip predictor's fitted correction (JSON data), or None."""
        return self.settings.predictor_calibration

    @classmethod
    def target_options(cls, plan: dict[str, Any]) -> dict[str, Any]:
        """Measure on the target's nodes, or predict for a chip no node has."""
        return {"target_mode": plan["mode"]}

    @classmethod
    def worker_options(cls, *, threads: int) -> dict[str, Any]:
        """The actor's torch threads become the ``threads`` option, so the key names them."""
        return {"threads": threads}

    # -- driver side ---------------------------------------------------------------
    def pymoo_problem(self) -> GenomeProblem:
        return GenomeProblem(len(self.objective_names), len(self.constraint_names))

    def operators(self) -> dict[str, Any]:
        """The lead's genome operators (sampling, crossover, mutation, repair, duplicates)."""
        from evodiff_ray.operators import genome_operators

        return genome_operators(self.space)

    def search_space(self):
        """The genome space (random and Optuna strategies draw from it)."""
        return self.space

    def to_json(self, x) -> dict[str, Any]:
        return _genome_of(x).to_dict()

    def from_json(self, data: Any) -> Genome:
        return Genome.from_dict(data)

    def key(self, x) -> str:
        """The architecture key (lineage excluded, so a re-discovered genome is a cache hit)."""
        return _genome_of(x).key()

    def features(self, x) -> dict[str, float]:
        """A genome's shape in a few numbers (for the ``rating`` predictor): depth, levels,
        width, sampler steps, attention layers, skip connections and log10 parameters."""
        from evodiff_ray.cost import estimate

        g = _genome_of(x)
        try:
            log_params = math.log10(max(1, estimate(g).params))
        except (ValueError, KeyError, ZeroDivisionError):   # a shape the cost model cannot lay out
            log_params = math.nan                            # (the predictor imputes an unknown value)
        return {"depth": float(g.depth), "levels": float(g.levels),
                "base_channels": float(g.parameters["base_channels"]),
                "sampler_steps": float(g.parameters["sampler_steps"]),
                "attention": float(sum(layer["kind"] == "attention" for layer in g.layers)),
                "connections": float(len(g.connections)),
                "log10_params": log_params}

    def dataset_digest(self) -> str:
        """The dataset's digest (loads the dataset once; cheap for ``digits``)."""
        return self.evaluation_settings().dataset_digest

    def evaluation_settings(self) -> DiffusionSettings:
        """The settings, resolved on this machine (digest, device class, processor, threads)."""
        if self._resolved is None:
            digest = self._evaluator.dataset.digest if self._evaluator is not None else None
            self._resolved = self.settings.resolved(digest)
        return self._resolved

    def worker_facts(self) -> dict[str, Any]:
        """The device class and processor this process measures on (they join the key)."""
        s = self.evaluation_settings()
        return {"device_class": s.device_class, "processor": s.processor}

    def adopt_worker_facts(self, facts: dict[str, Any]) -> None:
        """Key by the measuring actors' device class and processor, not this process's."""
        import dataclasses

        known = {k: v for k, v in facts.items() if k in ("device_class", "processor")}
        self._resolved = dataclasses.replace(self.evaluation_settings(), **known)

    def baseline(self) -> Genome:
        """The shipped hand-designed reference UNet."""
        return baseline_genome()

    def trackers(self) -> list:
        """Fits the predictor's correction for the measuring device when the search ends."""
        from evodiff_ray.hardware.calibration import CalibrationTracker

        return [CalibrationTracker(chip=self.chip, batch=self.settings.latency_batch,
                                   resolution=self.space.resolution, in_channels=self.space.in_channels)]

    def train_model(self, x, *, models_dir, fidelity: str | None = None, progress=None, rung: int | None = None):
        """The genome as a pyfunc that samples images: taken from its stored multi-fidelity
        trunk at ``rung`` when there is one (the model the search measured), otherwise
        trained at ``fidelity`` (None: ``full``)."""
        from evodiff_ray.problems.diffusion.model import model_from_trunk, train_model

        genome = _genome_of(x)
        if rung is not None and rung >= 0 and self.rung_count() > 0:
            model = model_from_trunk(genome, self.settings, store=self.trunk_store(),
                                     trunk_key=self.trunk_key(genome), rung=rung, models_dir=models_dir,
                                     progress=progress)
            if model is not None:
                return model
        return train_model(genome, self.settings, models_dir=models_dir, fidelity=fidelity or "full",
                           progress=progress)

    def trunk_store(self):
        """Where this problem's multi-fidelity trunks are kept (``<cache_dir>/trunks``)."""
        from evodiff_ray.diffusion.trunk_store import TrunkStore
        from evodiff_ray.metrics.quality import cache_dir as default_cache_dir

        return TrunkStore(Path(self.cache_dir or default_cache_dir()) / "trunks")

    def trunk_key(self, genome: Genome) -> str:
        """The genome's trunk key: its key under the quality part of the settings."""
        from evodiff_ray.core.key import evaluation_key

        return evaluation_key(genome.key(), self.rung_settings(0))

    # -- actor side ----------------------------------------------------------------
    def setup(self, progress=None) -> None:
        """Build the warm evaluator (dataset, feature network) once per process."""
        if self._evaluator is None:
            from evodiff_ray.problems.diffusion.bench import DiffusionBench

            self._evaluator = DiffusionBench(self.settings, cache_dir=self.cache_dir, progress=progress)

    @property
    def evaluator(self):
        """The warm evaluator (built by :meth:`setup` on first use)."""
        if self._evaluator is None:
            self.setup()
        return self._evaluator

    @property
    def predictor(self):
        """The target chip's latency/memory predictor (None without a chip target)."""
        if self._predictor is None and self.chip is not None:
            from evodiff_ray.hardware.predict import predictor_for

            self._predictor = predictor_for(self.chip, batch=self.settings.latency_batch,
                                            resolution=self.space.resolution, in_channels=self.space.in_channels,
                                            calibration=self.predictor_calibration)
        return self._predictor

    def diversity(self, xs: list) -> float | None:
        """Mean pairwise genome distance of the population (see ``operators.diversity``)."""
        from evodiff_ray.operators import diversity

        return diversity([_genome_of(x) for x in xs])

    def rung_count(self) -> int:
        """Training rungs (0 without ``rungs``)."""
        return 0 if self.settings.rungs is None else len(self.settings.rungs)

    def rung_settings(self, rung: int):
        """A probe is keyed by the device part of the settings, a trained rung by the quality part."""
        return self.evaluation_settings().for_rung(rung)

    def evaluate_rung(self, x, rung: int) -> Fitness:
        """Probe latency and memory (``rung = -1``, no training), or train to ``rung`` from the
        highest stored lower rung and measure quality (latency and memory are the probe's)."""
        genome = _genome_of(x)
        rejected = self._precheck(genome)
        if rejected is not None:
            return rejected
        if rung < 0:
            if self.settings.predicting:   # latency and memory are predicted below
                fit = Fitness(objectives={"quality_fd": math.inf, "latency_ms": 0.0, "memory_mb": 0.0},
                              extras={"rung": -1, "train_steps": 0, "train_steps_spent": 0})
            else:
                fit = self.evaluator.probe(genome)
            return self._with_constraints(genome, fit)
        if rung >= self.rung_count():
            raise ValueError(f"rung {rung} is beyond the last rung ({self.rung_count() - 1})")
        return self.evaluator.train_rung(genome, rung, store=self.trunk_store(), trunk_key=self.trunk_key(genome))

    def evaluate(self, x) -> Fitness:
        """Train and measure; reject at once what the space's limits or the target's
        memory budget (as predicted) rule out; predict device objectives for a target
        chip no node has."""
        genome = _genome_of(x)
        rejected = self._precheck(genome)
        if rejected is not None:
            return rejected
        return self._with_constraints(genome, self.evaluator.evaluate(genome))

    def _precheck(self, genome: Genome) -> Fitness | None:
        """The rejection of a genome outside the space's limits or, as predicted, over the
        target's memory budget (without training); None when it may be trained."""
        space_g = self.space.constraints(genome)
        over = [f"{n} {v:+.0%} over its limit" for n, v in space_g.items() if v > 0]
        if over:
            return self._rejected(genome, space_g, "outside the search space's limits (" + ", ".join(over)
                                  + "); not trained")
        if self.settings.predicting:
            from evodiff_ray.hardware.retarget import precheck_memory

            reason = precheck_memory(genome, self.predictor, self.budget_mb, chip=self.chip)
            if reason:
                from evodiff_ray.hardware.budget import CONSTRAINT_NAME, memory_constraint

                g = dict(space_g)
                g[CONSTRAINT_NAME] = memory_constraint(self.predictor.memory_mb(genome), self.budget_mb)
                return self._rejected(genome, g, reason + "; not trained")
        return None

    def _with_constraints(self, genome: Genome, fit: Fitness) -> Fitness:
        """The target's memory budget (measured or predicted) and the space's constraint values."""
        space_g = self.space.constraints(genome)
        if self.chip is not None:
            from evodiff_ray.hardware.retarget import apply_memory_budget, retarget_fitness

            if self.settings.predicting:
                fit = retarget_fitness(fit, genome, self.predictor, chip=self.chip, budget_mb=self.budget_mb)
            else:
                fit = apply_memory_budget(fit, self._measured_budget(), chip=self.chip)
        budget_g = dict(fit.constraints)
        if fit.feasible:
            fit.constraints = {n: float(space_g.get(n, budget_g.get(n, 0.0))) for n in self.constraint_names}
        else:
            fit.constraints = {n: math.inf for n in self.constraint_names}
        return fit

    def _measured_budget(self) -> float:
        """On the target itself: Metal's recommended working set when MPS reports it."""
        if self.settings.memory_fraction is None and self.evaluator.device.type == "mps":
            import torch

            from evodiff_ray.hardware.budget import memory_budget_mb

            return memory_budget_mb(self.chip, None, memory_gb=self.settings.memory_gb,
                                    recommended_max_bytes=int(torch.mps.recommended_max_memory()))
        return self.budget_mb

    def _rejected(self, genome: Genome, g: dict[str, float], reason: str) -> Fitness:
        """Infeasible without training; constraint values say how far over each limit it is."""
        from evodiff_ray.cost import estimate

        fit = Fitness.infeasible(self.objective_names, reason, self.constraint_names,
                                 measured_on={"device": None, "predicted": []},
                                 extras={"params": estimate(genome, resolution=self.space.resolution,
                                                            in_channels=self.space.in_channels).params})
        fit.constraints = {n: max(0.0, float(g.get(n, 0.0))) for n in self.constraint_names}
        return fit

    def __getstate__(self):
        # the warm evaluator (tensors, feature net) never crosses a process boundary
        state = dict(self.__dict__)
        state["_evaluator"] = None
        return state


def _space_for_data(space: dict[str, Any], dataset: str, resolution: int | None) -> dict[str, Any]:
    """Fill the space's ``resolution`` and ``in_channels`` from the dataset (digits: 8x8x1).

    The analytic constraints and the levels a genome may have depend on them; a user's
    data set them unless the config does. ``max_levels`` shrinks to what the resolution
    can halve into.
    """
    if "resolution" in space and "in_channels" in space:
        return space
    if dataset == "digits" and resolution is None:
        res, ch = 8, 1
    else:
        from evodiff_ray.data import load_dataset

        ds = load_dataset(dataset, resolution=resolution)
        res, ch = ds.resolution, ds.channels
    space.setdefault("resolution", res)
    space.setdefault("in_channels", ch)
    levels = int(space.get("max_levels", 3))
    while levels > 1 and space["resolution"] % (2 ** (levels - 1)):
        levels -= 1
    space["max_levels"] = levels
    return space


def _genome_of(x) -> Genome:
    """A Genome from a Genome, pymoo's one-element object row, or genome data."""
    if isinstance(x, Genome):
        return x
    if hasattr(x, "shape") and getattr(x, "size", 0) == 1:
        return _genome_of(x.reshape(-1)[0])
    if isinstance(x, (list, tuple)) and len(x) == 1:
        return _genome_of(x[0])
    if isinstance(x, dict):
        return Genome.from_dict(x)
    raise TypeError(f"not a genome: {type(x).__name__}")
