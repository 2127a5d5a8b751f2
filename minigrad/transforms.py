"""Functional autograd in the JAX style: transforms that take a function of Tensors and give a function.

In: a Python function `f` of Tensors (arguments may be lists, tuples or dicts of Tensors) and the point at
which to differentiate it. Out: derivatives as new lazy Tensors, built by gradient.py's two walks. They
are realized like any other graph (fused with the forward pass) and can be differentiated again.

| transform                  | mode                 | cost                                              |
|----------------------------|----------------------|---------------------------------------------------|
| grad, value_and_grad, vjp  | reverse              | one backward walk                                 |
| jvp                        | forward              | one forward walk; no reverse rule runs            |
| hvp                        | forward-over-reverse | jvp of grad: the Hessian is never formed          |
| jacrev, jacfwd, jacobian   | reverse / forward    | one walk, batched by vmap over the output's /     |
|                            |                      | input's elements (one-hot seeds)                  |
| hessian                    | forward-over-reverse | jacfwd of jacrev                                  |
| linearize                  | forward              | f once; each jvp_fn call one forward-rule graph   |
| vmap (batching.py)         | batching             | one graph over the whole batch                    |
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

from minigrad.batching import vmap
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


def _rebuild(structure: Any, values: list[Any]) -> Any:
    """`structure` with its Tensors replaced, in order, by `values` (Tensors, or Jacobian structures)."""
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


# ---- reverse mode -------------------------------------------------------------------------------------


def value_and_grad(f: Callable, argnums: Argnums = 0, has_aux: bool = False) -> Callable:
    """A function returning (f(*args), gradient of f with respect to args[argnums]). f must return a
    one-element Tensor; each gradient has the structure of its argument (a tuple of them for a tuple).
    has_aux: f returns (output, aux), and the result is ((output, aux), gradient), as JAX's."""

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        nums = _argnums(argnums, len(args), "grad")
        args = _aliased(args, nums, "grad")
        with _recording():
            out, aux = _split_aux(f(*args, **kwargs), has_aux, "grad")
        if not isinstance(out, Tensor) or out.numel() != 1:
            got = out.shape if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"grad: f must return a one-element Tensor, got {got}; use vjp or jacrev")
        wrt = [_leaves(args[i]) for i in nums]
        flat = _reverse([out], [Tensor.ones_like(out)], [t for ts in wrt for t in ts])
        grads = _per_argument(flat, [args[i] for i in nums])
        grads = grads[0] if isinstance(argnums, int) else tuple(grads)
        return ((out, _detached(aux)) if has_aux else out), grads

    return value_and_grad_f


