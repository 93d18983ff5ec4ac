"""The adapt triggers are pure functions of observed facts: dataset digest, production's evidence, clock."""

import pytest

from evodiff_ray.adapt.triggers import (DATA, DEGRADED, MANUAL, SCHEDULE, Memory, Observation, ServedSnapshot,
                                        Trigger, TriggerPolicy, data_trigger, degradation_trigger, next_trigger,
                                        parse_duration, schedule_trigger, searched_digest)

T0 = 1_000_000.0


def served(**kw):
    base = dict(version="1", deployment="d1", started_at=T0, canary=False, ratings=0, mean_rating=None, fd=None,
                fd_samples=0, fd_at=None)
    return ServedSnapshot(**{**base, **kw})


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("15m", 900), ("6h", 21600), ("1d", 86400),
                                          ("1h30m", 5400), ("0.5s", 0.5), (120, 120), (" 2H ", 7200)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5m", "6 hours", "h", "5x", "1h 30m", "nan"])
def test_bad_durations_say_the_forms(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_a_new_digest_fires_the_data_trigger_but_the_first_look_is_a_baseline():
    assert data_trigger(Observation(T0, digest="a"), Memory(digest=None)) is None        # baseline
    assert data_trigger(Observation(T0, digest="a"), Memory(digest="a")) is None
    assert data_trigger(Observation(T0, digest=None), Memory(digest="a")) is None         # not watching
    t = data_trigger(Observation(T0, digest="b"), Memory(digest="a"))
    assert t == Trigger(DATA, {"old": "a", "new": "b"}, T0)
    assert t.describe() == "data: digest a -> b"


def test_other_triggers_carry_the_digest_seen_so_the_cycle_remembers_what_it_searched():
    policy = TriggerPolicy(every_s=60.0)
    t = next_trigger(Observation(T0 + 120, digest="a"), Memory(digest="a", since=T0), policy)
    assert t.kind == SCHEDULE and t.details["digest"] == "a" and searched_digest(t) == "a"
    m = next_trigger(Observation(T0, digest="b", manual=True), Memory(digest="a"), policy)
    assert m.kind == MANUAL and searched_digest(m) == "b"
    d = next_trigger(Observation(T0, digest="b"), Memory(digest="a"), policy)
    assert d.kind == DATA and searched_digest(d) == "b" and "digest" not in d.details
    assert searched_digest(next_trigger(Observation(T0 + 120), Memory(since=T0), policy)) is None


def test_fd_above_the_threshold_fires_only_on_an_fd_computed_since_the_deployment_and_decision():
    policy = TriggerPolicy(fd_above=200.0)
    mem = Memory(decided_at=T0 + 10)
    bad = served(fd=300.0, fd_samples=512, fd_at=T0 + 20)
    t = degradation_trigger(Observation(T0 + 30, served=bad), mem, policy)
    assert t.kind == DEGRADED and t.details["metric"] == "fd" and t.details["value"] == 300.0
    assert t.details["samples"] == 512 and t.details["version"] == "1"
    assert "fd 300 > 200" in t.describe()
    # an FD from before the last decision is stale evidence
    stale = served(fd=300.0, fd_samples=512, fd_at=T0 + 5)
    assert degradation_trigger(Observation(T0 + 30, served=stale), mem, policy) is None
    # ... or from before the current deployment began
    old = served(fd=300.0, fd_at=T0 - 1)
    assert degradation_trigger(Observation(T0 + 30, served=old), Memory(), policy) is None
    assert degradation_trigger(Observation(T0 + 30, served=served(fd=150.0, fd_at=T0 + 20)), mem, policy) is None


def test_ratings_below_the_threshold_fire_once_there_are_enough():
    policy = TriggerPolicy(rating_below=3.0, min_ratings=10)
    few = served(ratings=9, mean_rating=1.0)
    assert degradation_trigger(Observation(T0, served=few), Memory(), policy) is None
    t = degradation_trigger(Observation(T0, served=served(ratings=10, mean_rating=2.2)), Memory(), policy)
    assert t.details["metric"] == "rating" and t.details["value"] == 2.2 and t.details["samples"] == 10
    assert degradation_trigger(Observation(T0, served=served(ratings=50, mean_rating=3.5)), Memory(), policy) is None


def test_degradation_waits_during_a_canary_and_the_cooldown_and_without_a_served_model():
    policy = TriggerPolicy(rating_below=3.0, min_ratings=1, cooldown_s=60)
    bad = served(ratings=5, mean_rating=1.0)
    assert degradation_trigger(Observation(T0 + 30, served=bad), Memory(decided_at=T0), policy) is None
    assert degradation_trigger(Observation(T0 + 61, served=bad), Memory(decided_at=T0), policy) is not None
    during = served(ratings=5, mean_rating=1.0, canary=True)
    assert degradation_trigger(Observation(T0 + 61, served=during), Memory(decided_at=T0), policy) is None
    assert degradation_trigger(Observation(T0 + 61, served=None), Memory(), policy) is None
    # no thresholds: degradation is off
    assert degradation_trigger(Observation(T0, served=bad), Memory(), TriggerPolicy()) is None


def test_the_schedule_counts_from_the_last_cycle():
    policy = TriggerPolicy(every_s=3600)
    assert schedule_trigger(Observation(T0 + 3599), Memory(since=T0), policy) is None
    t = schedule_trigger(Observation(T0 + 3600), Memory(since=T0), policy)
    assert t.kind == SCHEDULE and t.details == {"every_s": 3600, "elapsed_s": 3600}
    assert schedule_trigger(Observation(T0 + 10 ** 6), Memory(since=T0), TriggerPolicy()) is None


def test_the_first_trigger_in_order_names_the_cycle():
    policy = TriggerPolicy(every_s=10, rating_below=3.0, min_ratings=1)
    bad = served(ratings=3, mean_rating=1.0)
    mem = Memory(digest="a", since=T0)
    obs = Observation(T0 + 100, digest="b", served=bad)
    assert next_trigger(obs, mem, policy).kind == DATA
    assert next_trigger(Observation(T0 + 100, digest="a", served=bad), mem, policy).kind == DEGRADED
    assert next_trigger(Observation(T0 + 100, digest="a"), mem, policy).kind == SCHEDULE
    assert next_trigger(Observation(T0 + 5, digest="a"), mem, policy) is None
    assert next_trigger(Observation(T0 + 5, manual=True), mem, policy).kind == MANUAL


@pytest.mark.parametrize("kw", [dict(every_s=0), dict(fd_above=-1), dict(rating_below=0.5), dict(rating_below=6),
                                dict(min_ratings=0), dict(cooldown_s=-1)])
def test_bad_thresholds_are_refused(kw):
    with pytest.raises(ValueError):
        TriggerPolicy(**kw)


def test_triggers_round_trip_as_json_data():
    t = Trigger(DEGRADED, {"metric": "rating", "value": 2.0, "threshold": 3.0, "samples": 9, "version": "2"}, T0)
    assert Trigger.from_dict(t.to_dict()) == t and Trigger.from_dict(None) is None
