"""The Ray Serve side: one ``Sampler`` application per model version, and the ``Gateway`` ingress.

- ``evodiff-<model>-v<version>`` runs :class:`Sampler`: the registered pyfunc of that
  version, loaded once per replica; ``generate(n, seed)`` returns ``(n, C, H, W)`` images.
  It has no HTTP route: only the gateway calls it.
- ``evodiff-<model>`` runs :class:`Gateway` at ``/``: the HTTP API. Each request reads the
  routing state (cached for ``refresh_s``), picks a version by its traffic share, calls that
  version's sampler, records the outcome in Redis and answers with the request id and the
  version. Traffic moves when the state changes; no application is redeployed for that.
- With ``inline=True`` (``serve``'s default; ``--no-inline`` turns it off) the gateway also
  loads each ready version's pyfunc into its own process, in the background, and samples
  there once it holds it: no hop to a sampler replica (``bench_serving.py``: the hop costs
  5-11 ms at p50). Each version samples on its own thread, so a slow challenger does not
  queue production's requests. The sampler applications still run: they are what makes a
  version ready, and the gateway calls them until its own copy is loaded, or if that copy
  fails to load. A challenger still loading takes no traffic (:func:`inline_routing`).

Routes: ``POST /generate``, ``POST /feedback``, ``GET /models``, ``GET /searches``,
``GET /searches/{id}/front``, ``GET /healthz`` (the process answers), ``GET /readyz`` (a
version is ready to serve). Client mistakes are 4xx with ``{"error": one line}``.
"""

# no ``from __future__ import annotations`` here: FastAPI reads the routes' annotations
# (``Request``) at runtime, and Serve's ingress wrapper loses the module they resolve in

import asyncio
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from evodiff_ray.serving.codec import (JSON, MAX_N, NPZ, PNG, BadRequest, choose_format, json_body, npz_bytes,
                                       parse_generate, png_grid)
from evodiff_ray.serving.feedback import ID_PATTERN as _ID
from evodiff_ray.serving.feedback import parse_feedback, submit
from evodiff_ray.serving.metrics import Keys, record_request
from evodiff_ray.serving.quality import encode_samples
from evodiff_ray.serving.state import RoutingState, pick, routes, state_key

log = logging.getLogger(__name__)

#: served images kept per version for the rolling FD (see ``serving/quality.py``)
SAMPLES_KEPT = 512
#: an inline copy that failed to load is tried again after this long (the replica serves meanwhile)
INLINE_RETRY_S = 30.0


def gateway_app_name(model: str) -> str:
    return f"evodiff-{model}"


def version_app_name(model: str, version: str) -> str:
    return f"evodiff-{model}-v{version}"


@serve.deployment(name="Sampler", max_ongoing_requests=8, health_check_period_s=5)
class Sampler:
    """One registered version, loaded from the registry once per replica.

    Args:
        model: registered model name.
        version: registry version.
        tracking_uri: the registry's MLflow URI.
        threads: torch threads per replica (1 keeps replicas from thrashing shared cores).
    """

    def __init__(self, model: str, version: str, tracking_uri: str, threads: int = 1):
        import torch

        torch.set_num_threads(max(1, int(threads)))
        self.version = version
        self.model = load_version(model, version, tracking_uri)

    def generate(self, n: int, seed: int) -> np.ndarray:
        """``(n, C, H, W)`` float32 images in [-1, 1], the same for the same seed."""
        return predict(self.model, n, seed)


def load_version(model: str, version: str, tracking_uri: str):
    """The registered pyfunc of ``model`` ``version``, warmed up (the first call pays for allocation)."""
    import mlflow

    from evodiff_ray.tracking.mlflow_tracker import point_mlflow_at

    point_mlflow_at(tracking_uri)     # not left in the process's environment for what it starts
    loaded = mlflow.pyfunc.load_model(f"models:/{model}/{version}")
    loaded.predict({"n": 1, "seed": 0})
    return loaded


