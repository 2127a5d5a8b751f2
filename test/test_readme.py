"""The docs must stay true: they are run or checked here, so CI fails when they go stale.

README.md fences:
  ```bash    set-up commands; the test command must be a line of .ci/run (which runs them all)
  ```sh      commands to try: each line runs here and must succeed
  ```python  runnable code: executed here
  ```py      an excerpt of a source file (the "Write a backend" walk): must appear in that file verbatim
Docstrings: every `>>>` example in a minigrad module runs as a doctest.
The environment-variable table lists every variable minigrad reads.
"""

import doctest
import importlib
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts)
    for p in (ROOT / "minigrad").rglob("*.py")
    if p.name != "__main__.py"
)


def readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command():
    commands = [
        line.strip() for block in readme_blocks("bash") for line in block.splitlines() if line.strip()
    ]
    test_command = next(c for c in commands if "pytest" in c)
    ci_script = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci_script.splitlines(), f"{test_command!r} is not a line of .ci/run"


def test_readme_python_blocks_run():
    for block in readme_blocks("python"):
        exec(compile(block, "README.md", "exec"), {})


@pytest.mark.parametrize("command", [c for b in readme_blocks("sh") for c in b.splitlines() if c.strip()])
def test_readme_commands_run(command, tmp_path):
    env = {**os.environ, "GRAPH_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    command = command.replace("python3 ", f"{sys.executable} ").replace(" examples/", f" {ROOT}/examples/")
    result = (
        subprocess.run(  # in a scratch directory: what a command writes (viz's page) stays out of the repo
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_readme_walks_through_the_whole_backend_file():
    """ "Write a backend": every excerpt is in ops_opencl.py verbatim, and every line of the file is shown."""
    source = (ROOT / "minigrad" / "runtime" / "ops_opencl.py").read_text()
    excerpts = readme_blocks("py")
    for excerpt in excerpts:
        assert excerpt in source, f"README excerpt no longer in ops_opencl.py:\n{excerpt}"
    shown = {line for excerpt in excerpts for line in excerpt.splitlines()}
    missing = [line for line in source.splitlines() if line.strip() and line not in shown]
    assert not missing, f"lines of ops_opencl.py the README does not walk through: {missing}"


def test_context_knows_exactly_the_settings_minigrad_reads():
    """helpers.SETTINGS is every name the code reads with getenv; Context refuses the others by name."""
    from minigrad.helpers import SETTINGS, Context

    code = "\n".join(p.read_text() for p in (ROOT / "minigrad").rglob("*.py"))
    assert SETTINGS == set(re.findall(r'getenv\("([A-Z_0-9]+)"', code))
    with pytest.raises(ValueError, match="unknown setting PACK_MATMUL"):
        with Context(PACK_MATMUL=0):
            pass
    from minigrad import Tensor

    assert not Tensor.training
    with Context(TRAINING=1, DEBUG=0):  # training mode, as `with Tensor.train():`
        assert Tensor.training
        with Context(TRAINING=0):
            assert not Tensor.training
        assert Tensor.training
    assert not Tensor.training
    from minigrad import dtypes

    with Context(DEFAULT_FLOAT=dtypes.float16):  # tinygrad's switch for the default float
        assert Tensor([1.5]).dtype == dtypes.float16 and Tensor.ones(2).dtype == dtypes.float16
    assert Tensor([1.5]).dtype == dtypes.float32
    with pytest.raises(TypeError, match="DEFAULT_FLOAT must be a float"):
        with Context(TRAINING=1, DEFAULT_FLOAT=dtypes.int32):
            pass
    assert not Tensor.training  # the hook that ran before the failing one was undone


def test_every_environment_variable_is_documented():
    code = "\n".join(p.read_text() for p in (ROOT / "minigrad").rglob("*.py"))
    names = set(re.findall(r'getenv\("([A-Z_0-9]+)"', code)) | set(
        re.findall(r'environ.get\("([A-Z_0-9]+)"', code)
    )
    table = (ROOT / "README.md").read_text().split("## Environment variables")[1]
    missing = sorted(n for n in names if f"`{n}" not in table)
    assert not missing, f"not in the README's environment table: {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    try:
        imported = importlib.import_module(module)
    except ImportError as e:  # a backend whose driver package is not installed here
        pytest.skip(str(e))
    failures, _ = doctest.testmod(imported, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert failures == 0


def test_doctests_exist():
    """The examples above are really collected: a module whose `>>>` lines stopped parsing would pass."""
    finder = doctest.DocTestFinder()
    for module in ("minigrad", "minigrad.function", "minigrad.transforms"):
        assert any(test.examples for test in finder.find(importlib.import_module(module))), module
