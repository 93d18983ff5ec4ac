"""The adapt cycle as a state machine, with fake effects: stages in order, each saved before the
next effect; a crash at any stage (during its effect, or between the effect and the save)
resumes at that stage and never repeats an earlier one; failures end a cycle as ``failed``."""

import json
import threading

import pytest

from evodiff_ray.adapt.controller import Adapter
from evodiff_ray.adapt.cycle import advance, begin, cycle_search_id, decided, run_cycle, seed_sources
from evodiff_ray.adapt.options import AdaptOptions, cycle_config
from evodiff_ray.adapt.state import (CANARY, DECIDED, IDLE, REGISTERED, SEARCHING, STAGES, TRIGGERED, AdaptState,
                                     StateLock, StateStore)
from evodiff_ray.adapt.triggers import DATA, Observation, ServedSnapshot, Trigger, TriggerPolicy
from evodiff_ray.core.errors import RuntimeFailure, UsageError

T0 = 1_700_000_000.0


class Crash(BaseException):
    """The controller process dies here (nothing catches it, like SIGKILL)."""


class World:
    """What the fake effects changed outside the state file: it survives a 'crash'."""

    def __init__(self):
        self.checkpoints: set[str] = set()
        self.searches: list[tuple[str, bool]] = []      # (search id, resumed)
        self.registered: dict[str, str] = {}            # search id -> version
        self.canaries: dict[str, str] = {}              # version -> deployment
        self.decisions: dict[str, tuple[str, str]] = {}
        self.runs: dict[str, dict] = {}
        self.calls: list[str] = []


class FakeEffects:
    """Effects with the idempotency the real ones have; ``crash_in`` kills the 'process' in one effect."""

    def __init__(self, world: World, crash_in: str | None = None, crash_after: bool = False, version="7",
                 decision=("promote", "ratings: challenger rated higher")):
        self.w, self.crash_in, self.crash_after = world, crash_in, crash_after
        self.version, self.decision = version, decision
        self.clock = T0

    def now(self):
        self.clock += 1
        return self.clock

    def _maybe_crash(self, name, before=True):
        if self.crash_in == name and before != self.crash_after:
            raise Crash(name)

    def start(self, state):
        self.w.calls.append("start")
        self._maybe_crash("start")
        run_id = next((r for r, t in self.w.runs.items() if t["search_id"] == state.search_id), None)
        if run_id is None:
            run_id = f"run{len(self.w.runs) + 1}"
            self.w.runs[run_id] = {"search_id": state.search_id}
        self._maybe_crash("start", before=False)
        return {"run_id": run_id, "seed_from": f"models:/{state.model}@production"}

    def search(self, state):
        self.w.calls.append("search")
        resumed = state.search_id in self.w.checkpoints
        self.w.searches.append((state.search_id, resumed))
        self.w.checkpoints.add(state.search_id)
        self._maybe_crash("search")

    def register(self, state):
        self.w.calls.append("register")
        self._maybe_crash("register")
        version = self.w.registered.setdefault(state.search_id, self.version)
        self._maybe_crash("register", before=False)
        return version

    def start_canary(self, state):
        self.w.calls.append("start_canary")
        self._maybe_crash("start_canary")
        deployment = self.w.canaries.setdefault(state.version, f"dep-{len(self.w.canaries) + 1}")
        self._maybe_crash("start_canary", before=False)
        return deployment

    def wait_decision(self, state):
        self.w.calls.append("wait_decision")
        self._maybe_crash("wait_decision")
        self.w.decisions[state.deployment] = self.decision
        return self.decision

    def record(self, state):
        self.w.runs.setdefault(state.run_id, {}).update({"stage": state.stage, "decision": state.decision,
                                                         "version": state.version})


class CrashingStore(StateStore):
    """Dies on the save that would record ``stage``: the effect ran, the state file did not move."""

    def __init__(self, *a, crash_on: str | None = None, **kw):
        super().__init__(*a, **kw)
        self.crash_on = crash_on
        self.saved: list[str] = []

    def save(self, state, now):
        if state.stage == self.crash_on:
            self.crash_on = None
            raise Crash(f"save {state.stage}")
        self.saved.append(state.stage)
        return super().save(state, now)


def data_trigger(at=T0):
    return Trigger(DATA, {"old": "aaa", "new": "bbb"}, at)


