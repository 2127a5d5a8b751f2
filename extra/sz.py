"""Lines of code per module of minigrad/: non-blank lines that are not comments (docstrings count).

The core is the pipeline, as ../shared/ARCHITECTURE.md defines it: the primitive ops and the lazy graph
(ops.py, lazy.py, shape/), the engine, codegen, the backends (runtime/, one file each, each held to
BACKEND_LIMIT lines by its own check), device.py, dtype.py and helpers.py. test/test_size.py keeps it under
CORE_LIMIT. The op library on top (tensor.py, library/, gradient.py, function.py, transforms.py, jit.py,
nn/) and the tools (__main__.py) are reported beside it.
"""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "minigrad"
CORE_LIMIT = 5000
# ops_cpu.py is the largest (250): its compiler, OpenMP handling (wait policy, a spin timed in seconds on this
# CPU, threads, schedule, runtime kept loaded), Target query, buffers aligned to the vector size. The limit went
# 220 -> 250 for the timed spin (a pause probe built without -fopenmp): a backend imports only the core, so it
# cannot live in a module of its own beside ops_cpu.py
BACKEND_LIMIT = 250
CORE = ("ops.py", "lazy.py", "shape", "engine", "codegen", "runtime", "device.py", "dtype.py", "helpers.py")


def count(path: pathlib.Path) -> int:
    return sum(
        1 for line in path.read_text().splitlines() if line.strip() and not line.strip().startswith("#")
    )


def sizes() -> dict[str, int]:
    return {str(p.relative_to(ROOT.parent)): count(p) for p in sorted(ROOT.rglob("*.py"))}


def core_lines() -> int:
    return sum(n for name, n in sizes().items() if pathlib.Path(name).parts[1] in CORE)


if __name__ == "__main__":
    table = sizes()
    for name, lines in sorted(table.items(), key=lambda kv: -kv[1]):
        print(f"{lines:6d}  {name}")
    print(f"{core_lines():6d}  core: the pipeline, {', '.join(CORE)} (limit {CORE_LIMIT})")
    print(f"{sum(table.values()) - core_lines():6d}  beside it: the op library, nn, transforms, tools")
    print(f"{sum(table.values()):6d}  total")
