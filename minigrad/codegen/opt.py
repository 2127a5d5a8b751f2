"""Kernel optimizations, as rewrites of a kernel's loop nest. NOOPT=1 turns every one of them off.

In: a kernel AST and its unoptimized `LoopNest` (codegen/lower.py). Out: a `LoopNest` that computes the
same values faster. Each optimization is one small function with its own off switch, applied in order:
  - upcast (UPCAST=0 turns off): register tiling for kernels with a reduce, read from each load's real
    strides (through stacked views). Two forms:
    outer product: loads walk a global dim contiguously (`x @ W`). Of the global dims along which an input
      is broadcast, the innermost is computed 16 outputs at a time, and a dim along which the operand
      loaded along that one is broadcast (the rows of `x @ W`) 6 at a time (else 8, 4 in a panel matmul),
      so each loaded value feeds several accumulators (96 multiply-adds per 22 loads instead of 1 per 2).
      Without such a dim (a row sum over a strided axis) 8 rows run at once. A broadcast dim no larger
      than its factor (10 classes, the 16 columns of a matmul panel) is tiled whole: `h @ W3`, 128x512x10,
      went 128 -> 46 us. Matmuls with every dim >= 128 read W as contiguous panels of 16 columns (tensor.py
      `_panel_matmul`): the 16-column tile then streams one panel, 2048^2 went 1000 -> 230 ms; with the
      panel dim outermost (PANEL_OUTER=0 turns that off) each thread keeps its panel in cache while it
      sweeps the rows: 216 -> 174 ms.
    dot product: loads walk the reduce dim contiguously (`g @ W.T`, row sums and maxes). The reduce is split
      into 8 lanes (4 or 2 when 8 does not divide it), each its own accumulator, combined after the loop
      (vectorizable loads, no serial chain), with 4x2 outputs at a time: 128x512x512 went 6 -> 133
      GFLOPS. A reduce of at most 16 elements is not split, and 8x4 outputs (8 for the vectorizer) run at
      once: `g @ W3.T` (10 classes, with the relu mask of the backward pass) went 246 -> 131 -> 75 us. A
      reduce with nothing to reuse (a row sum, softmax's max and exp-sum) streams one row at a time into 32
      lanes instead (STREAM_LANES=0 turns off): sum over axis 1 of 4096^2 3.1 -> 2.7 ms, softmax's exp-sum
      16.5 -> 12.8 ms.
    When the input broadcast along the innermost dim is read consecutively along the next one (`x.T @ g`),
    its loads are kept scalar (LoopNest.scalar_buffers) and that dim takes 4, not 8: x.T @ g, 784x128x512,
    1208 -> 1020 us.
    When only one dim is broadcast (a conv's weight gradient under `.sum()`, whose upstream gradient is a
    constant), 8 rows of a dim the loads move along join it (SECOND_TILE=0 turns off): 8 independent add
    chains instead of one; that kernel went 27 -> 5 ms. A kernel whose reduce is too short to tile but
    whose loads gather through div/mod indices (the col2im sums of a padded conv's backward) tiles a dim
    that every access moves along affinely by 8 instead (GATHER_TILE=0 turns off), so each div/mod feeds 8
    loads: 11 -> 4 ms and 4.6 -> 2.2 ms.
    Tuned on the 2-core AVX2 machine (16 ymm registers): a 16x6 tile keeps its 12 accumulators, 2 loaded
    vectors and a broadcast in registers, where 16x8 spills 3 accumulators to the stack every step (a panel
    matmul 1008x1024x1024: 22.5 -> 15.8 ms; 16x4 and 8x8 had too few accumulators to hide the FMA
    latency). _panel_matmul pads the rows of big ones to a multiple of 6 for this. Below, a panel matmul
    takes 16x4 where 6 does not divide (128x784x512: 16x8 1.09 -> 0.69 ms), but an unpacked one keeps 16x8
    (its loads wait on memory: 1.3 ms, 16x4 1.6). The reduce loop is not blocked for the cache: a C
    prototype of the panel kernel with K-blocks ran no faster, in cache or not (extra/BENCHMARKS.md).
  - reorder (REORDER=0 turns off): the global dim walked with stride 1 by most accesses goes innermost
    (`a.T * 2 + b.T` on 4096^2: 146 -> 65 ms); in a reduce kernel, the same among the reduce dims.
  - parallel (THREADS=0 turns off): run the outermost global loop on several threads.
  - group (GPU only, GROUP=0 turns off): a reduce with few outputs and a long innermost reduce dim is
    shared by a work-group of G threads per output. Thread j sums elements j, j+G, j+2G... (neighbouring
    threads read neighbouring addresses), the partial sums meet in local memory after a barrier, and one
    thread stores. Without it one thread walks a whole row: sum over axis 1 of 4096^2 on an H100 went
    84 -> 192 GB/s with it. Grouped kernels are not upcast.
  - vectorize (dialects with vector types, VECTORIZE=0 turns off): in a kernel without a reduce, each
    thread takes 4 elements along the dim its store walks contiguously, and float loads and stores of 4
    consecutive, aligned elements become one 16-byte access (lower.vectorize). On PoCL an 8-op chain went
    11 -> 16 GB/s. Not in reduce kernels: there PoCL (which vectorizes across work-items itself) got 3x
    slower, matmul 1024^2 80 -> 25 GFLOPS; a GPU matmul needs local-memory tiling first.
"""

