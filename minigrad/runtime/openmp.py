"""OpenMP for the CPU device's kernels: how idle kernel threads wait, how many run a kernel, how a parallel loop
is shared out, and a runtime kept loaded.

In: the environment (OMP_WAIT_POLICY, GOMP_SPINCOUNT, MINIGRAD_THREADS, MINIGRAD_SCHEDULE) and the C
compiler's functions. Out: environment settings made before the OpenMP runtime loads, the parallel-for
pragma's clauses, and the loaded runtime (ops_cpu.py uses them all).
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import tempfile
import time
import warnings
from collections.abc import Callable

# OpenMP reads OMP_WAIT_POLICY once, when libgomp loads (with the first kernel library). Its default, spinning
# idle threads, made two processes sharing 2 cores 4.5-40x slower each than alone; passive waiting: ~1.6x.
# But a sleeping thread takes ~30-100 us to wake, paid by every parallel kernel: a short spin first catches the
# next kernel of an eager step. libgomp counts the spin (GOMP_SPINCOUNT) in pause instructions, whose length
# differs ~10x between CPUs (9.5 ns on a Xeon, where 1000 spins, the count before, were ~10 us: too short), so
# the count is SPIN_SECONDS over a pause timed here (spin_count). On that Xeon, without torch: the MLP step
# 784-512-512-10 2.66-2.77 -> 2.53-2.57 ms (as fast as under torch's spinning OpenMP); the price, two processes
# sharing its 2 cores (extra/contention.py): 48-49 -> 53-54 ms a round each, 1.9x slower than alone (was 1.7x).
SPIN_SECONDS = 50e-6

PAUSE_PROBE = """/* compiled without -fopenmp: loading it must not start the OpenMP runtime */
void minigrad_pause(long n) {
  for (long i = 0; i < n; i++) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();  /* libgomp's cpu_relax */
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
  }
}
"""

OPENMP_PROBE = (
    "int omp_get_max_threads(void);\nint minigrad_threads(void) { return omp_get_max_threads(); }\n"
)


def openmp_started_by_another_library() -> str | None:
    """The path of a libgomp.so.1 already in this process (torch loads its own), or None. Kernels link
    libgomp.so.1 by that name, so they would share it, and it read OMP_WAIT_POLICY when it loaded."""
    try:
        maps = pathlib.Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = {line.split()[-1] for line in maps.splitlines() if line.rstrip().endswith("/libgomp.so.1")}
    return min(paths, default=None)


def wait_passively() -> None:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user chose (keep_openmp_loaded adds a short spin first); warn
    if another library's OpenMP already spins."""
    foreign = openmp_started_by_another_library()
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


# A parallel loop's blocks go to threads as they come for them (guided: halving chunks), not in fixed shares
# (OpenMP's default, static): a thread that wakes late, or that another process holds up, then takes fewer
# instead of holding up the kernel. On a 2-core VM whose sleeping thread took 50-100 us to wake, h @ W3
# (128x512 by 512x10) launched 10-1000 us after the previous kernel: 74-113 -> 44-71 us; the eager MLP step
# ~3 % faster; back to back, the same. Off: MINIGRAD_SCHEDULE=static.
SCHEDULES = ("static", "dynamic", "guided", "auto")


def parallel_pragma(pragma: str) -> str:
    """The pragma with a schedule clause (MINIGRAD_SCHEDULE, default guided) and MINIGRAD_THREADS as a
    num_threads clause: it holds even in an OpenMP runtime that another library started, which read
    OMP_NUM_THREADS before minigrad could set it."""
    schedule = os.environ.get("MINIGRAD_SCHEDULE", "guided").strip()
    if schedule not in SCHEDULES:
        raise ValueError(f"MINIGRAD_SCHEDULE={schedule!r}: expected one of {', '.join(SCHEDULES)}")
    threads = threads_per_kernel()
    pragma += f" schedule({schedule})"
    return f"{pragma} num_threads({threads})" if threads else pragma


def spin_count(compile_plain: Callable[[str], bytes]) -> str:
    """GOMP_SPINCOUNT for SPIN_SECONDS of spinning on this CPU: the seconds over one pause, timed (best of 3)."""
    library, spins = load_library(compile_plain(PAUSE_PROBE)), 10_000
    library.minigrad_pause.argtypes = [ctypes.c_long]
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        library.minigrad_pause(spins)
        seconds.append(time.perf_counter() - start)
    return str(max(1, round(SPIN_SECONDS * spins / max(min(seconds), 1e-9))))


def keep_openmp_loaded(compile_library: Callable[[str], bytes], compile_plain: Callable[[str], bytes]):
    """Build and load a library that uses the OpenMP runtime, and never unload it. Kernel libraries come and
    go (CpuProgram.__del__); had the last one taken the runtime with it, OpenMP's idle threads would run
    unmapped code (a segfault at exit, every time with OMP_WAIT_POLICY=ACTIVE). Before it loads, where the
    policy is PASSIVE and neither GOMP_SPINCOUNT nor another library's OpenMP is there: the spin (above).
    PASSIVE alone (as users set it, following the warning) sleeps at once: a kernel with a parallel loop per
    chunk then waits for a wake-up each time (conv's weight gradient, 32 of them: 2.0 -> 3.5 ms)."""
    passive = os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"
    if passive and "GOMP_SPINCOUNT" not in os.environ and not openmp_started_by_another_library():
        os.environ["GOMP_SPINCOUNT"] = spin_count(compile_plain)
    return load_library(compile_library(OPENMP_PROBE))


def load_library(binary: bytes) -> ctypes.CDLL:
    """Load a compiled library that stays loaded (its file is deleted at once: the mapping stays)."""
    with tempfile.NamedTemporaryFile(suffix=".so") as file:
        file.write(binary)
        file.flush()
        return ctypes.CDLL(file.name)


wait_passively()  # before the first kernel library loads libgomp
