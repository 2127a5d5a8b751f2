"""The lazy graph: nodes that record what to compute, not the result.

In: primitive ops applied by tensor.py (and by the autograd rules). Out: `LazyNode`s, each
`(op, srcs, arg, dtype, device, shape)`. Creating a node does no device work.

Movement ops never copy: a movement node is a *view* of a *base* node, described by a ShapeTracker
(`node.st`) over the base's buffer; `node.base` is the last non-movement node above it. The scheduler
only ever makes buffers for base nodes. DETACH is an identity view too; it only stops the gradient walk.
A CONST is the one base whose own ShapeTracker is not contiguous: it views a single element at its shape
(an IOTA, arange, is the exception: n elements, each its own index).

A base node gets a device buffer (`node.realized`) when the engine runs it; from then on the scheduler
treats it as a leaf, while autograd can still walk through it to its sources. An ASSIGN writes into its
target's buffer in place and bumps the buffer's `version`: every other node holding that buffer then
reads as unrealized (`node.realized` is None), so a pending graph that needs the old value recomputes it
from its sources, and a leaf that has none reports `overwritten` instead of reading the new data.
"""

from __future__ import annotations

import functools
import itertools
import operator
from typing import Any

from minigrad.dtype import DType, dtypes
from minigrad.helpers import check, prod
from minigrad.ops import COMPARISON, ELEMENTWISE, IOTA, MOVEMENT, REDUCE, Op
from minigrad.shape.shapetracker import ShapeTracker

_serials = itertools.count()
_by_serial = operator.attrgetter("serial")


class Placeholder:
    """The data of a BUFFER leaf that stands for values that exist only inside a transform (vmap's one
    example of a batch): realizing it raises RuntimeError with `message`."""

    def __init__(self, message: str):
        self.message = message


