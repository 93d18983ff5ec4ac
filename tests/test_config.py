"""SearchConfig: resolution order, validation messages, resolved form, resume rules."""

import json

import pytest

from evodiff_ray.config import PRESETS, SearchConfig, from_dict, load_config, resume_config
from evodiff_ray.core.errors import UsageError


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


def test_terminations_default_and_explicit_ones_replace_the_presets():
    from evodiff_ray.config import DEFAULT_GENERATIONS

    assert load_config().generations == DEFAULT_GENERATIONS
    c = load_config(overrides={"max_evaluations": 100})
    assert (c.generations, c.max_evaluations) == (None, 100)
    c = load_config(preset="quick", overrides={"max_evaluations": 100, "problem": "zdt1"})
    assert (c.generations, c.max_evaluations, c.pop_size) == (None, 100, PRESETS["quick"]["pop_size"])
    assert load_config(preset="standard", overrides={"problem": "zdt1"}).generations == \
        PRESETS["standard"]["generations"]


def test_diffusion_is_the_default_problem_with_its_own_presets():
    from evodiff_ray.config import DIFFUSION_PRESETS

    c = load_config(preset="quick")
    assert c.problem == "diffusion"
    assert (c.pop_size, c.generations) == (DIFFUSION_PRESETS["quick"]["pop_size"],
                                           DIFFUSION_PRESETS["quick"]["generations"])
    assert c.problem_options["fidelity"] == "quick"
    c = load_config(preset="quick", overrides={"fidelity": "standard"})
    assert c.problem_options["fidelity"] == "standard"
    with pytest.raises(UsageError, match="fidelity applies to the diffusion problem"):
        load_config(overrides={"problem": "zdt1", "fidelity": "quick"})
    with pytest.raises(UsageError, match="several chips"):
        load_config(overrides={"target": "m1,m2-max"})
    with pytest.raises(UsageError, match="unknown"):
        load_config(overrides={"target": "m9-hyper"})


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
