"""``evodiff-ray ui [SEARCH_ID]``: the MLflow UI on the project's store, and the link to a search's run.

MLflow 3 opens an experiment on its GenAI "traces" overview, which shows nothing of ours;
the search's run (its metrics, pareto.png, front.png and the front's sample grids) is at
``#/experiments/<id>/runs/<run id>``, which this command prints.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from evodiff_ray.cli import Command
from evodiff_ray.core.errors import UsageError

HOST = "127.0.0.1"


def run_link(run_dir: str | Path, port: int = 5000, host: str = HOST) -> str | None:
    """``http://127.0.0.1:5000/#/experiments/<id>/runs/<run id>`` of a search tracked in MLflow, or None."""
    from evodiff_ray.tracking.mlflow_tracker import RUN_FILE

    try:
        saved = json.loads((Path(run_dir) / RUN_FILE).read_text())
        return f"http://{host}:{port}/#/experiments/{saved['experiment_id']}/runs/{saved['run_id']}"
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_uri(run_dir: Path, runs_dir: str, given: str | None) -> str:
    """The tracking URI: ``--tracking-uri``, the search's own (config.json), MLFLOW_TRACKING_URI,
    else the default sqlite store in the runs dir."""
    from evodiff_ray.tracking.mlflow_tracker import resolve_tracking_uri

    if given is None:
        try:
            given = json.loads((run_dir / "config.json").read_text()).get("tracking_uri")
        except (OSError, ValueError, AttributeError):
            given = None
    return resolve_tracking_uri(given, runs_dir)


def latest_tracked(runs_dir: str) -> str | None:
    """The most recently tracked search in a runs dir (by its MLflow run file), or None."""
    from evodiff_ray.tracking.mlflow_tracker import RUN_FILE

    files = sorted(Path(runs_dir).glob(f"*/{RUN_FILE}"), key=lambda p: p.stat().st_mtime)
    return files[-1].parent.name if files else None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


class UiCommand(Command):
    """Start ``mlflow ui`` on 127.0.0.1 and print the search's run link (Ctrl-C stops it)."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("search_id", metavar="SEARCH_ID", nargs="?",
                            help="the search whose run to link (default: the most recently tracked)")
        parser.add_argument("--runs-dir", default="evodiff-runs", help="directory holding run dirs")
        parser.add_argument("--tracking-uri", default=None,
                            help="MLflow store (default: the search's, MLFLOW_TRACKING_URI, or sqlite in the runs dir)")
        parser.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.core.urls import check_tracking_uri, redact

        if args.tracking_uri is not None:
            check_tracking_uri(args.tracking_uri, "--tracking-uri")
        if not 0 < args.port < 65536:
            raise UsageError(f"--port {args.port}: use 1-65535")
        search_id = args.search_id or latest_tracked(args.runs_dir)
        if search_id is None:
            raise UsageError(f"no search tracked in MLflow under {args.runs_dir!r}; run 'evodiff-ray search' "
                             "without --no-tracking, or pass --runs-dir")
        run_dir = Path(args.runs_dir) / search_id
        link = run_link(run_dir, args.port)
        if link is None:
            raise UsageError(f"search {search_id!r} has no MLflow run in {run_dir} (ran with --no-tracking?)")
        uri = store_uri(run_dir, args.runs_dir, args.tracking_uri)
        if not _port_free(args.port):
            raise UsageError(f"port {args.port} on {HOST} is in use (another MLflow UI?); pass --port")
        cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", HOST,
               "--port", str(args.port)]
        print(f"MLflow UI on {redact(uri)}: http://{HOST}:{args.port}/  (Ctrl-C stops it)")
        print(f"search {search_id}: {link}", flush=True)
        # its own process group: stopping the UI stops the server's workers too
        proc = subprocess.Popen(cmd, env={**os.environ, "MLFLOW_TRACKING_URI": uri}, start_new_session=True)
        # a `kill` (SIGTERM) stops the UI as Ctrl-C does, never leaving the server behind
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            _stop_group(proc)
            return 0
        finally:
            signal.signal(signal.SIGTERM, previous)


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _interrupt(signum, frame):
    raise KeyboardInterrupt
