"""Autograd as a graph transform: one reverse rule per primitive op, and one walk.

In: a root lazy node, the target nodes, and the gradient of the root. Out: the gradient of each
target, as new lazy nodes, built only from primitive ops; they can be scheduled, fused and even
differentiated again like any other graph (higher-order derivatives come for free).

`REVERSE_RULES[op](node, grad)` returns, for each source of `node`, the vector-Jacobian product
`grad * d(node)/d(source)`, or None where no gradient flows (comparisons, integer ops).
"""

from __future__ import annotations

import math
from typing import Callable

from minigrad.dtype import dtypes
from minigrad.lazy import LazyNode, inverse_permutation, toposort
from minigrad.ops import Op

Grads = tuple["LazyNode | None", ...]


def _mul(a: LazyNode, b: LazyNode) -> LazyNode:
    return a.alu(Op.MUL, b)


def _scale(a: LazyNode, factor: float) -> LazyNode:
    return a.alu(Op.MUL, a.const_like(factor))


def _max_rule(node: LazyNode, grad: LazyNode) -> Grads:
    """d max(a, b): 1 to the larger input, split evenly on ties (as torch.maximum does)."""
    a, b = node.srcs
    a_wins = b.alu(Op.CMPLT, a).cast(grad.dtype)
    tie = _scale(a.alu(Op.CMPEQ, b).cast(grad.dtype), 0.5)
    b_wins = a.alu(Op.CMPLT, b).cast(grad.dtype)
    return _mul(grad, a_wins.alu(Op.ADD, tie)), _mul(grad, b_wins.alu(Op.ADD, tie))


def _where_rule(node: LazyNode, grad: LazyNode) -> Grads:
    condition = node.srcs[0]
    zero = grad.const_like(0)
    return None, condition.alu(Op.WHERE, grad, zero), condition.alu(Op.WHERE, zero, grad)


def _reduce_max_rule(node: LazyNode, grad: LazyNode) -> Grads:
    """The gradient goes to the positions that hold the max, split evenly among ties."""
    src = node.srcs[0]
    is_max = src.alu(Op.CMPEQ, node.expand(src.shape)).cast(grad.dtype)
    count = is_max.reduce(Op.REDUCE_SUM, node.arg)
    share = grad.alu(Op.MUL, count.alu(Op.RECIP))
    return (_mul(is_max, share.expand(src.shape)),)


def _expand_rule(node: LazyNode, grad: LazyNode) -> Grads:
    src = node.srcs[0]
    axes = tuple(d for d, (s, n) in enumerate(zip(src.shape, node.shape)) if s != n)
    return (grad.reduce(Op.REDUCE_SUM, axes),)


def _pad_rule(node: LazyNode, grad: LazyNode) -> Grads:
    return (grad.shrink(tuple((before, before + s) for (before, _), s in zip(node.arg, node.srcs[0].shape))),)


def _shrink_rule(node: LazyNode, grad: LazyNode) -> Grads:
    return (grad.pad(tuple((begin, s - end) for (begin, end), s in zip(node.arg, node.srcs[0].shape))),)


def NO_GRADIENT(node: LazyNode, grad: LazyNode) -> Grads:
    return tuple(None for _ in node.srcs)


REVERSE_RULES: dict[Op, Callable[[LazyNode, LazyNode], Grads]] = {
    # unary
    Op.EXP2: lambda node, grad: (_mul(grad, _scale(node, math.log(2))),),
    Op.LOG2: lambda node, grad: (_mul(grad, _scale(node.srcs[0], math.log(2)).alu(Op.RECIP)),),
    Op.SIN: lambda node, grad: (
        _mul(grad, node.srcs[0].alu(Op.ADD, node.const_like(math.pi / 2)).alu(Op.SIN)),
    ),
    Op.SQRT: lambda node, grad: (_mul(grad, _scale(node, 2).alu(Op.RECIP)),),
    Op.RECIP: lambda node, grad: (_mul(grad, _mul(node, node).alu(Op.NEG)),),
    Op.NEG: lambda node, grad: (grad.alu(Op.NEG),),
    Op.CAST: lambda node, grad: (grad.cast(node.srcs[0].dtype),),
    # binary
    Op.ADD: lambda node, grad: (grad, grad),
    Op.MUL: lambda node, grad: (_mul(grad, node.srcs[1]), _mul(grad, node.srcs[0])),
    Op.MAX: _max_rule,
    Op.CMPLT: NO_GRADIENT,
    Op.CMPEQ: NO_GRADIENT,
    Op.MOD: NO_GRADIENT,
    Op.IDIV: NO_GRADIENT,
    # ternary
    Op.WHERE: _where_rule,
    # reduce
    Op.REDUCE_SUM: lambda node, grad: (grad.expand(node.srcs[0].shape),),
    Op.REDUCE_MAX: _reduce_max_rule,
    # movement: the inverse movement
    Op.RESHAPE: lambda node, grad: (grad.reshape(node.srcs[0].shape),),
    Op.PERMUTE: lambda node, grad: (grad.permute(inverse_permutation(node.arg)),),
    Op.EXPAND: _expand_rule,
    Op.PAD: _pad_rule,
    Op.SHRINK: _shrink_rule,
    Op.FLIP: lambda node, grad: (grad.flip(node.arg),),
    # buffer
    Op.CONTIGUOUS: lambda node, grad: (grad,),
    Op.COPY: lambda node, grad: (grad.copy_to(node.srcs[0].device),),
    Op.ASSIGN: NO_GRADIENT,
    Op.DETACH: NO_GRADIENT,
}


def differentiable_graph(root: LazyNode) -> list[LazyNode]:
    """The nodes `root` depends on through differentiable paths (DETACH cuts), sources first."""
    return toposort([root], stop=lambda node: node.op is Op.DETACH)


def gradient(
    root: LazyNode, targets: list[LazyNode], root_grad: LazyNode, order: list[LazyNode] | None = None
) -> list[LazyNode | None]:
    """d(root)/d(target) for each target, contracted with `root_grad` (reverse mode).

    Walks the graph (`order`: differentiable_graph(root), when the caller has it) once in reverse
    topological order; only nodes from which some target can be reached get gradients. Returns None for a
    target the root does not depend on.
    """
    order = differentiable_graph(root) if order is None else order
    leads_to_target = {id(t) for t in targets}
    for node in order:  # sources come first, so one pass finds every node above a target
        if any(id(src) in leads_to_target for src in node.srcs) and node.op is not Op.DETACH:
            leads_to_target.add(id(node))
    grads: dict[int, LazyNode] = {id(root): root_grad}
    for node in reversed(order):
        grad = grads.get(id(node))
        if grad is None or not node.srcs or id(node) not in leads_to_target:
            continue
        for src, src_grad in zip(node.srcs, REVERSE_RULES[node.op](node, grad)):
            if src_grad is None or id(src) not in leads_to_target or not dtypes.is_float(src.dtype):
                continue
            src_grad = src_grad.cast(src.dtype)
            grads[id(src)] = src_grad if id(src) not in grads else grads[id(src)].alu(Op.ADD, src_grad)
    return [grads.get(id(t)) for t in targets]
