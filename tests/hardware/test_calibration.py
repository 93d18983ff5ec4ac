"""Per-device predictor correction fitted on measured candidates and stored with the run."""

import json

import numpy as np
import pytest

from evodiff_ray.core.errors import UsageError
from evodiff_ray.hardware.calibration import CALIBRATION_FILE, fit_calibration, load_calibration
from evodiff_ray.hardware.predict import predictor_for
from evodiff_ray.operators import sample_population
from evodiff_ray.problems import make_problem
from evodiff_ray.space import SearchSpace

#: what the records were measured with: a CPU search of 8x8x1 images at batch 16
MEASURED = {"chip": None, "batch": 16, "resolution": 8, "in_channels": 1}


def _records(n=12, predicted=()):
    gs = sample_population(SearchSpace(), n, np.random.default_rng(0))
    base = predictor_for("cpu", batch=16)
    recs = []
    for i, g in enumerate(gs):
        lat = 3.0 * base.roofline_ms(g) ** 0.9          # a device 'slower' than the raw roofline
        mem = 1.5 * base.raw_memory_mb(g)
        recs.append({"x": g.to_dict(), "fitness": {"feasible": True,
                     "objectives": {"quality_fd": 100.0, "latency_ms": lat, "memory_mb": mem},
                     "measured_on": {"device": "cpu", "predicted": list(predicted)}}})
    return gs, recs


def test_fit_recovers_the_measured_scale_and_round_trips(tmp_path):
    gs, recs = _records()
    data = fit_calibration(recs, **MEASURED)
    assert data["device"] == "cpu" and data["candidates"] == 12
    assert data["spearman_latency_in_sample"] > 0.99
    path = tmp_path / CALIBRATION_FILE
    path.write_text(json.dumps(data))
    cal = predictor_for("cpu", batch=16, calibration=load_calibration(str(path)))
    lat = [r["fitness"]["objectives"]["latency_ms"] for r in recs]
    pred = [cal.latency_ms(g) for g in gs]
    assert np.median(np.abs(np.array(pred) / np.array(lat) - 1)) < 0.05
    opt = make_problem("diffusion", {"target": "m2-max", "predictor_calibration": str(path)})
    assert opt.predictor_calibration["latency_fit"]["kind"] == "loglog"


def test_predicted_records_and_too_few_are_not_fitted():
    assert fit_calibration(_records(predicted=("latency_ms",))[1], **MEASURED) is None
    assert fit_calibration(_records(n=3)[1], **MEASURED) is None


def test_bad_calibration_file_is_a_usage_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(UsageError, match="is not a predictor_calibration.json"):
        load_calibration(str(bad))
    with pytest.raises(UsageError, match="cannot read"):
        load_calibration(str(tmp_path / "missing.json"))
