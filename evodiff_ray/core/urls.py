"""Service URLs and addresses (Redis, MLflow, Ray): checked up front, and redacted for messages.

The checks are pure: they parse the text and never connect. Each raises a one-line
:class:`~evodiff_ray.core.errors.UsageError` that names the flag (or environment variable),
shows the value with any password hidden, says what is wrong and gives the form to use,
so a malformed value never reaches redis-py, MLflow or Ray (whose errors are tracebacks).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

from evodiff_ray.core.errors import UsageError

__all__ = ["redact", "check_redis_url", "check_tracking_uri", "check_ray_address"]

REDIS_FORM = "redis://[[user]:password@]host:port[/db] (rediss:// for TLS, unix:///path/to/redis.sock)"
TRACKING_FORM = "sqlite:///path/to/mlflow.db, http(s)://host:port or another MLflow store URI"
RAY_FORM = "auto, host:port (the head's GCS port, e.g. 10.0.0.5:6379) or ray://host:10001"

#: MLflow tracking stores by URI scheme (SQLAlchemy's ``dialect+driver`` is allowed for databases)
TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql",
                    "databricks", "databricks-uc", "uc")
#: stores that take their location from a path rather than a host
_PATH_STORES = ("sqlite", "file")
_DATABASES = ("postgresql", "mysql", "mssql")

#: query options redis-py reads from a URL, with the kind of value each takes; an unknown one
#: would reach its connection class as a keyword argument and fail there with a TypeError
_REDIS_QUERY = {
    "db": "int", "socket_timeout": "float", "socket_connect_timeout": "float", "socket_read_size": "int",
    "socket_keepalive": "bool", "retry_on_timeout": "bool", "max_connections": "int",
    "health_check_interval": "int", "ssl_check_hostname": "bool", "timeout": "float", "protocol": "int",
    "client_name": "str", "decode_responses": "bool",
}
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?")


def redact(url: str) -> str:
    """A URL with its password replaced by ``***`` (for messages and tracking)."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{scheme}://{user}:***@{host}"


def check_redis_url(url: object, where: str = "--redis-url") -> str:
    """Check a Redis URL the way redis-py will read it, without connecting.

    Args:
        url: the value given.
        where: the flag or environment variable it came from (for the message).

    Returns:
        ``url`` unchanged.

    Raises:
        UsageError: anything redis-py would reject or misread: a missing or unknown scheme,
            a missing host, a non-numeric or out-of-range port, a database that is not a
            non-negative integer, an unknown query option, spaces or non-ASCII characters.
    """
    text = _text(url, where, "a Redis URL", REDIS_FORM)
    fail = _failer(text, where, "a Redis URL", REDIS_FORM)
    scheme, sep, _ = text.partition("://")
    if not sep:
        fail("it has no scheme" + (f"; write redis://{text}" if _looks_like_host_port(text) else ""))
    scheme = scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        fail(f"unsupported scheme {scheme!r} (use redis, rediss or unix)")
    parts = _split(text, fail)
    if scheme == "unix":
        if not parts.path or parts.path == "/":
            fail("a unix socket URL needs the socket's path, e.g. unix:///run/redis.sock")
    else:
        _check_host(parts, fail)
        _check_port(parts, fail, required=False)
        path = unquote(parts.path)
        if path not in ("", "/"):
            db = path[1:].rstrip("/")
            if not db.isascii() or not db.isdigit():
                fail(f"the database {db!r} after the host must be a non-negative integer (e.g. /0)")
    for key, value in _query(parts.query, fail):
        kind = _REDIS_QUERY.get(key)
        if kind is None and not (scheme == "rediss" and key.startswith("ssl_")):
            fail(f"unknown query option {key!r} (known: {', '.join(sorted(_REDIS_QUERY))})")
        if not _is_kind(value, kind):
            fail(f"query option {key}={value!r} must be {_KIND_NAMES[kind]}")
    return url  # type: ignore[return-value]


def check_tracking_uri(uri: object, where: str = "--tracking-uri") -> str:
    """Check an MLflow tracking URI's form, without connecting.

    Args:
        uri: the value given.
        where: the flag or environment variable it came from (for the message).

    Returns:
        ``uri`` unchanged.

    Raises:
        UsageError: no scheme (a bare path: MLflow 3 refuses its file store unless told),
            an unknown scheme, a web or database URI without a valid host or with a bad
            port, a store URI without its path, spaces or non-ASCII characters in the host.
    """
    text = _text(uri, where, "an MLflow tracking URI", TRACKING_FORM)
    fail = _failer(text, where, "an MLflow tracking URI", TRACKING_FORM)
    if text in ("databricks", "databricks-uc", "uc"):   # profile-less forms MLflow accepts
        return uri  # type: ignore[return-value]
    if ":" not in text:
        fail(f"it has no scheme; for a local store write sqlite:///{text.rstrip('/') or 'mlruns'}/mlflow.db")
    parts = _split(text, fail)
    scheme = parts.scheme.lower()
    base = scheme.split("+", 1)[0]
    if not scheme or not re.fullmatch(r"[a-z][a-z0-9.+-]*", scheme) or (
            base not in TRACKING_SCHEMES or ("+" in scheme and base not in _DATABASES)):
        fail(f"unsupported scheme {parts.scheme!r} (use one of {', '.join(TRACKING_SCHEMES)})")
    if base in _PATH_STORES:
        if parts.netloc and base == "sqlite":
            fail("a sqlite URI has three slashes before a relative path, four before an absolute one "
                 "(sqlite:///mlflow.db, sqlite:////abs/path/mlflow.db)")
        if not parts.path or parts.path == "/":
            fail(f"a {base} URI needs the store's path")
        if not parts.path.isprintable():
            fail("the path holds control characters")
        return uri  # type: ignore[return-value]
    if base in ("http", "https"):
        _check_host(parts, fail)
    elif base in _DATABASES and parts.netloc:
        _check_host(parts, fail, allow_empty=True)
    _check_port(parts, fail, required=False)
    if any(c.isspace() for c in text):
        fail("it holds spaces (percent-encode them as %20)")
    return uri  # type: ignore[return-value]


