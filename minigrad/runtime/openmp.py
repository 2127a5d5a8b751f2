"""OpenMP for the CPU device: how its kernels' threads wait, how many there are, and a runtime kept loaded.

In: the environment (OMP_WAIT_POLICY, MINIGRAD_THREADS) and the CPU device's compiler. Out: the pragma that
opens a parallel loop, and a loaded library that holds the OpenMP runtime for the life of the process.

OpenMP reads OMP_WAIT_POLICY once, when libgomp loads (with the first kernel library). Its default, spinning
idle threads, made two processes sharing 2 cores 4.5-40x slower each than alone; passive waiting: ~1.6x.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import tempfile
import warnings
from collections.abc import Callable

PROBE = "int omp_get_max_threads(void);\nint minigrad_threads(void) { return omp_get_max_threads(); }\n"


def started_by_another_library() -> str | None:
    """The path of a libgomp.so.1 already in this process (torch loads its own), or None. Kernels link
    libgomp.so.1 by that name, so they would share it, and it read OMP_WAIT_POLICY when it loaded."""
    try:
        maps = pathlib.Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = {line.split()[-1] for line in maps.splitlines() if line.rstrip().endswith("/libgomp.so.1")}
    return min(paths, default=None)


def wait_passively() -> None:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user chose; warn if another library's OpenMP already spins."""
    foreign = started_by_another_library()
    if foreign and "OMP_WAIT_POLICY" not in os.environ:
        warnings.warn(
            f"OpenMP was started by another library ({foreign}) before minigrad's CPU device, with its "
            "default spin-waiting threads, which minigrad's kernels share: processes sharing the cores will "
            "slow each other down. Set OMP_WAIT_POLICY=PASSIVE before starting Python, or use minigrad's "
            "CPU device before importing that library (torch).",
        )
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def threads_per_kernel() -> int | None:
    """MINIGRAD_THREADS as a positive int, or None (OpenMP's default: every core)."""
    text = os.environ.get("MINIGRAD_THREADS", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"MINIGRAD_THREADS={text!r}: expected a positive number of threads per kernel")
    return int(text)


def parallel_pragma(pragma: str) -> str:
    """The pragma with MINIGRAD_THREADS as a num_threads clause: it holds even in an OpenMP runtime that
    another library started, which read OMP_NUM_THREADS before minigrad could set it."""
    threads = threads_per_kernel()
    return f"{pragma} num_threads({threads})" if threads else pragma


def keep_loaded(compile_library: Callable[[str], bytes]) -> ctypes.CDLL:
    """Build and load a library that uses the OpenMP runtime, and never unload it. Kernel libraries come and
    go (CpuProgram.__del__); had the last one taken the runtime with it, OpenMP's idle threads would run
    unmapped code (a segfault at exit, every time with OMP_WAIT_POLICY=ACTIVE)."""
    binary = compile_library(PROBE)
    with tempfile.NamedTemporaryFile(suffix=".so") as file:  # deleted once loaded: the mapping stays
        file.write(binary)
        file.flush()
        return ctypes.CDLL(file.name)
