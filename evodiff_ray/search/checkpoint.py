"""Checkpoints as a replayable event log: JSON only, nothing pickled, never half-written.

A search's state is the seed plus the sequence of ``ask`` and ``tell`` events with every
evaluated record. Resuming re-creates the strategy from the seed and replays the events into
a fresh ledger, feeding the recorded fitness values back (no re-evaluation); the strategy
(pymoo's NSGA-II, an Optuna study, a random generator) then stands in the exact state it
had, random generator included, and nothing of it was ever pickled. In generational mode a
resumed run therefore gives the same front and history as an uninterrupted one.

On disk (``<run_dir>/checkpoint/``): immutable segment files holding events, and a manifest
listing them. Each file is written to a temporary name and moved into place with
``os.replace``; a segment not yet named by the manifest is ignored, so a crash at any moment
leaves the previous checkpoint intact. Each checkpoint writes only the new events.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evodiff_ray.core.errors import RuntimeFailure
from evodiff_ray.core.front import atomic_write_text

CHECKPOINT_SCHEMA = 1
MANIFEST = "manifest.json"
#: segments beyond this many are merged into one on the next write
MAX_SEGMENTS = 64


@dataclass
class CheckpointState:
    """What a checkpoint holds: identifying metadata and the ordered events."""

    meta: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)


class Checkpoint:
    """The event log of one search in ``directory``.

    Args:
        directory: usually ``<run_dir>/checkpoint``.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._segments: list[str] | None = None
        self._n_events = 0

    def exists(self) -> bool:
        return (self.directory / MANIFEST).is_file()

    def load(self) -> CheckpointState:
        """Read and validate the manifest and its segments.

        Raises:
            RuntimeFailure: a missing or malformed file (the checkpoint is damaged).
        """
        manifest = self._read_json(self.directory / MANIFEST)
        if not isinstance(manifest, dict) or manifest.get("schema") != CHECKPOINT_SCHEMA:
            raise RuntimeFailure(f"checkpoint {self.directory}: unknown manifest schema")
        segments = manifest.get("segments")
        meta = manifest.get("meta")
        if not isinstance(segments, list) or not isinstance(meta, dict):
            raise RuntimeFailure(f"checkpoint {self.directory}: malformed manifest")
        events: list[dict[str, Any]] = []
        for name in segments:
            if not isinstance(name, str) or "/" in name or name.startswith("."):
                raise RuntimeFailure(f"checkpoint {self.directory}: bad segment name {name!r}")
            seg = self._read_json(self.directory / name)
            if not isinstance(seg, dict) or not isinstance(seg.get("events"), list):
                raise RuntimeFailure(f"checkpoint {self.directory}: malformed segment {name}")
            events.extend(seg["events"])
        if len(events) != manifest.get("n_events"):
            raise RuntimeFailure(f"checkpoint {self.directory}: event count does not match the manifest")
        for e in events:
            if not isinstance(e, dict) or e.get("op") not in ("ask", "tell"):
                raise RuntimeFailure(f"checkpoint {self.directory}: malformed event")
        self._segments = list(segments)
        self._n_events = len(events)
        return CheckpointState(meta=meta, events=events)

    def append(self, meta: dict[str, Any], new_events: list[dict[str, Any]], durable: bool = True) -> None:
        """Add ``new_events`` (a new segment, then the manifest naming it), atomically.

        Args:
            meta: identifying metadata (search id, seed, ...), rewritten in the manifest.
            new_events: events since the previous append; may be empty (updates ``meta``).
            durable: fsync the files before renaming them (survives a power loss); without
                it the append is still atomic for a crashed or killed process.
        """
        if self._segments is None:  # first write of this process: continue an existing log
            if self.exists():
                self.load()
            else:
                self._segments, self._n_events = [], 0
        segments = list(self._segments)
        if new_events:
            name = f"seg-{len(segments) + 1:06d}-{self._n_events:09d}.json"
            atomic_write_text(self.directory / name, json.dumps({"events": new_events}, allow_nan=False),
                              durable=durable)
            segments.append(name)
        self._write_manifest(meta, segments, self._n_events + len(new_events), durable=durable)
        self._n_events += len(new_events)
        self._segments = segments
        if len(segments) > MAX_SEGMENTS:
            self.compact(meta)

    def compact(self, meta: dict[str, Any]) -> None:
        """Merge all segments into one (same events), then delete the old files."""
        state = self.load()
        old = list(self._segments or [])
        name = f"seg-000001-compact-{len(state.events):09d}.json"
        atomic_write_text(self.directory / name, json.dumps({"events": state.events}, allow_nan=False))
        self._write_manifest(meta, [name], len(state.events))
        self._segments = [name]
        for n in old:
            if n != name:
                try:
                    os.unlink(self.directory / n)
                except FileNotFoundError:
                    pass

    def _write_manifest(self, meta, segments, n_events, durable: bool = True) -> None:
        atomic_write_text(
            self.directory / MANIFEST,
            json.dumps({"schema": CHECKPOINT_SCHEMA, "meta": meta, "segments": segments,
                        "n_events": n_events}, indent=1, allow_nan=False),
            durable=durable,
        )

    def _read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise RuntimeFailure(f"checkpoint file {path} is missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RuntimeFailure(f"checkpoint file {path} is not valid JSON") from None
