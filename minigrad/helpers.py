"""Small helpers every stage uses: environment configuration, counters, and a few list utilities.

In: environment variables. Out: `getenv`, the `Context` override, `GlobalCounters`, `prod`.
Configuration is read from the environment once per name, through `getenv`, and can be overridden for a
`with Context(DEBUG=2):` block (tests use this).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import os
from collections import OrderedDict
from typing import Any, Callable, Iterator

_overrides: list[dict[str, int | str]] = []


@functools.cache
def _read_env(key: str, default):
    value = os.environ.get(key)
    if value is None:
        return default
    kind = int if isinstance(default, bool) else type(default)
    try:
        converted = kind(value)
    except ValueError:
        accepts = "an integer (0 turns it off)" if kind is int else f"a {kind.__name__}"
        raise ValueError(f"environment variable {key}={value!r}: {key} takes {accepts}") from None
    return bool(converted) if isinstance(default, bool) else converted


def getenv(key: str, default=0):
    """Read an environment variable once, converted to the type of `default`; `Context` overrides it."""
    for frame in reversed(_overrides):
        if key in frame:
            return frame[key]
    return _read_env(key, default)


# environment variables that change generated code: compiled programs are cached per combination
CODEGEN_SETTINGS = tuple(
    "NOOPT THREADS UPCAST REORDER GROUP VECTORIZE FAST_MATH_C PACK SECOND_TILE GATHER_TILE"
    " STREAM_LANES TILE PICK SCATTER TRANSPOSE OVERLAP CHUNK LANE_LOOP EPILOGUE_LOOP SIMD SHARE_INNER".split()
)


def check(condition: bool, message: Callable[[], str]) -> None:
    """Graph invariants (lazy.py, shape/). tensor.py validates user input first, so a failure is a bug in the
    layer above; it still gets an exception that names the shapes (an assert would vanish under python -O).
    The message is a function, formatted only on failure (graph building is on every training step's path)."""
    if not condition:
        raise ValueError(message())


@functools.cache  # every kernel launch asks; Context clears it
def codegen_settings() -> tuple:
    return tuple(getenv(name, -1) for name in CODEGEN_SETTINGS)


# every name minigrad reads with getenv (test_readme checks the list): Context refuses any other
SETTINGS = frozenset(
    (
        "ALLOC_CACHE_MB BEAM BEAM_ROUNDS BOUNDS_CHECK CACHE_MB CHUNK CONV_GRAD_AS_CONV CONV_GRAD_PHASES "
        "CUDA_PTX DEBUG DEVICE DISABLE_COMPILER_CACHE EPILOGUE_LOOP FAST_MATH_C GATHER_TILE GRAPH GROUP "
        "JIT_CACHE_SIZE KERNEL_OPS LANE_LOOP LRU MATMUL_COPY NOOPT OVERLAP PACK PARALLEL_COMPILE PICK "
        "PROGRAM_CACHE_SIZE REORDER REPLAY SCATTER SCHEDULE_CACHE SCHEDULE_CACHE_SIZE SECOND_TILE SHARE_INNER SIMD "
        "SPLIT_BROADCAST "
        "SPLIT_RECOMPUTE SPLIT_SCAN SPLIT_SUM STREAM_LANES THREADS TILE TRANSPOSE UPCAST VECTORIZE VIZ VIZ_NODES"
    ).split()
)


# settings that are state, not environment variables: name -> a function that sets the value and returns
# one that restores the old (tensor.py registers TRAINING, which is Tensor.training, as Tensor.train() sets)
CONTEXT_HOOKS: dict[str, Callable[[Any], Callable[[], None]]] = {}


@contextlib.contextmanager
def Context(**values) -> Iterator[None]:
    """Temporarily override configuration: `with Context(DEBUG=2, NOOPT=1, TRAINING=1): ...`. A name minigrad
    does not read raises ValueError (a misspelled switch would otherwise change nothing, silently)."""
    unknown = sorted(set(values) - SETTINGS - set(CONTEXT_HOOKS))
    if unknown:
        known = " ".join(sorted(SETTINGS | set(CONTEXT_HOOKS)))
        raise ValueError(f"Context: unknown setting {', '.join(unknown)} (known: {known})")
    with contextlib.ExitStack() as restores:  # a hook's restore runs even if a later hook raises
        for name, value in values.items():
            if name in CONTEXT_HOOKS:
                restores.callback(CONTEXT_HOOKS[name](value))
        _overrides.append({name: value for name, value in values.items() if name not in CONTEXT_HOOKS})
        codegen_settings.cache_clear()
        try:
            yield
        finally:
            _overrides.pop()
            codegen_settings.cache_clear()


class GlobalCounters:
    """Counts what the runtime did since the last `reset()`: kernels, flops, bytes, kernel time."""

    kernel_count: int = 0
    global_ops: int = 0
    global_mem: int = 0
    time_sum_s: float = 0.0
    schedule_cache_hits: int = 0
    mem_used: int = 0  # bytes held by live device buffers now (a state, not a count: reset() keeps it)
    mem_peak: int = 0  # the most bytes live buffers held at once since the last reset()

    @staticmethod
    def reset() -> None:
        GlobalCounters.schedule_cache_hits = 0
        GlobalCounters.kernel_count = 0
        GlobalCounters.global_ops = 0
        GlobalCounters.global_mem = 0
        GlobalCounters.time_sum_s = 0.0
        GlobalCounters.mem_peak = GlobalCounters.mem_used


prod = math.prod  # of an iterable of ints (1 for none)

# while vmap traces f: the index checks f asked for, run on the batched indices once f is batched (one
# example's indices do not exist during the trace); None otherwise (library/indexing.py, batching.py)
DEFERRED_CHECKS: contextvars.ContextVar[list | None] = contextvars.ContextVar("deferred_checks", default=None)


_MISSING = object()


class LRU(OrderedDict):
    """A dict that keeps its `size()` most recently used entries (every in-process cache is one, so that a
    long run over many shapes does not grow without end). `size` is a function: the limit comes from an
    environment variable, read when an entry is added."""

    def __init__(self, size: Callable[[], int]):
        super().__init__()
        self.size = size

    def get(self, key: Any, default: Any = None) -> Any:
        value = super().get(key, _MISSING)  # one lookup, not `in` and then [] (keys can be big tuples)
        if value is _MISSING:
            return default
        try:
            self.move_to_end(key)
        except KeyError:  # another thread's put() evicted it just now: the value is still good
            pass
        return value

    def put(self, key: Any, value: Any) -> Any:
        self[key] = value
        self.move_to_end(key)
        while len(self) > max(self.size(), 1):
            self.popitem(last=False)
        return value


class AxisError(ValueError, IndexError):
    """An axis out of range (both a ValueError and an IndexError, like numpy's AxisError)."""


def normalize_axis(axis: int, ndim: int) -> int:
    """Turn a possibly negative axis into 0..ndim-1, raising AxisError for one out of range."""
    size = ndim or 1  # a 0-d tensor accepts axis 0 and -1, as numpy
    if not -size <= axis < size:
        raise AxisError(f"axis {axis} is out of range for {ndim} dimensions (valid: {-size} to {size - 1})")
    return axis % size


def map_leaves(obj: Any, fn: Callable, leaf: type, where: str) -> Any:
    """`obj` with fn applied to every `leaf` (a Tensor) inside lists, tuples and dicts; other values stay,
    and must be hashable (`where` names the value in the error)."""
    if isinstance(obj, leaf):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        values = [map_leaves(v, fn, leaf, where) for v in obj]
        return type(obj)(*values) if hasattr(obj, "_fields") else type(obj)(values)  # (a namedtuple)
    if isinstance(obj, dict):
        return {k: map_leaves(v, fn, leaf, where) for k, v in obj.items()}
    try:
        hash(obj)
    except TypeError:
        raise TypeError(
            f"{where} holds a {type(obj).__name__}, which is neither a {leaf.__name__} nor hashable; "
            f"pass {leaf.__name__}s, numbers, strings, or lists/tuples/dicts of them"
        ) from None
    return obj
