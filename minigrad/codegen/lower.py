"""Lowering: a kernel AST becomes a linear IR, a short list of instructions with explicit loops.

In: a kernel AST (ops.AstNode tree rooted at STORE, from engine/schedule.py). Out: a `LinearKernel`:
its buffers and a flat list of `Instr`s that a renderer (cstyle.py) prints one line each.

A kernel has one loop nest. Its *full shape* is the shape its reduce reads (or its output shape when it
has no reduce); every dimension is either a global dimension (each iteration writes its own output) or a
reduce dimension (iterations accumulate into one output). Size-1 dimensions get no loop at all.

    for gidx0:                       LOOP   (global)
      acc0 = 0                       ACC
      for ridx1:                     LOOP   (reduce)
        val0 = data1[gidx0*4+ridx1]  LOAD   (index from the ShapeTracker, simplified)
        alu0 = val0 * val0           ALU
        acc0 += alu0                 UPDATE
                                     ENDLOOP
      data0[gidx0] = acc0            STORE
                                     ENDLOOP

Everything under a REDUCE runs inside the reduce loops at the full shape; everything above it runs after
them, at the output shape (reduce dimensions indexed at 0). Structurally equal AST nodes become one
instruction (common subexpressions are computed once). `codegen/opt.py` rewrites the `LoopNest` (loop
order, parallel loops, unrolling) before it is linearized.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from minigrad.dtype import DType, dtypes
from minigrad.helpers import getenv
from minigrad.ops import REDUCE, AstNode, Op
from minigrad.shape.symbolic import Node, NumNode, Variable


@dataclass(frozen=True)
class Instr:
    """One IR instruction. `srcs` are positions of earlier instructions in the list.

    LOOP     arg: Loop                 ENDLOOP  arg: Loop
    ACC      arg: (reduce Op, initial) UPDATE   srcs: (acc, value), arg: reduce Op
    LOAD     arg: (buffer, index Node, valid Node)
    STORE    srcs: (value,), arg: (buffer, index Node, valid Node)
    CONST    arg: the value            ALU      srcs: operands, arg: the Op (CAST: dtype gives the target)
    COND     arg: a symbolic condition (a view's mask) used as a bool value
    """

    op: str
    dtype: DType | None
    srcs: tuple[int, ...] = ()
    arg: Any = None


@dataclass(frozen=True)
class Loop:
    var: Variable
    size: int
    reduce: bool
    parallel: bool = False  # run iterations on several threads (opt.py decides)


@dataclass
class LoopNest:
    """The loop structure of a kernel before linearizing: which dims loop, in which order."""

    full_shape: tuple[int, ...]
    reduce_axes: tuple[int, ...]
    order: list[int]  # dims that get a loop (size > 1), outermost first; reduce dims after global ones
    parallel_dims: set[int] = field(default_factory=set)


@dataclass
class LinearKernel:
    name: str
    buffers: list[tuple[int, DType, bool]]  # (buffer number, dtype, written)
    instrs: list[Instr]
    nest: LoopNest


def node_shapes(ast: AstNode) -> dict[AstNode, tuple[int, ...]]:
    """The logical shape of every node: leaves carry it in their ShapeTracker; reduces keep dims."""
    shapes: dict[AstNode, tuple[int, ...]] = {}
    for node in ast.toposort():
        if node.op in (Op.LOAD, Op.CONST):
            shapes[node] = node.arg[1].shape
        elif node.op in REDUCE:
            src = shapes[node.srcs[0]]
            shapes[node] = tuple(1 if d in node.arg else s for d, s in enumerate(src))
        else:
            shapes[node] = shapes[node.srcs[0]] if node.srcs else ()
    return shapes


def loop_nest(ast: AstNode) -> LoopNest:
    """The unoptimized loop nest: global dims in order, then reduce dims in order."""
    shapes = node_shapes(ast)
    reduces = [n for n in shapes if n.op in REDUCE]
    if len({(shapes[r.srcs[0]], r.arg) for r in reduces}) > 1:
        raise RuntimeError(
            f"a kernel can only reduce one way, got {[(shapes[r.srcs[0]], r.arg) for r in reduces]}"
        )
    full_shape = shapes[reduces[0].srcs[0]] if reduces else ast.arg[1].shape
    axes = reduces[0].arg if reduces else ()
    order = [d for d, s in enumerate(full_shape) if s != 1 and d not in axes]
    order += [d for d in axes if full_shape[d] != 1]
    return LoopNest(full_shape, axes, order)


class _Linearizer:
    """Walks the AST once, appending instructions; remembers what was already emitted."""

    def __init__(self, nest: LoopNest):
        self.nest = nest
        self.instrs: list[Instr] = []
        self.emitted: dict[AstNode, int] = {}
        self.variables = {
            d: Variable(f"{'r' if d in nest.reduce_axes else 'g'}idx{d}", 0, max(s - 1, 0))
            for d, s in enumerate(nest.full_shape)
            if d in nest.order
        }

    def emit(self, instr: Instr) -> int:
        self.instrs.append(instr)
        return len(self.instrs) - 1

    def idxs(self, reduced: bool) -> list[Node]:
        """Index of each dim: its loop variable, or 0 (size-1 dims, and reduce dims after the reduce)."""
        return [
            self.variables[d]
            if d in self.variables and (reduced or d not in self.nest.reduce_axes)
            else NumNode(0)
            for d in range(len(self.nest.full_shape))
        ]

    def value(self, node: AstNode, reduced: bool) -> int:
        """Emit `node` and its operands (skipping ones already emitted); return its instruction number."""
        for n in node.toposort():
            if n in self.emitted:
                continue
            if n.op in (Op.LOAD, Op.CONST):
                st = n.arg[1]
                if n.op is Op.CONST:
                    index, valid = st.expr_idxs(self.idxs(reduced))
                    const = self.emit(Instr("CONST", n.dtype, (), n.arg[0]))
                    self.emitted[n] = (
                        const if valid.max == 1 and valid.min == 1 else self._masked(const, valid, n)
                    )
                else:
                    index, valid = st.expr_idxs(self.idxs(reduced))
                    self.emitted[n] = self.emit(Instr("LOAD", n.dtype, (), (n.arg[0], index, valid)))
            elif n.op in REDUCE:
                raise RuntimeError("reduces are emitted by linearize(), not inline")
            else:
                self.emitted[n] = self.emit(
                    Instr("ALU", n.dtype, tuple(self.emitted[s] for s in n.srcs), n.op)
                )
        return self.emitted[node]

    def _masked(self, const: int, valid: Node, node: AstNode) -> int:
        """A constant seen through a padded view: the value inside the mask, 0 outside."""
        zero = self.emit(Instr("CONST", node.dtype, (), 0))
        condition = self.emit(Instr("COND", dtypes.bool, (), valid))
        return self.emit(Instr("ALU", node.dtype, (condition, const, zero), Op.WHERE))


def linearize(ast: AstNode, nest: LoopNest, name: str) -> LinearKernel:
    """Emit the instructions of `ast` in the loop nest `nest` (see the module docstring)."""
    lin = _Linearizer(nest)
    loops = [
        Loop(lin.variables[d], nest.full_shape[d], d in nest.reduce_axes, d in nest.parallel_dims)
        for d in nest.order
    ]
    global_loops = [loop for loop in loops if not loop.reduce]
    reduce_loops = [loop for loop in loops if loop.reduce]
    for loop in global_loops:
        lin.emit(Instr("LOOP", None, (), loop))
    reduces = [n for n in ast.toposort() if n.op in REDUCE]
    accumulators = {}
    for r in dict.fromkeys(reduces):
        initial = 0 if r.op is Op.REDUCE_SUM else "lowest"
        accumulators[r] = lin.emit(Instr("ACC", r.dtype, (), (r.op, initial)))
    if reduces:
        for loop in reduce_loops:
            lin.emit(Instr("LOOP", None, (), loop))
        for r, acc in accumulators.items():
            value = lin.value(r.srcs[0], reduced=True)
            lin.emit(Instr("UPDATE", r.dtype, (acc, value), r.op))
        for loop in reversed(reduce_loops):
            lin.emit(Instr("ENDLOOP", None, (), loop))
        lin.emitted.update(accumulators)
    store = ast
    value = lin.value(store.srcs[0], reduced=False)
    index, valid = store.arg[1].expr_idxs(lin.idxs(reduced=False))
    lin.emit(Instr("STORE", store.dtype, (value,), (store.arg[0], index, valid)))
    for loop in reversed(global_loops):
        lin.emit(Instr("ENDLOOP", None, (), loop))
    buffers = {store.arg[0]: (store.arg[0], store.dtype, True)}
    for n in ast.toposort():
        if n.op is Op.LOAD:
            buffers.setdefault(n.arg[0], (n.arg[0], n.dtype, False))
    return LinearKernel(name, sorted(buffers.values()), lin.instrs, nest)


def kernel_name(nest: LoopNest) -> str:
    """A readable name: r_ for kernels with a reduce, E_ otherwise, then the full shape."""
    prefix = "r" if nest.reduce_axes else "E"
    return f"{prefix}_" + "_".join(str(s) for s in nest.full_shape) if nest.full_shape else f"{prefix}_scalar"


def lower(ast: AstNode, optimize=None) -> LinearKernel:
    """AST -> linear IR. `optimize(ast, nest) -> nest` (codegen/opt.py) may rewrite the loop nest first."""
    nest = loop_nest(ast)
    if optimize is not None:
        nest = optimize(ast, nest)
    kernel = linearize(ast, nest, kernel_name(nest))
    if getenv("DEBUG") >= 3:
        print(format_ir(kernel))
    return kernel


def format_ir(kernel: LinearKernel) -> str:
    """The linear IR, one instruction a line, indented by loop depth (what DEBUG=3 prints)."""
    lines, depth = [f"--- {kernel.name}: linear IR ---"], 0
    for position, instr in enumerate(kernel.instrs):
        depth -= instr.op == "ENDLOOP"
        arg = instr.arg
        if instr.op in ("LOOP", "ENDLOOP"):
            arg = (
                f"{arg.var.name} < {arg.size}"
                + (" reduce" if arg.reduce else "")
                + (" parallel" if arg.parallel else "")
            )
        elif instr.op in ("LOAD", "STORE"):
            arg = f"data{arg[0]}[{arg[1].render()}]" + ("" if arg[2].min == 1 else f" if {arg[2].render()}")
        elif instr.op == "COND":
            arg = arg.render()
        dtype = instr.dtype.name if instr.dtype is not None else ""
        lines.append(f"{position:4d} {'  ' * depth}{instr.op:7s} {dtype:8s} {list(instr.srcs) or ''} {arg}")
        depth += instr.op == "LOOP"
    return "\n".join(lines)
