"""The evodiff metrics reach the node's Prometheus endpoint, tagged with the search id (issue 11),
and the Grafana dashboard shipped in cluster/ charts exactly those series."""

import json
import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from evodiff_ray.config import load_config
from evodiff_ray.search import search

DASHBOARD = Path(__file__).resolve().parents[2] / "cluster" / "grafana" / "evodiff-dashboard.json"
#: what the dashboard promises to chart (Ray prefixes custom metrics with ray_)
SERIES = ("ray_evodiff_evaluations", "ray_evodiff_in_flight", "ray_evodiff_failures", "ray_evodiff_hypervolume",
          "ray_evodiff_best", "ray_evodiff_cache", "ray_evodiff_utilization")


def scrape(ray) -> str:
    node = next(n for n in ray.nodes() if n["Alive"])
    url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


@pytest.mark.ray
@pytest.mark.slow
def test_a_search_exports_its_series_with_the_search_id(runs_dir, ray_runtime):
    """Scraped while the search runs and shortly after: Ray exports a gauge for a while after
    it was last set, a counter for as long as the process lives."""
    config = load_config(overrides={"problem": "synthetic", "problem_options": {"mean_ms": 400, "failure_rate": 0.3},
                                    "pop_size": 4, "generations": 6, "workers": 1, "runs_dir": str(runs_dir),
                                    "no_cache": True, "no_tracking": True, "search_id": "metrics-probe-7"})
    pattern = re.compile(r'^(ray_evodiff_[a-z_]+?)(?:_total)?\{([^}]*search_id="metrics-probe-7"[^}]*)\} (\S+)', re.M)
    seen: dict[str, dict[str, float]] = {}
    done = threading.Event()

    def watch():
        stop_at = None
        while stop_at is None or time.monotonic() < stop_at:
            if done.is_set() and stop_at is None:
                stop_at = time.monotonic() + 30
            try:
                for m in pattern.finditer(scrape(ray_runtime)):
                    seen.setdefault(m.group(1), {})[m.group(2)] = float(m.group(3))
            except OSError:
                pass
            if set(SERIES) <= set(seen) and done.is_set() and max(seen["ray_evodiff_evaluations"].values()) >= 24:
                return                                    # the counter has caught up with the search
            time.sleep(1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        r = search(config)
    finally:
        done.set()
        watcher.join()
    assert set(SERIES) <= set(seen), sorted(seen)
    assert max(seen["ray_evodiff_evaluations"].values()) == 24.0
    fails = sum(not rec["fitness"]["feasible"] for rec in r.records)
    assert fails and max(seen["ray_evodiff_failures"].values()) == fails
    assert any('objective="f1"' in labels for labels in seen["ray_evodiff_best"])
    assert {re.search(r'kind="(\w+)"', k).group(1) for k in seen["ray_evodiff_cache"]} >= {"hits", "misses"}


def test_dashboard_json_has_what_grafana_needs_and_charts_our_series():
    d = json.loads(DASHBOARD.read_text())
    # the fields Grafana's dashboard model requires for an import
    assert isinstance(d["title"], str) and d["title"] and isinstance(d["uid"], str) and len(d["uid"]) <= 40
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 30
    assert isinstance(d["panels"], list) and d["panels"]
    assert d["time"]["from"] and d["time"]["to"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["search_id"]["type"] == "query" and "search_id" in json.dumps(variables["search_id"]["query"])
    ids, exprs = set(), []
    for p in d["panels"]:
        assert isinstance(p["id"], int) and p["id"] not in ids
        ids.add(p["id"])
        assert p["type"] in {"timeseries", "stat", "gauge", "row"} and p["title"]
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in ("h", "w", "x", "y")) and 0 < g["w"] and g["x"] + g["w"] <= 24
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}"
        for t in p["targets"]:
            assert t["refId"] and t["expr"]
            assert 'search_id=~"$search_id"' in t["expr"]       # per search
            exprs.append(t["expr"])
    charted = {m for e in exprs for m in re.findall(r"ray_evodiff_[a-z_]+", e)}
    assert {s if s in ("ray_evodiff_in_flight", "ray_evodiff_hypervolume", "ray_evodiff_best", "ray_evodiff_cache",
                       "ray_evodiff_utilization") else s + "_total" for s in SERIES} <= charted
    assert any("hits" in e and "misses" in e for e in exprs)      # the cache hit rate
