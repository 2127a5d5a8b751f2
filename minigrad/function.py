"""User-defined differentiable ops, as torch.autograd.Function.

In: a subclass with `forward(ctx, *args, **kwargs)` (Tensor ops, run without recording gradients) and
`backward(ctx, grad_out)` (one gradient per Tensor argument, None where there is none), and optionally
`jvp(ctx, *tangents)`, the forward-mode rule (one tangent per Tensor argument in, the output's tangent out).
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

Backward builds Tensor ops on `grad`, so its result can be differentiated again when those ops depend on
the inputs (saved inputs keep their graph; values computed inside forward do not).
"""

from __future__ import annotations

from typing import Any

from minigrad.lazy import LazyNode
from minigrad.tensor import Tensor, no_grad


class FunctionCtx:
    """What forward leaves for backward: `save_for_backward(*tensors)` then `saved_tensors`, any attribute
    you set, and `needs_input_grad` (one flag per argument, as torch)."""

    def __init__(self, args: tuple):
        self.saved_tensors: tuple[Tensor, ...] = ()
        self.needs_input_grad = tuple(isinstance(a, Tensor) and bool(a.requires_grad) for a in args)

    def save_for_backward(self, *tensors: Tensor) -> None:
        self.saved_tensors = tensors


class Function:
    """Subclass it; call `YourOp.apply(*args, **kwargs)`. See the module docstring."""

    jvp = None  # the forward-mode rule, when a subclass defines one

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any, **kwargs: Any) -> Tensor:
        raise NotImplementedError("a Function subclass defines forward(ctx, *args)")

    @staticmethod
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> Any:
        raise NotImplementedError("a Function subclass defines backward(ctx, grad_out)")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        ctx = FunctionCtx(args)
        inputs = [a for a in args if isinstance(a, Tensor)]
        with no_grad():
            out = cls.forward(ctx, *args, **kwargs)
        if not isinstance(out, Tensor):
            raise TypeError(f"{cls.__name__}.forward must return one Tensor, not {type(out).__name__}")
        if not inputs:
            return out
        node = out.lazydata.custom_rule(
            tuple(t.lazydata for t in inputs), _UserRule(cls, ctx, args, inputs, out.shape)
        )
        return inputs[0]._wrap(node, *inputs)


class _UserRule:
    """The rule object a FUNCTION node carries (gradient.py calls vjp and jvp with lazy nodes)."""

    def __init__(self, function: type[Function], ctx: FunctionCtx, args: tuple, inputs: list[Tensor], shape):
        self.function, self.ctx, self.args, self.inputs, self.shape = function, ctx, args, inputs, shape
        self.name = function.__name__

    def vjp(self, grad: LazyNode, needed: tuple[bool, ...]) -> tuple[LazyNode | None, ...]:
        wanted = iter(
            needed
        )  # what the gradient walk needs (it may differentiate tensors without requires_grad)
        self.ctx.needs_input_grad = tuple(isinstance(a, Tensor) and next(wanted) for a in self.args)
        grads = self.function.backward(self.ctx, Tensor._from_node(grad, requires_grad=True))
        grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
        if len(grads) == len(self.args) != len(self.inputs):  # one per argument, as torch: keep the Tensors'
            grads = tuple(g for g, a in zip(grads, self.args) if isinstance(a, Tensor))
        if len(grads) != len(self.inputs):
            raise ValueError(
                f"{self.name}.backward returned {len(grads)} gradients, but forward took "
                f"{len(self.inputs)} Tensor arguments"
            )
        return tuple(
            self._checked(g, x.shape, "backward", i) for i, (g, x) in enumerate(zip(grads, self.inputs))
        )

    def jvp(self, tangents: tuple[LazyNode | None, ...]) -> LazyNode | None:
        if self.function.jvp is None:
            raise RuntimeError(
                f"{self.name} has no forward-mode rule: define jvp(ctx, *tangents) on it to use it under "
                "minigrad.jvp, hvp or jacfwd"
            )
        zeros = [t if t is not None else x.lazydata.const_like(0.0) for t, x in zip(tangents, self.inputs)]
        out = self.function.jvp(self.ctx, *[Tensor._from_node(t, requires_grad=True) for t in zeros])
        return self._checked(out, self.shape, "jvp", 0)

    def _checked(self, value: Any, shape: tuple[int, ...], method: str, i: int) -> LazyNode | None:
        if value is None:
            return None
        if not isinstance(value, Tensor) or value.shape != shape:
            got = value.shape if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{self.name}.{method}: result {i} is {got}, expected a Tensor of shape {shape}")
        return value.lazydata
