"""A View: one strided, offset, masked window onto a flat buffer.

In: a shape, and optionally strides, an offset and a mask. Out: a View whose movement methods
(`reshape permute expand pad shrink flip`) return new Views without touching data, and whose `expr`
turns logical indices into a buffer index plus a validity condition (symbolic, see symbolic.py).

    buffer_index = offset + sum(idx[d] * strides[d])          valid = all(mask[d][0] <= idx[d] < mask[d][1])

Positions outside the mask read as 0 (this is how PAD works without copying). `reshape` returns None when no
single View can express the result (for example flattening a padded image): the ShapeTracker then stacks a
second View on top.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

from minigrad.helpers import prod
from minigrad.shape.symbolic import Node, NumNode, Variable, and_nodes, ge, lt, sum_node


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides, with 0 for size-1 dimensions (they never move the index)."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step if size != 1 else 0)
        step *= size
    return tuple(reversed(strides))


Mask = Optional[tuple[tuple[int, int], ...]]


@functools.lru_cache(maxsize=1 << 14)  # graph building creates the same few Views over and over
def _canonical_view(
    shape: tuple[int, ...], strides: tuple[int, ...] | None, offset: int, mask: Mask
) -> "View":
    shape = tuple(int(s) for s in shape)
    strides = (
        contiguous_strides(shape)
        if strides is None
        else tuple(0 if size == 1 else int(st) for size, st in zip(shape, strides))
    )
    if mask is not None:
        if any(begin >= end for begin, end in mask):
            mask = tuple((0, 0) for _ in shape)  # nothing is valid
        elif all(m == (0, size) for m, size in zip(mask, shape)):
            mask = None
    contiguous = offset == 0 and mask is None and strides == contiguous_strides(shape)
    return View(shape, strides, int(offset), mask, contiguous)


@dataclass(frozen=True)
class View:
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    offset: int
    mask: Mask
    contiguous: bool

    def __post_init__(self) -> None:  # hashed on every reshape (its lru_cache) and schedule signature
        object.__setattr__(self, "_hash", hash((self.shape, self.strides, self.offset, self.mask)))

    def __hash__(self) -> int:
        return self._hash

    @staticmethod
    def create(
        shape: tuple[int, ...], strides: tuple[int, ...] | None = None, offset: int = 0, mask: Mask = None
    ) -> "View":
        """Build a View in canonical form: size-1 strides are 0, and a mask that hides nothing is None."""
        strides = None if strides is None else tuple(strides)
        return _canonical_view(tuple(shape), strides, offset, None if mask is None else tuple(mask))

    # ---- index math -------------------------------------------------------------------------------

    def expr(self, idxs: list[Node]) -> tuple[Node, Node]:
        """(buffer index, valid) for the logical index `idxs` (one expression per dimension)."""
        terms: list[Node] = [NumNode(self.offset)]
        terms += [idx * stride for idx, stride in zip(idxs, self.strides) if stride != 0]
        conditions: list[Node] = []
        if self.mask is not None:
            for idx, (begin, end), size in zip(idxs, self.mask, self.shape):
                if (begin, end) != (0, size):
                    conditions += [ge(idx, begin), lt(idx, end)]
        return sum_node(terms), and_nodes(conditions)

    # ---- movement ---------------------------------------------------------------------------------

    def permute(self, order: tuple[int, ...]) -> "View":
        mask = tuple(self.mask[i] for i in order) if self.mask is not None else None
        return View.create(
            tuple(self.shape[i] for i in order), tuple(self.strides[i] for i in order), self.offset, mask
        )

    def expand(self, new_shape: tuple[int, ...]) -> "View":
        strides = tuple(st if old == new else 0 for old, new, st in zip(self.shape, new_shape, self.strides))
        mask = None
        if self.mask is not None:
            mask = tuple(
                m if old == new else ((0, new) if m == (0, 1) else (0, 0))
                for m, old, new in zip(self.mask, self.shape, new_shape)
            )
        return View.create(new_shape, strides, self.offset, mask)

    def pad(self, padding: tuple[tuple[int, int], ...]) -> "View":
        offset = self.offset - sum(before * st for (before, _), st in zip(padding, self.strides))
        old_mask = self.mask or tuple((0, s) for s in self.shape)
        mask = tuple((b + before, e + before) for (b, e), (before, _) in zip(old_mask, padding))
        shape = tuple(s + before + after for s, (before, after) in zip(self.shape, padding))
        return View.create(shape, self.strides, offset, mask)

    def shrink(self, bounds: tuple[tuple[int, int], ...]) -> "View":
        offset = self.offset + sum(begin * st for (begin, _), st in zip(bounds, self.strides))
        mask = None
        if self.mask is not None:
            mask = tuple(
                (max(b, begin) - begin, max(min(e, end), begin) - begin)
                for (b, e), (begin, end) in zip(self.mask, bounds)
            )
        return View.create(tuple(end - begin for begin, end in bounds), self.strides, offset, mask)

    def flip(self, axes: tuple[int, ...]) -> "View":
        strides = tuple(-st if d in axes else st for d, st in enumerate(self.strides))
        offset = self.offset + sum(
            (s - 1) * st for d, (s, st) in enumerate(zip(self.shape, self.strides)) if d in axes
        )
        mask = None
        if self.mask is not None:
            mask = tuple(
                (s - e, s - b) if d in axes else (b, e)
                for d, ((b, e), s) in enumerate(zip(self.mask, self.shape))
            )
        return View.create(self.shape, strides, offset, mask)

    @functools.lru_cache(maxsize=1 << 14)  # noqa: B019 (Views are immutable and small; training repeats them)
    def reshape(self, new_shape: tuple[int, ...]) -> "View | None":
        """The same elements in a new shape, or None if no single View can express it."""
        if new_shape == self.shape:
            return self
        if prod(self.shape) == 0:
            return View.create(new_shape)
        if self.mask is not None and any(
            b >= e for b, e in self.mask
        ):  # all masked (a 0-d view cannot say so)
            return View.create(new_shape, mask=((0, 0),) * len(new_shape)) if new_shape else None
        masks = self.mask or [None] * len(self.shape)
        old = [(s, st, m) for s, st, m in zip(self.shape, self.strides, masks) if s != 1]
        new = [s for s in new_shape if s != 1]
        new_strides: list[int] = []
        new_masks: list[tuple[int, int]] = []
        i = j = 0
        while i < len(old):  # match groups of old and new dimensions with equal products
            group_old, group_new = [old[i]], [new[j]]
            while prod(g[0] for g in group_old) != prod(group_new):
                if prod(g[0] for g in group_old) < prod(group_new):
                    i += 1
                    group_old.append(old[i])
                else:
                    j += 1
                    group_new.append(new[j])
            for (size_a, stride_a, _), (size_b, stride_b, _) in zip(group_old, group_old[1:]):
                if stride_a != stride_b * size_b:
                    return None  # the old dimensions are not laid out as one block
            masked = [m for s, _, m in group_old if m is not None and m != (0, s)]
            if masked and (len(group_old) != 1 or len(group_new) != 1):
                return None  # a mask that would have to be split or merged
            stride = group_old[-1][1]
            group_strides = []
            for size in reversed(group_new):
                group_strides.append(stride)
                stride *= size
            new_strides += reversed(group_strides)
            new_masks += [masked[0]] if masked else [(0, s) for s in group_new]
            i += 1
            j += 1
        strides_iter, masks_iter = iter(new_strides), iter(new_masks)
        strides = tuple(0 if s == 1 else next(strides_iter) for s in new_shape)
        mask = tuple((0, 1) if s == 1 else next(masks_iter) for s in new_shape)
        return View.create(new_shape, strides, self.offset, mask if self.mask is not None else None)


def index_variables(shape: tuple[int, ...], prefix: str = "idx") -> list[Node]:
    """One loop variable per dimension (a constant 0 for size-1 dimensions)."""
    return [Variable(f"{prefix}{d}", 0, s - 1) if s != 1 else NumNode(0) for d, s in enumerate(shape)]