def test_a_cycle_goes_through_the_stages_in_order_and_saves_each_before_the_next_effect(tmp_path):
    world, store = World(), CrashingStore(tmp_path, "tiny")
    state = store.save(begin(AdaptState("tiny", digest="aaa", last_search_id="s0"), data_trigger()), T0)
    seen = []
    fx = FakeEffects(world)
    end = run_cycle(state, fx, store, on_stage=lambda s: seen.append((s.stage, StateStore(tmp_path, "tiny").load().stage)))
    assert [s for s, _ in seen] == [SEARCHING, REGISTERED, CANARY, DECIDED]
    assert all(mem == on_disk for mem, on_disk in seen)                  # saved at once
    assert world.calls == ["start", "search", "register", "start_canary", "wait_decision"]
    assert end.cycle == 1 and end.version == "7" and end.deployment == "dep-1" and end.decision == "promote"
    assert end.search_id == cycle_search_id("tiny", 1, T0) and end.run_id == "run1"
    # memory for the next cycle: the new digest, this search as the next warm start, the history
    assert end.digest == "bbb" and end.last_search_id == end.search_id and end.decided_at is not None
    assert [h["cycle"] for h in end.history] == [1] and end.history[0]["decision"] == "promote"
    assert world.runs["run1"]["stage"] == DECIDED and world.runs["run1"]["decision"] == "promote"


@pytest.mark.parametrize("crash_in,after", [("start", False), ("start", True), ("search", False),
                                            ("register", False), ("register", True), ("start_canary", False),
                                            ("start_canary", True), ("wait_decision", False)])
def test_a_crash_at_any_stage_resumes_there(tmp_path, crash_in, after):
    world = World()
    store = StateStore(tmp_path, "tiny")
    state = store.save(begin(AdaptState("tiny", digest="aaa"), data_trigger()), T0)
    with pytest.raises(Crash):
        run_cycle(state, FakeEffects(world, crash_in=crash_in, crash_after=after), store)
    at = store.load()
    expected = {"start": TRIGGERED, "search": SEARCHING, "register": SEARCHING, "start_canary": REGISTERED,
                "wait_decision": CANARY}[crash_in]
    assert at.stage == expected and at.in_cycle
    calls_before = list(world.calls)
    # a new controller process: the same cycle, from the stage it was in
    end = run_cycle(store.load(), FakeEffects(world), store)
    assert end.stage == DECIDED and end.cycle == 1 and end.decision == "promote"
    resumed_calls = world.calls[len(calls_before):]
    order = ["start", "search", "register", "start_canary", "wait_decision"]
    first = {TRIGGERED: "start", SEARCHING: "search", REGISTERED: "start_canary", CANARY: "wait_decision"}[expected]
    assert resumed_calls == order[order.index(first):]                 # nothing earlier is repeated
    assert len(world.canaries) == 1 and len(world.runs) == 1 and len(world.registered) == 1
    fresh = [sid for sid, resumed in world.searches if not resumed]
    assert len(fresh) == 1                                             # a running search is resumed, not restarted
    if crash_in == "search":
        assert world.searches[-1] == (at.search_id, True)


@pytest.mark.parametrize("stage", [SEARCHING, REGISTERED, CANARY, DECIDED])
def test_a_crash_between_an_effect_and_its_save_repeats_only_that_stage(tmp_path, stage):
    world = World()
    store = CrashingStore(tmp_path, "tiny", crash_on=stage)
    state = store.save(begin(AdaptState("tiny"), data_trigger()), T0)
    with pytest.raises(Crash):
        run_cycle(state, FakeEffects(world), store)
    before = StateStore(tmp_path, "tiny").load()
    end = run_cycle(before, FakeEffects(world), store)
    assert end.stage == DECIDED and len(world.canaries) == 1 and len(world.registered) == 1 and len(world.runs) == 1
    assert STAGES.index(before.stage) == STAGES.index(stage) - 1


def test_nothing_registered_decides_none_and_advance_refuses_an_idle_state(tmp_path):
    class NoModel(FakeEffects):
        def register(self, state):
            return None

    world, store = World(), StateStore(tmp_path, "tiny")
    state = store.save(begin(AdaptState("tiny"), data_trigger()), T0)
    end = run_cycle(state, NoModel(world), store)
    assert end.decision == "none" and "registered no model" in end.reason and "start_canary" not in world.calls
    assert end.last_search_id == end.search_id
    with pytest.raises(ValueError, match="no cycle in progress"):
        advance(end, NoModel(world), store)
    with pytest.raises(ValueError, match="still at stage"):
        begin(end.evolve(stage=SEARCHING), data_trigger())


