"""``adapt`` end to end on a real Ray Serve, Redis and MLflow: two cycles, each to a canary decision.

One served model (``tiny``: an untrained, seeded denoiser registered with the real pyfunc,
``tests/serving/serving_models.py``) runs on Ray Serve in this process, with the embedded
redis-server and a sqlite registry. The controller (:func:`adapt_forever`, the command's
own entry) watches an image folder and production's ratings:

1. images are added to the folder: a ``data`` cycle searches it (warm-started from
   ``models:/tiny@production``), registers the knee as version 2 and canaries it; raters
   like it, the serving policy promotes it;
2. the raters turn on the new production (ratings 1): a ``degraded`` cycle searches again
   (warm-started from production and the last cycle's search), canaries version 3, which is
   promoted too.

Cheap on purpose: smoke fidelity, a tiny space, 2 evaluations per search, in-process
evaluation, no reference candidate, small canary looks.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from serving_models import ServingStack, register_version  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.slow]

MODEL = "tiny"
TINY_SPACE = {"base_channels": [4, 8], "channel_mults": [1, 2], "max_levels": 2, "max_depth": 4,
              "sampler_steps": [2, 4], "time_emb_dims": [16], "heads": [1, 2]}
#: production's architecture: inside TINY_SPACE, so the warm start from the registry fits
SEED_GENOME = {"parameters": {"base_channels": 4, "channel_mults": [1], "time_emb_dim": 16, "sampler_steps": 2,
                              "norm_groups": 1},
               "layers": [{"kind": "conv", "side": "mid", "level": 0, "kernel": 1}],
               "connections": [], "generation": 1, "parents": []}
SEARCH = {"backend": "local", "pop_size": 2, "max_evaluations": 2, "fidelity": "smoke", "no_reference": True,
          "problem_options": {"fd_samples": 16, "latency_batch": 2, "latency_repeats": 1, "space": TINY_SPACE,
                              "threads": 1}}
#: small looks: 5 ratings per arm decide a clear preference; latency and SLO out of reach
POLICY = {"min_ratings": 5, "max_ratings": 40, "min_requests": 5, "max_requests": 40, "latency_tolerance": 5.0,
          "max_p90_ms": 1e5, "slo_min_requests": 5}


def write_pngs(folder: Path, images, start: int = 0) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray((im * 255).astype(np.uint8), mode="L").save(folder / f"img{start + i:04d}.png")


def digits(n: int, offset: int = 0):
    from sklearn.datasets import load_digits

    return load_digits().images[offset:offset + n] / 16.0


class Stack(ServingStack):
    """Ray Serve + redis-server + sqlite MLflow serving ``tiny`` version 1 (as test_serving_loop does)."""

    def __init__(self, tmp: Path):
        import requests
        from mlflow import MlflowClient

        self.runs = tmp / "evodiff-runs"
        self.runs.mkdir()
        self.uri = f"sqlite:///{self.runs / 'mlflow.db'}"
        self.v1 = register_version(self.uri, MODEL, self.runs / ".models", SEED_GENOME, seed=0, alias="production")
        self.mlflow = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.mlflow.set_model_version_tag(MODEL, self.v1, "genome", json.dumps(SEED_GENOME))
        super().__init__(self.runs, self.uri, MODEL, self.v1)
        self.http = requests.Session()

    def rate_one(self, i: int) -> None:
        """One request, rated 5 when the canary served it and 1 when production did."""
        r = self.http.post(self.options.url + "/generate", json={"n": 1, "seed": i}, timeout=60)
        assert r.status_code == 200, r.text
        routing = self.controller.state()
        liked = routing is not None and r.headers["X-Model-Version"] == routing.challenger
        fb = self.http.post(self.options.url + "/feedback", json={"request_id": r.headers["X-Request-Id"],
                                                                  "rating": 5 if liked else 1}, timeout=30)
        assert fb.status_code in (200, 409), fb.text


@pytest.fixture
def stack(tmp_path, ray_runtime):
    s = Stack(tmp_path)
    yield s
    s.close()


def test_a_data_change_and_then_bad_ratings_each_run_a_cycle_to_a_canary_decision(stack, tmp_path, one_torch_thread):
    from evodiff_ray.adapt.controller import adapt_forever
    from evodiff_ray.adapt.options import AdaptOptions
    from evodiff_ray.adapt.state import CANARY, DECIDED, StateStore
    from evodiff_ray.adapt.triggers import TriggerPolicy

    t_start = time.monotonic()
    data = tmp_path / "data"
    write_pngs(data, digits(80))
    options = AdaptOptions(
        model=MODEL, tracking_uri=stack.uri, redis_url=stack.redis_server.url, runs_dir=str(stack.runs),
        watch=str(data), triggers=TriggerPolicy(rating_below=2.5, min_ratings=6, cooldown_s=0),
        search_overrides=json.loads(json.dumps(SEARCH)), canary_share=50.0, canary_policy=POLICY,
        decision_timeout_s=240.0, poll_s=0.3, max_cycles=2)
    said: list[str] = []
    outcome: dict = {}

    def run():
        try:
            outcome["state"] = adapt_forever(options, say=said.append)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            outcome["error"] = e

    adapter = threading.Thread(target=run, name="adapt", daemon=True)
    adapter.start()
    store = StateStore(options.state_path, MODEL)

    def state():
        assert "error" not in outcome, outcome.get("error")
        return store.load() if store.path.exists() else None

    deadline = time.monotonic() + 120
    while (s := state()) is None or s.digest is None:       # the baseline digest of the folder
        assert time.monotonic() < deadline, said
        time.sleep(0.2)
    baseline = s.digest
    write_pngs(data, digits(20, offset=500), start=1000)     # new data arrives

    # raters while a canary takes traffic, and after the first decision (when production is theirs to judge)
    deadline, i = time.monotonic() + 600, 0
    while adapter.is_alive():
        s = state()
        assert time.monotonic() < deadline, (said, s)
        routing = stack.controller.state()
        canary_up = s.stage == CANARY and routing.challenger is not None and routing.challenger in routing.ready
        if canary_up or (s.cycle == 1 and s.stage == DECIDED):
            stack.rate_one(i)
            i += 1
        else:
            time.sleep(0.2)
    adapter.join()
    elapsed = time.monotonic() - t_start
    final = state()
    assert final.cycle == 2 and final.stage == DECIDED, (said, final)
    c1, c2 = final.history
    print(f"ADAPT-E2E {elapsed:.1f} s, {i} rated requests; {said}")

    # cycle 1: the data changed; searched on the watched folder, warm-started from production
    assert c1["trigger"]["kind"] == "data" and c1["trigger"]["details"]["old"] == baseline
    assert c1["decision"] == "promote" and c1["reason"].startswith("ratings: challenger rated higher"), c1
    config1 = json.loads((stack.runs / c1["search_id"] / "config.json").read_text())
    assert config1["problem_options"]["dataset"] == str(data.resolve())
    assert config1["seed_from"] == f"models:/{MODEL}@production"
    # cycle 2: production degraded (its ratings), warm-started from production and cycle 1's search
    assert c2["trigger"]["kind"] == "degraded" and c2["trigger"]["details"]["metric"] == "rating"
    assert c2["trigger"]["details"]["version"] == c1["version"] and c2["trigger"]["details"]["value"] < 2.5
    assert c2["decision"] == "promote", c2
    seeds = json.loads(Path(json.loads((stack.runs / c2["search_id"] / "config.json").read_text())["seed_from"])
                       .read_text())
    assert seeds["sources"] == [f"models:/{MODEL}@production", c1["search_id"]]
    assert final.digest != baseline and final.last_search_id == c2["search_id"]

    # the registry: each knee is a version of the served model, the alias follows the promotions
    for c in (c1, c2):
        tags = stack.mlflow.get_model_version(MODEL, c["version"]).tags
        assert tags["adapt_search_id"] == c["search_id"] and tags["search_id"] == c["search_id"]
        assert json.loads(tags["genome"])
    assert str(stack.mlflow.get_model_version_by_alias(MODEL, "production").version) == c2["version"]
    # the serving events: one canary per cycle, each promoted by the policy
    events = stack.controller.events.history()
    deploys = [e for e in events if e["kind"] == "deploy"]
    assert [e["version"] for e in deploys] == [c1["version"], c2["version"]]
    assert [e["deployment"] for e in events if e["kind"] == "promote"] == [c1["deployment"], c2["deployment"]]

    # MLflow: one run per cycle, tagged with trigger, search, version and decision
    exp = stack.mlflow.get_experiment_by_name(f"evodiff-adapt-{MODEL}")
    runs = {r.data.tags["adapt.cycle"]: r for r in stack.mlflow.search_runs([exp.experiment_id])}
    assert set(runs) == {"1", "2"}
    for n, c in (("1", c1), ("2", c2)):
        tags = runs[n].data.tags
        assert runs[n].info.run_id == c["run_id"] and runs[n].info.status == "FINISHED"
        assert tags["trigger.kind"] == c["trigger"]["kind"] and tags["search_id"] == c["search_id"]
        assert tags["registered_version"] == c["version"] and tags["decision"] == "promote"
        assert tags["reason"] == c["reason"] and tags["adapt.stage"] == DECIDED
    assert json.loads(runs["1"].data.tags["trigger.details"])["new"] == final.digest
