"""The cache key: every input that changes a fitness, derived from the problems' own settings.

The diffusion test reads ``DiffusionProblem.__init__``'s parameters, so a new constructor
option fails it until the option is either in the key (and listed in ``CHANGES`` with a
value that must move the key) or in ``NOT_IN_KEY`` with the reason it cannot change a number.
"""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import numpy as np
import pytest

from evodiff_ray.core.key import CACHE_SCHEMA, ProblemSettings, cache_key, cache_key_function, evaluation_key
from evodiff_ray.hardware.detect import processor_name
from evodiff_ray.hardware.device import select_device
from evodiff_ray.hardware.predict import LogLogFit, predictor_for
from evodiff_ray.problems import make_problem
from evodiff_ray.problems.diffusion import DiffusionProblem, baseline_genome

GENOME_KEY = baseline_genome().key()
CHIP = {"target": "m2-max"}                         # memory options only matter for a chip target
PREDICT = {"target": "m2-max", "target_mode": "predict"}   # a calibration only matters when predicting

#: constructor options that must NOT join the key, each with why no measured number depends on it
NOT_IN_KEY = {
    # where the feature network is cached; the network itself is trained with a fixed seed
    # on the dataset (whose digest is in the key), so it is the same wherever it is kept
    "cache_dir",
}

#: option -> (the other options it needs to matter, a different valid value)
CHANGES = {
    "fidelity": ({}, "standard"),
    "dataset": ({}, "<npz>"),                # filled in with a real .npz file below
    "resolution": ({}, 16),                  # digits resized: another digest and space
    "seed": ({}, 1),
    "fd_samples": ({}, 100),
    "latency_batch": ({}, 4),
    "latency_repeats": ({}, 2),
    "time_limit_s": ({}, 30.0),              # a candidate over the limit is infeasible (and cached)
    "threads": ({"threads": 1}, 2),
    "target": ({}, "m2-max"),
    "target_mode": (CHIP, "predict"),
    "memory_fraction": (CHIP, 0.5),
    "memory_gb": (CHIP, 64),
    "predictor_calibration": (PREDICT, {**predictor_for("m2-max").to_dict(),
                                        "latency_fit": LogLogFit(0.5, 0.9, 12).to_dict()}),
    "space": ({}, {"max_params": 50_000}),
    "rungs": ({}, [0.25, 1, 4]),            # multi-fidelity: another schedule (warmup-stable-decay)
}

#: options the key names by what they resolve to on the measuring machine, not by their
#: spelling (``auto`` and ``cpu`` are the same device on a machine without a GPU)
RESOLVED = {"device"}


def _key(**options) -> str:
    return cache_key(GENOME_KEY, DiffusionProblem(**options).evaluation_settings())


def test_key_format():
    k = cache_key("g" * 64, ProblemSettings("zdt1", {"n_var": 30}))
    prefix = f"evodiff:fit:v{CACHE_SCHEMA}:"
    assert k.startswith(prefix) and len(k) == len(prefix) + 64


def test_every_diffusion_option_that_changes_fitness_changes_the_key(tmp_path):
    params = [p for p in inspect.signature(DiffusionProblem.__init__).parameters if p != "self"]
    unaccounted = set(params) - set(CHANGES) - NOT_IN_KEY - RESOLVED
    assert not unaccounted, (f"DiffusionProblem options {sorted(unaccounted)} are neither in the cache key test "
                             "(CHANGES/RESOLVED) nor allowed out of the key (NOT_IN_KEY, with a reason)")
    assert not (set(CHANGES) | NOT_IN_KEY | RESOLVED) - set(params), "the test lists options that no longer exist"
    npz = tmp_path / "other.npz"
    np.savez(npz, x=np.random.default_rng(0).integers(0, 256, (60, 8, 8), dtype=np.uint8))
    for option, (needs, value) in CHANGES.items():
        value = str(npz) if value == "<npz>" else value
        before, after = _key(**needs), _key(**{**needs, option: value})
        assert before != after, f"changing {option!r} to {value!r} leaves the cache key unchanged"


