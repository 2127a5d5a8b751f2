"""Functional autograd in the JAX style: transforms that take a function of Tensors and give a function.

In: a Python function `f` of Tensors (arguments may be lists, tuples or dicts of Tensors) and the point at
which to differentiate it. Out: derivatives as new lazy Tensors, built by gradient.py's two walks. They
are realized like any other graph (fused with the forward pass) and can be differentiated again.

| transform                  | mode                 | cost                                              |
|----------------------------|----------------------|---------------------------------------------------|
| grad, value_and_grad, vjp  | reverse              | one backward walk                                 |
| jvp                        | forward              | one forward walk; no reverse rule runs            |
| hvp                        | forward-over-reverse | jvp of grad: the Hessian is never formed          |
| jacrev, jacfwd, jacobian   | reverse / forward    | one walk per output element / per input element   |
| checkpoint                 | reverse, recomputing | f runs again in the backward pass                 |

    >>> from minigrad import Tensor, grad, jvp
    >>> f = lambda x: (x * x * x).sum()
    >>> grad(f)(Tensor([1.0, 2.0])).numpy()           # 3 x^2
    array([ 3., 12.], dtype=float32)
    >>> jvp(f, (Tensor([1.0, 2.0]),), (Tensor([1.0, 0.0]),))[1].item()
    3.0

Each transform differentiates with respect to fresh aliases of its arguments (`LazyNode.alias`), so a
value that `f` also reaches another way (through a closure) is held constant, as in JAX.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from minigrad.dtype import dtypes
from minigrad.engine.realize import release_after_use
from minigrad.gradient import gradient, tangent
from minigrad.helpers import map_leaves
from minigrad.lazy import LazyNode, toposort
from minigrad.ops import Op
from minigrad.tensor import Tensor, no_grad

Argnums = int | Sequence[int]


# ---- plumbing: structures of Tensors, aliases -------------------------------------------------------


_recording = functools.partial(no_grad, False)  # a transform records gradients even under no_grad()


def _leaves(structure: Any, where: str = "a value") -> list[Tensor]:
    found: list[Tensor] = []
    map_leaves(structure, found.append, Tensor, where)
    return found


def _rebuild(structure: Any, values: list[Tensor]) -> Any:
    """`structure` with its Tensors replaced, in order, by `values`."""
    it = iter(values)
    return map_leaves(structure, lambda _: next(it), Tensor, "a value")


def _alias(t: Tensor, name: str) -> Tensor:
    if not dtypes.is_float(t.dtype):
        raise TypeError(f"{name}: cannot differentiate with respect to a {t.dtype.name} tensor; pass floats")
    return Tensor._from_node(t.lazydata.alias(), requires_grad=True)


def _argnums(argnums: Argnums, nargs: int, name: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums or any(not -nargs <= i < nargs for i in nums):
        raise ValueError(f"{name}: argnums={argnums} does not fit a call with {nargs} positional arguments")
    return tuple(i % nargs for i in nums)


def _aliased(args: Sequence, nums: Sequence[int], name: str) -> list:
    """The arguments, with the Tensors inside those at `nums` replaced by fresh aliases."""
    out = list(args)
    for i in nums:
        out[i] = map_leaves(out[i], lambda t: _alias(t, name), Tensor, f"{name}: argument {i}")
    return out


def _zeros_if_none(nodes: list[LazyNode | None], like: list[Tensor]) -> list[Tensor]:
    return [
        Tensor._from_node(n if n is not None else t.lazydata.const_like(0.0), requires_grad=True)
        for n, t in zip(nodes, like)
    ]


def _nodes(tensors: list[Tensor]) -> list[LazyNode]:
    return [t.lazydata for t in tensors]


def _reverse(outputs: list[Tensor], cotangents: list[Tensor], wrt: list[Tensor]) -> list[Tensor]:
    return _zeros_if_none(gradient(_nodes(outputs), _nodes(wrt), _nodes(cotangents)), wrt)


def _forward(outputs: list[Tensor], inputs: list[Tensor], tangents: list[Tensor]) -> list[Tensor]:
    return _zeros_if_none(tangent(_nodes(outputs), _nodes(inputs), _nodes(tangents)), outputs)


def _matching(values: list[Tensor], like: list[Tensor], name: str, what: str) -> list[Tensor]:
    """`values` checked against `like` (count, shape, device) and cast to its dtypes."""
    if len(values) != len(like):
        raise ValueError(f"{name}: got {len(values)} {what}, expected {len(like)} (one per Tensor)")
    for v, t in zip(values, like):
        if v.shape != t.shape or v.device != t.device:
            raise ValueError(
                f"{name}: a {what[:-1]} has shape {v.shape} on {v.device}, expected {t.shape} on {t.device}"
            )
    return [v.cast(t.dtype) for v, t in zip(values, like)]


def _one_hot(k: int, like: Tensor) -> Tensor:
    """1 at flat position k, 0 elsewhere, with like's shape, dtype and device. Host data, not a constant
    in the kernel: the Jacobian's walks then share their compiled kernels."""
    flat = np.zeros(like.numel(), dtype=like.dtype.np)
    flat[k] = 1
    return Tensor(flat.reshape(like.shape), device=like.device)


