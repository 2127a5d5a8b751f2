"""Kernel optimizations, as rewrites of a kernel's loop nest. NOOPT=1 turns every one of them off.

In: a kernel AST and its unoptimized `LoopNest` (codegen/lower.py). Out: a `LoopNest` that computes the
same values faster. Each optimization is one small function with its own off switch, applied in order;
the measurements behind each choice are in extra/BENCHMARKS.md ("How opt.py's heuristics were tuned").
  - pick (PICK=0): `x[idx]`, `one_hot(idx) @ W` sum over r terms that are 0 unless r == idx: loop at idx.
  - reorder (REORDER=0): the dim most accesses walk with stride 1 goes innermost (reduce dims first).
  - tile (GPUs, TILE=0): local-memory tiling of a matmul-like kernel (see `tile`).
  - group (GPUs, GROUP=0): a reduce with few outputs and a long innermost reduce dim is shared by the G
    threads of a work-group. Thread j sums elements j, j+G, j+2G...; the partial sums meet in local memory.
  - upcast (UPCAST=0): register tiling of a kernel with a reduce, chosen from each load's real strides.
    Every width comes from the device's Target (codegen/target.py). Outer product, when loads walk a
    global dim contiguously (`x @ W`, a conv) or the reduce is short: the innermost dim along which an
    input is broadcast takes two vector registers of outputs a thread and another dim as many rows as the
    register file holds (AVX2: 16x6, AVX-512: 32x12; see `_register_tile` and OVERLAP), so each loaded
    value feeds several accumulators. Dot product, when loads walk the reduce (`g @ W.T`, row sums): the
    reduce splits into a vector register of lanes, combined after the loop, with 2x4 outputs at a time; a
    row sum streams one row at a time into 2 registers of lanes (STREAM_LANES=0). Special cases have
    their own switches: SECOND_TILE, GATHER_TILE.
  - pack (CPUs, PACK=0): an outer-product tile's column operand is first copied, per column tile, into a
    contiguous array of the thread, a long reduce in chunks (CHUNK=0; see `pack`, `_chunk`).
  - transpose (CPUs, TRANSPOSE=0): a big copy between layouts reads 8 consecutive addresses a step.
  - parallel (THREADS=0): run the outermost global loop on several threads, or the next one in where the
    outermost has too few steps to share evenly (SHARE_INNER=0: the outermost always).
  - simd (dialects with vector values of any width, C; SIMD=0): an outer-product tile's columns, or a row
    sum's lanes, are computed as vector values, a register's lanes at a time, not one scalar each.
  - vectorize (dialects with vector types, VECTORIZE=0): in a kernel without a reduce, each thread takes 4
    elements along the dim its store walks contiguously, as 16-byte loads and stores where aligned.
"""

from __future__ import annotations

from itertools import combinations, product

from minigrad.codegen.lower import LoopNest
from minigrad.codegen.target import Target
from minigrad.helpers import getenv, prod
from minigrad.ops import IOTA, AstNode, Op
from minigrad.shape.symbolic import Variable, variables

# below this many inner iterations, waking the sleeping threads (~30-50 us) costs more than they save
PARALLEL_MIN_WORK = 1 << 17
# a parallel loop of fewer steps than this per core leaves a thread idle where one wakes late or is held up:
# 4097x64 @ 64x64 shared out its 2 column tiles, one a thread, 175-235 us; its 342 row tiles: 100-150 us
SHARE_STEPS = 4
ROWS_FACTOR = 8  # 8 independent accumulators hide the latency of the serial adds
DOT_TILES = (2, 4)  # with lanes: 2 outputs along the innermost broadcast dim, 4 along the next
SHORT_TILES = (8, 4)  # a short reduce without lanes: 8 outputs for the vectorizer, 4 along the next
SHORT_REDUCE = 32  # a contiguous reduce this short gains less from lanes than from reuse across outputs
# a transposing copy (opt._transposed_tile) pays back over sums this long or longer: packed, x @ w.T with 16
# to 200 terms ran 2-7x faster (attention scores 64 x 256^2 x 64: 5.1 -> 1.3 ms); with 2 terms 2x slower;
# with 10 (an MLP's g @ W3.T over 10 classes, 128x512, its relu mask fused) 35 -> 20 us on a Xeon
PACKED_MIN_TERMS = 8
LANES_MIN_REDUCE = 16  # a reduce this short is not split into lanes: combining them costs more than they save
GPU_TILE = (16, 6)  # a GPU thread's register tile: 96 accumulators, well under a thread's register file
GPU_LANES = 8  # a GPU thread splits a reduce into 8 independent accumulators (latency, not SIMD width)
GROUP_SIZES = (256, 128, 64, 32)  # threads that share one output's reduce, largest that divides the dim
GROUP_MAX_OUTPUTS = 1 << 15  # with more outputs than this, one thread per output already fills a GPU
VECTOR_WIDTH = 4  # float4: a 16-byte load or store
TILE_THREADS = 16  # opt.tile: a work-group of 16x16 threads...
TILE_UPCASTS = (8, 4)  # ...each computing 8x8 outputs where the dims allow (a 128x128 block), else 4x4
TILE_CHUNK = 16  # the reduce runs in chunks of 16 elements: 2 x 16 x 128 floats of local memory
PACK_MAX_BYTES = 1 << 20  # a packed operand lives on the stack of a kernel thread: stay far below its 8 MB


