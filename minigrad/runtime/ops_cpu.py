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

Threads: OpenMP (runtime/openmp.py: passive waiting after a short spin, MINIGRAD_THREADS per parallel loop,
the runtime kept loaded); opt.py keeps small kernels out of a parallel region.
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
from minigrad.runtime.openmp import keep_openmp_loaded, parallel_pragma, threads_per_kernel

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
        """compile_cached without -fopenmp: a library that does not load the OpenMP runtime (openmp.py)."""
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
