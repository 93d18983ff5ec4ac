"""The rolling FD of served samples, from what a gateway stored in a real Redis."""

import json

import numpy as np
import pytest
import redis

from evodiff_ray.serving.metrics import Keys
from evodiff_ray.serving.quality import encode_samples, served_fd_pass
from evodiff_ray.serving.state import RoutingState, state_key

pytestmark = pytest.mark.redis


def test_fd_of_served_samples_tells_digits_from_noise(redis_server, tmp_path, one_torch_thread):
    from evodiff_ray.data import load_dataset

    client = redis.Redis.from_url(redis_server.url)
    keys = Keys("m")
    client.set(state_key("m"), RoutingState("m", "d1", "1", challenger="2", share=50, ready=("1", "2")).to_json())
    real = load_dataset("digits").heldout[:128].numpy()
    noise = np.random.default_rng(0).uniform(-1, 1, real.shape).astype(np.float32)
    for batch in np.split(real, 8):            # as the gateway stores them: one entry per request
        client.lpush(keys.samples("1"), encode_samples(batch))
    for batch in np.split(noise, 8):
        client.lpush(keys.samples("2"), encode_samples(batch))
    client.lpush(keys.samples("2"), b"not an image")          # a bad entry is skipped, not fatal
    out = served_fd_pass(client, "m", f"sqlite:///{tmp_path / 'none.db'}", tmp_path)
    assert set(out) == {"1", "2"} and out["1"]["samples"] == 128
    assert out["1"]["fd"] < out["2"]["fd"] / 5, out
    assert json.loads(client.get(keys.fd("2")))["fd"] == out["2"]["fd"]
