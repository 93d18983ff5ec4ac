"""The search engine: ``search(config) -> SearchResult``.

The strategy (:mod:`evodiff_ray.strategies`: nsga2, random, optuna or a user's) never
imports Ray, Redis or MLflow; this function is the driver edge that chooses the strategy,
the evaluator (Ray actor pool, or in-process), the front store and the trackers, and runs
one of the two loops over the ledger (:mod:`.ledger`) and its persistence edge (:mod:`.loop`).
"""

from __future__ import annotations

from typing import Callable, Sequence

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.evaluator import Evaluator
from evodiff_ray.evaluation.local import LocalEvaluator
from evodiff_ray.search.async_loop import run_async
from evodiff_ray.search.checkpoint import Checkpoint
from evodiff_ray.core.front import FileFrontStore, FrontStore
from evodiff_ray.search.ledger import Ledger
from evodiff_ray.search.loop import SearchRun, offspring_per_ask, run_generational
from evodiff_ray.search.result import SearchResult
from evodiff_ray.core.tracker import CallbackTracker, Tracker
from evodiff_ray.strategies import Strategy, make_strategy

__all__ = ["search", "SearchResult", "Tracker", "CallbackTracker", "FrontStore", "FileFrontStore",
           "build_evaluator"]

CHECKPOINT_DIR = "checkpoint"
CONFIG_FILE = "config.json"


def build_evaluator(config, problem=None) -> Evaluator:
    """The evaluator a config asks for: an :class:`EvaluatorPool` of Ray actors, or in-process.

    Args:
        config: the resolved :class:`~evodiff_ray.config.SearchConfig`.
        problem: the driver's problem instance (reused by the in-process evaluator).
    """
    if config.backend == "local":
        from evodiff_ray.problems import make_problem

        return LocalEvaluator(problem or make_problem(config.problem, config.problem_options))
    from evodiff_ray.evaluation.pool import EvaluatorPool

    return EvaluatorPool.from_config(config, objective_names=problem.objective_names if problem else ())


def search(
    config,
    *,
    resume: bool = False,
    evaluator: Evaluator | None = None,
    wrap_evaluator: Callable[[Evaluator], Evaluator] | None = None,
    front_store: FrontStore | None = None,
    trackers: Sequence[Tracker] = (),
) -> SearchResult:
    """Run (or resume) one multi-objective search.

    Args:
        config: a resolved :class:`~evodiff_ray.config.SearchConfig` (see ``load_config``).
        resume: continue the run in ``config.run_dir`` from its checkpoint (replayed, not
            re-evaluated); without it, an existing checkpoint there is an error.
        evaluator: evaluate with this instead of building one from the config (it is not closed).
        wrap_evaluator: wraps the evaluator; same interface. Default: the Redis fitness
            cache the config asks for (``redis_url``, or an embedded redis-server; none
            with ``no_cache``).
        front_store: where the live front goes. Default: Redis (with the cache) and
            ``FileFrontStore(config.runs_dir)``.
        trackers: receive start, per-batch stats and the result (progress lines); an
            MLflow tracker is added unless ``config.no_tracking``.

    Returns:
        The :class:`SearchResult`; ``front.json``, ``history.json``, ``config.json`` and the
        checkpoint are in ``config.run_dir``.

    Raises:
        UsageError: a bad problem or option, a resume without a checkpoint, or a new search
            over an existing one.
        RuntimeFailure: the cluster or the evaluators failed.
    """
    from evodiff_ray.problems import make_problem, problem_class

    owns_ray = False
    try:
        if config.target is not None and not resume:
            owns_ray = plan_hardware_target(config)
        if evaluator is None and config.backend == "ray":
            # the pool sets each actor's torch threads from actor.num_cpus; a problem whose
            # numbers depend on them takes them as an option, so its cache key names them
            from evodiff_ray.evaluation.pool import actor_threads

            config.problem_options.update(
                problem_class(config.problem).worker_options(threads=actor_threads(config.actor.num_cpus)))
        problem = make_problem(config.problem, config.problem_options)
        return _search(config, problem, resume, evaluator, wrap_evaluator, front_store, trackers)
    finally:
        if owns_ray:
            import ray

            ray.shutdown()


