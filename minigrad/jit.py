"""TinyJit: record the kernels a function launches, then replay them on new inputs.

In: a function of Tensors (positional or keyword, also inside lists, tuples and dicts) that returns a
Tensor, None, or a list/tuple/dict of them. Out: a callable with the same results, which from the third
call with the same input shapes, dtypes, devices and non-Tensor arguments replays the recorded kernel
launches directly: no graph building, no scheduling, no compiling.

    call 1: run normally (compiles kernels; creates optimizer state and other one-time buffers)
    call 2: run normally while engine/realize.py records every launch (program, buffers)
    call 3+: swap the new inputs' buffers for the recorded ones and relaunch

Each input signature has its own recording, so a new shape or dtype just records again; so does a new
pattern of inputs sharing one buffer (`f(a, a)`, then `f(a, b)`). The JIT_CACHE_SIZE (default 16) most
recently used recordings are kept. `TinyJit(fn, prune=True)` drops from the recording the kernels that do
not depend on the inputs (their results, computed while recording, are reused), as tinygrad's. Every replay
writes its results into newly allocated buffers: the outputs of two calls never alias. Buffers the
function writes in place (parameters updated by `assign`) are written again on every replay, as they
should be. What a replay does not redo is Python: `.grad` attributes and other Tensors the function
stores elsewhere are not refreshed, and Tensors made from host data inside the function (numpy arrays,
lists) are constants of the recording; pass changing data in as arguments. Random numbers (`Tensor.rand`,
`randn`, `uniform`, `randint`, and so dropout) are drawn again on every replay, as a call would draw them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

from minigrad.device import Buffer
from minigrad.engine import realize
from minigrad.helpers import LRU, GlobalCounters, getenv, map_leaves
from minigrad.lazy import LazyNode
from minigrad.tensor import Tensor


def _map(obj: Any, fn: Callable, where: str, leaf: type = Tensor) -> Any:
    return map_leaves(obj, fn, leaf, f"TinyJit: {where}")


def _describe(obj: Any) -> Any:
    """A hashable key: Tensors by (shape, dtype, device); other values as they are."""
    if isinstance(obj, Tensor):
        return ("Tensor", obj.shape, obj.dtype, obj.device)
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(_describe(v) for v in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((k, _describe(v)) for k, v in obj.items()))
    return obj


def _as_input(t: Tensor) -> Tensor:
    """A realized tensor that owns its buffer (kernels bake views in, so a view becomes a copy)."""
    if t.lazydata.is_view or t.lazydata.base.realized is None:
        t = t.contiguous() if t.lazydata.is_view else t
        t.realize()
    return t


def _aliasing(buffers: list[Buffer]) -> tuple[int, ...]:
    """For each input, the position of the first input with the same buffer. Part of the recording's key:
    `f(a, a)` records kernels that read one buffer twice, and replaying them for `f(a, b)` would read `b`
    twice, so a call whose inputs share buffers differently records again."""
    first: dict[int, int] = {}
    return tuple(first.setdefault(id(b), i) for i, b in enumerate(buffers))


def _depending_on(inputs: list[Buffer], runs: list[realize.CapturedRun]) -> list[realize.CapturedRun]:
    """The runs whose results depend on the inputs (or on new random numbers), in order."""
    dependent, kept = {id(b) for b in inputs}, []
    for run in runs:
        if run.redraw is not None or any(id(b) in dependent for b in run.buffers[run.outputs :]):
            dependent.update(id(b) for b in run.buffers[: run.outputs])
            kept.append(run)
    return kept


@dataclass(frozen=True)
class _Result:
    buffer: Buffer
    shape: tuple[int, ...]


@dataclass(frozen=True)
class _Freed:
    """Where an intermediate buffer was before free_intermediates(): the next replay allocates it again."""

    device: str
    size: int
    dtype: Any


@dataclass
class _Recording:
    runs: list[realize.CapturedRun]
    inputs: list[Buffer]  # the input tensors' buffers while recording, in flattening order
    outputs: Any  # the returned structure, each Tensor replaced by a _Result
    results: set[int]  # ids of the returned buffers that a recorded kernel allocated
    freed: bool = False  # free_intermediates() ran since the last replay

    def free_intermediates(self) -> None:
        """Let go of the buffers that only carry values from one recorded kernel to the next (tinygrad's
        CapturedJit.free_intermediates): their memory is freed once nothing else holds them, and the next
        replay allocates them again. Inputs, results and buffers updated in place are kept."""
        freed: dict[int, _Freed] = {}
        for run in self.runs:
            for b in run.fresh:
                if id(b) not in self.results and isinstance(b, Buffer):
                    freed[id(b)] = _Freed(b.device, b.size, b.dtype)
        self._substitute(freed)
        self.freed = True

    def allocate(self) -> None:
        """Allocate again what free_intermediates() let go of (nothing to do on most replays)."""
        if not self.freed:
            return
        self.freed = False
        placeholders = {id(b): b for run in self.runs for b in run.fresh if isinstance(b, _Freed)}
        self._substitute({i: Buffer(f.device, f.size, f.dtype) for i, f in placeholders.items()})

    def _substitute(self, new: dict[int, Any]) -> None:
        for run in self.runs:
            run.buffers = [new.get(id(b), b) for b in run.buffers]
            run.fresh = [new.get(id(b), b) for b in run.fresh]


def _buffer(t: Tensor) -> Buffer:
    return t.lazydata.base.realized


class Variable:
    """tinygrad's symbolic integer argument of a jitted function, as far as minigrad has one: minigrad has no
    symbolic shapes, so `Variable("start", 0, n).bind(3)` checks the range and is the int 3, and TinyJit
    captures once per value (a non-tensor argument is part of its key)."""

    def __init__(self, name: str, vmin: int, vmax: int):
        if vmin > vmax:
            raise ValueError(f"Variable {name!r}: min {vmin} is above max {vmax}")
        self.name, self.min, self.max = name, vmin, vmax

    def bind(self, value: int) -> int:
        if not self.min <= value <= self.max:
            raise ValueError(f"Variable {self.name!r}: {value} is outside [{self.min}, {self.max}]")
        return int(value)


class TinyJit:
    def __init__(self, fn: Callable, prune: bool = False):
        self.fn, self.prune = fn, prune
        self.calls = LRU(lambda: 1024)  # calls seen per input signature (recording starts at the second)
        self.recordings = LRU(lambda: getenv("JIT_CACHE_SIZE", 16))  # the latest signatures' recordings
        functools.update_wrapper(self, fn)

    def __get__(self, obj: Any, objtype: type | None = None) -> Callable:
        """As a method's decorator: the jit called with the instance first (part of the capture's key, so
        each instance has its own recordings)."""
        return self if obj is None else functools.partial(self.__call__, obj)

    @property
    def captured(self) -> _Recording | None:
        """The latest recording (None before the second call with one signature)."""
        return next(reversed(self.recordings.values()), None)

    def reset(self) -> None:
        """Forget every recording (after changing something the function reads but does not take)."""
        self.calls.clear()
        self.recordings.clear()

    def __call__(self, *args, **kwargs):
        with realize.REALIZE_LOCK:  # another thread's kernels must not land in this call's recording
            return self._call(args, kwargs)

    def _call(self, args: tuple, kwargs: dict) -> Any:
        args, kwargs = _map(args, _as_input, "an argument"), _map(kwargs, _as_input, "a keyword argument")
        inputs: list[Tensor] = []
        _map((args, kwargs), inputs.append, "the arguments")
        key = (_describe(args), _describe(kwargs), _aliasing([_buffer(t) for t in inputs]))
        if key in self.recordings:
            return self._replay(self.recordings.get(key), [_buffer(t) for t in inputs])
        if self.calls.put(key, self.calls.get(key, 0) + 1) == 1:
            return self._run(args, kwargs)
        with realize.capturing() as runs:
            out = self._run(args, kwargs)
        runs = _depending_on([_buffer(t) for t in inputs], runs) if self.prune else runs
        outputs = _map(out, lambda t: _Result(_buffer(t), t.shape), "the return value")
        fresh = {id(b) for run in runs for b in run.fresh}
        returned: list[_Result] = []
        _map(outputs, returned.append, "the return value", leaf=_Result)
        results = {id(r.buffer) for r in returned if id(r.buffer) in fresh}
        self.recordings.put(key, _Recording(runs, [_buffer(t) for t in inputs], outputs, results))
        return out

    def _run(self, args: tuple, kwargs: dict) -> Any:
        out = self.fn(*args, **kwargs)
        tensors: list[Tensor] = []
        _map(out, tensors.append, "the return value")
        for t in tensors:  # results own their buffers, so that a replay can give each call new ones
            if t.lazydata.is_view:
                t.lazydata = t.contiguous().lazydata
        if tensors:
            Tensor.realize(*tensors)
        return out

    def _replay(self, recording: _Recording, inputs: list[Buffer]) -> Any:
        recording.allocate()
        swap = {id(old): new for old, new in zip(recording.inputs, inputs)}
        for run in recording.runs:
            for b in run.fresh:
                if id(b) in recording.results:
                    swap[id(b)] = Buffer(b.device, b.size, b.dtype)
            buffers = [swap.get(id(b), b) for b in run.buffers]
            GlobalCounters.global_ops += run.ops
            GlobalCounters.global_mem += run.mem
            if run.program is None:
                buffers[0].copyin(run.redraw() if run.redraw else buffers[1].numpy())
                continue
            run.program.launch(buffers)
            GlobalCounters.kernel_count += 1

        def tensor(result: _Result) -> Tensor:
            buffer = swap.get(id(result.buffer), result.buffer)
            node = LazyNode.from_buffer(buffer, result.shape, buffer.dtype, buffer.device)
            return Tensor._from_node(node, False)

        return _map(recording.outputs, tensor, "the return value", leaf=_Result)
