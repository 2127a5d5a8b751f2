"""The CPU device: kernels rendered as C, compiled by the system C compiler, loaded with ctypes.

In: a kernel AST. Out: a shared library with one function per kernel, called on host buffers.

The compiler is `$CC` if set, else the first of cc, gcc, clang on PATH. Flags: -O2 -march=native (the
cache key includes the CPU's feature flags); not -O3, whose GCC 12 vectorizer miscompiles padded loads
with AVX2 (`x.pad(((3, 1), (0, 0)))` read rows as 0; the pad tests catch it); -fvect-cost-model=dynamic
(GCC: vectorize upcast accumulators, matmul 1024^2 24 -> 34 GFLOPS); -fopenmp for loops opt.py marks
parallel (dropped if it does not link); -fschedule-insns -fsched-pressure (GCC: schedule before register
allocation, aware of register pressure: a 16x8 register tile spills less, 128x512x512 matmul 80 -> 97
GFLOPS); -shared -fPIC -lm. No -ffast-math: NaN and inf must survive. x86: -mprefer-vector-width= the
target's whole vector register, which the kernels' own vector types use too (target.simd_from_macros):
GCC tunes AVX-512 Intel CPUs to 256 bits, and a softmax's exp loops ran at half width (4096^2 on a Xeon:
34 -> 14 ms). Off: CC="gcc -mprefer-vector-width=256" ($CC's own arguments come last, so they win).

Threads: OpenMP (below: passive waiting after a short spin, MINIGRAD_THREADS per parallel loop, the runtime
kept loaded); opt.py keeps small kernels out of a parallel region.
"""

from __future__ import annotations

import _ctypes
import ctypes
import hashlib
import os
import pathlib
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from minigrad.codegen.cstyle import C_LANGUAGE
from minigrad.device import (
    Backend,
    Compiler,
    HostAllocator,
    Program,
    Target,
    host_caches,
    host_cores,
    host_cpu_flags,
    simd_from_macros,
)
from minigrad.dtype import DType

# ---- OpenMP: how kernel threads wait, how many there are, and a runtime kept loaded ----
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

