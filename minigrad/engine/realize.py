"""Running a schedule: allocate buffers, get (cached) programs, launch them.

In: `ScheduleItem`s from engine/schedule.py. Out: every item's output node holds a device `Buffer` in
`node.realized`. Counts what ran in `GlobalCounters`, and prints one line per kernel with DEBUG>=1.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

from minigrad.device import Buffer, Device
from minigrad.engine.schedule import ScheduleItem, create_schedule
from minigrad.helpers import GlobalCounters, getenv, prod
from minigrad.lazy import LazyNode, toposort
from minigrad.ops import ELEMENTWISE, REDUCE, AstNode, Op


@dataclass
class CapturedRun:
    """One launch recorded for TinyJit (jit.py): `program` run on `buffers` (outputs first), or, when
    `program` is None, a copy of buffers[1] into buffers[0]. `fresh`: the outputs it allocated (not
    written in place by an ASSIGN)."""

    program: Any
    buffers: list[Buffer]
    fresh: list[Buffer]


capture: list[CapturedRun] | None = None  # while jit.py sets a list, every kernel and copy is appended


def realize(nodes: list[LazyNode]) -> None:
    """Compute every node in `nodes` (and what they depend on) into device buffers."""
    if getenv("DEBUG") >= 5:
        print_graph(nodes)
    schedule = create_schedule(nodes)
    if getenv("DEBUG") >= 2:
        print_schedule(schedule)
    run_schedule(schedule)


def run_schedule(schedule: list[ScheduleItem]) -> None:
    for item in schedule:
        if item.ast.op is Op.BUFFER:
            _load_host_data(item.outputs[0])
        elif item.ast.op is Op.COPY:
            _copy(item.outputs[0], item.inputs[0])
        else:
            _run_kernel(item)


def _output_buffer(node: LazyNode) -> Buffer:
    if node.op is Op.ASSIGN:
        return node.srcs[0].base.realized  # ASSIGN writes into its target's buffer
    return Buffer(node.device, prod(node.shape), node.dtype)


def _load_host_data(node: LazyNode) -> None:
    buffer = Buffer(node.device, prod(node.shape), node.dtype)
    if node.arg is not None:
        buffer.copyin(node.arg)
        node.arg = None  # the host copy is no longer needed
    node.realized = buffer


def _copy(node: LazyNode, src: LazyNode) -> None:
    node.realized = Buffer(node.device, prod(node.shape), node.dtype).copyin(src.realized.numpy())
    GlobalCounters.global_mem += node.realized.nbytes
    if capture is not None:
        capture.append(CapturedRun(None, [node.realized, src.realized], [node.realized]))


def _run_kernel(item: ScheduleItem) -> None:
    backend = Device[item.outputs[0].device]
    outputs = [_output_buffer(node) for node in item.outputs]
    if prod(item.outputs[0].shape) == 0:  # nothing to compute
        for node, buffer in zip(item.outputs, outputs):
            node.realized = buffer
            _forget_assign_sources(node)
        return
    buffers = outputs + [node.realized for node in item.inputs]
    program = backend.get_program(item.ast)
    start = time.perf_counter()
    elapsed = program(
        *[b._buf for b in buffers],
        global_size=program.global_size,
        local_size=program.local_size,
        wait=getenv("DEBUG") >= 1,
    )
    elapsed = elapsed if elapsed is not None else time.perf_counter() - start
    for node, buffer in zip(item.outputs, outputs):
        node.realized = buffer
        _forget_assign_sources(node)
    if capture is not None:
        fresh = [b for node, b in zip(item.outputs, outputs) if node.op is not Op.ASSIGN]
        capture.append(CapturedRun(program, buffers, fresh))
    ops, mem = _estimate_work(item, buffers)
    GlobalCounters.kernel_count += 1
    GlobalCounters.global_ops += ops
    GlobalCounters.global_mem += mem
    GlobalCounters.time_sum_s += elapsed
    if getenv("DEBUG") >= 1:
        print(
            f"*** {backend.name:6s} {GlobalCounters.kernel_count:5d} {program.name:20s} "
            f"shape {str(item.outputs[0].shape):20s} {elapsed * 1e6:9.1f} us "
            f"{ops / max(elapsed, 1e-9) * 1e-9:7.2f} GFLOPS {mem / max(elapsed, 1e-9) * 1e-9:7.2f} GB/s"
        )


def _forget_assign_sources(node: LazyNode) -> None:
    """A written ASSIGN becomes a plain leaf buffer. No gradient flows through ASSIGN, so nothing needs its
    sources, and keeping them would chain every training step's graph (and its buffers) to the next."""
    if node.op is Op.ASSIGN:
        node.op, node.srcs, node.arg = Op.BUFFER, (), None


def _estimate_work(item: ScheduleItem, buffers: list[Buffer]) -> tuple[int, int]:
    """(arithmetic ops, bytes moved) of one kernel."""
    return _count_ops(item.ast), sum(b.nbytes for b in buffers)


@functools.lru_cache(maxsize=4096)
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
