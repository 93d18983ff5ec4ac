"""Automatic registration: a tiny real diffusion search (smoke fidelity, sqlite MLflow)
registers its front's top k with genome, objectives, rung, lineage, dataset digest and
measured_on; a later search warm-starts from a registered alias."""

import json
import math

import pytest

from evodiff_ray.config import load_config
from evodiff_ray.search import search
from evodiff_ray.tracking.registration import crowding_distances, select_top

NAMES = ["a", "b"]
TINY_SPACE = {"base_channels": [4, 8], "channel_mults": [1, 2], "max_levels": 2, "max_depth": 4,
              "sampler_steps": [2, 4], "time_emb_dims": [16], "heads": [1, 2]}


def _pt(key, a, b):
    return {"key": key, "objectives": {"a": a, "b": b}}


def test_select_top_takes_the_knee_then_the_most_isolated():
    pts = [_pt("p0", 0, 10), _pt("p1", 1, 6), _pt("p2", 2, 5), _pt("p3", 5, 4), _pt("p4", 10, 0)]
    crowd = crowding_distances(pts, NAMES)
    assert math.isinf(crowd[0]) and math.isinf(crowd[4])
    assert crowd[3] == pytest.approx(1.3) and crowd[1] == pytest.approx(0.7) and crowd[2] == pytest.approx(0.6)
    # the knee (the balanced point), then the extremes (infinite crowding), then the most isolated
    assert [p["key"] for p in select_top(pts, NAMES, 4)] == ["p2", "p0", "p4", "p3"]
    assert select_top(pts, NAMES, 0) == [] and len(select_top(pts, NAMES, 99)) == 5


def tiny(runs_dir, uri, search_id, **kw):
    return load_config(overrides={
        "problem": "diffusion", "pop_size": 4, "max_evaluations": 8, "seed": 2, "backend": "local",
        "search_id": search_id, "runs_dir": str(runs_dir), "no_cache": True, "tracking_uri": uri,
        "fidelity": "smoke",
        "problem_options": {"fd_samples": 32, "latency_batch": 2, "latency_repeats": 1, "space": TINY_SPACE,
                            "threads": 1},
        **kw})


@pytest.mark.slow
def test_a_tiny_search_registers_its_front_and_a_warm_start_reads_it_back(runs_dir):
    from mlflow import MlflowClient

    uri = f"sqlite:///{runs_dir / 'mlflow.db'}"
    r = search(tiny(runs_dir, uri, "reg", register_top=2))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = "evodiff-reg"
    versions = client.search_model_versions(f"name='{name}'")
    assert len(versions) == min(2, len(r.points))
    knee = client.get_model_version_by_alias(name, "knee")
    tags = knee.tags
    point = next(p for p in r.points if p["key"] == tags["genome_key"])
    assert json.loads(tags["genome"]) == point["genome"]
    assert json.loads(tags["objectives"]) == point["objectives"]
    assert tags["search_id"] == "reg" and tags["generation"] == str(point["generation"])
    assert json.loads(tags["parents"]) == point["parents"] and tags["origin"] == point["origin"]
    assert len(tags["dataset_digest"]) == 64 and json.loads(tags["measured_on"])["device"] == "cpu"
    assert "rung" in tags and "train_steps" in tags
    assert tags["trained_fidelity"] == "smoke" and int(tags["trained_steps"]) > 0
    assert client.get_model_version_by_alias(name, "front-1").version == knee.version
    registered = json.loads((r.run_dir / "registered.json").read_text())
    assert [v["key"] for v in registered][0] == point["key"]
    # the registered model's run is a child of the search's run
    search_run = json.loads((r.run_dir / "mlflow.json").read_text())["run_id"]
    assert client.get_run(knee.run_id).data.tags["mlflow.parentRunId"] == search_run

    # resuming the finished search does not register the same front again
    search(tiny(runs_dir, uri, "reg", register_top=2), resume=True)
    assert len(client.search_model_versions(f"name='{name}'")) == len(versions)

    # a warm start from the registry: the knee's genome opens generation 0, and its lineage
    # names the model and the search it came from
    warm = search(tiny(runs_dir, uri, "warm", seed_from=f"models:/{name}@knee", register_top=0,
                       max_evaluations=4, seed=9))
    first = warm.records[0]
    assert first["key"] == point["key"]
    assert first["origin"] == f"seed:model:{name}@knee|search:reg"
    from evodiff_ray.adapt.lineage import ancestry

    nodes = ancestry(point["key"], search_id="warm", runs_dir=runs_dir)
    assert {n.search_id for n in nodes} == {"warm", "reg"}
    assert not client.search_model_versions("name='evodiff-warm'")   # --register-top 0 registers nothing


def test_vector_problems_register_nothing(runs_dir):
    uri = f"sqlite:///{runs_dir / 'mlflow.db'}"
    r = search(load_config(overrides={"problem": "zdt1", "pop_size": 6, "generations": 2, "backend": "local",
                                      "search_id": "z", "runs_dir": str(runs_dir), "no_cache": True,
                                      "tracking_uri": uri}))
    assert r.points and not (r.run_dir / "registered.json").exists()


def test_version_tags_say_where_the_weights_came_from():
    from evodiff_ray.tracking.registration import version_tags

    point = {"key": "ab" * 32, "genome": {}, "objectives": {"quality_fd": 1.0}, "rung": 2, "train_steps": 1600}
    from_trunk = version_tags(point, search_id="s", dataset_digest="d", trained={
        "fidelity": {"name": "quick@rung2", "train_steps": 1600}, "from_trunk": True, "rung": 2})
    assert from_trunk["weights_from"] == "trunk rung 2" and from_trunk["trained_steps"] == "1600"
    trained = version_tags(point, search_id="s", dataset_digest="d",
                           trained={"fidelity": {"name": "quick", "train_steps": 400}})
    assert trained["weights_from"] == "trained" and trained["rung"] == "2"


class _RecordingProblem:
    """Stands in for a problem to see what register_front asks of it (a problem whose
    candidates are not models: it returns None, so nothing is registered)."""

    def __init__(self):
        self.asked = []

    def from_json(self, x):
        return x

    def train_model(self, x, **kw):
        self.asked.append(kw)
        return None


def test_register_front_asks_for_the_members_rung():
    from evodiff_ray.tracking.registration import register_front

    problem = _RecordingProblem()
    front = {"objectives": ["a", "b"], "points": [{"key": "k1", "genome": {}, "objectives": {"a": 1, "b": 2},
                                                   "rung": 2}]}
    assert register_front(front, problem, k=1, search_id="s", runs_dir="/nonexistent", tracking_uri="x") == []
    assert problem.asked[0]["rung"] == 2 and problem.asked[0]["fidelity"] is None
