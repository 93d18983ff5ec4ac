"""The ``adapt`` controller: watch the triggers, run a cycle when one fires, resume after a crash.

:class:`Adapter` is the loop, with its observer, effects and state store injected::

    load the state; a cycle in progress is resumed at its stage
    every poll_s:  observe (dataset digest, production's evidence, clock)
                   -> next_trigger(observation, memory, policy)
                   -> a cycle: begin, then advance stage by stage until decided

A stage whose effect fails is tried again (``stage_retries`` times, waiting longer each
time: Redis or MLflow may be restarting); a usage error, or a stage that keeps failing,
ends the cycle as ``failed`` (recorded like any decision) and the controller watches on.

:func:`adapt_forever` wires the real pieces (Redis of the served model, MLflow, the search)
after checking the inputs, each mistake one :class:`~evodiff_ray.core.errors.UsageError`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Sequence

from evodiff_ray.adapt.cycle import CycleEffects, Stopped, advance, begin, failed
from evodiff_ray.adapt.options import AdaptOptions, cycle_config
from evodiff_ray.adapt.state import AdaptState, StateLock, StateStore
from evodiff_ray.adapt.triggers import Memory, Observation, next_trigger
from evodiff_ray.core.errors import UsageError

log = logging.getLogger(__name__)


def memory_of(state: AdaptState) -> Memory:
    """What the triggers need to remember, as the state file keeps it (pure)."""
    return Memory(digest=state.digest, since=state.since, decided_at=state.decided_at)


class Adapter:
    """The long-running loop of one model.

    Args:
        options: the controller's options (triggers, poll interval, cycle limit, retries).
        effects: the cycle's side effects.
        observe: ``observe(manual) -> Observation``, one poll's facts.
        store: the state file.
        say: one-line progress messages.
        retry_wait_s: the first wait before a failed stage is tried again (doubles each time, at most 60 s).
    """

    def __init__(self, options: AdaptOptions, effects: CycleEffects, observe: Callable[[bool], Observation],
                 store: StateStore, say: Callable[[str], None] = log.info, retry_wait_s: float = 5.0):
        self.options = options
        self.fx = effects
        self.observe = observe
        self.store = store
        self.say = say
        self.retry_wait_s = retry_wait_s
        self.cycles_run = 0

    def run(self, stop: threading.Event | None = None) -> AdaptState:
        """Resume a cycle in progress, then watch until ``stop`` is set or ``max_cycles`` cycles ran."""
        stop = stop or threading.Event()
        state = self.store.load()
        if state.in_cycle:
            self.say(f"resuming cycle {state.cycle} at stage {state.stage}")
            state = self.cycle(state, stop)
        if not state.since:
            state = self.store.save(state.evolve(since=self.fx.now()), self.fx.now())
        manual = self.options.cycle_now
        while not stop.is_set() and not self._enough():
            obs = self.observe(manual)
            if state.digest is None and obs.digest is not None:   # the first look: a baseline, not a change
                state = self.store.save(state.evolve(digest=obs.digest), obs.now)
            trigger = next_trigger(obs, memory_of(state), self.options.triggers)
            if trigger is None:
                stop.wait(self.options.poll_s)
                continue
            manual = False
            state = self.store.save(begin(state, trigger), obs.now)
            self.say(f"cycle {state.cycle}: triggered by {trigger.describe()}")
            state = self.cycle(state, stop)
        return state

    def _enough(self) -> bool:
        return self.options.max_cycles is not None and self.cycles_run >= self.options.max_cycles

    def cycle(self, state: AdaptState, stop: threading.Event) -> AdaptState:
        """Advance ``state`` until decided, retrying a failing stage; a cycle that cannot go on is ``failed``."""
        attempts = 0
        while state.in_cycle:
            try:
                state = advance(state, self.fx, self.store)
                attempts = 0
            except Stopped:
                return state                  # stopped mid-stage: the state file resumes it here
            except UsageError as e:
                state = self._give_up(state, e)
            except Exception as e:  # noqa: BLE001 - a stage's trouble must not end the controller
                attempts += 1
                if attempts > self.options.stage_retries or stop.is_set():
                    state = self._give_up(state, e)
                    continue
                wait = min(60.0, self.retry_wait_s * 2 ** (attempts - 1))
                log.warning("cycle %d: stage %s failed (%s: %s); retrying in %.0f s", state.cycle, state.stage,
                            type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "", wait)
                stop.wait(wait)
        self.cycles_run += 1
        self.say(f"cycle {state.cycle}: {state.decision}" + (f" ({state.reason})" if state.reason else "")
                 + (f"; version {state.version}" if state.version else ""))
        return state

    def _give_up(self, state: AdaptState, error: BaseException) -> AdaptState:
        log.error("cycle %d failed at stage %s: %s", state.cycle, state.stage, error)
        done = failed(state, error, self.fx.now())
        self.fx.record(done)
        return self.store.save(done, self.fx.now())


def live_observer(options: AdaptOptions, client, watch=None, clock: Callable[[], float] = time.time):
    """``observe(manual)`` over the real facts: the watched digest and production's evidence in Redis."""
    from evodiff_ray.adapt.observe import served_snapshot

    warned = [False]

    def observe(manual: bool) -> Observation:
        digest = watch.digest() if watch is not None else None
        try:
            served = served_snapshot(client, options.model)
            warned[0] = False
        except Exception as e:  # noqa: BLE001 - Redis restarting: no evidence this poll
            if not warned[0]:
                log.warning("cannot read the served metrics (%s); watching on", type(e).__name__)
                warned[0] = True
            served = None
        return Observation(now=clock(), digest=digest, served=served, manual=manual)

    return observe


