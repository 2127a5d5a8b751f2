"""Activations: relu, sigmoid, gelu, silu and the rest of torch.nn.functional's pointwise nonlinearities.

In: Tensors. Out: Tensors. The methods of one mixin class that `Tensor` (tensor.py) inherits: `self` is
always a Tensor (this module cannot import tensor.py). Each is composed of math.py's ops; where torch's
gradient at a kink differs from what the composition would give, the docstring says which side wins.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from minigrad.dtype import dtypes
from minigrad.lazy import LazyNode
from minigrad.ops import Op
from minigrad.replay import replayed

if TYPE_CHECKING:
    from minigrad.tensor import Tensor

SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


class ActivationOps:
    __slots__ = ()

    def relu(self) -> "Tensor":
        """max(x, 0) with torch's edges: relu(nan) is nan, and the gradient at 0 (and at nan) is 0. Where x > 0,
        x itself (gradient 1); elsewhere max(x, 0) detached, which is 0, or nan for nan (gradient 0): three
        ops, where `(x > 0) | x.isnan()` as the condition took five. The nodes are made here, not through
        the operators' broadcasting: `(x > 0).where(x, x.maximum(0).detach())`, the same graph, cost 10 us of
        Python a call, this ~3 (bool tensors, whose 0 is an int, take that way)."""
        x = self.lazydata
        if x.dtype == dtypes.bool:
            return (self > 0).where(self, self.maximum(0).detach())
        zero = LazyNode.shared_const(0, x.dtype, x.device, x.shape)
        return self._wrap(zero.alu(Op.CMPLT, x).alu(Op.WHERE, x, x.alu(Op.MAX, zero).detach()), self)

    @replayed
    def sigmoid(self) -> "Tensor":
        """1 / (1 + e^-x), torch's formula (so its roundings are torch's), down to x = -ln 2^24; below, where
        1 + e^-x is a tie that rounds to even (torch's result is 2 ulp off there) and later overflows, the
        series e^x - e^2x, which is sigmoid to float precision."""
        x = self._float()
        tail = x < -16.635532
        t = tail.where(x, 0.0).exp()
        return tail.where(t - t * t, 1 / (1 + (-tail.where(0.0, x)).exp()))

    def logsigmoid(self) -> "Tensor":
        return -(-self).softplus()

    def hardsigmoid(self) -> "Tensor":
        """relu6(x + 3) / 6; the gradient is 0 at -3 and 3, as torch."""
        return (self + 3).relu6() / 6

    @replayed
    def gelu(self, approximate: str = "none") -> "Tensor":
        """torch's GELU: exact (erf) by default, `approximate="tanh"` for the tanh form."""
        if approximate == "tanh":
            return 0.5 * self * (1 + (math.sqrt(2 / math.pi) * (self + 0.044715 * self * self * self)).tanh())
        return 0.5 * self * (1 + (self * (1 / math.sqrt(2))).erf())

    def quick_gelu(self) -> "Tensor":
        return self * (self * 1.702).sigmoid()

    @replayed
    def silu(self) -> "Tensor":
        return self * self.sigmoid()

    swish = silu

    def hardswish(self) -> "Tensor":
        return self * (self + 3).relu6() * (1 / 6)

    def mish(self) -> "Tensor":
        return self * self.softplus().tanh()

    def leaky_relu(self, neg_slope: float = 0.01) -> "Tensor":
        return (self > 0).where(self, self * neg_slope)

    leakyrelu = leaky_relu  # tinygrad's name

    def elu(self, alpha: float = 1.0) -> "Tensor":
        """x where x > 0, alpha (e^x - 1) below; at 0 itself alpha x: torch's derivatives there, slope
        alpha (not halved, as a tie of minimum would) and second derivative 0."""
        positive = self > 0
        below = alpha * positive.where(0, self).expm1()
        return positive.where(self, (self == 0).where(alpha * self, below))

    def celu(self, alpha: float = 1.0) -> "Tensor":
        """x where x > 0, alpha (e^(x/alpha) - 1) below; x itself at 0 (torch's slope 1, second derivative 0)."""
        positive = self > 0
        below = alpha * (positive.where(0, self) / alpha).expm1()
        return positive.where(self, (self == 0).where(self, below))

    def selu(self) -> "Tensor":
        return SELU_SCALE * self.elu(SELU_ALPHA)

    def softplus(self, beta: float = 1.0) -> "Tensor":
        """log(1 + exp(z)) / beta, z = beta*x, as z + log1p(exp(-z)) where z > 0 and log1p(exp(z))
        elsewhere: two smooth pieces, so every derivative is exact at 0 too (max(z, 0) + log1p(exp(-|z|))
        has kinks there whose second derivatives cancel, and softplus''(0) came out 0, not 0.25). Each
        piece sees only the inputs it serves (0 otherwise): the other one's exp(z) never overflows into a
        NaN gradient."""
        z = self * beta
        positive = z > 0
        above, below = positive.where(z, 0.0), positive.where(0.0, z)
        smooth = positive.where(above + (-above).exp().log1p(), below.exp().log1p())
        return smooth * (1 / beta)

    def softsign(self) -> "Tensor":
        return self / (1 + self.abs())

    def relu6(self) -> "Tensor":
        return self.hardtanh(0.0, 6.0)

    def hardtanh(self, min_val: float = -1.0, max_val: float = 1.0) -> "Tensor":
        """Clamp into [min_val, max_val]; the gradient is 0 at the boundaries (torch; clip's is 1 there)."""
        return ((self > min_val) & (self < max_val)).where(self, self.clip(min_val, max_val).detach())

    def softmin(self, axis: int = -1) -> "Tensor":
        return (-self).softmax(axis)
