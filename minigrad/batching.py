"""vmap: a function of one example becomes a function of a batch, by one batching rule per primitive op.

In: a Python function `f` of Tensors, `in_axes` (which axis of each argument is the batch) and `out_axes`.
Out: a function that takes batched arguments and returns f's results with a batch axis, computed as one
graph over the whole batch (no Python loop over its elements).

How it works, an interpreter in three steps:
  1. trace: f runs once on stand-ins for one example (placeholders: BUFFER nodes that can never be
     realized, so f asking for data, `.item()` or `.numpy()`, is an error rather than a silently wrong
     value). This records f's lazy graph, including any gradient graph f builds (vmap of grad).
  2. batch: the graph is walked from the placeholders forward. A node none of whose sources depends on a
     placeholder is kept as it is (weights from a closure, constants); every other node is rebuilt by
     `BATCHING_RULES[op]` from its sources' batched versions, which all carry the batch as axis 0.
  3. each output's batch axis moves to its `out_axes` entry (an output that does not depend on the batch
     is broadcast over it).

The rules, one per primitive op (ops.py), with B the batch size and "lift" making an unbatched source
batched by broadcasting it over a new axis 0:
  | op                                           | batched as                                     |
  |----------------------------------------------|------------------------------------------------|
  | unary, binary, WHERE, CAST                   | the same op on the lifted sources              |
  | REDUCE_SUM, REDUCE_MAX                       | the same reduce, axes + 1                      |
  | RESHAPE, EXPAND                              | to (B,) + shape                                |
  | PERMUTE                                      | (0,) + (axis + 1 for each axis)                |
  | PAD, SHRINK                                  | nothing done to axis 0, then the same bounds   |
  | FLIP                                         | axes + 1                                       |
  | CONTIGUOUS, DETACH, COPY                     | the same op                                    |
  | BUFFER, CONST                                | never batched (no sources)                     |
  | FUNCTION (a Function, checkpoint)            | its value batched; its derivative rules run on    |
  |                                              | one example's placeholders, their graphs batched  |
  | ASSIGN on a batched value                    | an error (an in-place write)                      |
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from minigrad.helpers import DEFERRED_CHECKS, map_leaves
from minigrad.lazy import LazyNode, Placeholder, toposort
from minigrad.ops import BINARY, MOVEMENT, TERNARY, UNARY, Op
from minigrad.tensor import Tensor

_UNSET = object()  # in_dims / out_dims not given (None is a value: not batched)


# ---- the rules ---------------------------------------------------------------------------------------


def _lift(source: LazyNode, batched: LazyNode | None, size: int) -> LazyNode:
    """`source` with the batch as axis 0: its batched version, or itself broadcast over the batch."""
    if batched is not None:
        return batched
    return source.reshape((1,) + source.shape).expand((size,) + source.shape)


def _elementwise(node: LazyNode, srcs: list[LazyNode], size: int, walk: "_Walk") -> LazyNode:
    if node.op is Op.CAST:
        return srcs[0].cast(node.dtype)
    return srcs[0].alu(node.op, *srcs[1:])


def _shifted(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(a + 1 for a in axes)


def _refuse_assign(node: LazyNode, srcs: list[LazyNode], size: int, walk: "_Walk") -> LazyNode:
    raise NotImplementedError(
        "vmap: an in-place write (assign, +=) into a tensor cannot take a batched value; apply it outside vmap"
    )


def _function(node: LazyNode, srcs: list[LazyNode], size: int, walk: "_Walk") -> LazyNode:
    """A FUNCTION node (a Function such as conv2d's, or checkpoint): its value batched as any graph, its
    derivative rules batched when they run (_BatchedRule)."""
    return srcs[0].custom_rule(tuple(srcs[1:]), _BatchedRule(node, size, walk))


BATCHING_RULES: dict[Op, Callable[[LazyNode, list[LazyNode], int, "_Walk"], LazyNode]] = {
    **{op: _elementwise for op in UNARY | BINARY | TERNARY},
    Op.REDUCE_SUM: lambda node, srcs, size, walk: srcs[0].reduce(node.op, _shifted(node.arg)),
    Op.REDUCE_MAX: lambda node, srcs, size, walk: srcs[0].reduce(node.op, _shifted(node.arg)),
    Op.RESHAPE: lambda node, srcs, size, walk: srcs[0].reshape((size,) + node.shape),
    Op.EXPAND: lambda node, srcs, size, walk: srcs[0].expand((size,) + node.shape),
    Op.PERMUTE: lambda node, srcs, size, walk: srcs[0].permute((0,) + _shifted(node.arg)),
    Op.PAD: lambda node, srcs, size, walk: srcs[0].pad(((0, 0),) + node.arg),
    Op.SHRINK: lambda node, srcs, size, walk: srcs[0].shrink(((0, size),) + node.arg),
    Op.FLIP: lambda node, srcs, size, walk: srcs[0].flip(_shifted(node.arg)),
    Op.CONTIGUOUS: lambda node, srcs, size, walk: srcs[0].contiguous(),
    Op.DETACH: lambda node, srcs, size, walk: srcs[0].detach(),
    Op.COPY: lambda node, srcs, size, walk: srcs[0].copy_to(node.device),
    Op.ASSIGN: _refuse_assign,
    Op.FUNCTION: _function,
}
assert MOVEMENT <= BATCHING_RULES.keys()


class _Walk:
    """What batch_graph knows: the batched version of each node it rebuilt (by id), and the nodes it
    walked, kept alive so that those ids stay theirs (a FUNCTION's rules batch later graphs with it)."""

    def __init__(self, inputs: dict[int, LazyNode]):
        self.batched, self.seen = dict(inputs), []


class _BatchedRule:
    """The derivative rules of a batched FUNCTION node (torch.func's generate_vmap_rule): the original
    rule runs on placeholders for one example's cotangent (or tangents), and the graph it returns is batched
    by the same walk that batched the forward graph."""

    def __init__(self, node: LazyNode, size: int, walk: _Walk):
        self.node, self.size, self.walk, self.name = node, size, walk, node.arg.name

    def _batched(self, results: list[LazyNode | None], seeds: dict[int, LazyNode]) -> list[LazyNode | None]:
        walk = _Walk({**self.walk.batched, **seeds})
        walk.seen = self.walk.seen
        done = _walk([r for r in results if r is not None], walk, self.size)
        it = iter(done)
        return [None if r is None else _lift(r, next(it), self.size) for r in results]

    def vjp(self, grad: LazyNode, needed: tuple[bool, ...], grad_of=None) -> tuple[LazyNode | None, ...]:
        """One placeholder cotangent per output of the call that has a gradient (a Function with several
        outputs reads its siblings' through grad_of), the original rule on them, its graph batched."""
        siblings = getattr(getattr(self.node.arg, "rule", None), "nodes", None) or [self.node]
        seeds, given = {}, {}
        for original in siblings:
            batched = self.walk.batched.get(id(original))
            g = (
                grad
                if original is self.node
                else (grad_of(batched) if grad_of and batched is not None else None)
            )
            if g is not None:
                message = "vmap: a cotangent placeholder"
                seeds[id(original)] = LazyNode.buffer(Placeholder(message), original.shape, g.dtype, g.device)
                given[id(seeds[id(original)])] = g
        grads = self.node.arg.vjp(seeds[id(self.node)], needed, lambda other: seeds.get(id(other)))
        return tuple(self._batched(list(grads), given))

    def jvp(self, tangents: tuple[LazyNode | None, ...]) -> LazyNode | None:
        seeds = [
            None
            if t is None
            else LazyNode.buffer(Placeholder("vmap: a tangent placeholder"), x.shape, t.dtype, t.device)
            for t, x in zip(tangents, self.node.srcs[1:])
        ]
        out = self.node.arg.jvp(tuple(seeds))
        given = {id(p): t for p, t in zip(seeds, tangents) if p is not None}
        return self._batched([out], given)[0]


def batch_graph(outputs: list[LazyNode], inputs: dict[int, LazyNode], size: int) -> list[LazyNode | None]:
    """Each output rebuilt over the batch (batch axis 0), or None where it does not depend on `inputs`
    (placeholder id -> the batched value it stands for)."""
    return _walk(outputs, _Walk(inputs), size)


def _walk(outputs: list[LazyNode], walk: _Walk, size: int) -> list[LazyNode | None]:
    batched = walk.batched
    order = toposort(outputs)
    walk.seen.append(order)
    for node in order:
        if id(node) in batched or not any(id(s) in batched for s in node.srcs):
            continue
        srcs = [_lift(s, batched.get(id(s)), size) for s in node.srcs]
        batched[id(node)] = BATCHING_RULES[node.op](node, srcs, size, walk)
    return [batched.get(id(node)) for node in outputs]


# ---- vmap --------------------------------------------------------------------------------------------


def _leaf_axes(value: Any, axes: Any, name: str) -> list[int | None]:
    """The batch axis of each Tensor in `value` (in map_leaves' order): `axes` is an int or None for all of
    them, or a structure of lists, tuples and dicts that matches value's down to where it holds one."""
    if axes is None or isinstance(axes, int):
        found: list = []
        map_leaves(value, found.append, Tensor, "vmap")
        return [axes] * len(found)
    if isinstance(axes, (list, tuple)) and isinstance(value, (list, tuple)) and len(axes) == len(value):
        return [axis for v, a in zip(value, axes) for axis in _leaf_axes(v, a, name)]
    if isinstance(axes, dict) and isinstance(value, dict) and set(axes) == set(value):
        return [axis for key in value for axis in _leaf_axes(value[key], axes[key], name)]
    raise ValueError(
        f"vmap: {name} {axes!r} does not match the structure of the value it describes "
        f"({type(value).__name__}{f' of {len(value)}' if isinstance(value, (list, tuple, dict)) else ''})"
    )


def _stand_in(t: Tensor, axis: int, size_of: dict) -> Tensor:
    """A placeholder for one example of `t` (batched along `axis`); records the batched value."""
    if not -t.ndim <= axis < t.ndim:
        raise ValueError(f"vmap: in_axes {axis} is out of range for an argument of shape {t.shape}")
    axis %= t.ndim
    moved = t.permute(axis, *[d for d in range(t.ndim) if d != axis])
    shape = moved.shape[1:]
    message = (
        "vmap: f asked for the data of a value that depends on the batched input (.item(), .numpy(), "
        "bool(), or an op that reads data back, such as nonzero); a batched function "
        "cannot branch on one example's values"
    )
    node = LazyNode.buffer(Placeholder(message), shape, t.dtype, t.device)
    size_of[id(node)] = (moved.shape[0], moved.lazydata)
    return Tensor._from_node(node, requires_grad=t.requires_grad)


def vmap(
    f: Callable,
    in_axes: Any = 0,
    out_axes: Any = 0,
    *,
    in_dims: Any = _UNSET,
    out_dims: Any = _UNSET,
    randomness: str = "error",
    chunk_size: int | None = None,
) -> Callable:
    """f mapped over a batch axis of its arguments (JAX's vmap; torch.func's names in_dims and out_dims
    are accepted for in_axes and out_axes).

    in_axes: for each positional argument, the axis that holds the batch, or None for an argument that is
    the same for every example (one int or None: every argument). An entry may also be a structure of
    lists, tuples and dicts matching its argument's, with an axis per Tensor. Keyword arguments are passed
    to f as they are, unbatched (as torch.func). f may return a Tensor or lists, tuples and dicts of them;
    out_axes: one axis for every output, or a structure matching f's result. Nested vmap, vmap of grad
    (per-example gradients) and grad of vmap all work.

    chunk_size (torch.func's) is accepted and does not change the result: the whole batch is one graph.
    randomness: torch.func's "error", "different" or "same"; random tensors made inside f are drawn once
    and shared by every example (torch's "same"), so "different" raises."""

    in_axes = in_axes if in_dims is _UNSET else in_dims
    out_axes = out_axes if out_dims is _UNSET else out_dims
    if randomness not in ("error", "different", "same"):
        raise ValueError(f"vmap: randomness must be 'error', 'different' or 'same', got {randomness!r}")
    if randomness == "different":
        raise NotImplementedError("vmap: randomness='different' is not supported (random values are shared)")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"vmap: chunk_size must be None or a positive int, got {chunk_size!r}")

    @functools.wraps(f)
    def vmapped(*args: Any, **kwargs: Any) -> Any:
        per_argument = in_axes is not None and not isinstance(in_axes, int)
        if per_argument and len(in_axes) != len(args):
            raise ValueError(f"vmap: in_axes={in_axes} has {len(in_axes)} entries for {len(args)} arguments")
        axes = iter(_leaf_axes(args, tuple(in_axes) if per_argument else in_axes, "in_axes"))
        batched: dict[int, tuple[int, LazyNode]] = {}

        def stand_in(t: Tensor) -> Tensor:
            axis = next(axes)
            return t if axis is None else _stand_in(t, axis, batched)

        traced = map_leaves(args, stand_in, Tensor, "vmap")
        sizes = {size for size, _ in batched.values()}
        if not batched:
            raise ValueError("vmap: no argument is batched (every in_axes entry is None, or no Tensors)")
        if len(sizes) > 1:
            raise ValueError(f"vmap: the batched arguments have different batch sizes {sorted(sizes)}")
        size = sizes.pop()
        checks: list = []  # index checks f asked for: run on the batched indices (indexing._check_bounds)
        token = DEFERRED_CHECKS.set(checks)
        try:
            out = f(*traced, **kwargs)
        finally:
            DEFERRED_CHECKS.reset(token)
        results: list[Tensor] = []
        map_leaves(out, results.append, Tensor, "vmap: f's result")
        if not results or not _only_tensors(out):
            raise TypeError(
                f"vmap: f must return a Tensor, or lists, tuples or dicts of Tensors, got {type(out).__name__}"
            )
        inputs = {key: node for key, (_, node) in batched.items()}
        nodes = batch_graph([r.lazydata for r in results] + [c[0].lazydata for c in checks], inputs, size)
        for (index, *check), node in zip(checks, nodes[len(results) :]):
            (Tensor._from_node(node) if node is not None else index)._check_bounds(*check)
        moved = iter(
            [
                _move_batch(r, node, size, axis)
                for r, node, axis in zip(results, nodes, _leaf_axes(out, out_axes, "out_axes"))
            ]
        )
        return map_leaves(out, lambda _: next(moved), Tensor, "vmap")

    return vmapped


def _only_tensors(value: Any) -> bool:
    """Whether every leaf of lists, tuples and dicts in `value` is a Tensor."""
    if isinstance(value, (list, tuple)):
        return all(_only_tensors(v) for v in value)
    if isinstance(value, dict):
        return all(_only_tensors(v) for v in value.values())
    return isinstance(value, Tensor)


def _move_batch(result: Tensor, node: LazyNode | None, size: int, axis: int | None) -> Tensor:
    """The batched result with its batch axis at `axis` (an unbatched one broadcast over the batch)."""
    if axis is None:
        if node is not None:
            raise ValueError("vmap: out_axes None for an output that depends on the batched inputs")
        return result
    node = _lift(result.lazydata, node, size)
    ndim = len(node.shape)
    if not -ndim <= axis < ndim:
        raise ValueError(f"vmap: out_axes {axis} is out of range for an output of {ndim} dims")
    axis %= ndim
    order = list(range(1, ndim))
    order.insert(axis, 0)
    return Tensor._from_node(node.permute(tuple(order)), requires_grad=result.requires_grad)
