"""The real pieces of ``adapt`` without Ray: the watched folder's digest, the canary effects on a
real Redis (started once, decided by the serving controller's event, timed out), the served
snapshot, and the command's one-line errors."""

import json
import time

import numpy as np
import pytest

from evodiff_ray.adapt.cycle import begin
from evodiff_ray.adapt.observe import DatasetWatch, served_snapshot
from evodiff_ray.adapt.options import AdaptOptions
from evodiff_ray.adapt.state import CANARY, REGISTERED, AdaptState
from evodiff_ray.adapt.triggers import Trigger
from evodiff_ray.cli import main
from evodiff_ray.core.errors import UsageError


#: a small genome inside the default search space (a registered version's ``genome`` tag)
GENOME = {"parameters": {"base_channels": 16, "channel_mults": [1], "time_emb_dim": 16, "sampler_steps": 5,
                         "norm_groups": 1},
          "layers": [{"kind": "conv", "side": "mid", "level": 0, "kernel": 3}], "connections": [],
          "generation": 1, "parents": []}


def write_pngs(folder, images, start=0):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray((im * 255).astype(np.uint8), mode="L").save(folder / f"img{start + i:04d}.png")


def digits(n, offset=0):
    from sklearn.datasets import load_digits

    return load_digits().images[offset:offset + n] / 16.0


def test_the_watched_folder_changes_digest_once_the_copy_has_settled(tmp_path):
    data = tmp_path / "data"
    write_pngs(data, digits(12))
    watch = DatasetWatch(data)
    first = watch.check()
    assert len(first) == 64 and watch.digest() == first
    write_pngs(data, digits(3, offset=50), start=100)
    assert watch.digest() == first                  # changed: seen once, not settled yet
    second = watch.digest()
    assert second != first and watch.digest() == second
    (data / "broken.png").write_bytes(b"not a png")
    watch.digest()
    assert watch.digest() == second and "unreadable image" in watch.error   # a bad file is not new data
    (data / "broken.png").unlink()
    watch.digest()
    assert watch.digest() == second and watch.error is None
    with pytest.raises(UsageError, match=r"--watch .*empty: no images found"):
        (tmp_path / "empty").mkdir()
        DatasetWatch(tmp_path / "empty").check()


