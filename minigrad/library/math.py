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

HALF_PI_LOW = -4.371139006309477e-08  # pi/2 - float32(pi/2)


class MathOps:
    __slots__ = ()

    # ---- unary math -----------------------------------------------------------------------------

    def exp2(self) -> "Tensor":
        return self._float()._alu(Op.EXP2)

    def log2(self) -> "Tensor":
        return self._float()._alu(Op.LOG2)

    def exp(self) -> "Tensor":
        return self._float()._alu(Op.EXP)

    def log(self) -> "Tensor":
        return self.log2() * math.log(2)

    def sqrt(self) -> "Tensor":
        return self._float()._alu(Op.SQRT)

    def rsqrt(self) -> "Tensor":
        return self.sqrt().reciprocal()

    def sin(self) -> "Tensor":
        return self._float()._alu(Op.SIN)

    def cos(self) -> "Tensor":
        return self._float()._alu(Op.COS)

    def atan(self) -> "Tensor":
        """Cephes' reduction to |t| <= tan(pi/8) (through pi/4 + atan((x-1)/(x+1)) and pi/2 - atan(1/x)),
        then an odd polynomial: within 2 ulp of torch."""
        x = self._float()
        a = (x < 0).where(-x, x)  # |x| with slope 1 at 0 (abs() has 0 there: atan'(0) came out 0)
        big, mid = a > 2.414213562373095, a > 0.4142135623730950
        a_big = big.where(a, 1.0)  # -1/a only where it is taken: 1/0's infinite slope made atan'(0) NaN
        t = big.where(-1 / a_big, mid.where((a - 1) / (a + 1), a))
        offset = big.where(math.pi / 2, mid.where(math.pi / 4, 0.0))
        offset_low = big.where(HALF_PI_LOW, mid.where(HALF_PI_LOW / 2, 0.0))  # what float32 pi/2 lacks
        z = t * t
        poly = (((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z - 3.33329491539e-1) * z
        result = offset + (t + (t * poly + offset_low))
        return (x < 0).where(-result, result)

    def atan2(self, other: Operand) -> "Tensor":
        """The angle of the point (other, self), in (-pi, pi], as torch.atan2(self, other)."""
        y, x = self._float()._broadcasted(other)
        x = x._float()
        angle = (y / x).atan()
        signed_pi = x._const(math.pi).copysign(y)  # -pi where y is -0.0 too
        angle = (x < 0).where(angle + signed_pi, angle)
        # atan2(±0, -0) is ±pi and atan2(±0, +0) is ±0, as C and torch: the signs of the zeros decide
        both_zero = (x == 0) & (y == 0)
        return both_zero.where((x.reciprocal() < 0).where(signed_pi, y), angle)

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

    def isinf(self, detect_positive: bool = True, detect_negative: bool = True) -> "Tensor":
        if not dtypes.is_float(self.dtype):
            return self._const(False, dtypes.bool)
        found = self._const(False, dtypes.bool)
        if detect_positive:
            found = found | (self == math.inf)
        if detect_negative:
            found = found | (self == -math.inf)
        return found

    def isfinite(self) -> "Tensor":
        return (self == self) & self.isinf().logical_not()

    def isclose(
        self, other: Operand, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
    ) -> "Tensor":
        """|self - other| <= atol + rtol * |other|, elementwise, as torch (equal infinities are close)."""
        other = self._to_tensor(other)
        near = (self - other).abs() <= atol + rtol * other.abs()
        close = (self == other) | (self.isfinite() & other.isfinite() & near)
        if equal_nan:
            close = close | (self.isnan() & other.isnan())
        return close

    def allclose(
        self, other: Operand, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
    ) -> bool:
        return bool(self.isclose(other, rtol, atol, equal_nan).all().item())

    def lerp(self, end: Operand, weight: Operand) -> "Tensor":
        return self + (end - self) * weight

    def clip(self, min_: Scalar | None = None, max_: Scalar | None = None) -> "Tensor":
        """Clamp into [min_, max_]; the gradient is 1 inside, boundaries included (as torch)."""
        if min_ is None and max_ is None:
            raise RuntimeError("clip needs at least one of min_ and max_")
        out = self
        if min_ is not None:
            out = (out < min_).where(min_, out)
        if max_ is not None:
            out = (out > max_).where(max_, out)
        return out

    clamp = clip

    def copysign(self, other: Operand) -> "Tensor":
        """|self| with the sign of other (its sign bit: -0.0 counts as negative), as torch."""
        x, y = self._float()._broadcasted(other)
        negative = (y < 0) | ((y == 0) & (y._float().reciprocal() < 0))
        return negative.where(-x.abs(), x.abs())

    def logaddexp(self, other: Operand) -> "Tensor":
        x, y = self._float()._broadcasted(other)
        peak = x.maximum(y).detach()
        peak = peak.isinf().where(0.0, peak)
        return ((x - peak).exp() + (y - peak).exp()).log() + peak