# ---- reverse mode -------------------------------------------------------------------------------------


def value_and_grad(f: Callable, argnums: Argnums = 0) -> Callable:
    """A function returning (f(*args), gradient of f with respect to args[argnums]). f must return a
    one-element Tensor; each gradient has the structure of its argument (a tuple of them for a tuple)."""

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        nums = _argnums(argnums, len(args), "grad")
        args = _aliased(args, nums, "grad")
        with _recording():
            out = f(*args, **kwargs)
        if not isinstance(out, Tensor) or out.numel() != 1:
            got = out.shape if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"grad: f must return a one-element Tensor, got {got}; use vjp or jacrev")
        wrt = [_leaves(args[i]) for i in nums]
        flat = _reverse([out], [Tensor.ones_like(out)], [t for ts in wrt for t in ts])
        grads, start = [], 0
        for i, ts in zip(nums, wrt):
            grads.append(_rebuild(args[i], flat[start : start + len(ts)]))
            start += len(ts)
        return out, grads[0] if isinstance(argnums, int) else tuple(grads)

    return value_and_grad_f


def grad(f: Callable, argnums: Argnums = 0) -> Callable:
    """The gradient of the one-element output of f with respect to args[argnums] (see value_and_grad)."""
    value_and_grad_f = value_and_grad(f, argnums)
    return functools.wraps(f)(lambda *args, **kwargs: value_and_grad_f(*args, **kwargs)[1])


def vjp(f: Callable, *primals: Any) -> tuple[Any, Callable]:
    """(f(*primals), vjp_fn): vjp_fn(cotangent shaped like the output) returns cotangent . df/dprimal for
    every primal, as a tuple (each entry shaped like its primal)."""
    args = _aliased(primals, range(len(primals)), "vjp")
    with _recording():
        out = f(*args)
    outputs = _leaves(out, "vjp: the output")

    def vjp_fn(cotangents: Any) -> tuple:
        cots = _matching(_leaves(cotangents, "vjp: the cotangent"), outputs, "vjp", "cotangents")
        flat = _reverse(outputs, cots, _leaves(args))
        results, start = [], 0
        for a in args:
            n = len(_leaves(a))
            results.append(_rebuild(a, flat[start : start + n]))
            start += n
        return tuple(results)

    return out, vjp_fn


# ---- forward mode ------------------------------------------------------------------------------------


def jvp(f: Callable, primals: Sequence, tangents: Sequence) -> tuple[Any, Any]:
    """(f(*primals), df/dprimals . tangents) in one forward pass (forward rules only, no backward walk);
    tangents are shaped like primals, the result's tangent like f's output."""
    primals, tangents = tuple(primals), tuple(tangents)
    args = _aliased(primals, range(len(primals)), "jvp")
    inputs = _leaves(args)
    seeds = _matching(_leaves(tangents, "jvp: the tangents"), inputs, "jvp", "tangents")
    with _recording():
        out = f(*args)
    outputs = _leaves(out, "jvp: the output")
    return out, _rebuild(out, _forward(outputs, inputs, seeds))


def hvp(f: Callable, primals: Sequence, vectors: Sequence) -> tuple:
    """The Hessian of scalar f at primals times vectors, forward-over-reverse: the tangent of grad(f)
    along `vectors`. Costs about one forward and two backward passes; the Hessian is never formed.
    Returns a tuple with one entry per primal."""
    primals = tuple(primals)
    grad_f = grad(f, argnums=tuple(range(len(primals))))
    return jvp(grad_f, primals, tuple(vectors))[1]


# ---- full Jacobians ----------------------------------------------------------------------------------


def _jacobian_setup(f: Callable, args: tuple, argnums: Argnums, name: str):
    nums = _argnums(argnums, len(args), name)
    args = _aliased(args, nums, name)
    wrt = [args[i] for i in nums]
    if not all(isinstance(t, Tensor) for t in wrt):
        raise TypeError(f"{name}: the arguments to differentiate must be Tensors")
    with _recording():
        out = f(*args)
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}: f must return one Tensor, got {type(out).__name__}")
    return wrt, out


def _finish(jacobians: list[Tensor], argnums: Argnums) -> Any:
    return jacobians[0] if isinstance(argnums, int) else tuple(jacobians)


def _reverse_jacobians(wrt: list[Tensor], out: Tensor) -> list[Tensor]:
    rows = [_reverse([out], [_one_hot(k, out)], wrt) for k in range(out.numel())]
    return [Tensor.stack(*[r[j] for r in rows]).reshape(out.shape + t.shape) for j, t in enumerate(wrt)]


