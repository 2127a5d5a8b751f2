"""Lines of code per module of minigrad/: non-blank lines that are not comments (docstrings count).

The core is everything but the backends (runtime/, one file each, held to 100 lines apiece by their own
check) and the nn library on top of the Tensor API (nn/). test/test_size.py keeps the core under CORE_LIMIT.
"""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "minigrad"
CORE_LIMIT = 5000
NOT_CORE = ("runtime", "nn")


def count(path: pathlib.Path) -> int:
    return sum(
        1 for line in path.read_text().splitlines() if line.strip() and not line.strip().startswith("#")
    )


def sizes() -> dict[str, int]:
    return {str(p.relative_to(ROOT.parent)): count(p) for p in sorted(ROOT.rglob("*.py"))}


def core_lines() -> int:
    return sum(n for name, n in sizes().items() if pathlib.Path(name).parts[1] not in NOT_CORE)


if __name__ == "__main__":
    table = sizes()
    for name, lines in sorted(table.items(), key=lambda kv: -kv[1]):
        print(f"{lines:6d}  {name}")
    for group in NOT_CORE:
        print(f"{sum(n for m, n in table.items() if pathlib.Path(m).parts[1] == group):6d}  {group}/")
    print(f"{core_lines():6d}  core (limit {CORE_LIMIT})")
    print(f"{sum(table.values()):6d}  total")
