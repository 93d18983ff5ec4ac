"""What does serving cost? ``POST /generate`` on Ray Serve against the registered pyfunc in-process.

In one run, on this machine: a small registered version (a seeded, untrained denoiser of a
small genome, logged with the real pyfunc) is
  1. called in-process (``mlflow.pyfunc.load_model(...).predict``), one torch thread, from
     1, 4 and 16 client threads;
  2. served by ``evodiff-ray``'s stack (a local Ray, Serve's HTTP proxy on 127.0.0.1, the
     gateway, one sampler replica with one torch thread, Redis metrics) and called over
     HTTP from 1, 4 and 16 client threads.
Throughput and client-side latency p50/p99 at each concurrency; the serving overhead is the
p50 difference at concurrency 1. The breakdown at concurrency 1 adds the HTTP floor
(``GET /healthz``), the sampler through a Serve handle, and an ingress that samples
in-process: the floor of a gateway that would host the samplers itself. With
``--direct-ingress`` the Ray it starts runs Serve's direct ingress
(``RAY_SERVE_ENABLE_DIRECT_INGRESS=1``: each ingress replica also listens on its own port,
which a load balancer would call without Serve's proxy), and the breakdown adds the gateway
and that in-process ingress called on their replicas' ports. Goal: serving adds <= 10 ms at p50. Prints a table; writes
JSON to benchmarks/results/serving.json.

    python benchmarks/bench_serving.py [--requests 200] [--n 4] [--steps 20] [--direct-ingress]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

CONCURRENCY = (1, 4, 16)
GENOME = {"parameters": {"base_channels": 16, "channel_mults": [1, 2], "time_emb_dim": 32, "sampler_steps": 20,
                         "norm_groups": 4},
          "layers": [{"kind": "residual", "side": "down", "level": 0}, {"kind": "conv", "side": "mid", "level": 1},
                     {"kind": "residual", "side": "up", "level": 0}],
          "connections": [[0, 2]], "generation": 0, "parents": []}


def register(tracking_uri: str, model: str, folder: Path, steps: int) -> str:
    """Log and register a seeded, untrained version of GENOME with the real pyfunc."""
    import mlflow
    import torch

    from evodiff_ray.denoiser import build_denoiser
    from evodiff_ray.genome import Genome
    from evodiff_ray.problems.diffusion.model import PYFUNC_MODEL

    g = Genome.from_dict({**GENOME, "parameters": {**GENOME["parameters"], "sampler_steps": steps}})
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(build_denoiser(g, in_channels=1).state_dict(), folder / "weights.pt")
    (folder / "genome.json").write_text(json.dumps(g.to_dict()))
    (folder / "meta.json").write_text(json.dumps({"resolution": 8, "channels": 1, "dataset_digest": "bench"}))
    from evodiff_ray.tracking.mlflow_tracker import experiment_id

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    # artifacts beside the benchmark's store, never in ./mlruns of the current directory
    exp = experiment_id(mlflow.MlflowClient(tracking_uri=tracking_uri), "evodiff-bench-serving", tracking_uri,
                        folder.parent)
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_MODEL), pip_requirements=["evodiff-ray"],
                                       artifacts={"genome": str(folder / "genome.json"),
                                                  "weights": str(folder / "weights.pt"),
                                                  "meta": str(folder / "meta.json")})
    version = mlflow.register_model(info.model_uri, model).version
    mlflow.MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(model, "production", version)
    return str(version)


def inline_app(model: str, version: str, tracking_uri: str):
    """A one-deployment Serve application whose HTTP ingress samples in its own process: the
    floor of a gateway that hosts the versions' samplers itself (no handle hop to a sampler
    replica). Same parsing, sampling and npz encoding as the gateway; no Redis metrics."""
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from ray import serve

    from evodiff_ray.serving.app import Sampler
    from evodiff_ray.serving.codec import NPZ, npz_bytes, parse_generate

    api = FastAPI()

    @serve.deployment(ray_actor_options={"num_cpus": 0.5})
    @serve.ingress(api)
    class InlineGateway:
        def __init__(self):
            self.sampler = Sampler.func_or_class(model, version, tracking_uri, 1)

        async def generate(self, request) -> Response:
            req = parse_generate(await request.body())
            t0 = time.perf_counter()
            images = self.sampler.generate(req.n, req.seed)
            ms = (time.perf_counter() - t0) * 1000.0
            return Response(npz_bytes(images, version=version), media_type=NPZ,
                            headers={"X-Latency-Ms": f"{ms:.3f}"})

        # real classes, not postponed strings: the replica unpickles this class away from its module
        generate.__annotations__ = {"request": Request, "return": Response}
        generate = api.post("/generate")(generate)

    return InlineGateway.bind()


def listening_ports(lo: int = 30000, hi: int = 30200) -> set[int]:
    """Ports in Serve's direct-ingress range that accept a connection on 127.0.0.1 now."""
    import socket

    found = set()
    for port in range(lo, hi):
        with socket.socket() as sock:
            sock.settimeout(0.05)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                found.add(port)
    return found