@pytest.mark.redis
def test_a_canary_is_started_once_and_its_decision_is_the_serving_controllers(redis_server, tmp_path, monkeypatch):
    import threading

    import redis

    from evodiff_ray.adapt import effects
    from evodiff_ray.adapt.effects import LiveEffects
    from evodiff_ray.serving.controller import Controller
    from evodiff_ray.serving.policy import CanaryPolicy, Decision

    monkeypatch.setattr(effects, "OTHER_CANARY_POLL_S", 0.1)

    client = redis.Redis.from_url(redis_server.url)
    opts = AdaptOptions(model="tiny", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", redis_url=redis_server.url,
                        runs_dir=str(tmp_path), canary_share=30.0, canary_policy={"min_ratings": 5},
                        decision_timeout_s=60.0)
    fx = LiveEffects(opts, client, say=lambda m: None)
    fx.controller = Controller(client, "tiny")            # Redis only: no MLflow in this test
    fx.controller.start_serving("1")
    snap = served_snapshot(client, "tiny")
    assert snap.version == "1" and not snap.canary and snap.ratings == 0 and snap.fd is None

    state = begin(AdaptState("tiny"), Trigger("manual", {}, time.time() - 1)).evolve(stage=REGISTERED, version="2")
    dep = fx.start_canary(state)
    assert fx.start_canary(state) == dep                   # a resumed cycle finds its canary
    routing = fx.controller.state()
    assert routing.challenger == "2" and routing.share == 30.0 and routing.policy["min_ratings"] == 5
    assert served_snapshot(client, "tiny").canary
    # the serving controller decides (as 'serve' does when the policy says so)
    threading.Timer(1.0, fx.controller.promote, [Decision("promote", "ratings: challenger rated higher")]).start()
    assert fx.wait_decision(state.evolve(stage=CANARY, deployment=dep)) == (
        "promote", "ratings: challenger rated higher")
    assert fx.start_canary(state) == dep                   # decided already: never started twice
    assert [e["kind"] for e in fx.controller.events.history()].count("deploy") == 1

    # no decision in time: the canary is rolled back, the alias untouched
    fx.options.decision_timeout_s = 1.0
    state3 = begin(AdaptState("tiny", cycle=1), Trigger("manual", {}, time.time() - 1)).evolve(
        stage=REGISTERED, version="3")
    dep3 = fx.start_canary(state3)
    decision, reason = fx.wait_decision(state3.evolve(stage=CANARY, deployment=dep3))
    assert decision == "rollback" and reason.startswith("adapt: no decision within 1 s")
    routing = fx.controller.state()
    assert routing.challenger is None and routing.production == "2"

    # someone else's canary runs: ours waits for its decision instead of superseding it
    fx.controller.start_canary("9", 10.0, CanaryPolicy())
    threading.Timer(0.5, fx.controller.rollback, [Decision("rollback", "by hand")]).start()
    state4 = begin(AdaptState("tiny", cycle=2), Trigger("manual", {}, time.time() - 1)).evolve(
        stage=REGISTERED, version="4")
    dep4 = fx.start_canary(state4)
    rollbacks = [e for e in fx.controller.events.history() if e["kind"] == "rollback"]
    assert rollbacks[-1]["version"] == "9" and rollbacks[-1]["reason"] == "by hand"      # not superseded
    assert fx.controller.state().challenger == "4" and fx.controller.state().deployment == dep4

    # told to stop while it waits for that canary: it stops at once and leaves the canary running
    from evodiff_ray.adapt.cycle import Stopped

    fx.options.decision_timeout_s = 600.0
    fx.stop = threading.Event()
    threading.Timer(0.3, fx.stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(Stopped):
        fx.wait_decision(state4.evolve(stage=CANARY, deployment=dep4))
    assert time.monotonic() - t0 < 5 and fx.controller.state().challenger == "4"
    client.close()


# -- the command's one-line errors -----------------------------------------------------------
@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A sqlite registry with model 'tiny' (version 1; the 'production' alias is set by the errors test)
    and the runs dir it lives in, shared by this module's tests (a new sqlite store takes seconds)."""
    from mlflow import MlflowClient

    runs = tmp_path_factory.mktemp("adapt-registry") / "runs"
    runs.mkdir()
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("tiny")
    run = client.create_run(client.create_experiment("x"))
    client.create_model_version("tiny", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return client, uri, runs


def _adapt(capsys, *argv):
    code = main(["adapt", *argv])
    err = capsys.readouterr().err.strip()
    return code, err


def test_bad_input_is_one_line_and_exit_2(registry, tmp_path, capsys):
    client, uri, runs = registry
    conn = ["--tracking-uri", uri, "--runs-dir", str(runs)]
    code, err = _adapt(capsys, "tiny", *conn)
    assert code == 2 and "nothing to watch" in err and "\n" not in err
    code, err = _adapt(capsys, "nope", "--every", "6h", *conn)
    assert code == 2 and "no registered model 'nope'" in err and "\n" not in err
    code, err = _adapt(capsys, "tiny", "--every", "6h", *conn)
    assert code == 2 and "has no 'production' alias; set one with 'evodiff-ray deploy tiny --version V --promote'" in err
    client.set_registered_model_alias("tiny", "production", "1")
    (tmp_path / "empty").mkdir()
    code, err = _adapt(capsys, "tiny", "--watch", str(tmp_path / "empty"), *conn)
    assert code == 2 and err.startswith(f"evodiff-ray: error: --watch {tmp_path / 'empty'}: ") and "no images" in err
    code, err = _adapt(capsys, "tiny", "--watch", str(tmp_path / "missing"), *conn)
    assert code == 2 and "no such dataset" in err
    code, err = _adapt(capsys, "tiny", "--every", "6h", "--policy", "min_ratings=0", *conn)
    assert code == 2 and err.startswith("evodiff-ray: error: --policy: need 1 <= min_ratings")
    code, err = _adapt(capsys, "tiny", "--every", "6h", "--policy", "nope=1", *conn)
    assert code == 2 and "unknown field 'nope'" in err
    code, err = _adapt(capsys, "tiny", "--every", "6h", "-S", "pop_size=x", *conn)
    assert code == 2 and "pop_size" in err and "\n" not in err
    code, err = _adapt(capsys, "tiny", "--rating-below", "9", *conn)
    assert code == 2 and "rating_below" in err
    # production's genome is the first warm start: a version without one is refused at once
    code, err = _adapt(capsys, "tiny", "--every", "6h", *conn)
    assert code == 2 and "carries no 'genome' tag" in err and "\n" not in err
    client.set_model_version_tag("tiny", "1", "genome", json.dumps({**GENOME, "parameters": {
        **GENOME["parameters"], "sampler_steps": 4}}))
    code, err = _adapt(capsys, "tiny", "--every", "6h", *conn)
    assert code == 2 and "does not fit this search's space (sampler_steps=4" in err and "\n" not in err
    client.set_model_version_tag("tiny", "1", "genome", json.dumps(GENOME))
    # inputs are fine, but nothing serves the model: no Redis for this runs dir
    code, err = _adapt(capsys, "tiny", "--every", "6h", "-S", "fidelity=smoke", *conn)
    assert code == 2 and "no Redis runs for" in err
    with pytest.raises(SystemExit) as e:
        main(["adapt", "tiny", "--every", "six hours", *conn])
    assert e.value.code == 2 and "is not a duration" in capsys.readouterr().err


def test_a_cycles_run_is_found_again_on_a_resume(registry):
    from evodiff_ray.adapt.effects import CycleRecorder

    _, uri, runs = registry
    rec = CycleRecorder(uri, "evodiff-adapt-tiny", runs)
    state = begin(AdaptState("tiny"), Trigger("data", {"old": "a", "new": "b"}, 1.0))
    first = rec.open_run(state, {"model": "tiny"})
    assert first and rec.open_run(state, {"model": "tiny"}) == first
    rec.record(state.evolve(run_id=first, stage="decided", decision="rollback", reason="slo: p90"))
    run = rec.client.get_run(first)
    assert run.data.tags["trigger.kind"] == "data" and run.data.tags["decision"] == "rollback"
    assert run.info.status == "FINISHED" and run.data.tags["adapt.search_id"] == state.search_id


class _Interrupt:
    """A search tracker that stops the 'process' after the first generation (its checkpoint is written)."""

    def __getattr__(self, name):
        return lambda *a, **k: None

    def on_generation(self, stats, front):
        raise KeyboardInterrupt


def test_an_interrupted_cycle_search_is_resumed_from_its_checkpoint(registry):
    """``search`` resumes a cycle's search whose run dir holds a checkpoint (the saved config,
    ``--resume`` semantics); a problem whose candidates are not models registers nothing."""
    from evodiff_ray.adapt.effects import LiveEffects
    from evodiff_ray.adapt.state import SEARCHING

    _, uri, runs = registry
    opts = AdaptOptions(model="tiny", tracking_uri=uri, runs_dir=str(runs),
                        search_overrides={"problem": "zdt1", "pop_size": 6, "generations": 3, "backend": "local",
                                          "no_cache": True, "no_reference": True})
    state = begin(AdaptState("tiny"), Trigger("manual", {}, 1.0)).evolve(stage=SEARCHING, seed_from=None)
    with pytest.raises(KeyboardInterrupt):
        LiveEffects(opts, client=None, trackers=[_Interrupt()], say=lambda m: None).search(state)
    run_dir = runs / state.search_id
    assert (run_dir / "checkpoint").exists()
    said = []
    fx = LiveEffects(opts, client=None, say=said.append)
    fx.search(state)
    assert said == [f"cycle 1: resuming search {state.search_id}"]
    front = json.loads((run_dir / "front.json").read_text())
    assert front["status"] == "finished" and front["generation"] == 3
    assert fx.register(state) is None            # zdt1's candidates are not models


def test_a_front_of_models_that_registered_nothing_is_retried_not_decided(registry):
    """Registration swallowed a failure (MLflow down): the stage raises, so the cycle retries it
    (resuming the finished search registers again) instead of ending as 'none'."""
    from evodiff_ray.adapt.effects import LiveEffects
    from evodiff_ray.adapt.state import SEARCHING
    from evodiff_ray.core.errors import RuntimeFailure

    _, uri, runs = registry
    opts = AdaptOptions(model="tiny", tracking_uri=uri, runs_dir=str(runs))
    state = begin(AdaptState("tiny"), Trigger("manual", {}, 1.0)).evolve(stage=SEARCHING, seed_from=None)
    run_dir = runs / state.search_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({"problem": "diffusion"}))
    (run_dir / "front.json").write_text(json.dumps({"points": [{"key": "ab" * 32, "objectives": {}}]}))
    fx = LiveEffects(opts, client=None, say=lambda m: None)
    with pytest.raises(RuntimeFailure, match="registered nothing"):
        fx.register(state)
    (run_dir / "front.json").write_text(json.dumps({"points": []}))   # an empty front: nothing to register
    assert fx.register(state) is None
