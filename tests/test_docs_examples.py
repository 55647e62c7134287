"""Docs and examples must not rot.

- Every script in `examples/` runs to completion at small sizes
  (`SCANALG_EXAMPLE_SMALL=1`, `MPLBACKEND=Agg`, a fresh working directory).
- Scripts and pages run as `__main__` in one long-lived Python process (`_Runner`),
  one after another, each in a fresh namespace with JAX's and Hypothesis's settings
  restored after it: one interpreter start and one `import jax` for all of them. A
  program that sets the number of CPU devices (which only a fresh process can) runs
  in its own process.
- The Python code blocks of every documentation page run, in order, as one program
  (a block right after a `<!-- not-run -->` line is skipped, and so is a block that
  only includes an example file, which runs as an example).
- Output pasted into the docs after `<!-- output-of: examples/NAME.py -->` is what
  the example prints today, line by line.
- The install commands in the docs are the README's.
- The API reference renders every public name of `scanalg`, `scanalg.monoids`,
  `scanalg.laws`, `scanalg.strategies` and `scanalg.kit`.
"""

import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gc_settings import THRESHOLDS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
# Seconds per script: generous, as a loaded machine runs many of them at once; below
# pytest-timeout's limit per test (pyproject.toml), so that a slow script fails with
# its output.
TIMEOUT = 240

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
_OUTPUT_OF = re.compile(r"<!-- output-of: (\S+) -->\s*\n```\w*\n(.*?)^```", re.M | re.S)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(SCANALG_EXAMPLE_SMALL="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, *args],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{args} took longer than {TIMEOUT} s even at small size.\n{e.stdout}")


def _failure(proc: subprocess.CompletedProcess) -> str:
    out, err = proc.stdout, proc.stderr
    return f"exit code {proc.returncode}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"


# The runner: reads `{"path", "cwd", "result"}` requests (one JSON line each) and runs
# each program as `__main__`, writing `{"returncode", "stdout", "stderr"}` to `result`
# and then the request's line back (the parent waits for that line; anything else the
# process prints, e.g. from C++, is skipped).
_RUNNER = f"""
import contextlib, gc, io, json, os, runpy, sys, traceback
import hypothesis
import jax

gc.set_threshold(*{THRESHOLDS})  # (see gc_settings.py)
gc.freeze()

saved = {{name: getattr(jax.config, name) for name in ("jax_enable_x64",)}}
for line in sys.stdin:
    request = json.loads(line)
    os.chdir(request["cwd"])
    sys.argv = [request["path"]]
    out, err, code = io.StringIO(), io.StringIO(), 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(request["path"], run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        code = 1
        err.write(traceback.format_exc())
    for name, value in saved.items():
        jax.config.update(name, value)
    hypothesis.settings.load_profile("default")
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    with open(request["result"], "w") as f:
        json.dump({{"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}}, f)
    sys.stdout.write(line)
    sys.stdout.flush()
"""


class _Runner:
    """One Python process that runs the scripts one after another (see the module
    docstring)."""

    def __init__(self):
        self.process = None

    def run(self, script: Path, cwd: Path) -> subprocess.CompletedProcess:
        if "jax_num_cpu_devices" in script.read_text():  # (a fresh process only)
            return _run([str(script)], cwd=cwd)
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _RUNNER],
                env=_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        result = cwd / "result.json"
        request = json.dumps({"path": str(script), "cwd": str(cwd), "result": str(result)})
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.strip() == request:
                done = json.loads(result.read_text())
                return subprocess.CompletedProcess(
                    [str(script)], done["returncode"], done["stdout"], done["stderr"]
                )
        pytest.fail(f"the runner process stopped while running {script}")

    def close(self):
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=60)
            self.process.stdout.close()


@pytest.fixture(scope="module")
def runner():
    r = _Runner()
    yield r
    r.close()