def plan_hardware_target(config) -> bool:
    """Measure on the target's nodes, or predict for it: pin actors and tell the problem.

    Uses :func:`evodiff_ray.hardware.targets.plan_target` over the Ray cluster's nodes
    (or this machine alone with ``backend = "local"``), merges the plan's resources and
    label selector into ``config.actor`` (unless already set), merges the options the plan
    implies for the problem (:meth:`~evodiff_ray.problems.SearchProblem.target_options`,
    e.g. the diffusion problem's ``target_mode``) into ``config.problem_options``, and
    writes ``target_plan.json`` to the run dir.

    Returns:
        True when this call started a local Ray runtime (the caller shuts it down).
    """
    import json

    from evodiff_ray.hardware.targets import plan_target
    from evodiff_ray.problems import problem_class

    owns = False
    if config.backend == "ray":
        from evodiff_ray.evaluation.pool import connect, local_cpus

        owns = connect(config.address, num_cpus=local_cpus(config))
        import ray

        nodes = ray.nodes()
    else:
        nodes = [_this_machine_as_node()]
    plan = plan_target(config.target, nodes)
    if plan["mode"] == "measure":
        if not config.actor.resources:
            config.actor.resources = dict(plan["resources"])
        if not config.actor.label_selector:
            config.actor.label_selector = dict(plan["label_selector"])
    config.problem_options.update(problem_class(config.problem).target_options(plan))
    config.run_dir.mkdir(parents=True, exist_ok=True)
    (config.run_dir / "target_plan.json").write_text(json.dumps(plan, indent=1, default=str))
    return owns


def _this_machine_as_node() -> dict:
    """This machine in ``ray.nodes()`` shape, with the resources a Mac worker would advertise."""
    from evodiff_ray.hardware.chips import get_chip
    from evodiff_ray.hardware.detect import detect_local
    from evodiff_ray.hardware.targets import APPLE_SILICON_RESOURCE

    dev = detect_local()
    resources: dict[str, float] = {"CPU": float(dev.cpu_count)}
    if dev.is_apple_silicon and dev.chip:
        resources[APPLE_SILICON_RESOURCE] = 1.0
        resources[get_chip(dev.chip).resource] = 1.0
    return {"Alive": True, "NodeID": "local", "Resources": resources, "Labels": {}}


def _search(config, problem, resume, evaluator, wrap_evaluator, front_store, trackers) -> SearchResult:
    run_dir = config.run_dir
    checkpoint = Checkpoint(run_dir / CHECKPOINT_DIR)
    if resume and not checkpoint.exists():
        raise UsageError(f"nothing to resume: {run_dir} holds no checkpoint")
    if not resume and checkpoint.exists():
        raise UsageError(f"{run_dir} already holds search {config.search_id!r}; "
                         "pass --resume, or choose another --search-id")
    from evodiff_ray.search.seeds import load_or_resolve

    initial = load_or_resolve(config, problem, resume=resume)   # --seed-from: fails before anything starts
    from evodiff_ray.search.ratings import load_rating

    rating = load_rating(config, problem, resume=resume)        # --rating-from: fails before anything starts
    stated = stated_constraints(config)
    searched = searched_problem(problem, rating, stated)        # --constraint: fails before anything starts
    _strategy(config, searched, config.n_offsprings, initial)   # an unfit strategy fails before anything starts
    config.write(run_dir / CONFIG_FILE)
    from evodiff_ray.search.services import search_services

    with search_services(config, problem) as services:
        if initial:
            services.notes.append(f"warm start: {len(initial)} seeds from {config.seed_from}"
                                  + (f"; the first {config.pop_size} fill the population (--pop)"
                                     if len(initial) > config.pop_size else ""))
        if rating is not None:
            m = rating.model
            services.notes.append(f"objective rating = 5 - mean user rating of {config.rating_from!r}: human for "
                                  f"{len(rating.human)} rated genomes, else predicted (a Gaussian process on "
                                  f"{m.rows} of them, with its std); snapshot in {config.run_dir}/ratings.json")
        if stated is not None:
            services.notes.append(f"constraints: {', '.join(stated.names)} (of the objectives as this search "
                                  "measures or predicts them); candidates that violate one never reach the front")
        for note in services.notes:
            for t in trackers:
                t.note(note)
        return _run(config, problem, resume, checkpoint, evaluator,
                    wrap_evaluator or services.wrap_evaluator,
                    front_store or services.front_store, [*trackers, *services.trackers], initial, rating,
                    stated)


