"""``evodiff-ray genome``: sample, validate and describe, through the real entry point."""

import json
import subprocess
import sys

from evodiff_ray.cli import main
from evodiff_ray.genome import Genome


def test_sample_prints_valid_genomes(capsys):
    assert main(["genome", "sample", "--n", "5", "--seed", "0"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 5
    keys = {Genome.from_dict(d).key() for d in data}
    assert len(keys) == 5


def test_sample_is_seeded(capsys):
    main(["genome", "sample", "--n", "3", "--seed", "4", "--format", "jsonl"])
    a = capsys.readouterr().out
    main(["genome", "sample", "--n", "3", "--seed", "4", "--format", "jsonl"])
    assert capsys.readouterr().out == a and len(a.splitlines()) == 3


def test_validate_valid_and_invalid(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(Genome.load("evodiff_ray/assets/baseline_unet.json").to_json())
    assert main(["genome", "validate", str(good)]) == 0
    bad = tmp_path / "bad.json"
    d = json.loads(good.read_text())
    d["layers"][0]["kind"] = "transformer"
    bad.write_text(json.dumps(d))
    assert main(["genome", "validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "layers[0].kind" in err and "use one of" in err


def test_module_entry_point_exit_code_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"parameters": {"base_channels": 32}, "layers": []}')
    r = subprocess.run([sys.executable, "-m", "evodiff_ray", "genome", "validate", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "channel_mults" in r.stderr
    r = subprocess.run([sys.executable, "-m", "evodiff_ray", "genome", "sample", "--n", "-1"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "positive" in r.stderr and "Traceback" not in r.stderr


def test_describe(capsys):
    assert main(["genome", "describe", "evodiff_ray/assets/baseline_unet.json"]) == 0
    out = capsys.readouterr().out
    assert "params         341,025" in out and "layers[3]" in out
    assert main(["genome", "describe", "evodiff_ray/assets/baseline_unet.json", "--resolution", "9"]) == 2
