"""Autograd as a graph transform: two rules per primitive op, and two walks.

Reverse mode (`gradient`). In: root lazy nodes, the target nodes, and the gradient of each root. Out: the
gradient of each target. `REVERSE_RULES[op](node, grad, needed)` returns, for each source of `node`, the
vector-Jacobian product `grad * d(node)/d(source)`, or None where no gradient flows (comparisons, integer
ops) or none is needed (`needed`: a flag per source, is a target behind it); the walk applies them from the
roots back to the targets.

Forward mode (`tangent`). In: root nodes, input nodes and a tangent for each input. Out: the tangent of
each root, d(root)/d(inputs) . tangents, in one walk from the inputs forward: `FORWARD_RULES[op](node,
tangents)` gives the Jacobian-vector product of `node` from the tangents of its sources (None = zero).

Both produce new lazy nodes built only from primitive ops; they can be scheduled, fused and differentiated
again like any other graph (higher-order derivatives, forward-over-reverse, come for free). FUNCTION nodes
carry their own rules (`node.arg.vjp(grad, needed)`, `node.arg.jvp(tangents)`): user Functions, checkpoint
and the panel matmul.
"""

from __future__ import annotations

import math
from typing import Callable

from minigrad.dtype import dtypes
from minigrad.lazy import LazyNode, inverse_permutation, toposort
from minigrad.ops import MOVEMENT, Op

Grads = tuple["LazyNode | None", ...]


def _mul(a: LazyNode, b: LazyNode) -> LazyNode:
    return a.alu(Op.MUL, b)


def _scale(a: LazyNode, factor: float) -> LazyNode:
    return a.alu(Op.MUL, a.const_like(factor))


def _max_shares(node: LazyNode) -> tuple[LazyNode, LazyNode]:
    """d max(a, b) / da and / db: 1 for the larger input, split evenly on ties (as torch.maximum does)."""
    a, b = node.srcs
    tie = _scale(a.alu(Op.CMPEQ, b).cast(node.dtype), 0.5)
    a_wins, b_wins = b.alu(Op.CMPLT, a).cast(node.dtype), a.alu(Op.CMPLT, b).cast(node.dtype)
    return a_wins.alu(Op.ADD, tie), b_wins.alu(Op.ADD, tie)


def _where_rule(node: LazyNode, grad: LazyNode, needed: tuple[bool, ...]) -> Grads:
    condition, zero = node.srcs[0], grad.const_like(0)
    to_true = condition.alu(Op.WHERE, grad, zero) if needed[1] else None
    return None, to_true, condition.alu(Op.WHERE, zero, grad) if needed[2] else None


def _max_positions(node: LazyNode) -> tuple[LazyNode, LazyNode]:
    """For a REDUCE_MAX: 1 where the source holds the max (0 elsewhere), and 1 / the number of such places."""
    src = node.srcs[0]
    is_max = src.alu(Op.CMPEQ, node.expand(src.shape)).cast(node.dtype)
    return is_max, is_max.reduce(Op.REDUCE_SUM, node.arg).alu(Op.RECIP)


def _reduce_max_rule(node: LazyNode, grad: LazyNode, needed: tuple) -> Grads:
    """The gradient goes to the positions that hold the max, split evenly among ties."""
    is_max, share = _max_positions(node)
    return (_mul(is_max, _mul(grad, share).expand(is_max.shape)),)


def _expand_rule(node: LazyNode, grad: LazyNode, needed: tuple) -> Grads:
    src = node.srcs[0]
    axes = tuple(d for d, (s, n) in enumerate(zip(src.shape, node.shape)) if s != n)
    return (grad.reduce(Op.REDUCE_SUM, axes),)


def _pad_rule(node: LazyNode, grad: LazyNode, needed: tuple) -> Grads:
    return (grad.shrink(tuple((before, before + s) for (before, _), s in zip(node.arg, node.srcs[0].shape))),)


def _shrink_rule(node: LazyNode, grad: LazyNode, needed: tuple) -> Grads:
    return (grad.pad(tuple((begin, s - end) for (begin, end), s in zip(node.arg, node.srcs[0].shape))),)


def _function_rule(node: LazyNode, grad: LazyNode, needed: tuple, grad_of=lambda other: None) -> Grads:
    """A FUNCTION node's own rule (a Function, checkpoint, assign): nothing for the value it wraps, then
    the rule's gradients. grad_of(node) reads the gradient of another output of the same call (a Function
    with several outputs runs its backward once, with all of them)."""
    return (None, *node.arg.vjp(grad, needed[1:], grad_of))


def NO_GRADIENT(node: LazyNode, grad: LazyNode, needed: tuple) -> Grads:
    return tuple(None for _ in node.srcs)


