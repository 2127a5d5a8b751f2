"""Kernel optimizations, as rewrites of a kernel's loop nest. NOOPT=1 turns every one of them off.

In: a kernel AST and its unoptimized `LoopNest` (codegen/lower.py). Out: a `LoopNest` that computes the
same values faster. Each optimization is a small function with its own off switch, applied in order:
  - parallel: run the outermost global loop on several threads (THREADS=0 turns it off).
"""

from __future__ import annotations

from minigrad.codegen.lower import LoopNest
from minigrad.helpers import getenv, prod
from minigrad.ops import AstNode

PARALLEL_MIN_WORK = 1 << 15  # below this many inner iterations, starting threads costs more than it saves


def parallelize(ast: AstNode, nest: LoopNest) -> LoopNest:
    """Mark the outermost global loop parallel when the kernel is big enough to share out."""
    global_dims = [d for d in nest.order if d not in nest.reduce_axes]
    if not getenv("THREADS", 1) or not global_dims or prod(nest.full_shape) < PARALLEL_MIN_WORK:
        return nest
    nest.parallel_dims = {global_dims[0]}
    return nest


def optimize(ast: AstNode, nest: LoopNest) -> LoopNest:
    for rewrite in (parallelize,):
        nest = rewrite(ast, nest)
    return nest