def test_seed_sources_and_search_ids():
    assert seed_sources("tiny", None) == ["models:/tiny@production"]
    assert seed_sources("tiny", "s1") == ["models:/tiny@production", "s1"]
    assert seed_sources("tiny", "s1", ("last",)) == ["s1"]
    assert seed_sources("tiny", None, ("last", "front.json", "front.json")) == ["front.json"]
    assert cycle_search_id("my model/v2", 3, 0.0) == "adapt-my-model-v2-c003-19700101-000000"


def test_the_state_file_round_trips_and_refuses_another_model_or_garbage(tmp_path):
    store = StateStore(tmp_path, "tiny")
    assert store.load() == AdaptState("tiny") and store.load().stage == IDLE
    s = store.save(begin(AdaptState("tiny"), data_trigger()), T0)
    assert store.load() == s and json.loads(store.path.read_text())["stage"] == TRIGGERED
    with pytest.raises(UsageError, match="state of model 'tiny'"):
        StateStore(tmp_path, "other").load()
    store.path.write_text("{not json")
    with pytest.raises(UsageError, match="unreadable adapt state"):
        store.load()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temp file left


def test_one_controller_per_state_dir(tmp_path):
    with StateLock(tmp_path):
        with pytest.raises(UsageError, match="another adapt controller"):
            StateLock(tmp_path).acquire()
    StateLock(tmp_path).acquire().release()          # released with the first


# -- the loop ------------------------------------------------------------------------------
def options(tmp_path, **kw):
    return AdaptOptions(model="tiny", tracking_uri="sqlite:///x.db", state_dir=str(tmp_path), poll_s=0.01,
                        **kw)


def scripted(observations):
    """An observer returning the given observations in turn (the last one forever)."""
    seq = list(observations)

    def observe(manual):
        obs = seq.pop(0) if len(seq) > 1 else seq[0]
        return Observation(obs.now, obs.digest, obs.served, manual or obs.manual)
    return observe


def test_the_loop_takes_a_baseline_then_runs_a_cycle_per_trigger(tmp_path):
    world, store = World(), StateStore(tmp_path, "tiny")
    bad = ServedSnapshot("2", "d9", started_at=T0 + 50, ratings=30, mean_rating=1.5)
    obs = [Observation(T0, digest="aaa"), Observation(T0 + 1, digest="aaa"), Observation(T0 + 2, digest="bbb"),
           Observation(T0 + 100, digest="bbb", served=bad)]
    opts = options(tmp_path, triggers=TriggerPolicy(rating_below=3.0, min_ratings=20), max_cycles=2)
    end = Adapter(opts, FakeEffects(world), scripted(obs), store, say=lambda m: None).run()
    assert end.cycle == 2 and [h["trigger"]["kind"] for h in end.history] == ["data", "degraded"]
    assert end.history[0]["trigger"]["details"] == {"old": "aaa", "new": "bbb"}
    assert end.history[1]["trigger"]["details"]["value"] == 1.5
    assert end.digest == "bbb" and store.load() == end
    assert world.calls.count("start_canary") == 2


def test_the_loop_resumes_a_cycle_in_progress_before_watching(tmp_path):
    world, store = World(), StateStore(tmp_path, "tiny")
    state = store.save(begin(AdaptState("tiny", digest="aaa"), data_trigger()), T0)
    with pytest.raises(Crash):
        run_cycle(state, FakeEffects(world, crash_in="wait_decision"), store)
    said = []
    end = Adapter(options(tmp_path, max_cycles=1), FakeEffects(world), scripted([Observation(T0, digest="bbb")]),
                  store, say=said.append).run()
    assert said[0] == "resuming cycle 1 at stage canary" and end.cycle == 1 and end.stage == DECIDED
    assert len(world.canaries) == 1


def test_cycle_now_runs_one_at_once_and_stop_ends_the_watch(tmp_path):
    world, store = World(), StateStore(tmp_path, "tiny")
    stop = threading.Event()

    class Stopping(FakeEffects):
        def record(self, state):
            super().record(state)
            if state.stage == DECIDED:
                stop.set()

    end = Adapter(options(tmp_path, cycle_now=True), Stopping(world), scripted([Observation(T0)]), store,
                  say=lambda m: None).run(stop)
    assert end.cycle == 1 and end.trigger["kind"] == "manual"


