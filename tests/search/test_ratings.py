"""Human ratings as the ``rating`` objective: the join (pure), the reader against what the serving
loop writes (real redis-server), the one-line errors, and a search where stored ratings become a
``rating`` objective with human and predicted values marked."""

import asyncio
import json

import numpy as np
import pytest

from evodiff_ray.cli import main
from evodiff_ray.config import load_config
from evodiff_ray.search.ratings import (RatedGenome, join_ratings, rated_genomes, ratings_by_version,
                                        ratings_match, unjoined, version_of)

P = "evodiff:serve:"


# -- the join, pure ---------------------------------------------------------------------------

def test_rating_lists_merge_per_version_across_deployments():
    lists = {
        f"{P}m:dep:d1:v:1:ratings": [b"5", b"4"],
        f"{P}m:dep:d2:v:1:ratings": [b"3"],
        f"{P}m:dep:d2:v:2:ratings": [b"1", b"9", b"x", b"2"],   # out of scale and junk are dropped
        f"{P}m:dep:d1:v:1:pairs": [b"1"],                       # not a rating list
        f"{P}other:dep:d1:v:1:ratings": [b"5"],                 # another model
    }
    assert ratings_by_version(lists, "m") == {"1": [5, 4, 3], "2": [1, 2]}
    assert version_of(f"{P}m:dep:canary:2:v:12:ratings", "m") == "12"   # a deployment id with a colon
    assert version_of(f"{P}m:dep::v:1:ratings", "m") is None
    assert ratings_match("a*[b]") == f"{P}a\\*\\[b\\]:dep:*:v:*:ratings"


def test_join_credits_each_version_to_the_genome_it_was_trained_from():
    by_version = {"1": [5, 4], "2": [2], "10": [3], "3": [1]}
    keys = {"1": "gA", "2": "gB", "10": "gA", "4": "gC"}          # version 3 names no genome
    assert join_ratings(by_version, keys) == {"gA": [5, 4, 3], "gB": [2]}
    assert unjoined(by_version, keys) == ["3"]
    assert join_ratings({}, keys) == {}


def test_rated_genomes_carry_the_genome_and_objectives_of_their_latest_tagged_version():
    tags = {"1": {"genome_key": "gA", "genome": "[0.1]", "objectives": '{"f1": 0.1, "f2": "inf"}'},
            "2": {"genome_key": "gA", "genome": "[0.1]", "objectives": '{"f1": 0.2, "f2": 0.9}'},
            "3": {"genome_key": "gB"}}
    got = rated_genomes({"1": [5], "2": [4, 4], "3": [2]}, tags)
    assert got == [RatedGenome("gA", (5, 4, 4), ("1", "2"), [0.1], {"f1": 0.2, "f2": 0.9}),
                   RatedGenome("gB", (2,), ("3",), None, None)]


# -- against a real redis-server ---------------------------------------------------------------

def store_ratings(url: str, model: str, served: list[tuple[str, str, int]]) -> None:
    """Rate requests the way the serving loop does: the gateway records each request
    (``record_request``), then ``POST /feedback`` credits its rating (``feedback.submit``)."""
    import redis
    import redis.asyncio as aredis

    from evodiff_ray.serving.feedback import Rating, submit
    from evodiff_ray.serving.metrics import Keys, record_request

    keys = Keys(model)
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for i, (deployment, version, _) in enumerate(served):
        record_request(pipe, keys, request_id=f"req-{model}-{i}", version=version, deployment=deployment,
                       latency_ms=5.0, ok=True)
    pipe.execute()
    client.close()

    async def rate_all():
        aclient = aredis.Redis.from_url(url)
        for i, (_, _, rating) in enumerate(served):
            await submit(aclient, keys, Rating(f"req-{model}-{i}", rating))
        await aclient.aclose()

    asyncio.run(rate_all())


@pytest.mark.redis
def test_the_reader_reads_what_the_serving_loop_writes(redis_server):
    import redis

    from evodiff_ray.search.ratings import read_ratings

    store_ratings(redis_server.url, "m[1]", [("d1", "1", 5), ("d1", "2", 3), ("d2", "1", 4), ("d2", "2", 2)])
    store_ratings(redis_server.url, "m11", [("d1", "1", 1)])    # a glob of the first name would match it
    client = redis.Redis.from_url(redis_server.url)
    assert read_ratings(client, "m[1]") == {"1": [5, 4], "2": [3, 2]}
    assert read_ratings(client, "m11") == {"1": [1]}
    assert read_ratings(client, "nothing") == {}
    client.close()


