"""Lines of code per module of minigrad/ (non-blank, non-comment, docstrings included)."""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "minigrad"


def count(path: pathlib.Path) -> int:
    return sum(
        1 for line in path.read_text().splitlines() if line.strip() and not line.strip().startswith("#")
    )


if __name__ == "__main__":
    sizes = {str(p.relative_to(ROOT.parent)): count(p) for p in sorted(ROOT.rglob("*.py"))}
    for name, lines in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"{lines:6d}  {name}")
    print(f"{sum(sizes.values()):6d}  total")
