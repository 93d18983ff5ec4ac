"""Service URLs and addresses (Redis, MLflow, Ray): checked up front, and redacted for messages."""

from __future__ import annotations


def redact(url: str) -> str:
    """A URL with its password replaced by ``***`` (for messages and tracking)."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{scheme}://{user}:***@{host}"