REVERSE_RULES: dict[Op, Callable[[LazyNode, LazyNode, tuple[bool, ...]], Grads]] = {
    # unary
    Op.EXP2: lambda node, grad, _: (_mul(grad, _scale(node, math.log(2))),),
    Op.EXP: lambda node, grad, _: (_mul(grad, node),),
    Op.LOG2: lambda node, grad, _: (_mul(grad, _scale(node.srcs[0], math.log(2)).alu(Op.RECIP)),),
    Op.SIN: lambda node, grad, _: (_mul(grad, node.srcs[0].alu(Op.COS)),),
    Op.COS: lambda node, grad, _: (_mul(grad, node.srcs[0].alu(Op.SIN).alu(Op.NEG)),),
    Op.SQRT: lambda node, grad, _: (_mul(grad, _scale(node, 2).alu(Op.RECIP)),),
    Op.RECIP: lambda node, grad, _: (_mul(grad, _mul(node, node).alu(Op.NEG)),),
    Op.NEG: lambda node, grad, _: (grad.alu(Op.NEG),),
    Op.CAST: lambda node, grad, _: (grad.cast(node.srcs[0].dtype),),
    # binary
    Op.ADD: lambda node, grad, _: (grad, grad),
    Op.MUL: lambda node, grad, needed: tuple(
        _mul(grad, other) if n else None for n, other in zip(needed, node.srcs[::-1])
    ),
    Op.MAX: lambda node, grad, _: tuple(_mul(grad, share) for share in _max_shares(node)),
    Op.DIV: lambda node, grad, needed: (  # (floats: integer division has no gradient)
        grad.alu(Op.DIV, node.srcs[1]) if needed[0] else None,
        _mul(grad, node).alu(Op.DIV, node.srcs[1]).alu(Op.NEG) if needed[1] else None,
    ),
    # comparisons, integer remainders and bitwise logic
    **dict.fromkeys((Op.CMPLT, Op.CMPEQ, Op.MOD, Op.AND, Op.OR, Op.XOR), NO_GRADIENT),
    # ternary
    Op.WHERE: _where_rule,
    # reduce
    Op.REDUCE_SUM: lambda node, grad, _: (grad.expand(node.srcs[0].shape),),
    Op.REDUCE_MAX: _reduce_max_rule,
    # movement: the inverse movement
    Op.RESHAPE: lambda node, grad, _: (grad.reshape(node.srcs[0].shape),),
    Op.PERMUTE: lambda node, grad, _: (grad.permute(inverse_permutation(node.arg)),),
    Op.EXPAND: _expand_rule,
    Op.PAD: _pad_rule,
    Op.SHRINK: _shrink_rule,
    Op.FLIP: lambda node, grad, _: (grad.flip(node.arg),),
    # buffer
    Op.CONTIGUOUS: lambda node, grad, _: (grad,),
    Op.COPY: lambda node, grad, _: (grad.copy_to(node.srcs[0].device),),
    **dict.fromkeys((Op.ASSIGN, Op.DETACH), NO_GRADIENT),
    Op.FUNCTION: _function_rule,
}


# ---- forward mode: one Jacobian-vector product per op; a tangent of None is zero ----------------------

Tangents = tuple["LazyNode | None", ...]


def _times(tangent: LazyNode | None, factor: LazyNode) -> LazyNode | None:
    return None if tangent is None else _mul(tangent, factor)


def _plus(*terms: LazyNode | None) -> LazyNode | None:
    present = [t for t in terms if t is not None]
    out = present[0] if present else None
    for t in present[1:]:
        out = out.alu(Op.ADD, t)
    return out


def _linear(
    apply: Callable[[LazyNode, LazyNode], LazyNode],
) -> Callable[[LazyNode, Tangents], LazyNode | None]:
    """A forward rule that is zero for a zero tangent: `apply(node, tangent)` runs only for a real one."""
    return lambda node, t: None if t[0] is None else apply(node, t[0])


def _where_tangent(node: LazyNode, t: Tangents) -> LazyNode | None:
    if t[1] is None and t[2] is None:
        return None
    zero = node.const_like(0)
    return node.srcs[0].alu(Op.WHERE, zero if t[1] is None else t[1], zero if t[2] is None else t[2])


def _reduce_max_tangent(node: LazyNode, tangent: LazyNode) -> LazyNode:
    """The tangent at the positions that hold the max, averaged over ties."""
    is_max, share = _max_positions(node)
    return _mul(_mul(tangent, is_max).reduce(Op.REDUCE_SUM, node.arg), share)


def NO_TANGENT(node: LazyNode, t: Tangents) -> None:
    return None


def _div_tangent(node: LazyNode, t: Tangents) -> LazyNode | None:
    """d(a/b) = (da - (a/b) db) / b."""
    numerator = _plus(t[0], _times(t[1], node.alu(Op.NEG)))
    return None if numerator is None else numerator.alu(Op.DIV, node.srcs[1])


