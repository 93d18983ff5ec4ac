"""``search --constraint``: stated constraints through the CLI and ``search()`` on zdt1, in-process."""

import json

import pytest

from evodiff_ray.cli import main
from evodiff_ray.config import load_config
from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.evaluator import EvaluatorWrapper
from evodiff_ray.search import search
from evodiff_ray.search.checkpoint import Checkpoint


def run(runs_dir, search_id, *extra):
    return main(["search", "--problem", "zdt1", "--pop", "12", "--generations", "4", "--seed", "2",
                 "--backend", "local", "--runs-dir", str(runs_dir), "--no-cache", "--no-tracking", "--quiet",
                 "--search-id", search_id, *extra])


def front_of(runs_dir, search_id):
    return json.loads((runs_dir / search_id / "front.json").read_text())


def test_every_front_point_meets_the_constraint_and_unconstrained_ones_do_not(runs_dir, capsys):
    assert run(runs_dir, "free") == 0
    assert run(runs_dir, "kept", "--constraint", "f1 <= 0.5") == 0
    assert "(constraints: f1<=0.5)" in capsys.readouterr().out              # the front table says so
    free, kept = front_of(runs_dir, "free"), front_of(runs_dir, "kept")
    assert any(p["objectives"]["f1"] > 0.5 for p in free["points"]) and "constraints" not in free
    assert kept["points"] and all(p["objectives"]["f1"] <= 0.5 for p in kept["points"])
    assert kept["constraints"] == ["f1<=0.5"]
    assert json.loads((runs_dir / "kept" / "config.json").read_text())["constraints"] == ["f1<=0.5"]
    # the told records carry the normalised value; a violator is feasible (it did not fail)
    records = [r for e in Checkpoint(runs_dir / "kept" / "checkpoint").load().events if e["op"] == "tell"
               for r in e["records"]]
    for r in records:
        f1 = float(r["fitness"]["objectives"]["f1"])
        assert float(r["fitness"]["constraints"]["f1<=0.5"]) == pytest.approx(f1 / 0.5 - 1)
    assert any(float(r["fitness"]["objectives"]["f1"]) > 0.5 and r["fitness"]["feasible"] for r in records)


