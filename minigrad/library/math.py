"""Elementwise math and activations: exp, log, trigonometry, sigmoid, tanh, gelu, relu and friends.

In: Tensors. Out: Tensors. The methods of one mixin class that `Tensor` (tensor.py) inherits: `self` is
always a Tensor, and new tensors are made through `type(self)` (this module cannot import tensor.py).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from minigrad.dtype import dtypes
from minigrad.library.shapes import Operand, Scalar
from minigrad.ops import Op

if TYPE_CHECKING:
    from minigrad.tensor import Tensor


class MathOps:
    __slots__ = ()

    # ---- unary math -----------------------------------------------------------------------------

    def exp2(self) -> "Tensor":
        return self._float()._alu(Op.EXP2)

    def log2(self) -> "Tensor":
        return self._float()._alu(Op.LOG2)

    def exp(self) -> "Tensor":
        return (self._float() * (1 / math.log(2))).exp2()

    def log(self) -> "Tensor":
        return self.log2() * math.log(2)

    def sqrt(self) -> "Tensor":
        return self._float()._alu(Op.SQRT)

    def rsqrt(self) -> "Tensor":
        return self.sqrt().reciprocal()

    def sin(self) -> "Tensor":
        return self._float()._alu(Op.SIN)

    def cos(self) -> "Tensor":
        return ((math.pi / 2) - self._float()).sin()

    def tan(self) -> "Tensor":
        return self.sin() / self.cos()

    def square(self) -> "Tensor":
        return self * self

    def sign(self) -> "Tensor":
        if self.dtype == dtypes.bool:
            return self
        return (self > 0).cast(self.dtype) - (self < 0).cast(self.dtype)

    def abs(self) -> "Tensor":
        return self if self.dtype == dtypes.bool else self * self.sign()

    def trunc(self) -> "Tensor":
        if not dtypes.is_float(self.dtype):
            return self
        # floats this large have no fractional part; the int cast only handles the rest
        small = self.abs() < 2.0**23
        return small.where(self.cast(dtypes.int32).cast(self.dtype), self)

    def floor(self) -> "Tensor":
        truncated = self.trunc()
        return truncated - (truncated > self).cast(self.dtype) if dtypes.is_float(self.dtype) else truncated

    def ceil(self) -> "Tensor":
        truncated = self.trunc()
        return truncated + (truncated < self).cast(self.dtype) if dtypes.is_float(self.dtype) else truncated

    def round(self) -> "Tensor":
        """Round half to even, as torch and numpy do."""
        if not dtypes.is_float(self.dtype):
            return self
        down = (self + 0.5).floor()
        is_tie = (down - self) == 0.5
        down_is_odd = (down - (down * 0.5).floor() * 2) == 1
        return (is_tie & down_is_odd).where(down - 1, down)

    def isnan(self) -> "Tensor":
        return self != self

    def isinf(self) -> "Tensor":
        return self.abs() == math.inf if dtypes.is_float(self.dtype) else self._const(False, dtypes.bool)

    def lerp(self, end: Operand, weight: Operand) -> "Tensor":
        return self + (end - self) * weight

    def clip(self, min_: Scalar | None = None, max_: Scalar | None = None) -> "Tensor":
        """Clamp into [min_, max_]; the gradient is 1 inside, boundaries included (as torch)."""
        if min_ is None and max_ is None:
            raise ValueError("clip needs at least one of min_ and max_")
        out = self
        if min_ is not None:
            out = (out < min_).where(min_, out)
        if max_ is not None:
            out = (out > max_).where(max_, out)
        return out

    clamp = clip

    # ---- activations ----------------------------------------------------------------------------

    def relu(self) -> "Tensor":
        """max(x, 0) with torch's edges: relu(nan) is nan, and the gradient at 0 is 0."""
        return ((self > 0) | self.isnan()).where(self, 0)

    def sigmoid(self) -> "Tensor":
        """Stable: each branch only exponentiates a non-positive number, so nothing overflows."""
        x = self._float()
        positive = x >= 0
        upper = 1 / (1 + (-positive.where(x, 0)).exp())
        lower_exp = positive.where(0, x).exp()
        return positive.where(upper, lower_exp / (1 + lower_exp))

    def tanh(self) -> "Tensor":
        return 2.0 * (2.0 * self).sigmoid() - 1.0

    def erf(self) -> "Tensor":
        """Abramowitz & Stegun 7.1.26 (max error 1.5e-7)."""
        x = self._float()
        t = 1.0 / (1.0 + 0.3275911 * x.abs())
        poly = t * (
            0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
        )
        return x.sign() * (1.0 - poly * (-(x * x)).exp())

    def gelu(self, approximate: str = "none") -> "Tensor":
        """torch's GELU: exact (erf) by default, `approximate="tanh"` for the tanh form."""
        if approximate == "tanh":
            return 0.5 * self * (1 + (math.sqrt(2 / math.pi) * (self + 0.044715 * self * self * self)).tanh())
        return 0.5 * self * (1 + (self * (1 / math.sqrt(2))).erf())

    def silu(self) -> "Tensor":
        return self * self.sigmoid()

    swish = silu

    def leaky_relu(self, neg_slope: float = 0.01) -> "Tensor":
        return (self > 0).where(self, self * neg_slope)

    def elu(self, alpha: float = 1.0) -> "Tensor":
        # where(.., 0, self), not minimum(0): the slope at 0 is alpha, as torch (a tie of minimum halves it)
        return (self > 0).where(self, alpha * ((self > 0).where(0, self).exp() - 1))

    def softplus(self, beta: float = 1.0) -> "Tensor":
        """log(1 + exp(beta*x)) / beta in the stable form max(z, 0) + log(1 + exp(-|z|))."""
        z = self * beta
        return (z.maximum(0) + (1 + (-z.abs()).exp()).log()) * (1 / beta)

    def relu6(self) -> "Tensor":
        return self.hardtanh(0.0, 6.0)

    def hardtanh(self, min_val: float = -1.0, max_val: float = 1.0) -> "Tensor":
        """Clamp into [min_val, max_val]; the gradient is 0 at the boundaries (torch; clip's is 1 there)."""
        return ((self > min_val) & (self < max_val)).where(self, self.clip(min_val, max_val).detach())