def _real_strides(ast: AstNode, nest: LoopNest, ops: tuple[Op, ...]) -> list[tuple[int, tuple]]:
    """Per distinct access (buffer, view) at the kernel's full shape: its buffer and the buffer stride of
    each dim (seen through stacked views; 0 where it broadcasts)."""
    accesses = {n.arg[:2] for n in ast.toposort() if n.op in ops and n.arg[1].shape == nest.full_shape}
    return list({(buffer, st.real_strides()) for buffer, st in accesses})


def pick(ast: AstNode, nest: LoopNest, gpu: bool = False) -> LoopNest:
    """`x[idx]`: a sum whose terms are all 0 unless reduce index d equals an e that no reduce dim moves (a
    comparison with an arange) runs its loop over d at e only (nest.picks). Its gradient, a sum stored as it
    is whose terms are 0 unless global index r equals an e that r does not move, zeroes the output and adds
    each term at r = e only (nest.scatter, CPUs, SCATTER=0: off). The other rewrites but parallel are off."""
    reduces = [n for n in ast.toposort() if n.op in (Op.REDUCE_SUM, Op.REDUCE_MAX)]
    if not reduces or not getenv("PICK", 1):
        return nest
    index = [Variable(f"d{d}", 0, s - 1) for d, s in enumerate(nest.full_shape)]

    def moved_by(e: AstNode) -> set[int]:  # the dims that move e's loads and constants
        leaves = [n.arg[1].expr_idxs(index) for n in e.toposort() if n.op in (Op.LOAD, Op.CONST)]
        return {int(name[1:]) for i, v in leaves for name in variables(i) | variables(v)}

    def picks(node: AstNode, depth: int = 8) -> dict[int, AstNode]:  # dim d -> e: node is 0 where d != e
        for iota, e in (node.srcs, node.srcs[::-1]) if node.op is Op.CMPEQ else ():
            is_iota = iota.op is Op.CONST and iota.arg[0] == IOTA
            at, valid = iota.arg[1].expr_idxs(index) if is_iota else (0, 0)
            if isinstance(at, Variable) and valid.min == 1 and int(at.name[1:]) not in moved_by(e):
                return {int(at.name[1:]): e}
        zero = node.op is Op.WHERE and node.srcs[2].op is Op.CONST and node.srcs[2].arg[0] == 0
        srcs = node.srcs if node.op in (Op.MUL, Op.CAST) else node.srcs[:2] if zero else ()
        return {d: e for s in srcs for d, e in picks(s, depth - 1).items()} if depth else {}

    found = [picks(r.srcs[0]) if r.op is Op.REDUCE_SUM else {} for r in reduces]  # every reduce must agree
    common = {d: e for d, e in found[0].items() if all(f.get(d) == e for f in found)}
    axes = set(nest.reduce_axes)
    nest.picks = {d: e for d, e in common.items() if d in axes and not moved_by(e) & axes}
    if not nest.picks and not gpu and ast.srcs[0].op is Op.REDUCE_SUM and getenv("SCATTER", 1):
        nest.scatter = {d: e for d, e in common.items() if d not in axes}
    return nest