def _forward_jacobians(wrt: list[Tensor], out: Tensor) -> list[Tensor]:
    jacobians = []
    for j, t in enumerate(wrt):
        columns = []
        for k in range(t.numel()):
            seeds = [_one_hot(k, t) if i == j else Tensor.zeros_like(x) for i, x in enumerate(wrt)]
            columns.append(_forward([out], wrt, seeds)[0])
        jacobians.append(Tensor.stack(*columns, dim=-1).reshape(out.shape + t.shape))
    return jacobians


def jacrev(f: Callable, argnums: Argnums = 0) -> Callable:
    """The full Jacobian by reverse mode: one backward walk per output element. Shape out.shape + in.shape."""
    return lambda *args: _finish(_reverse_jacobians(*_jacobian_setup(f, args, argnums, "jacrev")), argnums)


def jacfwd(f: Callable, argnums: Argnums = 0) -> Callable:
    """The full Jacobian by forward mode: one forward walk per input element. Shape out.shape + in.shape."""
    return lambda *args: _finish(_forward_jacobians(*_jacobian_setup(f, args, argnums, "jacfwd")), argnums)


def jacobian(f: Callable, argnums: Argnums = 0) -> Callable:
    """The full Jacobian, by forward mode when the inputs have fewer elements than the output (fewer
    walks), by reverse mode otherwise."""

    def jacobian_f(*args: Any) -> Any:
        wrt, out = _jacobian_setup(f, args, argnums, "jacobian")
        forward = sum(t.numel() for t in wrt) < out.numel()
        return _finish((_forward_jacobians if forward else _reverse_jacobians)(wrt, out), argnums)

    return jacobian_f


# ---- checkpointing -----------------------------------------------------------------------------------


def _made_between(roots: list[LazyNode], inputs: list[LazyNode]) -> list[LazyNode]:
    """The computed base nodes between `inputs` and `roots`, the roots' own bases excluded."""
    boundary = {id(n) for n in inputs} | {id(n.base) for n in inputs}
    order = toposort(roots, stop=lambda n: id(n) in boundary or n.realized is not None)
    outside = boundary | {id(r.base) for r in roots}
    return [
        n
        for n in order
        if not n.is_view and n.realized is None and id(n) not in outside and n.op not in (Op.BUFFER, Op.CONST)
    ]


class _Recompute:
    """The FUNCTION rule of a checkpoint: both derivatives run f again on aliases of its inputs."""

    name = "checkpoint"

    def __init__(self, f: Callable, args: tuple, rng_state: dict):
        self.f, self.args, self.rng_state = f, args, rng_state
        self.inputs = [a for a in args if isinstance(a, Tensor)]

    def _rerun(self) -> tuple[list[Tensor], Tensor]:
        args = [
            Tensor._from_node(a.lazydata.alias(), True) if isinstance(a, Tensor) else a for a in self.args
        ]
        now, Tensor._rng.bit_generator.state = Tensor._rng.bit_generator.state, self.rng_state
        try:
            with _recording():
                out = self.f(*args)  # the same random numbers as the first run (dropout)
        finally:
            Tensor._rng.bit_generator.state = now
        return [a for a in args if isinstance(a, Tensor)], out

    def vjp(self, grad_node: LazyNode, needed: tuple[bool, ...]) -> tuple[LazyNode | None, ...]:
        fresh, out = self._rerun()
        grads = gradient([out.lazydata], _nodes(fresh), [grad_node])
        computed = [g for g in grads if g is not None]
        release_after_use(_made_between(computed, [grad_node] + _nodes(self.inputs)))
        return tuple(grads)

    def jvp(self, tangents: tuple[LazyNode | None, ...]) -> LazyNode | None:
        fresh, out = self._rerun()
        given = [(t.lazydata, s) for t, s in zip(fresh, tangents) if s is not None]
        return tangent([out.lazydata], [t for t, _ in given], [s for _, s in given])[0]


def checkpoint(f: Callable) -> Callable:
    """f, except that the backward pass runs f's forward again instead of keeping its intermediates: they
    are freed right after the forward kernels that read them. f takes Tensors (and other values) as
    positional arguments and returns one Tensor; random numbers repeat in the rerun (dropout)."""

    @functools.wraps(f)
    def checkpointed(*args: Any) -> Tensor:
        inputs = [a for a in args if isinstance(a, Tensor)]
        rng_state = Tensor._rng.bit_generator.state
        with no_grad():
            out = f(*args)
        if not isinstance(out, Tensor):
            raise TypeError(f"checkpoint: f must return one Tensor, got {type(out).__name__}")
        release_after_use(_made_between([out.lazydata], _nodes(inputs)))
        if not inputs:
            return out
        node = out.lazydata.custom_rule(tuple(_nodes(inputs)), _Recompute(f, args, rng_state))
        return inputs[0]._wrap(node, *inputs)

    return checkpointed


__all__ = ["grad", "value_and_grad", "vjp", "jvp", "hvp", "jacrev", "jacfwd", "jacobian", "checkpoint"]