def test_the_key_names_the_device_class_processor_and_threads_it_resolves_to():
    import torch

    for device in (None, "auto", "cpu"):
        d = DiffusionProblem(device=device).evaluation_settings().key_dict()
        dev = select_device(device or "auto")
        assert (d["device_class"], d["processor"]) == (dev.type, processor_name(dev))
        assert d["processor"]                               # a real model name, e.g. the CPU's
    assert DiffusionProblem().evaluation_settings().key_dict()["threads"] == torch.get_num_threads()
    # another device class or processor is another key (a Mac's MPS entries never meet a CPU's)
    settings = DiffusionProblem().evaluation_settings()
    rkey = cache_key_function(settings)
    for change in ({"device_class": "mps"}, {"processor": "Apple M2 Max"}):
        assert cache_key_function(dataclasses.replace(settings, **change))(GENOME_KEY) != rkey(GENOME_KEY)
    if torch.cuda.is_available():
        assert _key(device="cpu") != _key(device="cuda")


def test_options_that_cannot_matter_do_not_split_the_cache():
    # without a chip target there is no memory budget; while measuring, no prediction
    assert _key() == _key(memory_fraction=0.5) == _key(memory_gb=64)
    assert _key(**CHIP) == _key(**CHIP, predictor_calibration=CHANGES["predictor_calibration"][1])
    assert _key(cache_dir="/elsewhere") == _key()


def test_unresolved_settings_and_bare_dicts_have_no_key():
    with pytest.raises(ValueError, match="resolved"):
        DiffusionProblem().settings.key_dict()
    with pytest.raises(TypeError, match="key_dict"):
        cache_key("a", {"problem": "zdt1"})


def test_generic_problems_key_their_name_and_options():
    a = make_problem("zdt1").evaluation_settings()
    assert a == ProblemSettings("zdt1", {"n_var": 30})
    assert cache_key("a", a) != cache_key("a", make_problem("zdt1", {"n_var": 10}).evaluation_settings())
    assert cache_key("a", a) != cache_key("a", make_problem("zdt2").evaluation_settings())
    xy, yx = ProblemSettings("p", {"x": 1, "y": 2}), ProblemSettings("p", {"y": 2, "x": 1})
    assert cache_key("a", xy) == cache_key("a", yx)
    options = {"n_var": 30}
    frozen = ProblemSettings("zdt1", options)
    options["n_var"] = 5                                      # the settings keep their own copy
    assert frozen.key_dict() == {"problem": "zdt1", "n_var": 30}
    assert pickle.loads(pickle.dumps(frozen)) == frozen       # settings cross process boundaries


def test_key_changes_with_candidate_and_code_version(monkeypatch):
    settings = make_problem("zdt1").evaluation_settings()
    assert evaluation_key("a" * 64, settings) != evaluation_key("b" * 64, settings)
    before = cache_key("a" * 64, settings)
    monkeypatch.setattr("evodiff_ray.core.key.EVALUATION_CODE_VERSION", 999)
    assert cache_key("a" * 64, settings) != before


def test_a_mac_workers_facts_replace_the_drivers_in_the_key():
    p = DiffusionProblem(fidelity="smoke")
    here = p.worker_facts()
    assert here == {"device_class": "cpu", "processor": processor_name(select_device("cpu"))}
    driver_key = cache_key(baseline_genome().key(), p.evaluation_settings())
    p.adopt_worker_facts({"device_class": "mps", "processor": "Apple M2 Max"})
    s = p.evaluation_settings()
    assert (s.device_class, s.processor) == ("mps", "Apple M2 Max")
    assert cache_key(baseline_genome().key(), s) != driver_key
    p.adopt_worker_facts(here)
    assert cache_key(baseline_genome().key(), p.evaluation_settings()) == driver_key
