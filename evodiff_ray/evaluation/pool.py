"""EvaluatorPool: long-lived Ray actors that evaluate candidates, and the Ray connection.

Each actor (named ``evodiff-eval-<i>`` in the namespace ``evodiff-<search_id>``) builds its
problem with ``make_problem`` and calls ``setup()`` once, so datasets and feature networks
stay warm. Actors request ``num_cpus``, custom resources (``{"apple_silicon": 1}``) and a
``label_selector``; torch's thread count follows the CPU share.

Failure handling (the taxonomy is in :mod:`evodiff_ray.core.fitness`):
  * a candidate's exception, NaN or bad record is an infeasible Fitness (a permanent
    failure of the candidate); the actor lives on;
  * an actor's death (its process killed, its node lost) puts the genomes it held back at
    the head of the queue; Ray restarts the actor and the pool uses it again once it
    answers. A genome whose evaluator died ``max_attempts`` times becomes a *transient*
    failure (infeasible, never cached) instead of looping forever; so does a failure of
    the actor's method itself, which is no fault of the candidate's.
    Every submitted task yields exactly one outcome, with the problem's real objective
    and constraint names (the actors report them).
  * every ``ray.get``/``ray.wait`` has a timeout; a resource no node offers is reported by name.

Ray is imported lazily, only here and in the driver edge. Clusters: Ray 2.60 turns token
authentication on by default for ``ray start``; export the same ``RAY_AUTH_MODE`` (and keep
``~/.ray/auth_token``) for the cluster and every client, including ``ray job submit``. This
module never changes the authentication mode.
"""

from __future__ import annotations

import logging
import json
import math
import os
import platform
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

from evodiff_ray.core.errors import RuntimeFailure, UsageError
from evodiff_ray.core.evaluator import Evaluator, Outcome, Task
from evodiff_ray.evaluation.local import evaluate_safely
from evodiff_ray.core.fitness import Fitness, FitnessFormatError
from evodiff_ray.core.tracker import Tracker

log = logging.getLogger(__name__)

ACTOR_NAME = "evodiff-eval-{}"


def _ray():
    import ray

    return ray


# ------------------------------------------------------------------------------------ connection


def local_cpus(config) -> int | None:
    """CPUs for a new local runtime: enough for ``workers`` actors (None: Ray's default)."""
    if config.address is not None or config.workers is None:
        return None
    return max(os.cpu_count() or 1, math.ceil(config.workers * config.actor.num_cpus))


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Attach to Ray: the running runtime, a cluster, or a new local one.

    Args:
        address: ``None`` for local (or the cluster in ``RAY_ADDRESS``, as inside ``ray job
            submit``), ``"auto"``, ``"host:port"`` or ``"ray://host:10001"``.
        num_cpus: CPUs of a new local runtime (default: this machine's).

    Returns:
        True when this call started the runtime (the caller shuts it down).

    Raises:
        RuntimeFailure: the cluster cannot be reached (the message names the address).
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    try:
        if address is None and not os.environ.get("RAY_ADDRESS"):
            # "local": a new runtime even when a `ray start` cluster runs on this machine
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, **kwargs)
            return True
        ray.init(address=address, **kwargs)
        return False
    except ConnectionError as e:
        raise RuntimeFailure(f"cannot connect to Ray at {address or os.environ.get('RAY_ADDRESS')}: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__} "
                             "(with token auth, export the cluster's RAY_AUTH_MODE)") from None


def actor_threads(num_cpus: float) -> int:
    """Torch/OpenMP threads of an actor with ``num_cpus`` CPUs (at least one)."""
    return max(1, int(num_cpus))


def per_actor_request(num_cpus: float, resources: dict[str, float] | None) -> dict[str, float]:
    """The resources one actor asks for, in Ray's naming (``CPU`` plus custom ones)."""
    req = {"CPU": float(num_cpus)} if num_cpus > 0 else {}
    req.update({k: float(v) for k, v in (resources or {}).items()})
    return req