def stated_constraints(config):
    """The config's ``constraints`` as a :class:`~evodiff_ray.evaluation.constraints.StatedConstraints`,
    or None when it states none."""
    if not getattr(config, "constraints", None):
        return None
    from evodiff_ray.evaluation.constraints import StatedConstraints

    return StatedConstraints.parse(config.constraints)


def searched_problem(problem, rating=None, stated=None):
    """The problem as the strategy and the ledger see it: with the ``rating`` objective
    (``--rating-from``) and the stated constraints (``--constraint``) appended.

    Raises:
        UsageError: a stated constraint names no objective of the searched problem.
    """
    searched = rating.problem(problem) if rating is not None else problem
    if stated is not None:
        stated.check(searched.objective_names, f"problem {problem.name!r}")
        searched = stated.problem(searched)
    return searched


def _run(config, problem, resume, checkpoint, evaluator, wrap_evaluator, front_store, trackers,
         initial=(), rating=None, stated=None) -> SearchResult:
    """Wrap the evaluator (cache, rungs, rating, constraints, grids: innermost first) and run the loop.

    ``problem`` is the one evaluated (the pool, cache and rungs see its objectives);
    the strategy and ledger see :func:`searched_problem`: it with ``rating`` appended when
    ``rating`` is given, and the ``stated`` constraints when there are some.
    """
    owned = evaluator is None
    if evaluator is None:
        evaluator = build_evaluator(config, problem)
    trackers = list(trackers)
    metrics = evaluator.metrics_tracker()
    if metrics is not None:
        trackers.append(metrics)
    facts = evaluator.worker_facts()
    if facts:   # key by where results are measured, never by the driver's hardware
        problem.adopt_worker_facts(facts)
    inner = evaluator
    if wrap_evaluator is not None:
        evaluator = wrap_evaluator(evaluator)
    if problem.rung_count() > 0:   # multi-fidelity: probe, then successive halving on quality
        from evodiff_ray.evaluation.rungs import SuccessiveHalving

        evaluator = SuccessiveHalving(evaluator, problem.rung_count(), problem.objective_names, eta=config.eta,
                                      asynchronous=config.mode == "async")
    if rating is not None:   # outside the cache and the rungs: a rating is never cached with the fitness
        evaluator = rating.wrap(evaluator)
    if stated is not None:   # outside the cache too: a user's preference never changes what is cached
        evaluator = stated.wrap(evaluator)
    searched = searched_problem(problem, rating, stated)
    from evodiff_ray.evaluation.samples import SampleGrids

    evaluator = SampleGrids(evaluator, config.run_dir)   # sample grids to files before anything records them
    try:
        n_offsprings = offspring_per_ask(config, evaluator)
        ledger = Ledger(searched, _strategy(config, searched, n_offsprings, initial))
        run = SearchRun(config, ledger, evaluator, front_store=front_store or FileFrontStore(config.runs_dir),
                        trackers=trackers, checkpoint=checkpoint, n_offsprings=n_offsprings)
        if resume:
            run.restore(checkpoint.load())
        for t in trackers:
            t.on_start(config, config.run_dir, resume)
        reason = run_async(run) if config.mode == "async" else run_generational(run)
        reference = None
        if not config.no_reference and problem.baseline() is not None:
            from evodiff_ray.search.pictures import evaluate_reference

            for t in trackers:
                t.note("evaluating the reference candidate to show beside the front "
                       "(once per settings, then a cache hit; --no-reference skips it)")
            reference = evaluate_reference(run, problem)
        return run.finish(reason, reference=reference, fidelity=_fidelity(problem))
    finally:
        if owned:
            evaluator.close()              # the wrapper closes what it wraps
        elif evaluator is not inner:
            evaluator.release()            # the caller's evaluator stays open


def _fidelity(problem) -> str | None:
    from evodiff_ray.tracking.plots import fidelity_name

    try:
        return fidelity_name(problem.evaluation_settings(), problem.rung_count())
    except Exception:  # noqa: BLE001 - a label on a picture, never worth failing a search
        return None


def _strategy(config, problem, n_offsprings: int | None, initial=()) -> Strategy:
    return make_strategy(config.strategy, problem, pop_size=config.pop_size, n_offsprings=n_offsprings,
                         seed=config.seed, options=config.strategy_options, initial=initial)