FORWARD_RULES: dict[Op, Callable[[LazyNode, Tangents], "LazyNode | None"]] = {
    # unary: the tangent times the derivative
    Op.EXP2: lambda node, t: _times(t[0], _scale(node, math.log(2))),
    Op.EXP: lambda node, t: _times(t[0], node),
    Op.LOG2: lambda node, t: _times(t[0], _scale(node.srcs[0], math.log(2)).alu(Op.RECIP)),
    Op.SIN: lambda node, t: _times(t[0], node.srcs[0].alu(Op.COS)),
    Op.COS: lambda node, t: _times(t[0], node.srcs[0].alu(Op.SIN).alu(Op.NEG)),
    Op.SQRT: lambda node, t: _times(t[0], _scale(node, 2).alu(Op.RECIP)),
    Op.RECIP: lambda node, t: _times(t[0], _mul(node, node).alu(Op.NEG)),
    Op.NEG: _linear(lambda node, t: t.alu(Op.NEG)),
    Op.CAST: _linear(lambda node, t: t.cast(node.dtype)),
    # binary
    Op.ADD: lambda node, t: _plus(t[0], t[1]),
    Op.MUL: lambda node, t: _plus(_times(t[0], node.srcs[1]), _times(t[1], node.srcs[0])),
    Op.MAX: lambda node, t: _plus(*(_times(ti, share) for ti, share in zip(t, _max_shares(node)))),
    Op.DIV: _div_tangent,
    **dict.fromkeys((Op.CMPLT, Op.CMPEQ, Op.MOD, Op.AND, Op.OR, Op.XOR), NO_TANGENT),
    # ternary
    Op.WHERE: _where_tangent,
    # reduce
    Op.REDUCE_SUM: _linear(lambda node, t: t.reduce(Op.REDUCE_SUM, node.arg)),
    Op.REDUCE_MAX: _linear(_reduce_max_tangent),
    # movement: the same movement
    **{op: _linear(lambda node, t: t.movement(node.op, node.arg)) for op in MOVEMENT},
    # buffer
    Op.CONTIGUOUS: _linear(lambda node, t: t),
    Op.COPY: _linear(lambda node, t: t.copy_to(node.device)),
    **dict.fromkeys((Op.ASSIGN, Op.DETACH), NO_TANGENT),
    Op.FUNCTION: lambda node, t: node.arg.jvp(t[1:]),
}


def differentiable_graph(roots: list[LazyNode]) -> list[LazyNode]:
    """The nodes `roots` depend on through differentiable paths (DETACH cuts), sources first."""
    return toposort(roots, stop=lambda node: node.op is Op.DETACH)


def gradient(
    roots: list[LazyNode],
    targets: list[LazyNode],
    root_grads: list[LazyNode],
    order: list[LazyNode] | None = None,
) -> list[LazyNode | None]:
    """sum over roots of d(root)/d(target) contracted with its root_grad, for each target (reverse mode).

    Walks the graph (`order`: differentiable_graph(roots), when the caller has it) once in reverse
    topological order; only nodes from which some target can be reached get gradients. Returns None for a
    target the roots do not depend on."""
    order = differentiable_graph(roots) if order is None else order
    # (nodes hash by identity: they key these sets and dicts directly, without id() calls)
    leads_to_target = {t for t in targets if dtypes.is_float(t.dtype)}  # no gradient flows through ints
    for node in order:  # sources come first, so one pass finds every node above a target
        if node.op is not Op.DETACH and dtypes.is_float(node.dtype):
            for src in node.srcs:
                if src in leads_to_target:
                    leads_to_target.add(node)
                    break
    grads: dict[LazyNode, LazyNode] = {}
    for root, root_grad in zip(roots, root_grads):
        grads[root] = root_grad if root not in grads else grads[root].alu(Op.ADD, root_grad)
    for node in reversed(order):
        grad = grads.get(node)
        if grad is None or not node.srcs or node not in leads_to_target:
            continue
        needed = tuple([src in leads_to_target for src in node.srcs])
        # a FUNCTION's rule may read the gradients of the other outputs of its call (a Function with several)
        extra = (grads.get,) if node.op is Op.FUNCTION else ()
        src_grads = REVERSE_RULES[node.op](node, grad, needed, *extra)
        for src, src_grad in zip(node.srcs, src_grads):
            if src_grad is not None:
                src_grad = src_grad.cast(src.dtype)
                grads[src] = src_grad if src not in grads else grads[src].alu(Op.ADD, src_grad)
    return [grads.get(t) for t in targets]


def tangent(roots: list[LazyNode], inputs: list[LazyNode], tangents: list[LazyNode]) -> list[LazyNode | None]:
    """d(root)/d(inputs) . tangents for each root (forward mode): one walk from the inputs to the roots,
    applying FORWARD_RULES; no reverse rule runs. None for a root that does not depend on the inputs."""
    seeds = {id(node): t for node, t in zip(inputs, tangents)}
    known = dict(seeds)
    for node in toposort(roots, stop=lambda node: node.op is Op.DETACH or id(node) in seeds):
        if id(node) in seeds or not node.srcs or not dtypes.is_float(node.dtype):
            continue
        src_tangents = tuple(known.get(id(src)) for src in node.srcs)
        if all(t is None for t in src_tangents):
            continue
        out = FORWARD_RULES[node.op](node, src_tangents)
        if out is not None:
            known[id(node)] = out.cast(node.dtype)
    return [known.get(id(root)) for root in roots]