def reorder(ast: AstNode, nest: LoopNest, target: Target) -> LoopNest:
    """In a kernel without a reduce (or whose reduce is picked, opt.pick), put the global dim that the loads
    and the store walk with stride 1 innermost, counting each by the elements it reads (REORDER=0 turns off): a transposed copy then reads or writes consecutive addresses. In a
    reduce kernel, the same among its reduce dims (`x.T.sum()`: 178 -> 6 ms on 4096^2)."""
    reduce_dims = [d for d in nest.order if d in nest.reduce_axes and d not in nest.picks]
    global_dims = [d for d in nest.order if d not in nest.reduce_axes]
    dims = reduce_dims or global_dims  # a reduce kernel's global dims keep their order: upcast picks them
    if not getenv("REORDER", 1) or len(dims) < 2:
        return nest
    strides = [s for _, s in _real_strides(ast, nest, (Op.LOAD,) if reduce_dims else (Op.LOAD, Op.STORE))]
    # each access counts by the elements it reads: a per-channel vector (32 values) broadcast over an image
    # does not outvote the image (batchnorm's backward: 2.4 -> 0.24 ms on 32x32x32x32)
    footprint = [prod(n for n, stride in zip(nest.full_shape, s) if stride != 0) for s in strides]
    score = {d: sum(f for s, f in zip(strides, footprint) if s[d] in (1, -1)) for d in dims}
    best = max(dims, key=lambda d: (score[d], d))  # ties keep the last dim innermost
    if reduce_dims:
        nest.order = [d for d in nest.order if d != best] + [best]
    else:  # the innermost global dim; a picked reduce dim (one index: opt.pick) stays after the global ones
        nest.order = (
            [d for d in global_dims if d != best] + [best] + [d for d in nest.order if d not in global_dims]
        )
    return nest


def transpose(ast: AstNode, nest: LoopNest, target: Target) -> LoopNest:
    """A copy between layouts (`x.T.contiguous()` of 2^16 floats or more; TRANSPOSE=0: off): the dim that a
    load strided along the innermost dim walks takes 8 a step, so each step reads 8 consecutive addresses
    (3072x768: 5.0 -> 0.7 ms in cache, 7.1 -> 2.2 ms from memory; h^T 512x128 in the MLP step, rows 2 KB
    apart that share a few cache sets: 71 -> 21 us). Smaller copies are left as they are."""
    shape, inner = nest.full_shape, nest.order[-1] if nest.order else None
    if nest.reduce_axes or prod(shape) < 1 << 16 or not getenv("TRANSPOSE", 1):
        return nest
    strided = [s for _, s in _real_strides(ast, nest, (Op.LOAD,)) if s[inner] not in (0, 1, -1, None)]
    walked = [d for d in nest.order[:-1] if any(s[d] in (1, -1) for s in strided) and shape[d] % 8 == 0]
    if walked:
        nest.upcast[walked[-1]] = ROWS_FACTOR
    return nest


def group(ast: AstNode, nest: LoopNest, target: Target) -> LoopNest:
    """On a GPU, share the innermost reduce dim among a work-group of threads (see the module docstring)."""
    inner = nest.order[-1] if nest.order else None
    if not getenv("GROUP", 1) or nest.threads or inner not in nest.reduce_axes:
        return nest
    outputs = prod(s for d, s in enumerate(nest.full_shape) if d not in nest.reduce_axes)
    size = nest.full_shape[inner]
    sizes = [g for g in GROUP_SIZES if size % g == 0 and size >= 2 * g and g <= target.max_work_group]
    if outputs <= GROUP_MAX_OUTPUTS and sizes:
        nest.threads = {inner: sizes[0]}
    return nest


