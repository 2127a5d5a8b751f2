"""Indexing and selection: x[...], gather, one-hot style picks, masks. An integer-tensor index
becomes a comparison with an arange that codegen folds into a loop at the picked element (opt.pick).

In: Tensors. Out: Tensors. The methods of one mixin class that `Tensor` (tensor.py) inherits: `self` is
always a Tensor, and new tensors are made through `type(self)` (this module cannot import tensor.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from minigrad.dtype import dtypes
from minigrad.gradient import REVERSE_RULES
from minigrad.helpers import DEFERRED_CHECKS, getenv, normalize_axis
from minigrad.library.shapes import broadcast_shape
from minigrad.replay import replayed

if TYPE_CHECKING:
    from minigrad.tensor import Tensor


class IndexingOps:
    __slots__ = ()

    # ---- indexing -------------------------------------------------------------------------------

    def __getitem__(self, index: Any) -> "Tensor":
        """numpy-style indexing: ints, slices (any step), None, ..., and integer tensors (gather)."""
        items = list(index) if isinstance(index, tuple) else [index]
        items = [_host_index(i, self) if isinstance(i, (list, tuple, np.ndarray)) else i for i in items]
        items = [
            _Mask(i.numpy()) if isinstance(i, type(self)) and i.dtype == dtypes.bool else i for i in items
        ]
        if any(isinstance(i, _Mask) for i in items):
            return self._masked(items)
        consumed = sum(1 for i in items if i is not None and i is not Ellipsis)
        if consumed > self.ndim:
            raise IndexError(f"too many indices ({consumed}) for a tensor of shape {self.shape}")
        if sum(1 for i in items if i is Ellipsis) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        ellipsis_at = [i for i, item in enumerate(items) if item is Ellipsis]
        if ellipsis_at:
            at = ellipsis_at[0]
            items = items[:at] + [slice(None)] * (self.ndim - consumed) + items[at + 1 :]
        else:
            items += [slice(None)] * (self.ndim - consumed)
        x, dim, out_shape, tensor_dims, tensor_indices = self, 0, [], [], []
        for item in items:
            if item is None:
                out_shape.append(1)
                continue
            size = self.shape[dim]
            if isinstance(item, type(self)):
                if not dtypes.is_int(item.dtype):
                    raise IndexError(
                        f"tensors used as indices must be integers or bools, got {item.dtype.name}"
                    )
                item._check_bounds(-size, size, f"index for dim {dim} with size {size}")
                tensor_dims.append(len(out_shape))
                tensor_indices.append(item)
                out_shape.append(size)
            elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                if not -size <= item < size:
                    raise IndexError(f"index {item} is out of bounds for dim {dim} with size {size}")
                x = x._slice_dim(dim, item % size, item % size + 1, 1)
            elif isinstance(item, slice):
                start, stop, step = item.indices(size)
                x = x._slice_dim(dim, start, stop, step)
                out_shape.append(x.shape[dim])
            else:
                raise IndexError(f"unsupported index {item!r} of type {type(item).__name__}")
            dim += 1
        x = x.reshape(out_shape)
        return x._gather_tensor_indices(tensor_dims, tensor_indices) if tensor_indices else x

    def __setitem__(self, index: Any, value: Any) -> None:
        """t[index] = value, in place (through assign): value is cast to t's dtype and broadcast to the
        selection. ints, slices, None and ... select distinct elements: the value is put in place by undoing
        the selection's views. Integer tensors, lists and masks may repeat an element: a scatter of flat
        positions, where the last write wins (torch leaves repeats undefined)."""
        if not isinstance(value, type(self)):
            value = type(self)(value, device=self.device, dtype=self.dtype)
        if _has_tensor_index(index):
            flat = type(self).arange(self.numel(), device=self.device, dtype=dtypes.int32)
            positions = flat.reshape(self.shape)[index]
            value = _fitted(value.cast(self.dtype), positions.shape)
            new = self.flatten().scatter(0, positions.flatten(), value.flatten()).reshape(self.shape)
        else:
            holder = type(self)._from_node(self.lazydata.alias(), requires_grad=False)
            selected = holder[index]
            value = _fitted(value.cast(self.dtype), selected.shape)
            ones = type(self).ones(*selected.shape, device=self.device, dtype=dtypes.bool)
            hit = _unview(selected, holder, ones)
            new = hit.where(_unview(selected, holder, value), self)
        self.assign(new)

    def _check_bounds(self, low: int, high: int, what: str) -> None:
        """Raise IndexError unless every value of this integer tensor is in [low, high). Reads the values,
        so it realizes them (inside vmap: after the trace, batched); BOUNDS_CHECK=0 turns it off (an index
        out of range then selects nothing: 0)."""
        if not getenv("BOUNDS_CHECK", 1) or self.numel() == 0:
            return
        deferred = DEFERRED_CHECKS.get()
        if deferred is not None:  # inside vmap's trace: checked on the whole batch's indices afterwards
            deferred.append((self, low, high, what))
            return
        values = self.numpy()
        bad = values[(values < low) | (values >= high)]
        if bad.size:
            raise IndexError(f"{what}: {bad.reshape(-1)[0]} is out of range (valid: {low} to {high - 1})")

    def _masked(self, items: list) -> "Tensor":
        """t[mask] and t[..., mask, ...] with a host bool mask: the mask's True positions, as integer lists
        (the result's shape depends on the mask's values, so it must be known now)."""
        expanded: list = []
        for item in items:
            if isinstance(item, _Mask):
                lead = sum(1 for i in expanded if i is not None)
                shape = self.shape[lead : lead + item.positions.ndim] if lead < self.ndim else ()
                if item.positions.shape != shape:
                    raise IndexError(
                        f"a boolean mask of shape {item.positions.shape} does not match the indexed "
                        f"dims {shape} of a tensor of shape {self.shape}"
                    )
                expanded += [type(self)(p, device=self.device) for p in np.nonzero(item.positions)]
            else:
                expanded.append(item)
        return self[tuple(expanded)]

    def _slice_dim(self, dim: int, start: int, stop: int, step: int) -> "Tensor":
        """Elements range(start, stop, step) of one dimension, as a view (flip, shrink, pad, reshape)."""
        size = self.shape[dim]
        count = len(range(start, stop, step))
        x = self
        if step < 0:
            x, start, step = x.flip(dim), size - 1 - start, -step
        bounds = [None] * self.ndim
        bounds[dim] = (start, start + max(count - 1, 0) * step + 1) if count else (0, 0)
        x = x.shrink(bounds)
        if step == 1 or count <= 1:
            return x
        pad = [(0, 0)] * self.ndim
        pad[dim] = (0, count * step - x.shape[dim])
        x = x.pad(pad)
        x = x.reshape(x.shape[:dim] + (count, step) + x.shape[dim + 1 :])
        bounds = [None] * x.ndim
        bounds[dim + 1] = (0, 1)
        return x.shrink(bounds).reshape(x.shape[:dim] + (count,) + x.shape[dim + 2 :])

    @replayed
    def _gather_tensor_indices(self, dims: list[int], indices: list["Tensor"]) -> "Tensor":
        """Advanced indexing by integer tensors, composed as a one-hot selection and a sum."""
        index_shape = broadcast_shape(*[t.shape for t in indices])
        rest = [d for d in range(self.ndim) if d not in dims]
        sizes = [self.shape[d] for d in dims]
        k, s = len(dims), len(index_shape)
        # the result is laid out as it is returned: numpy puts the index dims in place when they were
        # adjacent, else first (computed in another order and permuted, x[idx] stored its rows strided)
        adjacent = dims == list(range(dims[0], dims[0] + k))
        before = [d for d in rest if adjacent and d < dims[0]]
        after = [d for d in rest if d not in before]
        x = self.permute(before + after + dims)
        shape_of = lambda ds: tuple(self.shape[d] for d in ds)  # noqa: E731
        x = x.reshape(shape_of(before) + (1,) * s + shape_of(after) + tuple(sizes))
        mask = None
        for i, (t, size) in enumerate(zip(indices, sizes)):
            t = t.cast(dtypes.int32)
            t = (t < 0).where(t + size, t)._broadcast_to(index_shape)
            positions = _positions(self, size).reshape((1,) * (s + i) + (size,) + (1,) * (k - i - 1))
            hit = t.reshape(index_shape + (1,) * k) == positions
            mask = hit if mask is None else mask & hit
        mask = mask.reshape((1,) * len(before) + index_shape + (1,) * len(after) + tuple(sizes))
        picked = mask.where(x, 0)
        return picked.sum(tuple(range(picked.ndim - k, picked.ndim))) if k else picked

    def gather(self, dim: int, index: "Tensor") -> "Tensor":
        """out[i][j][k] = self[i][index[i][j][k]][k] for dim=1 (torch.gather)."""
        dim = normalize_axis(dim, self.ndim)
        if index.ndim != self.ndim:
            raise RuntimeError(f"gather: index has {index.ndim} dims, the input {self.ndim} ({self.shape})")
        if any(index.shape[d] > self.shape[d] for d in range(self.ndim) if d != dim):
            raise RuntimeError(f"gather: index {index.shape} exceeds input {self.shape} outside dim {dim}")
        if dtypes.is_float(index.dtype):
            raise TypeError(f"gather: index must be an integer tensor, got {index.dtype.name}")
        index._check_bounds(0, self.shape[dim], f"gather index for dim {dim} with size {self.shape[dim]}")
        x = self.shrink([None if d == dim else (0, index.shape[d]) for d in range(self.ndim)])
        size = self.shape[dim]
        x_last, index_last = x.transpose(dim, -1), index.transpose(dim, -1)
        hit = index_last.unsqueeze(-1) == type(self).arange(size, device=self.device, dtype=index.dtype)
        return hit.where(x_last.unsqueeze(-2), 0).sum(-1).transpose(dim, -1)


class _Mask:
    """A boolean index given as host data (a list or array of bools): it selects its True positions."""

    def __init__(self, positions: np.ndarray):
        self.positions = positions


def _host_index(index: list | np.ndarray, like: Tensor) -> Tensor | _Mask:
    """A list or array used as an index: bools are a mask (as torch and numpy), ints a Tensor of indices."""
    array = np.asarray(index)
    if array.dtype == np.bool_:
        return _Mask(array)
    if array.size == 0:
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise IndexError(f"indices must be integers or bools, got {array.dtype} from {index!r}")
    return type(like)(array, device=like.device)


def _has_tensor_index(index: Any) -> bool:
    """Does an index hold a tensor, list or array (anything that can name one element twice)?"""
    items = index if isinstance(index, tuple) else (index,)
    return any(
        not isinstance(i, (int, np.integer, slice)) and i is not None and i is not Ellipsis for i in items
    )


def _fitted(value: Tensor, shape: tuple[int, ...]) -> Tensor:
    """value broadcast to a selection's shape, its leading 1s dropped first (as torch's setitem)."""
    while value.ndim > len(shape) and value.shape[0] == 1:
        value = value.reshape(value.shape[1:])
    return value._broadcast_to(shape)


def _unview(view: Tensor, base: Tensor, value: Tensor) -> Tensor:
    """`value` (shaped as `view`) put where view's elements sit in base's shape, 0 elsewhere: each movement
    op from view back to base undone by its reverse-mode rule (pad for shrink, shrink for pad, ...)."""
    node, placed = view.lazydata, value.lazydata
    while node is not base.lazydata:
        (placed,) = REVERSE_RULES[node.op](node, placed, (True,))
        node = node.srcs[0]
    return type(value)._from_node(placed, requires_grad=value.requires_grad)


def _positions(like: Tensor, n: int) -> Tensor:
    """0, 1, ..., n-1 as int32 on like's device: the positions masks compare against (cheaper than int64)."""
    return type(like).arange(n, device=like.device, dtype=dtypes.int32)
