"""What the kernel optimizer knows of the hardware: one small description, filled from device queries.

In: facts a backend reads from its device when it starts (the C compiler's target macros, sysfs, the
OpenCL or CUDA driver). Out: a `Target`, the only thing codegen/opt.py reads about the hardware. Nothing
here is a constant describing some machine; the defaults are the safe minimum a device may fall back to.

A backend builds its Target with the helpers below (a CPU) or from its driver's queries (a GPU), and
passes it to `Backend.__init__`; `python -m minigrad` prints it.
"""

from __future__ import annotations

import os
import pathlib
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """The hardware as the optimizer sees it. CPU fields describe the code the compiler generates (so a
    build for a lower ISA, `CC="gcc -march=x86-64-v3"`, has AVX2's vectors on an AVX-512 machine)."""

    gpu: bool = False  # global loops run as threads of work-groups, not as `for` loops
    vector_bytes: int = (
        16  # the widest SIMD register of the generated code (16: SSE/NEON, 32: AVX2, 64: AVX-512)
    )
    vector_registers: int = 16  # how many of them (AVX-512 and NEON: 32)
    fma: bool = False  # fused multiply-add instructions
    cache_bytes: tuple[int, ...] = ()  # data cache per level, L1 first (per core for L1 and L2)
    cores: int = 1  # threads that run kernels at once
    float4: bool = False  # the dialect has 4-float vector loads and stores (OpenCL, CUDA)
    vector_types: bool = False  # the dialect has vector values of any width (C: GCC's and Clang's)
    local_tiles: bool = False  # matmul operands pay to go through a work-group's local memory
    max_work_group: int = 1  # threads in one work-group at most
    compute_units: int = 1  # multiprocessors (CUDA SMs, OpenCL compute units)
    local_memory_bytes: int = 0  # local (shared) memory of one work-group

    def lanes(self, itemsize: int) -> int:
        """Elements of `itemsize` bytes in one vector register."""
        return max(self.vector_bytes // itemsize, 1)

    def cache(self, level: int) -> int:
        """The data cache of `level` (1, 2, 3) in bytes; the last known level where this one is unknown."""
        known = self.cache_bytes[: max(level, 1)]
        return known[-1] if known else 32 << 10

    def describe(self) -> str:
        """One line for `python -m minigrad`."""
        caches = " ".join(f"L{i + 1} {size >> 10} KiB" for i, size in enumerate(self.cache_bytes))
        if self.gpu:
            return (
                f"{self.compute_units} compute units, work-groups up to {self.max_work_group} threads, "
                f"{self.local_memory_bytes >> 10} KiB local memory"
            )
        fma = ", FMA" if self.fma else ""
        vectors = f"{self.vector_bytes * 8}-bit vectors x {self.vector_registers}{fma}"
        return f"{vectors}, {caches}, {self.cores} cores"


def simd_from_macros(macros: set[str]) -> dict:
    """Vector width, register count and FMA of a C compiler's target, from its predefined macros."""
    if "__AVX512F__" in macros:
        width, registers = 64, 32
    elif "__AVX__" in macros:
        width, registers = 32, 16
    elif "__ARM_NEON" in macros or "__aarch64__" in macros:
        width, registers = 16, 32
    else:
        width, registers = 16, 16  # SSE2, the x86-64 baseline
    fma = bool(macros & {"__FMA__", "__ARM_FEATURE_FMA"})
    # (a C compiler: GCC and Clang both have vector types, `__attribute__((vector_size(n)))`)
    return {"vector_bytes": width, "vector_registers": registers, "fma": fma, "vector_types": True}


def host_caches() -> tuple[int, ...]:
    """The data caches of the CPU this process runs on, L1 first, from sysfs (empty where it has none)."""
    sizes: dict[int, int] = {}
    for index in sorted(pathlib.Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        size = int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text or 0)
        if kind in ("Data", "Unified") and size:
            sizes[level] = size
    return tuple(sizes[level] for level in sorted(sizes))


def host_cpu_flags() -> str:
    """The CPU's feature flags (a line of /proc/cpuinfo), for caches of binaries built for this CPU."""
    try:
        lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line for line in lines if line.startswith("flags")), platform.processor())


def host_cores() -> int:
    """The cores this process may run on (its affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