from __future__ import annotations

from minigrad.codegen.lower import LoopNest
from minigrad.helpers import getenv, prod
from minigrad.ops import AstNode, Op

PARALLEL_MIN_WORK = 1 << 15  # below this many inner iterations, starting threads costs more than it saves
SIX_ROWS = 6  # the rows of the tile when they divide the dim (_rows_factor)
REUSE_FACTORS = (16, 8)  # dims where inputs are broadcast, innermost first (16 floats: two AVX2 registers)
SCALAR_ROWS_FACTOR = 4  # with scalar loads each value takes a register of its own: 16x4 does not spill
PANEL_ROWS_FACTOR = 4  # a panel matmul's rows where 6 does not divide (tensor.py pads to it): 16x4
ROWS_FACTOR = 8  # otherwise: 8 independent accumulators hide the latency of the serial adds
DOT_TILES = (2, 4)  # with lanes: 2 outputs along the innermost broadcast dim, 4 along the next
SHORT_TILES = (8, 4)  # a short reduce without lanes: 8 outputs for the vectorizer, 4 along the next
LANES_MIN_REDUCE = 16  # a reduce this short is not split: combining the lanes costs more than they save
STREAM_LANES = 32  # a reduce with nothing to reuse (a row sum): 4 registers of lanes, one row at a time
LANES = 8  # a reduce that loads walk contiguously is split into 8 accumulators (one AVX2 register)
GROUP_SIZES = (256, 128, 64, 32)  # threads that share one output's reduce, largest that divides the dim
GROUP_MAX_OUTPUTS = 1 << 15  # with more outputs than this, one thread per output already fills a GPU
VECTOR_WIDTH = 4  # float4: a 16-byte load or store


def _real_strides(ast: AstNode, nest: LoopNest, ops: tuple[Op, ...]) -> list[tuple[int, tuple]]:
    """Per distinct access (buffer, view) at the kernel's full shape: its buffer and the buffer stride of
    each dim (seen through stacked views; 0 where it broadcasts)."""
    accesses = {n.arg[:2] for n in ast.toposort() if n.op in ops and n.arg[1].shape == nest.full_shape}
    return list({(buffer, st.real_strides()) for buffer, st in accesses})


