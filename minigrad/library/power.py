"""a ** b for float tensors, with torch's derivatives at the edges.

In: two float tensors of one shape (tensor.py's `pow` broadcasts them). Out: `Pow.apply(a, b)`, whose value is
C's pow and whose gradients are torch's rules: d/da = b * a ** (b - 1), 0 where b == 0; d/db = a ** b * log(a),
0 where a == 0 and b >= 0. Differentiated through its exp2/log2 composition instead, the selects that make 0,
inf and negative bases right would also cut the gradient there (0 where torch gives NaN or inf).
"""

from __future__ import annotations

import math

from minigrad.function import Function, FunctionCtx
from minigrad.tensor import Tensor


def pow_value(a: Tensor, b: Tensor) -> Tensor:
    """C's pow from exp2 and log2: |a| ** b, its sign for odd integer b, and the special cases as selects."""
    zero, is_int = a == 0, b == b.trunc()
    magnitude = _magnitude(zero.where(1.0, a.abs()), b)  # a == 0 is a constant: log2(0) would make NaN
    magnitude = zero.where((b > 0).where(0.0, (b < 0).where(math.inf, math.nan)), magnitude)
    negative = (a < 0) | (zero & (a.reciprocal() < 0))  # the sign bit, -0 included
    odd = is_int & ((b.abs() % 2) == 1)
    signed = (negative & odd).where(-magnitude, magnitude)
    invalid = (a < 0) & (a > -math.inf) & b.isinf().logical_not() & is_int.logical_not()
    # C's pow is 1 where exp2/log2 give NaN: a ** 0 for a in (0, inf, nan), 1 ** nan, (-1) ** inf
    one = magnitude.isnan() & ((b == 0) | (a == 1) | ((a == -1) & b.isinf()))
    return one.where(1.0, invalid.where(math.nan, signed))


def _magnitude(a: Tensor, b: Tensor) -> Tensor:
    """a ** b for a > 0 as 2 ** (b * log2 a). The product's rounding error is relative to |b * log2 a|, which
    float32 cannot carry (164 ulp at (1e-30) ** 1): where the device has float64, the product and the
    exp2 are done in it (as C's powf does) and rounded once at the end, within 1 ulp of torch."""
    return (b._wide() * a._wide().log2()).exp2().cast(a.dtype)


class Pow(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(a, b)
        return pow_value(a, b)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (
            grad * _base_slope(a, b) if need_a else None,
            grad * _exponent_slope(a, b) if need_b else None,
        )

    @staticmethod
    def jvp(ctx: FunctionCtx, tangent_a: Tensor, tangent_b: Tensor) -> Tensor:
        a, b = ctx.saved_tensors
        return tangent_a * _base_slope(a, b) + tangent_b * _exponent_slope(a, b)


def _base_slope(a: Tensor, b: Tensor) -> Tensor:
    return (b == 0).where(0.0, b * Pow.apply(a, b - 1))


def _exponent_slope(a: Tensor, b: Tensor) -> Tensor:
    return ((a == 0) & (b >= 0)).where(0.0, Pow.apply(a, b) * a.log())