def fit_workers(request: dict[str, float], available: dict[str, float]) -> int:
    """How many actors with ``request`` fit into ``available`` resources (pure).

    An empty request fits ``available["CPU"]`` times (at least once).
    """
    if not request:
        return max(1, int(available.get("CPU", 1)))
    return min(int(math.floor(available.get(r, 0.0) / amt + 1e-9)) for r, amt in request.items())


def check_placeable(request: dict[str, float], label_selector: dict[str, str],
                    cluster: dict[str, float], node_labels: list[dict[str, str]]) -> None:
    """Fail fast, naming it, when no node offers a requested resource or label (pure).

    Raises:
        UsageError: a resource the cluster lacks, or a label selector no node matches.
    """
    for name, amount in request.items():
        have = cluster.get(name, 0.0)
        if have < amount:
            raise UsageError(
                f"no node in the Ray cluster offers resource {name!r} ({amount:g} per evaluator "
                f"actor, cluster total {have:g}); start a node with it (ray start --resources "
                f"'{{\"{name}\": 1}}') or change actor.resources / actor.num_cpus"
            )
    plain = {k: v for k, v in label_selector.items() if not any(c in v for c in "!(),")}
    if plain and not any(all(labels.get(k) == v for k, v in plain.items()) for labels in node_labels):
        wanted = ",".join(f"{k}={v}" for k, v in plain.items())
        raise UsageError(f"no node in the Ray cluster has labels {wanted} (actor.label_selector); "
                         "start one with ray start --labels")


# ------------------------------------------------------------------------------------ the actor


