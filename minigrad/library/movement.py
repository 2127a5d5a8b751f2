"""Movement: reshape, permute, expand, pad, shrink, flip, and what is made of them (cat, stack, repeat...).

In: Tensors. Out: Tensors. The methods of one mixin class that `Tensor` (tensor.py) inherits: `self` is
always a Tensor, and new tensors are made through `type(self)` (this module cannot import tensor.py).
"""

from __future__ import annotations

import math
from functools import reduce
from typing import TYPE_CHECKING, Sequence

import numpy as np

from minigrad.dtype import dtypes
from minigrad.helpers import normalize_axis, prod
from minigrad.library.shapes import Scalar, Shape, _shape_args

if TYPE_CHECKING:
    from minigrad.tensor import Tensor


class MovementOps:
    __slots__ = ()

    # ---- movement -------------------------------------------------------------------------------

    def reshape(self, *shape) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if not all(type(s) is int and s >= 0 for s in shape):  # plain sizes need no resolving
            shape = self._resolve_shape(shape)
        if prod(shape) != self.numel():
            raise ValueError(f"reshape: cannot reshape {self.shape} ({self.numel()} elements) into {shape}")
        return self._wrap(self.lazydata.reshape(shape), self)

    def _resolve_shape(self, shape: tuple) -> Shape:
        """A reshape's target with its -1 worked out, None kept from self's shape (tinygrad) and numpy
        integers made ints."""
        shape = tuple(self.shape[i] if s is None and i < self.ndim else s for i, s in enumerate(shape))
        if sum(1 for s in shape if s == -1) > 1:
            raise RuntimeError(f"reshape: only one dimension can be -1, got {shape}")
        if any(not isinstance(s, (int, np.integer)) or s < -1 for s in shape):
            raise ValueError(f"reshape: invalid shape {shape}")
        if -1 in shape:
            known = prod(s for s in shape if s != -1)
            if known == 0 or self.numel() % known:
                raise ValueError(f"reshape: cannot make {self.shape} ({self.numel()} elements) into {shape}")
            shape = tuple(self.numel() // known if s == -1 else s for s in shape)
        return tuple(int(s) for s in shape)

    view = reshape

    def permute(self, *order) -> "Tensor":
        order = tuple(order[0]) if len(order) == 1 and isinstance(order[0], (tuple, list)) else order
        if len(order) != self.ndim:
            raise RuntimeError(
                f"permute: order {order} does not match {self.ndim} dimensions of {self.shape}"
            )
        order = tuple(normalize_axis(a, self.ndim) for a in order)
        if sorted(order) != list(range(self.ndim)):
            raise RuntimeError(f"permute: {order} is not a permutation of the dimensions of {self.shape}")
        return self._wrap(self.lazydata.permute(order), self)

    def transpose(self, dim0: int = 1, dim1: int = 0) -> "Tensor":
        order = list(range(self.ndim))
        a, b = normalize_axis(dim0, self.ndim), normalize_axis(dim1, self.ndim)
        order[a], order[b] = order[b], order[a]
        return self.permute(order)

    @property
    def T(self) -> "Tensor":
        return self.permute(tuple(reversed(range(self.ndim))))

    def expand(self, *shape) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if len(shape) < self.ndim:
            raise ValueError(f"expand: target {shape} has fewer dimensions than {self.shape}")
        old = (1,) * (len(shape) - self.ndim) + self.shape
        new = tuple(o if s == -1 else s for s, o in zip(shape, old))
        if any(o != n and o != 1 for o, n in zip(old, new)):
            raise ValueError(f"expand: cannot expand {self.shape} to {shape} (only size-1 dims can grow)")
        return self._wrap(self.lazydata.reshape(old).expand(new), self)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        if self.ndim == 0:
            return self.reshape(1)
        start, end = normalize_axis(start_dim, self.ndim), normalize_axis(end_dim, self.ndim)
        return self.reshape(self.shape[:start] + (prod(self.shape[start : end + 1]),) + self.shape[end + 1 :])

    def unflatten(self, dim: int, sizes: Sequence[int]) -> "Tensor":
        dim = normalize_axis(dim, self.ndim)
        return self.reshape(self.shape[:dim] + tuple(sizes) + self.shape[dim + 1 :])

    def squeeze(self, dim: int | None = None) -> "Tensor":
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        dim = normalize_axis(dim, self.ndim)  # a 0-d tensor has dim 0 (and -1), as torch
        if self.ndim == 0:
            return self
        return self if self.shape[dim] != 1 else self.reshape(self.shape[:dim] + self.shape[dim + 1 :])

    def unsqueeze(self, dim: int) -> "Tensor":
        dim = normalize_axis(dim, self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def pad2d(self, padding: Sequence[int], value: Scalar = 0.0) -> "Tensor":
        """tinygrad's name: `pad` with F.pad's flat (left, right, top, bottom, ...) amounts."""
        return self.pad(tuple(padding), value=value)

    def pad(self, padding: Sequence, value: Scalar = 0.0, mode: str = "constant") -> "Tensor":
        """Pad with `value`. `padding` is ((before, after), ...) per dim (None = no pad), or PyTorch's flat
        (last_before, last_after, second_last_before, ...). Negative amounts crop. mode: 'constant', or
        'reflect', 'replicate', 'circular' (torch's: the new elements mirror, repeat the edge or wrap)."""
        pairs = self._padding_pairs(padding)
        if mode != "constant":
            return self._pad_by_index(pairs, mode)
        crop = tuple((max(0, -b), s - max(0, -a)) for (b, a), s in zip(pairs, self.shape))
        x = self.shrink(crop) if any(c != (0, s) for c, s in zip(crop, self.shape)) else self
        grow = tuple((max(0, b), max(0, a)) for b, a in pairs)
        padded = x._wrap(x.lazydata.pad(grow), x)
        if value == 0:
            return padded
        inside = x._const(True, dtypes.bool)
        inside = self._from_node(inside.lazydata.pad(grow), False)
        return inside.where(padded, value)

    def _pad_by_index(self, pairs: tuple[tuple[int, int], ...], mode: str) -> "Tensor":
        """reflect/replicate/circular padding: element j of a padded dim is element source(j - before) of the
        input, gathered as slices of contiguous runs (flipped where they run backwards)."""
        x = self
        for axis, ((before, after), n) in enumerate(zip(pairs, self.shape)):
            if before == after == 0:
                continue
            sources = _padded_sources(n, before, after, mode)
            if not sources:
                x = x.shrink([None] * axis + [(0, 0)] + [None] * (x.ndim - axis - 1))
                continue
            pieces, start = [], 0
            for end in range(1, len(sources) + 1):
                run = sources[start:end]
                if end == len(sources) or not _is_run(run + [sources[end]]):
                    low, high = min(run), max(run) + 1
                    piece = x.shrink([None] * axis + [(low, high)] + [None] * (x.ndim - axis - 1))
                    pieces.append(piece.flip(axis) if len(run) > 1 and run[1] < run[0] else piece)
                    start = end
            x = pieces[0].cat(*pieces[1:], dim=axis) if len(pieces) > 1 else pieces[0]
        return x

    def _padding_pairs(self, padding: Sequence) -> tuple[tuple[int, int], ...]:
        if all(isinstance(p, (int, np.integer)) for p in padding):
            if len(padding) % 2 or len(padding) > 2 * self.ndim:
                raise ValueError(f"pad: padding {tuple(padding)} needs an even length <= {2 * self.ndim}")
            pairs = [(0, 0)] * self.ndim
            for i in range(len(padding) // 2):
                pairs[self.ndim - 1 - i] = (int(padding[2 * i]), int(padding[2 * i + 1]))
            return tuple(pairs)
        if len(padding) != self.ndim:
            raise ValueError(f"pad: {len(padding)} (before, after) pairs for a tensor of shape {self.shape}")
        return tuple((0, 0) if p is None else (int(p[0]), int(p[1])) for p in padding)

    def shrink(self, bounds: Sequence) -> "Tensor":
        """Keep [start, end) of each dim; None keeps a dim whole."""
        if len(bounds) != self.ndim:
            raise ValueError(f"shrink: {len(bounds)} bounds for a tensor of shape {self.shape}")
        bounds = tuple((0, s) if b is None else (int(b[0]), int(b[1])) for b, s in zip(bounds, self.shape))
        for (b, e), s in zip(bounds, self.shape):
            if not 0 <= b <= e <= s:
                raise ValueError(f"shrink: bounds {bounds} are outside shape {self.shape}")
        return self._wrap(self.lazydata.shrink(bounds), self)

    def shrink_to(self, *shape) -> "Tensor":
        """The first shape[d] elements of each dim (None keeps a dim whole), as tinygrad."""
        sizes = self._target_sizes(shape, "shrink_to")
        return self.shrink([None if n is None else (0, n) for n in sizes])

    def pad_to(self, *shape, value: Scalar = 0.0) -> "Tensor":
        """`value` appended to each dim up to shape[d] (None keeps a dim), as tinygrad."""
        sizes = self._target_sizes(shape, "pad_to")
        if any(n is not None and n < s for n, s in zip(sizes, self.shape)):
            raise ValueError(f"pad_to: shape {sizes} is smaller than the tensor's {self.shape}")
        return self.pad([None if n is None else (0, n - s) for n, s in zip(sizes, self.shape)], value)

    def _target_sizes(self, shape: tuple, name: str) -> tuple:
        sizes = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if len(sizes) != self.ndim:
            raise ValueError(f"{name}: {len(sizes)} sizes for a tensor of shape {self.shape}")
        return sizes

    def flip(self, axis: int | Sequence[int]) -> "Tensor":
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        axes = tuple(normalize_axis(a, self.ndim) for a in axes)
        if len(set(axes)) != len(axes):
            raise RuntimeError(f"flip: dim {axis} appears more than once")
        return self._wrap(self.lazydata.flip(axes), self)

    def repeat(self, *repeats) -> "Tensor":
        repeats = _shape_args(repeats)
        if len(repeats) < self.ndim:
            raise ValueError(f"repeat: {len(repeats)} repeats for a tensor with {self.ndim} dimensions")
        base = self.reshape((1,) * (len(repeats) - self.ndim) + self.shape)
        interleaved = tuple(v for s in base.shape for v in (1, s))
        expanded = tuple(v for r, s in zip(repeats, base.shape) for v in (r, s))
        out = base.reshape(interleaved).expand(expanded)
        return out.reshape(tuple(r * s for r, s in zip(repeats, base.shape)))

    def repeat_interleave(self, repeats: int, dim: int | None = None) -> "Tensor":
        """Each element `repeats` times in a row along dim (all elements, flattened, when dim is None)."""
        x = self.flatten() if dim is None else self
        dim = normalize_axis(0 if dim is None else dim, x.ndim)
        shape = x.shape[: dim + 1] + (repeats,) + x.shape[dim + 1 :]
        return x.unsqueeze(dim + 1).expand(shape).flatten(dim, dim + 1)

    def roll(self, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None) -> "Tensor":
        """Elements shifted along dims, wrapping around (torch.roll); no dims: over the flattened tensor."""
        shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
        if dims is None:
            if len(shifts) != 1:
                raise RuntimeError(f"roll: {len(shifts)} shifts need as many dims")
            return self.flatten().roll(shifts, 0).reshape(self.shape)
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        if len(shifts) != len(dims):
            raise RuntimeError(f"roll: shifts {shifts} and dims {dims} differ in length")
        x = self
        for shift, dim in zip(shifts, dims):
            dim = normalize_axis(dim, self.ndim)
            size = x.shape[dim]
            if size:
                shift %= size
                x = x[(slice(None),) * dim + (slice(size - shift, None),)].cat(
                    x[(slice(None),) * dim + (slice(0, size - shift),)], dim=dim
                )
        return x

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1) -> "Tensor":
        """The diagonal of dims dim1 and dim2 (above it for offset > 0), as a new last dim (torch)."""
        a, b = normalize_axis(dim1, self.ndim), normalize_axis(dim2, self.ndim)
        if a == b:
            raise RuntimeError(f"diagonal: dim1 and dim2 are both {a}")
        x = self.permute([d for d in range(self.ndim) if d not in (a, b)] + [a, b])
        rows, cols = x.shape[-2:]
        start_row, start_col = max(-offset, 0), max(offset, 0)
        n = max(min(rows - start_row, cols - start_col), 0)
        x = x[..., start_row : start_row + n, start_col : start_col + n]
        return x.flatten(-2)[..., :: n + 1] if n else x.flatten(-2)

    def diag(self, diagonal: int = 0) -> "Tensor":
        """A 1-D tensor as diagonal number `diagonal` of a square matrix (zeros elsewhere); a matrix's
        diagonal number `diagonal` (above the main one when positive)."""
        if self.ndim == 2:
            return self.diagonal(diagonal)
        if self.ndim != 1:
            raise RuntimeError(f"diag: expected a 1-D or 2-D tensor, got {self.shape}")
        n = self.shape[0]
        positions = type(self).arange(n, device=self.device, dtype=dtypes.int32)
        square = (positions.reshape(n, 1) == positions).where(self.reshape(1, n).expand(n, n), self._const(0))
        k = abs(diagonal)
        return square.pad(((0, k), (k, 0)) if diagonal >= 0 else ((k, 0), (0, k)))

    def unfold(self, dim: int, size: int, step: int) -> "Tensor":
        """Windows of `size` elements every `step` along dim, as a new last dim (torch.Tensor.unfold)."""
        dim = normalize_axis(dim, self.ndim)
        length = self.shape[dim] if self.ndim else 1
        if step <= 0 or size < 0 or size > length:
            raise RuntimeError(f"unfold: size {size} and step {step} do not fit dim {dim} of size {length}")
        if size == 0:  # windows of nothing: a zero-size result of the right shape
            windows = length // step + 1
            empty = self.shrink([(0, 0) if d == dim else None for d in range(self.ndim)])
            return empty.reshape(self.shape[:dim] + (windows,) + self.shape[dim + 1 :] + (0,))
        return self._window(dim, size, step, 1)

    def meshgrid(self, *others: "Tensor", indexing: str = "ij") -> list["Tensor"]:
        """Coordinate grids from 1-D tensors (torch.meshgrid): "ij" (matrix) or "xy" (Cartesian) order."""
        if indexing not in ("ij", "xy"):
            raise RuntimeError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
        tensors = (self,) + _tensors_only("meshgrid", others)
        shape = tuple(t.numel() for t in tensors)
        if indexing == "xy" and len(tensors) > 1:
            shape = (shape[1], shape[0]) + shape[2:]
        grids = []
        for i, t in enumerate(tensors):
            at = (1 - i if i < 2 else i) if indexing == "xy" and len(tensors) > 1 else i
            grids.append(t.reshape(tuple(-1 if d == at else 1 for d in range(len(shape)))).expand(shape))
        return grids

    def cat(self, *others: "Tensor", dim: int = 0) -> "Tensor":
        tensors = (self,) + _tensors_only("cat", others)
        dim = normalize_axis(dim, self.ndim)
        if len({(t.ndim, t.shape[:dim], t.shape[dim + 1 :]) for t in tensors}) > 1:
            raise ValueError(f"cat: shapes {[t.shape for t in tensors]} differ outside dim {dim}")
        dtype = reduce(dtypes.promote, [t.dtype for t in tensors])
        total, out, offset = sum(t.shape[dim] for t in tensors), None, 0
        for t in tensors:
            pad = [(0, 0)] * self.ndim
            pad[dim] = (offset, total - offset - t.shape[dim])
            piece = t.cast(dtype).pad(pad)
            out = piece if out is None else out + piece
            offset += t.shape[dim]
        return out

    @staticmethod
    def stack(*tensors: "Tensor", dim: int = 0) -> "Tensor":
        if len(tensors) > 1 and any(isinstance(t, (list, tuple)) for t in tensors):
            raise ValueError("stack: expected Tensors as arguments, or one list of them, not a mix")
        tensors = (
            tuple(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else tensors
        )
        if not tensors:
            raise ValueError("stack: expected a non-empty list of Tensors")
        tensors = _tensors_only("stack", tensors)
        if len({t.shape for t in tensors}) > 1:
            raise ValueError(f"stack: all tensors need one shape, got {[t.shape for t in tensors]}")
        dim = normalize_axis(dim, tensors[0].ndim + 1)
        expanded = [t.unsqueeze(dim) for t in tensors]
        return expanded[0].cat(*expanded[1:], dim=dim)

    def split(self, sizes: int | Sequence[int], dim: int = 0) -> list["Tensor"]:
        dim = normalize_axis(dim, self.ndim)
        length = self.shape[dim]
        if isinstance(sizes, int):
            if sizes <= 0:
                raise ValueError(f"split: size must be positive, got {sizes}")
            sizes = [min(sizes, length - i) for i in range(0, length, sizes)] or [0]
        if sum(sizes) != length:
            raise ValueError(f"split: sizes {list(sizes)} do not sum to {length} (dim {dim} of {self.shape})")
        pieces, start = [], 0
        for size in sizes:
            bounds = [None] * self.ndim
            bounds[dim] = (start, start + size)
            pieces.append(self.shrink(bounds))
            start += size
        return pieces

    def chunk(self, chunks: int, dim: int = 0) -> list["Tensor"]:
        dim = normalize_axis(dim, self.ndim)
        return self.split(max(1, math.ceil(self.shape[dim] / chunks)), dim)


def _tensors_only(op: str, values: Sequence) -> tuple[Tensor, ...]:
    """`values` as a tuple, when every one is a Tensor; a TypeError naming the first that is not."""
    from minigrad.tensor import Tensor  # (at call time: tensor.py imports this module)

    for i, value in enumerate(values):
        if not isinstance(value, Tensor):
            raise TypeError(f"{op}: expected Tensors, got {type(value).__name__} {value!r} at position {i}")
    return tuple(values)


def _padded_sources(n: int, before: int, after: int, mode: str) -> list[int]:
    """The input index each element of a padded dim copies, as torch's modes: reflect and replicate index
    the whole input; circular wraps around what negative amounts leave of it."""
    if mode == "circular":
        low, high = max(0, -before), n - max(0, -after)
        before, after = max(0, before), max(0, after)
        if max(before, after) > high - low:
            raise RuntimeError(
                f"pad: circular padding ({before}, {after}) must be at most the dim's size {n}"
            )
        return [low + (j - before) % (high - low) for j in range(high - low + before + after)]
    positions = range(-before, n + after)
    if mode == "reflect":
        if max(before, after) >= n:
            raise RuntimeError(
                f"pad: reflect padding ({before}, {after}) must be less than the dim's size {n}"
            )
        return [-i if i < 0 else 2 * (n - 1) - i if i >= n else i for i in positions]
    if mode == "replicate":
        if n == 0:
            raise RuntimeError("pad: replicate padding of an empty dim")
        return [min(max(i, 0), n - 1) for i in positions]
    raise NotImplementedError(
        f"pad: mode {mode!r} is not one of 'constant', 'reflect', 'replicate', 'circular'"
    )


def _is_run(indices: list[int]) -> bool:
    """Whether indices step by +1 throughout, or by -1 throughout."""
    steps = {b - a for a, b in zip(indices, indices[1:])}
    return len(steps) <= 1 and steps <= {1, -1}
