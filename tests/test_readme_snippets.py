"""Every fenced shell and Python snippet of README.md runs, as written, on a small problem.

Each block is one test, run in README order in one temporary working directory with
this venv's ``bin`` first on PATH (``evodiff-ray`` is the venv's console script), so
nothing lands in the repository. What the test changes in a command, all listed here:

- **Size only.** A command that runs a diffusion preset (``evodiff-ray search --preset``,
  ``scripts/quickstart``) gets :data:`SHRINK` appended: the ``smoke`` fidelity and a
  population of 4 for one generation. Problem, mode, cache, tracking and Ray stay as
  written. A search of a benchmark problem (``--problem zdt1``) runs at most
  :data:`MAX_GENERATIONS` generations.
- **Places.** ``scripts/...`` is the repository's script (the README runs it from the
  clone); ``scripts/quickstart`` also gets ``--runs-dir`` of the temporary directory,
  since the script runs from the clone. A placeholder search id (``diffusion-2026...``)
  is the id of the newest search the snippets ran.
- **Never run.** ``scripts/test`` is the whole suite, this test included: the test checks
  that it exists, passes its arguments to pytest, and is exactly what ``.ci/run`` runs.
  A block preceded by ``<!-- no-test: REASON -->`` is skipped with that reason (listed
  by pytest's ``-ra`` summary); the reasons allowed are in :data:`EXCLUSIONS`.

TOML blocks are loaded with ``load_config`` and genome JSON blocks are validated, so
the examples the snippets refer to (``my.toml``) are checked too.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
VENV = Path(sys.executable).parent.parent
#: appended to a command that runs a diffusion preset: the size, nothing else
SHRINK = ["--fidelity", "smoke", "--pop", "4", "--generations", "1"]
#: the generations a benchmark-problem search runs at most (the size, nothing else)
MAX_GENERATIONS = 10
#: the only reasons a block may be left out; each names what this machine lacks
EXCLUSIONS = ("needs a Mac", "needs a cluster")
SHELLS = ("bash", "sh", "shell")
TIMEOUT_S = 600


@dataclass
class Block:
    lang: str
    text: str
    line: int                    # 1-based line of the opening fence
    skip: str | None             # the no-test reason, if any

    @property
    def id(self) -> str:
        first = next((ln for ln in self.text.splitlines() if ln.strip()), "")
        return f"L{self.line}-{self.lang}-{re.sub(r'[^A-Za-z0-9]+', '-', first)[:40].strip('-')}"


def readme_blocks(text: str | None = None) -> list[Block]:
    """The fenced blocks of the README with their language, line and no-test marker."""
    text = README.read_text() if text is None else text
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^\s*```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1).lower()
        j = i + 1
        while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
            j += 1
        prev = next((lines[k].strip() for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        marker = re.fullmatch(r"<!--\s*no-test:\s*(.+?)\s*-->", prev)
        indent = len(lines[start]) - len(lines[start].lstrip())
        body = "\n".join(ln[indent:] if ln[:indent].isspace() else ln for ln in lines[start + 1 : j])
        blocks.append(Block(lang, body, start + 1, marker.group(1) if marker else None))
        i = j + 1
    return blocks


def shell_commands(text: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blanks dropped."""
    out, cur = [], ""
    for raw in text.splitlines():
        cur += raw.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        cmd = re.sub(r"\s+#.*$", "", cur).strip()
        if cmd and not cmd.startswith("#"):
            out.append(cmd)
        cur = ""
    return out


def runs_diffusion_preset(argv: list[str]) -> bool:
    if argv[:1] == ["scripts/quickstart"]:
        return True
    if argv[:2] != ["evodiff-ray", "search"] or "--preset" not in argv:
        return False
    problem = argv[argv.index("--problem") + 1] if "--problem" in argv else "diffusion"
    return problem == "diffusion"


