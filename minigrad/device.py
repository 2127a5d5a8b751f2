"""Devices: the small interfaces a backend implements, and the registry that finds backends by name.

In: a device name ("NUMPY", "CPU", "OPENCL", "CUDA"). Out: that device's `Backend`, which bundles
  - an `Allocator`:  alloc(nbytes) / free(buf) / copyin(buf, memoryview) / copyout(memoryview, buf)
  - a renderer:      kernel AST -> (function name, source, (global size, local size))  (NUMPY: the AST)
  - a `Compiler`:    source -> binary
  - a `Program`:     Program(name, binary)(*buffers, global_size=..., local_size=..., vals=...)
A backend is one file, `minigrad/runtime/ops_<name>.py`, defining a `<Name>Device(Backend)` class.
`Buffer` is a typed, sized allocation on one device. `Device.DEFAULT` is picked from the `DEVICE`
environment variable, else the best backend that opens on this machine.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib
import os
import pathlib
import threading
import warnings
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from minigrad import diskcache
from minigrad.codegen.cstyle import Language
from minigrad.codegen.pipeline import generate
from minigrad.codegen.target import (  # noqa: F401 (for the backends)
    Target,
    host_caches,
    host_cores,
    host_cpu_flags,
    simd_from_macros,
)
from minigrad.dtype import DType, dtypes
from minigrad.helpers import LRU, GlobalCounters, codegen_settings, getenv

# IOTA and Op: backend files take the one op vocabulary from here (they import only device, dtype, helpers)
from minigrad.ops import IOTA, AstNode, Op  # noqa: F401
from minigrad.shape.shapetracker import ShapeTracker


class Allocator:
    """Device memory. A backend implements `_alloc`, `_free`, `copyin` and `copyout`; `buf` is whatever
    opaque handle it uses.

    `alloc`/`free` keep recently freed buffers and hand them out again for a request of the same size (up
    to ALLOC_CACHE_MB megabytes in all, default 64; the least recently freed go first), so a training loop
    that frees and reallocates the same shapes every step pays for neither allocation nor first-touch page
    faults. LRU=0 turns this off."""

    host = False  # True where buffers are this process's memory (new Tensors are copied straight in)

    def __init__(self) -> None:
        self._cache: OrderedDict[int, Any] = OrderedDict()  # id -> (nbytes, buf), oldest first
        self._by_size: dict[int, list[int]] = {}  # nbytes -> ids in _cache
        self._cached_bytes = 0
        self._lock = threading.Lock()  # a Buffer can be freed by the garbage collector on any thread

    def alloc(self, nbytes: int) -> Any:
        if getenv("LRU", 1):
            with self._lock:
                if self._by_size.get(nbytes):
                    return self._take(self._by_size[nbytes][-1])[1]
        return self._alloc(nbytes)

    def free(self, buf: Any, nbytes: int) -> None:
        limit, evicted = getenv("ALLOC_CACHE_MB", 64) << 20, []
        if getenv("LRU", 1) and nbytes <= limit:
            with self._lock:
                self._cache[id(buf)] = (nbytes, buf)
                self._by_size.setdefault(nbytes, []).append(id(buf))
                self._cached_bytes += nbytes
                while self._cached_bytes > limit:
                    evicted.append(self._take(next(iter(self._cache)))[1])
        else:
            evicted.append(buf)
        for old in evicted:
            self._free(old)

    def _take(self, key: int) -> tuple[int, Any]:
        """Remove one cached buffer (the caller holds the lock)."""
        nbytes, buf = self._cache.pop(key)
        self._by_size[nbytes].remove(key)
        if not self._by_size[nbytes]:
            del self._by_size[nbytes]  # (a run over many shapes would leave a key per size)
        self._cached_bytes -= nbytes
        return nbytes, buf

    def _alloc(self, nbytes: int) -> Any:
        raise NotImplementedError

    def _free(self, buf: Any) -> None:
        pass

    def copyin(self, buf: Any, src: memoryview) -> None:
        raise NotImplementedError

    def copyout(self, dest: memoryview, buf: Any) -> None:
        raise NotImplementedError

    def host_bytes(self, buf: Any) -> np.ndarray | None:
        """The buffer's memory as a uint8 numpy array sharing it, where device memory is this process's
        memory (a library such as MPI can then read and write it with no copy); None elsewhere."""
        return None


class HostAllocator(Allocator):
    """Memory in this process: a numpy byte array per buffer (NUMPY), or any object exporting its bytes."""

    host = True

    def _alloc(self, nbytes: int) -> Any:
        return np.empty(nbytes, dtype=np.uint8)

    def copyin(self, buf: Any, src: memoryview) -> None:
        np.frombuffer(buf, dtype=np.uint8)[:] = np.frombuffer(src, dtype=np.uint8)

    def copyout(self, dest: memoryview, buf: Any) -> None:
        np.frombuffer(dest, dtype=np.uint8)[:] = np.frombuffer(buf, dtype=np.uint8)

    def host_bytes(self, buf: Any) -> np.ndarray | None:
        return buf


class Compiler:
    """Turns rendered source into a binary the Program class can load.

    `compile_cached` keeps binaries on disk (diskcache.py: a private directory, entries verified before
    they are loaded, size-capped), keyed by the source and `cache_key` (the compiler and its flags)."""

    cache_key: str = ""  # set by compilers whose output depends on more than the source
    # C-family sources that compile as one binary, one after the other (their helpers guarded)
    joinable = False

    def compile(self, source: Any) -> Any:
        raise NotImplementedError

    def compile_together(self, kernels: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """(function name, binary) for each (function name, source). A joinable compiler builds them as one
        binary, a function whose name another one has renamed: one gcc run instead of one per kernel
        (starting gcc, cc1, as and ld is ~50 ms of a small kernel's ~80). If the whole does not compile,
        each is compiled alone, so that an error names its own kernel."""
        if self.joinable and len(kernels) > 1:
            names, sources = [], []
            for name, source in kernels:
                unique = name if name not in names else f"{name}_k{len(names)}"
                names.append(unique)
                sources.append(source.replace(f" {name}(", f" {unique}(", 1))
            try:
                binary = self.compile_cached("\n".join(sources))
                return [(name, binary) for name in names]
            except RuntimeError:
                pass
        return [(name, self.compile_cached(source)) for name, source in kernels]

    def compile_cached(self, source: str) -> bytes:
        if getenv("DISABLE_COMPILER_CACHE"):
            return self.compile(source)
        key = f"{type(self).__name__}\n{self.cache_key}\n{source}"
        binary = diskcache.load(key)
        if binary is None:
            binary = self.compile(source)
            diskcache.store(key, binary)
        return binary


class Program:
    """A loaded kernel. Calling it runs it on device buffers; returns seconds elapsed when `wait`."""

    def __init__(self, name: str, binary: Any):
        self.name, self.binary = name, binary

    def launch(self, buffers: list[Buffer], wait: bool = False) -> float | None:
        """Run on device Buffers, with the launch sizes its kernel's renderer chose (Backend.get_program)."""
        sizes = {"global_size": self.global_size, "local_size": self.local_size}
        return self(*[b._buf for b in buffers], **sizes, wait=wait)

    def __call__(
        self,
        *buffers: Any,
        global_size: tuple[int, ...] = (1,),
        local_size: tuple[int, ...] = (1,),
        vals: tuple[int, ...] = (),
        wait: bool = False,
    ) -> float | None:
        raise NotImplementedError


class Renderer:
    """A backend's renderer: kernel AST (and optionally a loop nest) -> (function name, source, launch sizes).
    `supported_dtypes()` answers tinygrad's capability query: the dtypes the backend's buffers can hold."""

    def __init__(self, render: Callable[[Any, Any], tuple[str, Any, Any]], backend: "Backend"):
        self.render, self.backend = render, backend

    def __call__(self, ast: Any, nest: Any = None) -> tuple[str, Any, Any]:
        return self.render(ast, nest)

    def supported_dtypes(self) -> list[DType]:
        return [dtype for dtype in dtypes.all() if self.backend.supports_dtype(dtype)]


class Backend:
    """Everything the engine needs from one device."""

    max_buffers = 1 << 16  # the most buffers one kernel may take (its output included); backends set theirs

    def __init__(
        self,
        name: str,
        allocator: Allocator,
        language: Language | Callable[[Any, Any], tuple[str, Any, Any]],
        compiler: Compiler,
        program: type[Program],
        target: Target = Target(),
    ):
        """`language`: the C dialect kernels are rendered in (codegen/cstyle.py), or, for a backend without
        code generation, a function (ast, nest) -> (name, program source, launch sizes). `target`: the
        hardware facts the kernel optimizer uses, from the backend's device queries (codegen/target.py)."""
        self.name, self.allocator, self.compiler, self.program = name, allocator, compiler, program
        self.target = target  # the hardware as the optimizer sees it (codegen/target.py)
        self.language = language if isinstance(language, Language) else None
        self.renderer = Renderer(
            (lambda ast, nest=None: generate(ast, language, target, nest)) if self.language else language,
            self,
        )
        self._programs: LRU = LRU(lambda: getenv("PROGRAM_CACHE_SIZE", 512))  # loaded programs
        self._compiled: dict[Any, tuple] = {}  # compiled by precompile(), not loaded yet

    def supports_dtype(self, dtype: DType) -> bool:
        return True

    def synchronize(self) -> None:
        """Wait until every launched kernel has finished (kernels on a GPU run after their launch returns)."""

    def report(self) -> list[str]:
        """More lines for `python -m minigrad` about this device (OPENCL: each platform it could use)."""
        return [f"optimizer target: {self.target.describe()}"] if self.language else []

    def get_program(self, ast: Any, nest: Any = None) -> Program:
        """The runnable program for a kernel AST, rendered and compiled once per distinct AST. `nest`: a
        loop nest to render it with instead of the heuristic one (engine/search.py, BEAM)."""
        key = (ast, codegen_settings(), None if nest is None else repr(nest))
        program = self._programs.get(key)
        if program is None:
            name, source, binary, (global_size, local_size) = self._compiled.pop(key, None) or self._compile(
                ast, nest
            )
            program = self._programs.put(key, self.program(name, binary))
            program.source, program.global_size, program.local_size = source, global_size, local_size
        return program

    def _compile(self, ast: Any, nest: Any = None) -> tuple[str, Any, Any, tuple]:
        name, source, launch = self.renderer(ast, nest)
        if getenv("DEBUG") >= 4 and isinstance(source, str):
            print(f"--- {name}: {self.name} source ---\n{source}")
        return name, source, self.compiler.compile_cached(source), launch

    def precompile(self, asts: list[Any]) -> None:
        """Render and compile the kernels that have no program yet, a group per core on as many threads (the
        C compiler is a separate process; Compiler.compile_together may build a group as one binary): the
        first training step from a cold cache compiles ~20 kernels. Loading stays with get_program, on the
        calling thread. PARALLEL_COMPILE=0 turns this off."""
        settings = codegen_settings()
        todo = [ast for ast in dict.fromkeys(asts) if (ast, settings, None) not in self._programs]
        if len(todo) < 2 or not getenv("PARALLEL_COMPILE", 1) or getenv("DEBUG") >= 3:
            return
        rendered = [self.renderer(ast, None) for ast in todo]  # (name, source, launch sizes)
        workers = min(os.cpu_count() or 1, len(todo))
        groups = [list(range(first, len(todo), workers)) for first in range(workers)]  # one per core
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            batches = pool.map(lambda g: self.compiler.compile_together([rendered[i][:2] for i in g]), groups)
            for group, compiled in zip(groups, batches):
                for i, (name, binary) in zip(group, compiled):
                    self._compiled[(todo[i], settings, None)] = (name, rendered[i][1], binary, rendered[i][2])


class Buffer:
    """`size` elements of `dtype` on `device`, allocated at construction and freed with the object.
    `version` counts the in-place writes (ASSIGN) into it; see lazy.py."""

    def __init__(self, device: str, size: int, dtype: DType):
        self.device, self.size, self.dtype, self.nbytes = device, size, dtype, size * dtype.itemsize
        self.allocator = Device[device].allocator
        self._buf, self.version = self.allocator.alloc(self.nbytes or 1), 0
        GlobalCounters.mem_used = used = GlobalCounters.mem_used + self.nbytes
        if used > GlobalCounters.mem_peak:
            GlobalCounters.mem_peak = used

    def copyin(self, data: np.ndarray) -> "Buffer":
        data = np.ascontiguousarray(data, dtype=self.dtype.np)
        if data.dtype == np.bool_:  # a bool view of arbitrary bytes (2, 255) is True: store it as 1
            data = data.view(np.uint8) != 0
        assert data.size == self.size, f"copyin of {data.size} elements into a buffer of {self.size}"
        if self.size:
            self.allocator.copyin(self._buf, memoryview(data.reshape(-1).view(np.uint8)))
        return self

    def numpy(self) -> np.ndarray:
        out = np.empty(self.size, dtype=self.dtype.np)
        if self.size:
            self.allocator.copyout(memoryview(out.view(np.uint8)), self._buf)
        return out

    def host_view(self) -> np.ndarray | None:
        """The elements as a numpy array sharing the buffer's memory (host devices), else None. Writing
        through it bypasses `version`: only for a buffer no lazy node has read yet."""
        raw = self.allocator.host_bytes(self._buf)
        return None if raw is None else raw[: self.nbytes].view(self.dtype.np)

    def __del__(self) -> None:
        if hasattr(self, "_buf"):
            self.allocator.free(self._buf, self.nbytes or 1)
            GlobalCounters.mem_used -= self.nbytes

    def __repr__(self) -> str:
        return f"<Buffer {self.device} {self.size} x {self.dtype.name}>"


class DeviceUnavailable(RuntimeError):
    """A device that did not open here, or opened but could not build and run a trivial kernel."""

    def __init__(self, device: str, reason: str):
        super().__init__(f"the {device} device is unavailable here: {reason}")
        self.device, self.reason = device, reason


def first_error_line(e: Exception) -> str:
    """An exception as one line: its type and the first line that reads as an error (a compiler's log
    starts with warnings and paths; the rest of it is in the exception's own text)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [""]
    line = next((x for x in lines if "error" in x.lower() and x != lines[0]), None)
    return f"{type(e).__name__}: {lines[0]}" + (f" ({line})" if line else "")


def self_test(backend: Backend) -> None:
    """Build and run `out = in + 1` on 4 floats with the backend's own renderer, compiler and loader: a
    device counts as available only once this works (a compiler can exist and still target no CPU)."""
    st = ShapeTracker.from_shape((4,))
    value = AstNode(
        Op.ADD,
        (AstNode(Op.LOAD, (), (1, st), dtypes.float32), AstNode(Op.CONST, (), (1.0, st), dtypes.float32)),
        None,
        dtypes.float32,
    )
    program = backend.get_program(AstNode(Op.STORE, (value,), (0, st), dtypes.float32))
    data = np.arange(4, dtype=np.float32)
    out, inp = backend.allocator.alloc(data.nbytes), backend.allocator.alloc(data.nbytes)
    try:
        backend.allocator.copyin(inp, memoryview(data.view(np.uint8)))
        program(out, inp, global_size=program.global_size, local_size=program.local_size, wait=True)
        backend.synchronize()
        result = np.empty_like(data)
        backend.allocator.copyout(memoryview(result.view(np.uint8)), out)
    finally:
        backend.allocator.free(out, data.nbytes)
        backend.allocator.free(inp, data.nbytes)
    if result.tolist() != [1.0, 2.0, 3.0, 4.0]:
        raise RuntimeError(f"a trivial kernel (in + 1 on [0, 1, 2, 3]) computed {result.tolist()}")


_PREFERENCE = ("CUDA", "CPU", "OPENCL", "NUMPY")  # tried in this order for Device.DEFAULT


# tinygrad's names for the same devices (its C backend was CLANG, its OpenCL one GPU and then CL)
TINYGRAD_DEVICE_NAMES = {"CLANG": "CPU", "GPU": "OPENCL", "CL": "OPENCL"}


class _DeviceRegistry:
    """`Device["NUMPY"]` opens (once) and returns that backend; `Device.DEFAULT` is the default name."""

    _lock = threading.RLock()
    _opened: dict[str, Backend] = {}  # name as asked for -> its backend, once it opened

    @functools.cached_property
    def known(self) -> list[str]:
        """Every backend file in runtime/, by device name (whether or not it opens here)."""
        runtime = pathlib.Path(__file__).parent / "runtime"
        return sorted(p.stem[len("ops_") :].upper() for p in runtime.glob("ops_*.py"))

    @functools.cache
    def canonicalize(self, name: str) -> str:
        if not isinstance(name, str):
            raise TypeError(f"a device name must be a string, got {type(name).__name__} {name!r}")
        canonical = name.split(":")[0].upper()
        canonical = TINYGRAD_DEVICE_NAMES.get(canonical, canonical)
        if canonical not in self.known:
            raise ValueError(f"unknown device {name!r}; known devices are {self.known}")
        return canonical

    def __getitem__(self, name: str) -> Backend:
        # (asked for by every buffer and kernel launch: no lock, no parsing)
        backend = self._opened.get(name) if isinstance(name, str) else None
        if backend is None:
            backend = self._opened[name] = self._open(self.canonicalize(name))
        return backend

    @functools.cache
    def _open_once(self, name: str) -> Backend | DeviceUnavailable:
        """The backend, opened and self-tested once per process; a failure is kept and raised every time."""
        try:
            module = importlib.import_module(f"minigrad.runtime.ops_{name.lower()}")
            backend = getattr(module, f"{name.capitalize()}Device")()
            self_test(backend)
            return backend
        except Exception as e:  # any failure to open or to run the trivial kernel: not available, and why
            return DeviceUnavailable(name, first_error_line(e))

    def _open(self, name: str) -> Backend:
        with self._lock:  # two threads asking at once must get the same backend (one context, one cache)
            opened = self._open_once(name)
        if isinstance(opened, DeviceUnavailable):
            raise DeviceUnavailable(opened.device, opened.reason)  # a fresh one: no traceback piles up
        return opened

    def unavailable_reason(self, name: str) -> str | None:
        """None if the device opens and runs a trivial kernel here, else why not."""
        try:
            self[name]
            return None
        except DeviceUnavailable as e:
            return e.reason

    @property
    def DEFAULT(self) -> str:
        requested = getenv("DEVICE", "")
        return self.canonicalize(requested) if requested else self._default()

    @functools.cache
    def _default(self) -> str:
        for name in _PREFERENCE:
            if name in self.known and self.unavailable_reason(name) is None:
                cpu_reason = self.unavailable_reason("CPU") if name not in ("CPU", "CUDA") else None
                if cpu_reason:  # said once: a program that meant to run compiled C runs on NUMPY or OPENCL
                    warnings.warn(f"minigrad: the CPU device is unavailable ({cpu_reason}); using {name}")
                return name
        raise RuntimeError(f"no device could be opened; tried {list(_PREFERENCE)}")


Device = _DeviceRegistry()
