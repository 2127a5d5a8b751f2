"""Linearizing, codegen's third stage: a kernel AST in its (optimized) loop nest becomes a linear IR, a
short list of instructions with explicit loops.

In: a kernel AST and its `LoopNest` (codegen/lower.py, rewritten by codegen/opt.py). Out: a
`LinearKernel`: its buffers and a flat list of `Instr`s that a renderer (cstyle.py) prints one line each.

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
instruction (common subexpressions are computed once).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

from minigrad.codegen.lower import LoopNest
from minigrad.dtype import DType, dtypes
from minigrad.helpers import getenv, prod
from minigrad.ops import IOTA, REDUCE, AstNode, Op
from minigrad.shape.symbolic import (
    MinNode,
    Node,
    NumNode,
    Variable,
    affine_coefficients,
    and_nodes,
    ge,
    lt,
    sum_node,
    variables,
)


EPILOGUE_LOOP_COPIES = (
    64  # a register tile of this many outputs or more stores them in a loop (_epilogue_loop)
)


@dataclass(frozen=True)
class Instr:
    """One IR instruction. `srcs` are positions of earlier instructions in the list.

    LOOP     arg: Loop                 ENDLOOP  arg: Loop
    ACC      arg: (reduce Op, initial) UPDATE   srcs: (acc, value), arg: reduce Op
    LOAD     arg: (buffer, index Node, valid Node)   buffer: a kernel argument's number, or a local array
    STORE    srcs: (value,), arg: (buffer, index Node, valid Node)
    LOCAL    arg: (name, size): an array shared by a work-group      BARRIER: wait for the work-group
    PRIVATE  arg: (name, size): an array of one thread (a packed operand, opt.pack)
    FENCE    arg: a private array: its stores happen here (C: an empty asm; Language.spill_accumulators)
    VLOAD    arg: (buffer, index, width): `width` elements at once    LANE  srcs: (vload,), arg: element
    VSTORE   srcs: `width` values, arg: (buffer, index)             (from `vectorize`, GPUs only)
    CONST    arg: the value            ALU      srcs: operands, arg: the Op (CAST: dtype gives the target)
    INDEX    arg: a symbolic expression used as a value: a view's mask (bool), an IOTA's index (int)
    `lanes` > 1 (vector columns, nest.simd): the value is a vector of that many elements; a vector LOAD or
    STORE moves them from `index` on (_read_lanes reads them back one at a time through an array); a bool
    vector is a comparison's mask (_check_vector_alu)."""

    op: str
    dtype: DType | None
    srcs: tuple[int, ...] = ()
    arg: Any = None
    lanes: int = 1


@dataclass(frozen=True)
class Loop:
    var: Variable
    size: int
    reduce: bool
    parallel: bool = False  # run iterations on several threads (opt.py decides)
    pick: int | None = None  # the instruction holding the one index the loop runs at, if any (opt.pick)


class NotVectorizable(Exception):
    """A kernel's reduce holds something that vector columns cannot express; it is linearized with scalars."""


VECTOR_OPS = (Op.ADD, Op.MUL, Op.NEG, Op.MAX)  # what a vector computes (as written; max by a helper)
# what a vector computes one element at a time, the scalar code in a loop that the C compiler vectorizes
# (cstyle): an exp inside a row sum keeps the sum's running values in registers (softmax's exp-sum on a Xeon
# 6.0 -> 3.4 ms), with the same values as scalar columns
LANEWISE_OPS = (Op.EXP2, Op.EXP, Op.LOG2, Op.SIN, Op.COS, Op.SQRT)
MASK_OPS = (Op.CMPLT, Op.CMPEQ)  # a comparison of vectors: a mask, read by a WHERE (see _check_vector_alu)
VECTOR_DTYPES = (dtypes.float32, dtypes.float64)


@dataclass
class LinearKernel:
    name: str
    buffers: list[tuple[int, DType, bool]]  # (buffer number, dtype, written)
    instrs: list[Instr]
    nest: LoopNest
    spilled: bool = False  # the accumulators are stored to an array already (_epilogue_loop)


