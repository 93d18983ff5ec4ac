"""The serving commands' user mistakes: one line, exit 2, before any Ray starts (real sqlite MLflow, real Redis)."""

import json

import pytest

from serving_models import register_version

from evodiff_ray.cli import main

pytestmark = pytest.mark.redis


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("EVODIFF_REDIS_URL", raising=False)
    runs = tmp_path / "evodiff-runs"
    runs.mkdir()
    uri = f"sqlite:///{runs.resolve() / 'mlflow.db'}"
    register_version(uri, "m", runs / ".models")
    yield runs
    from evodiff_ray.cache.local_redis import LocalRedis

    server = LocalRedis.running(runs / ".redis")
    if server is not None:
        server.stop(force=True)


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert err.startswith("evodiff-ray: error:") and "\n" not in err, err
    for w in words:
        assert w in err, err


def test_serving_commands_explain_mistakes(registry, capsys):
    assert main(["serve", "m"]) == 2               # no production alias: how to set one
    _one_line_error(capsys, "no 'production' alias", "deploy m --version V --promote", "--alias production")
    assert main(["serve", "nope"]) == 2
    _one_line_error(capsys, "no registered model 'nope'")
    assert main(["serve", "stop"]) == 2
    _one_line_error(capsys, "not being served")
    assert main(["deploy", "m", "--version", "7", "--promote"]) == 2
    _one_line_error(capsys, "has no version 7", "it has 1")
    assert main(["deploy", "m", "--version", "1", "--canary", "10", "--alpha", "2"]) == 2
    _one_line_error(capsys, "alpha")
    assert main(["deploy", "m", "--version", "1", "--canary", "10"]) == 2
    _one_line_error(capsys, "not being served", "evodiff-ray serve m")
    assert main(["rollback", "m"]) == 2
    _one_line_error(capsys, "nothing to roll back")
    # --promote works without a server: the alias moves and the event is recorded
    assert main(["deploy", "m", "--version", "1", "--promote", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["production"] == "1"
    assert main(["deployments", "m", "--format", "json"]) == 0
    (event,) = json.loads(capsys.readouterr().out)["events"]
    assert event["kind"] == "set_production" and event["version"] == "1"
    assert main(["rollback", "m"]) == 2                # production with no earlier one
    _one_line_error(capsys, "no earlier production version")
    # --haproxy configures the local Ray serve starts: with a cluster it says what to do instead
    assert main(["serve", "m", "--haproxy", "--address", "127.0.0.1:6379"]) == 2
    _one_line_error(capsys, "--haproxy", "RAY_SERVE_ENABLE_HA_PROXY=1", "drop --haproxy")


def test_haproxy_environment_is_this_serves_own_and_fits_haproxys_socket_limit():
    """HAProxy refuses an admin socket path over 97 characters, and Serve puts its files in a
    56-character folder under the configured one; the stats and metrics ports are free ones."""
    from pathlib import Path

    from evodiff_ray.serving.server import haproxy_environment

    a, b = haproxy_environment(), haproxy_environment()
    assert a["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    sock = Path(a["RAY_SERVE_HAPROXY_SOCKET_PATH"])
    assert len(str(sock.parent / ("x" * 56) / sock.name)) <= 97
    assert sock.parent.is_dir() and a["RAY_SERVE_HAPROXY_SOCKET_PATH"] != b["RAY_SERVE_HAPROXY_SOCKET_PATH"]
    for key in ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT"):
        assert 0 < int(a[key]) < 65536
