"""The deployment loop against a real Ray Serve on localhost, over real HTTP.

One Serve instance (gateway + a sampler application per live version), one embedded
redis-server and one sqlite MLflow registry serve the whole module; each test states the
production version it starts from. Versions are tiny untrained denoisers registered with
the real pyfunc (``serving_models.py``); version 3 is wider and samples with 1000 steps, which makes it slow (well over the SLO's p90 on any CPU).
The served-FD test registers one more version, briefly trained on digits, so that the FD
of what it serves can be told from the FD of an untrained version's noise.
"""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pytest

from serving_models import LEARNER, ServingStack, genome_with_steps, register_version

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.slow]

MODEL = "tiny"
#: small looks so that a canary decides in tens of requests; the rest is the stated policy
POLICY = dict(alpha=0.05, min_ratings=8, max_ratings=64, min_requests=8, max_requests=64, latency_tolerance=0.5,
              max_error_rate=0.05, max_p90_ms=300.0, slo_min_requests=5)


class Served(ServingStack):
    """Handles on the module's serving stack."""

    def __init__(self, tmp, ray):
        import requests
        from ray import serve

        self.runs = tmp / "evodiff-runs"
        self.runs.mkdir()
        self.uri = f"sqlite:///{self.runs / 'mlflow.db'}"
        self.v1 = register_version(self.uri, MODEL, self.runs / ".models", seed=0, alias="production")
        self.v2 = register_version(self.uri, MODEL, self.runs / ".models", seed=1)
        self.v3 = register_version(self.uri, MODEL, self.runs / ".models", genome_with_steps(1000, base_channels=96), seed=2)
        super().__init__(self.runs, self.uri, MODEL, self.v1)
        self.http = requests.Session()
        self.serve = serve

    # -- helpers ------------------------------------------------------------------------
    def generate(self, n=1, seed=0, **kw):
        return self.http.post(self.url + "/generate", json={"n": n, "seed": seed}, timeout=60, **kw)

    def rate(self, request_id, rating):
        return self.http.post(self.url + "/feedback", json={"request_id": request_id, "rating": int(rating)},
                              timeout=30)

    def ensure_production(self, version):
        """Start from ``version`` in production with no canary, all traffic on it."""
        state = self.controller.state()
        if state.challenger is not None:
            from evodiff_ray.serving.policy import Decision

            self.controller.rollback(Decision("rollback", "test setup"))
        if self.controller.state().production != version:
            self.controller.set_production(version, "test setup")
        self.wait_for(lambda s: s.production in s.ready and s.challenger is None, 120)

    def canary(self, version, share=50.0, **policy):
        from evodiff_ray.serving.policy import CanaryPolicy

        state = self.controller.start_canary(version, share, CanaryPolicy(**{**POLICY, **policy}))
        self.wait_for(lambda s: version in s.ready, 120)
        # the gateway re-reads the routing state every 0.2 s: until it has, a request is still
        # served (and recorded) under the previous deployment, and pairs across deployments are
        # rightly no evidence; traffic starts once the gateway routes the canary
        split = {state.production: 100.0 - share, version: share}
        assert self.wait_routes(split, 30) == split
        return state

    def wait_for(self, cond, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            s = self.controller.state()
            if cond(s):
                return s
            time.sleep(0.1)
        raise AssertionError(f"timed out; state {self.controller.state()}; errors {self.supervisor.errors}")

    def rate_until_decided(self, prefer, rng, limit=400):
        """Simulated raters: the preferred version is rated about 4, the other about 2.5."""
        deployment = self.controller.state().deployment
        for i in range(limit):
            r = self.generate(seed=i)
            assert r.status_code == 200, r.text
            version = r.headers["X-Model-Version"]
            mu = 4.0 if version == prefer else 2.5
            assert self.rate(r.headers["X-Request-Id"], np.clip(round(rng.normal(mu, 0.8)), 1, 5)).status_code == 200
            s = self.controller.state()
            if s.deployment != deployment and s.challenger is None:
                return s
        raise AssertionError("no decision within the request limit")

    def prefer_until_decided(self, prefer, rng, agree=0.9, limit=400):
        """Simulated raters shown two samples side by side, one from each arm: each rater prefers
        ``prefer``'s sample with probability ``agree``, and says so with ``POST /feedback``
        ``{"preferred", "other"}`` (request ids, as ``/generate`` returned them) until the policy decides."""
        state = self.controller.state()
        deployment, arms = state.deployment, {state.production, state.challenger}
        unpaired = {v: [] for v in arms}
        served_by = {v: 0 for v in arms}
        for i in range(limit):
            # the decision is checked before every request: once it is taken, production serves
            # everything, and a request from one arm with none of the other's waiting makes no pair
            s = self.controller.state()
            if s.deployment != deployment and s.challenger is None:
                return s
            r = self.generate(seed=i)
            assert r.status_code == 200, r.text
            version = r.headers["X-Model-Version"]
            served_by[version] += 1
            (other,) = arms - {version}
            if not unpaired[other]:
                unpaired[version].append(r.headers["X-Request-Id"])
                continue
            pair = {version: r.headers["X-Request-Id"], other: unpaired[other].pop()}
            liked = prefer if rng.random() < agree else (arms - {prefer}).pop()
            (disliked,) = arms - {liked}
            fb = self.http.post(self.url + "/feedback", json={"preferred": pair[liked], "other": pair[disliked]},
                                timeout=30)
            assert fb.status_code == 200, fb.text
            # credited to the versions that served the two requests; evidence unless the
            # decision came first and this request was already served in the next deployment
            assert (fb.json()["preferred"], fb.json()["other"]) == (liked, disliked), fb.text
            assert fb.json()["evidence"] or self.controller.state().deployment != deployment, fb.text
        raise AssertionError(f"no decision within the request limit; served {served_by}; "
                             f"state {self.controller.state()}; errors {self.supervisor.errors}")

    def finished_run(self, run_id, timeout_s=60):
        """The deployment's MLflow run once its decision is recorded: the controller's last write
        of a decision, after the routing state, the version tags and the event."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = self.recorder.client.get_run(run_id)
            if "decision" in run.data.tags:
                return run
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} got no decision tag within {timeout_s} s")

    @staticmethod
    def _poll(read, done, timeout_s):
        """``read()`` every 0.1 s until ``done`` of it or the timeout; the last value read."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = read()
            if done(got) or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def wait_events(self, kind, deployment, timeout_s=30):
        """The ``kind`` events of ``deployment`` once there is one: the controller writes the
        routing state first and the event just after it."""
        return self._poll(lambda: [e for e in self.controller.events.history()
                                   if e["kind"] == kind and e["deployment"] == deployment], bool, timeout_s)

    def wait_routes(self, expected, timeout_s=10):
        """``GET /readyz``'s routes once they equal ``expected`` (a gateway re-reads the state every 0.2 s)."""
        return self._poll(lambda: self.http.get(self.url + "/readyz", timeout=30).json().get("routes"),
                          lambda got: got == expected, timeout_s)

    def models(self):
        """``GET /models`` as JSON, its entries keyed by version."""
        r = self.http.get(self.url + "/models", timeout=30)
        assert r.status_code == 200, r.text
        return {e["version"]: e for e in r.json()["versions"]}


class Traffic:
    """Background requests counting failures, to show traffic switches drop nothing."""

    def __init__(self, url, threads=2):
        import requests

        self.url, self.ok, self.failed = url, 0, []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(requests.Session(),), daemon=True)
                         for _ in range(threads)]

    def _run(self, http):
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                r = http.post(self.url + "/generate", json={"n": 1, "seed": i}, timeout=60)
                if r.status_code == 200:
                    self.ok += 1
                else:
                    self.failed.append(f"{r.status_code} {r.text[:200]}")
            except Exception as e:   # a dropped connection is a failed request too
                self.failed.append(repr(e))

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory, request):
    import logging

    # the supervisor says what it starts, retires and deletes: shown with a failing test
    logging.getLogger("evodiff_ray.serving").setLevel(logging.INFO)
    ray = request.getfixturevalue("ray_runtime")
    s = Served(tmp_path_factory.mktemp("serving"), ray)
    yield s
    s.close()


