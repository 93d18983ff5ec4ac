"""User feedback on served samples: a 1-5 rating of one request, or a preference between two.

Feedback names request ids the gateway handed out; it is credited to the version (and the
deployment) that served each request, whatever serves now, so a rating that arrives after
a promotion still counts for the right arm. Each request can be rated once (a second
rating is a 409), which keeps one rater from outvoting the others.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from evodiff_ray.serving.codec import BadRequest, integer, parse_json_object
from evodiff_ray.serving.metrics import REQUEST_TTL_S, Keys, record_preference, record_rating

#: what a request id looks like (Serve's are uuid4 strings)
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Rating:
    request_id: str
    rating: int


@dataclass(frozen=True)
class Preference:
    preferred: str
    other: str


def _request_id(body: dict[str, Any], name: str) -> str:
    v = body.get(name)
    if not isinstance(v, str) or not ID_PATTERN.match(v):
        raise BadRequest(f"'{name}' must be a request id as /generate returned it (X-Request-Id)")
    return v


def parse_feedback(raw: bytes) -> Rating | Preference:
    """``{"request_id", "rating": 1-5}`` or ``{"preferred": id, "other": id}``; else :class:`BadRequest`."""
    body = parse_json_object(raw)
    if "preferred" in body or "other" in body:
        extra = sorted(set(body) - {"preferred", "other"})
        if extra:
            raise BadRequest(f"unknown field {extra[0]!r}; a preference is {{\"preferred\": id, \"other\": id}}")
        a, b = _request_id(body, "preferred"), _request_id(body, "other")
        if a == b:
            raise BadRequest("'preferred' and 'other' are the same request; compare two requests")
        return Preference(a, b)
    extra = sorted(set(body) - {"request_id", "rating"})
    if extra:
        raise BadRequest(f"unknown field {extra[0]!r}; a rating is {{\"request_id\": id, \"rating\": 1-5}}")
    return Rating(_request_id(body, "request_id"), integer(body, "rating", 1, 5))


async def _record(aclient, keys: Keys, request_id: str) -> dict[str, Any]:
    raw = await aclient.get(keys.request(request_id))
    if raw is None:
        raise BadRequest(f"unknown request id {request_id!r} (never served, or older than "
                         f"{REQUEST_TTL_S // 86400} days)", 404)
    return json.loads(raw)


async def submit(aclient, keys: Keys, feedback: Rating | Preference) -> dict[str, Any]:
    """Store ``feedback`` (an async Redis client); returns what was credited to whom.

    Raises:
        BadRequest: 404 for an unknown request id, 409 for a request already rated.
    """
    if isinstance(feedback, Rating):
        record = await _record(aclient, keys, feedback.request_id)
        if not await aclient.set(keys.rated(feedback.request_id), feedback.rating, nx=True, ex=REQUEST_TTL_S):
            raise BadRequest(f"request {feedback.request_id!r} was already rated", 409)
        pipe = aclient.pipeline(transaction=True)
        record_rating(pipe, keys, record, feedback.rating)
        await pipe.execute()
        return {"request_id": feedback.request_id, "version": record["version"], "rating": feedback.rating}
    winner = await _record(aclient, keys, feedback.preferred)
    loser = await _record(aclient, keys, feedback.other)
    pair = f"{feedback.preferred}:{feedback.other}"
    if not await aclient.set(keys.rated(pair), 1, nx=True, ex=REQUEST_TTL_S):
        raise BadRequest("that pair was already compared", 409)
    pipe = aclient.pipeline(transaction=True)
    evidence = record_preference(pipe, keys, winner, loser)
    await pipe.execute()
    return {"preferred": winner["version"], "other": loser["version"], "evidence": evidence}
