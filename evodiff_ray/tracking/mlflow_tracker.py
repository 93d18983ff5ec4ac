"""MlflowTracker: one MLflow parent run per search, metrics per told batch, artifacts.

Written from the driver only, through ``MlflowClient`` with explicit run ids (never the
global active run), so parallel searches and evaluator actors never collide.

Per-candidate records go to a table artifact (``candidates.csv`` and ``candidates.jsonl``)
rather than one child run each: a child run costs about 0.07 s on sqlite (measured with
MLflow 3.17), which is over a minute per thousand candidates, while the table costs one
artifact upload per interval whatever the count.

If MLflow is unavailable or fails, the tracker warns once and stops tracking; the run
dir keeps everything (front, history, checkpoint).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from evodiff_ray.core.version import __version__
from evodiff_ray.core.urls import redact
from evodiff_ray.core.front import front_csv
from evodiff_ray.core.key import EvaluationSettings
from evodiff_ray.core.tracker import Tracker

log = logging.getLogger(__name__)

RUN_FILE = "mlflow.json"
ARTIFACT_DIR = "mlflow-artifacts"


def default_tracking_uri(runs_dir: str | Path) -> str:
    """The embedded default: sqlite in the runs directory (the registry works with it)."""
    return f"sqlite:///{(Path(runs_dir).resolve() / 'mlflow.db').as_posix()}"


def point_mlflow_at(uri: str) -> None:
    """Point MLflow's fluent API (tracking and registry) at ``uri`` in this process, without
    leaving ``MLFLOW_TRACKING_URI`` behind in its environment.

    ``mlflow.set_tracking_uri`` also sets that variable, and :func:`resolve_tracking_uri`
    reads it: a registration or promotion in one search would otherwise become the default
    store of every later search in the same process (an ``adapt`` controller, a notebook,
    a test session) and of the processes it starts.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def resolve_tracking_uri(configured: str | None, runs_dir: str | Path) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else sqlite in the runs dir."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(runs_dir)


#: experiments of a database-backed store keep their artifacts in this folder beside the
#: sqlite file (so the default store keeps them under the runs dir), never in MLflow's
#: fallback ``./mlruns`` of whatever directory the process happens to run in
ARTIFACT_ROOT = "mlflow-artifacts"
_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def artifact_location(tracking_uri: str, experiment: str, runs_dir: str | Path) -> str | None:
    """Where a new experiment's artifacts go, as a ``file://`` URI; None = the store decides.

    A tracking server (``http(s)://``, ``databricks``) and a ``file:`` store have their
    own artifact root, which wins. A database store has none: MLflow would fall back to
    ``./mlruns`` of the current directory, so the artifacts go to
    ``<folder of the sqlite file>/mlflow-artifacts/<experiment>/`` (the runs dir for the
    default store) or, for a database server, ``<runs_dir>/mlflow-artifacts/<experiment>/``.

    Args:
        tracking_uri: the resolved tracking URI.
        experiment: the experiment's name (made safe for a folder name).
        runs_dir: the runs directory of the search.
    """
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in _DB_SCHEMES:
        return None
    root = Path(runs_dir)
    if scheme == "sqlite":
        path = tracking_uri.split("?", 1)[0][len("sqlite:///"):] if tracking_uri.startswith("sqlite:///") else ""
        if path and path != ":memory:":
            root = Path(path).parent
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("._") or "experiment"
    return (root.resolve() / ARTIFACT_ROOT / folder).as_uri()


