"""The real side effects of a cycle: search, registry, canary, decision, MLflow record.

:class:`LiveEffects` implements :class:`~evodiff_ray.adapt.cycle.CycleEffects` with the
package's own pieces, called as Python (nothing is shelled out):

- ``start``: the cycle's MLflow run (experiment ``evodiff-adapt-<model>``), found again by its
  search id on a resume, and the warm start: one ``--seed-from`` source as is (lineage runs on
  into it), or several merged into ``<state_dir>/seeds/cycle-NNN.json``;
- ``search``: :func:`evodiff_ray.search.search` on the cycle's config, or ``resume=True``
  from the saved ``config.json`` when the run dir holds a checkpoint (a crashed controller);
  the search's own registration puts its front's top K in the registry as
  ``evodiff-<search_id>`` (knee first);
- ``register``: the knee becomes a version of the served model (a new version over the same
  logged artifacts: no retraining), tagged with its genome, search and cycle; a version this
  cycle registered before is found again, never registered twice;
- ``start_canary``: :meth:`Controller.start_canary <evodiff_ray.serving.controller.Controller.start_canary>`,
  unless the routing state or the event stream shows this version's canary was started already
  (someone else's canary in progress is left to be decided first, never superseded);
- ``wait_decision``: the serving controller's ``promote`` or ``rollback`` event of that
  deployment, bounded by ``decision_timeout_s`` from the canary's start (then rolled back here);
- ``record``: tags of the cycle's run (stage, trigger, search, version, deployment, decision).

Imports of the serving package are lazy and one-way (``serving`` never imports ``adapt``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from evodiff_ray.adapt.cycle import FAILED, Stopped, seed_sources
from evodiff_ray.adapt.options import AdaptOptions, cycle_config
from evodiff_ray.adapt.state import DECIDED, AdaptState
from evodiff_ray.adapt.triggers import Trigger
from evodiff_ray.core.errors import RuntimeFailure, UsageError

log = logging.getLogger(__name__)

SEEDS_DIR = "seeds"
#: how often the decision wait looks at the event stream
DECISION_POLL_S = 0.5
#: how often a cycle looks whether someone else's canary has been decided
OTHER_CANARY_POLL_S = 2.0
#: a canary that left the routing state with no decision event is taken as ended after this long
MISSING_EVENT_GRACE_S = 10.0


class CycleRecorder:
    """The cycles' MLflow runs: one per cycle, tagged as it goes; MLflow trouble is warned about once.

    Args:
        tracking_uri: the MLflow URI.
        experiment: the experiment's name (``evodiff-adapt-<model>``).
        runs_dir: where a database store keeps artifacts (see ``tracking.mlflow_tracker``).
    """

    def __init__(self, tracking_uri: str, experiment: str, runs_dir: str | Path):
        self.tracking_uri, self.experiment, self.runs_dir = tracking_uri, experiment, str(runs_dir)
        self._client = None
        self._warned = False

    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def _safe(self, what: str, fn: Callable, *args):
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - MLflow down must not stop adapting; the state file has it all
            if not self._warned:
                self._warned = True
                log.warning("MLflow: cannot %s (%s: %s); the adapt state file still has everything", what,
                            type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
            return None

    def open_run(self, state: AdaptState, params: dict[str, Any]) -> str | None:
        """The cycle's run: found by its search id (a resumed cycle), else created."""
        def go():
            from evodiff_ray.tracking.mlflow_tracker import experiment_id

            exp = experiment_id(self.client, self.experiment, self.tracking_uri, self.runs_dir)
            found = self.client.search_runs([exp], f"tags.`adapt.search_id` = '{state.search_id}'", max_results=1)
            if found:
                return found[0].info.run_id
            trigger = Trigger.from_dict(state.trigger)
            run = self.client.create_run(exp, run_name=f"cycle-{state.cycle}-{trigger.kind if trigger else 'cycle'}",
                                         tags={"model": state.model, "adapt.cycle": str(state.cycle),
                                               "adapt.search_id": state.search_id})
            for k, v in params.items():
                self.client.log_param(run.info.run_id, k, str(v)[:500])
            return run.info.run_id
        return self._safe("open a cycle run", go)

    def record(self, state: AdaptState) -> None:
        """Tag the run with everything ``state`` knows; end it once decided."""
        if not state.run_id:
            return
        trigger = Trigger.from_dict(state.trigger)
        tags = {"adapt.stage": state.stage, "adapt.cycle": str(state.cycle), "search_id": state.search_id,
                "seed_from": state.seed_from, "registered_version": state.version, "deployment": state.deployment,
                "decision": state.decision, "reason": state.reason}
        if trigger is not None:
            tags.update({"trigger.kind": trigger.kind, "trigger.details": json.dumps(trigger.details, default=str),
                         "trigger": trigger.describe()})
        def go():
            for k, v in tags.items():
                if v is not None:
                    self.client.set_tag(state.run_id, k, str(v)[:5000])
            value = (trigger.details.get("value") if trigger is not None else None)
            if isinstance(value, (int, float)):
                self.client.log_metric(state.run_id, "trigger.value", float(value))
            if state.stage == DECIDED:
                self.client.set_terminated(state.run_id, "FAILED" if state.decision == FAILED else "FINISHED")
        self._safe("tag a cycle run", go)


