"""Lowering, codegen's first stage: a kernel AST becomes its plain loop nest.

In: a kernel AST (ops.AstNode tree rooted at STORE, from engine/schedule.py). Out: a `LoopNest`: the
kernel's full shape, which dims are global and which reduce, and the loop order. `codegen/opt.py` then
rewrites the nest (tiling, packing, threads); `codegen/linearize.py` turns it into instructions.

A kernel has one loop nest. Its *full shape* is the shape its reduce reads (or its output shape when it
has no reduce); every dimension is either a global dimension (each iteration writes its own output) or a
reduce dimension (iterations accumulate into one output). Size-1 dimensions get no loop at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minigrad.helpers import prod
from minigrad.ops import REDUCE, AstNode, Op


@dataclass
class LoopNest:
    """The loop structure of a kernel before linearizing: which dims loop, in which order, and how.

    upcast: dim -> factor f. The dim's loop runs s/f times and its body is repeated f times with the index
    `var*f + j`, j = 0..f-1: register tiling for global dims; for reduce dims, f accumulators that each
    sum every f-th element and are combined after the loop (independent adds, vectorizable loads).
    threads (GPUs): dim -> t. t threads of a work-group share the dim. In a global dim, thread l of the group
    takes elements `var*t*f + j*t + l` (neighbouring threads on neighbouring elements); in a reduce dim it
    sums every t-th element and the partial sums meet in local memory after the loop (opt.group).
    tile: > 0, the reduce dim runs in chunks of `tile` elements. On a GPU, before each chunk the work-group
    copies it, of every load broadcast along one of its two thread dims, into local memory (opt.tile). On
    a CPU, each chunk is packed and swept by the rows in turn, the sums kept in an array (opt.pack).
    packed (CPUs): buffers whose loads read a copy made inside the column dim's loop, before the other
    global loops: [reduce elements][columns], contiguous (opt.pack)."""

    full_shape: tuple[int, ...]
    reduce_axes: tuple[int, ...]
    order: list[int]  # dims that get a loop (size > 1), outermost first; reduce dims after global ones
    parallel_dims: set[int] = field(default_factory=set)
    upcast: dict[int, int] = field(default_factory=dict)
    threads: dict[int, int] = field(default_factory=dict)
    tile: int = 0
    vector_width: int = 0  # > 0: consecutive float loads and stores become vector accesses (`vectorize`)
    picks: dict[int, AstNode] = field(default_factory=dict)  # reduce dim -> the index it runs at (opt.pick)
    scatter: dict[int, AstNode] = field(default_factory=dict)  # global dim -> where each term goes (opt.pick)
    packed: dict[int, int] = field(default_factory=dict)  # buffer -> its column dim: copied first (opt.pack)
    overlap: set[int] = field(default_factory=set)  # upcast dims whose last block starts at size - factor
    columns: int | None = None  # an outer product's column dim (opt.upcast), which opt.pack packs along
    chunked: bool = False  # the reduce runs in chunks (tile > 0: of one dim; else one step of the first)
    lane_loop: bool = False  # the reduce's lanes (its one upcast) loop over an array of running values
    simd: int = 0  # > 0 (C): the vector dim's copies go `simd` at a time, as one vector value (opt.simd)

    @property
    def vector_dim(self) -> int | None:
        """The dim whose copies opt.simd makes vectors: a row sum's lanes, else an outer product's columns."""
        return next(iter(self.upcast)) if self.lane_loop else self.columns

    @property
    def group_size(self) -> int:
        return prod(self.threads.values())

    @property
    def grouped(self) -> bool:  # do the threads of a work-group share a reduce (opt.group)?
        return any(d in self.reduce_axes for d in self.threads)

    def block(self, d: int) -> int:
        """How many elements of dim d one step of its loop covers (upcast copies, a work-group's threads,
        a tiled chunk)."""
        chunk = self.tile if self.tile and d in self.reduce_axes else 1
        return self.upcast.get(d, 1) * self.threads.get(d, 1) * chunk

    def steps(self, d: int) -> int:
        """How many times dim d's loop runs (an overlap dim: once more for the rest, ending at the end)."""
        return (
            -(-self.full_shape[d] // self.block(d))
            if d in self.overlap
            else self.full_shape[d] // self.block(d)
        )


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


def lower(ast: AstNode) -> LoopNest:
    """Stage 1 of codegen: the kernel's unoptimized loop nest, global dims in order, then reduce dims."""
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
