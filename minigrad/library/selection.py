"""Selection: sort, argsort, topk, scatter, scatter_reduce, masked_fill, masked_select, nonzero.

In: Tensors. Out: Tensors. The methods of one mixin class that `Tensor` (tensor.py) inherits: `self` is
always a Tensor (this module cannot import tensor.py).

Where an element goes depends on values here, and every op is still composed of the primitives: a sort
ranks each element against every other of its row (a comparison of the row with itself, n x n), then
picks the element of each rank; a scatter compares its index with the positions of the target dim (a
one-hot mask) and reduces over the source. Both cost n^2 work per row: fine for the rows of a model
(vocabularies, top-k), slow for sorting millions. Only nonzero and masked_select, whose result's *shape*
depends on values, read the data back to the host.
"""

from __future__ import annotations

import math

from typing import TYPE_CHECKING

import numpy as np

from minigrad.dtype import dtypes
from minigrad.helpers import normalize_axis
from minigrad.library.indexing import _positions

if TYPE_CHECKING:
    from minigrad.tensor import Tensor

SCATTER_REDUCES = ("sum", "prod", "mean", "amax", "amin")


class SelectionOps:
    __slots__ = ()

    # ---- sorting --------------------------------------------------------------------------------

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = True) -> tuple["Tensor", "Tensor"]:
        """(values, indices) along `dim`, stable (equal values keep their order); NaN sorts as the largest,
        as torch. Indices are int64."""
        dim = normalize_axis(dim, self.ndim)
        x = self.transpose(dim, -1) if self.ndim else self.reshape(1)
        n = x.shape[-1]
        ranks = _ranks(x, descending)  # (..., n): where each element goes
        picks = ranks.unsqueeze(-2) == _positions(self, n).reshape(n, 1)  # (..., rank, element)
        values = picks.where(x.unsqueeze(-2), 0).sum(-1).cast(x.dtype)
        indices = picks.where(_positions(self, n).cast(dtypes.int64), 0).sum(-1)
        if not self.ndim:
            return values.reshape(()), indices.reshape(())
        return values.transpose(dim, -1), indices.transpose(dim, -1)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = True) -> "Tensor":
        return self.sort(dim, descending, stable)[1]

    def topk(
        self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True
    ) -> tuple["Tensor", "Tensor"]:
        """The k largest (or smallest) values along `dim` and their indices, in sorted order."""
        dim = normalize_axis(dim, self.ndim)
        size = self.shape[dim] if self.ndim else 1
        if not 0 <= k <= size:
            raise RuntimeError(f"topk: k ({k}) is out of range for dim {dim} of size {size}")
        values, indices = self.sort(dim, descending=largest)
        if not self.ndim:
            return values, indices
        keep = [(0, k) if d == dim else None for d in range(self.ndim)]
        return values.shrink(keep), indices.shrink(keep)

    def unique(
        self,
        sorted: bool = True,
        return_inverse: bool = False,
        return_counts: bool = False,
        dim: int | None = None,
    ) -> "Tensor | tuple[Tensor, ...]":
        """The distinct values of the flattened tensor in ascending order (torch.unique), and optionally the
        index of each element's value (shaped as self) and the count of each value, both int64. NaNs are
        each distinct. How many values there are depends on the data: one number is read back to the host."""
        if dim is not None:
            raise NotImplementedError(
                "unique(dim=...) is not supported: unique over the flattened tensor only"
            )
        values, order = self.flatten().sort()
        n = values.shape[0]
        first = type(self).ones(min(n, 1), dtype=dtypes.bool, device=self.device)  # where a new value starts
        first = first.cat(values[1:] != values[:-1])
        group = first.cast(dtypes.int64).cumsum(0) - 1  # each sorted element's place among the distinct
        count = int(group[-1].item()) + 1 if n else 0
        results = [values.masked_select(first, size=count)]
        if return_inverse:
            zeros = type(self).zeros(n, dtype=dtypes.int64, device=self.device)
            results.append(zeros.scatter(0, order, group).reshape(self.shape))
        if return_counts:
            slots = type(self).arange(count, dtype=dtypes.int64, device=self.device).unsqueeze(-1)
            results.append((group == slots).sum(-1))
        return results[0] if len(results) == 1 else tuple(results)

    def multinomial(self, num_samples: int = 1, replacement: bool = False) -> "Tensor":
        """num_samples class indices (int64) drawn with probabilities proportional to the weights on the last
        dim, for a 1-D tensor or each row of a 2-D one (torch.multinomial). With replacement: the inverse CDF
        of uniform draws. Without: the num_samples largest of log(w) + Gumbel noise, which draws classes one
        after another, each in proportion to the weights of those left. The weights are checked on the host."""
        if self.ndim not in (1, 2):
            raise RuntimeError(f"multinomial: weights must be 1-D or 2-D, got shape {self.shape}")
        classes = self.shape[-1]
        if num_samples <= 0 or (not replacement and num_samples > classes):
            raise RuntimeError(
                f"multinomial: cannot draw {num_samples} samples from {classes} classes "
                f"{'with' if replacement else 'without'} replacement"
            )
        weights = self if self.ndim == 2 else self.unsqueeze(0)
        _check_weights(weights.numpy(), num_samples, replacement)
        rows = weights.shape[0]
        if replacement:
            cdf = weights.float().cumsum(-1)
            cdf = cdf / cdf[:, -1:]
            draws = type(self).rand(rows, num_samples, 1, device=self.device)
            picked = (cdf.unsqueeze(1) <= draws).sum(-1).minimum(classes - 1)
        else:
            noise = -(-type(self).rand(rows, classes, device=self.device).log()).log()
            keys = (weights > 0).where(weights.float().log() + noise, -math.inf)
            picked = keys.topk(num_samples, -1)[1]
        picked = picked.cast(dtypes.int64)
        return picked if self.ndim == 2 else picked.reshape(num_samples)

    # ---- scatter --------------------------------------------------------------------------------

    def scatter(
        self, dim: int, index: "Tensor", src: "Tensor | float", reduce: str | None = None
    ) -> "Tensor":
        """out[index[i][j][k]][j][k] = src[i][j][k] for dim=0 (torch.scatter); where several go to one place
        the last one wins. reduce="add" / "multiply" combine them with self instead."""
        if reduce is not None:
            modes = {"add": "sum", "multiply": "prod"}
            if reduce not in modes:
                raise ValueError(f"scatter: reduce must be 'add' or 'multiply', got {reduce!r}")
            return self.scatter_reduce(dim, index, src, modes[reduce])
        dim, index, src = self._scatter_operands(dim, index, src)
        if index.numel() == 0:
            return self
        n, m = self.shape[dim], index.shape[-1]
        hits = index.unsqueeze(-1) == _positions(self, n)  # (..., m, n): source j goes to target t
        order = _positions(self, m).reshape(m, 1)
        last = hits.where(order, -1).max(-2, keepdim=True)  # the last source of each target
        value = (hits & (order == last)).where(src.unsqueeze(-1), 0).sum(-2).cast(self.dtype)
        return self._scatter_back(dim, index, hits.any(-2), value)

    def scatter_reduce(
        self, dim: int, index: "Tensor", src: "Tensor", reduce: str, include_self: bool = True
    ) -> "Tensor":
        """Combine every src value sent to one place with `reduce` (sum, prod, mean, amax, amin), and with
        self's value there too unless include_self=False (torch.scatter_reduce)."""
        if reduce not in SCATTER_REDUCES:
            raise RuntimeError(f"scatter_reduce: reduce must be one of {SCATTER_REDUCES}, got {reduce!r}")
        dim, index, src = self._scatter_operands(dim, index, src)
        hits = index.unsqueeze(-1) == _positions(self, self.shape[dim])
        spread = src.unsqueeze(-1)
        low, high = (
            (-float("inf"), float("inf")) if dtypes.is_float(self.dtype) else (self.dtype.min, self.dtype.max)
        )
        fills = {"sum": 0, "mean": 0, "prod": 1, "amax": low, "amin": high}
        picked = hits.where(spread, fills[reduce])
        if reduce in ("sum", "mean"):
            value = picked.sum(-2)
        elif reduce == "prod":
            value = picked.prod(-2)
        else:
            value = picked.max(-2) if reduce == "amax" else picked.min(-2)
        target = self._scatter_region(dim, index)
        if include_self:
            combine = {"sum": target.add, "mean": target.add, "prod": target.mul}
            value = (
                combine[reduce](value)
                if reduce in combine
                else (value.maximum(target) if reduce == "amax" else value.minimum(target))
            )
        if reduce == "mean":
            count = hits.sum(-2) + (1 if include_self else 0)
            value = value / count.maximum(1)
            value = value if dtypes.is_float(self.dtype) else value.floor()
        return self._scatter_back(dim, index, hits.any(-2), value.cast(self.dtype))

    def _scatter_operands(self, dim: int, index: "Tensor", src) -> tuple[int, "Tensor", "Tensor"]:
        """The dim, and index and src with that dim moved last (src cut to index's shape); shapes checked as
        torch does."""
        dim = normalize_axis(dim, self.ndim)
        if not isinstance(src, type(self)):  # a scalar: the value for every index
            src = type(self).full(index.shape, src, dtype=self.dtype, device=self.device)
        elif src.dtype != self.dtype:
            raise RuntimeError(
                f"scatter: src is {src.dtype.name} but self is {self.dtype.name}; they must match"
            )
        if index.ndim != self.ndim or src.ndim != self.ndim:
            raise RuntimeError(
                f"scatter: index {index.shape}, src {src.shape} and self {self.shape} need one number of dims"
            )
        if any(
            index.shape[d] > src.shape[d] or (d != dim and index.shape[d] > self.shape[d])
            for d in range(self.ndim)
        ):
            raise RuntimeError(
                f"scatter: index {index.shape} is larger than src {src.shape} or self {self.shape}"
            )
        if not dtypes.is_int(index.dtype):
            raise RuntimeError(f"scatter: index must be an integer tensor, got {index.dtype.name}")
        index._check_bounds(0, self.shape[dim], f"scatter index for dim {dim} with size {self.shape[dim]}")
        src = src.shrink([(0, s) for s in index.shape]).cast(self.dtype)
        return dim, index.transpose(dim, -1), src.transpose(dim, -1)

    def _scatter_region(self, dim: int, index: "Tensor") -> "Tensor":
        """The part of self that index's shape covers (all of `dim`), with dim last."""
        sizes = index.transpose(dim, -1).shape  # back to self's order
        return self.shrink([None if d == dim else (0, sizes[d]) for d in range(self.ndim)]).transpose(dim, -1)

    def _scatter_back(self, dim: int, index: "Tensor", hit: "Tensor", value: "Tensor") -> "Tensor":
        """self with `value` where `hit` (both over index's region, dim last)."""
        region_shape = hit.transpose(dim, -1).shape
        pads = [(0, full - part) for full, part in zip(self.shape, region_shape)]
        hit, value = hit.transpose(dim, -1).pad(pads, value=False), value.transpose(dim, -1).pad(pads)
        return hit.where(value, self)

    # ---- masks ----------------------------------------------------------------------------------

    def masked_fill(self, mask: "Tensor", value) -> "Tensor":
        return mask.where(value, self)

    def masked_select(self, mask: "Tensor", size: int | None = None, fill_value=0) -> "Tensor":
        """The elements where `mask` (broadcast with self) is True, as a 1-D tensor. Without `size` its length
        depends on the mask's values, which are read back to the host; with it, the first `size` such
        elements, padded with fill_value, all on the device."""
        shape = np.broadcast_shapes(self.shape, mask.shape)
        values, flags = self.expand(shape).flatten(), mask.expand(shape).flatten()
        if size is None:
            return values[flags]
        hits = _first_hits(flags, size)  # (size, n)
        picked = hits.where(values, 0).sum(-1).cast(self.dtype)
        return hits.any(-1).where(picked, picked._const(fill_value))

    def nonzero(self, size: int | None = None, fill_value=-1) -> "Tensor":
        """The (N, ndim) int64 indices of the nonzero elements, in row-major order (torch.nonzero). Without
        `size`, N depends on the values, which are read back to the host; with it, N = size, padded with
        fill_value, all on the device."""
        if size is None:
            found = np.argwhere(self.numpy().reshape(self.shape) != 0)
            return type(self)(found.reshape(-1, self.ndim).astype(np.int64), device=self.device)
        hits = _first_hits(self.flatten() != 0, size)
        flat = hits.where(_positions(self, hits.shape[-1]).cast(dtypes.int64), 0).sum(-1)
        strides = [math.prod(self.shape[d + 1 :]) for d in range(self.ndim)]
        coords = [(flat // stride) % n for stride, n in zip(strides, self.shape)]
        found = hits.any(-1)
        fill = found._const(int(fill_value), dtypes.int64)
        columns = [found.where(c, fill).unsqueeze(-1) for c in coords]
        if not columns:
            return type(self).zeros(size, 0, dtype=dtypes.int64, device=self.device)
        return columns[0].cat(*columns[1:], dim=-1)


def _check_weights(weights: np.ndarray, num_samples: int, replacement: bool) -> None:
    """Raise as torch does for weights that are no distribution (negative, inf, NaN, all zero in a row), or
    too few positive ones to draw without replacement."""
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise RuntimeError("multinomial: weights must be finite and non-negative")
    positive = (weights > 0).sum(-1)
    if (positive == 0).any():
        raise RuntimeError("multinomial: a row of weights sums to 0")
    if not replacement and (positive < num_samples).any():
        raise RuntimeError(f"multinomial: fewer than {num_samples} classes with positive weight")


def _first_hits(flags: "Tensor", size: int) -> "Tensor":
    """(size, n) bools: [k, i] is True where element i is the k-th True of the 1-D `flags`."""
    rank = flags.cast(dtypes.int64).cumsum(0) - 1
    slots = type(flags).arange(size, device=flags.device, dtype=dtypes.int64).unsqueeze(-1)
    return flags & (rank == slots)


def _ranks(x: "Tensor", descending: bool) -> "Tensor":
    """Where each element of the last dim goes in a stable sort: the number of elements before it (smaller
    ones, and equal ones at earlier positions). NaN counts as larger than every number, as in torch."""
    n = x.shape[-1]
    a, b = x.unsqueeze(-1), x.unsqueeze(-2)  # a: the element ranked, b: every other
    a_nan, b_nan = a != a, b != b
    before = (b > a) if descending else (b < a)
    before = before | ((b_nan & ~a_nan) if descending else (a_nan & ~b_nan))
    equal = (a == b) | (a_nan & b_nan)
    earlier = _positions(x, n) < _positions(x, n).reshape(n, 1)  # [i, j]: j comes before i
    return (before | (equal & earlier)).sum(-1)
