"""ShapeTracker: a stack of Views that maps a logical index of a lazy node onto its source buffer.

In: a shape and a sequence of movement ops. Out: the ShapeTracker after them, and for any logical
index the symbolic (buffer index, valid) pair. Movement ops apply to the top View; only a reshape that
no single View can express pushes a new View, so most trackers hold exactly one.

With several Views, the top View's index is a flat index into the shape of the View below it: it is
unravelled into that shape's dimensions and passed down, until the bottom View gives the buffer index.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from minigrad.helpers import check, prod
from minigrad.shape.symbolic import Node, affine_coefficients, and_nodes
from minigrad.shape.view import View, index_variables


@dataclass(frozen=True)
class ShapeTracker:
    views: tuple[View, ...]

    @staticmethod
    @functools.lru_cache(maxsize=1 << 12)
    def from_shape(shape: tuple[int, ...]) -> "ShapeTracker":
        return ShapeTracker((View.create(shape),))

    @property
    def shape(self) -> tuple[int, ...]:
        return self.views[-1].shape

    @property
    def size(self) -> int:
        return prod(self.shape)

    @property
    def contiguous(self) -> bool:
        """True when logical index i is buffer index i (the view is the buffer itself)."""
        return len(self.views) == 1 and self.views[0].contiguous

    # ---- index math -------------------------------------------------------------------------------

    def expr_idxs(self, idxs: list[Node]) -> tuple[Node, Node]:
        """(buffer index, valid) for the logical index `idxs`."""
        index, valid = self.views[-1].expr(idxs)
        conditions = [valid]
        for view in reversed(self.views[:-1]):
            unravelled = [  # size-1 (and empty) dims are always index 0
                (index // stride) % size if size > 1 else index * 0
                for size, stride in zip(view.shape, _unravel_strides(view.shape))
            ]
            index, valid = view.expr(unravelled)
            conditions.append(valid)
        return index, and_nodes(conditions)

    def expr_node(self, prefix: str = "idx") -> tuple[Node, Node]:
        """(buffer index, valid) in terms of one loop variable per dimension, named prefix0, prefix1..."""
        return self.expr_idxs(index_variables(self.shape, prefix))

    def real_strides(self) -> tuple[int | None, ...]:
        """Per dim, how far the buffer index moves per step: 0 where the view broadcasts, None where the
        index is not affine in that dim (a reshape that split it with div/mod)."""
        coefficients = affine_coefficients(self.expr_node("dim")[0])
        return tuple(coefficients.get(f"dim{d}", 0) for d in range(len(self.shape)))

    def evaluate_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """Every logical position's buffer index and validity, as int64 and bool arrays of `shape`."""
        grids = np.indices(self.shape, sparse=True, dtype=np.int64) if self.shape else []
        env = {f"idx{d}": grid for d, grid in enumerate(grids)}
        index, valid = self.expr_node()
        index_arr = np.broadcast_to(np.asarray(index.evaluate(env), dtype=np.int64), self.shape)
        valid_arr = np.broadcast_to(np.asarray(valid.evaluate(env), dtype=bool), self.shape)
        return index_arr, valid_arr

    # ---- movement (each returns a new ShapeTracker) ------------------------------------------------

    def _replace_top(self, view: View) -> "ShapeTracker":
        return ShapeTracker(self.views[:-1] + (view,))

    def reshape(self, new_shape: tuple[int, ...]) -> "ShapeTracker":
        check(prod(new_shape) == prod(self.shape), lambda: f"cannot reshape {self.shape} to {new_shape}")
        view = self.views[-1].reshape(new_shape)
        if view is not None:
            return self._replace_top(view)
        return ShapeTracker(self.views + (View.create(new_shape),))

    def permute(self, order: tuple[int, ...]) -> "ShapeTracker":
        check(sorted(order) == list(range(len(self.shape))), lambda: f"{order} cannot permute {self.shape}")
        return self if order == tuple(sorted(order)) else self._replace_top(self.views[-1].permute(order))

    def expand(self, new_shape: tuple[int, ...]) -> "ShapeTracker":
        fits = len(new_shape) == len(self.shape) and all(s in (n, 1) for s, n in zip(self.shape, new_shape))
        check(fits, lambda: f"cannot expand {self.shape} to {new_shape}")
        return self._replace_top(self.views[-1].expand(new_shape))

    def pad(self, padding: tuple[tuple[int, int], ...]) -> "ShapeTracker":
        check(all(b >= 0 and a >= 0 for b, a in padding), lambda: f"negative padding {padding}")
        return self._replace_top(self.views[-1].pad(padding))

    def shrink(self, bounds: tuple[tuple[int, int], ...]) -> "ShapeTracker":
        fits = all(0 <= b <= e <= s for (b, e), s in zip(bounds, self.shape))
        check(fits, lambda: f"cannot shrink {self.shape} to {bounds}")
        return self._replace_top(self.views[-1].shrink(bounds))

    def flip(self, axes: tuple[int, ...]) -> "ShapeTracker":
        return self._replace_top(self.views[-1].flip(axes))


# graph building repeats the same few moves every step: each movement op is cached (trackers are immutable),
# so its argument check runs on a cache miss only
for _move in ("reshape", "permute", "expand", "pad", "shrink", "flip"):
    setattr(ShapeTracker, _move, functools.lru_cache(maxsize=1 << 14)(getattr(ShapeTracker, _move)))


def _unravel_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides including size-1 dims (used to unravel a flat index)."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))