class EvalActor:
    """The body of one evaluator actor (made remote by the pool).

    Args:
        problem: problem name or ``module:factory``.
        problem_options: its options.
        threads: torch/OpenMP threads, following the actor's CPU share.
    """

    def __init__(self, problem: str, problem_options: dict[str, Any], threads: int):
        os.environ["OMP_NUM_THREADS"] = str(threads)
        from evodiff_ray.problems import make_problem

        self.problem = make_problem(problem, problem_options)
        self.problem.setup()
        if "torch" in sys.modules:  # only problems that use torch pay for importing it
            sys.modules["torch"].set_num_threads(threads)
        self.evaluated = 0

    def ready(self) -> dict[str, Any]:
        """Where the actor runs and what its problem reports; answering at all means ``setup()`` is done."""
        return {"pid": os.getpid(), "node": platform.node(),
                "objective_names": list(self.problem.objective_names),
                "constraint_names": list(self.problem.constraint_names),
                "worker_facts": self.problem.worker_facts()}

    def evaluate(self, items: list[tuple[int, Any, int | None]]) -> dict[str, Any]:
        """Evaluate ``(ordinal, x_json, rung)`` items; Fitness records come back as JSON dicts."""
        t0 = time.perf_counter()
        out = [evaluate_safely(self.problem, x, rung).to_dict() for _, x, rung in items]
        self.evaluated += len(items)
        return {"fitness": out, "busy_s": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------ the pool


@dataclass
class _Slot:
    index: int
    handle: Any
    state: str = "starting"            # starting | ready | dead
    probe: Any = None                  # ObjectRef of a pending ready() call
    probe_since: float = 0.0
    calls: int = 0                     # evaluate() calls in flight
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Call:
    slot: _Slot
    items: list[tuple[Task, int]]      # (task, attempts so far)


class EvaluatorPool(Evaluator):
    """A pool of long-lived evaluator actors behind the submit/poll interface.

    Args:
        problem: problem name (or ``module:factory``) built inside each actor.
        problem_options: the problem's options.
        workers: number of actors; None = as many as the available resources fit.
        num_cpus: CPUs per actor (torch threads follow it).
        resources: custom resources per actor, e.g. ``{"apple_silicon": 1}``.
        label_selector: node labels an actor must land on.
        batch_size: genomes per actor call.
        pipeline: calls queued per actor (2 hides the round trip for very fast evaluations).
        start_timeout_s: how long actors may take to be placed and set up.
        max_attempts: evaluator deaths a genome may suffer before it is marked infeasible.
        namespace: Ray namespace of the named actors.
        owns_ray: shut Ray down in :meth:`close` (the pool's :func:`connect` started it).
        search_id: tag for the Ray metrics.
        objective_names: the problem's objective names, for the infeasible records the pool
            itself makes; empty: as the actors' problem reports them.
        constraint_names: likewise for its constraints.
        runtime_env: Ray runtime environment of the actors only, e.g. ``{"env_vars":
            {"PYTHONPATH": ...}}`` so that they import a ``module:factory`` problem that
            the job's own environment does not ship.

    Raises:
        UsageError: the problem reports no objective names.
        RuntimeFailure: no actor could start, or the actors' problem reports other
            objective names than the ones given.
    """

    def __init__(
        self,
        problem: str,
        problem_options: dict[str, Any] | None = None,
        workers: int | None = None,
        *,
        num_cpus: float = 1.0,
        resources: dict[str, float] | None = None,
        label_selector: dict[str, str] | None = None,
        batch_size: int = 1,
        pipeline: int = 1,
        start_timeout_s: float = 60.0,
        max_attempts: int = 3,
        namespace: str | None = None,
        owns_ray: bool = False,
        search_id: str = "",
        objective_names: Sequence[str] = (),
        constraint_names: Sequence[str] | None = None,
        runtime_env: dict[str, Any] | None = None,
    ):
        ray = _ray()
        if not ray.is_initialized():
            raise RuntimeFailure("EvaluatorPool needs a Ray runtime: call evaluation.pool.connect() first")
        self.problem, self.problem_options = problem, dict(problem_options or {})
        self.batch_size, self.pipeline = int(batch_size), int(pipeline)
        self.max_attempts = int(max_attempts)
        self.start_timeout_s = float(start_timeout_s)
        self.namespace = namespace or f"evodiff-{search_id or os.getpid()}"
        self.owns_ray = owns_ray
        self.search_id = search_id
        self.objective_names = tuple(objective_names)
        self.constraint_names = None if constraint_names is None else tuple(constraint_names)
        self.label_selector = dict(label_selector or {})
        request = per_actor_request(num_cpus, resources)
        check_placeable(request, self.label_selector, ray.cluster_resources(),
                        [n.get("Labels", {}) for n in ray.nodes() if n.get("Alive")])
        n = workers if workers is not None else fit_workers(request, ray.available_resources())
        if n <= 0:
            raise RuntimeFailure(f"no room for an evaluator actor needing {request} "
                                 f"(available: {ray.available_resources()})")
        self._options: dict[str, Any] = {
            "num_cpus": num_cpus, "resources": dict(resources or {}), "namespace": self.namespace,
            "max_restarts": -1, "max_task_retries": 0, "lifetime": None,
        }
        if self.label_selector:
            self._options["label_selector"] = self.label_selector
        if runtime_env:
            self._options["runtime_env"] = dict(runtime_env)
        self._threads = actor_threads(num_cpus)
        self._queue: deque[tuple[Task, int]] = deque()
        self._calls: dict[Any, _Call] = {}
        self._done: list[Outcome] = []
        self._slots = [self._start(i) for i in range(n)]
        self._busy_s = 0.0
        self._counts = {"evaluated": 0, "failures": 0, "deaths": 0, "gave_up": 0}
        self._last_error = ""
        self._wait_until_ready(request)
        self._learn_names()
        self._t0 = time.monotonic()
        self._metrics = _PoolMetrics(search_id)

    @classmethod
    def from_config(cls, config, objective_names: Sequence[str] = (),
                    constraint_names: Sequence[str] | None = None) -> "EvaluatorPool":
        """Connect to Ray as ``config.address`` says and start ``config.workers`` actors.

        ``objective_names``/``constraint_names``: the problem's (empty/None: as its actors report them).
        """
        workers = config.workers
        owns = connect(config.address, num_cpus=local_cpus(config))
        try:
            return cls(
                config.problem, config.problem_options, workers,
                num_cpus=config.actor.num_cpus, resources=config.actor.resources,
                label_selector=config.actor.label_selector, batch_size=config.batch_size,
                # async: one call queued behind the running one, so an actor never waits
                # for the driver's tell/ask round trip between two evaluations
                pipeline=2 if config.mode == "async" else 1,
                start_timeout_s=config.actor.start_timeout_s, owns_ray=owns,
                search_id=config.search_id, objective_names=objective_names,
                constraint_names=constraint_names,
            )
        except BaseException:
            if owns:
                _ray().shutdown()
            raise

    # -------------------------------------------------------------- interface

    @property
    def capacity(self) -> int:
        return max(1, sum(s.state == "ready" for s in self._slots)) * self.batch_size * self.pipeline

    @property
    def in_flight(self) -> int:
        return len(self._queue) + sum(len(c.items) for c in self._calls.values()) + len(self._done)

    @property
    def workers(self) -> int:
        """Actors currently able to evaluate."""
        return sum(s.state == "ready" for s in self._slots)

    def actor_info(self) -> list[dict[str, Any]]:
        """Name, state, pid and node of every actor."""
        return [{"name": ACTOR_NAME.format(s.index), "state": s.state, **s.info} for s in self._slots]

    def submit(self, tasks: Sequence[Task]) -> None:
        self._queue.extend((t, 0) for t in tasks)
        self._dispatch()

    def poll(self, timeout: float | None = None) -> list[Outcome]:
        ray = _ray()
        self._dispatch()
        probes = {s.probe: s for s in self._slots if s.probe is not None}
        refs = list(self._calls) + list(probes)
        if refs and not self._done:
            ray.wait(refs, num_returns=1, timeout=timeout if timeout is not None else 1.0)
        ready = ray.wait(refs, num_returns=len(refs), timeout=0)[0] if refs else []
        for ref in ready:
            if ref in probes:
                self._on_probe(probes[ref], ref)
            else:
                self._on_call(self._calls.pop(ref), ref)
        self._check_stuck_probes()
        self._dispatch()
        done, self._done = self._done, []
        if done:
            self._metrics.evaluated(done, self.in_flight)
        return done

    def stats(self) -> dict[str, Any]:
        wall = time.monotonic() - self._t0
        n = len(self._slots)
        return {
            "workers": self.workers,
            **self._counts,
            "utilization": self._busy_s / (n * wall) if wall > 0 and n else None,
        }

    def metrics_tracker(self) -> Tracker:
        """A tracker that exports per-batch stats as Ray metrics (used by ``search``)."""
        return self._metrics

    def close(self) -> None:
        ray = _ray()
        for s in self._slots:
            try:
                ray.kill(s.handle, no_restart=True)
            except Exception:  # already gone
                pass
        self._slots = []
        if self.owns_ray:
            ray.shutdown()

    # -------------------------------------------------------------- internals

    def _start(self, index: int) -> _Slot:
        ray = _ray()
        cls = ray.remote(EvalActor).options(name=ACTOR_NAME.format(index), **self._options)
        handle = cls.remote(self.problem, self.problem_options, self._threads)
        return _Slot(index, handle, probe=handle.ready.remote(), probe_since=time.monotonic())

    def _wait_until_ready(self, request) -> None:
        ray = _ray()
        deadline = time.monotonic() + self.start_timeout_s
        while any(s.state == "starting" for s in self._slots) and time.monotonic() < deadline:
            probes = {s.probe: s for s in self._slots if s.probe is not None}
            ready, _ = ray.wait(list(probes), num_returns=len(probes),
                                timeout=max(0.0, deadline - time.monotonic()))
            for ref in ready:
                self._on_probe(probes[ref], ref)
            if all(s.state != "starting" for s in self._slots):
                break
        late = [s for s in self._slots if s.state == "starting"]
        for s in late:
            ray.kill(s.handle, no_restart=True)
            s.state, s.probe = "dead", None
        self._slots = [s for s in self._slots if s.state == "ready"]
        if not self._slots:
            raise RuntimeFailure(
                f"no evaluator actor started within {self.start_timeout_s:g} s (each needs {request}"
                f"{', labels ' + str(self.label_selector) if self.label_selector else ''}; available: "
                f"{ray.available_resources()}){'; last error: ' + self._last_error if self._last_error else ''}"
            )
        if late:
            log.warning("%d of %d evaluator actors could not be placed within %g s; continuing with %d",
                        len(late), len(late) + len(self._slots), self.start_timeout_s, len(self._slots))

    def _learn_names(self) -> None:
        """Take the objective and constraint names from what the actors' problem reports."""
        info = self._slots[0].info
        reported = tuple(info.get("objective_names") or ())
        if not reported:
            self.close()
            raise UsageError(f"problem {self.problem!r} reports no objective names; "
                             "set objective_names on the problem (class attribute or in __init__)")
        if self.objective_names and self.objective_names != reported:
            # the driver's problem and the actors' disagree: records would not line up
            self.close()
            raise RuntimeFailure(f"problem {self.problem!r} reports objectives {list(reported)}, "
                             f"not the {list(self.objective_names)} given to the pool")
        self.objective_names = reported
        if self.constraint_names is None:
            self.constraint_names = tuple(info.get("constraint_names") or ())

    def worker_facts(self) -> dict[str, Any]:
        """What the actors' problem reports of the hardware it measures on (the same for all).

        Raises:
            UsageError: the actors measure on different hardware; a search must measure
                on one kind of node, or its latency and memory would mix machines.
        """
        facts = [s.info.get("worker_facts") or {} for s in self._slots]
        kinds = {json.dumps(f, sort_keys=True) for f in facts}
        if len(kinds) > 1:
            raise UsageError(
                f"the evaluator actors measure on different hardware ({'; '.join(sorted(kinds))}); pin them to "
                "one kind of node with --target or actor.resources / actor.label_selector")
        return dict(facts[0]) if facts else {}

    def _infeasible(self, reason: str, *, transient: bool) -> Fitness:
        return Fitness.infeasible(self.objective_names, reason, self.constraint_names, transient=transient)

    def _dispatch(self) -> None:
        for s in self._slots:
            while s.state == "ready" and s.calls < self.pipeline and self._queue:
                items = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
                ref = s.handle.evaluate.remote([(t.ordinal, t.x, t.rung) for t, _ in items])
                self._calls[ref] = _Call(s, items)
                s.calls += 1

    def _on_call(self, call: _Call, ref) -> None:
        ray = _ray()
        call.slot.calls -= 1
        try:
            result = ray.get(ref, timeout=60)
        except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as e:
            self._on_death(call, e)          # the actor, or the node holding its answer, is gone
            return
        except ray.exceptions.RayTaskError as e:
            # the actor's method itself failed (evaluate_safely catches every candidate's
            # error), so it says nothing about the genomes: transient, the actor lives on
            reason = f"evaluator error: {str(e).strip().splitlines()[-1]}"[:500]
            result = {"fitness": [None] * len(call.items), "busy_s": 0.0, "error": reason}
        self._busy_s += float(result.get("busy_s", 0.0))
        fits = result.get("fitness", [])
        for i, (task, _) in enumerate(call.items):
            fit = self._decode(fits[i] if i < len(fits) else None, result.get("error"))
            self._counts["evaluated"] += 1
            self._counts["failures"] += not fit.feasible
            self._done.append(Outcome(task, fit))

    def _on_death(self, call: _Call, error) -> None:
        slot = call.slot
        self._counts["deaths"] += 1
        self._last_error = str(error).strip().splitlines()[0][:300] if str(error) else type(error).__name__
        log.warning("evaluator %s died; resubmitting %d genome(s)", ACTOR_NAME.format(slot.index), len(call.items))
        for task, attempts in reversed(call.items):
            if attempts + 1 >= self.max_attempts:
                self._counts["gave_up"] += 1
                # an infrastructure failure: shown in the search's records, never cached
                self._done.append(Outcome(task, self._infeasible(
                    f"evaluator actor died {attempts + 1} times evaluating it: {self._last_error}",
                    transient=True)))
            else:
                self._queue.appendleft((task, attempts + 1))
        if slot.state == "ready":
            self._probe(slot)

    def _decode(self, data: Any, error: str | None) -> Fitness:
        if data is None:  # no record at all: the actor's method failed, not the candidate
            return self._infeasible(error or "evaluator returned no fitness", transient=True)
        try:
            return Fitness.from_dict(data)
        except FitnessFormatError as e:  # the problem's own record is wrong: the same every time
            return self._infeasible(f"malformed fitness record: {e}", transient=False)

    def _probe(self, slot: _Slot) -> None:
        slot.state = "starting"
        slot.probe = slot.handle.ready.remote()
        slot.probe_since = time.monotonic()

    def _on_probe(self, slot: _Slot, ref) -> None:
        ray = _ray()
        slot.probe = None
        try:
            slot.info = ray.get(ref, timeout=60)
            slot.state = "ready"
        except ray.exceptions.ActorUnavailableError:
            slot.probe = slot.handle.ready.remote()  # restarting: ask again (bounded by start_timeout_s)
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as e:
            self._last_error = str(e).strip().splitlines()[-1][:300]
            slot.state = "dead"
            self._require_live()

    def _check_stuck_probes(self) -> None:
        now = time.monotonic()
        for s in self._slots:
            if s.state == "starting" and now - s.probe_since > self.start_timeout_s:
                _ray().kill(s.handle, no_restart=True)
                s.state, s.probe = "dead", None
                self._last_error = f"{ACTOR_NAME.format(s.index)} did not come back within {self.start_timeout_s:g} s"
        self._require_live()

    def _require_live(self) -> None:
        if self._slots and all(s.state == "dead" for s in self._slots):
            raise RuntimeFailure(f"all {len(self._slots)} evaluator actors died; last error: {self._last_error}")


class _PoolMetrics(Tracker):
    """Ray metrics (``ray.util.metrics``) of a search: evaluations, in flight, failures, best, hypervolume."""

    def __init__(self, search_id: str):
        self.tags = {"search_id": search_id or "-"}
        try:
            from ray.util.metrics import Counter, Gauge

            keys = ("search_id",)
            self._evals = Counter("evodiff_evaluations", "evaluations finished", tag_keys=keys)
            self._fails = Counter("evodiff_failures", "infeasible or failed evaluations", tag_keys=keys)
            self._in_flight = Gauge("evodiff_in_flight", "evaluations submitted, not finished", tag_keys=keys)
            self._hv = Gauge("evodiff_hypervolume", "hypervolume of the current front", tag_keys=keys)
            self._best = Gauge("evodiff_best", "best value per objective", tag_keys=("search_id", "objective"))
            self._cache = Gauge("evodiff_cache", "fitness cache: hits, misses, waited, stale_takeovers",
                                tag_keys=("search_id", "kind"))
            self._util = Gauge("evodiff_utilization", "busy share of the evaluator workers (0-1)", tag_keys=keys)
            self.enabled = True
        except Exception as e:  # metrics are a side channel: never fail a search for them
            log.warning("Ray metrics disabled: %s", e)
            self.enabled = False

    def evaluated(self, outcomes: list[Outcome], in_flight: int) -> None:
        if not self.enabled:
            return
        self._evals.inc(len(outcomes), tags=self.tags)
        fails = sum(not o.fitness.feasible for o in outcomes)
        if fails:
            self._fails.inc(fails, tags=self.tags)
        self._in_flight.set(in_flight, tags=self.tags)

    def on_generation(self, stats, front) -> None:
        if not self.enabled:
            return
        self._hv.set(float(stats["hypervolume"]), tags=self.tags)
        if stats.get("utilization") is not None:
            self._util.set(float(stats["utilization"]), tags=self.tags)
        for name, value in stats.get("best", {}).items():
            self._best.set(float(value), tags={**self.tags, "objective": name})
        cache = {**(stats.get("cache") or {}), **(stats.get("cache_service") or {})}
        for kind in ("hits", "misses", "waited", "stale_takeovers"):
            if isinstance(cache.get(kind), (int, float)):
                self._cache.set(float(cache[kind]), tags={**self.tags, "kind": kind})
