"""``evodiff-ray serve MODEL``: serve the registry's ``production`` version on Ray Serve; ``serve stop``."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from evodiff_ray.cli import Command, redis_url_arg
from evodiff_ray.core.errors import RuntimeFailure, UsageError


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def _positive(kind):
    def parse(value: str):
        try:
            v = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a positive {kind.__name__}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"{value!r} is not a positive {kind.__name__}")
        return v
    return parse


class ServeCommand(Command):
    """Serve a registered model (foreground or --detach), or stop a detached one."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", metavar="MODEL", help="registered model name, or 'stop' to stop a detached serve")
        parser.add_argument("stop_model", nargs="?", metavar="STOP_MODEL",
                            help="with 'stop': the model to stop (default: every detached serve of --runs-dir)")
        parser.add_argument("--host", default="127.0.0.1",
                            help="address the HTTP proxy binds (default 127.0.0.1: this machine only)")
        parser.add_argument("--port", type=_port, default=8000, help="HTTP port (default 8000)")
        parser.add_argument("--address", default=None, help="Ray cluster to serve on (default: a local Ray)")
        parser.add_argument("--redis-url", default=None,
                            help="Redis for routing state, metrics, feedback and events "
                                 "(default EVODIFF_REDIS_URL, else the embedded server of --runs-dir)")
        parser.add_argument("--tracking-uri", default=None,
                            help="MLflow registry URI (default MLFLOW_TRACKING_URI, else sqlite in --runs-dir)")
        parser.add_argument("--runs-dir", default="evodiff-runs", help="where run dirs live (default evodiff-runs)")
        parser.add_argument("--max-n", type=_positive(int), default=64, help="largest n of one request (default 64)")
        parser.add_argument("--replica-cpus", type=_positive(float), default=0.5,
                            help="CPUs reserved per sampler replica (default 0.5)")
        parser.add_argument("--threads", type=_positive(int), default=1, help="torch threads per replica (default 1)")
        parser.add_argument("--check-interval", type=_positive(float), default=5.0,
                            help="seconds between canary policy checks (default 5)")
        parser.add_argument("--fd-interval", type=float, default=60.0,
                            help="seconds between rolling-FD passes over served samples (0: off; default 60)")
        parser.add_argument("--inline", action=argparse.BooleanOptionalAction, default=True,
                            help="the gateway also loads each ready version and samples in its own process: "
                                 "no hop to a sampler replica (default on; --no-inline: sampler replicas only)")
        parser.add_argument("--haproxy", action="store_true",
                            help="a local Ray runs Serve's HAProxy ingress instead of its Python proxy, on the "
                                 "same port: lower latency (Linux: ray[serve] bundles the binary); note that "
                                 "HAProxy's stats page and metrics then listen on every interface")
        parser.add_argument("--detach", action="store_true", help="run in the background; stop with 'serve stop'")
        parser.add_argument("--ready-timeout", type=_positive(float), default=300.0,
                            help="seconds to wait for the production version to come up (default 300)")

    def run(self, args: argparse.Namespace) -> int:
        if args.model == "stop":
            return stop_served(args.runs_dir, args.stop_model)
        if args.stop_model is not None:
            raise UsageError(f"unexpected argument {args.stop_model!r}; serve takes one MODEL (or 'stop [MODEL]')")
        from evodiff_ray.core.urls import check_ray_address, check_tracking_uri
        from evodiff_ray.serving.server import ServeOptions, check_haproxy, serve_forever
        from evodiff_ray.serving.versions import production_version, registry_client
        from evodiff_ray.tracking.mlflow_tracker import resolve_tracking_uri

        redis_url = redis_url_arg(args.redis_url)
        if args.address is not None:
            check_ray_address(args.address, "--address")
        if args.haproxy:     # before --detach, so that the mistake is said here, not in its log
            check_haproxy(local=args.address is None and not os.environ.get("RAY_ADDRESS"))
        if args.tracking_uri is not None:
            check_tracking_uri(args.tracking_uri, "--tracking-uri")
        uri = resolve_tracking_uri(args.tracking_uri, args.runs_dir)
        production_version(registry_client(uri), args.model)     # no alias: say how to set one, now
        if args.detach:
            return _detach(args)
        options = ServeOptions(model=args.model, tracking_uri=uri, redis_url=redis_url, runs_dir=args.runs_dir,
                               host=args.host, port=args.port, max_n=args.max_n, replica_cpus=args.replica_cpus,
                               threads=args.threads, check_interval_s=args.check_interval,
                               fd_interval_s=max(0.0, args.fd_interval), inline=args.inline,
                               haproxy=args.haproxy)
        return serve_forever(options, address=args.address, say=lambda m: print(m, flush=True),
                             ready_timeout_s=args.ready_timeout)


def _detach(args: argparse.Namespace) -> int:
    """Run this same command in the background; return once it serves (or failed)."""
    from evodiff_ray.serving.server import SERVE_DIR, read_records

    argv = [a for a in sys.argv[1:] if a != "--detach"] if sys.argv[1:2] == ["serve"] else None
    if argv is None:  # called as a function (tests): rebuild the command line from the parsed arguments
        argv = ["serve", args.model, "--host", args.host, "--port", str(args.port), "--runs-dir", args.runs_dir,
                "--max-n", str(args.max_n), "--replica-cpus", str(args.replica_cpus), "--threads", str(args.threads),
                "--check-interval", str(args.check_interval), "--fd-interval", str(args.fd_interval),
                "--ready-timeout", str(args.ready_timeout)]
        argv += ["--inline" if args.inline else "--no-inline"] + (["--haproxy"] if args.haproxy else [])
        for flag, value in (("--address", args.address), ("--redis-url", args.redis_url),
                            ("--tracking-uri", args.tracking_uri)):
            if value is not None:
                argv += [flag, value]
    folder = Path(args.runs_dir) / SERVE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{args.model}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "evodiff_ray", *argv], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + args.ready_timeout + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise RuntimeFailure(f"serve exited with code {proc.returncode}: {tail[0][:300]} (log: {log_path})")
        if any(r.get("model") == args.model and r.get("pid") == proc.pid for r in read_records(args.runs_dir)):
            print(f"serving {args.model} at http://{args.host}:{args.port} in the background (pid {proc.pid}, "
                  f"log {log_path}); stop it with 'evodiff-ray serve stop {args.model}'")
            return 0
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGTERM)
    raise RuntimeFailure(f"serve did not come up in time; see {log_path}")


def stop_served(runs_dir: str, model: str | None, timeout_s: float = 60.0) -> int:
    """SIGTERM the detached serve of ``model`` (or all of them) and wait until each has exited.

    Raises:
        UsageError: nothing recorded as served from ``runs_dir``.
    """
    from evodiff_ray.serving.server import read_records

    records = [r for r in read_records(runs_dir) if model is None or r.get("model") == model]
    if not records:
        what = f"{model!r} is" if model else "nothing is"
        raise UsageError(f"{what} not being served from {runs_dir}/ (start it with 'evodiff-ray serve MODEL "
                         "--detach', or pass its --runs-dir)")
    for rec in records:
        pid = int(rec["pid"])
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            Path(rec["record"]).unlink(missing_ok=True)
            print(f"{rec['model']}: its serve process {pid} was already gone; record removed")
            continue
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.3)
        if _alive(pid):
            raise RuntimeFailure(f"{rec['model']}: serve process {pid} did not stop within {timeout_s:.0f} s")
        Path(rec["record"]).unlink(missing_ok=True)
        print(f"stopped {rec['model']} (pid {pid})")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a child of ours that exited is a zombie until reaped
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True
