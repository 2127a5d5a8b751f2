"""Shape arithmetic shared by Tensor and the op library: argument forms, numpy's broadcasting rule.

In: shapes and sizes as users write them. Out: tuples of ints, or a ValueError/TypeError naming the problem.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

Scalar = bool | int | float
Operand = "Tensor | Scalar"  # what binary ops accept on either side
Axis = "int | Sequence[int] | None"  # one axis, several, or all
DTypeArg = "DType | str | None"  # a DType or its name (dtype.to_dtype)
IntPair = "int | Sequence[int]"  # a size given once for both spatial dims, or per dim
Shape = tuple[int, ...]


class ShapeError(TypeError, ValueError):
    """A shape that is not ints: a TypeError, as torch raises, and a ValueError, as tinygrad raises."""


def _shape_args(shape: Sequence) -> Shape:
    """Accept `f(2, 3)` and `f((2, 3))` alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(isinstance(s, (int, np.integer)) for s in shape):
        raise ShapeError(f"a shape must be ints, got {shape}")
    if any(s < 0 for s in shape):
        raise ValueError(f"a shape cannot have negative sizes, got {tuple(shape)}")
    return tuple(int(s) for s in shape)


@lru_cache(maxsize=4096)  # every op on two shapes asks
def broadcast_shape(*shapes: Shape) -> Shape:
    """numpy's broadcasting rule; ValueError naming the shapes when they do not broadcast."""
    if all(s == shapes[0] for s in shapes[1:]):
        return tuple(shapes[0])
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = tuple(0 if 0 in sizes else max(sizes) for sizes in zip(*padded))  # a 0 only meets 0s and 1s
    if any(size not in (1, o) for shape in padded for size, o in zip(shape, out)):
        raise ValueError(f"shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be broadcast together")
    return out
