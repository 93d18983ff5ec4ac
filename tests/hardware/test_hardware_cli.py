"""``evodiff-ray hardware`` lists every chip and the local device, as a table and as JSON."""

import json

from evodiff_ray.cli import main
from evodiff_ray.hardware.chips import CHIPS


def test_table_and_json(capsys):
    assert main(["hardware"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in CHIPS) and "local device" in out and "evaluates on" in out
    assert main(["hardware", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in data["chips"]] == list(CHIPS)
    assert data["local"]["device"] in ("cpu", "cuda", "mps") and data["local"]["cpu_count"] >= 1