def check_inputs(options: AdaptOptions):
    """Check what a controller needs before it starts; returns the :class:`DatasetWatch` (or None).

    Raises:
        UsageError: an unknown model, no ``production`` alias (with how to set one), a bad
            search option, a watched path that is not a usable dataset, or a warm-start
            source that does not fit the cycles' search space.
    """
    from evodiff_ray.serving.versions import production_version, registry_client

    production_version(registry_client(options.tracking_uri), options.model)
    config = cycle_config(options, "adapt-check", 1, None)
    watch = None
    if options.watch:
        from evodiff_ray.adapt.observe import DatasetWatch

        watch = DatasetWatch(options.watch, resolution=(config.problem_options or {}).get("resolution"))
        watch.check()
    from evodiff_ray.adapt.cycle import LAST_SOURCE, seed_sources
    from evodiff_ray.problems import make_problem
    from evodiff_ray.search.seeds import resolve_seeds

    problem = make_problem(config.problem, config.problem_options)   # a bad problem option fails here
    # the warm starts known now (the last cycle's search comes later): a registered version with no
    # genome tag, or a genome outside the cycles' space, fails here rather than in every cycle
    for source in seed_sources(options.model, None, tuple(s for s in options.seed_from if s != LAST_SOURCE)):
        resolve_seeds(source, problem, runs_dir=options.runs_dir, redis_url=options.redis_url,
                      tracking_uri=options.tracking_uri)
    return watch


def adapt_forever(options: AdaptOptions, *, say: Callable[[str], None] = print,
                  trackers: Sequence | Callable[[], Sequence] = (),
                  stop: threading.Event | None = None) -> AdaptState:
    """Run the controller of ``options.model`` until stopped (or ``max_cycles``); returns the last state.

    Raises:
        UsageError: see :func:`check_inputs`; no Redis of the served model, the model not
            served there, or another controller on the same state dir.
    """
    from evodiff_ray.adapt.effects import LiveEffects
    from evodiff_ray.serving.connect import connect_redis
    from evodiff_ray.serving.state import read_state

    watch = check_inputs(options)
    client, options.redis_url, _ = connect_redis(options.redis_url, options.runs_dir, start=False)
    try:
        if read_state(client, options.model) is None:
            raise UsageError(f"{options.model!r} is not being served with this Redis; start it with "
                             f"'evodiff-ray serve {options.model}' (same --runs-dir/--redis-url), then adapt")
        with StateLock(options.state_path):
            store = StateStore(options.state_path, options.model)
            effects = LiveEffects(options, client, trackers=trackers, say=say, stop=stop)
            adapter = Adapter(options, effects, live_observer(options, client, watch), store, say=say)
            say(f"adapting {options.model}: state in {options.state_path}"
                + (f", watching {options.watch}" if options.watch else "")
                + f"; MLflow experiment {options.experiment}")
            return adapter.run(stop)
    finally:
        client.close()


__all__ = ["Adapter", "adapt_forever", "check_inputs", "live_observer", "memory_of"]
