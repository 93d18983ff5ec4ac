"""The model's event stream on a real redis-server: listing, and a reader's cursor."""

import pytest
import redis

from evodiff_ray.serving.events import EventLog

pytestmark = pytest.mark.redis


def test_history_lists_oldest_first_and_a_cursor_reads_only_what_is_new(redis_server):
    log = EventLog(redis.Redis.from_url(redis_server.url), "tiny")
    first = [log.emit("deploy", version=str(i)) for i in range(5)]
    assert [e["version"] for e in log.history()] == ["0", "1", "2", "3", "4"]
    assert [e["version"] for e in log.history(count=2)] == ["3", "4"]              # the last two
    assert log.history(after=first[-1]["id"]) == []                                # nothing new yet
    log.emit("promote", version="5")
    new = log.history(after=first[-1]["id"])
    assert [(e["kind"], e["version"]) for e in new] == [("promote", "5")]
    assert [e["version"] for e in log.history(after=first[1]["id"], count=2)] == ["4", "5"]