def register(uri: str, model: str, points: list[dict]) -> list[str]:
    """Register one version per front point with the tags the end-of-search registration writes
    (no model files: the join reads only the tags)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from evodiff_ray.tracking.registration import version_tags

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.create_registered_model(model)
    except MlflowException:
        pass
    out = []
    for rank, p in enumerate(points):
        tags = version_tags(p, search_id="earlier", dataset_digest=None, rank=rank) if p.get("key") else {}
        out.append(str(client.create_model_version(model, source=f"file:///nowhere/{model}/{rank}",
                                                   tags=tags).version))
    return out


def _search_cli(runs_dir, uri, *extra):
    return main(["search", "--problem", "zdt1", "-O", "n_var=5", "--backend", "local", "--no-tracking",
                 "--pop", "4", "--generations", "1", "--runs-dir", str(runs_dir), "--tracking-uri", uri, *extra])


@pytest.mark.redis
def test_bad_rating_sources_are_one_line_errors_before_the_search_starts(runs_dir, tmp_path, redis_server,
                                                                        free_port, capsys, monkeypatch):
    monkeypatch.delenv("EVODIFF_REDIS_URL", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def error(*extra) -> str:
        assert _search_cli(runs_dir, uri, *extra) == 2
        return capsys.readouterr().err.strip().splitlines()[-1]   # (MLflow logs creating its database first)

    err = error("--rating-from", "m", "--redis-url", f"redis://127.0.0.1:{free_port()}/0")
    assert err.startswith("evodiff-ray: error: --rating-from m: cannot read ratings from Redis at redis://127.0.0.1:")
    err = error("--rating-from", "m")
    assert "no Redis to read ratings from" in err and "--redis-url" in err
    err = error("--rating-from", "nope", "--redis-url", redis_server.url)
    assert err.startswith("evodiff-ray: error: --rating-from nope: no registered model 'nope' in the registry")
    register(uri, "quiet", [{"key": "k", "objectives": {"f1": 0.0, "f2": 1.0}, "genome": [0.0] * 5}])
    err = error("--rating-from", "quiet", "--redis-url", redis_server.url)
    assert "no user ratings stored for model 'quiet'" in err
    register(uri, "untagged", [{}])
    store_ratings(redis_server.url, "untagged", [("d1", "1", 4)])
    err = error("--rating-from", "untagged", "--redis-url", redis_server.url)
    assert "versions 1 have ratings but none carries a 'genome_key' tag" in err
    assert error("--rating-from", "   ") .endswith("rating_from must name a registered model (no quotes or line "
                                                   "breaks), got ''")
    assert not any(runs_dir.glob("*/config.json"))                 # nothing started
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    assert "--rating-from MODEL_NAME" in capsys.readouterr().out


def ground_truth(f1: float) -> float:
    """Users like a small f1."""
    return 5.0 - 3.5 * f1


@pytest.mark.redis
@pytest.mark.slow
def test_ratings_stored_by_the_serving_loop_become_a_rating_objective(runs_dir, tmp_path, redis_server):
    import redis

    from evodiff_ray.cli.front import format_front
    from evodiff_ray.problems import make_problem
    from evodiff_ray.search import search

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    problem = make_problem("zdt1", {"n_var": 5})
    rng = np.random.default_rng(0)
    xs = [[float(v) for v in rng.random(5) * [1, .3, .3, .3, .3]] for _ in range(6)]
    points = []
    for x in xs:
        fit = problem.evaluate(problem.from_json(x))
        points.append({"key": problem.key(problem.from_json(x)), "genome": x, "objectives": fit.objectives,
                       "generation": 3, "parents": []})
    versions = register(uri, "rated", points + [points[0], {}])     # genome 0 twice; one version untagged
    served = []
    for v, p in zip(versions, points + [points[0], {}]):
        truth = ground_truth(p["objectives"]["f1"]) if p else 3.0
        served += [("d1" if i % 2 else "d2", v, int(np.clip(round(truth + d), 1, 5))) for i, d in
                   enumerate((-0.4, 0.0, 0.4))]
    store_ratings(redis_server.url, "rated", served)
    seeds = tmp_path / "seeds.json"
    seeds.write_text(json.dumps(xs[:2]))    # two rated genomes join the search; the rest are predicted

    def cfg(search_id, generations=3):
        return load_config(overrides={
            "problem": "zdt1", "problem_options": {"n_var": 5}, "pop_size": 8, "generations": generations,
            "seed": 4, "backend": "local", "runs_dir": str(runs_dir), "search_id": search_id, "no_tracking": True,
            "tracking_uri": uri, "redis_url": redis_server.url, "rating_from": "rated", "seed_from": str(seeds)})

    r = search(cfg("rated-1"))
    assert r.objective_names == ("f1", "f2", "rating")
    by_key = {}
    for rec in r.records:
        by_key.setdefault(rec["key"], rec["fitness"])
    human_keys = {points[0]["key"], points[1]["key"]}
    assert human_keys <= set(by_key)
    for key, fit in by_key.items():
        extras = fit["extras"]
        if key in human_keys:
            stored = [s[2] for s in served if s[1] in {versions[i] for i, p in enumerate(points + [points[0]])
                                                       if p["key"] == key}]
            assert extras["rating_source"] == "human" and extras["rating_n"] == len(stored)
            assert fit["objectives"]["rating"] == pytest.approx(5 - np.mean(stored))
            assert "rating" not in fit["measured_on"]["predicted"]
        else:
            assert extras["rating_source"] == "predicted" and extras["rating_std"] > 0
            assert "rating" in fit["measured_on"]["predicted"]
    assert len(by_key) > len(human_keys)
    predicted = [(f["objectives"]["f1"], f["extras"]["rating_mean"]) for k, f in by_key.items() if k not in human_keys]
    f1, mean = np.array(predicted).T
    assert np.corrcoef(f1, mean)[0, 1] < -0.25          # six rated genomes taught it that users like a small f1

    front = json.loads((r.run_dir / "front.json").read_text())
    assert front["objectives"] == ["f1", "f2", "rating"]
    assert all(p["rating"]["source"] in ("human", "predicted") for p in front["points"])
    table = format_front(front, "table")
    assert "rated by" in table.splitlines()[1] and ("human (" in table or "predicted (" in table)
    snapshot = json.loads((r.run_dir / "ratings.json").read_text())
    assert snapshot["model"] == "rated" and snapshot["unjoined_versions"] == [versions[-1]]
    assert len(snapshot["genomes"]) == len(points)

    # the cache holds the measured fitness only: a rating is never cached under the genome's key
    client = redis.Redis.from_url(redis_server.url)
    cached = [json.loads(client.get(k)) for k in client.scan_iter(match="evodiff:fit:*")]
    client.close()
    assert cached and all(set(c["objectives"]) == {"f1", "f2"} for c in cached)

    # a second search over the same candidates: every fitness is a cache hit, and still rated
    again = search(cfg("rated-2"))
    assert {rec["source"] for rec in again.records} == {"hit"}
    for rec in again.records:
        first = by_key[rec["key"]]
        assert rec["fitness"]["extras"]["rating_source"] == first["extras"]["rating_source"]
        assert rec["fitness"]["objectives"]["rating"] == pytest.approx(first["objectives"]["rating"])

    # a resume rates against the search's snapshot, whatever Redis holds now
    client = redis.Redis.from_url(redis_server.url)
    client.delete(*client.scan_iter(match="evodiff:serve:rated:*"))
    client.close()
    resumed = search(cfg("rated-1", generations=4), resume=True)
    assert len(resumed.records) > len(r.records)
    assert all(rec["fitness"]["extras"]["rating_source"] in ("human", "predicted") for rec in resumed.records)


def test_a_resume_without_its_ratings_snapshot_is_refused(tmp_path):
    """A resumed search rates with the ratings it started with; without the snapshot it says so."""
    from evodiff_ray.config import load_config
    from evodiff_ray.core.errors import UsageError
    from evodiff_ray.problems import make_problem
    from evodiff_ray.search.ratings import load_rating

    config = load_config(overrides={"problem": "zdt1", "rating_from": "tiny", "runs_dir": str(tmp_path),
                                    "search_id": "s1", "no_cache": True, "no_tracking": True})
    with pytest.raises(UsageError, match="ratings.json is missing"):
        load_rating(config, make_problem("zdt1", {}), resume=True)