def test_a_usage_error_fails_the_cycle_at_once_and_a_transient_one_is_retried(tmp_path):
    class Flaky(FakeEffects):
        fails = 2

        def start_canary(self, state):
            if Flaky.fails:
                Flaky.fails -= 1
                raise RuntimeFailure("Redis restarting")
            return super().start_canary(state)

    class Bad(FakeEffects):
        def search(self, state):
            raise UsageError("--seed-from 'x': no such search")

    world, store = World(), StateStore(tmp_path, "tiny")
    state = store.save(begin(AdaptState("tiny"), data_trigger()), T0)
    adapter = Adapter(options(tmp_path), Flaky(world), scripted([Observation(T0)]), store, say=lambda m: None,
                      retry_wait_s=0.001)
    end = adapter.cycle(state, threading.Event())
    assert end.decision == "promote" and world.calls.count("start_canary") == 1

    state = store.save(begin(end, data_trigger(T0 + 5)), T0 + 5)
    end = Adapter(options(tmp_path), Bad(world), scripted([Observation(T0)]), store, say=lambda m: None).cycle(
        state, threading.Event())
    assert end.decision == "failed" and end.reason.startswith("failed at stage searching: UsageError: --seed-from")
    assert world.runs[end.run_id]["decision"] == "failed" and end.last_search_id != end.search_id

    class Down(FakeEffects):
        def wait_decision(self, state):
            raise ConnectionError("redis gone")

    state = store.save(begin(end, data_trigger(T0 + 9)), T0 + 9)
    end = Adapter(options(tmp_path, stage_retries=2), Down(world), scripted([Observation(T0)]), store,
                  say=lambda m: None, retry_wait_s=0.001).cycle(state, threading.Event())
    assert end.decision == "failed" and "ConnectionError: redis gone" in end.reason and end.cycle == 3


def test_decided_remembers_the_digest_the_cycle_searched():
    s = begin(AdaptState("tiny", digest="aaa"), Trigger("schedule", {}, T0)).evolve(stage=CANARY)
    assert decided(s, "rollback", "x", T0).digest == "aaa"            # not watching: the memory stays
    # a schedule cycle that searched changed data remembers it: no data cycle for it afterwards
    s = begin(AdaptState("tiny", digest="aaa"), Trigger("schedule", {"digest": "bbb"}, T0)).evolve(stage=CANARY)
    assert decided(s, "promote", "x", T0).digest == "bbb"
    s = begin(AdaptState("tiny", digest="aaa"), Trigger("data", {"old": "aaa", "new": "ccc"}, T0))
    assert decided(s.evolve(stage=CANARY), "promote", "x", T0).digest == "ccc"


# -- a cycle's search config ---------------------------------------------------------------
def test_a_cycles_search_config_carries_the_dataset_warm_start_services_and_a_seed_per_cycle(tmp_path):
    opts = AdaptOptions(model="tiny", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", redis_url="redis://127.0.0.1:1/0",
                        runs_dir=str(tmp_path / "runs"), watch=str(tmp_path / "data"),
                        search_overrides={"pop_size": 3, "max_evaluations": 4, "fidelity": "smoke", "seed": 5,
                                          "backend": "local", "problem_options": {"fd_samples": 32}})
    c = cycle_config(opts, "adapt-tiny-c002-x", 2, "models:/tiny@production")
    assert c.search_id == "adapt-tiny-c002-x" and c.runs_dir == str(tmp_path / "runs") and c.seed == 6
    assert c.seed_from == "models:/tiny@production" and c.redis_url == opts.redis_url
    assert c.tracking_uri == opts.tracking_uri and c.register_top >= 1 and c.pop_size == 3
    assert c.problem_options["dataset"] == str((tmp_path / "data").resolve())
    assert c.problem_options["fd_samples"] == 32 and c.problem_options["fidelity"] == "smoke"
    assert cycle_config(options(tmp_path), "x", 1, None).pop_size == 6               # the small default
    with pytest.raises(UsageError, match="no_tracking"):
        cycle_config(options(tmp_path, search_overrides={"no_tracking": True}), "x", 1, None)
    with pytest.raises(UsageError, match="register_top"):
        cycle_config(options(tmp_path, search_overrides={"register_top": 0}), "x", 1, None)
    with pytest.raises(UsageError, match="pop"):
        cycle_config(options(tmp_path, search_overrides={"pop_size": "many"}), "x", 1, None)
