"""The embedded Redis: a local redis-server the tool starts itself when no URL is given.

It binds to 127.0.0.1 on a free port, persists with AOF in a data dir
(``./evodiff-runs/.redis/`` by default) so the cache survives across runs, and records
``server.json`` there so the next search reuses a server that is still running. The
search that started it shuts it down at the end unless another client still uses it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from evodiff_ray.core.errors import RuntimeFailure, UsageError

INSTALL_HINT = ("install it (Debian/Ubuntu: 'apt-get install redis-server'; macOS: 'brew install redis') "
                "or run without the cache: --no-cache")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_redis_server() -> str:
    """Path of the redis-server binary (``EVODIFF_REDIS_SERVER`` overrides).

    Raises:
        UsageError: when it is not installed, with how to install it.
    """
    path = os.environ.get("EVODIFF_REDIS_SERVER") or shutil.which("redis-server")
    if not path or not os.access(path, os.X_OK):
        raise UsageError(f"redis-server not found; {INSTALL_HINT}")
    return path


class LocalRedis:
    """A redis-server process on 127.0.0.1 with AOF persistence in ``data_dir``.

    Args:
        data_dir: where the AOF files, the log and ``server.json`` live.
        port: fixed port, or None for a free one.
        password: require this password (``requirepass``), or None.
    """

    def __init__(self, data_dir: str | Path, port: int | None = None, password: str | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.password = password
        self.proc: subprocess.Popen | None = None
        self.owned = False

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _client(self, timeout: float = 1.0):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_connect_timeout=timeout, socket_timeout=timeout)

    def _alive(self) -> bool:
        import redis

        try:
            with self._client() as c:
                return bool(c.ping())
        except redis.RedisError:
            return False

    @classmethod
    def running(cls, data_dir: str | Path) -> "LocalRedis | None":
        """The server recorded in ``data_dir/server.json`` if it still answers (not owned)."""
        info = Path(data_dir) / "server.json"
        try:
            port = int(json.loads(info.read_text())["port"])
        except (ValueError, KeyError, TypeError, OSError):
            return None
        server = cls(data_dir, port=port)
        return server if server._alive() else None

    def start(self, reuse: bool = True, timeout: float = 15.0) -> "LocalRedis":
        """Reuse the server recorded in the data dir if it answers, else start one.

        Raises:
            UsageError: redis-server is not installed.
            RuntimeFailure: it did not come up (its log is named).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        info = self.data_dir / "server.json"
        if reuse and self.port is None:
            found = LocalRedis.running(self.data_dir)
            if found is not None:
                self.port = found.port
                return self
        binary = find_redis_server()
        self.port = self.port or free_port()
        log = self.data_dir / "redis.log"
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
                "--logfile", str(log)]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.owned = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeFailure(f"redis-server exited at start (code {self.proc.returncode}); see {log}")
            if self._alive():
                tmp = info.with_suffix(".tmp")
                tmp.write_text(json.dumps({"port": self.port, "pid": self.proc.pid}))
                os.replace(tmp, info)
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeFailure(f"redis-server did not answer within {timeout:.0f} s; see {log}")

    def other_clients(self) -> int:
        """Clients connected besides the one asking."""
        import redis

        try:
            with self._client() as c:
                return max(0, int(c.info("clients")["connected_clients"]) - 1)
        except redis.RedisError:
            return 0

    def stop(self, force: bool = False) -> None:
        """Shut the server down cleanly (AOF flushed) unless another client still uses it.

        Whoever uses the embedded server last stops it: the process that started it
        sends SIGTERM; a search that reused it sends ``SHUTDOWN``. Close your own
        clients first, or they count as users.

        Args:
            force: shut down even if other clients are connected.
        """
        if self.port is None:
            return
        if not force and self.other_clients() > 0:
            return  # another search still uses it; the last one out stops it
        if self.owned and self.proc is not None:
            self.proc.terminate()  # SIGTERM: redis-server fsyncs the AOF and exits cleanly
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
            self.proc = None
        elif not self._shutdown_by_command():
            return
        info = self.data_dir / "server.json"
        try:
            if json.loads(info.read_text()).get("port") == self.port:
                info.unlink()
        except (OSError, ValueError):
            pass

    def _shutdown_by_command(self) -> bool:
        """``SHUTDOWN`` a server this object did not start; True when it is gone."""
        import redis

        try:
            with self._client() as c:
                c.shutdown(nosave=False)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        except redis.RedisError:
            return False
        return not self._alive()

    def kill(self) -> None:
        """SIGKILL the server (tests use it to simulate a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(force=True)
