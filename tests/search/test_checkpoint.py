"""The checkpoint event log: round trip, crash safety, damage detection, compaction."""

import json

import pytest

from evodiff_ray.core.errors import RuntimeFailure
from evodiff_ray.search import checkpoint as ckpt
from evodiff_ray.search.checkpoint import Checkpoint

META = {"search_id": "s", "seed": 1}


def ask(i):
    return {"op": "ask", "first": i, "keys": [str(i)]}


def test_append_and_load_round_trip(tmp_path):
    c = Checkpoint(tmp_path)
    assert not c.exists()
    c.append(META, [ask(0)])
    c.append(META, [ask(1), ask(2)])
    state = Checkpoint(tmp_path).load()
    assert state.meta == META and [e["first"] for e in state.events] == [0, 1, 2]
    # a new process continues the same log
    c2 = Checkpoint(tmp_path)
    c2.append(META, [ask(3)])
    assert [e["first"] for e in Checkpoint(tmp_path).load().events] == [0, 1, 2, 3]


def test_segment_written_before_a_crash_is_ignored(tmp_path):
    c = Checkpoint(tmp_path)
    c.append(META, [ask(0)])
    # a crash after the segment but before the manifest: the stray segment is not part of the state
    (tmp_path / "seg-000002-000000001.json").write_text(json.dumps({"events": [ask(1)]}))
    (tmp_path / ".manifest.json.123.tmp").write_text("{half")
    assert [e["first"] for e in Checkpoint(tmp_path).load().events] == [0]


@pytest.mark.parametrize("damage", ["manifest", "segment", "count"])
def test_damaged_checkpoints_are_reported(tmp_path, damage):
    c = Checkpoint(tmp_path)
    c.append(META, [ask(0)])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    if damage == "manifest":
        (tmp_path / "manifest.json").write_text("{not json")
    elif damage == "segment":
        (tmp_path / manifest["segments"][0]).unlink()
    else:
        manifest["n_events"] = 5
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RuntimeFailure, match="checkpoint"):
        Checkpoint(tmp_path).load()


def test_compaction_keeps_every_event(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "MAX_SEGMENTS", 3)
    c = Checkpoint(tmp_path)
    for i in range(7):
        c.append(META, [ask(i)])
    assert [e["first"] for e in Checkpoint(tmp_path).load().events] == list(range(7))
    assert len(list(tmp_path.glob("seg-*.json"))) <= 4
