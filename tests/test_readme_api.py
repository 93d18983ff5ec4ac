"""The README's Python API snippet, run exactly as written (in-process, and in a fresh interpreter)."""

import re
import subprocess
import sys
import textwrap

from conftest import REPO


def readme_snippet() -> str:
    """The fenced ``python`` block of the README's "Python API" item, dedented."""
    text = (REPO / "README.md").read_text()
    start = text.index("**Python API.**")
    m = re.compile(r"^([ \t]*)```python\n(.*?)^\1```[ \t]*$", re.S | re.M).search(text, start)
    assert m, "README's Python API item has no ```python block"
    return textwrap.dedent(m.group(2))


def test_the_snippet_makes_the_documented_call():
    code = readme_snippet()
    assert "evodiff_ray.search(config)" in code and "evodiff_ray.load_config(" in code


def test_readme_snippet_runs_and_finds_a_front(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_snippet(), "README.md (Python API)", "exec"), namespace)
    result = namespace["result"]
    assert type(result).__name__ == "SearchResult" and result.front["points"]
    assert result.front["status"] == "finished" and result.stop_reason.startswith("generations=")
    assert (tmp_path / "evodiff-runs" / result.search_id / "front.json").exists()
    out = capsys.readouterr().out
    assert f"{len(result.front['points'])} points on the front" in out


def test_readme_snippet_in_a_fresh_interpreter_after_the_engine_was_imported(tmp_path):
    """Python binds ``evodiff_ray.search`` to the subpackage whoever imports it first;
    the documented call must work either way, and ``import evodiff_ray`` alone stays light."""
    probe = ("import sys, evodiff_ray\n"
             "heavy = [m for m in ('ray', 'mlflow', 'torch', 'pymoo') if m in sys.modules]\n"
             "assert not heavy, heavy\n"
             "from evodiff_ray.search import search as engine  # binds the subpackage first\n")
    p = subprocess.run([sys.executable, "-c", probe + readme_snippet()], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert re.search(r"^generations=\d+ [1-9]\d* points on the front$", p.stdout, re.M), p.stdout