COMMON_FLAGS = ["-march=native", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC", "-lm"]
GCC_ONLY = ["-fvect-cost-model=dynamic", "-fschedule-insns", "-fsched-pressure"]
OPTIMIZE_FLAGS = {"gcc": ["-O2", *GCC_ONLY], "clang": ["-O2"]}


def find_compiler() -> list[str]:
    """The compiler command: $CC (which may carry arguments, `CC="gcc -O1"`), else cc, gcc or clang."""
    if os.environ.get("CC", "").strip():
        command = shlex.split(os.environ["CC"])
        if not shutil.which(command[0]):
            raise RuntimeError(f"CC={os.environ['CC']!r}: {command[0]} was not found (install it, or fix CC)")
        return [shutil.which(command[0]), *command[1:]]
    for name in ["cc", "gcc", "clang"]:
        if shutil.which(name):
            return [shutil.which(name)]
    raise RuntimeError(
        "the CPU device needs a C compiler and none was found (looked for $CC, cc, gcc, clang): "
        "install one, e.g. `apt-get install gcc`, or set CC=/path/to/compiler"
    )


class ClangStyleCompiler(Compiler):
    joinable = True  # C functions in one library: one gcc run for several kernels (Compiler.compile_together)

    def __init__(self):
        self.cc, *user_flags = find_compiler()  # $CC's own arguments go last, so that they win
        version = subprocess.run([self.cc, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        base = OPTIMIZE_FLAGS["clang" if "clang" in version else "gcc"] + COMMON_FLAGS
        self.flags = base + user_flags
        self.macros = self.target_macros()
        bits = simd_from_macros(self.macros)["vector_bytes"] * 8  # the whole register (module docstring)
        self.flags = base + [f"-mprefer-vector-width={bits}"] * ("__x86_64__" in self.macros) + user_flags
        self.cache_key = f"{self.cc} {version} {self.flags} {host_cpu_flags()}"
        try:  # (from the kernel cache: 30 ms of every process start)
            self.openmp = keep_openmp_loaded(self.compile_cached, self.compile_plain)
        except RuntimeError:  # it does not link (e.g. clang without libomp): one thread
            self.flags.remove("-fopenmp")
            self.cache_key = f"{self.cc} {version} {self.flags} {host_cpu_flags()}"

    def compile_plain(self, source: str) -> bytes:
        """compile_cached without -fopenmp: a library that does not load the OpenMP runtime (spin_count)."""
        flags, self.flags = self.flags, [f for f in self.flags if f != "-fopenmp"]
        try:
            return self.compile_cached(source)  # (the only source compiled so: its cache entry is its own)
        finally:
            self.flags = flags

    def target_macros(self) -> set[str]:
        """The macros the compiler predefines for its target with these flags (`__AVX2__`, `__FMA__`)."""
        command = [self.cc, *self.flags, "-dM", "-E", "-x", "c", os.devnull]
        output = subprocess.run(command, capture_output=True, text=True).stdout
        return {line.split()[1] for line in output.splitlines() if line.startswith("#define ")}

    def compile(self, source: str) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            src, lib = pathlib.Path(tmp) / "kernel.c", pathlib.Path(tmp) / "kernel.so"
            src.write_text(source)
            result = subprocess.run(
                [self.cc, *self.flags, str(src), "-o", str(lib)], capture_output=True, text=True
            )
            if result.returncode != 0:
                excerpt = "\n".join(source.splitlines()[:60])
                raise RuntimeError(
                    f"{self.cc} could not compile a kernel:\n{result.stderr[-2000:]}\n"
                    f"--- source (first 60 lines) ---\n{excerpt}"
                )
            return lib.read_bytes()


class CpuProgram(Program):
    """Loads the compiled library and calls its kernel function.

    Libraries are written once per distinct binary to a directory that lives as long as the process. They
    must not be deleted while loaded: the dynamic loader recognises files by inode, so a new file that
    reused a deleted one's inode would be "already loaded" and the old kernel would run instead.
    """

    _directory: tempfile.TemporaryDirectory | None = None
    _lock = threading.Lock()

    def __init__(self, name: str, binary: bytes):
        super().__init__(name, binary)
        with CpuProgram._lock:  # threads loading at once share one directory and never see half a file
            if CpuProgram._directory is None:
                CpuProgram._directory = tempfile.TemporaryDirectory(prefix="minigrad-kernels-")
            path = pathlib.Path(CpuProgram._directory.name) / f"{hashlib.sha256(binary).hexdigest()}.so"
            if not path.exists():
                with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
                    tmp.write(binary)
                os.replace(tmp.name, path)  # whole or not at all: the loader maps the file it finds
        self.library = ctypes.CDLL(str(path))
        self.function = getattr(self.library, name)

    def __del__(self, dlclose=_ctypes.dlclose) -> None:  # (bound now: module globals are gone at exit)
        """Evicted from the program cache and in no TinyJit recording: unload it."""
        handle = getattr(getattr(self, "library", None), "_handle", None)
        if handle:
            dlclose(handle)

    def __call__(self, *buffers, global_size=(1,), local_size=(1,), vals=(), wait=False):
        start = time.perf_counter()
        self.function(*buffers)  # HostPointers (CpuAllocator) pass with no conversion
        return time.perf_counter() - start


class HostPointer(ctypes.c_void_p):
    """A numpy buffer's address, which a kernel call takes as is (byref per call cost 1.2 us); `array`
    keeps the memory alive. (Not a ctypes array: ctypes keeps one array type per length, forever.)"""


class CpuAllocator(HostAllocator):
    """numpy memory (not zero-filled), passed to kernels as a HostPointer, starting at a multiple of
    `alignment` bytes (the vector registers' size): numpy's large arrays start 16 bytes into a page, so
    that every 64-byte AVX-512 access to them spanned two cache lines (on a 2-core Xeon: softmax 4096^2's
    kernels 9.8 -> 9.1 ms, conv2d forward 4.9 -> 4.7 ms). Off: MINIGRAD_ALIGN=0 (numpy's placement)."""

    def __init__(self, alignment: int):
        super().__init__()
        flag = os.environ.get("MINIGRAD_ALIGN", "1").strip()
        if flag not in ("0", "1"):
            raise ValueError(f"MINIGRAD_ALIGN={flag!r}: expected 1 (align buffers, the default) or 0")
        self.alignment = alignment if flag == "1" else 1

    def _alloc(self, nbytes: int):
        raw = np.empty(nbytes + self.alignment - 1, dtype=np.uint8)
        skip = -raw.ctypes.data % self.alignment
        array = raw[skip : skip + nbytes]  # (a view: it keeps `raw` alive)
        pointer = HostPointer(array.ctypes.data)
        pointer.array = array
        return pointer

    def copyin(self, buf, src: memoryview) -> None:
        buf.array[:] = np.frombuffer(src, dtype=np.uint8)

    def copyout(self, dest: memoryview, buf) -> None:
        np.frombuffer(dest, dtype=np.uint8)[:] = buf.array

    def host_bytes(self, buf) -> np.ndarray:
        return buf.array


class CpuDevice(Backend):
    max_buffers = 1024  # ctypes passes at most 1,024 arguments to a C function

    def __init__(self):
        language = replace(C_LANGUAGE, parallel_for=parallel_pragma(C_LANGUAGE.parallel_for))
        compiler = ClangStyleCompiler()
        simd, cores = simd_from_macros(compiler.macros), threads_per_kernel() or host_cores()
        target = Target(**simd, cache_bytes=host_caches(), cores=cores)
        super().__init__("CPU", CpuAllocator(simd["vector_bytes"]), language, compiler, CpuProgram, target)

    def supports_dtype(self, dtype: DType) -> bool:
        return True  # float16 and bfloat16: stored in 16 bits, computed in float (codegen/cstyle.py)
