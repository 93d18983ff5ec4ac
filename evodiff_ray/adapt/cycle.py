"""One adaptation cycle as a small state machine, its side effects injected.

::

    idle/decided --begin(trigger)--> triggered --start--> searching --search, register-->
    registered --start canary--> canary --wait for the decision--> decided

:func:`advance` moves a cycle one stage on: it asks the :class:`CycleEffects` for the stage's
side effect (start the MLflow run, run or resume the search, register the knee as a version
of the model, start its canary, wait for the serving controller's decision), records the
new state in MLflow and writes it to the state file *before* the next side effect begins.
So a controller that dies anywhere resumes at the stage it was in: a search that was running
is resumed from its checkpoint, a canary that was started is waited for and never started
twice (the effects are idempotent at their own stage; see :mod:`evodiff_ray.adapt.effects`).

Everything here is pure but for the injected effects and store: tests drive it with fakes.
"""

from __future__ import annotations

import re
import time
from typing import Any, Protocol

from evodiff_ray.adapt.state import CANARY, DECIDED, HISTORY_KEPT, REGISTERED, SEARCHING, TRIGGERED, AdaptState
from evodiff_ray.adapt.triggers import Trigger, searched_digest

NONE, FAILED = "none", "failed"
#: the warm-start source names ``adapt --seed-from`` knows besides a literal source
PRODUCTION_SOURCE, LAST_SOURCE = "production", "last"


class CycleEffects(Protocol):
    """The side effects of a cycle. Each must be safe to repeat at its own stage (a resume repeats
    the stage that was running)."""

    def now(self) -> float:
        """The clock (epoch seconds)."""

    def start(self, state: AdaptState) -> dict[str, Any]:
        """Open the cycle's record and fix its warm start: ``{"run_id": ..., "seed_from": ...}``."""

    def search(self, state: AdaptState) -> None:
        """Run ``state.search_id`` (resume it when its run dir holds a checkpoint) to its end."""

    def register(self, state: AdaptState) -> str | None:
        """The knee of the finished search as a version of ``state.model`` (None: nothing registered)."""

    def start_canary(self, state: AdaptState) -> str:
        """Put ``state.version`` beside production as a canary (or find the one already started);
        returns its deployment id."""

    def wait_decision(self, state: AdaptState) -> tuple[str, str]:
        """Wait (bounded) for the canary's decision: ``(promote | rollback, reason)``."""

    def record(self, state: AdaptState) -> None:
        """Mirror ``state`` into the cycle's MLflow run (tags; ended once decided)."""


class Store(Protocol):
    def save(self, state: AdaptState, now: float) -> AdaptState: ...


def cycle_search_id(model: str, cycle: int, at: float) -> str:
    """The search id of a cycle: ``adapt-<model>-c<cycle>-<UTC time>`` (a valid search id)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-._")[:60] or "model"
    return f"adapt-{slug}-c{cycle:03d}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(at))}"


def seed_sources(model: str, last_search_id: str | None,
                 wanted: tuple[str, ...] = (PRODUCTION_SOURCE, LAST_SOURCE)) -> list[str]:
    """The warm-start sources of a cycle, in order, without repeats (pure).

    ``production`` is ``models:/<model>@production``; ``last`` is the last cycle's search
    (skipped before the first cycle); anything else is a ``--seed-from`` source as written.
    """
    out: list[str] = []
    for name in wanted:
        source = (f"models:/{model}@production" if name == PRODUCTION_SOURCE
                  else last_search_id if name == LAST_SOURCE else name)
        if source and source not in out:
            out.append(source)
    return out


def begin(state: AdaptState, trigger: Trigger) -> AdaptState:
    """A new cycle for ``trigger`` (pure): numbered, its search id fixed, stage ``triggered``.

    Raises:
        ValueError: a cycle is still in progress (resume it instead).
    """
    if state.in_cycle:
        raise ValueError(f"cycle {state.cycle} is still at stage {state.stage!r}; resume it first")
    cycle = state.cycle + 1
    return state.evolve(cycle=cycle, stage=TRIGGERED, trigger=trigger.to_dict(),
                        search_id=cycle_search_id(state.model, cycle, trigger.at), seed_from=None, version=None,
                        deployment=None, decision=None, reason=None, run_id=None, since=trigger.at)


def decided(state: AdaptState, decision: str, reason: str, now: float) -> AdaptState:
    """The cycle closed with ``decision`` (pure): memory for the next triggers, history updated.

    The dataset digest the cycle's trigger saw becomes the one remembered (so the same change
    does not fire twice, whichever trigger started the cycle that searched it), and a finished
    search becomes the next cycle's warm start.
    """
    digest = searched_digest(Trigger.from_dict(state.trigger))
    searched = state.stage in (REGISTERED, CANARY) or (state.stage == SEARCHING and decision == NONE)
    done = state.evolve(stage=DECIDED, decision=decision, reason=reason, decided_at=now,
                        digest=digest or state.digest,
                        last_search_id=state.search_id if searched else state.last_search_id)
    return done.evolve(history=(*state.history, done.summary())[-HISTORY_KEPT:])


def failed(state: AdaptState, error: BaseException, now: float) -> AdaptState:
    """The cycle gave up at its stage (pure): decided as ``failed`` with the error in one line."""
    text = str(error).splitlines()[0][:300] if str(error) else ""
    return decided(state, FAILED, f"failed at stage {state.stage}: {type(error).__name__}: {text}", now)


class Stopped(Exception):
    """An effect gave up waiting because the controller was told to stop; the state stays at
    its stage, so the next start resumes there."""


def advance(state: AdaptState, fx: CycleEffects, store: Store) -> AdaptState:
    """Move the cycle one stage on (see the module docstring); returns the saved state.

    Raises:
        ValueError: no cycle in progress.
        Exception: whatever the stage's effect raised (the state stays at that stage).
    """
    if state.stage == TRIGGERED:
        started = fx.start(state)
        new = state.evolve(stage=SEARCHING, run_id=started.get("run_id") or state.run_id,
                           seed_from=started.get("seed_from"))
    elif state.stage == SEARCHING:
        fx.search(state)
        version = fx.register(state)
        if version is None:
            new = decided(state, NONE, "the search registered no model (an empty or infeasible front)", fx.now())
        else:
            new = state.evolve(stage=REGISTERED, version=str(version))
    elif state.stage == REGISTERED:
        new = state.evolve(stage=CANARY, deployment=fx.start_canary(state))
    elif state.stage == CANARY:
        decision, reason = fx.wait_decision(state)
        new = decided(state, decision, reason, fx.now())
    else:
        raise ValueError(f"no cycle in progress (stage {state.stage!r})")
    fx.record(new)            # before the save: a crash between them repeats an idempotent record
    return store.save(new, fx.now())


def run_cycle(state: AdaptState, fx: CycleEffects, store: Store, on_stage=lambda s: None) -> AdaptState:
    """Advance until the cycle is decided; ``on_stage`` sees every saved state."""
    while state.in_cycle:
        state = advance(state, fx, store)
        on_stage(state)
    return state


__all__ = ["CycleEffects", "FAILED", "LAST_SOURCE", "NONE", "PRODUCTION_SOURCE", "advance", "begin",
           "cycle_search_id", "decided", "failed", "run_cycle", "seed_sources"]