def tile(ast: AstNode, nest: LoopNest, target: Target) -> LoopNest:
    """Local-memory tiling of a matmul-like kernel on a GPU (TILE=0 turns off, TILE=1 on where the target
    does not ask for it). Two global dims m, n (an operand moves along each, not the other) are shared by
    16x16 threads of a work-group, each computing 8x8 outputs (4x4 where that gives fewer work-groups than
    the device has compute units). The reduce runs in chunks of 16: before each chunk the work-group copies
    both operands' part into local memory, where all its threads read it. Each operand is then read from
    memory once per 128-wide block instead of once per thread."""
    reduce_dims, shape = [d for d in nest.order if d in nest.reduce_axes], nest.full_shape
    fits_device = TILE_THREADS**2 <= target.max_work_group
    if len(reduce_dims) != 1 or shape[reduce_dims[0]] % TILE_CHUNK or not fits_device:
        return nest
    k, outputs = reduce_dims[0], prod(s for d, s in enumerate(shape) if d not in nest.reduce_axes)
    moving = [s for _, s in _real_strides(ast, nest, (Op.LOAD,)) if s[k] != 0]  # loads that walk the reduce
    one_each = {(True, False), (False, True)}  # an operand moves along m and not n, another the other way
    for (m, n), f in product(combinations(nest.order[:-1], 2), TILE_UPCASTS):
        block, fits = f * TILE_THREADS, {(s[m] != 0, s[n] != 0) for s in moving} >= one_each
        local_bytes = 2 * TILE_CHUNK * (block + 1) * 4
        enough = outputs // block**2 >= target.compute_units and local_bytes <= target.local_memory_bytes
        if fits and shape[m] % block == shape[n] % block == 0 and enough:
            nest.threads, nest.upcast = {m: TILE_THREADS, n: TILE_THREADS}, {m: f, n: f}
            nest.tile = TILE_CHUNK
            return nest
    return nest


