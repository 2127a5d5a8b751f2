"""User-defined differentiable ops, as torch.autograd.Function.

In: a subclass with `forward(ctx, *args, **kwargs)` (Tensor ops, run without recording gradients) and
`backward(ctx, grad_out)` (one gradient per Tensor argument, None where there is none), and optionally
`jvp(ctx, *tangents)`, the forward-mode rule (one tangent per Tensor argument in, the output's tangent out).
torch 2's style works too: `forward(*args)` without ctx and `setup_context(ctx, inputs, output)`.
Out: `MyOp.apply(*args)`, a Tensor whose lazy node is a FUNCTION view (ops.py). Its value is forward's
result; its derivatives come from your methods, in backward(), gradient() and every transform.

    >>> from minigrad import Function, Tensor
    >>> class Exp(Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         y = x.exp()
    ...         ctx.save_for_backward(y)
    ...         return y
    ...
    ...     @staticmethod
    ...     def backward(ctx, grad):
    ...         (y,) = ctx.saved_tensors
    ...         return grad * y
    >>> x = Tensor([0.0, 1.0], requires_grad=True)
    >>> _ = Exp.apply(x).sum().backward()
    >>> x.grad.numpy().round(4)
    array([1.    , 2.7183], dtype=float32)

forward may return a tuple of Tensors: backward then gets one gradient per output (zeros for an output
the result does not depend on, or None after `ctx.set_materialize_grads(False)`, as torch) and jvp returns
one tangent per output.

Backward builds Tensor ops on `grad`, so its result can be differentiated again when those ops depend on
the inputs: saved inputs keep their graph, and a saved output stands for the Function's result (as torch:
its derivative is this Function's own rule again); other values computed inside forward are constants.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any, Callable

from minigrad.lazy import LazyNode
from minigrad.tensor import Tensor, no_grad


class FunctionCtx:
    """What forward leaves for backward: `save_for_backward(*tensors)` then `saved_tensors`, any attribute
    you set, and `needs_input_grad` (one flag per argument, as torch)."""

    def __init__(self, args: tuple):
        self.saved_tensors: tuple[Tensor, ...] = ()
        self.needs_input_grad = tuple(isinstance(a, Tensor) and bool(a.requires_grad) for a in args)
        self.materialize_grads = True
        self.saved_for_forward: tuple[Tensor, ...] | None = None
        self.non_differentiable: set[int] = set()

    def save_for_backward(self, *tensors: Tensor) -> None:
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *outputs: Tensor) -> None:
        """These outputs (integer indices, masks) are constants: no gradient flows through them (as torch)."""
        self.non_differentiable = {id(t) for t in outputs}

    def save_for_forward(self, *tensors: Tensor) -> None:
        """What jvp reads as `saved_tensors` (torch's name; without it jvp sees save_for_backward's)."""
        self.saved_for_forward = tensors

    def set_materialize_grads(self, value: bool) -> None:
        """False: backward gets None, not zeros, for the outputs the result does not depend on."""
        self.materialize_grads = value


class Function:
    """Subclass it; call `YourOp.apply(*args, **kwargs)`. See the module docstring."""

    jvp = None  # the forward-mode rule, when a subclass defines one
    # torch 2's style, which torch.func requires: forward(*args) without ctx, then setup_context(ctx, inputs,
    # output) saves what backward needs (a subclass defines it as a staticmethod)
    setup_context = None

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any, **kwargs: Any) -> Tensor:
        raise NotImplementedError("a Function subclass defines forward(ctx, *args)")

    @staticmethod
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> Any:
        raise NotImplementedError("a Function subclass defines backward(ctx, grad_out)")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        ctx = FunctionCtx(args)
        inputs = [a for a in args if isinstance(a, Tensor)]
        with no_grad():
            if cls.setup_context is None:
                out = cls.forward(ctx, *args, **kwargs)
            else:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
        outs = out if isinstance(out, tuple) else (out,)
        if not outs or not all(isinstance(o, Tensor) for o in outs):
            raise TypeError(
                f"{cls.__name__}.forward must return a Tensor or a tuple of them, not {out!r:.80}"
            )
        if not inputs:
            return out
        rule = _UserRule(cls, ctx, args, inputs, [o.lazydata for o in outs])
        results = []
        for i, o in enumerate(outs):
            if id(o) in ctx.non_differentiable:
                results.append(Tensor._from_node(o.lazydata, requires_grad=False))  # a constant
                continue
            node = o.lazydata.custom_rule(tuple(t.lazydata for t in inputs), _Output(rule, i))
            results.append(inputs[0]._wrap(node, *inputs))
        rule.results = [weakref.ref(r.lazydata) for r in results]
        ctx.saved_tensors = _kept_for_rules(ctx.saved_tensors, outs)
        if ctx.saved_for_forward is not None:
            ctx.saved_for_forward = _kept_for_rules(ctx.saved_for_forward, outs)
        return results[0] if isinstance(out, Tensor) else tuple(results)


def _kept_for_rules(saved: tuple, outs: tuple) -> tuple:
    """What ctx keeps of the tensors forward saved. A saved output becomes a _SavedResult: differentiating
    backward goes through this Function again. Any other Tensor becomes a new Tensor over the same node,
    not the caller's object: the rule is reachable from the gradient graph, and holding the input `x`
    would close a cycle x -> x.grad -> ... -> this rule -> x, which only the garbage collector frees, with
    every buffer of the step in it (they then miss the allocator's cache: fresh pages each step)."""
    kept = []
    for t in saved:
        result = next((_SavedResult(i) for i, o in enumerate(outs) if t is o), None)
        if result is None and isinstance(t, Tensor):
            result = Tensor._from_node(t.lazydata, t.requires_grad)
        kept.append(t if result is None else result)
    return tuple(kept)


class _SavedResult:
    """Output `index` of the call, as saved in ctx: resolved to the result when a rule runs (the ctx holding
    the result itself would make a reference cycle, freed only by the garbage collector, with its buffers)."""

    def __init__(self, index: int):
        self.index = index


class _UserRule:
    """What one call of a Function leaves for the derivative walks: its ctx, arguments and output nodes."""

    def __init__(self, function: type[Function], ctx: FunctionCtx, args: tuple, inputs: list[Tensor], values):
        self.function, self.ctx = function, ctx
        # the inputs' nodes and which arguments were Tensors, not the Tensors: x.grad's graph can reach
        # this rule (a saved output), and the rule holding x would make a cycle
        self.inputs = [t.lazydata for t in inputs]
        self.is_tensor = tuple(isinstance(a, Tensor) for a in args)
        self.values = values  # forward's outputs (the FUNCTION nodes' values: their shapes, dtypes)
        self.shapes = [v.shape for v in values]
        self.name, self.results = function.__name__, []  # results: weak references to the FUNCTION nodes

    @property
    def nodes(self) -> list[LazyNode | None]:
        """The FUNCTION nodes of the call's outputs (None for one nobody holds any more: not in a graph)."""
        return [ref() for ref in self.results]

    @contextlib.contextmanager
    def _saved(self, tensors: tuple):
        """ctx.saved_tensors as a rule sees them, the call's outputs resolved to its results, meanwhile."""
        nodes, ctx, kept = self.nodes, self.ctx, self.ctx.saved_tensors

        def resolved(t: Any) -> Any:
            if not isinstance(t, _SavedResult):
                return t
            node = nodes[t.index]
            return Tensor._from_node(node if node is not None else self.values[t.index], requires_grad=True)

        ctx.saved_tensors = tuple(resolved(t) for t in tensors)
        try:
            yield ctx
        finally:
            ctx.saved_tensors = kept

    def vjp(
        self, index: int, grad: LazyNode, needed: tuple[bool, ...], grad_of: Callable
    ) -> tuple[LazyNode | None, ...]:
        """The inputs' gradients for all outputs at once, returned for the output the walk reaches first
        (the last one with a gradient: the walk goes in reverse creation order, and every output's gradient
        is complete by then); the others return None."""
        nodes = self.nodes
        later = [grad_of(node) if node is not None else None for node in nodes[index + 1 :]]
        if any(g is not None for g in later):
            return (None,) * len(self.inputs)
        out_grads = [grad_of(node) if node is not None else None for node in nodes[:index]] + [grad] + later
        wanted = iter(needed)  # what the walk needs (it may differentiate tensors without requires_grad)
        self.ctx.needs_input_grad = tuple(tensor and next(wanted) for tensor in self.is_tensor)
        with self._saved(self.ctx.saved_tensors) as ctx:
            grads = self.function.backward(ctx, *[self._seed(g, i) for i, g in enumerate(out_grads)])
        grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
        if len(grads) == len(self.is_tensor) != len(self.inputs):  # one per argument, as torch: the Tensors'
            grads = tuple(g for g, tensor in zip(grads, self.is_tensor) if tensor)
        if len(grads) != len(self.inputs):
            raise ValueError(
                f"{self.name}.backward returned {len(grads)} gradients, but forward took "
                f"{len(self.inputs)} Tensor arguments"
            )
        return tuple(
            self._checked(g, x.shape, "backward", i) for i, (g, x) in enumerate(zip(grads, self.inputs))
        )

    def _seed(self, grad: LazyNode | None, index: int) -> Tensor | None:
        """Output `index`'s gradient as backward gets it: zeros (or None) where the result ignores it."""
        if grad is None:
            if not self.ctx.materialize_grads:
                return None
            grad = self.values[index].const_like(0.0)
        return Tensor._from_node(grad, requires_grad=True)

    def jvp(self, index: int, tangents: tuple[LazyNode | None, ...]) -> LazyNode | None:
        if self.function.jvp is None:
            raise RuntimeError(
                f"{self.name} has no forward-mode rule: define jvp(ctx, *tangents) on it to use it under "
                "minigrad.jvp, hvp or jacfwd"
            )
        zeros = [t if t is not None else x.const_like(0.0) for t, x in zip(tangents, self.inputs)]
        forward = self.ctx.saved_for_forward
        with self._saved(self.ctx.saved_tensors if forward is None else forward) as ctx:
            out = self.function.jvp(ctx, *[Tensor._from_node(t, requires_grad=True) for t in zeros])
        if len(self.shapes) > 1:
            if not isinstance(out, (tuple, list)) or len(out) != len(self.shapes):
                raise ValueError(f"{self.name}.jvp must return {len(self.shapes)} tangents, one per output")
            out = out[index]
        return self._checked(out, self.shapes[index], "jvp", index)

    def _checked(self, value: Any, shape: tuple[int, ...], method: str, i: int) -> LazyNode | None:
        if value is None:
            return None
        if not isinstance(value, Tensor) or value.shape != shape:
            got = value.shape if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{self.name}.{method}: result {i} is {got}, expected a Tensor of shape {shape}")
        return value.lazydata


class _Output:
    """The rule of a FUNCTION node: output `index` of one Function call (gradient.py calls vjp and jvp)."""

    def __init__(self, rule: _UserRule, index: int):
        self.rule, self.index, self.name = rule, index, rule.name

    def vjp(self, grad: LazyNode, needed: tuple[bool, ...], grad_of: Callable = lambda node: None) -> tuple:
        return self.rule.vjp(self.index, grad, needed, grad_of)

    def jvp(self, tangents: tuple[LazyNode | None, ...]) -> LazyNode | None:
        return self.rule.jvp(self.index, tangents)
