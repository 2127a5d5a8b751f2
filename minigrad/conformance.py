"""`python -m minigrad.conformance OPENCL`: run the test suite's device tests on one device, by op family.

In: a device name, then any pytest arguments (`-n 2`, `-x`, `-k conv`). Out: a pass / fail / skip table by
op family, the first line of each failure, and exit status 0 only when nothing failed.

The suite is the repository's `test/` directory (this needs a checkout, and the `test` extra): every test
that takes a `device` runs there once, with that device, and so do the random-graph fuzz cases. It is the
same as `python -m pytest test --devices OPENCL --device-tests-only`, with the results counted by family: a
test's family is the `# ---- name ----` section of its file (test_ops.py: elementwise, reductions, movement,
neural-network functions), else its file (autograd, nn, jit, ...).
"""

from __future__ import annotations

import collections
import pathlib
import re
import sys

from minigrad.device import Device

TESTS = pathlib.Path(__file__).resolve().parent.parent / "test"
SECTION = re.compile(r"^# -+ (.+?) -+$")


def family(path: str, line: int) -> str:
    """The section of `path` that line `line` (0-based) sits in, else the file's name without `test_`."""
    name = pathlib.Path(path).stem.removeprefix("test_")
    lines = (TESTS.parent / path).read_text().splitlines()[: line + 1]
    sections = [m.group(1) for m in map(SECTION.match, lines) if m]
    return f"{name}: {sections[-1]}" if sections else name


class Tally:
    """A pytest plugin that counts each test's outcome under its family."""

    def __init__(self) -> None:
        self.counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.failures: list[str] = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" or report.outcome != "passed":  # setup errors and skips count too
            path, line, _ = report.location
            self.counts[family(path, line or 0)][report.outcome] += 1
            if report.outcome == "failed":
                message = str(report.longrepr).strip().splitlines()
                self.failures.append(f"{report.nodeid}: {message[-1] if message else ''}")

    def table(self) -> str:
        width = max([len("family"), *map(len, self.counts)])
        rows = [f"{'family':{width}s} {'passed':>7s} {'failed':>7s} {'skipped':>8s}"]
        total: collections.Counter = collections.Counter()
        for name in sorted(self.counts):
            counts = self.counts[name]
            total.update(counts)
            rows.append(f"{name:{width}s} {counts['passed']:7d} {counts['failed']:7d} {counts['skipped']:8d}")
        rows.append(f"{'total':{width}s} {total['passed']:7d} {total['failed']:7d} {total['skipped']:8d}")
        return "\n".join(rows)


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(
            __doc__.splitlines()[0] + f"\nusage: python -m minigrad.conformance DEVICE [pytest args]; "
            f"devices: {Device.known}"
        )
        return 2
    name, pytest_args = Device.canonicalize(argv[0]), argv[1:]
    reason = Device.unavailable_reason(name)
    if reason is not None:
        print(f"{name} is unavailable here: {reason}")
        return 2
    if not TESTS.is_dir():
        print(
            f"the conformance suite is the repository's test/ directory, not found at {TESTS}: run from a checkout"
        )
        return 2
    import pytest  # (the `test` extra)

    tally = Tally()
    args = [
        str(TESTS),
        "--devices",
        name,
        "--device-tests-only",
        "-q",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    ]
    status = pytest.main(args, plugins=[tally])
    print(f"\nconformance of {name}:\n{tally.table()}")
    for failure in tally.failures:
        print(f"FAILED {failure}")
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
