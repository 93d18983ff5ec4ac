"""Fit a device's predictor correction on the candidates a search measured, and store it with the run.

At the end of a search of genomes (the diffusion problem adds it), :class:`CalibrationTracker`
takes the feasible candidates whose latency and memory were *measured* (not predicted),
fits the per-device correction of the analytic predictor
(:meth:`~evodiff_ray.hardware.predict.Predictor.calibrated`) and writes
``<run_dir>/predictor_calibration.json``. A later search that predicts for that
device passes the file back: ``-O predictor_calibration=<run_dir>/predictor_calibration.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.tracker import Tracker

log = logging.getLogger(__name__)
CALIBRATION_FILE = "predictor_calibration.json"
MIN_CANDIDATES = 4


def measured_rows(records: list[dict[str, Any]]) -> list[tuple[dict, float, float, str | None]]:
    """(genome data, latency_ms, memory_mb, chip) of feasible records measured on their device."""
    rows = []
    for r in records:
        fit = r["fitness"]
        m = fit.get("measured_on") or {}
        if not fit.get("feasible") or set(m.get("predicted") or []) & {"latency_ms", "memory_mb"}:
            continue
        lat, mem = fit["objectives"].get("latency_ms"), fit["objectives"].get("memory_mb")
        if isinstance(lat, (int, float)) and isinstance(mem, (int, float)) and lat > 0 and mem > 0:
            rows.append((r["x"], float(lat), float(mem), m.get("device")))
    return rows


def fit_calibration(records: list[dict[str, Any]], *, chip: str | None, batch: int, resolution: int,
                    in_channels: int) -> dict[str, Any] | None:
    """The fitted predictor (JSON data) for the device that measured ``records``, or None.

    The device is the target chip when the search measured on it (MPS), else this
    machine's CPU profile; CUDA has no profile and is skipped.

    Args:
        records: the search's candidate records (``x``, ``fitness``).
        chip: the search's target chip, or None.
        batch: images per sampling run the latencies were measured with.
        resolution: the images' side length.
        in_channels: the images' channels.
    """
    from scipy.stats import spearmanr

    from evodiff_ray.genome import Genome
    from evodiff_ray.hardware.predict import predictor_for

    rows = measured_rows(records)
    devices = {d for *_, d in rows}
    if len(rows) < MIN_CANDIDATES or len(devices) != 1:
        return None
    device = devices.pop()
    if device == "mps" and chip:
        name = chip
    elif device == "cpu":
        name = "cpu"
    else:
        return None
    genomes = [Genome.from_dict(x) for x, *_ in rows]
    lat = [r[1] for r in rows]
    mem = [r[2] for r in rows]
    base = predictor_for(name, batch=batch, resolution=resolution, in_channels=in_channels)
    cal = base.calibrated(genomes, lat, mem)
    rho_lat = spearmanr([cal.latency_ms(g) for g in genomes], lat).statistic
    rho_mem = spearmanr([cal.memory_mb(g) for g in genomes], mem).statistic
    return {"device": name, "candidates": len(rows), "spearman_latency_in_sample": float(rho_lat),
            "spearman_memory_in_sample": float(rho_mem), "predictor": cal.to_dict()}


def load_calibration(value: Any) -> dict[str, Any] | None:
    """A ``predictor_calibration`` option: fit data, or the path of a saved calibration file.

    Raises:
        UsageError: an unreadable or malformed file, naming it.
    """
    if value is None or isinstance(value, dict) and "latency_fit" in value:
        return value
    if isinstance(value, dict) and isinstance(value.get("predictor"), dict):
        return value["predictor"]
    path = Path(str(value))
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"predictor_calibration: cannot read {path} ({e}); give a {CALIBRATION_FILE} "
                         "written by a search") from None
    pred = data.get("predictor") if isinstance(data, dict) else None
    if not isinstance(pred, dict) or not isinstance(pred.get("latency_fit"), dict):
        raise UsageError(f"predictor_calibration: {path} is not a {CALIBRATION_FILE}; give one a search wrote")
    return pred


class CalibrationTracker(Tracker):
    """Writes ``predictor_calibration.json`` to the run dir when a search of genomes ends.

    Args: as :func:`fit_calibration` (all but the records).
    """

    def __init__(self, *, chip: str | None, batch: int, resolution: int, in_channels: int):
        self.options = {"chip": chip, "batch": batch, "resolution": resolution, "in_channels": in_channels}

    def on_finish(self, result) -> None:
        try:
            data = fit_calibration(list(result.records), **self.options)
        except Exception as e:  # noqa: BLE001 - a side product; never fail the search for it
            log.warning("predictor calibration skipped: %s", e)
            return
        if data is not None:
            from evodiff_ray.core.front import atomic_write_text

            atomic_write_text(Path(result.run_dir) / CALIBRATION_FILE, json.dumps(data, indent=1) + "\n")
