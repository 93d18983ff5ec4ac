"""SearchConfig: resolution order, validation messages, resolved form, resume rules."""

import json
import re

import pytest

from evodiff_ray.config import (RESUMABLE_OVERRIDES, SearchConfig, cli_flags, config_fields, from_dict, load_config,
                                resume_config)
from evodiff_ray.core.errors import UsageError
from evodiff_ray.problems.base import SearchProblem
from evodiff_ray.problems.synthetic import SyntheticProblem

PRESETS = SearchProblem.presets   # the generic presets, which the reference problems keep


class TunedSynthetic(SyntheticProblem):
    """A user's problem that describes itself: its own preset and a config field it takes."""

    presets = {"tiny": {"pop_size": 4, "generations": 2, "fidelity": "low"}}
    config_options = ("fidelity",)


def write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_defaults_preset_file_overrides_in_order(tmp_path):
    p = write(tmp_path, 'preset = "quick"\npop_size = 30\nproblem = "zdt2"\n[actor]\nnum_cpus = 2\n')
    c = load_config(p, overrides={"pop_size": 40, "seed": None, "actor.resources": {"apple_silicon": 1}})
    assert c.pop_size == 40                                   # override beats file
    assert c.problem == "zdt2"                                # file beats default
    assert c.generations == PRESETS["quick"]["generations"]   # preset beats default
    assert c.seed == SearchConfig().seed                      # None override ignored
    assert c.actor.num_cpus == 2.0 and isinstance(c.actor.num_cpus, float)
    assert c.actor.resources == {"apple_silicon": 1.0}


def test_search_id_generated_and_validated():
    c = load_config(overrides={"problem": "zdt1"})
    assert c.search_id.startswith("zdt1-")
    with pytest.raises(UsageError, match="search_id"):
        load_config(overrides={"search_id": "../etc"})


@pytest.mark.parametrize("text, match", [
    ("popsize = 3\n", "unknown config key 'popsize'"),
    ("[actor]\ncpus = 1\n", "unknown config key 'actor.cpus'"),
    ('pop_size = "ten"\n', "'pop_size' must be an integer"),
    ("pop_size = 1.5\n", "'pop_size' must be an integer"),
    ("no_cache = 1\n", "'no_cache' must be true or false"),
    ('[actor]\nresources = {apple_silicon = "one"}\n', "'actor.resources.apple_silicon' must be a number"),
    ("pop_size = 0\n", "pop_size must be > 0"),
    ("generations = -3\n", "generations must be > 0"),
    ("workers = 0\n", "workers must be > 0"),
    ("batch_size = 0\n", "batch_size must be > 0"),
    ("max_seconds = 0\n", "max_seconds must be > 0"),
    ('problem = "zdt9"\n', "unknown problem 'zdt9'"),
    ('mode = "turbo"\n', "mode must be one of"),
    ('preset = "huge"\n', "unknown preset 'huge'"),
    ("pop_size = \n", "not valid TOML"),
    ("generations = 0\n", "generations must be > 0"),
])
def test_bad_configs_give_one_line_usage_errors(tmp_path, text, match):
    with pytest.raises(UsageError, match=match) as e:
        load_config(write(tmp_path, text))
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_budgets_combine_and_a_later_value_of_the_same_budget_overrides(tmp_path):
    from evodiff_ray.config import DEFAULT_GENERATIONS

    assert load_config().generations == DEFAULT_GENERATIONS            # none anywhere: 10 generations
    c = load_config(overrides={"max_evaluations": 100})
    assert c.budgets() == {"max_evaluations": 100}
    # the preset's generations stay in force beside a time budget from the flags
    c = load_config(preset="standard", overrides={"max_seconds": 2400, "problem": "zdt1"})
    assert c.budgets() == {"generations": PRESETS["standard"]["generations"], "max_seconds": 2400.0}
    c = load_config(preset="quick", overrides={"max_evaluations": 100, "problem": "zdt1"})
    assert (c.generations, c.max_evaluations, c.pop_size) == (PRESETS["quick"]["generations"], 100,
                                                              PRESETS["quick"]["pop_size"])
    # preset < file < flags for the same budget; budgets from each source add up
    p = write(tmp_path, 'preset = "quick"\nproblem = "zdt1"\ngenerations = 7\nmax_seconds = 60\n')
    assert load_config(p).budgets() == {"generations": 7, "max_seconds": 60.0}
    assert load_config(p, overrides={"generations": 9, "max_evaluations": 50}).budgets() == \
        {"generations": 9, "max_evaluations": 50, "max_seconds": 60.0}