def _code_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, except those right after `<!-- not-run -->` and
    those that only include a file (`--8<-- "examples/..."`, run as an example)."""
    text = page.read_text()
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(1) != "python":
            continue
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].strip() == "<!-- not-run -->":
            continue
        if all(line.startswith("--8<--") for line in match.group(2).strip().splitlines()):
            continue
        blocks.append(match.group(2))
    return blocks


def _pasted_outputs() -> dict[str, list[tuple[Path, str]]]:
    """`{example path: [(page, pasted text)]}` from `<!-- output-of: ... -->` markers."""
    out: dict[str, list[tuple[Path, str]]] = {}
    for page in PAGES:
        for match in _OUTPUT_OF.finditer(page.read_text()):
            out.setdefault(match.group(1), []).append((page, match.group(2)))
    return out


def test_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert "law_check_failure.py" in names, names
    assert len(names) >= 2, names


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path, runner: _Runner):
    proc = runner.run(script, cwd=tmp_path)
    assert proc.returncode == 0, _failure(proc)
    for page, pasted in _pasted_outputs().get(f"examples/{script.name}", []):
        printed = set(proc.stdout.splitlines())
        stale = [line for line in pasted.splitlines() if line.strip() and line not in printed]
        assert not stale, (
            f"{page.relative_to(ROOT)} shows output of {script.name} that it no longer "
            f"prints; update the page. Lines not printed now:\n" + "\n".join(stale)
        )


_RUNNABLE = [p for p in PAGES if _code_blocks(p)]

# Prepended to a page's code: fewer Hypothesis examples per law (the pages' monoids are
# checked for running, not for strength; that keeps `check_laws` calls quick).
_PRELUDE = """\
import hypothesis

hypothesis.settings.register_profile("docs", max_examples=10)
hypothesis.settings.load_profile("docs")
"""


@pytest.mark.parametrize("page", _RUNNABLE, ids=[str(p.relative_to(DOCS)) for p in _RUNNABLE])
def test_docs_code_runs(page: Path, tmp_path: Path, runner: _Runner):
    program = "\n\n".join([_PRELUDE, *_code_blocks(page)])
    source = tmp_path / (page.stem.replace("-", "_") + ".py")
    source.write_text(program)
    proc = runner.run(source, cwd=tmp_path)
    assert proc.returncode == 0, f"code in {page.relative_to(ROOT)} failed: " + _failure(proc)


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"<!-- (?:demo|test)-command -->\s*\n```\w*\n(.*?)\n```", text, re.S)
    assert len(commands) == 2, "README.md should mark its demo and test commands"
    return commands


@pytest.mark.parametrize("name", ["index.md", "getting-started.md"])
def test_docs_show_the_readme_commands(name: str):
    text = (DOCS / name).read_text()
    for command in _readme_commands():
        assert command in text, f"docs/{name} should show the README command {command!r}"


def test_examples_in_docs_exist():
    """Every `examples/NAME.py` the docs mention is there."""
    mentioned = set()
    for page in PAGES:
        mentioned |= set(re.findall(r"examples/(\w+\.py)", page.read_text()))
    missing = sorted(m for m in mentioned if not (ROOT / "examples" / m).exists())
    assert not missing, f"the docs mention examples that do not exist: {missing}"


_PUBLIC_MODULES = (
    "scanalg",
    "scanalg.monoids",
    "scanalg.laws",
    "scanalg.strategies",
    "scanalg.kit",
)


def _public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_")]
    return [n for n in names if not inspect.ismodule(getattr(module, n))]


def _documented() -> set[int]:
    """The objects the API reference renders (`::: path`, and a module's public members
    unless its directive says `members: false`)."""
    ids = set()
    for page in sorted((DOCS / "api").glob("*.md")):
        text = page.read_text()
        for match in re.finditer(r"^::: ([\w.]+)\n((?:    .*\n)*)", text, re.M):
            path, options = match.group(1), match.group(2)
            try:
                obj = importlib.import_module(path)
            except ImportError:
                parent, _, name = path.rpartition(".")
                obj = getattr(importlib.import_module(parent), name)
            ids.add(id(obj))
            if inspect.ismodule(obj) and "members: false" not in options:
                ids |= {id(getattr(obj, n)) for n in _public_names(obj)}
    return ids


def test_api_reference_covers_every_public_name():
    documented = _documented()
    missing = []
    for module_name in _PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in _public_names(module):
            if id(getattr(module, name)) not in documented:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"add these to a page in docs/api/: {missing}"
