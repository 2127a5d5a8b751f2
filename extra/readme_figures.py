"""The README's measured figures, measured again: the examples' results and checkpointing's memory.

In: README.md, and the examples run here with their default settings (about 6 minutes on 2 cores; --only
picks some). Out: each figure as README.md states it and as measured now. --write puts the new values into
README.md; --check exits 1 when a result has moved further from the README's than its tolerance allows.
Times are written but never checked: they belong to the machine. The README's are taken with a warm kernel
cache: --warm runs each example once, untimed, before the run that counts.

    python extra/readme_figures.py [--only tiny_gpt checkpoint] [--write | --check] [--warm]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from datasets import DEBIAN_FASHION_MNIST

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


@dataclass(frozen=True)
class Figure:
    """A figure in the README: `readme` finds it there, `result` in the output of running `command`.

    The groups of `result` are the numbers, written with `decimals` places into the first groups of `readme`;
    when `timed`, the last group of `readme` is the wall time of the command."""

    name: str
    command: tuple[str, ...]  # an example and its arguments
    result: str
    readme: str
    decimals: tuple[int, ...] = ()
    tolerance: float = 0.0  # how far a number may move before --check fails
    timed: bool = True


def row(example: str, cell: str) -> str:
    """A pattern for the result cell of the examples table's row of `example`."""
    return rf"\| `examples/{example}` \|[^|\n]*\| {cell} \|"


TIME = r"([\d.]+ s|\d+ min)"


def accuracy(example: str, tolerance: float) -> Figure:
    """An example that ends with its test accuracy, stated in the README as `NN.N%, <time>`."""
    readme = row(f"{example}.py", rf"([\d.]+)%, {TIME}")
    return Figure(example, (f"{example}.py",), r"test accuracy ([\d.]+)%", readme, (1,), tolerance)


FIGURES = [
    Figure("walkthrough", ("walkthrough.py",), r"match: True", row("walkthrough.py", TIME)),
    accuracy("mlp_plain", tolerance=1.5),
    accuracy("mlp_digits", tolerance=1.0),
    accuracy("cnn_digits", tolerance=1.0),
    Figure(  # it learns minigrad's own source, so its figures move as the source grows
        "tiny_gpt",
        ("tiny_gpt.py",),
        r"held-out loss ([\d.]+) nats/char vs unigram baseline ([\d.]+)",
        row("tiny_gpt.py", rf"([\d.]+) nats/char vs ([\d.]+) unigram, {TIME}"),
        (2, 2),
        tolerance=0.1,
    ),
    accuracy("cnn_fashion", tolerance=1.5),
    Figure(
        "ad_tour",
        ("ad_tour.py",),
        r"gradients equal: True",
        row("ad_tour.py", rf"prints what each number should be; {TIME}"),
    ),
    Figure(
        "checkpoint",
        ("ad_tour.py",),
        r"no checkpoint +peak +([\d.]+) MiB(?s:.*)checkpoint every 8 layers +peak +([\d.]+) MiB",
        r"([\d.]+) MiB of live buffers at peak without it, ([\d.]+) MiB\s+with a checkpoint every 8 layers",
        (2, 2),
        timed=False,
    ),
]


def run(command: tuple[str, ...], warm: bool) -> tuple[str, float]:
    """The example's output and its wall time in seconds (after an untimed run when `warm`)."""
    argv = [sys.executable, str(ROOT / "examples" / command[0]), *command[1:]]
    for _ in range(2 if warm else 1):
        start = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout, seconds


def format_time(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def measure(figure: Figure, output: str, seconds: float) -> list[str]:
    """The figure's new text, one string per group of its README pattern."""
    found = re.search(figure.result, output)
    if not found:
        raise SystemExit(f"{figure.name}: {figure.result!r} is not in the output of {figure.command}")
    numbers = [f"{float(v):.{d}f}" for v, d in zip(found.groups(), figure.decimals)]
    return numbers + [format_time(seconds)] * figure.timed


def moved(figure: Figure, stated: tuple[str, ...], measured: list[str]) -> list[str]:
    """The numbers (not times) that moved further than the figure's tolerance."""
    pairs = zip(stated[: len(figure.decimals)], measured)
    return [f"{s} -> {m}" for s, m in pairs if abs(float(s) - float(m)) > figure.tolerance + 1e-9]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[f.name for f in FIGURES], help="these figures only")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="write the measured figures into README.md")
    action.add_argument("--check", action="store_true", help="exit 1 when a result moved past its tolerance")
    parser.add_argument("--warm", action="store_true", help="run each example once before timing it")
    parser.add_argument("--readme", type=Path, default=README, help="another copy of the README (tests)")
    args = parser.parse_args()

    text, outputs, failures = args.readme.read_text(), {}, []
    for figure in [f for f in FIGURES if not args.only or f.name in args.only]:
        if figure.name == "cnn_fashion" and not Path(DEBIAN_FASHION_MNIST).exists():
            print(f"{figure.name:12s} skipped: apt-get install dataset-fashion-mnist")
            continue
        found = re.search(figure.readme, text)
        if not found:
            raise SystemExit(f"{figure.name}: {args.readme} has no text matching {figure.readme!r}")
        if figure.command not in outputs:
            outputs[figure.command] = run(figure.command, args.warm)
        measured = measure(figure, *outputs[figure.command])
        print(f"{figure.name:12s} README: {', '.join(found.groups()):28s} measured: {', '.join(measured)}")
        failures += [f"{figure.name}: {m}" for m in moved(figure, found.groups(), measured)]
        for group in reversed(range(len(measured))):  # from the right: earlier offsets stay valid
            start, end = found.span(group + 1)
            text = text[:start] + measured[group] + text[end:]
    if args.write:
        args.readme.write_text(text)
        print(f"wrote {args.readme}")
    if args.check and failures:
        print(
            "moved past their tolerance (run python extra/readme_figures.py --write):", *failures, sep="\n  "
        )
        raise SystemExit(1)


if __name__ == "__main__":
    main()