def reorder(ast: AstNode, nest: LoopNest) -> LoopNest:
    """In a kernel without a reduce, put the global dim that most loads and the store walk with stride 1
    innermost (REORDER=0 turns off): a transposed copy then reads or writes consecutive addresses. In a
    reduce kernel, the same among its reduce dims (`x.T.sum()`: 178 -> 6 ms on 4096^2)."""
    reduce_dims = [d for d in nest.order if d in nest.reduce_axes]
    dims = reduce_dims or nest.order  # a reduce kernel's global dims keep their order: upcast picks them
    if not getenv("REORDER", 1) or len(dims) < 2:
        return nest
    strides = [s for _, s in _real_strides(ast, nest, (Op.LOAD,) if reduce_dims else (Op.LOAD, Op.STORE))]
    score = {d: sum(1 for s in strides if s[d] in (1, -1)) for d in dims}
    best = max(dims, key=lambda d: (score[d], d))  # ties keep the last dim innermost
    nest.order = [d for d in nest.order if d != best] + [best]
    return nest


def group(ast: AstNode, nest: LoopNest) -> LoopNest:
    """On a GPU, share the innermost reduce dim among a work-group of threads (see the module docstring)."""
    if not getenv("GROUP", 1) or not nest.reduce_axes or nest.order[-1] not in nest.reduce_axes:
        return nest
    outputs = prod(s for d, s in enumerate(nest.full_shape) if d not in nest.reduce_axes)
    size = nest.full_shape[nest.order[-1]]
    sizes = [g for g in GROUP_SIZES if size % g == 0 and size >= 2 * g]
    if outputs <= GROUP_MAX_OUTPUTS and sizes:
        nest.group = (nest.order[-1], sizes[0])
    return nest