def test_a_resume_keeps_the_constraints_and_refuses_other_ones(runs_dir, capsys):
    assert run(runs_dir, "c", "--constraint", "f1<=0.5") == 0
    capsys.readouterr()
    resume = ["search", "--resume", "--search-id", "c", "--runs-dir", str(runs_dir), "--quiet", "--generations", "5"]
    assert main([*resume, "--constraint", "f1<=0.4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("evodiff-ray: error: --resume cannot change 'constraints' (saved ['f1<=0.5'], given "
                   "['f1<=0.4']); start a new search instead")
    assert main(resume) == 0                                             # the saved constraints stand
    front = front_of(runs_dir, "c")
    assert front["generation"] == 5 and front["constraints"] == ["f1<=0.5"]
    assert all(p["objectives"]["f1"] <= 0.5 for p in front["points"])


def test_the_checkpoint_refuses_a_resume_with_other_constraints(runs_dir):
    def cfg(**kw):
        return load_config(overrides={"problem": "zdt1", "pop_size": 8, "generations": 2, "backend": "local",
                                      "runs_dir": str(runs_dir), "no_cache": True, "no_tracking": True,
                                      "search_id": "api", **kw})

    search(cfg(constraints=["f1<=0.5"]))
    for other in (["f1<=0.4"], []):
        with pytest.raises(UsageError, match=r"checkpoint was made with constraints=\['f1<=0.5'\]"):
            search(cfg(constraints=other, generations=3), resume=True)


@pytest.mark.parametrize("constraint, message", [
    ("latency_ms<=20", "constraint 'latency_ms<=20': problem 'zdt1' has no objective 'latency_ms'; "
                       "constrain one of f1, f2"),
    ("f1<0.5", "constraint 'f1<0.5': use <= or >= (not <)"),
    ("f1<=inf", "constraint 'f1<=inf': the limit must be a finite number"),
    ("f1<=half", "the limit 'half' is not a number"),
])
def test_bad_constraints_are_one_line_and_exit_2_before_anything_starts(runs_dir, capsys, constraint, message):
    assert run(runs_dir, "bad", "--constraint", constraint) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (runs_dir / "bad").exists()


def test_constraints_from_a_toml_list_and_flags_replace_it(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('problem = "zdt1"\nconstraints = ["f1 <= 0.5", "f2>=0"]\n')
    assert load_config(toml).constraints == ["f1<=0.5", "f2>=0"]
    assert load_config(toml, overrides={"constraints": ["f2<=3"]}).constraints == ["f2<=3"]
    toml.write_text('problem = "zdt1"\nconstraints = "f1<=0.5"\n')
    with pytest.raises(UsageError, match="config key 'constraints' must be a list"):
        load_config(toml)
    toml.write_text('problem = "zdt1"\nconstraints = [0.5]\n')
    with pytest.raises(UsageError, match=r"config key 'constraints\[0\]' must be a string"):
        load_config(toml)


def test_the_constraints_are_applied_outside_the_cache(runs_dir):
    """What the cache wrapper sees (and would store) holds no stated constraint."""
    seen = []

    class Recording(EvaluatorWrapper):
        def poll(self, timeout=None):
            out = self.inner.poll(timeout)
            seen.extend(dict(o.fitness.constraints) for o in out)
            return out

    r = search(load_config(overrides={"problem": "zdt1", "pop_size": 8, "generations": 2, "backend": "local",
                                      "runs_dir": str(runs_dir), "no_cache": True, "no_tracking": True,
                                      "constraints": ["f1<=0.5"]}), wrap_evaluator=Recording)
    assert len(seen) == 16 and all(c == {} for c in seen)
    assert all("f1<=0.5" in rec["fitness"]["constraints"] for rec in r.records)


@pytest.mark.redis
def test_a_search_with_other_constraints_reuses_the_cached_fitness(runs_dir):
    def cfg(search_id, constraint):
        return load_config(overrides={"problem": "zdt1", "pop_size": 10, "generations": 2, "seed": 3,
                                      "backend": "local", "runs_dir": str(runs_dir), "no_tracking": True,
                                      "search_id": search_id, "constraints": [constraint]})

    a = search(cfg("first", "f1<=0.5"))       # embedded redis-server, started and stopped here
    b = search(cfg("second", "f1<=0.3"))
    assert a.front["cache"]["hits"] == 0 and b.front["cache"]["hits"] >= 10   # the same first population
    hits = [r for r in b.records if r["source"] == "hit"]
    assert hits and all(set(r["fitness"]["constraints"]) == {"f1<=0.3"} for r in hits)
    assert all(p["objectives"]["f1"] <= 0.3 for p in b.front["points"])


def test_the_searched_problem_may_constrain_the_rating_objective():
    from evodiff_ray.evaluation.constraints import StatedConstraints
    from evodiff_ray.problems import make_problem
    from evodiff_ray.problems.extra_objectives import ExtraObjectives
    from evodiff_ray.search import searched_problem

    class Rating:   # stands in for --rating-from's RatingObjective
        def problem(self, inner):
            return ExtraObjectives(inner, ("rating",))

    zdt1 = make_problem("zdt1", {})
    stated = StatedConstraints.parse(["rating<=1"])
    p = searched_problem(zdt1, Rating(), stated)
    assert p.objective_names == ("f1", "f2", "rating") and p.constraint_names == ("rating<=1",)
    with pytest.raises(UsageError, match="problem 'zdt1' has no objective 'rating'; constrain one of f1, f2"):
        searched_problem(zdt1, None, stated)
    assert searched_problem(zdt1) is zdt1


def test_the_flag_is_repeatable_and_generated_from_the_field(runs_dir):
    from evodiff_ray.cli import build_parser
    from evodiff_ray.cli.search import build_config
    from evodiff_ray.config import RESUMABLE_OVERRIDES, cli_flags

    flag = {f.key: f for f in cli_flags()}["constraints"]
    assert (flag.names, flag.kind, flag.values) == (("--constraint",), list, str)
    assert "constraints" not in RESUMABLE_OVERRIDES
    args = build_parser().parse_args(["search", "--problem", "zdt1", "--constraint", "f1<=0.5", "--constraint",
                                      "f2 >= 0", "--runs-dir", str(runs_dir)])
    assert build_config(args).constraints == ["f1<=0.5", "f2>=0"]
    args = build_parser().parse_args(["search", "--problem", "zdt1", "--runs-dir", str(runs_dir)])
    assert build_config(args).constraints == []
