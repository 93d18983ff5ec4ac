"""The ``adapt`` controller's state: one small JSON file, written atomically at every stage.

A cycle moves through ``triggered -> searching -> registered -> canary -> decided``; the file
says which cycle and stage the controller is in, and what each finished stage produced (the
search id, the registered version, the canary's deployment, the decision). A controller that
crashed or was stopped starts again from there (see :mod:`evodiff_ray.adapt.cycle`). Between
cycles the stage is ``decided`` (``idle`` before the first).

The file is ``<state_dir>/state.json``, written with :func:`~evodiff_ray.core.io.atomic_write_text`
(a reader sees the old state or the new one). :class:`StateLock` keeps a second controller
of the same model and state dir from running beside the first.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.io import atomic_write_text

IDLE, TRIGGERED, SEARCHING, REGISTERED, CANARY, DECIDED = (
    "idle", "triggered", "searching", "registered", "canary", "decided")
#: a cycle's stages, in order
STAGES = (TRIGGERED, SEARCHING, REGISTERED, CANARY, DECIDED)
STATE_FILE = "state.json"
LOCK_FILE = "adapt.lock"
#: past cycles kept in the state file (MLflow keeps them all)
HISTORY_KEPT = 50
SCHEMA = 1


@dataclass(frozen=True)
class AdaptState:
    """Where the controller of one model stands.

    Attributes:
        model: the registered model it adapts.
        cycle: the current (or last) cycle's number, from 1; 0 before the first.
        stage: ``idle``, or one of :data:`STAGES`.
        trigger: the current cycle's trigger (``Trigger.to_dict()``).
        search_id: the current cycle's search.
        seed_from: the warm-start source that search was given.
        version: the version of ``model`` the cycle registered (its front's knee).
        deployment: the canary's deployment id.
        decision: ``promote``, ``rollback`` or ``none`` (nothing to deploy).
        reason: why, as the serving controller (or this one) said.
        run_id: the cycle's MLflow run.
        digest: the dataset digest the last cycle used (or the baseline first seen).
        since: when the schedule's clock last started (epoch seconds).
        decided_at: when the last cycle was decided.
        last_search_id: the last finished cycle's search (the next cycle's warm start).
        updated_at: when this state was written.
        history: the last finished cycles, oldest first (a summary each).
    """

    model: str
    cycle: int = 0
    stage: str = IDLE
    trigger: dict[str, Any] | None = None
    search_id: str | None = None
    seed_from: str | None = None
    version: str | None = None
    deployment: str | None = None
    decision: str | None = None
    reason: str | None = None
    run_id: str | None = None
    digest: str | None = None
    since: float = 0.0
    decided_at: float | None = None
    last_search_id: str | None = None
    updated_at: float = 0.0
    history: tuple[dict[str, Any], ...] = ()

    @property
    def in_cycle(self) -> bool:
        """Whether a cycle was begun and not decided (a restart resumes it)."""
        return self.stage not in (IDLE, DECIDED)

    def summary(self) -> dict[str, Any]:
        """This cycle as one history entry."""
        return {"cycle": self.cycle, "trigger": self.trigger, "search_id": self.search_id,
                "version": self.version, "deployment": self.deployment, "decision": self.decision,
                "reason": self.reason, "run_id": self.run_id, "decided_at": self.decided_at}

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA, **asdict(self)}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> "AdaptState":
        d = json.loads(raw)
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["history"] = tuple(known.get("history") or ())
        state = cls(**known)
        if state.stage not in (IDLE, *STAGES):
            raise ValueError(f"unknown stage {state.stage!r}")
        return state

    def evolve(self, **changes: Any) -> "AdaptState":
        return replace(self, **changes)


class StateStore:
    """The state file of one model's controller (``<state_dir>/state.json``).

    Args:
        state_dir: the controller's folder (created when missing).
        model: the model it adapts (a state file of another model is refused).
    """

    def __init__(self, state_dir: str | Path, model: str):
        self.dir = Path(state_dir)
        self.model = model
        self.path = self.dir / STATE_FILE

    def load(self) -> AdaptState:
        """The stored state, or a fresh one.

        Raises:
            UsageError: the file is unreadable, or belongs to another model.
        """
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return AdaptState(self.model)
        try:
            state = AdaptState.from_json(raw)
        except (ValueError, TypeError, KeyError) as e:
            raise UsageError(f"{self.path}: unreadable adapt state ({e}); restore it, or move it away to "
                             "start afresh") from None
        if state.model != self.model:
            raise UsageError(f"{self.path} is the state of model {state.model!r}, not {self.model!r}; "
                             "give each model its own --state-dir")
        return state

    def save(self, state: AdaptState, now: float) -> AdaptState:
        """Write ``state`` atomically (fsynced); returns it with ``updated_at``."""
        state = state.evolve(updated_at=now)
        atomic_write_text(self.path, state.to_json() + "\n")
        return state


class StateLock:
    """An exclusive lock on a state dir (``fcntl.flock``; the OS releases it when the process dies).

    Raises (on :meth:`acquire`):
        UsageError: another controller holds it.
    """

    def __init__(self, state_dir: str | Path):
        self.path = Path(state_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "StateLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise UsageError(f"another adapt controller (pid {holder}) runs on {self.path.parent}; stop it "
                             "first, or give this one another --state-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "StateLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["AdaptState", "CANARY", "DECIDED", "IDLE", "REGISTERED", "SEARCHING", "STAGES", "StateLock",
           "StateStore", "TRIGGERED"]