def test_diffusion_is_the_default_problem_with_its_own_presets():
    from evodiff_ray.problems.diffusion import DiffusionProblem

    c = load_config(preset="quick")
    assert c.problem == "diffusion"
    assert (c.pop_size, c.generations) == (DiffusionProblem.presets["quick"]["pop_size"],
                                           DiffusionProblem.presets["quick"]["generations"])
    assert c.problem_options["fidelity"] == "quick"
    c = load_config(preset="quick", overrides={"fidelity": "standard"})
    assert c.problem_options["fidelity"] == "standard"
    c = load_config(preset="quick", overrides={"problem_options": {"fidelity": "full"}})
    assert c.problem_options["fidelity"] == "full"             # not "given twice": the preset yields
    with pytest.raises(UsageError, match="fidelity is not an option of problem 'zdt1' \\(it applies to: diffusion\\)"):
        load_config(overrides={"problem": "zdt1", "fidelity": "quick"})
    with pytest.raises(UsageError, match="given twice"):
        load_config(overrides={"fidelity": "quick", "problem_options": {"fidelity": "full"}})
    with pytest.raises(UsageError, match="several chips"):
        load_config(overrides={"target": "m1,m2-max"})
    with pytest.raises(UsageError, match="unknown"):
        load_config(overrides={"target": "m9-hyper"})


def test_a_problem_describes_its_presets_and_the_config_fields_it_takes():
    name = f"{__name__}:TunedSynthetic"
    c = load_config(preset="tiny", overrides={"problem": name})
    assert (c.pop_size, c.generations, c.problem_options) == (4, 2, {"fidelity": "low"})
    with pytest.raises(UsageError, match="unknown preset 'quick' for problem .*; choose one of tiny"):
        load_config(preset="quick", overrides={"problem": name})
    # target pins actors for any problem; it joins the options only of a problem that takes it
    c = load_config(overrides={"problem": name, "target": "any"})
    assert c.target == "any" and "target" not in c.problem_options
    c = load_config(overrides={"problem": "diffusion", "target": "any"})
    assert c.problem_options["target"] == "any"


def test_flags_and_resumable_set_come_from_the_field_metadata():
    keys = [key for key, _, _ in config_fields()]
    flags = {f.key: f for f in cli_flags()}
    assert set(flags) == set(keys)                              # every field has a flag ...
    assert all(f.help and f.names[0].startswith("--") for f in flags.values())   # ... with help
    assert flags["pop_size"].names == ("--pop",) and flags["problem_options"].names == ("--problem-option", "-O")
    assert flags["actor.num_cpus"].names == ("--num-cpus",) and flags["actor.resources"].values is float
    assert {"generations", "max_seconds", "workers", "actor", "redis_url"} <= RESUMABLE_OVERRIDES
    assert not {"seed", "pop_size", "problem", "mode"} & RESUMABLE_OVERRIDES


BAD_SERVICES = [
    ({"redis_url": "localhost:6379"}, "redis_url 'localhost:6379' is not a Redis URL: it has no scheme"),
    ({"redis_url": "redis://h:abc"}, "the port 'abc' is not a number"),
    ({"tracking_uri": "./mlruns"}, "tracking_uri './mlruns' is not an MLflow tracking URI"),
    ({"address": "http://h:8265"}, "that is the dashboard's address"),
]


