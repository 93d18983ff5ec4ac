"""The fitness cache through ``search()`` and the CLI, against real redis-servers."""

import json

import pytest

from evodiff_ray.cli import main
from evodiff_ray.config import load_config
from evodiff_ray.search import search

pytestmark = pytest.mark.redis


def cfg(runs_dir, search_id, **kw):
    base = {"problem": "zdt1", "pop_size": 10, "generations": 4, "seed": 3, "backend": "local",
            "runs_dir": str(runs_dir), "search_id": search_id, "no_tracking": True}
    base.update(kw)
    return load_config(overrides=base)


def _servers_on(data_dir) -> list[str]:
    """redis-server processes whose --dir is ``data_dir`` (Linux /proc)."""
    from pathlib import Path

    found = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmd.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"redis-server") and str(data_dir).encode() in args:
            found.append(cmd.parent.name)
    return found


def test_rerun_with_the_same_seed_is_all_hits_and_gives_the_same_front(runs_dir):
    a = search(cfg(runs_dir, "first"))           # embedded redis-server, started and stopped here
    assert (runs_dir / ".redis" / "appendonlydir").is_dir()
    assert not (runs_dir / ".redis" / "server.json").exists()
    assert _servers_on((runs_dir / ".redis").resolve()) == []      # stopped when the search ended
    b = search(cfg(runs_dir, "second"))          # a fresh server process on the same AOF
    assert a.front["cache"]["misses"] == a.front["evaluations"] == 10 + 3 * 10
    assert b.front["cache"] == {"hits": b.front["evaluations"], "misses": 0, "waited": 0}
    assert [p["key"] for p in a.points] == [p["key"] for p in b.points]
    assert [p["objectives"] for p in a.points] == [p["objectives"] for p in b.points]


def test_front_and_searches_through_redis(redis_server, runs_dir, capsys, tmp_path):
    search(cfg(runs_dir, "shared", redis_url=redis_server.url))
    elsewhere = tmp_path / "other-machine"       # no run dir there: the front comes from Redis
    assert main(["front", "shared", "--redis-url", redis_server.url, "--runs-dir", str(elsewhere),
                 "--format", "json"]) == 0
    front = json.loads(capsys.readouterr().out)
    assert front["search_id"] == "shared" and front["status"] == "finished" and front["points"]
    assert main(["searches", "--redis-url", redis_server.url, "--runs-dir", str(elsewhere), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["search_id"] for r in listed] == ["shared"] and listed[0]["status"] == "finished"


def test_unreachable_redis_url_runs_uncached(runs_dir, free_port, caplog):
    url = f"redis://127.0.0.1:{free_port()}/0"   # nothing listens there
    r = search(cfg(runs_dir, "noredis", redis_url=url, generations=2))
    assert r.front["cache"]["misses"] == r.front["evaluations"] == 20
    assert any("unreachable" in rec.getMessage() for rec in caplog.records)
    assert (runs_dir / "noredis" / "front.json").exists()


def test_missing_redis_server_is_a_usage_error_naming_no_cache(runs_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EVODIFF_REDIS_SERVER", str(tmp_path / "missing-redis-server"))
    monkeypatch.delenv("EVODIFF_REDIS_URL", raising=False)
    argv = ["search", "--problem", "zdt1", "--pop", "6", "--generations", "1", "--backend", "local",
            "--runs-dir", str(runs_dir), "--no-tracking", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install redis-server" in err and "--no-cache" in err
    assert main(argv + ["--no-cache"]) == 0