def answering(ports, path: str, n: int) -> int | None:
    """The first of ``ports`` whose ``POST path`` answers 200 (a replica's direct port)."""
    import requests

    for port in sorted(ports):
        try:
            if requests.post(f"http://127.0.0.1:{port}{path}", json={"n": n, "seed": 1}, timeout=30).status_code == 200:
                return port
        except requests.RequestException:
            continue
    return None


def measure(call, concurrency: int, total: int) -> dict:
    """``total`` calls of ``call(i)`` from ``concurrency`` threads: throughput and latency percentiles."""
    lat: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t = time.perf_counter()
            call(i)
            dt = (time.perf_counter() - t) * 1000
            with lock:
                lat.append(dt)

    for i in range(min(5, total)):     # warm-up, not timed
        call(10_000 + i)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "requests": len(lat), "throughput_rps": len(lat) / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    ap.add_argument("--n", type=int, default=4, help="images per request")
    ap.add_argument("--steps", type=int, default=20, help="sampler steps of the served genome")
    ap.add_argument("--direct-ingress", action="store_true",
                    help="run Serve's direct ingress and also call the ingress replicas on their own ports")
    ap.add_argument("--out", default=None,
                    help="JSON to write (default results/serving.json, results/serving-direct.json with --direct-ingress)")
    args = ap.parse_args()
    if args.out is None:
        args.out = str(Path(__file__).parent / "results" / ("serving-direct.json" if args.direct_ingress
                                                              else "serving.json"))
    if args.direct_ingress:   # read by Serve's processes when they start, so before ray.init
        os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "1"
    load_before = os.getloadavg()   # latency: run it on an otherwise quiet machine

    import mlflow
    import ray
    import redis
    import requests
    import torch

    from evodiff_ray.cache.local_redis import LocalRedis, free_port
    from evodiff_ray.serving.controller import Controller
    from evodiff_ray.serving.server import ServeOptions, Supervisor, start_serve

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    version = register(uri, "bench", tmp / "model", args.steps)
    rows = []

    torch.set_num_threads(1)
    model = mlflow.pyfunc.load_model(f"models:/bench/{version}")
    for c in CONCURRENCY:
        r = measure(lambda i: model.predict({"n": args.n, "seed": i}), c, args.requests)
        rows.append({"path": "in-process pyfunc", **r})
        print(rows[-1], flush=True)

    server = LocalRedis(tmp / "redis").start(reuse=False)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    port = free_port()
    options = ServeOptions("bench", uri, server.url, runs_dir=str(tmp), port=port, replica_cpus=0.5, fd_interval_s=0)
    start_serve("127.0.0.1", port)
    controller = Controller(redis.Redis.from_url(server.url), "bench")
    controller.start_serving(version)
    supervisor = Supervisor(options, controller)
    supervisor.deploy_gateway()
    supervisor.start_background()
    assert supervisor.wait_ready(timeout_s=300), supervisor.errors
    local = threading.local()
    server_side: list[float] = []

    def generate(url, i):
        """``POST url`` as the benchmark's client (a session per client thread); the response."""
        if not hasattr(local, "s"):
            local.s = requests.Session()
        resp = local.s.post(url, json={"n": args.n, "seed": i}, headers={"Accept": "application/x-npz"}, timeout=120)
        assert resp.status_code == 200, f"{url}: {resp.status_code} {resp.text[:500]}"
        return resp

    def http_call(i):
        server_side.append(float(generate(options.url + "/generate", i).headers["X-Latency-Ms"]))

    def direct_call(port, path, i):
        generate(f"http://127.0.0.1:{port}{path}", i)

    def healthz_call(i):
        if not hasattr(local, "s"):
            local.s = requests.Session()
        local.s.get(options.url + "/healthz", timeout=60).raise_for_status()

    from ray import serve

    from evodiff_ray.serving.app import version_app_name

    sampler = serve.get_deployment_handle("Sampler", version_app_name("bench", version))
    breakdown = {}
    try:
        for c in CONCURRENCY:
            server_side.clear()
            r = measure(http_call, c, args.requests)
            rows.append({"path": "Ray Serve HTTP", **r, "server_p50_ms": float(np.percentile(server_side, 50))})
            print(rows[-1], flush=True)
        # where the time goes, at concurrency 1: the HTTP floor (client -> Serve's proxy ->
        # gateway -> back, nothing else) and the sampler called through a Serve handle from here
        breakdown["healthz_p50_ms"] = measure(healthz_call, 1, args.requests)["p50_ms"]
        # the in-process call again, now beside an idle Ray Serve (controller, proxy, replicas
        # and Ray's own processes share this machine's cores with it)
        breakdown["in_process_beside_serve_p50_ms"] = measure(
            lambda i: model.predict({"n": args.n, "seed": i}), 1, args.requests)["p50_ms"]
        if args.direct_ingress:
            gateway_port = answering(listening_ports(), "/generate", args.n)
            if gateway_port is not None:
                breakdown["gateway_direct_p50_ms"] = measure(
                    lambda i: direct_call(gateway_port, "/generate", i), 1, args.requests)["p50_ms"]
        # the design option: an ingress sampling in-process (no hop to a sampler replica)
        before = listening_ports() if args.direct_ingress else set()
        serve.run(inline_app("bench", version, uri), name="bench-inline", route_prefix="/inline")
        if args.direct_ingress:
            inline_port = answering(listening_ports() - before, "/inline/generate", args.n)
            if inline_port is not None:
                breakdown["inline_direct_p50_ms"] = measure(
                    lambda i: direct_call(inline_port, "/inline/generate", i), 1, args.requests)["p50_ms"]

        breakdown["inline_ingress_p50_ms"] = measure(lambda i: generate(options.url + "/inline/generate", i), 1,
                                                     args.requests)["p50_ms"]
        serve.delete("bench-inline")
        try:
            breakdown["handle_p50_ms"] = measure(lambda i: sampler.generate.remote(args.n, i).result(), 1,
                                                 args.requests)["p50_ms"]
        except RuntimeError as e:   # e.g. RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=0: no sync handle calls here
            print(f"the sampler through a handle from here: not measured ({str(e).splitlines()[0]})", flush=True)
            breakdown["handle_p50_ms"] = None
        print(breakdown, flush=True)
    finally:
        supervisor.stop()
        serve.shutdown()
        ray.shutdown()
        server.stop(force=True)

    base = {r["concurrency"]: r for r in rows if r["path"] == "in-process pyfunc"}
    print(f"\n{'path':<20}{'conc':>6}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'+p50 ms':>10}")
    for r in rows:
        extra = r["p50_ms"] - base[r["concurrency"]]["p50_ms"]
        r["added_p50_ms"] = extra if r["path"] != "in-process pyfunc" else 0.0
        print(f"{r['path']:<20}{r['concurrency']:>6}{r['throughput_rps']:>10.1f}{r['p50_ms']:>10.2f}"
              f"{r['p99_ms']:>10.2f}{r['added_p50_ms']:>10.2f}")
    added = next(r["added_p50_ms"] for r in rows if r["path"] == "Ray Serve HTTP" and r["concurrency"] == 1)
    verdict = "met" if added <= 10 else "missed"
    print(f"\nserving adds {added:.1f} ms at p50 (concurrency 1); goal <= 10 ms: {verdict}")
    at1 = {r["path"]: r for r in rows if r["concurrency"] == 1}
    inproc, http = at1["in-process pyfunc"]["p50_ms"], at1["Ray Serve HTTP"]
    handle = breakdown["handle_p50_ms"]
    breakdown.update({
        "sampler_via_handle_minus_in_process_ms": None if handle is None else handle - inproc,
        "gateway_call_minus_in_process_ms": http["server_p50_ms"] - inproc,
        "http_minus_gateway_call_ms": http["p50_ms"] - http["server_p50_ms"],
        "inline_ingress_added_p50_ms": breakdown["inline_ingress_p50_ms"] - inproc,
        "idle_serve_slows_in_process_by_ms": breakdown["in_process_beside_serve_p50_ms"] - inproc,
    })
    for key in ("gateway_direct", "inline_direct"):
        if f"{key}_p50_ms" in breakdown:
            breakdown[f"{key}_added_p50_ms"] = breakdown[f"{key}_p50_ms"] - inproc
            print(f"{key.replace('_', ' ')} ingress (its replica's own port, no proxy) adds "
                  f"{breakdown[f'{key}_added_p50_ms']:.1f} ms at p50")
        elif args.direct_ingress:
            print(f"{key.replace('_', ' ')}: no replica port answered; not measured")
    print("where it goes at concurrency 1 (p50s): HTTP floor (GET /healthz) "
          f"{breakdown['healthz_p50_ms']:.1f} ms; the sampler through a Serve handle adds "
          f"{breakdown['sampler_via_handle_minus_in_process_ms'] or float('nan'):.1f} ms over in-process, "
          "through the gateway "
          f"{breakdown['gateway_call_minus_in_process_ms']:.1f} ms; client minus the gateway's call "
          f"{breakdown['http_minus_gateway_call_ms']:.1f} ms")
    print("an ingress that samples in-process (the design without the hop to a sampler replica; no "
          f"metrics) would add {breakdown['inline_ingress_added_p50_ms']:.1f} ms at p50; the in-process call "
          f"itself is {breakdown['idle_serve_slows_in_process_by_ms']:.1f} ms slower beside an idle Ray Serve")
    out = {"rows": rows, "added_p50_ms_at_1": added, "goal_ms": 10, "goal": verdict, "breakdown_at_1": breakdown,
           "settings": {"requests": args.requests, "n": args.n, "steps": args.steps, "genome": GENOME,
                        "replicas": 1, "torch_threads": 1, "direct_ingress": args.direct_ingress},
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
           "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
           "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