class _Linearizer:
    """Walks the AST, appending instructions.

    Pure instructions (loads, constants, arithmetic) are hash-consed: emitting one that already exists in
    scope returns the existing one, so values shared by the copies of an upcast body (or written twice in
    the AST) are computed once."""

    def __init__(self, nest: LoopNest):
        self.nest = nest
        self.instrs: list[Instr] = []
        self.scopes: list[dict[tuple, int]] = [{}]  # pure instructions visible here, innermost loop last
        self.emitted: dict[tuple, int] = {}
        self.variables: dict[int, Node] = {}
        self.local_index = Variable("lidx", 0, nest.group_size - 1)  # the thread's place in its group
        self.thread_index: dict[int, Node] = {}  # per shared dim, from lidx (the last dim the fastest)
        inner = nest.group_size
        for d in (d for d in nest.order if d in nest.threads):
            inner //= nest.threads[d]
            self.thread_index[d] = (self.local_index // inner) % nest.threads[d]
        self.tile_index = Variable("tidx", 0, max(nest.tile - 1, 0))  # the element of a chunk (nest.tile)
        self.staged: dict[AstNode, tuple[str, int, int]] = {}  # loads in local memory: (array, dim, row)
        self.packed: dict[AstNode, tuple[str, int, int]] = {}  # packed loads: (array, column dim, width)
        self.epilogue_looped = False  # the stores were emitted in a loop over the tile (_epilogue_loop)
        # vector columns: a vector's element, where the copies of the columns (or a row sum's lanes) are
        # whole vectors
        dim = nest.vector_dim
        vectors = nest.simd > 1 and dim is not None and nest.upcast.get(dim, 1) % nest.simd == 0
        self.vector_dim = dim if vectors else None
        self.lane = Variable("simd_lane", 0, nest.simd - 1) if vectors else None  # (symbolic only)
        for d in nest.order:
            steps = nest.steps(d)
            prefix = "r" if d in nest.reduce_axes else "g"
            # a loop of 0 steps (an empty dim) still needs its loop: the body must not run at all
            self.variables[d] = (
                Variable(f"{prefix}idx{d}", 0, max(steps - 1, 0)) if steps != 1 else NumNode(0)
            )

    def emit(self, instr: Instr) -> int:
        if self.lane is not None:
            instr = self.vector(instr)
        key = None
        if instr.op in ("LOAD", "CONST", "ALU", "INDEX"):
            key = (instr.op, instr.dtype, instr.srcs, _arg_key(instr.arg), instr.lanes)
            for scope in self.scopes:
                if key in scope:
                    return scope[key]
        self.instrs.append(instr)
        if key is not None:
            self.scopes[-1][key] = len(self.instrs) - 1
        if instr.op == "LOOP":
            self.scopes.append({})
        elif instr.op == "ENDLOOP":  # values computed inside a loop are not visible after it
            dropped = set(self.scopes.pop().values())
            self.emitted = {k: v for k, v in self.emitted.items() if v not in dropped}
        return len(self.instrs) - 1

    def vector(self, instr: Instr) -> Instr:
        """Vector columns: `instr` as a vector if its value varies with the lane (a load with the lane in
        its index, an op of a vector). A vector access runs from its index at lane 0 on; a vector is stored
        only where the index moves with the lane. Raises NotVectorizable for what C's vectors cannot do."""
        lanes = max([self.instrs[s].lanes for s in instr.srcs], default=instr.lanes)
        if instr.op in ("LOAD", "STORE"):
            buffer, index, valid = instr.arg
            step = affine_coefficients(index).get(self.lane.name, 0)
            if self.lane.name in variables(valid) or step not in (0, 1):
                raise NotVectorizable(
                    f"not contiguous along the columns: {index.render()} if {valid.render()}"
                )
            if instr.op == "STORE" and (lanes > 1) != (step == 1):
                raise NotVectorizable("a store whose index and value disagree on the columns")
            if step == 1:  # (the index at lane 0)
                instr = dataclasses.replace(instr, arg=(buffer, index - self.lane, valid))
                lanes = self.nest.simd
        elif instr.op == "INDEX" and self.lane.name in variables(instr.arg):
            raise NotVectorizable(f"an index along the columns: {instr.arg.render()}")
        if lanes == 1:
            return instr
        if instr.op == "ALU":
            self._check_vector_alu(instr)
        elif instr.dtype not in VECTOR_DTYPES:
            raise NotVectorizable(f"vectors of {instr.dtype}")
        return dataclasses.replace(instr, lanes=lanes)

    def _check_vector_alu(self, instr: Instr) -> None:
        """Raise NotVectorizable for an op C's vectors cannot compute. A comparison of float vectors gives a
        mask (a bool vector: all bits set where true), which only a WHERE or a CAST to the compared type reads
        (relu's `(x > 0).where(x, ...)` inside a matmul keeps its vector columns)."""
        srcs = [self.instrs[s] for s in instr.srcs]
        masks = [s for s in srcs if s.dtype == dtypes.bool and s.lanes > 1]
        compared = {self.instrs[m.srcs[0]].dtype for m in masks}  # the float type each mask compared
        if instr.arg in MASK_OPS:
            fits = srcs[0].dtype in VECTOR_DTYPES
        elif instr.arg is Op.WHERE:
            cond_only = all(m is srcs[0] for m in masks)
            fits = instr.dtype in VECTOR_DTYPES and cond_only and compared <= {instr.dtype}
        elif instr.arg is Op.CAST:
            fits = len(masks) == 1 and compared == {instr.dtype}
        else:
            fits = instr.dtype in VECTOR_DTYPES and not masks and instr.arg in VECTOR_OPS + LANEWISE_OPS
        if not fits:
            raise NotVectorizable(f"{instr.arg} of a vector ({instr.dtype}, {[s.dtype for s in srcs]})")

    def loops(self, loops: list[Loop], end: bool = False) -> None:  # open them; with `end`, close them
        for loop in reversed(loops) if end else loops:
            self.emit(Instr("ENDLOOP" if end else "LOOP", None, (), loop))

    def idxs(self, reduced: bool, copy: dict[int, int]) -> list[Node]:
        """The index of each dim in the body copy `copy` (dim -> j for upcast dims); reduce dims are 0 after
        the reduce, and size-1 dims are always 0."""
        out: list[Node] = []
        for d in range(len(self.nest.full_shape)):
            if d not in self.variables or (d in self.nest.reduce_axes and not reduced):
                out.append(NumNode(0))
            elif d in self.nest.overlap:  # the last block overlaps the one before: no bounds checks
                start = MinNode(
                    self.variables[d] * self.nest.block(d), self.nest.full_shape[d] - self.nest.block(d)
                )
                out.append(start + self.offset(d, copy))
            else:
                out.append(self.variables[d] * self.nest.block(d) + self.offset(d, copy))
        return out

    def offset(self, d: int, copy: dict[int, int]) -> Node:
        """The element of dim d in its block, for body copy `copy` and this thread."""
        if self.nest.tile and d in self.nest.reduce_axes:
            return self.tile_index
        element = copy.get(d, 0)  # a number, or a lane loop's variable (_lane_loop)
        element = element if isinstance(element, Node) else NumNode(element)
        return element * self.nest.threads.get(d, 1) + self.thread_index.get(d, 0)

    def value(self, node: AstNode, reduced: bool, copy: dict[int, int]) -> int:
        """Emit `node` and its operands for one body copy; return its instruction number."""
        copy_key = _key(copy)
        for n in node.toposort(stop_at_reduce=True):  # a reduce's value is its accumulator
            if (n, copy_key) in self.emitted:
                continue
            if n in self.staged:  # element (chunk index, offset along the array's dim) of a local array
                array, d, row = self.staged[n]
                index = self.tile_index * row + self.offset(d, copy)
                result = self.emit(Instr("LOAD", n.dtype, (), (array, index, NumNode(1))))
            elif n in self.packed:  # element (reduce element, column) of its packed copy
                array, d, width = self.packed[n]
                index = self.reduce_element() * width + copy.get(d, 0)
                result = self.emit(Instr("LOAD", n.dtype, (), (array, index, NumNode(1))))
            elif n.op in (Op.LOAD, Op.CONST):
                index, valid = n.arg[1].expr_idxs(self.idxs(reduced, copy))
                if n.op is Op.CONST:  # an IOTA (arange) is its element's own index
                    iota = n.arg[0] == IOTA
                    result = self.emit(
                        Instr("INDEX" if iota else "CONST", n.dtype, (), index if iota else n.arg[0])
                    )
                    if not (valid.min == 1 and valid.max == 1):
                        result = self._masked(result, valid, n)
                else:
                    result = self.emit(Instr("LOAD", n.dtype, (), (n.arg[0], index, valid)))
            elif n.op in REDUCE:
                raise RuntimeError("reduces are emitted by linearize(), not inline")
            else:
                srcs = tuple(self.emitted[(s, copy_key)] for s in n.srcs)
                result = self.emit(Instr("ALU", n.dtype, srcs, n.op))
            self.emitted[(n, copy_key)] = result
        return self.emitted[(node, copy_key)]

    def chunk_dims(self) -> list[int]:
        """The reduce dims one chunk of a chunked reduce loops over (all of them when not chunked)."""
        dims = [d for d in self.nest.order if d in self.nest.reduce_axes]
        looped = [d for d in dims if isinstance(self.variables[d], Variable)]
        return [d for d in dims if d != looped[0]] if self.nest.chunked and looped else dims

    def reduce_element(self) -> Node:
        """The position of this iteration in the reduce (in its chunk), its dims flattened in loop order."""
        if self.nest.tile:
            return self.tile_index
        dims = self.chunk_dims()
        return sum_node(
            [
                self.variables[d] * prod(self.nest.full_shape[e] for e in dims[i + 1 :])
                for i, d in enumerate(dims)
            ]
        )

    def _masked(self, const: int, valid: Node, node: AstNode) -> int:
        """A constant seen through a padded view: the value inside the mask, 0 outside."""
        zero = self.emit(Instr("CONST", node.dtype, (), 0))
        condition = self.emit(Instr("INDEX", dtypes.bool, (), valid))
        return self.emit(Instr("ALU", node.dtype, (condition, const, zero), Op.WHERE))


def _arg_key(arg: Any) -> Any:
    """A hashable stand-in for an instruction's arg (symbolic nodes by their rendered text)."""
    if isinstance(arg, Node):
        return arg.key
    if isinstance(arg, tuple):
        return tuple(_arg_key(a) for a in arg)
    return "nan" if isinstance(arg, float) and arg != arg else (type(arg).__name__, arg)


def _key(copy: dict[int, int]) -> tuple:
    return tuple(sorted(copy.items()))


def _copies(nest: LoopNest, dims: list[int]) -> list[dict[int, int]]:
    """Every combination of body copies of the upcast dims among `dims`."""
    combos: list[dict[int, int]] = [{}]
    for d in dims:
        combos = [{**c, d: j} for c in combos for j in range(nest.upcast.get(d, 1))]
    return combos


def _vector_copies(lin: _Linearizer, copies: list[dict]) -> tuple[list[dict], dict[tuple, tuple]]:
    """Vector columns: the body copies with the column dim's taken nest.simd at a time (element j + lane
    for each j that is a multiple of simd), and for each copy's key, its vector copy's key and its lane.
    Without vector columns: the copies, and no lanes."""
    if lin.lane is None or lin.vector_dim in lin.nest.reduce_axes:
        return copies, {}
    d, width = lin.vector_dim, lin.nest.simd
    vectors = {_key(c): {**c, d: c[d] + lin.lane} for c in copies if c[d] % width == 0}
    lanes = {_key(c): (_key(vectors[_key({**c, d: c[d] - c[d] % width})]), c[d] % width) for c in copies}
    return list(vectors.values()), lanes


def _read_lanes(lin: _Linearizer, reduces: list[AstNode], lanes: dict[tuple, tuple]) -> None:
    """After the reduce, each copy's result as a scalar (vector columns): the vectors go to an array of the
    thread, read back an element at a time. (Reading a vector's element in place, v[i], made GCC keep the
    accumulators in memory through the whole reduce loop: a 1024^2 matmul took 7.3 ms, not 4.4.)"""
    _load_lanes(lin, reduces, *_spill_lanes(lin, reduces, lanes))


def _load_lanes(lin: _Linearizer, reduces: list[AstNode], arrays: dict, places: dict[tuple, int]) -> None:
    """Each copy's result read back from its element of the spilled vectors (_spill_lanes)."""
    for r in reduces:
        for key, place in places.items():
            lin.emitted[(r, key)] = lin.emit(
                Instr("LOAD", r.dtype, (), (arrays[r], NumNode(place), NumNode(1)))
            )


def _spill_lanes(
    lin: _Linearizer, reduces: list[AstNode], lanes: dict[tuple, tuple]
) -> tuple[dict[AstNode, str], dict[tuple, int]]:
    """The vector results of each reduce stored, a vector at a time, to an array of the thread: (each
    reduce's array, each copy's element in it). The vectors along the vector dim lie next to each other, so
    that a copy's element there moves by one along that dim (_epilogue_loop reads the array in place)."""
    first = {vector: dict(key) for key, (vector, lane) in lanes.items() if lane == 0}
    d = lin.vector_dim
    vectors = sorted(
        first, key=lambda v: ([e for dim, e in sorted(first[v].items()) if dim != d], first[v][d])
    )
    width, arrays = lin.nest.simd, {}
    for i, r in enumerate(reduces):
        arrays[r] = array = f"columns{i}"
        lin.emit(Instr("PRIVATE", r.dtype, (), (array, len(vectors) * width)))
        for j, vector in enumerate(vectors):
            place = (array, NumNode(j * width) + lin.lane, NumNode(1))
            lin.emit(Instr("STORE", r.dtype, (lin.emitted[(r, vector)],), place))
        lin.emit(Instr("FENCE", None, (), array))
    return arrays, {key: vectors.index(vector) * width + lane for key, (vector, lane) in lanes.items()}


def _store(lin: _Linearizer, store: AstNode, copies: list[dict]) -> None:
    """The output of each body copy: what follows the reduce, and the store."""
    for g in copies:
        value = lin.value(store.srcs[0], reduced=False, copy=g)
        index, valid = store.arg[1].expr_idxs(lin.idxs(reduced=False, copy=g))
        if lin.nest.grouped:  # every thread of the group holds the result; the first one stores it
            valid = and_nodes([valid, lt(lin.local_index, 1)])
        lin.emit(Instr("STORE", store.dtype, (value,), (store.arg[0], index, valid)))


def _as_vectors(lin: _Linearizer, emit: Callable[[], None]) -> bool:
    """Vector columns: run `emit` (what follows a reduce: a bias, an update `w - 0.01 * dw`, on the vector
    copies); where it meets what vectors cannot compute, put the linearizer's state back and return False
    (the caller then reads each lane back as a scalar and follows one output at a time, ~5 lines of C each:
    most of the source, and of the compile time, of a kernel with a wide tile)."""
    instrs, scopes, emitted = len(lin.instrs), [dict(s) for s in lin.scopes], dict(lin.emitted)
    try:
        emit()
        return True
    except NotVectorizable:
        del lin.instrs[instrs:]
        lin.scopes, lin.emitted = scopes, emitted
        return False


def _stored_along_lane(lin: _Linearizer, store: AstNode, copies: list[dict]) -> bool:
    """Vector columns: is each vector copy's output contiguous, its mask the same for every lane?"""
    return all(_along_lane(lin, *store.arg[1].expr_idxs(lin.idxs(reduced=False, copy=g))) for g in copies)


def _linearize(ast: AstNode, nest: LoopNest, name: str) -> LinearKernel:
    """Emit the instructions of `ast` in the loop nest `nest` (see the module docstring)."""
    lin = _Linearizer(nest)
    looped = [(lin.variables[d], d) for d in nest.order if isinstance(lin.variables[d], Variable)]
    loops = [Loop(v, nest.steps(d), d in nest.reduce_axes, d in nest.parallel_dims) for v, d in looped]
    global_loops = [loop for loop in loops if not loop.reduce]
    reduce_loops = [loop for loop in loops if loop.reduce]
    # a packed operand's columns are copied innermost: consecutive statements then walk the columns (the
    # order the compiler's SLP vectorizer joins), though the column loop runs outside the rows
    global_dims = [d for d in nest.order if d not in nest.reduce_axes and d not in nest.packed.values()]
    global_copies = _copies(nest, global_dims + [d for d in nest.order if d in nest.packed.values()])
    reduce_copies = _copies(nest, [d for d in nest.order if d in nest.reduce_axes])
    if nest.scatter:
        return _scatter(lin, ast, loops, name)
    if nest.chunked:
        return _chunked(lin, ast, looped, loops, global_copies, name)
    sum_copies, lanes = _vector_copies(lin, global_copies)  # the reduce's copies (vector columns)
    outer, inner = _split_at_pack(nest, looped, loops)
    lin.loops(outer)
    if nest.packed:
        _pack(lin, ast)
    lin.loops(inner)
    reduces = list(dict.fromkeys(n for n in ast.toposort() if n.op in REDUCE))
    accumulators = {}  # (reduce, global copy, reduce copy) -> ACC: each body copy accumulates on its own
    for r in reduces if not (nest.lane_loop and all(dtypes.is_float(r.dtype) for r in reduces)) else ():
        initial = 0 if r.op is Op.REDUCE_SUM else "lowest"
        for g in sum_copies:
            for rc in reduce_copies:
                acc = Instr("ACC", r.dtype, (), (r.op, initial), lin.nest.simd if lanes else 1)
                accumulators[(r, _key(g), _key(rc))] = lin.emit(acc)
    if reduces and nest.lane_loop and all(dtypes.is_float(r.dtype) for r in reduces):
        _lane_loop(lin, reduces, reduce_loops, global_copies)
    elif reduces:
        for loop in reduce_loops:
            d = next(d for v, d in looped if v is loop.var)
            if d in nest.picks:  # the loop runs at e only (none when e is out of range)
                loop = Loop(loop.var, loop.size, True, pick=lin.value(nest.picks[d], reduced=False, copy={}))
            lin.emit(Instr("LOOP", None, (), loop))
        if nest.tile:
            _stage(lin, reduces)
        for r in reduces:
            for g in sum_copies:
                for rc in reduce_copies:
                    value = lin.value(r.srcs[0], reduced=True, copy={**g, **rc})
                    acc = accumulators[(r, _key(g), _key(rc))]
                    lin.emit(Instr("UPDATE", r.dtype, (acc, value), r.op))
        if nest.tile:  # the chunk's loop ends; nobody overwrites the arrays until every thread is done
            lin.emit(Instr("ENDLOOP", None, (), Loop(lin.tile_index, nest.tile, reduce=True)))
            lin.emit(Instr("BARRIER", None))
        lin.loops(reduce_loops, end=True)
        if nest.grouped:
            _combine_group(lin, accumulators)
        for r in reduces:  # after the loop, the reduce copies' accumulators combine into one value
            for g in sum_copies:
                parts = [accumulators[(r, _key(g), _key(rc))] for rc in reduce_copies]
                lin.emitted[(r, _key(g))] = _pairwise(lin, r, parts)
    store = ast
    copy_dims = global_dims + [d for d in nest.order if d in nest.packed.values()]
    upcast_dims = [d for d in copy_dims if nest.upcast.get(d, 1) > 1]
    epilogue = store.srcs[0].op not in REDUCE  # more than the sums stored as they are
    in_a_loop = (
        epilogue and len(upcast_dims) > 1 and len(global_copies) >= EPILOGUE_LOOP_COPIES and not nest.threads
    )
    if reduces and in_a_loop and getenv("EPILOGUE_LOOP", 1):
        _epilogue_loop(lin, store, reduces, global_copies, copy_dims, lanes)
    elif not (
        lanes
        and _stored_along_lane(lin, store, sum_copies)
        and _as_vectors(lin, lambda: _store(lin, store, sum_copies))  # what follows the sums too
    ):
        if lanes:
            _read_lanes(lin, reduces, lanes)
        _store(lin, store, global_copies)
    lin.loops(global_loops, end=True)
    return _kernel(lin, ast, name)


def _epilogue_loop(
    lin: _Linearizer, store: AstNode, reduces: list[AstNode], copies: list, dims: list[int], lanes: dict
):
    """What follows the reduce and the store, for a register tile of many outputs, as a loop over the tile's
    rows, each row's columns (the last upcast dim) unrolled (EPILOGUE_LOOP=0: all unrolled). The reduce
    results go to an array of the thread first (_tile_results). With vector columns along the row, a row's
    columns are computed a vector at a time where the ops allow (_as_vectors). Unrolled, the epilogue of a
    12x32 tile was most of a 100 KB kernel and of its 0.55 s compile; it runs once per tile, after the
    reduce loop."""
    nest, size = lin.nest, len(copies)
    *row_dims, column = [d for d in dims if nest.upcast.get(d, 1) > 1]  # _copies: the last varies fastest
    width = nest.upcast[column]
    arrays, spacing, offsets = _tile_results(lin, reduces, copies, lanes, width)
    loop = Loop(Variable("row", 0, size // width - 1), size // width, reduce=False)
    lin.loops([loop])
    row, stride = {}, size // width
    for d in row_dims:
        stride //= nest.upcast[d]
        row[d] = (loop.var // stride) % nest.upcast[d]

    def columns(step: int) -> None:  # the row's outputs, `step` columns at a time (a vector's lanes)
        for j in range(0, width, step):
            lane = lin.lane if step > 1 else 0
            copy = {**row, column: j + lane}
            for r in reduces:
                place = (arrays[r], loop.var * spacing + offsets[j] + lane, NumNode(1))
                lin.emitted[(r, _key(copy))] = lin.emit(Instr("LOAD", r.dtype, (), place))
            _store(lin, store, [copy])

    simd = nest.simd
    in_vectors = lin.lane is not None and column == lin.vector_dim and width % simd == 0
    in_vectors = in_vectors and all(offsets[j] == offsets[j - j % simd] + j % simd for j in range(width))
    if not (in_vectors and _as_vectors(lin, lambda: columns(simd))):
        columns(1)
    lin.loops([loop], end=True)
    lin.epilogue_looped = True


def _tile_results(
    lin: _Linearizer, reduces: list[AstNode], copies: list, lanes: dict, width: int
) -> tuple[dict[AstNode, str], int, list[int]]:
    """Where _epilogue_loop reads the reduce results of a tile whose rows have `width` copies each: (each
    reduce's array of the thread, spacing, offsets), copy (row, j) at row * spacing + offsets[j]. Vector
    copies in the copies' order are stored as they are; vectors along another dim (the rows) go to an array
    that is read in place where its rows are evenly spaced; else each copy is read back and stored alone."""
    size, keys = len(copies), [_key(g) for g in copies]
    first = {lanes[k][0]: i for i, k in enumerate(keys) if k in lanes and lanes[k][1] == 0}
    vectors = bool(lanes) and all(first[lanes[k][0]] + lanes[k][1] == i for i, k in enumerate(keys))
    if lanes and not vectors:  # the columns are not the copies' last dim
        arrays, places = _spill_lanes(lin, reduces, lanes)
        spaced = [places[k] for k in keys]
        spacing, offsets = (spaced[width] - spaced[0] if size > width else 0), spaced[:width]
        if all(p == offsets[i % width] + i // width * spacing for i, p in enumerate(spaced)):
            return arrays, spacing, offsets
        _load_lanes(lin, reduces, arrays, {k: places[k] for k in keys})  # in the copies' order
    arrays = {}
    for r in reduces:
        arrays[r] = array = f"sums{len(arrays)}"
        lin.emit(Instr("PRIVATE", r.dtype, (), (array, size)))
        for i, key in enumerate(keys):
            if not vectors:
                lin.emit(Instr("STORE", r.dtype, (lin.emitted[(r, key)],), (array, NumNode(i), NumNode(1))))
            elif lanes[key][1] == 0:  # a vector copy's lanes go to i, i + 1, ...
                value = lin.emitted[(r, lanes[key][0])]
                lin.emit(Instr("STORE", r.dtype, (value,), (array, NumNode(i) + lin.lane, NumNode(1))))
        lin.emit(
            Instr("FENCE", None, (), array)
        )  # else GCC leaves the sums scalar (conv, AVX2: 5.7 -> 10.6 ms)
    return arrays, width, list(range(width))


def _lane_loop(lin: _Linearizer, reduces: list[AstNode], reduce_loops: list[Loop], global_copies) -> None:
    """The reduce's lanes (nest.lane_loop: the reduce dim upcast by `width`, no other upcast) as a loop
    inside the reduce loop, each lane's running value in a thread-private array, combined after it. GCC's
    loop vectorizer vectorizes the lane loop whole; its SLP vectorizer, given the lanes unrolled, left
    softmax's exp2 partly scalar (the sum of exp over 4096^2: 6.2 -> 2.3 ms). With vector columns, the
    running values are vectors instead (_vector_lanes)."""
    if lin.lane is not None:
        return _vector_lanes(lin, reduces, reduce_loops, global_copies)
    (d,) = lin.nest.upcast
    width = lin.nest.upcast[d]
    lane = Loop(Variable("lane", 0, width - 1), width, reduce=False)
    arrays = {}
    for r in reduces:
        for g in global_copies:
            arrays[(r, _key(g))] = name = f"lanes{len(arrays)}"
            lin.emit(Instr("PRIVATE", r.dtype, (), (name, width)))
            lin.loops([lane])
            start = lin.emit(Instr("CONST", r.dtype, (), 0.0 if r.op is Op.REDUCE_SUM else -math.inf))
            lin.emit(Instr("STORE", r.dtype, (start,), (name, lane.var, NumNode(1))))
            lin.loops([lane], end=True)
    lin.loops(reduce_loops + [lane])
    for r in reduces:
        combine = Op.ADD if r.op is Op.REDUCE_SUM else Op.MAX
        for g in global_copies:
            name = arrays[(r, _key(g))]
            value = lin.value(r.srcs[0], reduced=True, copy={**g, d: lane.var})
            running = lin.emit(Instr("LOAD", r.dtype, (), (name, lane.var, NumNode(1))))
            total = lin.emit(Instr("ALU", r.dtype, (running, value), combine))
            lin.emit(Instr("STORE", r.dtype, (total,), (name, lane.var, NumNode(1))))
    lin.loops(reduce_loops + [lane], end=True)
    for r in reduces:  # the lanes combine pairwise, after the loop
        for g in global_copies:
            lin.emitted[(r, _key(g))] = _combine_lanes(lin, r, arrays[(r, _key(g))], width)


def _vector_lanes(lin: _Linearizer, reduces: list[AstNode], reduce_loops: list[Loop], global_copies) -> None:
    """A row sum's lanes (_lane_loop) as vectors of nest.simd lanes that stay in registers: the running
    values in an array, loaded and stored every step, made a max over rows of 4096 latency-bound (4096^2:
    1.7 -> 1.1 ms). After the loop the vectors combine by halves while they pair up, then go to an array
    whose lanes combine as in _lane_loop (the same tree, the same values)."""
    (d,) = lin.nest.upcast
    width, simd = lin.nest.upcast[d], lin.nest.simd
    copies = {
        (i, j): {**g, d: j + lin.lane} for i, g in enumerate(global_copies) for j in range(0, width, simd)
    }
    start = {r: (r.op, 0 if r.op is Op.REDUCE_SUM else "lowest") for r in reduces}
    accs = {(r, k): lin.emit(Instr("ACC", r.dtype, (), start[r], simd)) for r in reduces for k in copies}
    lin.loops(reduce_loops)
    for r in reduces:
        for k, c in copies.items():
            value = lin.value(r.srcs[0], reduced=True, copy=c)
            lin.emit(Instr("UPDATE", r.dtype, (accs[(r, k)], value), r.op))
    lin.loops(reduce_loops, end=True)
    for position, r in enumerate(reduces):
        for i, g in enumerate(global_copies):
            vectors = [accs[(r, (i, j))] for j in range(0, width, simd)]
            while len(vectors) % 2 == 0:  # _pairwise's first levels, a whole vector at a time
                vectors = _halve(lin, r, vectors, simd)
            array = f"lanes{position * len(global_copies) + i}"
            lin.emit(Instr("PRIVATE", r.dtype, (), (array, len(vectors) * simd)))
            for j, vector in enumerate(vectors):
                place = (array, NumNode(j * simd) + lin.lane, NumNode(1))
                lin.emit(Instr("STORE", r.dtype, (vector,), place))
            lin.emit(Instr("FENCE", None, (), array))
            lin.emitted[(r, _key(g))] = _combine_lanes(lin, r, array, len(vectors) * simd)


def _pairwise(lin: _Linearizer, r: AstNode, parts: list[int]) -> int:
    """The values `parts` of reduce r combined pairwise: a tree of adds (or maxes), not a serial chain.
    Part i goes with part i + half, so that where the parts are the lanes of vectors each level of the tree
    is one vector operation (_vector_lanes: a max over rows of 256 on a Xeon 0.71 -> 0.54 ms)."""
    while len(parts) > 1:
        parts = _halve(lin, r, parts)
    return parts[0]


def _halve(lin: _Linearizer, r: AstNode, parts: list[int], lanes: int = 1) -> list[int]:
    """One level of _pairwise's tree: part i combined with part i + half (values of `lanes` elements each);
    an odd last part is carried up as it is."""
    combine = Op.ADD if r.op is Op.REDUCE_SUM else Op.MAX
    half = len(parts) // 2
    pairs = zip(parts[:half], parts[half : 2 * half])
    return [lin.emit(Instr("ALU", r.dtype, pair, combine, lanes)) for pair in pairs] + parts[2 * half :]


def _combine_lanes(lin: _Linearizer, r: AstNode, array: str, width: int) -> int:
    """A row sum's lanes, the running values in `array`, combined pairwise after the loop (a serial chain
    of 32 adds took a third of a 1024-long row's time: x.mean() of 4096^2 1.35 -> 1.1 ms)."""
    lanes = [lin.emit(Instr("LOAD", r.dtype, (), (array, NumNode(i), NumNode(1)))) for i in range(width)]
    return _pairwise(lin, r, lanes)


def _split_at_pack(nest: LoopNest, looped: list, loops: list[Loop]) -> tuple[list[Loop], list[Loop]]:
    """The global loops up to a packed operand's column dim (the copy goes inside them), and the rest;
    without a packed operand, none and all."""
    packed_at = max((nest.order.index(d) for d in nest.packed.values()), default=-1)
    globals_ = [(d, loop) for (_, d), loop in zip(looped, loops) if not loop.reduce]
    outer = [loop for d, loop in globals_ if nest.order.index(d) <= packed_at]
    return outer, [loop for d, loop in globals_ if nest.order.index(d) > packed_at]


def _kernel(lin: _Linearizer, ast: AstNode, name: str) -> LinearKernel:
    buffers = {n.arg[0]: (n.arg[0], n.dtype, False) for n in ast.toposort() if n.op is Op.LOAD}
    buffers[ast.arg[0]] = (ast.arg[0], ast.dtype, True)
    return LinearKernel(name, sorted(buffers.values()), lin.instrs, lin.nest, lin.epilogue_looped)


def _scatter(lin: _Linearizer, store: AstNode, loops: list[Loop], name: str) -> LinearKernel:
    """A sum stored as it is, whose terms are 0 unless each scatter dim's index equals its e (opt.pick):
    the other global loops outside (each of their iterations owns its outputs), the output zeroed along the
    scatter dims, then in the reduce loops each term added at the one place it goes."""
    scattered = {lin.variables[d].name: e for d, e in lin.nest.scatter.items()}
    outer = [loop for loop in loops if not loop.reduce and loop.var.name not in scattered]
    inner = [loop for loop in loops if loop.var.name in scattered]
    reduce_loops = [loop for loop in loops if loop.reduce]
    place, dtype = (store.arg[0], *store.arg[1].expr_idxs(lin.idxs(reduced=False, copy={}))), store.dtype
    lin.loops(outer + inner)
    lin.emit(Instr("STORE", dtype, (lin.emit(Instr("CONST", dtype, (), 0)),), place))
    lin.loops(inner, end=True)
    lin.loops(reduce_loops)
    picked = [Loop(v.var, v.size, True, pick=lin.value(scattered[v.var.name], True, {})) for v in inner]
    lin.loops(picked)
    term, old = lin.value(store.srcs[0].srcs[0], True, {}), lin.emit(Instr("LOAD", dtype, (), place))
    lin.emit(Instr("STORE", dtype, (lin.emit(Instr("ALU", dtype, (old, term), Op.ADD)),), place))
    lin.loops(outer + reduce_loops + picked, end=True)
    return _kernel(lin, store, name)


def _pack(lin: _Linearizer, ast: AstNode) -> None:
    """Copy each packed buffer's columns of this step, for the whole reduce, into an array of the thread
    (opt.pack): [reduce element][column], zeros where the view is padded. The global loops still to open
    are dims the operand is broadcast along, so they index it at 0."""
    nest = lin.nest
    reduce_dims = lin.chunk_dims()  # (one chunk's, when chunked: _chunked)
    reduce_loops = [Loop(lin.variables[d], nest.steps(d), True) for d in reduce_dims if nest.steps(d) > 1]
    if nest.tile:  # this chunk of the one reduce dim only (_chunked)
        reduce_loops = [Loop(lin.tile_index, nest.tile, True)]
    in_parallel = any(i.op == "LOOP" and i.arg.parallel for i in lin.instrs)  # (the loops around the copy)
    if nest.chunked and nest.parallel_dims and reduce_loops and not in_parallel:
        # a chunk's copy outside the parallel loop is shared by the threads that sum it: they make it
        # together (conv's weight gradient, 32 -> 32 channels: 2.2 -> 1.9 ms)
        reduce_loops[0] = dataclasses.replace(reduce_loops[0], parallel=True)
    elements = nest.tile or prod(nest.full_shape[d] for d in reduce_dims)
    opened = {loop.arg.var.name for loop in (i for i in lin.instrs if i.op == "LOOP")}
    for buffer, column in nest.packed.items():
        nodes = [n for n in ast.toposort() if n.op is Op.LOAD and n.arg[0] == buffer]
        width, dtype = nest.upcast[column], nodes[0].dtype
        array = f"pack{buffer}"
        lin.emit(Instr("PRIVATE", dtype, (), (array, elements * width)))
        lin.loops(reduce_loops)
        element = lin.reduce_element()

        def source(j: int | Node) -> tuple[Node, Node]:  # (index, valid) of the column's element j
            idxs = lin.idxs(reduced=True, copy={column: j})
            for d, variable in lin.variables.items():
                if (
                    d not in nest.reduce_axes
                    and isinstance(variable, Variable)
                    and variable.name not in opened
                ):
                    idxs[d] = NumNode(0)
            return nodes[0].arg[1].expr_idxs(idxs)

        # vector columns: a vector at a time where the buffer is contiguous along the columns
        vectors = lin.lane is not None and width % lin.nest.simd == 0 and _along_lane(lin, *source(lin.lane))
        step = lin.nest.simd if vectors else 1
        for j in range(0, width, step):
            j = j + lin.lane if step > 1 else j
            value = lin.emit(Instr("LOAD", dtype, (), (buffer, *source(j))))
            lin.emit(Instr("STORE", dtype, (value,), (array, element * width + j, NumNode(1))))
        lin.loops(reduce_loops, end=True)
        lin.packed.update({n: (array, column, width) for n in nodes})


def _along_lane(lin: _Linearizer, index: Node, valid: Node) -> bool:
    """Does an access at `index` (valid where `valid`) move one element per lane, its mask fixed?"""
    name = lin.lane.name
    return affine_coefficients(index).get(name) == 1 and name not in variables(valid)


def _chunked(lin: _Linearizer, ast: AstNode, looped: list, loops: list[Loop], copies: list, name: str):
    """A packed reduce too long to pack whole (opt.pack), on a CPU: per column tile, the reduce runs in
    chunks; each chunk is packed, then every tile of rows sums it and adds the sum to its outputs' place
    in an array of the thread ("partial"). After the last chunk, the rows are swept once more to apply
    what follows the reduce and store. (No overlapping row tiles: a row would be added twice.)"""
    nest = lin.nest
    (r,) = [n for n in ast.toposort() if n.op in REDUCE]
    column = next(iter(nest.packed.values()))
    packed_at, width = nest.order.index(column), nest.upcast[column]
    outer, inner = _split_at_pack(nest, looped, loops)
    first, *rest = [loop for loop in loops if loop.reduce]  # the chunks, and the loops of one chunk
    chunks = Loop(first.var, first.size, reduce=False)  # its body ends the sums (cstyle's accumulator spill)
    inside = [Loop(lin.tile_index, nest.tile, reduce=True)] if nest.tile else rest
    inner_dims = [d for d in nest.order if d not in nest.reduce_axes and nest.order.index(d) > packed_at]

    def slot(copy: dict) -> Node:  # the place of body copy `copy`'s output in the partial sums
        idxs = lin.idxs(reduced=False, copy=copy)
        sizes = [nest.full_shape[d] for d in inner_dims]
        flat = sum_node([idxs[d] * prod(sizes[i + 1 :]) for i, d in enumerate(inner_dims)])
        return flat * width + copy.get(column, 0)

    lin.loops(outer)
    lin.emit(Instr("PRIVATE", r.dtype, (), ("partial", prod(nest.full_shape[d] for d in inner_dims) * width)))
    lin.emit(Instr("LOOP", None, (), chunks))
    _pack(lin, ast)
    lin.loops(inner)
    sums, lanes = _vector_copies(lin, copies)  # (vector columns: a vector of the columns each)
    accs = {_key(g): lin.emit(Instr("ACC", r.dtype, (), (r.op, 0), nest.simd if lanes else 1)) for g in sums}
    lin.loops(inside)
    for g in sums:
        value = lin.value(r.srcs[0], reduced=True, copy=g)
        lin.emit(Instr("UPDATE", r.dtype, (accs[_key(g)], value), r.op))
    lin.loops(inside, end=True)
    for g in sums:  # the chunks before this one are in the array (none before the first)
        before = lin.emit(Instr("LOAD", r.dtype, (), ("partial", slot(g), ge(chunks.var, 1))))
        total = lin.emit(Instr("ALU", r.dtype, (accs[_key(g)], before), Op.ADD))
        lin.emit(Instr("STORE", r.dtype, (total,), ("partial", slot(g), NumNode(1))))
    lin.loops(inner, end=True)
    lin.emit(Instr("ENDLOOP", None, (), chunks))
    lin.loops(inner)
    for g in copies:
        lin.emitted[(r, _key(g))] = lin.emit(Instr("LOAD", r.dtype, (), ("partial", slot(g), NumNode(1))))
        value = lin.value(ast.srcs[0], reduced=False, copy=g)
        index, valid = ast.arg[1].expr_idxs(lin.idxs(reduced=False, copy=g))
        lin.emit(Instr("STORE", ast.dtype, (value,), (ast.arg[0], index, valid)))
    lin.loops(outer + inner, end=True)
    return _kernel(lin, ast, name)


def _stage(lin: _Linearizer, reduces: list[AstNode]) -> None:
    """At the start of a chunk (nest.tile), the work-group copies it, of every load under the reduce that
    moves along the reduce dim and along one thread dim only, into a local array [tile][block of that dim]
    (a row longer by one where the copy runs along the reduce: no bank conflicts), neighbouring threads
    on neighbouring addresses; then waits for all, and opens the chunk's loop (over `tidx`)."""
    nest, size = lin.nest, lin.nest.group_size
    k = next(d for d in nest.order if d in nest.reduce_axes)
    for node in (n for r in reduces for n in r.srcs[0].toposort(stop_at_reduce=True) if n.op is Op.LOAD):
        names = set().union(*map(variables, node.arg[1].expr_node("dim")))
        along = [d for d in nest.threads if f"dim{d}" in names]
        if len(along) != 1 or f"dim{k}" not in names or node in lin.staged:
            continue
        d, width, k_fast = along[0], lin.nest.block(along[0]), node.arg[1].real_strides()[k] == 1
        lin.staged[node] = (array := f"tile{len(lin.staged)}", d, width + k_fast)
        lin.emit(Instr("LOCAL", node.dtype, (), (array, nest.tile * (width + k_fast))))
        for share in range(-(-width * nest.tile // size)):
            element = lin.local_index + share * size
            row, column = (
                (element % nest.tile, element // nest.tile) if k_fast else (element // width, element % width)
            )
            idxs = lin.idxs(reduced=True, copy={})
            idxs[d], idxs[k] = lin.variables[d] * width + column, lin.variables[k] * nest.tile + row
            index, valid = node.arg[1].expr_idxs(idxs)
            inside = lt(element, width * nest.tile)  # the last share may reach past the tile
            value = lin.emit(Instr("LOAD", node.dtype, (), (node.arg[0], index, and_nodes([valid, inside]))))
            lin.emit(Instr("STORE", node.dtype, (value,), (array, row * (width + k_fast) + column, inside)))
    lin.emit(Instr("BARRIER", None))
    lin.emit(Instr("LOOP", None, (), Loop(lin.tile_index, nest.tile, reduce=True)))


def _combine_group(lin: _Linearizer, accumulators: dict) -> None:
    """Each thread's partial result goes to a local array; after a barrier, every thread reduces the array
    (the same value in all of them, so no second barrier is needed) into the accumulator read after it."""
    size = lin.nest.group_size
    for key, partial in accumulators.items():
        lin.emit(Instr("LOCAL", key[0].dtype, (), (f"partial{partial}", size)))
        lin.emit(Instr("STORE", key[0].dtype, (partial,), (f"partial{partial}", lin.local_index, NumNode(1))))
    lin.emit(Instr("BARRIER", None))
    for key, partial in list(accumulators.items()):
        reduce = key[0]
        total = lin.emit(Instr("ACC", reduce.dtype, (), lin.instrs[partial].arg))  # same op, same start
        loop = Loop(Variable("lane", 0, size - 1), size, reduce=True)
        lin.emit(Instr("LOOP", None, (), loop))
        value = lin.emit(Instr("LOAD", reduce.dtype, (), (f"partial{partial}", loop.var, NumNode(1))))
        lin.emit(Instr("UPDATE", reduce.dtype, (total, value), reduce.op))
        lin.emit(Instr("ENDLOOP", None, (), loop))
        accumulators[key] = total


def vectorize(instrs: list[Instr], width: int) -> list[Instr]:
    """Every `width` float32 LOADs (or STOREs) of one buffer in one block, at consecutive indices starting
    at a multiple of `width`, become one vector access: a VLOAD where the first of them was, read through
    LANEs, or a VSTORE where the last of them was. A GPU then moves 16 bytes per instruction, not 4."""
    lanes = {p: (group, j) for group in _vector_groups(instrs, width) for j, p in enumerate(group)}
    out: list[Instr] = []
    where: dict[int, int] = {}  # old position -> new position
    vectors: dict[tuple[int, ...], int] = {}  # a load group -> its VLOAD
    for position, instr in enumerate(instrs):
        group, lane = lanes.get(position, ((), 0))
        if not group:
            out.append(Instr(instr.op, instr.dtype, tuple(where[s] for s in instr.srcs), instr.arg))
            where[position] = len(out) - 1
        elif instr.op == "LOAD":
            if group not in vectors:
                buffer, index, _ = instrs[group[0]].arg
                out.append(Instr("VLOAD", instr.dtype, (), (buffer, index, width)))
                vectors[group] = len(out) - 1
            out.append(Instr("LANE", instr.dtype, (vectors[group],), lane))
            where[position] = len(out) - 1
        elif position == max(group):  # a STORE group, written once all of its values exist
            values = tuple(where[instrs[p].srcs[0]] for p in group)
            out.append(Instr("VSTORE", instr.dtype, values, instrs[group[0]].arg[:2]))
    return out


def _vector_groups(instrs: list[Instr], width: int) -> list[tuple[int, ...]]:
    """Positions of the accesses that `vectorize` joins, each group in element order."""
    blocks: dict[tuple, dict[str, int]] = {}  # (block, op, buffer) -> {index: position}
    block = 0
    for position, instr in enumerate(instrs):
        block += instr.op in ("LOOP", "ENDLOOP", "BARRIER")
        if instr.op in ("LOAD", "STORE") and instr.dtype == dtypes.float32 and isinstance(instr.arg[0], int):
            if instr.arg[2].min == 1:  # never masked
                blocks.setdefault((block, instr.op, instr.arg[0]), {})[instr.arg[1].key] = position
    groups = []
    for accesses in blocks.values():
        for position in accesses.values():
            index = instrs[position].arg[1]
            members = [accesses.get((index + j).key) for j in range(width)]
            if (index % width).max == 0 and None not in members:
                groups.append(tuple(members))
    return groups


def kernel_name(nest: LoopNest) -> str:
    """A readable name: r_ for kernels with a reduce, E_ otherwise, then the full shape."""
    prefix = "r" if nest.reduce_axes else "E"
    return f"{prefix}_" + "_".join(str(s) for s in nest.full_shape) if nest.full_shape else f"{prefix}_scalar"


def linearize(ast: AstNode, nest: LoopNest) -> LinearKernel:
    """Stage 3 of codegen: the kernel's instructions in the (optimized) loop nest, vector accesses joined
    where the nest asks for them. DEBUG=3 prints them. Vector columns (nest.simd) fall back to scalars where
    the reduce holds what a vector cannot compute."""
    try:
        kernel = _linearize(ast, nest, kernel_name(nest))
    except NotVectorizable as reason:
        if getenv("DEBUG") >= 3:
            print(f"--- {kernel_name(nest)}: scalar columns ({reason}) ---")
        kernel = _linearize(ast, dataclasses.replace(nest, simd=0), kernel_name(nest))
    if nest.vector_width:
        kernel.instrs = vectorize(kernel.instrs, nest.vector_width)
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
            pick = f" at {arg.pick} only" if arg.pick is not None else ""
            arg = f"{arg.var.name} < {arg.size}{' reduce' * arg.reduce}{' parallel' * arg.parallel}{pick}"
        elif instr.op in ("LOAD", "STORE"):  # a kernel argument (data1) or a local array (tile0)
            buffer = f"data{arg[0]}" if isinstance(arg[0], int) else arg[0]
            arg = f"{buffer}[{arg[1].render()}]" + ("" if arg[2].min == 1 else f" if {arg[2].render()}")
        elif instr.op in ("VLOAD", "VSTORE"):
            arg = f"data{arg[0]}[{arg[1].render()}...] x{len(instr.srcs) or arg[2]}"
        elif instr.op == "INDEX":
            arg = arg.render()
        dtype = instr.dtype.name if instr.dtype is not None else ""
        dtype += f"x{instr.lanes}" if instr.lanes > 1 else ""
        lines.append(f"{position:4d} {'  ' * depth}{instr.op:7s} {dtype:8s} {list(instr.srcs) or ''} {arg}")
        depth += instr.op == "LOOP"
    return "\n".join(lines)