def check_ray_address(address: object, where: str = "--address") -> str:
    """Check a Ray cluster address's form, without connecting.

    Accepted: ``auto``, ``local``, ``host:port`` (a head's GCS address) and
    ``ray://host[:port]`` (Ray Client, port 10001 by default).

    Args:
        address: the value given.
        where: the flag or environment variable it came from (for the message).

    Returns:
        ``address`` unchanged.

    Raises:
        UsageError: an unknown scheme (``http://`` is the dashboard's and job submission's
            address, not a driver's), a missing host or port, a non-numeric or out-of-range
            port, spaces or non-ASCII characters.
    """
    text = _text(address, where, "a Ray address", RAY_FORM)
    fail = _failer(text, where, "a Ray address", RAY_FORM)
    if text in ("auto", "local"):
        return address  # type: ignore[return-value]
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme.lower() in ("http", "https"):
            fail("that is the dashboard's address (for 'ray job submit --address'); a search connects "
                 "to the head's GCS port or to ray://host:10001")
        if scheme.lower() != "ray":
            fail(f"unsupported scheme {scheme!r} (use ray://host:10001, or host:port without a scheme)")
        parts = _split(text, fail)
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
            fail("a ray:// address is only ray://host[:port]")
        _check_host(parts, fail)
        _check_port(parts, fail, required=False)
        return address  # type: ignore[return-value]
    parts = _split("ray://" + text, fail)   # parse host:port the way a URL's netloc is parsed
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        fail("expected host:port")
    _check_host(parts, fail)
    _check_port(parts, fail, required=True)
    return address  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# shared parsing


_KIND_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text", None: "text"}


def _text(value: object, where: str, what: str, form: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{where} must be {what} such as {form}, got {type(value).__name__} {value!r}"[:300])
    if not value.strip():
        raise UsageError(f"{where} is empty; give {what} such as {form}")
    if value != value.strip():
        _failer(value, where, what, form)("it has leading or trailing spaces")
    if not value.isprintable():
        _failer(value, where, what, form)("it holds control characters")
    return value


def _failer(text: str, where: str, what: str, form: str):
    shown = redact(text)
    if len(shown) > 120:
        shown = shown[:117] + "..."

    def fail(why: str):
        raise UsageError(f"{where} {shown!r} is not {what}: {why}; expected {form}")

    return fail


def _split(text: str, fail):
    try:
        return urlsplit(text)
    except ValueError:   # an unbalanced [ or ] around an IPv6 address
        fail("its host is malformed (an IPv6 address goes in brackets: [::1]:6379)")


def _check_host(parts, fail, allow_empty: bool = False) -> None:
    netloc_host = parts.netloc.rpartition("@")[2]
    host = parts.hostname or ""
    if not host:
        if allow_empty:
            return
        fail("it has no host")
    if not netloc_host.isascii():
        fail("the host has non-ASCII characters (write an internationalised name in its xn-- form)")
    if any(c.isspace() for c in netloc_host):
        fail("the host holds spaces")
    if netloc_host.startswith("["):
        if not _IPV6.fullmatch(host):
            fail(f"{host!r} is not an IPv6 address")
    elif not _HOSTNAME.fullmatch(host):
        fail(f"{host!r} is not a host name or IP address")


def _check_port(parts, fail, required: bool) -> None:
    host_port = parts.netloc.rpartition("@")[2]
    if host_port.startswith("["):
        after = host_port.partition("]")[2]
        raw = after[1:] if after.startswith(":") else None
        if after and not after.startswith(":"):
            fail("expected :port after the bracketed IPv6 address")
    else:
        raw = host_port.partition(":")[2] if ":" in host_port else None
    if raw is None or raw == "":
        if required:
            fail("it has no port (host:port)")
        return
    if not (raw.isascii() and raw.isdigit()):
        fail(f"the port {raw!r} is not a number")
    if not 1 <= int(raw) <= 65535:
        fail(f"the port {raw} is out of range (1-65535)")


def _query(query: str, fail) -> list[tuple[str, str]]:
    if not query:
        return []
    try:
        return parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        fail(f"its query {query!r} is not name=value&name=value")
    return []  # pragma: no cover - fail raised


def _is_kind(value: str, kind: str | None) -> bool:
    if kind == "int":
        return value.isascii() and value.isdigit()
    if kind == "float":
        try:
            float(value)
        except ValueError:
            return False
        return True
    if kind == "bool":
        return value.upper() in ("", "0", "F", "FALSE", "N", "NO", "1", "T", "TRUE", "Y", "YES")
    return True


def _looks_like_host_port(text: str) -> bool:
    host, sep, port = text.rpartition(":")
    return bool(sep and host and port.isdigit() and " " not in text)