def inline_routing(state: RoutingState, held: set[str], loading: set[str]) -> RoutingState:
    """The state an inline gateway routes by (pure): a challenger it is still ``loading`` takes
    no traffic while it ``held`` production (or the fallback serving for it). Served by its
    replica meanwhile, the challenger would look slower than it is, and the policy compares
    the arms' latencies. Loaded, or failed to load (its replica serves it), it takes its share."""
    if state.challenger is None or state.challenger not in loading:
        return state
    main = state.production if state.production in state.ready else state.fallback
    return state.with_ready(state.challenger, False) if main in held else state


def predict(loaded, n: int, seed: int) -> np.ndarray:
    """``(n, C, H, W)`` float32 images of a loaded version, the same for the same seed."""
    return np.asarray(loaded.predict({"n": int(n), "seed": int(seed)}), dtype=np.float32)


api = FastAPI(title="evodiff-ray serving", docs_url=None, redoc_url=None, openapi_url=None)


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@serve.deployment(name="Gateway", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class Gateway:
    """The HTTP API of one served model.

    Args:
        model: the registered model name.
        redis_url: where routing state, metrics, feedback and events live.
        runs_dir: run dirs, for the read-only search views.
        max_n: the largest ``n`` of one request.
        refresh_s: how long a replica reuses the routing state it read.
        inline: also load each ready version here and sample in this process (see the module).
        tracking_uri: the registry's MLflow URI (needed with ``inline``).
        threads: torch threads of this process with ``inline``.
    """

    def __init__(self, model: str, redis_url: str, runs_dir: str, max_n: int = MAX_N, refresh_s: float = 0.2,
                 inline: bool = False, tracking_uri: str | None = None, threads: int = 1):
        import redis.asyncio as aredis

        if inline and not tracking_uri:
            raise ValueError("inline sampling needs the registry's tracking_uri")
        if inline:
            import torch

            torch.set_num_threads(max(1, int(threads)))
        self.inline = bool(inline)
        self.tracking_uri = tracking_uri
        # version -> its loaded pyfunc and the one thread it samples on
        self._held: dict[str, tuple[Any, ThreadPoolExecutor]] = {}
        self._loading: dict[str, asyncio.Future] = {}
        self._load_failed: dict[str, float] = {}             # version -> when to try again
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inline-load") if inline else None

        self.model = model
        self.redis_url = redis_url
        self.runs_dir = runs_dir
        self.max_n = int(max_n)
        self.refresh_s = float(refresh_s)
        self.keys = Keys(model)
        self.redis = aredis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.rng = np.random.default_rng()
        self._state: RoutingState | None = None
        self._state_at = 0.0
        self._handles: dict[str, Any] = {}
        self._redis_warned = False

    # -- routing ------------------------------------------------------------------------
    async def state(self) -> RoutingState | None:
        """The routing state, re-read at most every ``refresh_s``; the last one while Redis is down."""
        now = time.monotonic()
        if self._state is None or now - self._state_at >= self.refresh_s:
            try:
                raw = await self.redis.get(state_key(self.model))
                self._state = RoutingState.from_json(raw) if raw is not None else None
                self._state_at = now
                if self.inline and self._state is not None:
                    self._sync_inline(self._state)
            except Exception as e:  # Redis down: keep routing as last known
                self._warn_redis(e)
        return self._state

    # -- inline sampling ----------------------------------------------------------------
    def _sync_inline(self, state: RoutingState) -> None:
        """Start loading the ready versions this process lacks; drop those no longer live."""
        now = time.monotonic()
        for v in sorted(set(state.ready) - set(self._held) - set(self._loading)):
            if now >= self._load_failed.get(v, 0.0):
                loop = asyncio.get_running_loop()
                fut = loop.run_in_executor(self._loader, load_version, self.model, v, self.tracking_uri)
                self._loading[v] = fut
                fut.add_done_callback(lambda f, v=v: self._loaded(v, f))
        for v in set(self._held) - state.live():
            log.info("inline copy of version %s dropped: it is no longer live", v)
            _, lane = self._held.pop(v)
            lane.shutdown(wait=False)        # a request still on it finishes; nothing new is queued

    def _loaded(self, version: str, fut: asyncio.Future) -> None:
        self._loading.pop(version, None)
        if fut.cancelled():
            return
        err = fut.exception()
        if err is not None:
            self._load_failed[version] = time.monotonic() + INLINE_RETRY_S
            log.warning("inline copy of version %s failed to load (%s: %s); its replica serves it",
                        version, type(err).__name__, err)
            return
        state = self._state
        if state is not None and version not in state.live():
            return                           # retired while it loaded
        self._held[version] = (fut.result(), ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"inline-v{version}"))
        log.info("version %s now samples in the gateway", version)

    def routed(self, state: RoutingState) -> RoutingState:
        """The state this gateway routes by (see :func:`inline_routing`)."""
        return inline_routing(state, set(self._held), set(self._loading)) if self.inline else state

    async def _sample(self, version: str, n: int, seed: int) -> tuple[np.ndarray, str]:
        """Images from ``version``: in this process if it holds the version, else from its replica."""
        if version in self._held:
            loaded, lane = self._held[version]
            try:
                images = await asyncio.get_running_loop().run_in_executor(lane, predict, loaded, n, seed)
                return images, "gateway"
            except RuntimeError as e:
                if "shutdown" not in str(e):
                    raise
                # the version was dropped between the pick and the call: its replica may still answer
        return await self.handle(version).generate.remote(n, seed), "replica"

    def handle(self, version: str):
        if version not in self._handles:
            self._handles[version] = serve.get_deployment_handle("Sampler", version_app_name(self.model, version))
        return self._handles[version]

    @staticmethod
    def request_id(request: Request) -> str:
        """The request's id: Serve's ``X-Request-Id`` (which its proxy also answers with)."""
        rid = request.headers.get("x-request-id", "")
        return rid if _ID.match(rid) else uuid.uuid4().hex

    def _warn_redis(self, e: Exception) -> None:
        if not self._redis_warned:
            self._redis_warned = True
            log.warning("Redis unreachable (%s); serving on, without metrics or feedback until it is back",
                        type(e).__name__)

    async def _record(self, request_id: str, version: str, deployment: str, latency_ms: float | None, ok: bool,
                      meta: dict[str, Any] | None = None, images: np.ndarray | None = None) -> bool:
        try:
            pipe = self.redis.pipeline(transaction=False)
            record_request(pipe, self.keys, request_id=request_id, version=version, deployment=deployment,
                           latency_ms=latency_ms, ok=ok, meta=meta)
            if images is not None:
                # float16 bytes behind a shape header, never pickles (see serving/quality.py)
                pipe.lpush(self.keys.samples(version), encode_samples(images))
                # LTRIM's end is inclusive: keep SAMPLES_KEPT // n entries, at least the newest
                pipe.ltrim(self.keys.samples(version), 0, max(1, SAMPLES_KEPT // max(1, len(images))) - 1)
            await pipe.execute()
            self._redis_warned = False
            return True
        except Exception as e:
            self._warn_redis(e)
            return False

    # -- routes -------------------------------------------------------------------------
    @api.post("/generate")
    async def generate(self, request: Request) -> Response:
        try:
            req = parse_generate(await request.body(), self.max_n, self.rng)
            fmt = choose_format(request.headers.get("accept"))
        except BadRequest as e:
            return _error(str(e), e.status)
        state = await self.state()
        version = pick(self.routed(state), float(self.rng.random())) if state is not None else None
        if version is None:
            return _error(f"no version of {self.model!r} is ready yet; retry shortly", 503)
        t0 = time.perf_counter()
        try:
            images, where = await self._sample(version, req.n, req.seed)
        except Exception as e:
            # a version retired between the routing read and the call: production answers instead
            # (and the version's handle is looked up afresh next time: it may have been redeployed)
            self._handles.pop(version, None)
            fresh = await self.state()
            retry = fresh.production if fresh is not None and fresh.production in fresh.ready else None
            if retry is None or retry == version:
                await self._record(uuid.uuid4().hex, version, state.deployment, None, ok=False)
                return _error(f"version {version} failed to generate ({type(e).__name__}); retry", 503)
            version, state = retry, fresh
            try:
                images, where = await self._sample(version, req.n, req.seed)
            except Exception as e2:
                await self._record(uuid.uuid4().hex, version, state.deployment, None, ok=False)
                return _error(f"version {version} failed to generate ({type(e2).__name__}); retry", 503)
        latency_ms = (time.perf_counter() - t0) * 1000.0
        request_id = self.request_id(request)
        recorded = await self._record(request_id, version, state.deployment, latency_ms, ok=True,
                                      meta={"n": req.n, "seed": req.seed}, images=images)
        # Serve's proxy already answers with X-Request-Id: the same id
        headers = {"X-Model-Name": self.model, "X-Model-Version": version,
                   "X-Seed": str(req.seed), "X-Latency-Ms": f"{latency_ms:.3f}", "X-Sampled-In": where,
                   "X-Feedback": "accepted" if recorded else "unavailable"}
        meta = {"request_id": request_id, "model": self.model, "version": version, "seed": req.seed, "n": req.n}
        if fmt == NPZ:
            return Response(npz_bytes(images, **meta), media_type=NPZ, headers=headers)
        if fmt == JSON:
            return Response(json_body(images, **meta), media_type=JSON, headers=headers)
        return Response(png_grid(images), media_type=PNG, headers=headers)

    @api.post("/feedback")
    async def feedback(self, request: Request) -> Response:
        try:
            fb = parse_feedback(await request.body())
            out = await submit(self.redis, self.keys, fb)
        except BadRequest as e:
            return _error(str(e), e.status)
        except Exception as e:  # Redis down: the client may retry; nothing was half-written
            self._warn_redis(e)
            return _error(f"feedback store unavailable ({type(e).__name__}); retry shortly", 503)
        return JSONResponse(out)

    @api.get("/models")
    async def models(self) -> Response:
        state = await self.state()
        if state is None:
            return _error(f"{self.model!r} is not being served", 503)
        loop = asyncio.get_running_loop()
        out = await loop.run_in_executor(None, self._models_view, state, self.routed(state), set(self._held))
        return JSONResponse(out)

    def _models_view(self, state: RoutingState, routed: RoutingState, inline: set[str]) -> dict[str, Any]:
        import redis

        from evodiff_ray.serving.metrics import arm_stats, window_series

        client = redis.Redis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            shares = dict(routes(routed))
            versions = []
            for v in sorted(state.live() | set(shares)):
                role = ("production" if v == state.production else "challenger" if v == state.challenger
                        else "fallback")
                entry = {"version": v, "role": role, "share": shares.get(v, 0.0), "ready": v in state.ready,
                         "sampled_in": "gateway" if v in inline else "replica",
                         "deployment": arm_stats(client, self.keys, state.deployment, v).summary(),
                         "windows": window_series(client, self.keys, v, last=5)}
                fd = client.get(self.keys.fd(v))
                entry["fd"] = json.loads(fd) if fd else None
                versions.append(entry)
            return {"model": self.model, "deployment": state.deployment, "started_at": state.started_at,
                    "policy": state.policy, "versions": versions}
        finally:
            client.close()

    @api.get("/searches")
    async def searches(self) -> Response:
        from evodiff_ray.serving.searches import list_searches

        loop = asyncio.get_running_loop()
        return JSONResponse(await loop.run_in_executor(None, list_searches, self.runs_dir, self.redis_url))

    @api.get("/searches/{search_id}/front")
    async def front(self, search_id: str) -> Response:
        from evodiff_ray.core.errors import UsageError
        from evodiff_ray.serving.searches import front_of_search

        loop = asyncio.get_running_loop()
        try:
            front = await loop.run_in_executor(None, front_of_search, search_id, self.runs_dir, self.redis_url)
        except UsageError as e:
            return _error(str(e), 404)
        return JSONResponse(front)

    @api.get("/healthz")
    async def healthz(self) -> Response:
        return JSONResponse({"status": "ok"})

    @api.get("/readyz")
    async def readyz(self) -> Response:
        state = await self.state()
        table = routes(self.routed(state)) if state is not None else []
        if not table:
            return _error(f"no version of {self.model!r} is ready", 503)
        return JSONResponse({"status": "ready", "routes": {v: w for v, w in table}})