def prepare(cmd: str, cwd: Path) -> list[str] | None:
    """The argv the test runs for one README command (None: never run, checked instead)."""
    argv = shlex.split(cmd)
    if argv[:1] == ["scripts/test"]:
        return None
    if runs_diffusion_preset(argv):
        argv += SHRINK
    elif argv[:2] == ["evodiff-ray", "search"] and "--generations" in argv:
        k = argv.index("--generations") + 1
        argv[k] = str(min(int(argv[k]), MAX_GENERATIONS))
    if argv[:1] == ["scripts/quickstart"]:
        argv += ["--runs-dir", str(cwd / "evodiff-runs")]
    if argv and argv[0].startswith("scripts/"):
        argv[0] = str(REPO / argv[0])
    for k, a in enumerate(argv):
        if k and argv[k - 1] == "--search-id" and a.endswith("..."):
            argv[k] = newest_search(cwd)
    return argv


def newest_search(cwd: Path) -> str:
    runs = [p for p in (cwd / "evodiff-runs").glob("*/config.json")]
    assert runs, "the README resumes a search before any ran"
    return max(runs, key=lambda p: p.stat().st_mtime).parent.name


def snippet_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "EVODIFF_REDIS_URL"):
        env.pop(k, None)           # the README's defaults: a local Ray, embedded Redis, sqlite MLflow
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["EVODIFF_VENV"] = str(VENV)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, f"{shlex.join(argv)} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


BLOCKS = readme_blocks()
CODE = [b for b in BLOCKS if b.lang in SHELLS + ("python", "toml", "json")]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One temporary working directory for every snippet, as for a user going down the README.

    Afterwards a model server a snippet left running (``serve --detach`` whose ``serve
    stop`` never ran because a block failed) is stopped, so no process outlives the test.
    """
    d = tmp_path_factory.mktemp("readme")
    yield d
    if (d / "evodiff-runs" / ".serve").exists():
        subprocess.run([str(VENV / "bin" / "evodiff-ray"), "serve", "stop"], cwd=d, env=snippet_env(),
                       capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.redis
@pytest.mark.parametrize("block", CODE, ids=[b.id for b in CODE])
def test_readme_snippet(block: Block, workdir: Path):
    if block.skip:
        pytest.skip(f"README line {block.line}: {block.skip}")
    env = snippet_env()
    if block.lang in SHELLS:
        for cmd in shell_commands(block.text):
            argv = prepare(cmd, workdir)
            if argv is None:
                check_test_command(cmd)
                continue
            if Path(argv[0]).name in ("quickstart", "setup"):
                setup_is_current()
            run(argv, workdir, env)
    elif block.lang == "python":
        path = workdir / f"readme_L{block.line}.py"
        path.write_text(block.text)
        run([str(VENV / "bin" / "python"), str(path)], workdir, env)
    elif block.lang == "toml":
        from evodiff_ray.config import load_config

        path = workdir / "my.toml"       # the name the README's `--config my.toml` uses
        path.write_text(block.text)
        config = load_config(path)
        assert config.problem and config.pop_size > 0
    elif block.lang == "json":
        data = json.loads(block.text)
        if "layers" not in data:
            pytest.skip(f"README line {block.line}: a JSON example that is not a genome")
        path = workdir / f"genome_L{block.line}.json"
        path.write_text(block.text)
        r = run([str(VENV / "bin" / "evodiff-ray"), "genome", "validate", str(path)], workdir, env)
        assert "valid" in (r.stdout + r.stderr).lower()


def setup_is_current():
    """scripts/setup reinstalls when pyproject.toml is newer than the venv's stamp (and would
    reach the network); scripts/test runs it first, so under .ci/run this always holds."""
    stamp = VENV / ".evodiff-installed"
    if not stamp.exists() or (REPO / "pyproject.toml").stat().st_mtime > stamp.stat().st_mtime:
        pytest.skip(f"scripts/setup would reinstall into {VENV} (pyproject.toml is newer than {stamp.name}); "
                    "run scripts/setup first")


def check_test_command(cmd: str):
    """The README's test command is the suite itself: check it instead of running it."""
    argv = shlex.split(cmd)
    script = REPO / argv[0]
    assert script.is_file() and os.access(script, os.X_OK), f"{argv[0]} is not an executable script"
    text = script.read_text()
    assert "-m pytest" in text and '"$@"' in text, "scripts/test must run pytest with its arguments"
    ci = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.lstrip().startswith("#")]
    assert ci[-1] == f"exec {argv[0]}", f".ci/run must run exactly {argv[0]}, runs {ci[-1]!r}"


