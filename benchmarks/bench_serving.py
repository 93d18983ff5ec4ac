"""What does serving cost? ``POST /generate`` on Ray Serve against the registered pyfunc in-process.

In one run, on this machine: a small registered version (a seeded, untrained denoiser of a
small genome, logged with the real pyfunc) is
  1. called in-process (``mlflow.pyfunc.load_model(...).predict``), one torch thread, from
     1, 4 and 16 client threads;
  2. served by ``evodiff-ray serve`` itself (a subprocess: a local Ray, Serve on 127.0.0.1,
     the gateway, one sampler replica with one torch thread, the embedded redis-server
     with metrics and samples recorded), once per configuration of its latency options,
     and called over HTTP from 1, 4 and 16 client threads:
       - ``proxy``: ``--no-inline``, Serve's Python proxy, and the gateway calls the version's
         sampler replica (``serve``'s only way before session 6);
       - ``default``: ``serve`` with no option: Serve's Python proxy, the gateway samples in its
         own process;
       - ``haproxy``: ``--haproxy --no-inline``, Serve's HAProxy ingress instead of its proxy;
       - ``haproxy+inline``: ``--haproxy``.
Throughput and client-side latency p50/p99 at each concurrency; the serving overhead is the
p50 difference at concurrency 1. At concurrency 1 it also records the HTTP floor
(``GET /healthz``), the gateway's own timing of the sampling call (``X-Latency-Ms``) and the
in-process call again beside the running serve. Goal: serving adds <= 10 ms at p50.
Prints a table; writes JSON to benchmarks/results/serving.json.

    python benchmarks/bench_serving.py [--requests 200] [--n 4] [--steps 20]
        [--configs proxy,default,haproxy,haproxy+inline]
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


CONFIGS = {"proxy": ["--no-inline"], "default": [], "haproxy": ["--haproxy", "--no-inline"],
           "haproxy+inline": ["--haproxy"]}


class Served:
    """``evodiff-ray serve bench`` in a subprocess, with its runs dir, registry and flags."""

    def __init__(self, tmp: Path, uri: str, flags: list[str], inline: bool, n: int):
        import subprocess
        import sys

        import requests

        from evodiff_ray.cache.local_redis import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp / f"serve-{self.port}.log", "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "evodiff_ray", "serve", "bench", "--runs-dir", str(tmp), "--tracking-uri", uri,
             "--port", str(self.port), "--fd-interval", "0", *flags],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 300
        session = requests.Session()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"serve {' '.join(flags)} exited with {self.proc.returncode}; see {self.log.name}")
            try:
                r = session.post(self.url + "/generate", json={"n": n, "seed": 0}, timeout=30)
                # inline: wait until the gateway holds its own copy (it loads in the background)
                if r.status_code == 200 and (not inline or r.headers.get("X-Sampled-In") == "gateway"):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.close()
        raise SystemExit(f"serve {' '.join(flags)} did not serve within 300 s; see {self.log.name}")

    def close(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=90)
        except Exception:
            self.proc.kill()
        self.log.close()


def bench_config(name: str, args, tmp: Path, uri: str, model) -> tuple[list[dict], dict]:
    """The HTTP rows and the concurrency-1 breakdown of one configuration."""
    import requests

    local = threading.local()
    server_side: list[float] = []
    where: set[str] = set()

    def session():
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    served = Served(tmp, uri, CONFIGS[name], "--no-inline" not in CONFIGS[name], args.n)
    try:
        def call(i):
            resp = session().post(served.url + "/generate", json={"n": args.n, "seed": i},
                                  headers={"Accept": "application/x-npz"}, timeout=120)
            assert resp.status_code == 200, f"{name}: {resp.status_code} {resp.text[:500]}"
            server_side.append(float(resp.headers["X-Latency-Ms"]))
            where.add(resp.headers.get("X-Sampled-In", "?"))

        rows = []
        for c in CONCURRENCY:
            server_side.clear()
            r = measure(call, c, args.requests)
            rows.append({"path": f"serve ({name})", "config": name, **r,
                         "server_p50_ms": float(np.percentile(server_side, 50))})
            print(rows[-1], flush=True)
        breakdown = {
            "healthz_p50_ms": measure(lambda i: session().get(served.url + "/healthz", timeout=60).raise_for_status(),
                                      1, args.requests)["p50_ms"],
            # the in-process call again, beside this running serve (its processes share the cores)
            "in_process_beside_serve_p50_ms": measure(lambda i: model.predict({"n": args.n, "seed": i}), 1,
                                                      args.requests)["p50_ms"],
            "sampled_in": sorted(where),
        }
    finally:
        served.close()
    return rows, breakdown


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    ap.add_argument("--n", type=int, default=4, help="images per request")
    ap.add_argument("--steps", type=int, default=20, help="sampler steps of the served genome")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list of {', '.join(CONFIGS)}")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "serving.json"), help="JSON to write")
    args = ap.parse_args()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        raise SystemExit(f"unknown config(s) {unknown}; choose from {', '.join(CONFIGS)}")
    load_before = os.getloadavg()   # latency: run it on an otherwise quiet machine

    import mlflow
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    version = register(uri, "bench", tmp / "model", args.steps)
    rows = []

    torch.set_num_threads(1)
    model = mlflow.pyfunc.load_model(f"models:/bench/{version}")
    for c in CONCURRENCY:
        r = measure(lambda i: model.predict({"n": args.n, "seed": i}), c, args.requests)
        rows.append({"path": "in-process pyfunc", "config": None, **r})
        print(rows[-1], flush=True)
    inproc = {r["concurrency"]: r["p50_ms"] for r in rows}

    breakdown: dict[str, dict] = {}
    for name in configs:
        got, breakdown[name] = bench_config(name, args, tmp, uri, model)
        rows += got
        b = breakdown[name]
        at1 = next(r for r in got if r["concurrency"] == 1)
        b.update(added_p50_ms=at1["p50_ms"] - inproc[1],
                 gateway_call_minus_in_process_ms=at1["server_p50_ms"] - inproc[1],
                 http_minus_gateway_call_ms=at1["p50_ms"] - at1["server_p50_ms"],
                 idle_serve_slows_in_process_by_ms=b["in_process_beside_serve_p50_ms"] - inproc[1])

    print(f"\n{'path':<28}{'conc':>6}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'+p50 ms':>10}")
    for r in rows:
        r["added_p50_ms"] = r["p50_ms"] - inproc[r["concurrency"]] if r["config"] else 0.0
        print(f"{r['path']:<28}{r['concurrency']:>6}{r['throughput_rps']:>10.1f}{r['p50_ms']:>10.2f}"
              f"{r['p99_ms']:>10.2f}{r['added_p50_ms']:>10.2f}")
    print("\nat concurrency 1 (p50s):")
    for name, b in breakdown.items():
        print(f"  {name:<16} adds {b['added_p50_ms']:5.1f} ms: the gateway's sampling call "
              f"+{b['gateway_call_minus_in_process_ms']:.1f} ms over in-process, HTTP and the rest "
              f"{b['http_minus_gateway_call_ms']:.1f} ms; HTTP floor (GET /healthz) {b['healthz_p50_ms']:.1f} ms; "
              f"sampled in {', '.join(b['sampled_in'])}")
    verdicts = {name: ("met" if b["added_p50_ms"] <= 10 else "missed") for name, b in breakdown.items()}
    for name, v in verdicts.items():
        print(f"serve ({name}) adds {breakdown[name]['added_p50_ms']:.1f} ms at p50; goal <= 10 ms: {v}")
    out = {"rows": rows, "goal_ms": 10, "added_p50_ms_at_1": {k: b["added_p50_ms"] for k, b in breakdown.items()},
           "goal": verdicts, "breakdown_at_1": breakdown,
           "settings": {"requests": args.requests, "n": args.n, "steps": args.steps, "genome": GENOME,
                        "replicas": 1, "torch_threads": 1, "configs": {k: CONFIGS[k] for k in configs}},
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "processor": platform.processor()},
           "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
           "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
