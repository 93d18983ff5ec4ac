"""Malformed Redis, MLflow and Ray addresses: one line on stderr and exit 2 from every command.

Every value below reaches the real entry point (``evodiff_ray.cli.main``); none may end in a
traceback from redis-py, MLflow or Ray, however it is wrong.
"""

import pytest

from evodiff_ray.cli import main
from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.urls import check_ray_address, check_redis_url, check_tracking_uri

# wrong in every way we could think of: scheme, host, port, db, query, spaces, unicode, garbage
BAD_REDIS = [
    "", " ", "localhost:6379", "http://h:6379", "redis://", "redis://:6379", "redis:///0", "redis://h:abc",
    "redis://h:0", "redis://h:65536", "redis://h:-1", "redis://h:6379/x", "redis://h:6379/0?db=one",
    "redis://h:6379?colour=red", "redis://lo cal:6379", " redis://h:6379", "redis://hôst:6379",
    "redis://[::1:6379", "unix://", "garbage", "💥", "redis://h:6379/0\n",
]
BAD_TRACKING = [
    "", " ", "./mlruns", "mlruns", "ftp://h", "http://", "http://h:abc", "http://h:70000", "http://ho st:5000",
    "http://hôst:5000", "sqlite://", "sqlite:/", "garbage", "💥", "::", "http://[::1:5000",
]
BAD_ADDRESS = [
    "", " ", "h", "h:", "h:abc", "h:0", "h:70000", "http://h:8265", "ray://", "ray://h:x", "ray://h:10001/x",
    "h h:6379", "hôst:6379", "garbage", "redis://h:6379", ":6379", "💥", "[::1:6379",
]

SEARCH = ["search", "--problem", "zdt1", "--backend", "local", "--pop", "4", "--generations", "1"]

CASES = (
    [(SEARCH + ["--redis-url", v], "--redis-url") for v in BAD_REDIS]
    + [(SEARCH + ["--tracking-uri", v], "--tracking-uri") for v in BAD_TRACKING]
    + [(SEARCH + ["--address", v], "--address") for v in BAD_ADDRESS]
    + [(["front", "--redis-url", v], "--redis-url") for v in BAD_REDIS[::3]]
    + [(["front", "s1", "--redis-url", v], "--redis-url") for v in BAD_REDIS[1::3]]
    + [(["searches", "--redis-url", v], "--redis-url") for v in BAD_REDIS[2::3]]
    + [(["compare", "a", "b", "--redis-url", v], "--redis-url") for v in BAD_REDIS[::4]]
    + [(["promote", "s1", "--redis-url", v], "--redis-url") for v in BAD_REDIS[1::4]]
    + [(["promote", "s1", "--tracking-uri", v], "--tracking-uri") for v in BAD_TRACKING[::2]]
)


def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    return code, capsys.readouterr()


@pytest.mark.parametrize("argv, flag", CASES, ids=[f"{a[0]}{a[-2]}={a[-1]!r}" for a, _ in CASES])
def test_malformed_address_is_one_line_and_exit_2(runs_dir, capsys, argv, flag):
    code, out = run([*argv, "--runs-dir", str(runs_dir)], capsys)
    assert code == 2
    assert out.err.startswith(f"evodiff-ray: error: {flag} ")
    assert len(out.err.splitlines()) == 1 and "Traceback" not in out.err
    assert not any(runs_dir.iterdir())   # rejected before anything ran


@pytest.mark.parametrize("argv, variable, value", [
    (SEARCH, "EVODIFF_REDIS_URL", "localhost:6379"),
    (SEARCH, "EVODIFF_REDIS_URL", "redis://h:99999"),
    (SEARCH, "MLFLOW_TRACKING_URI", "mlruns"),
    (SEARCH + ["--no-cache"], "MLFLOW_TRACKING_URI", "http://ho st:5000"),
    (["front"], "EVODIFF_REDIS_URL", "redis://h:port"),
    (["searches"], "EVODIFF_REDIS_URL", "garbage"),
])
def test_malformed_address_from_the_environment_names_the_variable(runs_dir, capsys, monkeypatch,
                                                                   argv, variable, value):
    monkeypatch.setenv(variable, value)
    code, out = run([*argv, "--runs-dir", str(runs_dir)], capsys)
    assert code == 2
    assert out.err.startswith(f"evodiff-ray: error: {variable} {value!r} is not ")
    assert len(out.err.splitlines()) == 1 and "Traceback" not in out.err


def test_an_unused_service_is_not_checked(runs_dir, capsys, monkeypatch):
    """With --no-cache and --no-tracking, the environment's Redis and MLflow settings are not read."""
    monkeypatch.setenv("EVODIFF_REDIS_URL", "garbage")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "garbage")
    code, out = run([*SEARCH, "--no-cache", "--no-tracking", "--quiet", "--runs-dir", str(runs_dir)], capsys)
    assert code == 0, out.err


@pytest.mark.parametrize("check, good", [
    (check_redis_url, ["redis://127.0.0.1:6379/0", "redis://:hunter2@10.0.0.5:6379/1", "redis://cache.internal",
                       "rediss://user:pw@cache.example.com:6380/0?ssl_cert_reqs=none", "redis://[::1]:6379",
                       "unix:///run/redis.sock?db=2", "redis://h:6379/0?socket_timeout=1.5&retry_on_timeout=yes"]),
    (check_tracking_uri, ["sqlite:///mlflow.db", "sqlite:////tmp/runs dir/mlflow.db", "http://127.0.0.1:5000",
                          "https://mlflow.example.com/", "databricks", "file:///tmp/mlruns",
                          "postgresql+psycopg2://user:pw@db:5432/mlflow"]),
    (check_ray_address, ["auto", "local", "127.0.0.1:6379", "head.cluster:6379", "ray://10.0.0.5:10001",
                         "ray://head", "[::1]:6379"]),
])
def test_well_formed_addresses_pass(check, good):
    for value in good:
        assert check(value) == value


def test_messages_hide_the_password():
    with pytest.raises(UsageError) as e:
        check_redis_url("redis://:hunter2@h:port/0")
    assert "hunter2" not in str(e.value) and "***" in str(e.value)