def test_exclusions_are_few_and_named():
    """Only what this machine cannot do is left out, and each exclusion says which."""
    skipped = [b for b in BLOCKS if b.skip]
    for b in skipped:
        assert b.skip.startswith(EXCLUSIONS), f"README line {b.line}: no-test reason {b.skip!r}"
    # every shell block that is run has at least one command, so no block is vacuous
    assert all(shell_commands(b.text) for b in CODE if b.lang in SHELLS)
    assert len(skipped) <= len([b for b in CODE if not b.skip]), "more snippets skipped than run"
    print("README snippets left out:", *[f"line {b.line}: {b.skip}" for b in skipped], sep="\n  ")


def test_prepare_changes_only_size_and_places(tmp_path):
    (tmp_path / "evodiff-runs" / "diffusion-1").mkdir(parents=True)
    (tmp_path / "evodiff-runs" / "diffusion-1" / "config.json").write_text("{}")
    assert prepare("evodiff-ray search --preset quick", tmp_path) == \
        ["evodiff-ray", "search", "--preset", "quick", *SHRINK]
    assert prepare("evodiff-ray search --problem zdt1 --pop 100", tmp_path) == \
        ["evodiff-ray", "search", "--problem", "zdt1", "--pop", "100"]
    assert prepare("evodiff-ray search --problem zdt1 --pop 100 --generations 100 --no-cache", tmp_path) == \
        ["evodiff-ray", "search", "--problem", "zdt1", "--pop", "100", "--generations", "10", "--no-cache"]
    assert prepare("evodiff-ray search --problem zdt1 --generations 3", tmp_path)[-1] == "3"
    assert prepare("scripts/quickstart", tmp_path) == \
        [str(REPO / "scripts/quickstart"), *SHRINK, "--runs-dir", str(tmp_path / "evodiff-runs")]
    assert prepare("evodiff-ray search --resume --search-id diffusion-2026...", tmp_path)[-1] == "diffusion-1"
    assert prepare('scripts/test -m "not slow"', tmp_path) is None
    assert shell_commands("a \\\n  b   # c\n# d\n\ne") == ["a    b", "e"]
    marked = readme_blocks("x\n<!-- no-test: needs a Mac (brew) -->\n\n```bash\nbrew x\n```\n```sh\nls\n```\n")
    assert [(b.lang, b.skip, b.line) for b in marked] == [("bash", "needs a Mac (brew)", 4), ("sh", None, 7)]


def test_setup_names_a_missing_interpreter(tmp_path):
    """scripts/setup prefers python3.11 (the README's Mac install), PYTHON overrides; a bad one is one line."""
    env = snippet_env()
    env.update(PYTHON=str(tmp_path / "no-such-python"), EVODIFF_VENV=str(tmp_path / "venv"))
    r = subprocess.run([str(REPO / "scripts" / "setup")], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and not (tmp_path / "venv").exists()
    assert r.stderr.strip().splitlines()[-1].startswith(f"setup: {tmp_path / 'no-such-python'} not found")


def test_setup_prefers_python311(tmp_path):
    """Without PYTHON, scripts/setup builds the venv with python3.11 when it is on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = sys.executable
    for name, code in (("python3.11", 3), ("python3", 4)):
        # version checks (-c) go to a real interpreter; creating the venv is where we stop
        (bin_dir / name).write_text(f'#!/bin/sh\n[ "$1" = "-c" ] && exec {real} "$@"\n'
                                    f'echo "{name} was asked to: $*" >&2\nexit {code}\n')
        (bin_dir / name).chmod(0o755)
    env = snippet_env()
    env.pop("PYTHON", None)
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", EVODIFF_VENV=str(tmp_path / "venv"))
    r = subprocess.run([str(REPO / "scripts" / "setup")], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert f"creating {tmp_path / 'venv'} with python3.11" in r.stderr
    assert "python3.11 was asked to: -m venv" in r.stderr
    env["PYTHON"] = "python3"
    r = subprocess.run([str(REPO / "scripts" / "setup")], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 4 and "python3 was asked to: -m venv" in r.stderr
