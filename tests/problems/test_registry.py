"""make_problem: registry names, options, user problems and missing modules."""

import textwrap

import pytest

from evodiff_ray.core.errors import UsageError
from evodiff_ray.problems import PROBLEMS, SearchProblem, make_problem


@pytest.mark.parametrize("name", ["zdt1", "zdt2", "zdt3", "dtlz2", "synthetic"])
def test_registered_problems_build(name):
    p = make_problem(name, {})
    assert isinstance(p, SearchProblem) and p.name == name
    assert len(p.objective_names) == p.pymoo_problem().n_obj


def test_diffusion_has_a_lazy_registry_slot():
    assert PROBLEMS["diffusion"] == "evodiff_ray.problems.diffusion:DiffusionProblem"


def test_unknown_problem_and_option():
    with pytest.raises(UsageError, match="unknown problem 'nope'.*zdt1"):
        make_problem("nope", {})
    with pytest.raises(UsageError, match="problem 'zdt1': bad problem_options"):
        make_problem("zdt1", {"colour": "red"})
    with pytest.raises(UsageError, match="'n_var' must be a positive integer"):
        make_problem("zdt1", {"n_var": 0})


def test_missing_module_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(PROBLEMS, "ghost", "evodiff_ray.problems.ghost_does_not_exist:Ghost")
    with pytest.raises(UsageError, match="problem 'ghost' is not available") as e:
        make_problem("ghost", {})
    assert "\n" not in str(e.value)


def test_user_problem_from_module_factory(tmp_path, monkeypatch):
    (tmp_path / "my_problems.py").write_text(textwrap.dedent("""
        from evodiff_ray.problems.reference import ReferenceProblem

        def small_zdt(n_var=5):
            return ReferenceProblem("zdt1", n_var=n_var)

        def not_a_problem():
            return 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    p = make_problem("my_problems:small_zdt", {"n_var": 4})
    assert p.n_var == 4
    with pytest.raises(UsageError, match="not a SearchProblem"):
        make_problem("my_problems:not_a_problem", {})
    with pytest.raises(UsageError, match="has no callable 'missing'"):
        make_problem("my_problems:missing", {})
