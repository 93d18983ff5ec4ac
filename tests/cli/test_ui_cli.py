"""``evodiff-ray ui``: the MLflow UI on the project's store, and the direct link to a search's run."""

import json
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import EVODIFF_RAY
from evodiff_ray.cli import main


@pytest.mark.slow
def test_ui_serves_the_store_and_links_the_search_run(runs_dir, free_port, cli_env, capsys):
    assert main(["search", "--problem", "zdt1", "--pop", "4", "--generations", "1", "--backend", "local",
                 "--runs-dir", str(runs_dir), "--no-cache", "--search-id", "u1", "--quiet"]) == 0
    saved = json.loads((runs_dir / "u1" / "mlflow.json").read_text())
    link = f"#/experiments/{saved['experiment_id']}/runs/{saved['run_id']}"
    assert f"then open http://127.0.0.1:5000/{link}" in capsys.readouterr().out   # the search's summary says so
    port = free_port()
    proc = subprocess.Popen([EVODIFF_RAY, "ui", "--runs-dir", str(runs_dir), "--port", str(port)],  # latest search
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=cli_env,
                            cwd=runs_dir)
    try:
        assert proc.stdout.readline().startswith("MLflow UI on sqlite:///")
        assert proc.stdout.readline().strip() == f"search u1: http://127.0.0.1:{port}/{link}"
        deadline, run = time.monotonic() + 90, None
        while time.monotonic() < deadline and run is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/get?run_id="
                                            f"{saved['run_id']}", timeout=5) as r:
                    run = json.loads(r.read())["run"]
            except OSError:
                time.sleep(1)
        assert run is not None, "the UI did not answer"
        assert run["info"]["run_name"] == "u1" and run["info"]["experiment_id"] == saved["experiment_id"]
    finally:
        proc.send_signal(signal.SIGTERM)           # a kill stops it as Ctrl-C does
        assert proc.wait(timeout=60) == 0
    time.sleep(1)
    with pytest.raises(OSError):                   # and no server is left behind on the port
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)


def test_ui_and_show_say_what_is_missing(runs_dir, capsys):
    assert main(["ui", "--runs-dir", str(runs_dir)]) == 2
    assert "no search tracked in MLflow" in capsys.readouterr().err
    assert main(["search", "--problem", "zdt1", "--pop", "4", "--generations", "1", "--backend", "local",
                 "--runs-dir", str(runs_dir), "--no-cache", "--no-tracking", "--search-id", "u2", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["ui", "u2", "--runs-dir", str(runs_dir)]) == 2
    assert "has no MLflow run" in capsys.readouterr().err
    assert main(["show", "u2", "--runs-dir", str(runs_dir)]) == 2            # zdt1 draws no samples
    assert "front.png does not exist" in capsys.readouterr().err
    assert main(["show", "nope", "--runs-dir", str(runs_dir)]) == 2
    assert "no run dir" in capsys.readouterr().err
    assert main(["show", "u2", "a*", "--runs-dir", str(runs_dir)]) == 2
    assert "is not a key" in capsys.readouterr().err
