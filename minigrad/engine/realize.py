"""Running a schedule: allocate buffers, get (cached) programs, launch them.

In: `ScheduleItem`s from engine/schedule.py. Out: every item's output node holds a device `Buffer` in
`node.realized`. Counts what ran in `GlobalCounters`, and prints one line per kernel with DEBUG>=1.

Threads: realizing is serialized by one process-wide lock, `REALIZE_LOCK` (reentrant). Several threads may
build graphs at once and call `.realize()`/`.numpy()` at once; their schedules run one after another.
Kernels mutate the graph they run (a written ASSIGN becomes a buffer) and TinyJit records the launches of
one call, so two realizes must not interleave.

Buffers live as long as their nodes, with one exception: nodes handed to `release_after_use` (checkpoint
marks the intermediates of the function it wraps) lose their buffer right after the last kernel of the
schedule that reads them, unless they were asked for. That is what bounds memory under checkpointing.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Iterator

from minigrad import viz
from minigrad.device import Buffer, Device
from minigrad.engine import graph, search
from minigrad.engine.schedule import ScheduleItem, create_schedule
from minigrad.helpers import GlobalCounters, getenv, prod
from minigrad.lazy import LazyNode, Placeholder, toposort
from minigrad.ops import ELEMENTWISE, REDUCE, AstNode, Op


@dataclass
class CapturedRun:
    """One launch recorded for TinyJit (jit.py): `program` run on `buffers` (outputs first), or, when
    `program` is None, a copy of buffers[1] into buffers[0], or of `redraw()`'s new random numbers.
    `fresh`: the outputs it allocated (not written in place by an ASSIGN). `ops` and `mem`: what it adds to
    GlobalCounters, on every replay too."""

    program: Any
    buffers: list[Buffer]
    fresh: list[Buffer]
    redraw: Any = None
    ops: int = 0
    mem: int = 0
    outputs: int = 1  # how many of `buffers` it writes (the first ones)


REALIZE_LOCK = threading.RLock()  # held while a schedule is made and run (see the module docstring)
# The one context TinyJit records through: inside `capturing()`, every kernel, copy and random redraw this
# thread runs is appended to the list it yields (a ContextVar: another thread's kernels are not recorded).
_capture: contextvars.ContextVar[list[CapturedRun] | None] = contextvars.ContextVar("capture", default=None)


@contextlib.contextmanager
def capturing() -> Iterator[list[CapturedRun]]:
    """Record what runs inside, on this thread, into the list this yields (jit.py replays it)."""
    runs: list[CapturedRun] = []
    token = _capture.set(runs)
    try:
        yield runs
    finally:
        _capture.reset(token)


_transient: weakref.WeakSet = weakref.WeakSet()  # nodes whose buffers go after their last reader


def release_after_use(nodes: list[LazyNode]) -> None:
    """Let the engine drop these nodes' buffers once a schedule's last reader of them has run (they are
    recomputed from their sources if anything asks for them later)."""
    _transient.update(node for node in nodes if not node.is_view)


def realize(nodes: list[LazyNode]) -> None:
    """Compute every node in `nodes` (and what they depend on) into device buffers."""
    with REALIZE_LOCK:
        _realize(nodes)


def _realize(nodes: list[LazyNode]) -> None:
    if getenv("DEBUG") >= 5:
        print_graph(nodes)
    schedule = create_schedule(nodes)
    if getenv("DEBUG") >= 2:
        print_schedule(schedule)
    if getenv("GRAPH"):
        graph.write(nodes, schedule)
    _check_not_overwritten(schedule)
    if getenv("VIZ"):
        viz.realize_started(nodes, schedule)
    kernels = [item for item in schedule if item.ast.op is Op.STORE and prod(item.outputs[0].shape) > 0]
    start = time.perf_counter()
    for device in {item.outputs[0].device for item in kernels}:  # new kernels compile on several threads
        Device[device].precompile([item.ast for item in kernels if item.outputs[0].device == device])
    if getenv("VIZ"):  # (the batch's time, shared by its kernels: they compile together)
        viz.compiled(time.perf_counter() - start, len(kernels))
    run_schedule(schedule, keep=nodes)


def _check_not_overwritten(schedule: list[ScheduleItem]) -> None:
    """A leaf whose buffer an assign() overwrote cannot be recomputed, and a transform's placeholder has no
    data: say so before anything runs."""
    for item in schedule:
        if item.ast.op is Op.BUFFER and isinstance(item.outputs[0].arg, Placeholder):
            raise RuntimeError(item.outputs[0].arg.message)
        if item.ast.op is Op.BUFFER and item.outputs[0].overwritten:
            node = item.outputs[0]
            raise RuntimeError(
                f"this computation needs the old value of a {node.shape} {node.dtype.name} tensor on "
                f"{node.device} that assign() has overwritten since. Realize what needs the old value before "
                "the assign (for a training step: Tensor.realize(loss, *optimizer.schedule_step())), or "
                "keep a copy first with .clone().realize()"
            )


def run_schedule(schedule: list[ScheduleItem], keep: list[LazyNode] = ()) -> None:
    release, beam, debug = _release_points(schedule, keep), getenv("BEAM"), getenv("DEBUG")
    for i, item in enumerate(schedule):
        if item.ast.op is Op.BUFFER:
            _load_host_data(item.outputs[0])
        elif item.ast.op is Op.COPY:
            _copy(item.outputs[0], item.inputs[0])
        else:
            _run_kernel(item, beam, debug)
        for node in release.get(i, ()):
            node.realized = None


def _release_points(schedule: list[ScheduleItem], keep: list[LazyNode]) -> dict[int, list[LazyNode]]:
    """For each transient node this schedule computes and nobody asked for: the item that reads it last."""
    if not _transient:
        return {}
    kept = {id(node.base) for node in keep}
    last: dict[int, tuple[int, LazyNode]] = {}
    for i, item in enumerate(schedule):
        for node in item.outputs:
            if node in _transient and id(node) not in kept:
                last[id(node)] = (i, node)
        for node in item.inputs:
            if id(node) in last:
                last[id(node)] = (i, node)
    points: dict[int, list[LazyNode]] = {}
    for i, node in last.values():
        points.setdefault(i, []).append(node)
    return points


def _output_buffer(node: LazyNode) -> Buffer:
    if node.op is Op.ASSIGN:
        return node.srcs[0].base.realized  # ASSIGN writes into its target's buffer
    return Buffer(node.device, prod(node.shape), node.dtype)


def _load_host_data(node: LazyNode) -> None:
    buffer = Buffer(node.device, prod(node.shape), node.dtype)
    data, redraw = node.arg if isinstance(node.arg, tuple) else (node.arg, None)  # lazy.LazyNode.buffer
    if data is not None:
        buffer.copyin(data)
        node.arg = None  # the host copy is no longer needed
    runs = _capture.get()
    if runs is not None and redraw is not None:
        runs.append(CapturedRun(None, [buffer], [], redraw))
    node.realized = buffer


def _copy(node: LazyNode, src: LazyNode) -> None:
    node.realized = Buffer(node.device, prod(node.shape), node.dtype).copyin(src.realized.numpy())
    GlobalCounters.global_mem += node.realized.nbytes
    runs = _capture.get()
    if runs is not None:
        runs.append(
            CapturedRun(None, [node.realized, src.realized], [node.realized], mem=node.realized.nbytes)
        )


def _run_kernel(item: ScheduleItem, beam: int, debug: int) -> None:
    backend = Device[item.outputs[0].device]
    outputs = [_output_buffer(node) for node in item.outputs]
    if prod(item.outputs[0].shape) == 0:  # nothing to compute
        _set_outputs(item, outputs)
        return
    buffers = outputs + [node.realized for node in item.inputs]
    fetch = time.perf_counter()
    program = (
        search.program_for(item.ast, backend, item.outputs, buffers)
        if beam
        else backend.get_program(item.ast)
    )
    start = time.perf_counter()
    viewed = getenv("VIZ")
    elapsed = program.launch(buffers, wait=debug >= 1 or viewed) or time.perf_counter() - start
    if viewed:
        viz.kernel_ran(item, program, elapsed, start - fetch)
    ops, mem = _count_ops(item.ast), sum(b.nbytes for b in buffers)  # arithmetic ops, bytes moved
    runs = _capture.get()
    if runs is not None:  # (before _set_outputs, which turns a written ASSIGN into a plain buffer)
        fresh = [b for node, b in zip(item.outputs, outputs) if node.op is not Op.ASSIGN]
        runs.append(CapturedRun(program, buffers, fresh, ops=ops, mem=mem, outputs=len(outputs)))
    _set_outputs(item, outputs)
    GlobalCounters.kernel_count += 1
    GlobalCounters.global_ops += ops
    GlobalCounters.global_mem += mem
    GlobalCounters.time_sum_s += elapsed
    if debug >= 1:
        print(
            f"*** {backend.name:6s} {GlobalCounters.kernel_count:5d} {program.name:20s} "
            f"shape {str(item.outputs[0].shape):20s} {elapsed * 1e6:9.1f} us "
            f"{ops / max(elapsed, 1e-9) * 1e-9:7.2f} GFLOPS {mem / max(elapsed, 1e-9) * 1e-9:7.2f} GB/s"
        )


def _set_outputs(item: ScheduleItem, buffers: list[Buffer]) -> None:
    for node, buffer in zip(item.outputs, buffers):
        if node.op is Op.ASSIGN:
            buffer.version += 1  # every other node holding this buffer now reads as overwritten (lazy.py)
            # a written ASSIGN becomes a plain leaf buffer. No gradient flows through ASSIGN, so nothing
            # needs its sources, and keeping them would chain each training step's graph to the next
            node.op, node.srcs, node.arg = Op.BUFFER, (), None
        node.realized = buffer


@functools.lru_cache(maxsize=1024)
def _count_ops(ast: AstNode) -> int:
    """Each ALU node costs one op per element it computes (a reduce: per element it reads)."""
    shapes: dict[int, tuple[int, ...]] = {}
    ops = 0
    for node in ast.toposort():
        if node.op in (Op.LOAD, Op.CONST):
            shapes[id(node)] = node.arg[1].shape
            continue
        shapes[id(node)] = shapes[id(node.srcs[0])]
        if node.op in ELEMENTWISE or node.op in REDUCE:
            ops += prod(shapes[id(node)])
        if node.op in REDUCE:
            shapes[id(node)] = tuple(1 if d in node.arg else s for d, s in enumerate(shapes[id(node)]))
    return ops


def print_graph(nodes: list[LazyNode]) -> None:
    """The lazy graph behind `nodes`, one node a line, sources first (what DEBUG=5 prints)."""
    order = toposort(nodes)
    number = {id(n): i for i, n in enumerate(order)}
    print(f"lazy graph: {len(order)} nodes")
    for n in order:
        srcs = ", ".join(f"%{number[id(s)]}" for s in n.srcs)
        state = " realized" if n.realized is not None else ""
        print(f"  %{number[id(n)]:<4d} {n.op.name:10s} {str(n.shape):16s} {n.dtype.name:8s} ({srcs}){state}")


def print_schedule(schedule: list[ScheduleItem]) -> None:
    print(f"schedule: {len(schedule)} items")
    for i, item in enumerate(schedule):
        out = item.outputs[0]
        inputs = ", ".join(f"{n.op.name}{n.shape}" for n in item.inputs)
        print(
            f"  {i:3d} {item.ast.op.name:6s} -> {out.op.name}{out.shape} {out.dtype.name}  "
            f"reads [{inputs}]  buffer because: {item.reason}"
        )