def experiment_id(client, name: str, tracking_uri: str, runs_dir: str | Path) -> str:
    """The id of experiment ``name``, created with its :func:`artifact_location` if new.

    An experiment created elsewhere (e.g. by an older version, into ``./mlruns``) keeps
    the artifact location it was created with; that is said once, with the way out.
    """
    wanted = artifact_location(tracking_uri, name, runs_dir)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return client.create_experiment(name, artifact_location=wanted)
    if wanted is not None and exp.artifact_location.rstrip("/") != wanted.rstrip("/"):
        log.warning("MLflow experiment %r keeps its artifacts at %s, where it was created; name another "
                    "experiment (--experiment) to keep them at %s", name, exp.artifact_location, wanted)
    return exp.experiment_id


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"a.b": "value"}``, secrets stripped from URLs."""
    out: dict[str, str] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, name + "."))
        else:
            s = json.dumps(v) if not isinstance(v, str) else v
            if "url" in k.lower() or "uri" in k.lower():
                s = redact(s)
            out[name] = s[:5000]
    return out


def git_commit() -> str | None:
    """The current git commit of the working directory, when there is one."""
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


class MlflowTracker(Tracker):
    """Tracks a search in MLflow.

    Args:
        tracking_uri: MLflow tracking URI; None = ``MLFLOW_TRACKING_URI`` or sqlite in the runs dir.
        experiment: experiment name; None = ``evodiff-<problem>[-<dataset>]``.
        artifact_interval_s: least seconds between artifact uploads while running.
        baseline: objective values of the problem's baseline candidate (for the diffusion
            problem, the reference UNet), marked on the Pareto plot.
        settings: the problem's evaluation settings (see :mod:`evodiff_ray.core.key`);
            their ``dataset_digest`` is logged as
            the run's input.
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None,
                 artifact_interval_s: float = 30.0, baseline: dict[str, float] | None = None,
                 settings: EvaluationSettings | None = None):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_interval_s = artifact_interval_s
        self.baseline = baseline
        self.settings = settings
        self.client = None
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.disabled = False
        self.candidates: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self.objectives: list[str] = []
        self._last_artifacts = -math.inf
        self._last_front: dict[str, Any] | None = None
        self._title: str | None = None               # the finished search's title for its plots
        self._reference_grid: Path | None = None

    # -- life cycle ----------------------------------------------------------------
    def on_start(self, config, run_dir: Path, resumed: bool) -> None:
        self.run_dir = Path(run_dir)
        self._guard(self._start, config, resumed)

    def on_records(self, records: list[dict[str, Any]]) -> None:
        """New candidate records (key, fitness, generation, parents, source)."""
        self.candidates.extend(records)

    def on_generation(self, stats: dict[str, Any], front: dict[str, Any]) -> None:
        self.history.append(stats)
        self._last_front = front
        self.objectives = list(front.get("objectives", self.objectives))
        self._guard(self._metrics, stats)
        if time.monotonic() - self._last_artifacts >= self.artifact_interval_s:
            self._guard(self._artifacts, front)

    def on_finish(self, result) -> None:
        self.history = list(result.history) or self.history
        # after a resume, on_records saw only the live tells: the result has every record
        self.candidates = list(result.records) or self.candidates
        self._guard(self._finish, result)

    # -- internals -------------------------------------------------------------------
    def _guard(self, fn, *args) -> None:
        if self.disabled:
            return
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - tracking must never stop a search
            self.disabled = True
            log.warning("MLflow tracking failed (%s: %s); the search continues and the run dir keeps "
                        "its results", type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")

    def _start(self, config, resumed: bool) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import RunStatus

        uri = resolve_tracking_uri(self.tracking_uri or config.tracking_uri, config.runs_dir)
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        digest = self.settings.dataset_digest if self.settings is not None else None
        name = self.experiment or f"evodiff-{config.problem}" + (f"-{digest[:8]}" if digest else "")
        exp_id = experiment_id(self.client, name, uri, config.runs_dir)
        saved = self.run_dir / RUN_FILE
        if resumed and saved.exists():
            self.run_id = json.loads(saved.read_text())["run_id"]
            self.client.update_run(self.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            return
        tags = {"search_id": config.search_id, "problem": config.problem, "mode": config.mode,
                "target": str(config.target or "local"), "evodiff_version": __version__,
                "mlflow.runName": config.search_id}
        commit = git_commit()
        if commit:
            tags["git_commit"] = commit
        run = self.client.create_run(exp_id, run_name=config.search_id, tags=tags)
        self.run_id = run.info.run_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({"run_id": self.run_id, "experiment_id": exp_id,
                                     "tracking_uri": redact(uri)}))
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in sorted(flatten(config.to_dict()).items())]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        if digest:
            from mlflow.entities import Dataset, DatasetInput

            name = str((config.problem_options or {}).get("dataset", "digits"))
            ds = Dataset(name=name[-200:], digest=digest[:36], source_type="local",
                         source=json.dumps({"dataset": name, "digest": digest}))
            self.client.log_inputs(self.run_id, datasets=[DatasetInput(ds)])
            self.client.set_tag(self.run_id, "dataset_digest", digest)

    def _metrics(self, stats: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        step = int(stats.get("generation", len(self.history)))
        now = int(time.time() * 1000)
        values: dict[str, float | None] = {
            "hypervolume": stats.get("hypervolume"),
            "front_size": stats.get("front_size"),
            "evaluations": stats.get("evaluations"),
            "failures": stats.get("failures"),
            "utilization": stats.get("utilization"),
            "diversity": stats.get("diversity"),
        }
        cache = stats.get("cache") or {}
        total = sum(int(cache.get(k, 0)) for k in ("hits", "misses", "waited"))
        if total:
            values["cache_hit_rate"] = (int(cache.get("hits", 0)) + int(cache.get("waited", 0))) / total
        for name, v in (stats.get("best") or {}).items():
            values[f"best_{name}"] = v
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()
                   if v is not None and math.isfinite(float(v))]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
        if step == 1 and stats.get("reference_point"):
            self.client.set_tag(self.run_id, "hypervolume_reference_point", json.dumps(stats["reference_point"]))

    def _artifacts(self, front: dict[str, Any]) -> None:
        from evodiff_ray.tracking import plots

        stage = self.run_dir / ARTIFACT_DIR
        (stage / "genomes").mkdir(parents=True, exist_ok=True)
        (stage / "front.json").write_text(json.dumps(front, indent=1))
        (stage / "front.csv").write_text(front_csv(front))
        for p in front.get("points", []):
            (stage / "genomes" / f"{p['key'][:16]}.json").write_text(json.dumps(p.get("genome"), indent=1))
        self._write_candidates(stage)
        names = self.objectives
        title = self._title or plots.search_title(
            str(front.get("search_id", "")), int(front.get("evaluations") or 0),
            float(self.history[-1].get("elapsed_s", 0.0)) if self.history else 0.0,
            plots.fidelity_name(self.settings))
        if names:
            plots.pareto_scatter(stage / "pareto.png", names, self.candidates, front.get("points", []),
                                 baseline=self.baseline, title=title)
        if self.history:
            plots.hypervolume_plot(stage / "hypervolume.png", self.history, title=title)
        self._stage_pictures(stage, front)
        self.client.log_artifacts(self.run_id, str(stage))
        self._last_artifacts = time.monotonic()

    def _write_candidates(self, stage: Path) -> None:
        names = self.objectives
        with open(stage / "candidates.jsonl", "w") as f:
            for r in self.candidates:
                f.write(json.dumps(_candidate_row(r), allow_nan=True) + "\n")
        with open(stage / "candidates.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["key", "generation", "source", "feasible", "reason", *names, "parents", "device", "predicted"])
            for r in self.candidates:
                fit = r["fitness"]
                m = fit.get("measured_on") or {}
                w.writerow([r["key"], r.get("generation"), r.get("source"), fit["feasible"], fit.get("reason") or "",
                            *[fit["objectives"].get(n) for n in names], ";".join(r.get("parents") or []),
                            m.get("device", ""), ";".join(m.get("predicted", []))])

    def _stage_pictures(self, stage: Path, front: dict[str, Any]) -> None:
        """The front members' sample grids (``samples/``) and the front sheet, when the run dir has them."""
        import shutil

        on_front = {p["key"] for p in front.get("points", [])}
        shutil.rmtree(stage / "samples", ignore_errors=True)     # the front of now, not of earlier uploads
        for r in self.candidates:
            rel = (r["fitness"].get("extras") or {}).get("samples")
            src = self.run_dir / rel if isinstance(rel, str) else None
            if r["key"] in on_front and src is not None and src.is_file() and src.parent.name == "samples":
                (stage / "samples").mkdir(exist_ok=True)
                shutil.copyfile(src, stage / "samples" / src.name)
        if self._reference_grid is not None and self._reference_grid.is_file():
            (stage / "samples").mkdir(exist_ok=True)
            shutil.copyfile(self._reference_grid, stage / "samples" / "reference.png")
        sheet = self.run_dir / "front.png"
        if sheet.is_file():
            shutil.copyfile(sheet, stage / "front.png")

    def _finish(self, result) -> None:
        from mlflow.entities import RunStatus

        ref = getattr(result, "reference", None)
        if ref and ref.get("feasible"):
            self.baseline = dict(ref["objectives"])      # measured for this search: marked on pareto.png
            if ref.get("samples"):
                self._reference_grid = self.run_dir / ref["samples"]
        self._title = getattr(result, "title", "") or None
        self._artifacts(result.front)
        self.client.set_tag(self.run_id, "stop_reason", str(result.stop_reason))
        self.client.set_terminated(self.run_id, status=RunStatus.to_string(RunStatus.FINISHED))


def _candidate_row(r: dict[str, Any]) -> dict[str, Any]:
    fit = r["fitness"]
    return {"key": r["key"], "generation": r.get("generation"), "parents": r.get("parents"),
            "origin": r.get("origin"), "source": r.get("source"), "objectives": fit["objectives"], "feasible": fit["feasible"],
            "reason": fit.get("reason"), "measured_on": fit.get("measured_on")}