@pytest.mark.parametrize("overrides, match", BAD_SERVICES)
def test_malformed_service_addresses_are_usage_errors(overrides, match):
    with pytest.raises(UsageError, match=re.escape(match)):
        load_config(overrides={"problem": "zdt1", **overrides})


def test_service_addresses_from_the_environment_are_checked_when_used(monkeypatch):
    monkeypatch.setenv("EVODIFF_REDIS_URL", "redis://h:99999")
    with pytest.raises(UsageError, match="EVODIFF_REDIS_URL 'redis://h:99999' .* out of range"):
        load_config(overrides={"problem": "zdt1"})
    load_config(overrides={"problem": "zdt1", "no_cache": True})          # not used: not checked
    load_config(overrides={"problem": "zdt1", "redis_url": "redis://127.0.0.1:6379/0"})   # the flag wins
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "mlruns here")
    with pytest.raises(UsageError, match="MLFLOW_TRACKING_URI"):
        load_config(overrides={"problem": "zdt1", "no_cache": True})
    load_config(overrides={"problem": "zdt1", "no_cache": True, "no_tracking": True})


def test_to_dict_round_trips_through_json():
    c = load_config(overrides={"problem": "synthetic", "problem_options": {"mean_ms": 5},
                               "actor.label_selector": {"chip": "m4"}})
    again = from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c


def test_config_written_atomically(tmp_path):
    c = load_config(overrides={"runs_dir": str(tmp_path)})
    c.write(tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text()) == c.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_resume_may_extend_but_not_redefine():
    saved = load_config(overrides={"search_id": "s", "seed": 3, "generations": 4}).to_dict()
    c = resume_config(saved, {"generations": 9, "workers": 2, "seed": 3}, where="config.json")
    assert (c.generations, c.workers, c.seed) == (9, 2, 3)
    with pytest.raises(UsageError, match="cannot change 'seed'"):
        resume_config(saved, {"seed": 4}, where="config.json")
    with pytest.raises(UsageError, match="cannot change 'pop_size'"):
        resume_config(saved, {"pop_size": 7}, where="config.json")


def test_resume_compares_meanings_not_spellings():
    saved = load_config(overrides={"search_id": "s", "problem": "zdt1", "constraints": ["f1 <= 0.5"],
                                   "rungs": "off"}).to_dict()
    assert saved["constraints"] == ["f1<=0.5"] and saved["rungs"] is None
    c = resume_config(saved, {"constraints": ["f1<= .5"], "rungs": "none"}, where="config.json")
    assert (c.constraints, c.rungs) == (["f1<=0.5"], None)
    with pytest.raises(UsageError, match="cannot change 'constraints'"):
        resume_config(saved, {"constraints": ["f1<=0.6"]}, where="config.json")
    with pytest.raises(UsageError, match="cannot change 'rungs'"):
        resume_config(saved, {"rungs": "0.5,1"}, where="config.json")


def test_diffusion_standard_preset_is_the_benchmarked_best_and_rungs_can_be_turned_off():
    """bench_search_quality: multi-fidelity async NSGA-II had the highest hypervolume; quick stays
    single-fidelity and generational (its rerun must be all cache hits)."""
    from evodiff_ray.problems import make_problem

    c = load_config(preset="standard", overrides={"problem": "diffusion"})
    assert (c.mode, c.rungs, c.pop_size, c.generations) == ("async", "0.25,1,4", 24, 10)
    q = load_config(preset="quick", overrides={"problem": "diffusion"})
    assert (q.mode, q.rungs) == ("generational", None)
    off = load_config(preset="standard", overrides={"problem": "diffusion", "rungs": "off"})
    assert off.rungs is None
    assert make_problem("diffusion", dict(off.problem_options or {}, rungs=off.rungs)).rung_count() == 0
