"""When to adapt: pure functions from observed facts to a trigger, or None.

The ``adapt`` controller observes three things every poll and hands them here as an
:class:`Observation`: the digest of the watched dataset, a snapshot of what the deployed
model's production version gathered (:class:`ServedSnapshot`: its ratings and the rolling
FD of its served samples, the numbers ``GET /models`` reports), and the clock. Together with
what the controller remembers of its last cycle (:class:`Memory`) and the thresholds
(:class:`TriggerPolicy`), :func:`next_trigger` says whether a cycle starts now and why.

Nothing here reads a file, Redis or the clock: tests give facts and check the answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

DATA, DEGRADED, SCHEDULE, MANUAL = "data", "degraded", "schedule", "manual"
#: trigger kinds, in the order they are looked at (the first that fires names the cycle)
KINDS = (MANUAL, DATA, DEGRADED, SCHEDULE)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | float | int) -> float:
    """``"90"``, ``"90s"``, ``"15m"``, ``"6h"``, ``"1d"``, ``"1h30m"`` -> seconds (> 0).

    Raises:
        ValueError: not a positive duration, with the accepted forms.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", s):
            seconds = float(s)
        else:
            parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", s)
            if not parts or "".join(n + u for n, u in parts) != s:
                raise ValueError(f"{text!r} is not a duration; use e.g. 90, 90s, 15m, 6h, 1d or 1h30m")
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


@dataclass(frozen=True)
class TriggerPolicy:
    """What starts a cycle (None turns a trigger off).

    Attributes:
        every_s: the schedule: a cycle when this long has passed since the last one began
            (or since adapt started watching).
        fd_above: degradation: the production version's served-sample FD above this.
        rating_below: degradation: production's mean rating below this (1-5 scale).
        min_ratings: ratings needed before the mean rating is judged.
        cooldown_s: after a cycle is decided, degradation waits this long before it can
            fire again (the new deployment needs time to gather fresh evidence).
    """

    every_s: float | None = None
    fd_above: float | None = None
    rating_below: float | None = None
    min_ratings: int = 20
    cooldown_s: float = 0.0

    def __post_init__(self):
        if self.every_s is not None and not self.every_s > 0:
            raise ValueError(f"every_s must be > 0, got {self.every_s}")
        if self.fd_above is not None and not self.fd_above > 0:
            raise ValueError(f"fd_above must be > 0, got {self.fd_above}")
        if self.rating_below is not None and not 1 < self.rating_below <= 5:
            raise ValueError(f"rating_below must be in (1, 5], got {self.rating_below}")
        if self.min_ratings < 1:
            raise ValueError(f"min_ratings must be >= 1, got {self.min_ratings}")
        if self.cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0, got {self.cooldown_s}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ServedSnapshot:
    """What the production version of the served model gathered (see ``serving/metrics.py``).

    Attributes:
        version: the production version.
        deployment: the current deployment id (it changes at every canary start and decision).
        started_at: when that deployment began (epoch seconds).
        canary: whether a canary is in progress (degradation is not judged during one).
        ratings: production's ratings in the current deployment.
        mean_rating: their mean (None: none).
        fd: the rolling FD of production's last served samples (None: not computed yet).
        fd_samples: how many served images that FD is over.
        fd_at: when that FD was computed (epoch seconds).
    """

    version: str
    deployment: str
    started_at: float
    canary: bool = False
    ratings: int = 0
    mean_rating: float | None = None
    fd: float | None = None
    fd_samples: int = 0
    fd_at: float | None = None


@dataclass(frozen=True)
class Observation:
    """One poll's facts.

    Attributes:
        now: the clock (epoch seconds).
        digest: the watched dataset's digest (None: no ``--watch``, or unreadable right now).
        served: the production snapshot (None: the model is not served in this Redis).
        manual: a cycle was asked for by hand (``--cycle-now`` at start).
    """

    now: float
    digest: str | None = None
    served: ServedSnapshot | None = None
    manual: bool = False


@dataclass(frozen=True)
class Memory:
    """What the controller remembers between polls (kept in its state file).

    Attributes:
        digest: the dataset digest the last cycle used (or the first one seen: a start is not a change).
        since: when the schedule's clock last started: the last cycle's trigger, or the first start.
        decided_at: when the last cycle was decided (None: no cycle yet).
    """

    digest: str | None = None
    since: float = 0.0
    decided_at: float | None = None