def grad(f: Callable, argnums: Argnums = 0, has_aux: bool = False) -> Callable:
    """The gradient of the one-element output of f with respect to args[argnums] (see value_and_grad);
    with has_aux, (gradient, aux) as torch.func's and JAX's."""
    value_and_grad_f = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def grad_f(*args: Any, **kwargs: Any) -> Any:
        value, grads = value_and_grad_f(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    return grad_f


def grad_and_value(f: Callable, argnums: Argnums = 0, has_aux: bool = False) -> Callable:
    """torch.func's order of value_and_grad: (gradient, value), with has_aux (gradient, (value, aux))."""
    value_and_grad_f = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def grad_and_value_f(*args: Any, **kwargs: Any) -> Any:
        value, grads = value_and_grad_f(*args, **kwargs)
        return grads, value

    return grad_and_value_f


def _split_aux(result: Any, has_aux: bool, name: str) -> tuple[Any, Any]:
    """(output, aux) of a function called with has_aux (which must return a pair), else (result, None)."""
    if not has_aux:
        return result, None
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise TypeError(f"{name}: with has_aux=True, f must return a pair (output, aux)")
    return result[0], result[1]


def _detached(aux: Any) -> Any:
    """aux as f returned it, its Tensors cut from the graph the transform traced (as JAX's)."""
    return map_leaves(aux, lambda t: t.detach(), Tensor, "aux")


def _per_argument(flat: list[Tensor], structures: list[Any]) -> list[Any]:
    """`flat` (one entry per Tensor inside `structures`, in order) regrouped as each structure."""
    out, start = [], 0
    for structure in structures:
        n = len(_leaves(structure))
        out.append(_rebuild(structure, flat[start : start + n]))
        start += n
    return out


def vjp(f: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """(f(*primals), vjp_fn): vjp_fn(cotangent shaped like the output) returns cotangent . df/dprimal for
    every primal, as a tuple (each entry shaped like its primal). has_aux: f returns (output, aux), and the
    result is (output, vjp_fn, aux), as torch.func's."""
    args = _aliased(primals, range(len(primals)), "vjp")
    with _recording():
        out, aux = _split_aux(f(*args), has_aux, "vjp")
    outputs = _leaves(out, "vjp: the output")

    def vjp_fn(cotangents: Any) -> tuple:
        cots = _matching(_leaves(cotangents, "vjp: the cotangent"), outputs, "vjp", "cotangents")
        return tuple(_per_argument(_reverse(outputs, cots, _leaves(args)), list(args)))

    return (out, vjp_fn, _detached(aux)) if has_aux else (out, vjp_fn)


# ---- forward mode ------------------------------------------------------------------------------------


def jvp(f: Callable, primals: Sequence, tangents: Sequence, *, has_aux: bool = False) -> tuple:
    """(f(*primals), df/dprimals . tangents) in one forward pass (forward rules only, no backward walk);
    tangents are shaped like primals, the result's tangent like f's output. has_aux: f returns (output,
    aux), and the result is (output, tangent, aux), as torch.func's."""
    primals, tangents = tuple(primals), tuple(tangents)
    args = _aliased(primals, range(len(primals)), "jvp")
    inputs = _leaves(args)
    seeds = _matching(_leaves(tangents, "jvp: the tangents"), inputs, "jvp", "tangents")
    with _recording():
        out, aux = _split_aux(f(*args), has_aux, "jvp")
    outputs = _leaves(out, "jvp: the output")
    tangent = _rebuild(out, _forward(outputs, inputs, seeds))
    return (out, tangent, _detached(aux)) if has_aux else (out, tangent)


def hvp(f: Callable, primals: Sequence, vectors: Sequence) -> tuple:
    """The Hessian of scalar f at primals times vectors, forward-over-reverse: the tangent of grad(f)
    along `vectors`. Costs about one forward and two backward passes; the Hessian is never formed.
    Returns a tuple with one entry per primal."""
    primals = tuple(primals)
    grad_f = grad(f, argnums=tuple(range(len(primals))))
    return jvp(grad_f, primals, tuple(vectors))[1]


# ---- full Jacobians, on vmap ---------------------------------------------------------------------


def _jacobian_setup(f: Callable, args: tuple, argnums: Argnums, has_aux: bool, name: str):
    """Trace f on aliases of args[argnums]: (the aliased arguments differentiated, f's output, aux)."""
    nums = _argnums(argnums, len(args), name)
    args = _aliased(args, nums, name)
    with _recording():
        out, aux = _split_aux(f(*args), has_aux, name)
    _leaves(out, f"{name}: the output")
    return [args[i] for i in nums], out, aux


def _basis(like: list[Tensor]) -> list[Tensor]:
    """The identity over every element of `like` together, cut into one batch of seeds per Tensor:
    seed j has shape (total,) + like[j].shape and row k is 1 at the k-th element of all of them."""
    total = sum(t.numel() for t in like)
    eye, seeds, start = Tensor.eye(total, device=like[0].device if like else None), [], 0
    for t in like:
        columns = eye[:, start : start + t.numel()] if total else eye
        seeds.append(columns.reshape((total,) + t.shape).cast(t.dtype).to(t.device))
        start += t.numel()
    return seeds


def _assemble(blocks: list[list[Tensor]], outputs: Any, wrt: list[Any], argnums: Argnums) -> Any:
    """torch.func's structure from blocks[i][j] (output leaf i, input leaf j; its elements in the order of
    o.shape + x.shape): output structure outside, then one entry per argnum (a tuple when argnums is one),
    then each argument's structure."""
    inputs, per_output = [x for arg in wrt for x in _leaves(arg)], []
    for o, row in zip(_leaves(outputs), blocks):
        grouped = _per_argument([b.reshape(o.shape + x.shape) for b, x in zip(row, inputs)], wrt)
        per_output.append(grouped[0] if isinstance(argnums, int) else tuple(grouped))
    return _rebuild(outputs, per_output)


def _reverse_jacobian(wrt: list[Any], out: Any, argnums: Argnums) -> Any:
    """One backward graph, batched by vmap over every output element at once (one-hot cotangents)."""
    outputs, inputs = _leaves(out), [x for arg in wrt for x in _leaves(arg)]
    rows = vmap(lambda *seeds: tuple(_reverse(outputs, list(seeds), inputs)))(*_basis(outputs))
    blocks, start = [], 0  # rows[j]: (outputs' elements,) + input j's shape
    for o in outputs:
        blocks.append([r[start : start + o.numel()] for r in rows])
        start += o.numel()
    return _assemble(blocks, out, wrt, argnums)


def _forward_jacobian(wrt: list[Any], out: Any, argnums: Argnums) -> Any:
    """One forward-rule graph, batched by vmap over every input element at once (one-hot tangents)."""
    outputs, inputs = _leaves(out), [x for arg in wrt for x in _leaves(arg)]
    batched = vmap(lambda *seeds: tuple(_forward(outputs, inputs, list(seeds))), out_axes=-1)
    columns = batched(*_basis(inputs))  # columns[i]: output i's shape + (inputs' elements,)
    blocks = []
    for c in columns:
        row, start = [], 0
        for x in inputs:
            row.append(c[..., start : start + x.numel()])
            start += x.numel()
        blocks.append(row)
    return _assemble(blocks, out, wrt, argnums)


def jacrev(
    f: Callable, argnums: Argnums = 0, has_aux: bool = False, *, chunk_size: int | None = None
) -> Callable:
    """The Jacobian of f by reverse mode, as torch.func.jacrev: one backward graph, batched over every
    output element at once by vmap. f may take and return lists, tuples and dicts of Tensors; the result
    for an output o and an input x has shape o.shape + x.shape. has_aux: f returns (output, aux), and the
    result is (jacobian, aux). chunk_size is accepted as vmap's (the same result)."""
    vmap(f, chunk_size=chunk_size)  # validates it

    def jacrev_f(*args: Any) -> Any:
        wrt, out, aux = _jacobian_setup(f, args, argnums, has_aux, "jacrev")
        jac = _reverse_jacobian(wrt, out, argnums)
        return (jac, _detached(aux)) if has_aux else jac

    return jacrev_f


def jacfwd(
    f: Callable, argnums: Argnums = 0, has_aux: bool = False, *, randomness: str = "error"
) -> Callable:
    """The Jacobian of f by forward mode, as torch.func.jacfwd: one forward-rule graph, batched over every
    input element at once by vmap. Structures, shapes and has_aux as jacrev; randomness as vmap's."""
    vmap(f, randomness=randomness)  # validates it

    def jacfwd_f(*args: Any) -> Any:
        wrt, out, aux = _jacobian_setup(f, args, argnums, has_aux, "jacfwd")
        jac = _forward_jacobian(wrt, out, argnums)
        return (jac, _detached(aux)) if has_aux else jac

    return jacfwd_f


def jacobian(f: Callable, argnums: Argnums = 0) -> Callable:
    """The full Jacobian, by forward mode when the inputs have fewer elements than the outputs, by
    reverse mode otherwise (the other one's batch would be larger)."""

    def jacobian_f(*args: Any) -> Any:
        wrt, out, _ = _jacobian_setup(f, args, argnums, False, "jacobian")
        n_in = sum(t.numel() for arg in wrt for t in _leaves(arg))
        forward = n_in < sum(t.numel() for t in _leaves(out))
        return (_forward_jacobian if forward else _reverse_jacobian)(wrt, out, argnums)

    return jacobian_f


def hessian(f: Callable, argnums: Argnums = 0) -> Callable:
    """The Hessian of scalar f, forward over reverse (jacfwd of jacrev), as torch.func.hessian: for one
    argnum, shape x.shape + x.shape; for a tuple of argnums, a nested tuple H[i][j] = d2f / dx_i dx_j."""
    return jacfwd(jacrev(f, argnums), argnums)


def linearize(f: Callable, *primals: Any) -> tuple[Any, Callable]:
    """(f(*primals), jvp_fn) as jax.linearize: f runs once; jvp_fn(*tangents) (shaped like primals) gives
    the output's tangent at primals, by the forward rules over the graph f recorded, without running f."""
    args = _aliased(primals, range(len(primals)), "linearize")
    inputs = _leaves(args)
    with _recording():
        out = f(*args)
    outputs = _leaves(out, "linearize: the output")

    def jvp_fn(*tangents: Any) -> Any:
        seeds = _matching(_leaves(tangents, "linearize: the tangents"), inputs, "linearize", "tangents")
        return _rebuild(out, _forward(outputs, inputs, seeds))

    return out, jvp_fn


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

    def vjp(self, grad_node: LazyNode, needed: tuple[bool, ...], grad_of=None) -> tuple[LazyNode | None, ...]:
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


__all__ = [
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "hvp",
    "jacrev",
    "jacfwd",
    "jacobian",
    "hessian",
    "linearize",
    "checkpoint",
    "vmap",
]