def upcast(ast: AstNode, nest: LoopNest) -> LoopNest:
    """Tile the dims of a reduce kernel into registers (see the module docstring)."""
    if not getenv("UPCAST", 1) or not nest.reduce_axes or nest.group:
        return nest
    if prod(nest.full_shape[d] for d in nest.reduce_axes) < 8:
        return _share_gather_index(ast, nest)
    accesses = _real_strides(ast, nest, (Op.LOAD,))
    strides = [s for _, s in accesses]
    global_dims = [d for d in nest.order if d not in nest.reduce_axes]
    reused = [d for d in global_dims if any(s[d] == 0 for s in strides)]
    walks = {d: sum(1 for s in strides if s[d] == 1) for d in nest.order}  # loads that walk d contiguously
    inner_reduce = nest.order[-1]
    outer_product = walks[inner_reduce] <= max((walks[d] for d in reused), default=0)
    if not outer_product:
        # a dot-product form: loads are contiguous along the reduce, so the reduce is split into lanes
        size = nest.full_shape[inner_reduce]
        widths = (STREAM_LANES,) if not reused and getenv("STREAM_LANES", 1) else ()
        lanes = next((n for n in widths + (LANES, LANES // 2, 2) if size % n == 0 and size > n), LANES)
        plan = [(inner_reduce, lanes)] if size > LANES_MIN_REDUCE else []  # 10 classes: a plain loop
        plan += zip(
            reversed(reused or ([] if widths else global_dims[-1:])), DOT_TILES if plan else SHORT_TILES
        )
    elif reused:
        # the innermost broadcast dim takes 16; the second factor goes to a dim along which the operand
        # loaded along that one is broadcast, so each loaded vector feeds several accumulators
        vector_dim = reused[-1]
        vector_loads = [s for s in strides if s[vector_dim] == 1]
        others = [d for d in reversed(reused[:-1]) if any(s[d] == 0 for s in vector_loads)] or reused[-2:-1]
        # global dims the vector operand moves along besides its own: the panels of a panel matmul
        panels = [d for d in global_dims if d != vector_dim and any(s[d] for s in vector_loads)]
        rows = [(d, _rows_factor(nest.full_shape[d], bool(panels))) for d in others[:1]]
        plan = [(vector_dim, REUSE_FACTORS[0])] + rows
        if not others and getenv("SECOND_TILE", 1):  # one broadcast dim (a weight gradient with a constant
            # upstream gradient): 8 rows of a dim the loads move along give 8 independent add chains
            moving = [d for d in global_dims if d != vector_dim and any(s[d] for s in strides)]
            plan += [(d, ROWS_FACTOR) for d in moving if nest.full_shape[d] % ROWS_FACTOR == 0][-1:]
        if others:  # values broadcast along the vector dim but consecutive along the other (x.T @ g)
            other = others[0]
            nest.scalar_buffers = {b for b, s in accesses if s[vector_dim] == 0 and s[other] == 1}
            plan = plan if not nest.scalar_buffers else [plan[0], (other, SCALAR_ROWS_FACTOR)]
        if getenv("PANEL_OUTER", 1):  # an untiled panel dim goes outermost: each thread then keeps its
            outer = [d for d in panels if d not in dict(plan)]  # panel in cache while it sweeps the rows
            nest.order = outer + [d for d in nest.order if d not in outer]
    else:  # 8 rows; with no global dim (a full sum), 8 lanes: one float32 accumulator stops at 2^24
        plan = [(d, ROWS_FACTOR) for d in global_dims[-1:]] or [(inner_reduce, LANES)]
    for dim, factor in plan:
        size = nest.full_shape[dim]
        if outer_product and dim in reused and size <= factor:
            nest.upcast[dim] = size  # a small broadcast dim (10 classes) is tiled whole
        elif size % factor == 0 and size > factor:
            nest.upcast[dim] = factor
    return nest


def _share_gather_index(ast: AstNode, nest: LoopNest) -> LoopNest:
    """A kernel that gathers through div/mod indices (the backward of a pool or a padded conv): tile a dim
    every access moves along affinely, so the div/mod is computed once for 8 loads (GATHER_TILE=0: off)."""
    accesses = _real_strides(ast, nest, (Op.LOAD, Op.STORE))
    if not getenv("GATHER_TILE", 1) or all(None not in s for _, s in accesses):
        return nest
    inner = nest.order[-1] if nest.order else None
    affine = [
        d
        for d in nest.order
        if d not in nest.reduce_axes and d != inner and all(s[d] is not None for _, s in accesses)
    ]
    fits = [d for d in affine if nest.full_shape[d] % ROWS_FACTOR == 0 and nest.full_shape[d] > ROWS_FACTOR]
    if fits:
        nest.upcast[fits[-1]] = ROWS_FACTOR
    return nest


def _rows_factor(size: int, panels: bool) -> int:
    """Rows of the outer-product tile (module docstring). SIX_ROWS=0 turns the 6 off, PANEL_ROWS=0 the 4."""
    six, four = size % SIX_ROWS == 0 and getenv("SIX_ROWS", 1), panels and getenv("PANEL_ROWS", 1)
    return SIX_ROWS if six else PANEL_ROWS_FACTOR if four else REUSE_FACTORS[1]


def parallelize(ast: AstNode, nest: LoopNest) -> LoopNest:
    """Mark the outermost global loop parallel when the kernel is big enough to share out."""
    global_dims = [
        d for d in nest.order if d not in nest.reduce_axes and nest.full_shape[d] > nest.upcast.get(d, 1)
    ]
    if not getenv("THREADS", 1) or not global_dims or prod(nest.full_shape) < PARALLEL_MIN_WORK:
        return nest
    nest.parallel_dims = {global_dims[0]}
    return nest


def vectorize(ast: AstNode, nest: LoopNest) -> LoopNest:
    """Use vector loads and stores (see the module docstring)."""
    if not getenv("VECTORIZE", 1) or nest.reduce_axes or not nest.order:
        return nest
    inner = nest.order[-1]
    if nest.full_shape[inner] % VECTOR_WIDTH == 0 and ast.arg[1].real_strides()[inner] == 1:
        nest.upcast[inner] = VECTOR_WIDTH  # 4 elements a thread, on consecutive addresses of the store
        nest.vector_width = VECTOR_WIDTH
    return nest


def optimize(ast: AstNode, nest: LoopNest, gpu: bool = False, vectors: bool = False) -> LoopNest:
    """Every rewrite in order; `gpu`: the target runs global loops as threads, `vectors`: it has vector
    types (cstyle.Language)."""
    rewrites = (reorder, group, upcast) if gpu else (reorder, upcast, parallelize)
    for rewrite in rewrites + ((vectorize,) if vectors else ()):
        nest = rewrite(ast, nest)
    return nest