class LazyNode:
    __slots__ = tuple(
        "op srcs arg dtype device st shape _base _buffer _version serial leaf_of __weakref__".split()
    )

    def __init__(self, op: Op, srcs: tuple, arg: Any, dtype: DType, device: str, st: ShapeTracker, base=None):
        self.op, self.srcs, self.arg, self.dtype, self.device, self.st = op, srcs, arg, dtype, device, st
        self.shape: tuple[int, ...] = st.shape  # the view's shape (read very often while building graphs)
        self._base = base  # None for a base node (storing self would make a reference cycle)
        self._buffer, self._version = None, 0  # a device Buffer once computed (base nodes only)
        self.serial = next(_serials)  # creation order: sources always come first (toposort)
        # weak references to the user tensors that require grad and hold this node as their leaf: backward
        # finds the leaves it reaches in the graph it walks (tensor.py), not in a registry of all tensors
        self.leaf_of: tuple = ()

    def __repr__(self) -> str:
        return f"<LazyNode {self.op.name} {self.shape} {self.dtype.name} {self.device}>"

    @property
    def realized(self):
        """The device buffer holding this node's value, or None (not computed, or overwritten since)."""
        buffer = self._buffer
        return buffer if buffer is None or buffer.version == self._version else None

    @realized.setter
    def realized(self, buffer) -> None:
        self._buffer, self._version = buffer, (buffer.version if buffer is not None else 0)

    @property
    def overwritten(self) -> bool:
        """True when this node's buffer was written by an ASSIGN after this node computed it."""
        return self._buffer is not None and self._buffer.version != self._version

    @property
    def base(self) -> "LazyNode":
        return self if self._base is None else self._base

    @property
    def is_view(self) -> bool:
        return self._base is not None

    # ---- leaves ---------------------------------------------------------------------------------

    @staticmethod
    def buffer(data: Any, shape: tuple[int, ...], dtype: DType, device: str) -> "LazyNode":
        """A leaf buffer: `data` is host numpy data to load, None for an uninitialised buffer, or a pair
        (data, redraw) for random numbers: TinyJit's replays load `redraw()` (tensor.py `_random`)."""
        return LazyNode(Op.BUFFER, (), data, dtype, device, ShapeTracker.from_shape(shape))

    @staticmethod
    def from_buffer(buffer: Any, shape: tuple[int, ...], dtype: DType, device: str) -> "LazyNode":
        """A leaf that already holds a computed device buffer."""
        node = LazyNode(Op.BUFFER, (), None, dtype, device, ShapeTracker.from_shape(shape))
        node.realized = buffer
        return node

    @staticmethod
    def const(value: Any, dtype: DType, device: str, shape: tuple[int, ...] = ()) -> "LazyNode":
        """A scalar seen at `shape`: no memory, inlined into every kernel that reads it. One node whose view
        broadcasts its element (not a scalar and two views: every node costs on every pass over a graph)."""
        value = (
            bool(value) if dtype == dtypes.bool else (int(value) if dtypes.is_int(dtype) else float(value))
        )
        return LazyNode(Op.CONST, (), value, dtype, device, _broadcast_tracker(shape))

    @staticmethod
    def shared_const(value: Any, dtype: DType, device: str, shape: tuple[int, ...] = ()) -> "LazyNode":
        """`const`, the same node for the same (value, dtype, device, shape): for the scalars of binary ops
        (`x * 0.5`), which no user holds, so nothing can realize or assign into them. A graph then has one
        node per distinct constant, not per use: every pass over it (the schedule's signature) is shorter."""
        return _shared_const(repr(value), value, dtype, device, shape)

    @staticmethod
    def iota(n: int, dtype: DType, device: str) -> "LazyNode":
        """0, 1, ..., n-1 with no memory: computed in the kernels that read it (ops.IOTA)."""
        return LazyNode(Op.CONST, (), IOTA, dtype, device, ShapeTracker.from_shape((n,)))

    def const_like(self, value: Any, dtype: DType | None = None) -> "LazyNode":
        return LazyNode.const(value, dtype or self.dtype, self.device, self.shape)

    # ---- compute --------------------------------------------------------------------------------

    def alu(self, op: Op, *others: "LazyNode") -> "LazyNode":
        """An elementwise op on nodes of one shape (tensor.py broadcasts before calling this)."""
        srcs = (self,) + others
        if op not in ELEMENTWISE or op is Op.CAST:
            raise ValueError(f"{op} is not an elementwise op (CAST has cast())")
        for src in others:  # a plain loop, not check(): this runs for every op of every training step
            if src.shape != self.shape:
                raise ValueError(f"{op}: shapes differ {[s.shape for s in srcs]}")
            if src.device != self.device:  # every binary op and where() comes here: the one check
                raise RuntimeError(f"operands on different devices: {self.device}, {src.device}; use .to()")
        if op in COMPARISON:
            dtype = dtypes.bool
        elif op is Op.WHERE:
            dtype = others[0].dtype
        else:
            dtype = srcs[-1].dtype
        return LazyNode(op, srcs, None, dtype, self.device, ShapeTracker.from_shape(self.shape))

    def cast(self, dtype: DType) -> "LazyNode":
        if dtype == self.dtype:
            return self
        return LazyNode(Op.CAST, (self,), dtype, dtype, self.device, ShapeTracker.from_shape(self.shape))

    def reduce(self, op: Op, axes: tuple[int, ...]) -> "LazyNode":
        """Reduce over `axes`, keeping them as size-1 dimensions."""
        check(op in REDUCE, lambda: f"{op} is not a reduce op")
        axes = tuple(sorted(a for a in axes if self.shape[a] != 1 or prod(self.shape) == 0))
        if not axes:
            return self
        out_shape = tuple(1 if d in axes else s for d, s in enumerate(self.shape))
        return LazyNode(op, (self,), axes, self.dtype, self.device, ShapeTracker.from_shape(out_shape))

    def contiguous(self, copy: bool = False) -> "LazyNode":
        """Materialize a view into its own buffer (a no-op for a base node, unless `copy`)."""
        if not self.is_view and self.op is not Op.CONST and not copy:
            return self
        return LazyNode(
            Op.CONTIGUOUS, (self,), None, self.dtype, self.device, ShapeTracker.from_shape(self.shape)
        )

    def copy_to(self, device: str) -> "LazyNode":
        if device == self.device:
            return self
        src = self if self.st.contiguous and self.base.op is not Op.CONST else self.contiguous()
        return LazyNode(Op.COPY, (src,), None, self.dtype, device, ShapeTracker.from_shape(self.shape))

    def assign(self, value: "LazyNode") -> "LazyNode":
        """Write `value` into this node's buffer; the result is a node that shares that buffer."""
        check(
            not self.is_view and self.shape == value.shape and self.dtype == value.dtype,
            lambda: f"cannot assign {value} into {self}",
        )
        if value.base is self.base and not value.st.contiguous:
            value = value.contiguous()  # reading the target through a moved view while writing it: copy first
        return LazyNode(
            Op.ASSIGN, (self, value), None, self.dtype, self.device, ShapeTracker.from_shape(self.shape)
        )

    def detach(self) -> "LazyNode":
        return LazyNode(Op.DETACH, (self,), None, self.dtype, self.device, self.st, self.base)

    def alias(self) -> "LazyNode":
        """A new node with this value (an identity view): the functional transforms differentiate with
        respect to it, so uses of the same value elsewhere in the graph are not counted."""
        return self._view(Op.RESHAPE, self.shape, self.st)

    def custom_rule(self, inputs: tuple["LazyNode", ...], rule: Any) -> "LazyNode":
        """This node's value (computed without recording gradients), whose derivatives with respect to
        `inputs` come from `rule` (a user's Function, or checkpoint): a FUNCTION view (see gradient.py)."""
        return LazyNode(
            Op.FUNCTION, (self.detach(),) + inputs, rule, self.dtype, self.device, self.st, self.base
        )

    # ---- movement: views of the same base --------------------------------------------------------

    def _view(self, op: Op, arg: Any, st: ShapeTracker) -> "LazyNode":
        return LazyNode(op, (self,), arg, self.dtype, self.device, st, self.base)

    def reshape(self, shape: tuple[int, ...]) -> "LazyNode":
        if shape == self.shape:
            return self
        return self._view(Op.RESHAPE, shape, self.st.reshape(shape))

    def permute(self, order: tuple[int, ...]) -> "LazyNode":
        st = self.st.permute(order)  # checks the order
        return self if st is self.st else self._view(Op.PERMUTE, order, st)

    def expand(self, shape: tuple[int, ...]) -> "LazyNode":
        if shape == self.shape:
            return self
        return self._view(Op.EXPAND, shape, self.st.expand(shape))

    def pad(self, padding: tuple[tuple[int, int], ...]) -> "LazyNode":
        if all(p == (0, 0) for p in padding):
            return self
        return self._view(Op.PAD, padding, self.st.pad(padding))

    def shrink(self, bounds: tuple[tuple[int, int], ...]) -> "LazyNode":
        if all(b == (0, s) for b, s in zip(bounds, self.shape)):
            return self
        return self._view(Op.SHRINK, bounds, self.st.shrink(bounds))

    def flip(self, axes: tuple[int, ...]) -> "LazyNode":
        axes = tuple(a for a in axes if self.shape[a] > 1)
        return self if not axes else self._view(Op.FLIP, axes, self.st.flip(axes))

    def movement(self, op: Op, arg: Any) -> "LazyNode":
        """Apply a movement op by its Op (used by the derivative rules)."""
        check(op in MOVEMENT, lambda: f"{op} is not a movement op")
        return getattr(self, op.name.lower())(arg)


