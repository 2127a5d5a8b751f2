"""The README's commands and code must stay true: CI runs exactly its test command, and its Python runs."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


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