@dataclass(frozen=True)
class Trigger:
    """Why a cycle starts: its kind (``data``, ``degraded``, ``schedule``, ``manual``) and the facts."""

    kind: str
    details: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "details": dict(self.details), "at": self.at}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Trigger | None":
        if not d:
            return None
        return cls(str(d["kind"]), dict(d.get("details") or {}), float(d.get("at") or 0.0))

    def describe(self) -> str:
        """One line: ``data: digest 1a2b3c4d5e6f -> 9f8e7d6c5b4a`` and the like."""
        d = self.details
        if self.kind == DATA:
            return f"data: digest {str(d.get('old'))[:12]} -> {str(d.get('new'))[:12]}"
        if self.kind == DEGRADED:
            op = ">" if d.get("metric") == "fd" else "<"
            return (f"degraded: version {d.get('version')} {d.get('metric')} {d.get('value'):.4g} {op} "
                    f"{d.get('threshold'):g} over {d.get('samples')} samples")
        if self.kind == SCHEDULE:
            return f"schedule: {d.get('elapsed_s', 0):.0f} s since the last cycle (every {d.get('every_s'):g} s)"
        return self.kind


def data_trigger(obs: Observation, mem: Memory) -> Trigger | None:
    """The dataset changed: its digest differs from the one the last cycle used.

    No digest (not watching) or no remembered one (the first look: a baseline) never fires.
    """
    if obs.digest is None or mem.digest is None or obs.digest == mem.digest:
        return None
    return Trigger(DATA, {"old": mem.digest, "new": obs.digest}, obs.now)


def degradation_trigger(obs: Observation, mem: Memory, policy: TriggerPolicy) -> Trigger | None:
    """Production serves worse than the thresholds, on evidence gathered since the last decision.

    Not judged during a canary, nor within ``cooldown_s`` of the last decision. The FD counts
    only when computed after the current deployment began; ratings are the current
    deployment's own (a decision starts a new deployment, so they are all fresh).
    """
    s = obs.served
    if s is None or s.canary:
        return None
    if mem.decided_at is not None and obs.now - mem.decided_at < policy.cooldown_s:
        return None
    fresh_from = max(s.started_at, mem.decided_at or 0.0)
    if (policy.fd_above is not None and s.fd is not None and s.fd_at is not None and s.fd_at >= fresh_from
            and s.fd > policy.fd_above):
        return Trigger(DEGRADED, {"version": s.version, "metric": "fd", "value": s.fd,
                                  "threshold": policy.fd_above, "samples": s.fd_samples,
                                  "deployment": s.deployment}, obs.now)
    if (policy.rating_below is not None and s.mean_rating is not None and s.ratings >= policy.min_ratings
            and s.mean_rating < policy.rating_below):
        return Trigger(DEGRADED, {"version": s.version, "metric": "rating", "value": s.mean_rating,
                                  "threshold": policy.rating_below, "samples": s.ratings,
                                  "deployment": s.deployment}, obs.now)
    return None


def schedule_trigger(obs: Observation, mem: Memory, policy: TriggerPolicy) -> Trigger | None:
    """``every_s`` has passed since the last cycle began (or since watching began)."""
    if policy.every_s is None or obs.now - mem.since < policy.every_s:
        return None
    return Trigger(SCHEDULE, {"every_s": policy.every_s, "elapsed_s": obs.now - mem.since}, obs.now)


def next_trigger(obs: Observation, mem: Memory, policy: TriggerPolicy) -> Trigger | None:
    """The trigger of a cycle starting now, or None: manual, data, degradation, schedule, in that order.

    Every trigger but ``data`` also carries the watched digest seen now (``details["digest"]``):
    the cycle searches that data, so it is what the cycle remembers, and a change that a
    schedule or a degradation cycle already searched does not fire a data cycle after it.
    """
    trigger = (Trigger(MANUAL, {}, obs.now) if obs.manual else
               data_trigger(obs, mem) or degradation_trigger(obs, mem, policy) or schedule_trigger(obs, mem, policy))
    if trigger is not None and trigger.kind != DATA and obs.digest is not None:
        trigger = Trigger(trigger.kind, {**trigger.details, "digest": obs.digest}, trigger.at)
    return trigger


def searched_digest(trigger: "Trigger | None") -> str | None:
    """The dataset digest a cycle started by ``trigger`` searched (None: not watching)."""
    if trigger is None:
        return None
    return trigger.details.get("new") if trigger.kind == DATA else trigger.details.get("digest")


__all__ = ["DATA", "DEGRADED", "KINDS", "MANUAL", "Memory", "Observation", "SCHEDULE", "ServedSnapshot",
           "Trigger", "TriggerPolicy", "data_trigger", "degradation_trigger", "next_trigger", "parse_duration",
           "schedule_trigger", "searched_digest"]
