"""Reductions and contractions: sum, max, mean, var, softmax, cumsum, tril/triu, matmul. A contraction
is a MUL of broadcast views and a SUM; the kernel optimizer finds its structure (codegen/opt.py).

In: Tensors. Out: Tensors. The methods of one mixin class that `Tensor` (tensor.py) inherits: `self` is
always a Tensor, and new tensors are made through `type(self)` (this module cannot import tensor.py).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from minigrad.dtype import dtypes
from minigrad.helpers import getenv, normalize_axis, prod
from minigrad.library.indexing import _positions
from minigrad.library.shapes import Axis, DTypeArg
from minigrad.ops import Op
from minigrad.replay import replayed

SPLIT_MIN, SPLIT = 1 << 16, 1024  # sums longer than 2^16 go in steps of 1024 (_split_sum; SPLIT_SUM=0: off)
# a sum over several dims whose innermost is 256 to 8192 long sums those rows first (each of 32 lanes then
# adds at most 256 values: about as accurate as the steps of 1024)
SPLIT_ROWS = (256, 8192)
# a running reduction this long or shorter is one masked reduce; longer, in blocks of at most SCAN_BLOCK, the
# blocks' totals run the same way (_scan_last). Blocks of sqrt(n) took 64 terms an element for 4096; of 16, 16
# at each of 3 levels: cumsum of 4096^2 along rows 50-56 -> 29-31 ms (AVX2 build: 64 -> 34), of 8192x1024
# 14 -> 11, along columns 144 -> 82 (AVX2: 277 -> 84); blocks of 8 or 32 were slower
SCAN_DIRECT, SCAN_BLOCK = 64, 16

if TYPE_CHECKING:
    from minigrad.tensor import Tensor


class ReduceOps:
    __slots__ = ()

    # ---- reductions -----------------------------------------------------------------------------

    def _axes(self, axis: int | Sequence[int] | None) -> tuple[int, ...]:
        if axis is None:
            return tuple(range(self.ndim))
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        normalized = tuple(sorted({normalize_axis(a, self.ndim) for a in axes}))
        return normalized if self.ndim else ()  # a 0-d tensor's axis 0 (or -1) is no dim at all, as torch

    def _reduce(self, op: Op, axis, keepdim: bool) -> "Tensor":
        axes = self._axes(axis)
        if op is Op.REDUCE_SUM and prod(self.shape[d] for d in axes) > SPLIT_MIN and getenv("SPLIT_SUM", 1):
            return self._split_sum(axes, keepdim)
        out = self._wrap(self.lazydata.reduce(op, axes), self)
        return out if keepdim else out.reshape(tuple(s for d, s in enumerate(self.shape) if d not in axes))

    def _split_sum(self, axes: tuple[int, ...], keepdim: bool) -> "Tensor":
        """A sum of more than SPLIT_MIN elements, in steps of SPLIT: each float32 accumulator then adds few
        values (10^7 x 0.1 summed to 997,298 in one step), and the first step has outputs for every thread.
        Over several dims whose innermost is SPLIT_ROWS long, that dim's rows are the first step: flattening
        across dims gave a view's index a div and a mod per element (x.T.sum() of 4096^2: 26 -> 2 ms; the
        count of a 4096 x 1000 one-hot: 2.0 -> 0.09 ms)."""
        inner = max(axes)
        if len(axes) > 1 and SPLIT_ROWS[0] <= self.shape[inner] <= SPLIT_ROWS[1]:
            return self.sum(inner, keepdim=True).sum(axes, keepdim=keepdim)
        kept = [d for d in range(self.ndim) if d not in axes]
        x = self.permute(kept + list(axes)).reshape(tuple(self.shape[d] for d in kept) + (-1,))
        while x.shape[-1] > SPLIT:  # SPLIT elements at a time, until one sum is left
            x = x.pad([(0, 0)] * len(kept) + [(0, -x.shape[-1] % SPLIT)])
            x = x.reshape(x.shape[:-1] + (-1, SPLIT)).sum(-1)
        out = x.sum(-1)
        return out.reshape(tuple(1 if d in axes else s for d, s in enumerate(self.shape))) if keepdim else out

    def sum(self, axis: Axis = None, keepdim: bool = False, dtype: DTypeArg = None) -> "Tensor":
        """Sum over `axis`; integer and bool sums are int64 (uint64 stays uint64), as torch, unless `dtype`."""
        if dtype is None and (dtypes.is_int(self.dtype) or self.dtype == dtypes.bool):
            dtype = dtypes.uint64 if self.dtype == dtypes.uint64 else dtypes.int64
        x = self.cast(dtype) if dtype is not None else self
        if _is_16bit_float(x.dtype):  # accumulated in float32 and rounded once, as torch
            return x.float()._reduce(Op.REDUCE_SUM, axis, keepdim).cast(x.dtype)
        return x._reduce(Op.REDUCE_SUM, axis, keepdim)

    def max(self, axis: Axis = None, keepdim: bool = False) -> "Tensor":
        if 0 in (self.shape[d] for d in self._axes(axis)):  # it gave -inf; torch and numpy raise
            raise ValueError(f"max/min over an empty dim of a {self.shape} tensor: it has no identity")
        return self._reduce(Op.REDUCE_MAX, axis, keepdim)

    def min(self, axis: Axis = None, keepdim: bool = False) -> "Tensor":
        if self.dtype == dtypes.bool:
            return self.logical_not().max(axis, keepdim).logical_not()
        if dtypes.is_int(self.dtype):  # ~x is -x - 1: it never overflows (INT_MIN) and keeps unsigned order
            return self.bitwise_not().max(axis, keepdim).bitwise_not()
        return -((-self).max(axis, keepdim))

    def mean(self, axis: Axis = None, keepdim: bool = False) -> "Tensor":
        x = self._float()
        count = prod(x.shape[d] for d in self._axes(axis))
        total = x.sum(axis, keepdim)
        return total * (1 / count) if count else total * math.nan

    def var(self, axis: Axis = None, keepdim: bool = False, correction: int = 1) -> "Tensor":
        x = self._float()
        count = prod(x.shape[d] for d in self._axes(axis))
        deviation = x - x.mean(axis, keepdim=True)
        return (deviation * deviation).sum(axis, keepdim) / max(count - correction, 0)

    def std(self, axis: Axis = None, keepdim: bool = False, correction: int = 1) -> "Tensor":
        """sqrt(var); the gradient is 0 where var is 0 (sqrt's is infinite there and gave NaN), as torch."""
        var = self.var(axis, keepdim, correction)
        return (var == 0).where(0.0, (var == 0).where(1.0, var).sqrt())

    def var_mean(
        self, axis: Axis = None, keepdim: bool = False, correction: int = 1
    ) -> tuple["Tensor", "Tensor"]:
        return self.var(axis, keepdim, correction), self.mean(axis, keepdim)

    def std_mean(
        self, axis: Axis = None, keepdim: bool = False, correction: int = 1
    ) -> tuple["Tensor", "Tensor"]:
        return self.std(axis, keepdim, correction), self.mean(axis, keepdim)

    def norm(self, p: float = 2.0, axis: Axis = None, keepdim: bool = False) -> "Tensor":
        """The vector p-norm over `axis` (torch.linalg.vector_norm): inf and -inf give max and min of |x|,
        0 the count of nonzeros."""
        a = self._float().abs()
        if p == math.inf:
            return a.max(axis, keepdim)
        if p == -math.inf:
            return a.min(axis, keepdim)
        if p == 0:
            return (a != 0).sum(axis, keepdim).cast(a.dtype)
        if p == 2:
            return a.square().sum(axis, keepdim).sqrt()
        return a.pow(p).sum(axis, keepdim).pow(1 / p)

    def prod(self, axis: Axis = None, keepdim: bool = False, dtype: DTypeArg = None) -> "Tensor":
        """Product as a tree of MULs over halves (exact with zeros and signs, unlike exp(sum(log))); integer
        products are int64, as torch, unless `dtype`."""
        if dtype is None and (dtypes.is_int(self.dtype) or self.dtype == dtypes.bool):
            dtype = dtypes.uint64 if self.dtype == dtypes.uint64 else dtypes.int64
        if dtype is not None and self.cast(dtype) is not self:
            return self.cast(dtype).prod(axis, keepdim)
        axes = self._axes(axis)
        x = self.permute([d for d in range(self.ndim) if d not in axes] + list(axes))
        kept = x.shape[: self.ndim - len(axes)]
        x = x.reshape(kept + (prod(x.shape[len(kept) :]),))
        while x.shape[-1] != 1:
            if x.shape[-1] % 2 or x.shape[-1] == 0:  # an odd length, or nothing: one more factor of 1
                x = x.pad([(0, 0)] * (x.ndim - 1) + [(0, 1)], value=1)
            half = x.shape[-1] // 2
            x = x[..., :half] * x[..., half:] if half else x
        out = x.reshape(kept)
        if keepdim:
            out = out.reshape(tuple(1 if d in axes else s for d, s in enumerate(self.shape)))
        return out

    def any(self, axis: Axis = None, keepdim: bool = False) -> "Tensor":
        return self.bool()._reduce(Op.REDUCE_MAX, axis, keepdim)  # any() of nothing is False

    def all(self, axis: Axis = None, keepdim: bool = False) -> "Tensor":
        return self.bool().logical_not().any(axis, keepdim).logical_not()

    def argmax(self, axis: int | None = None, keepdim: bool = False) -> "Tensor":
        """Index of the first maximum (int64, as torch)."""
        if axis is None or (self.ndim == 0 and normalize_axis(axis, 0) == 0):  # 0-d: its axis 0 (or -1)
            return self.flatten().argmax(0)
        axis = normalize_axis(axis, self.ndim)
        size = self.shape[axis]
        is_max = (self == self.max(axis, keepdim=True)) | (self != self)  # a NaN is the max, as in torch
        countdown = (
            type(self)
            .arange(size, 0, -1, device=self.device, dtype=dtypes.int32)
            .reshape((size,) + (1,) * (self.ndim - axis - 1))
        )
        return (size - (is_max.where(countdown, 0)).max(axis, keepdim)).cast(dtypes.int64)

    def argmin(self, axis: int | None = None, keepdim: bool = False) -> "Tensor":
        return (-self if self.dtype != dtypes.bool else self.logical_not()).argmax(axis, keepdim)

    @replayed
    def softmax(self, axis: int = -1) -> "Tensor":
        x = self._float()
        shifted = x - x._reduce(Op.REDUCE_MAX, axis, True).detach()
        e = shifted.exp()
        # times 1/sum, one reciprocal a row, as torch: a division per element made the last pass
        # compute-bound (4096^2 on a Xeon: 5.1 -> 4.3 ms); within an ulp of e / sum
        return e * e.sum(axis, keepdim=True).reciprocal()

    @replayed
    def log_softmax(self, axis: int = -1) -> "Tensor":
        x = self._float()
        shifted = x - x._reduce(Op.REDUCE_MAX, axis, True).detach()
        return shifted - shifted.exp().sum(axis, keepdim=True).log()

    @replayed
    def logsumexp(self, axis: Axis = None, keepdim: bool = False) -> "Tensor":
        x = self._float()
        peak = x._reduce(Op.REDUCE_MAX, axis, True).detach()
        peak = peak.isinf().where(0.0, peak)  # all -inf (or +inf) rows: no shift, as torch
        out = (x - peak).exp().sum(axis, keepdim=True).log() + peak
        return (
            out if keepdim else out.reshape(tuple(s for d, s in enumerate(x.shape) if d not in x._axes(axis)))
        )

    def _scan(self, axis: int, fill, combine, join=None) -> "Tensor":
        """A running reduction along `axis` (see _scan_last); `join(a, b)` is the binary form of `combine`."""
        axis = normalize_axis(axis, self.ndim)
        x = self.transpose(axis, -1) if self.ndim else self.reshape(1)
        if x.shape[-1] == 0:  # nothing to run over: an empty result of self's shape
            return self
        out = x._scan_last(fill, combine, join)
        return out.transpose(axis, -1) if self.ndim else out.reshape(())

    def _scan_last(self, fill, combine, join) -> "Tensor":
        """A running reduction along the last dim: element i reduces (with `combine` over the last dim)
        the elements at positions <= i, the others replaced by `fill` (a masked reduce against a triangular
        pattern: n^2 terms). A longer one, with a `join`, goes in blocks of ~sqrt(n), at most SCAN_BLOCK:
        the running reduction in each block, and of the blocks' totals (in blocks again where they are
        many), joined: ~2 n^1.5 terms at most (cumsum of 8192 x 1024: 117 -> 22 -> 11 ms). SPLIT_SCAN=0:
        one masked reduce, at any length."""
        n = self.shape[-1]
        if n <= SCAN_DIRECT or join is None or not getenv("SPLIT_SCAN", 1):
            take = _positions(self, n).reshape(n, 1) >= _positions(self, n)
            return combine(take.where(self.unsqueeze(-2), fill))
        block = min(math.isqrt(n - 1) + 1, SCAN_BLOCK)  # ceil(sqrt(n)), at most SCAN_BLOCK
        blocks = -(-n // block)
        padded = self.pad([None] * (self.ndim - 1) + [(0, blocks * block - n)], value=fill)
        inner = padded.reshape(*self.shape[:-1], blocks, block)._scan_last(fill, combine, join)
        totals = inner[..., -1]._scan_last(fill, combine, join)  # through the end of each block
        before = totals.pad([None] * (totals.ndim - 1) + [(1, -1)], value=fill)  # through the block before
        return join(inner, before.unsqueeze(-1)).reshape(*self.shape[:-1], blocks * block)[..., :n]

    def cumsum(self, axis: int = 0) -> "Tensor":
        return self._scan(axis, 0, lambda x: x.sum(-1), lambda a, b: a + b)

    def cumprod(self, axis: int = 0) -> "Tensor":
        return self._scan(axis, 1, lambda x: x.prod(-1), lambda a, b: a * b)

    def cummax(self, axis: int = 0) -> tuple["Tensor", "Tensor"]:
        """(running max, the index where it was found: the last of equal maxima, as torch)."""
        values = self._scan(axis, self.dtype.min, lambda x: x.max(-1), lambda a, b: a.maximum(b))
        return values, self._running_index(axis, values)

    def cummin(self, axis: int = 0) -> tuple["Tensor", "Tensor"]:
        values = self._scan(axis, self.dtype.max, lambda x: x.min(-1), lambda a, b: a.minimum(b))
        return values, self._running_index(axis, values)

    def _running_index(self, axis: int, values: "Tensor") -> "Tensor":
        """For each position i along axis: the last j <= i with self[j] == values[i] (int64)."""
        axis = normalize_axis(axis, self.ndim)
        x = (self.transpose(axis, -1) if self.ndim else self.reshape(1)).detach()
        v = (values.transpose(axis, -1) if self.ndim else values.reshape(1)).detach()
        n = x.shape[-1]
        if n == 0:
            return self.cast(dtypes.int64)
        j = _positions(self, n)
        found = (j <= j.reshape(n, 1)) & ((x.unsqueeze(-2) == v.unsqueeze(-1)) | (x != x).unsqueeze(-2))
        index = found.where(j, -1).max(-1).cast(dtypes.int64)
        return index.transpose(axis, -1) if self.ndim else index.reshape(())

    def logcumsumexp(self, axis: int = 0) -> "Tensor":
        return self._float()._scan(axis, -math.inf, lambda x: x.logsumexp(-1))

    def tril(self, diagonal: int = 0) -> "Tensor":
        rows, cols = self.shape[-2:]
        keep = _positions(self, rows).reshape(rows, 1) + diagonal >= _positions(self, cols)
        return keep.where(self, self._const(0))  # self's dtype: tril of bool stays bool

    def triu(self, diagonal: int = 0) -> "Tensor":
        rows, cols = self.shape[-2:]
        keep = _positions(self, rows).reshape(rows, 1) + diagonal <= _positions(self, cols)
        return keep.where(self, self._const(0))

    # ---- linear algebra -------------------------------------------------------------------------

    @replayed
    def matmul(self, other: "Tensor") -> "Tensor":
        """Matrix product with numpy's rules for 1-D operands and broadcast batch dims: a MUL and a SUM."""
        x, w = self, self._to_tensor(other)
        if x.ndim == 0 or w.ndim == 0:
            raise RuntimeError(
                f"matmul: both operands need at least 1 dimension, got {x.shape} and {w.shape}"
            )
        x2 = x.unsqueeze(0) if x.ndim == 1 else x
        w2 = w.unsqueeze(-1) if w.ndim == 1 else w
        if x2.shape[-1] != w2.shape[-2]:
            raise RuntimeError(
                f"matmul: shapes {x.shape} and {w.shape} do not match ({x2.shape[-1]} != {w2.shape[-2]})"
            )
        half = _is_16bit_float(x2.dtype) and x2.dtype == w2.dtype  # products and sums in float32, as torch
        x2, w2 = (x2.float(), w2.float()) if half else (x2, w2)
        if getenv("MATMUL_COPY", 1) and w2.shape[-1] >= 8 and _strided_rows(x2):
            x2 = x2.contiguous()  # a transposed left operand: one copy, not a stride of a row per product
        out = (x2.unsqueeze(-2) * w2.transpose(-1, -2).unsqueeze(-3)).sum(-1)
        out = out.cast(x.dtype) if half else out
        if x.ndim == 1:
            out = out.squeeze(-2)
        if w.ndim == 1:
            out = out.squeeze(-1)
        return out

    dot = matmul

    @replayed
    def linear(self, weight: "Tensor", bias: "Tensor | None" = None) -> "Tensor":
        """`self @ weight + bias` with weight shaped (in, out), as tinygrad (nn.Linear passes weight.T)."""
        out = self * weight if weight.ndim == 1 else self.matmul(weight)
        return out + bias if bias is not None else out


def _strided_rows(x: "Tensor") -> bool:
    """Is x (a matrix or a batch of them) a view of a buffer whose rows are not contiguous along the last dim (a transposed matrix)? A
    matmul walking such rows reads one element per cache line (a.T @ b: 26 ms, copied first: 17)."""
    node = x.lazydata
    if not node.is_view or node.base.op not in (Op.BUFFER, Op.CONTIGUOUS) or x.shape[-1] < 2:
        return False
    strides = node.st.real_strides()
    return strides[-1] not in (0, 1) and strides[-2] in (0, 1)


def _is_16bit_float(dtype) -> bool:
    """float16 and bfloat16: their sums and products accumulate in float32."""
    return dtypes.is_float(dtype) and dtype.itemsize == 2