def _events(served, kind):
    return [e for e in served.controller.events.history() if e["kind"] == kind]


def test_http_api_and_bad_input(served):
    served.ensure_production(served.v1)
    http, url = served.http, served.url
    assert http.get(url + "/healthz").json() == {"status": "ok"}
    assert http.get(url + "/readyz").json()["routes"] == {served.v1: 100.0}
    # PNG by default, npz and JSON on request; the request id and the serving version come back
    r = served.generate(n=4, seed=7)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
    assert r.headers["X-Model-Version"] == served.v1 and r.headers["X-Request-Id"]
    import io

    npz = np.load(io.BytesIO(served.generate(n=4, seed=7, headers={"Accept": "application/x-npz"}).content),
                  allow_pickle=False)
    assert npz["images"].shape == (4, 1, 8, 8) and str(npz["version"]) == served.v1
    again = np.load(io.BytesIO(served.generate(n=4, seed=7, headers={"Accept": "application/x-npz"}).content),
                    allow_pickle=False)
    assert np.array_equal(npz["images"], again["images"])          # the seed decides the samples
    js = served.generate(n=2, seed=1, headers={"Accept": "application/json"}).json()
    assert js["version"] == served.v1 and js["shape"] == [2, 1, 8, 8] and js["png_base64"]
    # bad input: 4xx with one line, never a 500
    bad = [(b'{"n": 1000}', 400, "out of range"), (b'{"n": 2, "seed": 1.5}', 400, "integer"),
           (b'{"n": 2, "seed": "7"}', 400, "integer"), (b"not json", 400, "not valid JSON"),
           (b'[1, 2]', 400, "JSON object"), (b'{"n": 2, "steps": 3}', 400, "unknown field"),
           (b'{"n": true}', 400, "integer")]
    for body, status, words in bad:
        r = http.post(url + "/generate", data=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status and words in r.json()["error"] and "\n" not in r.json()["error"], (body, r.text)
    r = http.post(url + "/generate", json={"n": 1}, headers={"Accept": "text/html"})
    assert r.status_code == 406
    assert served.rate("0123456789abcdef", 3).status_code == 404
    ok = served.generate(seed=3)
    rid = ok.headers["X-Request-Id"]
    assert served.rate(rid, 9).status_code == 400
    assert served.rate(rid, 4).json() == {"request_id": rid, "version": served.v1, "rating": 4}
    assert served.rate(rid, 5).status_code == 409                  # one rating per request
    pref = http.post(url + "/feedback", json={"preferred": rid, "other": "nope-not-served"})
    assert pref.status_code == 404
    # the read-only search views: the front JSON as 'front --format json' prints it
    from evodiff_ray.cache.front_store import read_front

    front = {"search_id": "s1", "status": "finished", "generation": 1, "evaluations": 2,
             "cache": {"hits": 0, "misses": 2, "waited": 0}, "utilization": 1.0, "objectives": ["a", "b"],
             "points": [{"key": "k" * 64, "objectives": {"a": 1.0, "b": 2.0}, "genome": {}, "generation": 1,
                         "parents": [], "measured_on": {"node": "n", "device": "cpu", "chip": None,
                                                        "predicted": []}}]}
    (served.runs / "s1").mkdir(exist_ok=True)
    (served.runs / "s1" / "front.json").write_text(json.dumps(front))
    assert [s["search_id"] for s in http.get(url + "/searches").json()] == ["s1"]
    assert http.get(url + "/searches/s1/front").json() == read_front("s1", str(served.runs))
    r = http.get(url + "/searches/nope/front")
    assert r.status_code == 404 and "no search 'nope'" in r.json()["error"]
    models = http.get(url + "/models").json()
    (entry,) = models["versions"]
    assert entry["version"] == served.v1 and entry["share"] == 100.0 and entry["deployment"]["requests"] >= 5


def test_raters_preferring_production_roll_the_challenger_back_with_no_failed_request(served):
    served.ensure_production(served.v1)
    served.canary(served.v2)
    with Traffic(served.url) as traffic:
        state = served.rate_until_decided(prefer=served.v1, rng=np.random.default_rng(1))
        time.sleep(served.options.grace_s + 1.5)      # through the challenger's retirement
    assert state.production == served.v1 and state.challenger is None
    (event,) = [e for e in _events(served, "rollback") if e["version"] == served.v2]
    assert event["reason"].startswith(("ratings: challenger rated lower", "inconclusive")), event
    assert traffic.failed == [] and traffic.ok > 0
    client = served.recorder.client
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == served.v1   # alias unchanged
    tags = client.get_model_version(MODEL, served.v2).tags
    assert tags["rolled_back"] == "true" and tags["reason"] == event["reason"] and "deployed_at" in tags


def test_raters_preferring_the_challenger_promote_it_with_no_failed_request(served):
    served.ensure_production(served.v1)
    deploy = served.canary(served.v2)
    with Traffic(served.url) as traffic:
        state = served.rate_until_decided(prefer=served.v2, rng=np.random.default_rng(2))
        time.sleep(served.options.grace_s + 1.5)      # through the old production's retirement
    assert state.production == served.v2 and state.challenger is None and served.v1 in state.history
    assert traffic.failed == [] and traffic.ok > 0
    promote = [e for e in _events(served, "promote") if e["deployment"] == deploy.deployment]
    assert len(promote) == 1 and promote[0]["reason"].startswith(("ratings: challenger rated higher",)), promote
    client = served.recorder.client
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == served.v2
    assert "promoted_at" in client.get_model_version(MODEL, served.v2).tags
    run = client.get_run(deploy.run_id)          # a run per deployment, metrics over time, the decision
    assert run.data.tags["decision"] == "promote" and run.info.status == "FINISHED"
    assert run.data.metrics["challenger.ratings"] >= POLICY["min_ratings"]
    assert len(client.get_metric_history(deploy.run_id, "challenger.requests")) >= 2
    assert served.http.get(served.url + "/readyz").json()["routes"] == {served.v2: 100.0}


def test_raters_preferring_production_in_pairs_roll_the_challenger_back(served):
    from evodiff_ray.serving.metrics import Keys, arm_stats

    served.ensure_production(served.v1)
    deploy = served.canary(served.v2)
    state = served.prefer_until_decided(prefer=served.v1, rng=np.random.default_rng(3))
    assert state.production == served.v1 and state.challenger is None
    assert served.finished_run(deploy.run_id).data.tags["decision"] == "rollback"
    (event,) = [e for e in _events(served, "rollback") if e["deployment"] == deploy.deployment]
    assert event["version"] == served.v2 and event["reason"].startswith("preferences: production preferred"), event
    assert event["details"]["ratings_look"] is None and event["details"]["pairs_look"] >= POLICY["min_ratings"]
    # the pairs were credited to both arms of the deployment, production winning most
    prod, chal = (arm_stats(served.client, Keys(MODEL), deploy.deployment, v) for v in (served.v1, served.v2))
    assert len(prod.pairs) == len(chal.pairs) >= event["details"]["pairs_look"]
    assert sum(prod.pairs) + sum(chal.pairs) == len(chal.pairs) and sum(chal.pairs) < len(chal.pairs) / 2
    assert prod.ratings == chal.ratings == []
    client = served.recorder.client
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == served.v1   # alias unchanged
    assert client.get_model_version(MODEL, served.v2).tags["rolled_back"] == "true"
    assert served.wait_routes({served.v1: 100.0}) == {served.v1: 100.0}


def test_raters_preferring_the_challenger_in_pairs_promote_it(served):
    served.ensure_production(served.v1)
    deploy = served.canary(served.v2)
    state = served.prefer_until_decided(prefer=served.v2, rng=np.random.default_rng(4))
    assert state.production == served.v2 and state.challenger is None and served.v1 in state.history
    run = served.finished_run(deploy.run_id)
    assert run.data.tags["decision"] == "promote" and run.data.metrics["challenger.wins"] >= POLICY["min_ratings"]
    (event,) = [e for e in _events(served, "promote") if e["deployment"] == deploy.deployment]
    assert event["version"] == served.v2 and event["previous"] == served.v1
    assert event["reason"].startswith("preferences: challenger preferred"), event
    assert event["details"]["ratings_look"] is None and event["details"]["pairs_look"] >= POLICY["min_ratings"]
    client = served.recorder.client
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == served.v2    # the alias moved
    assert "promoted_at" in client.get_model_version(MODEL, served.v2).tags
    assert served.wait_routes({served.v2: 100.0}) == {served.v2: 100.0}      # the challenger takes it all
    assert served.generate(seed=1).headers["X-Model-Version"] == served.v2


def test_an_application_gone_behind_the_supervisors_back_gets_no_traffic_and_is_started_again(served):
    """The state marks a version ready but its Serve application is gone (deleted by hand, or by a
    retirement that raced the version's redeploy, as a CI run once showed): no request fails, the
    version is marked not ready and started again, and then it takes its share once more."""
    from evodiff_ray.serving.app import version_app_name

    served.ensure_production(served.v1)
    served.canary(served.v2, max_requests=100_000, max_ratings=100_000, min_requests=100_000)
    # a pass that read the state before this canary started must not delete it
    served.supervisor._delete_if_retired(served.v2)
    assert version_app_name(MODEL, served.v2) in served.serve.status().applications
    # not waiting for the deletion: the supervisor may start the version again before it ends
    served.serve.delete(version_app_name(MODEL, served.v2), _blocking=False)
    statuses = [served.generate(seed=i).status_code for i in range(10)]
    assert set(statuses) == {200}
    # the supervisor sees the application gone (its next pass) and marks the version not ready;
    # waiting for "ready" alone could pass before that, on the stale state
    served.wait_for(lambda s: served.v2 not in s.ready, 60)
    served.wait_for(lambda s: served.v2 in s.ready and s.challenger == served.v2, 120)
    assert served.wait_routes({served.v1: 50.0, served.v2: 50.0}) == {served.v1: 50.0, served.v2: 50.0}
    versions = {served.generate(seed=i).headers["X-Model-Version"] for i in range(40)}
    assert versions == {served.v1, served.v2}
    served.ensure_production(served.v1)


def test_the_gateway_samples_the_versions_itself_and_follows_the_routing(served):
    """``serve``'s default (``--inline``): once the gateway holds a version's pyfunc it samples it
    in its own process, with the same samples as its sampler replica (``--no-inline``) and as
    the registered model in-process; switching between the two drops no request; a canary's
    version is loaded too, both arms sample in the gateway, and after a rollback only
    production serves."""
    import io

    import mlflow

    from evodiff_ray.serving.policy import Decision
    from evodiff_ray.tracking.mlflow_tracker import point_mlflow_at

    def images(r):
        assert r.status_code == 200, r.text
        assert r.headers["X-Model-Version"] == served.v1, r.headers       # like with like
        return np.load(io.BytesIO(r.content), allow_pickle=False)["images"]

    def sampled_in(where):
        return served._poll(lambda: served.generate(seed=0).headers.get("X-Sampled-In"), lambda w: w == where, 60)

    def redeploy_gateway(inline):
        served.supervisor.options.inline = inline
        with Traffic(served.url) as traffic:
            served.supervisor.deploy_gateway()        # Serve rolls the gateway's replica in place
            assert sampled_in("gateway" if inline else "replica") == ("gateway" if inline else "replica")
        assert traffic.failed == [] and traffic.ok > 0

    npz = {"Accept": "application/x-npz"}
    served.ensure_production(served.v1)
    # the gateway re-reads the state every 0.2 s: until then it may route by the last test's
    assert served.wait_routes({served.v1: 100.0}) == {served.v1: 100.0}
    assert sampled_in("gateway") == "gateway"
    inline = images(served.generate(n=3, seed=11, headers=npz))
    assert served.models()[served.v1]["sampled_in"] == "gateway"
    try:
        redeploy_gateway(inline=False)
        from_replica = images(served.generate(n=3, seed=11, headers=npz))
        assert served.models()[served.v1]["sampled_in"] == "replica"
    finally:
        redeploy_gateway(inline=True)
    point_mlflow_at(served.uri)
    local = mlflow.pyfunc.load_model(f"models:/{MODEL}/{served.v1}").predict({"n": 3, "seed": 11})
    assert np.array_equal(inline, from_replica) and np.allclose(inline, local, atol=1e-6)

    served.canary(served.v2, max_requests=100_000, max_ratings=100_000, min_requests=100_000)
    both = served._poll(lambda: {(r.headers["X-Model-Version"], r.headers["X-Sampled-In"])
                                 for r in (served.generate(seed=i) for i in range(12))},
                        lambda got: got == {(served.v1, "gateway"), (served.v2, "gateway")}, 60)
    assert both == {(served.v1, "gateway"), (served.v2, "gateway")}
    assert {v: e["sampled_in"] for v, e in served.models().items()} == {served.v1: "gateway", served.v2: "gateway"}
    served.controller.rollback(Decision("rollback", "test: the canary ends"))
    assert served.wait_routes({served.v1: 100.0}) == {served.v1: 100.0}
    assert {(r.headers["X-Model-Version"], r.headers["X-Sampled-In"])
            for r in (served.generate(seed=i) for i in range(12))} == {(served.v1, "gateway")}


def test_served_sample_fd_over_a_rolling_window_shows_in_models(served, one_torch_thread):
    """The background pass (``fd_interval_s``, off elsewhere in this module: it costs CPU) puts the
    FD of each live version's last served images in ``GET /models``; a version that draws noise
    scores far worse than one trained on digits."""
    from evodiff_ray.serving.app import SAMPLES_KEPT
    from evodiff_ray.serving.metrics import Keys

    trained = register_version(served.uri, MODEL, served.runs / ".models", LEARNER, seed=3, train_steps=1000)
    served.ensure_production(served.v1)
    keys = Keys(MODEL)
    for v in (served.v1, trained):                 # this test's traffic only
        served.client.delete(keys.samples(v), keys.fd(v))
    # the canary stays while the FD is measured: no latency look or SLO in reach, no ratings
    served.canary(trained, share=30.0, min_requests=10_000, max_requests=10_000, max_p90_ms=1e6)
    n, started = 64, time.time()
    requests_of = {served.v1: 0, trained: 0}
    for i in range(200):
        if requests_of[served.v1] > SAMPLES_KEPT // n and requests_of[trained] >= 4:
            break                                  # production's window has rolled over; 256 of the canary's
        r = served.generate(n=n, seed=i)
        assert r.status_code == 200, r.text
        requests_of[r.headers["X-Model-Version"]] += 1
    window = {v: n * min(k, SAMPLES_KEPT // n) for v, k in requests_of.items()}
    # FD is biased upwards on few samples: 128 of the trained version's once scored 233 against
    # ~173 on more, too close to the noise's ~420 for the ratio below
    assert window[served.v1] == SAMPLES_KEPT and window[trained] >= 4 * n, requests_of
    # all traffic is in: the first pass sees each version's whole window
    served.options.fd_interval_s = 0.5             # the supervisor reads its options every turn
    try:
        deadline, fd = time.monotonic() + 180, {}
        while time.monotonic() < deadline:
            fd = {v: e["fd"] for v, e in served.models().items()}
            if all(fd.get(v) for v in window):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no FD of served samples in GET /models: {fd}")
    finally:
        served.options.fd_interval_s = 0
    for v in window:
        assert fd[v]["samples"] == window[v] and fd[v]["at"] >= started, (fd, window)
        assert math.isfinite(fd[v]["fd"]) and fd[v]["fd"] > 0, fd
    assert fd[served.v1]["fd"] > 1.8 * fd[trained]["fd"], fd     # noise vs digits


def test_slow_challenger_breaches_the_slo_and_is_rolled_back_at_once(served):
    served.ensure_production(served.v2)
    t0 = time.monotonic()
    deploy = served.canary(served.v3)
    ready_at = time.monotonic()
    statuses, i = [], 0
    # requests until the policy has acted (bounded by time, not by a count: the challenger's
    # share of the traffic must add up to the SLO's minimum and a check must run)
    while served.controller.state().challenger is not None and time.monotonic() - ready_at < 90:
        statuses.append(served.generate(seed=i).status_code)
        i += 1
    decided_after = time.monotonic() - ready_at
    (event,) = served.wait_events("rollback", deploy.deployment)
    assert event["reason"].startswith("slo: p90 latency"), event
    assert set(statuses) == {200}
    # the stated window: slo_min_requests challenger requests at its share, plus one check interval
    assert decided_after < 60, (decided_after, time.monotonic() - t0)
    assert str(served.recorder.client.get_model_version_by_alias(MODEL, "production").version) == served.v2


def test_cli_rollback_deploy_errors_and_history(served, capsys):
    from evodiff_ray.cli import main

    served.ensure_production(served.v2)
    conn = ["--redis-url", served.redis_server.url, "--tracking-uri", served.uri, "--runs-dir", str(served.runs)]
    assert main(["deploy", MODEL, "--version", "99", "--canary", "10", *conn]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no version 99" in err
    with pytest.raises(SystemExit) as e:
        main(["deploy", MODEL, "--version", served.v1, "--canary", "101", *conn])
    assert e.value.code == 2 and "outside 0-100" in capsys.readouterr().err
    assert main(["deploy", "no-such-model", "--version", "1", *conn]) == 2
    assert "no registered model" in capsys.readouterr().err
    # by hand: back to the previous production (the alias moves back)
    assert main(["rollback", MODEL, "--format", "json", *conn]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["production"] == served.v1 and out["rolled_back"] == served.v2
    served.wait_for(lambda s: s.production == served.v1 and served.v1 in s.ready, 120)
    assert str(served.recorder.client.get_model_version_by_alias(MODEL, "production").version) == served.v1
    assert served.generate().headers["X-Model-Version"] == served.v1
    assert main(["deployments", MODEL, "--format", "json", *conn]) == 0
    kinds = [e["kind"] for e in json.loads(capsys.readouterr().out)["events"]]
    assert kinds[0] == "serve" and {"deploy", "promote", "rollback"} <= set(kinds) and kinds[-1] == "rollback"
    assert main(["deployments", MODEL, *conn]) == 0
    table = capsys.readouterr().out
    assert "slo: p90 latency" in table and f"{MODEL} now: production {served.v1}" in table


def test_feedback_and_metrics_survive_replica_and_redis_restarts(served):
    import ray

    from evodiff_ray.cache.local_redis import LocalRedis
    from evodiff_ray.serving.metrics import Keys, arm_stats

    served.ensure_production(served.v1)
    keys, dep = Keys(MODEL), served.controller.state().deployment
    acked = 0
    for i in range(5):
        r = served.generate(seed=i)
        acked += served.rate(r.headers["X-Request-Id"], 3).status_code == 200
    # kill every replica of the model (gateway and sampler) mid-traffic; Serve replaces them
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == "serve" and f"evodiff-{MODEL}" in a["name"] and "REPLICA" in a["name"]]
    assert names
    for name in names:
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            r = served.generate(seed=99)
            if r.status_code == 200:
                break
        except Exception:
            pass
        time.sleep(0.5)
    assert served.rate(r.headers["X-Request-Id"], 3).status_code == 200
    acked += 1
    assert len(arm_stats(served.client, keys, dep, served.v1).ratings) == acked
    # Redis restarts (clean shutdown, same data dir and port): state, metrics and events are back
    before = arm_stats(served.client, keys, dep, served.v1)
    n_events = len(served.controller.events.history())
    port = served.redis_server.port
    served.redis_server.stop(force=True)
    served.redis_server = LocalRedis(served.runs / ".redis", port=port).start(reuse=False)
    after = arm_stats(served.client, keys, dep, served.v1)
    assert (after.requests, after.ratings) == (before.requests, before.ratings)
    assert len(served.controller.events.history()) == n_events
    # and the gateway reconnects: requests are recorded and rateable again
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = served.generate(seed=123)
        if r.status_code == 200 and served.rate(r.headers["X-Request-Id"], 5).status_code == 200:
            break
        time.sleep(0.5)
    assert arm_stats(served.client, keys, dep, served.v1).ratings[-1] == 5