@functools.lru_cache(maxsize=1024)
def _broadcast_tracker(shape: tuple[int, ...]) -> ShapeTracker:
    """A view of one element at `shape`: reshaped to all ones, then expanded."""
    return ShapeTracker.from_shape(()).reshape((1,) * len(shape)).expand(shape)


def serial_mark() -> int:
    """A number below the serial of every node made from now on (replay.py tells a call's nodes by it)."""
    return next(_serials)


def inverse_permutation(order: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(range(len(order)), key=order.__getitem__))


def toposort(roots: list[LazyNode], stop=lambda node: False) -> list[LazyNode]:
    """Every node reachable from `roots` (not expanding nodes where `stop(node)`), sources first: sorted by
    creation number, as a node's sources always exist before it (iterative: no recursion limit)."""
    seen: set[LazyNode] = set()  # (nodes hash by identity)
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            if not stop(node):
                stack.extend(node.srcs)
    return sorted(seen, key=_by_serial)


@functools.lru_cache(maxsize=4096)
def _shared_const(text: str, value: Any, dtype: DType, device: str, shape: tuple[int, ...]) -> LazyNode:
    """LazyNode.shared_const's cache: keyed by the value's repr too, which tells -0.0 from 0.0 and 1 from True."""
    return LazyNode.const(value, dtype, device, shape)