def upcast(ast: AstNode, nest: LoopNest, target: Target) -> LoopNest:
    """Tile the dims of a reduce kernel into registers (see the module docstring)."""
    if not getenv("UPCAST", 1) or not nest.reduce_axes or nest.threads:
        return nest
    if prod(nest.full_shape[d] for d in nest.reduce_axes) < 8:
        return _share_gather_index(ast, nest)
    accesses = _real_strides(ast, nest, (Op.LOAD,))
    strides = [s for _, s in accesses]
    global_dims = [d for d in nest.order if d not in nest.reduce_axes]
    reused = [d for d in global_dims if any(s[d] == 0 for s in strides)]
    walks = {d: sum(1 for s in strides if s[d] == 1) for d in nest.order}  # loads that walk d contiguously
    inner_reduce = nest.order[-1]
    lanes = GPU_LANES if target.gpu else max(target.lanes(ast.dtype.itemsize), 2)
    vector_dim, rows_dim, max_rows = None, None, 0  # an outer product's columns and rows
    reads_output = any(n.op is Op.LOAD and n.arg[0] == ast.arg[0] for n in ast.toposort())
    can_overlap = getenv("OVERLAP", 1) and not target.gpu and not reads_output
    # loads contiguous along the reduce make a dot product, unless a broadcast dim is walked as often or the
    # reduce is short (a conv's 3 taps, its 32 columns): then reusing loads across a broadcast dim pays more
    reuse_walks = max((walks[d] for d in reused), default=0)
    # (with one load, or one walking a broadcast dim: a conv's weight gradient from a constant, its forward)
    one_operand = len(strides) == 1 or reuse_walks > 0
    short = bool(reused) and one_operand and nest.full_shape[inner_reduce] <= SHORT_REDUCE
    outer_product = walks[inner_reduce] <= reuse_walks or short
    longest_walked = max((nest.full_shape[d] for d in reused if walks[d]), default=0)  # the would-be columns
    narrow = not outer_product or not _whole_vectors(longest_walked, lanes)
    store = ast.arg[1].real_strides()
    transposed = _transposed_tile(nest, target, strides, reused, store, lanes) if narrow else None
    outer_product = outer_product or transposed is not None
    if not outer_product:
        # a dot-product form: loads are contiguous along the reduce, so the reduce is split into lanes
        size = nest.full_shape[inner_reduce]
        stream = 4 * lanes if target.gpu else 2 * lanes  # (a CPU's exp() calls spill more than 2 registers)
        widths = (stream,) if not reused and getenv("STREAM_LANES", 1) else ()  # a row sum, one row at a time
        split = next((n for n in widths + (lanes, lanes // 2, 2) if size % n == 0 and size > n), lanes)
        plan = [(inner_reduce, split)] if size > LANES_MIN_REDUCE else []  # 10 classes: a plain loop
        tiled = list(reversed(reused or ([] if widths else global_dims[-1:])))
        tiled.sort(key=lambda d: nest.full_shape[d] < 8)  # dims of 8 or more first (not a conv's 3 taps)
        plan += zip(tiled, DOT_TILES if plan else SHORT_TILES)
    elif reused:
        # the innermost broadcast dim takes the columns; the rows go to a dim along which the operand
        # loaded along that one is broadcast, so each loaded vector feeds several accumulators
        # (dims of 8 or more first: a conv's input gradient has 32 pixels along a row, not its 3 taps)
        wide = [d for d in reused if nest.full_shape[d] >= 8]
        walked_wide = [d for d in wide if walks[d]]
        small = nest.full_shape[reused[-1]] < 8 and walked_wide
        vector_dim = walked_wide[-1] if small else reused[-1]
        whole = [d for d in walked_wide if _whole_vectors(nest.full_shape[d], lanes)]
        if whole and not _whole_vectors(nest.full_shape[vector_dim], lanes):  # 10 classes: the other dim
            vector_dim = whole[-1]
        vector_dim = transposed[0] if transposed else vector_dim
        nest.columns = vector_dim
        vector_loads = [s for s in strides if s[vector_dim] == 1]
        others = [d for d in reversed(reused) if d != vector_dim and any(s[d] == 0 for s in vector_loads)]
        others = sorted(others, key=lambda d: nest.full_shape[d] < 8)[:1]  # innermost of 8 or more
        others = others or [d for d in reversed(reused) if d != vector_dim][:1]
        others = [transposed[1]] if transposed else others
        cols, max_rows = _register_tile(target, lanes)
        size = nest.full_shape[vector_dim]  # two registers of columns, else one, else half of one
        if not (can_overlap and size > cols):
            cols = next((c for c in (cols, cols // 2, cols // 4) if c > 1 and size % c == 0), cols)
        plan = [(vector_dim, cols)] + [(d, _rows(nest.full_shape[d], max_rows)) for d in others[:1]]
        rows_dim = others[0] if others else None
        if not others and getenv("SECOND_TILE", 1):  # one broadcast dim (a weight gradient with a constant
            # upstream gradient): 8 rows of a dim the loads move along give 8 independent add chains
            moving = [d for d in global_dims if d != vector_dim and any(s[d] for s in strides)]
            plan += [(d, ROWS_FACTOR) for d in moving if nest.full_shape[d] % ROWS_FACTOR == 0][-1:]
    elif global_dims and all(s[global_dims[-1]] == 1 for s in strides) and not target.gpu:
        # a sum down the columns (x.sum(0)): 8 vector registers of them a thread, each row's read a
        # contiguous 8 x 64 bytes (8 columns a thread read 32 bytes per 16 KB row: 4096^2 7.6 -> 1.9 ms)
        size, nest.columns = nest.full_shape[global_dims[-1]], global_dims[-1]
        widths = [n * lanes for n in (ROWS_FACTOR, 4, 2, 1)] + [ROWS_FACTOR]  # the widest that divides
        plan = [(global_dims[-1], next((w for w in widths if size % w == 0 and size > w), ROWS_FACTOR))]
    else:  # 8 rows; with no global dim (a full sum), lanes: one float32 accumulator stops at 2^24
        plan = [(d, ROWS_FACTOR) for d in global_dims[-1:]] or [(inner_reduce, lanes)]
    for dim, factor in plan:
        size = nest.full_shape[dim]
        if outer_product and dim in reused and size <= factor:
            nest.upcast[dim] = size  # a small broadcast dim (10 classes) is tiled whole
        elif size % factor == 0 and size > factor:
            nest.upcast[dim] = factor
        elif outer_product and dim == vector_dim and can_overlap and size > factor:
            nest.upcast[dim] = factor  # the last block of columns overlaps the one before
            nest.overlap.add(dim)
    # a row sum's lanes as a loop over an array on a CPU (LANE_LOOP=0: unrolled): see linearize._lane_loop
    lanes_only = not outer_product and list(nest.upcast) == [inner_reduce] and not reused
    nest.lane_loop = (
        lanes_only and not target.gpu and bool(getenv("STREAM_LANES", 1) and getenv("LANE_LOOP", 1))
    )
    if rows_dim is not None and can_overlap:
        rows, size = nest.upcast.get(rows_dim, 1), nest.full_shape[rows_dim]
        # per step of the reduce a block loads its rows' values and 2 vectors of columns: the most rows
        # with an overlapping last block, where that loads less than the most that divide (2048 rows with
        # AVX2: 342 blocks of 6, not 512 of 4; 64 with AVX-512: 8 blocks of 8, not 6 of 12)
        cost = lambda r: -(-size // r) * (r + 2)  # noqa: E731
        if rows < max_rows < size and cost(max_rows) < cost(rows):
            nest.upcast[rows_dim] = max_rows
            nest.overlap.add(rows_dim)
    return nest


def _transposed_tile(
    nest: LoopNest, target: Target, strides: list, reused: list[int], store: tuple, lanes: int
) -> tuple | None:
    """(columns, rows) of an outer product made by packing, for two loads that run contiguously along the
    reduce, not along the outputs: a conv's weight gradient (32 pixels a row, 32768 terms a sum), a @ b.T
    (CPUs; PACK=0 or CHUNK=0: none, a dot product in lanes instead: a @ b.T 2048^2 59 -> 483 GFLOPS). The
    columns go to the dim the output is contiguous along, else the largest dim one load moves along and the
    other is broadcast along; opt.pack copies that load's columns, transposed, per chunk of the reduce."""
    if target.gpu or not (getenv("PACK", 1) and getenv("CHUNK", 1)) or len(strides) != 2:
        return None
    terms = prod(nest.full_shape[d] for d in nest.reduce_axes)
    if terms < PACKED_MIN_TERMS or any(None in s for s in strides):
        return None
    a, b = strides
    along = {(x, y): [d for d in reused if x[d] and not y[d]] for x, y in ((a, b), (b, a))}
    # the largest dim of each; first the output's contiguous dim, if a vector of it fits (then the columns
    # store whole vectors: a stride-2 conv, 64 -> 128 channels 32^2, 6.0 -> 3.6 ms; not a weight gradient's 3
    # taps)
    rank = lambda d: (store[d] == 1 and nest.full_shape[d] >= lanes, nest.full_shape[d])  # noqa: E731
    largest = {k: max(v, key=rank, default=None) for k, v in along.items()}
    cols, rows = largest[(a, b)], largest[(b, a)]
    if cols is None or rows is None:
        return None
    # columns along the output's rows, which it then stores in whole vectors (a @ b.T, 1024x64 by 1024x64:
    # 3.0 -> 0.65 ms); else pack the load that moves along fewer output elements: its copy serves the others
    # (a conv's upstream gradient, not its input window, which moves with the 3x3 taps too: 32 -> 32
    # channels 41 -> 3.8 ms); then the longer columns
    # a dim that whole vectors cannot cover (10 classes) takes the rows
    whole = [_whole_vectors(nest.full_shape[d], lanes) for d in (cols, rows)]
    if whole[0] != whole[1]:
        return (cols, rows) if whole[0] else (rows, cols)
    if (store[cols] == 1) != (store[rows] == 1):
        return (cols, rows) if store[cols] == 1 else (rows, cols)
    outputs = [prod(nest.full_shape[d] for d in reused if s[d]) for s in (a, b)]
    if outputs[0] != outputs[1]:
        return (cols, rows) if outputs[0] < outputs[1] else (rows, cols)
    return (cols, rows) if nest.full_shape[cols] >= nest.full_shape[rows] else (rows, cols)


def _whole_vectors(size: int, lanes: int) -> bool:
    """Can columns along a dim of `size` be whole vectors: one or more exactly, or two or more with an
    overlapping last tile (not 10 classes, under one vector of 16, or under two of 8 and not one)."""
    return size % lanes == 0 or size >= 2 * lanes


def _register_tile(target: Target, lanes: int) -> tuple[int, int]:
    """(columns, most rows) of an outer-product tile: two vector registers of columns, and as many rows as
    keep the accumulators (2 a row) in 3/4 of the register file, the rest for loaded values (AVX2: 16 x 6,
    AVX-512: 32 x 12, NEON: 8 x 12; 32 x 14 measured slower than 32 x 6..12 on Zen 5, all within 5% of
    each other). On a GPU, a thread's tile (GPU_TILE)."""
    if target.gpu:
        return GPU_TILE
    return 2 * lanes, max(3 * target.vector_registers // 8, 1)


def _rows(size: int, most: int) -> int:
    """The rows of an outer-product tile: the most, up to `most`, that divide the dim."""
    return next((r for r in range(min(most, size), 1, -1) if size % r == 0), 1)


def pack(ast: AstNode, nest: LoopNest, target: Target) -> LoopNest:
    """Operand packing on a CPU (PACK=0 turns off). In an outer-product tile, the operand loaded along the
    columns is read again for every tile of rows, a few elements from each of its rows: strided reads
    that share cache sets and TLB entries (x @ W with W 2048 wide: rows 8 KB apart). Where the rows take
    more than one step, each thread first copies its columns, for the whole reduce, into a contiguous
    array (padding zeros included, so the inner loop has no bounds checks) and sweeps the rows over it.
    The dims the operand moves along go outermost, then its columns: the copy happens once per column
    tile. The array must fit in half the L2 cache and on the thread's stack (PACK_MAX_BYTES); a longer
    reduce is packed and swept in chunks that do (cache blocking, CHUNK=0: off, then no packing): see
    `_chunk`."""
    if not getenv("PACK", 1) or target.gpu or nest.threads:
        return nest
    reduce_dims = [d for d in nest.order if d in nest.reduce_axes]
    if any(d in nest.upcast for d in reduce_dims):
        return nest
    accesses = _real_strides(ast, nest, (Op.LOAD,))
    # a buffer also read after the reduce (its epilogue) is not packed: the copy holds the reduce's elements
    outside = {n.arg[0] for n in ast.toposort(stop_at_reduce=True) if n.op is Op.LOAD}
    for buffer, s in accesses:
        if sum(1 for b, _ in accesses if b == buffer) > 1 or buffer in outside:
            continue  # one view per packed buffer, read only inside the reduce
        column = nest.columns  # the operand that moves along the tile's columns (at any stride: copied)
        columns = [column] if column in nest.upcast and s[column] not in (0, None) else []
        # (rows in one step read the columns once: copied only to make strided columns contiguous, as for
        # 10 classes' rows)
        strided = bool(columns) and s[columns[0]] != 1
        rows = [d for d in nest.upcast if d not in columns and s[d] == 0 and (nest.steps(d) > 1 or strided)]
        moves = [d for d in nest.order if s[d] != 0 and d not in reduce_dims]
        if len(columns) != 1 or not rows or None in s or set(nest.upcast) - {columns[0], *rows}:
            continue
        column, budget = columns[0], min(target.cache(2) // 2, PACK_MAX_BYTES)
        size = prod(nest.full_shape[d] for d in reduce_dims) * nest.upcast[column] * ast.dtype.itemsize
        outer = [d for d in moves if d != column] + [column]
        if size > budget and not _chunk(ast, nest, outer, nest.upcast[column], budget):
            continue
        nest.order = outer + [d for d in nest.order if d not in outer]
        nest.packed = {buffer: column}
        return nest
    return nest


def _chunk(ast: AstNode, nest: LoopNest, outer: list[int], width: int, budget: int) -> bool:
    """Cache blocking of a packed reduce too long to pack whole (CHUNK=0: off): a sum over one dim runs in
    chunks of the largest divisor of its length whose pack fits `budget`; over several dims, a chunk is
    one step of the first. The rows' running sums are kept in an array of the thread
    (linearize._chunked). 512x16384x512: 80 -> 210 GFLOPS with AVX-512. False where it cannot: several
    reduces, a chunk that does not fit (or no divisor of 256 or more), or sums too big for the stack."""
    reduces = [n for n in ast.toposort() if n.op in (Op.REDUCE_SUM, Op.REDUCE_MAX)]
    reduce_dims = [d for d in nest.order if d in nest.reduce_axes]
    inner = [d for d in nest.order if d not in outer and d not in nest.reduce_axes]
    if not getenv("CHUNK", 1) or len(reduces) != 1 or reduces[0].op is not Op.REDUCE_SUM:
        return False
    looped = [d for d in reduce_dims if nest.full_shape[d] > 1]
    length, itemsize = nest.full_shape[looped[0]], ast.dtype.itemsize
    sizes = [c for c in range(budget // (width * itemsize), 255, -1) if length % c == 0]
    rest = prod(nest.full_shape[d] for d in looped[1:])  # several dims: a chunk is a step of the first
    fits = rest * width * itemsize <= budget if len(looped) > 1 else bool(sizes)
    if not fits or prod(nest.full_shape[d] for d in inner) * width * itemsize > PACK_MAX_BYTES:
        return False
    for d in nest.overlap & set(inner):  # a row in two tiles would be added twice: tiles that divide
        nest.upcast[d] = _rows(nest.full_shape[d], nest.upcast[d])
        nest.overlap.discard(d)
    nest.tile, nest.chunked = (sizes[0] if len(looped) == 1 else 0), True
    return True


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


def parallelize(ast: AstNode, nest: LoopNest, target: Target) -> LoopNest:
    """Mark the outermost global loop parallel when the kernel is big enough to share out. Where it has
    fewer than SHARE_STEPS steps a core and the next global loop in has more, that one is shared instead
    (a parallel region each step of the outer, fewer than SHARE_STEPS x cores; a packed operand's copy
    made before it is read by every thread). Only a global loop outside every reduce loop qualifies."""
    inner = set(nest.reduce_axes) | set(nest.scatter)  # scatter dims loop inside the reduce (linearize.py)
    global_dims = [d for d in nest.order if d not in inner and nest.full_shape[d] > nest.upcast.get(d, 1)]
    if not getenv("THREADS", 1) or not global_dims or prod(nest.full_shape) < PARALLEL_MIN_WORK:
        return nest
    shared = global_dims[0]
    first_inner = min((nest.order.index(d) for d in inner if d in nest.order), default=len(nest.order))
    candidates = [d for d in global_dims[1:2] if nest.order.index(d) < first_inner]
    if getenv("SHARE_INNER", 1) and candidates and nest.steps(shared) < SHARE_STEPS * target.cores:
        shared = max([shared, candidates[0]], key=nest.steps)
    nest.parallel_dims = {shared}
    return nest


def simd(ast: AstNode, nest: LoopNest, target: Target) -> LoopNest:
    """The columns of an outer-product tile, or a row sum's lanes, as vector values of a register's lanes
    (linearize, "vector columns"). A 12x32 tile's source holds 24 vector accumulators, not 384 scalars left
    for the C compiler's SLP vectorizer to join: it compiles ~3.5x faster (the first MLP step's five big
    kernels: 0.23 -> 0.065 s each) and runs as fast; a row max keeps its running values in registers (a
    thread-private array made it latency-bound: 4096^2 1.7 -> 1.1 ms). linearize keeps scalars for a kernel
    whose reduce holds anything a vector cannot compute (an integer, a view's mask along the columns,
    16-bit floats; a comparison only as a WHERE's condition)."""
    lanes, dim = target.lanes(ast.dtype.itemsize), nest.vector_dim
    if getenv("SIMD", 1) and dim is not None and lanes > 1 and nest.upcast.get(dim, 1) % lanes == 0:
        nest.simd = lanes
    return nest


def vectorize(ast: AstNode, nest: LoopNest, target: Target) -> LoopNest:
    """Use vector loads and stores (see the module docstring)."""
    if not getenv("VECTORIZE", 1) or nest.reduce_axes or not nest.order:
        return nest
    inner = nest.order[-1]
    if nest.full_shape[inner] % VECTOR_WIDTH == 0 and ast.arg[1].real_strides()[inner] == 1:
        nest.upcast[inner] = VECTOR_WIDTH  # 4 elements a thread, on consecutive addresses of the store
        nest.vector_width = VECTOR_WIDTH
    return nest


def optimize(ast: AstNode, nest: LoopNest, target: Target) -> LoopNest:
    """Every rewrite in order, for the hardware `target` describes (codegen/target.py)."""
    nest = pick(ast, nest, target.gpu)
    for rewrite in rewrites_for(nest, target):
        nest = rewrite(ast, nest, target)
    return nest


def rewrites_for(nest: LoopNest, target: Target) -> tuple:
    """The rewrites `optimize` applies after `pick`, in order (the viewer shows the nest after each)."""
    tiling = (tile,) if getenv("TILE", int(target.local_tiles)) else ()
    rewrites = (
        (reorder, *tiling, group, upcast) if target.gpu else (reorder, transpose, upcast, pack, parallelize)
    )
    # a picked sum is an indexed copy: only its order (x[idx] of 128 rows of 784: rows read along) and,
    # on a CPU, its threads
    picked = (reorder,) if nest.picks and not nest.scatter else ()
    rewrites = (
        rewrites if not (nest.picks or nest.scatter) else picked if target.gpu else (*picked, parallelize)
    )
    return rewrites + ((vectorize,) if target.float4 else ()) + ((simd,) if target.vector_types else ())