class LiveEffects:
    """The side effects of a cycle against the real search, registry and serving controller.

    Args:
        options: the controller's options.
        client: a sync Redis client of the served model's Redis.
        trackers: extra search trackers (the CLI's progress lines), or a function that makes
            fresh ones for each search.
        say: one-line progress messages.
        clock: epoch seconds (tests may slow or speed it).
        stop: the controller's stop event; waiting for a canary ends with
            :class:`~evodiff_ray.adapt.cycle.Stopped` once it is set.
    """

    def __init__(self, options: AdaptOptions, client, trackers: Sequence | Callable[[], Sequence] = (),
                 say: Callable[[str], None] = log.info,
                 clock: Callable[[], float] = time.time, stop=None):
        from evodiff_ray.serving.controller import Controller
        from evodiff_ray.serving.events import DeploymentRecorder

        self.options = options
        self.client = client
        self._trackers = trackers
        self.say = say
        self.clock = clock
        self.stop = stop              # a threading.Event: polling waits end when it is set
        self.controller = Controller(client, options.model,
                                     DeploymentRecorder(options.tracking_uri, options.model, options.runs_dir))
        self.recorder = CycleRecorder(options.tracking_uri, options.experiment, options.runs_dir)

    def now(self) -> float:
        return self.clock()

    def _pause(self, seconds: float) -> None:
        """Wait between polls; raise :class:`~evodiff_ray.adapt.cycle.Stopped` once told to stop."""
        if self.stop is None:
            time.sleep(seconds)
        elif self.stop.wait(seconds):
            raise Stopped("adapt is stopping; the cycle resumes at this stage")

    @property
    def trackers(self) -> list:
        return list(self._trackers() if callable(self._trackers) else self._trackers)

    @property
    def registry(self):
        return self.recorder.client

    # -- triggered -> searching -------------------------------------------------------------
    def start(self, state: AdaptState) -> dict[str, Any]:
        o = self.options
        params = {"model": o.model, "share": o.canary_share, "decision_timeout_s": o.decision_timeout_s,
                  "watch": o.watch, **{f"trigger.{k}": v for k, v in o.triggers.to_dict().items()},
                  **{f"policy.{k}": v for k, v in o.canary_policy.items()},
                  **{f"search.{k}": v for k, v in o.search_overrides.items()}}
        run_id = state.run_id or self.recorder.open_run(state, params)
        return {"run_id": run_id, "seed_from": self.seed_from(state)}

    def seed_from(self, state: AdaptState) -> str | None:
        """The cycle's ``seed_from``: one source as is, or several merged into a seeds file."""
        sources = seed_sources(state.model, state.last_search_id, tuple(self.options.seed_from))
        if len(sources) <= 1:
            return sources[0] if sources else None
        from evodiff_ray.problems import make_problem
        from evodiff_ray.search.seeds import resolve_seeds

        config = cycle_config(self.options, state.search_id, state.cycle, None)
        problem = make_problem(config.problem, config.problem_options)
        usable, candidates, seen = [], [], set()
        for source in sources:
            try:
                seeds = resolve_seeds(source, problem, runs_dir=config.runs_dir, redis_url=config.redis_url,
                                      tracking_uri=self.options.tracking_uri)
            except UsageError as e:   # e.g. the last search's run dir was removed: the others still seed
                log.warning("warm start: skipping %s (%s)", source, e)
                continue
            usable.append(source)
            for x in seeds:
                if problem.key(x) not in seen:
                    seen.add(problem.key(x))
                    candidates.append(problem.to_json(x))
        if len(usable) <= 1:
            return usable[0] if usable else None
        from evodiff_ray.core.io import atomic_write_text

        path = self.options.state_path / SEEDS_DIR / f"cycle-{state.cycle:03d}.json"
        atomic_write_text(path, json.dumps({"sources": usable, "candidates": candidates}, indent=1))
        return str(path.resolve())

    # -- searching -> registered ------------------------------------------------------------
    def search(self, state: AdaptState) -> None:
        from evodiff_ray.search import CONFIG_FILE, CHECKPOINT_DIR, search
        from evodiff_ray.search.checkpoint import Checkpoint

        run_dir = Path(self.options.runs_dir) / state.search_id
        if Checkpoint(run_dir / CHECKPOINT_DIR).exists():
            from evodiff_ray.config import resume_config

            saved = json.loads((run_dir / CONFIG_FILE).read_text())
            config = resume_config(saved, {}, where=str(run_dir / CONFIG_FILE))
            self.say(f"cycle {state.cycle}: resuming search {state.search_id}")
            search(config, resume=True, trackers=self.trackers)
            return
        config = cycle_config(self.options, state.search_id, state.cycle, state.seed_from)
        self.say(f"cycle {state.cycle}: search {state.search_id} (warm start: {state.seed_from or 'none'})")
        search(config, trackers=self.trackers)

    def _front_should_have_registered(self, state: AdaptState) -> bool:
        """True when the search's problem makes models and its front has points."""
        from evodiff_ray.problems import problem_class
        from evodiff_ray.search import CONFIG_FILE

        run_dir = Path(self.options.runs_dir) / state.search_id
        try:
            points = json.loads((run_dir / "front.json").read_text()).get("points") or []
            problem = json.loads((run_dir / CONFIG_FILE).read_text())["problem"]
            return bool(points) and bool(problem_class(problem).produces_models)
        except Exception:  # noqa: BLE001 - an unreadable run dir or unknown problem: nothing to retry
            return False

    def register(self, state: AdaptState) -> str | None:
        registered_file = Path(self.options.runs_dir) / state.search_id / "registered.json"
        try:
            registered = json.loads(registered_file.read_text())
        except (OSError, ValueError):
            registered = []
        if not registered:
            if self._front_should_have_registered(state):   # registration failed (MLflow down?); the stage retries
                from evodiff_ray.core.errors import RuntimeFailure

                raise RuntimeFailure(f"search {state.search_id} has a front but registered nothing "
                                     f"(see its log); registering again")
            return None
        # the search registers its knee first, with the alias ``knee`` (tracking/registration.py)
        knee = next((r for r in registered if "knee" in (r.get("aliases") or [])), registered[0])
        model = self.options.model
        for mv in self.registry.search_model_versions(f"name='{model}'"):
            if (mv.tags or {}).get("adapt_search_id") == state.search_id:
                return str(mv.version)            # copied before a crash: never twice
        source = self.registry.get_model_version(knee["model_name"], str(knee["version"]))
        trigger = Trigger.from_dict(state.trigger)
        tags = {**(source.tags or {}), "adapt_search_id": state.search_id, "adapt_cycle": str(state.cycle),
                "adapt_trigger": trigger.kind if trigger else "", "copied_from": f"{knee['model_name']}/{knee['version']}"}
        # the same logged artifacts as the search's knee (no retraining), and no dependence on
        # the search's own registered model living on
        copied = self.registry.create_model_version(
            model, source.source, run_id=source.run_id, tags={k: str(v)[:5000] for k, v in tags.items()},
            description=f"adapt cycle {state.cycle}: the knee of search {state.search_id}",
            model_id=getattr(source, "model_id", None))
        self.say(f"cycle {state.cycle}: registered the knee {knee['key'][:12]} as {model} version {copied.version}")
        return str(copied.version)

    # -- registered -> canary ---------------------------------------------------------------
    def start_canary(self, state: AdaptState) -> str:
        from evodiff_ray.serving.policy import CanaryPolicy

        routing = self.controller.state()
        if routing is not None and routing.challenger == state.version:
            return routing.deployment                     # started before a crash
        started = self._deploy_event(state)
        if started is not None:
            return started["deployment"]                  # started, and decided already
        if routing is None:
            raise RuntimeFailure(f"{state.model!r} is not being served in this Redis; start it with "
                                 f"'evodiff-ray serve {state.model}'")
        if routing.challenger is not None:
            routing = self._await_other_canary(routing)
        if not self.controller.serving():
            log.warning("no 'serve' process answers for %s: the canary waits for one to decide", state.model)
        try:
            policy = CanaryPolicy.from_dict(self.options.canary_policy)
        except ValueError as e:
            raise UsageError(f"canary policy: {e}") from None
        new = self.controller.start_canary(state.version, self.options.canary_share, policy)
        self.say(f"cycle {state.cycle}: canary of version {state.version} at {self.options.canary_share:g}% beside "
                 f"production {new.production} (deployment {new.deployment})")
        return new.deployment

    def _await_other_canary(self, routing):
        """Someone else's canary is running: let it be decided first (bounded by the decision timeout)."""
        self.say(f"a canary of version {routing.challenger} is in progress; waiting for its decision first")
        deadline = self.clock() + self.options.decision_timeout_s
        while routing is not None and routing.challenger is not None:
            if self.clock() >= deadline:
                raise RuntimeFailure(f"the canary of version {routing.challenger} was not decided within "
                                     f"{self.options.decision_timeout_s:g} s; decide it ('evodiff-ray rollback "
                                     f"{self.options.model}') and adapt resumes")
            self._pause(OTHER_CANARY_POLL_S)
            routing = self.controller.state()
        return routing

    def _deploy_event(self, state: AdaptState) -> dict[str, Any] | None:
        """The ``deploy`` event of this cycle's version (since the cycle began), if any."""
        since = float((state.trigger or {}).get("at") or 0.0)
        for e in reversed(self.controller.events.history(count=1000)):
            if e.get("kind") == "deploy" and str(e.get("version")) == state.version and e.get("at", 0) >= since:
                return e
        return None

    # -- canary -> decided ------------------------------------------------------------------
    def wait_decision(self, state: AdaptState) -> tuple[str, str]:
        from evodiff_ray.serving.policy import ROLLBACK, Decision

        started = self._deploy_event(state)
        t0 = float(started["at"]) if started is not None else self.clock()
        deadline = t0 + self.options.decision_timeout_s
        gone_since, cursor = None, None
        while True:
            event, cursor = self._decision_event(state.deployment, cursor)
            if event is not None:
                return event["kind"], str(event.get("reason") or "")
            routing = self.controller.state()
            running = routing is not None and routing.challenger == state.version
            if not running:
                # the canary left the routing state; its event follows the state change closely
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since > MISSING_EVENT_GRACE_S:
                    return ROLLBACK, "the canary ended with no recorded decision"
            elif self.clock() >= deadline:
                reason = f"adapt: no decision within {self.options.decision_timeout_s:g} s (--decision-timeout)"
                try:
                    self.controller.rollback(Decision(ROLLBACK, reason))
                except UsageError:   # decided in the meantime: the event says how
                    continue
                return ROLLBACK, reason
            self._pause(DECISION_POLL_S)

    def _decision_event(self, deployment: str, after: str | None) -> tuple[dict[str, Any] | None, str | None]:
        """The decision event of ``deployment`` among the events newer than the cursor ``after``
        (the last 1000 on the first look), and the cursor for the next look."""
        events = self.controller.events.history(count=None if after else 1000, after=after)
        for e in reversed(events):
            if e.get("deployment") == deployment and e.get("kind") in ("promote", "rollback"):
                return e, e["id"]
        return None, (events[-1]["id"] if events else after)

    # -- every stage --------------------------------------------------------------------------
    def record(self, state: AdaptState) -> None:
        self.recorder.record(state)


__all__ = ["CycleRecorder", "LiveEffects"]
