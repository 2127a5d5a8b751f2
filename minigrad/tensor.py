"""Tensor: the user-facing, PyTorch-like array. Every method is composed from the primitive ops.

In: user calls (`x @ w`, `x.relu()`, `loss.backward()`). Out: Tensors wrapping lazy nodes (lazy.py);
nothing is computed until `realize()`, `numpy()`, `item()` or `tolist()` asks for data.

Host numpy appears only where data is created (constructors, random numbers); every computation goes
through lazy.py's primitive ops, so it can be differentiated (gradient.py) and run on any device.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from functools import lru_cache, partialmethod, reduce
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np

from minigrad.device import Device
from minigrad.dtype import DType, dtypes, to_dtype
from minigrad.engine.realize import REALIZE_LOCK
from minigrad.engine.realize import realize as realize_nodes
from minigrad.gradient import differentiable_graph
from minigrad.gradient import gradient as reverse_gradient
from minigrad.helpers import getenv, normalize_axis, prod
from minigrad.lazy import LazyNode
from minigrad.ops import Op

Scalar = bool | int | float
Operand = "Tensor | Scalar"  # what binary ops accept on either side
Axis = "int | Sequence[int] | None"  # one axis, several, or all
IntPair = "int | Sequence[int]"  # a size given once for both spatial dims, or per dim
DeviceArg = "str | None"
DTypeArg = "DType | str | None"
Shape = tuple[int, ...]


def _shape_args(shape: Sequence) -> Shape:
    """Accept `f(2, 3)` and `f((2, 3))` alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(isinstance(s, (int, np.integer)) for s in shape):
        raise TypeError(f"a shape must be ints, got {shape}")
    if any(s < 0 for s in shape):
        raise ValueError(f"a shape cannot have negative sizes, got {tuple(shape)}")
    return tuple(int(s) for s in shape)


def _clamped_log(p: "Tensor") -> "Tensor":
    """log(p) clamped at -100, as torch's BCE, with a derivative of 0 where p is 0: a sigmoid saturated to 1.0
    in float32 gave NaN gradients through log(0)."""
    positive = p > 0
    return positive.where(positive.where(p, 1.0).log(), -100.0).maximum(-100)


def _like(t: "Tensor", kwargs: dict) -> dict:
    return {"device": t.device, "dtype": t.dtype, **{k: v for k, v in kwargs.items() if v is not None}}


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


class Tensor:
    __slots__ = ("lazydata", "_requires_grad", "grad", "__weakref__")
    # numpy leaves `np.float32(2) * t` and `array + t` to Tensor: the result is a Tensor, not an array
    __array_ufunc__ = None

    training: ClassVar[bool] = False
    no_grad: ClassVar[bool] = False
    _rng: ClassVar[np.random.Generator] = np.random.default_rng(0)
    # user tensors created with requires_grad=True, by id (a WeakSet would compare Tensors with ==)
    _grad_leaves: ClassVar[weakref.WeakValueDictionary] = weakref.WeakValueDictionary()
    _backward_roots: ClassVar[weakref.WeakValueDictionary] = weakref.WeakValueDictionary()  # see optim.step

    def __init__(
        self, data: Any, device: DeviceArg = None, dtype: DTypeArg = None, requires_grad: bool | None = None
    ):
        dtype = to_dtype(dtype) if dtype is not None else None
        if isinstance(data, (LazyNode, Tensor)):  # wrap (and maybe move or cast) an existing graph
            node = data.lazydata if isinstance(data, Tensor) else data
            node = node.copy_to(Device.canonicalize(device)) if device is not None else node
            node = node.cast(dtype) if dtype is not None else node
        else:
            device = Device.canonicalize(device) if device is not None else Device.DEFAULT
            array = _to_numpy(data, dtype)
            if not Device[device].supports_dtype(dtypes.from_numpy(array.dtype)):
                raise TypeError(f"device {device} does not support dtype {array.dtype}")
            node = LazyNode.buffer(array, array.shape, dtypes.from_numpy(array.dtype), device)
        self.lazydata: LazyNode = node
        self.grad: Tensor | None = None
        self._requires_grad: bool | None = None
        self.requires_grad = requires_grad

    @staticmethod
    def _from_node(node: LazyNode, requires_grad: bool | None = None) -> "Tensor":
        """Wrap a lazy node produced by an op (not a user leaf)."""
        out = Tensor.__new__(Tensor)
        out.lazydata, out.grad, out._requires_grad = node, None, requires_grad
        return out

    # ---- properties -----------------------------------------------------------------------------

    @property
    def requires_grad(self) -> bool | None:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool | None) -> None:
        if value and not dtypes.is_float(self.dtype):
            raise RuntimeError(f"only floating-point tensors can require gradients, not {self.dtype.name}")
        self._requires_grad = value
        if value:
            Tensor._grad_leaves[id(self)] = self

    @property
    def shape(self) -> Shape:
        return self.lazydata.shape

    @property
    def dtype(self) -> DType:
        return self.lazydata.dtype

    @property
    def device(self) -> str:
        return self.lazydata.device

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return prod(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<Tensor {self.shape} {self.dtype.name} on {self.device} requires_grad={self.requires_grad}>"

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    # ---- data -----------------------------------------------------------------------------------

    def realize(self, *others: "Tensor") -> "Tensor":
        """Compute this tensor (and `others`) now. Returns self."""
        tensors = (self,) + others
        for t in tensors:
            if t.lazydata.base.op is Op.CONST:  # a broadcast constant gets a buffer when asked for
                t.lazydata = t.lazydata.contiguous()
        realize_nodes([t.lazydata for t in tensors])
        for t in tensors:
            t._forget_history()
        return self

    def _forget_history(self) -> None:
        """After realizing, drop the graph behind this tensor when no gradient can need it."""
        node = self.lazydata
        is_leaf = Tensor._grad_leaves.get(id(self)) is self or not self.requires_grad
        if not node.is_view and node.realized is not None and node.srcs and is_leaf:
            self.lazydata = LazyNode.from_buffer(node.realized, node.shape, node.dtype, node.device)

    def numpy(self) -> np.ndarray:
        node = self.lazydata
        if node.is_view or node.op is Op.CONST:
            node = node.contiguous()
        with REALIZE_LOCK:  # no other thread's assign() writes the buffer while it is read
            realize_nodes([node])
            data = node.realized.numpy().reshape(self.shape)
        if node is self.lazydata:
            self._forget_history()
        return data

    def item(self) -> Scalar:
        if self.numel() != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def to(self, device: str) -> "Tensor":
        device = Device.canonicalize(device)
        out = self._wrap(self.lazydata.copy_to(device), self)
        if self.grad is not None:
            out.grad = self.grad.to(device)
        return out

    def detach(self) -> "Tensor":
        return Tensor._from_node(self.lazydata.detach(), requires_grad=False)

    def contiguous(self) -> "Tensor":
        return self._wrap(self.lazydata.contiguous(), self)

    def clone(self) -> "Tensor":
        """A copy in a buffer of its own (differentiable, as torch.clone)."""
        return self._wrap(self.lazydata.contiguous(copy=True), self)

    def cast(self, dtype: DType | str) -> "Tensor":
        dtype = to_dtype(dtype)
        if dtype == self.dtype:
            return self
        if not Device[self.device].supports_dtype(dtype):
            raise TypeError(f"device {self.device} does not support dtype {dtype.name}")
        return self._wrap(self.lazydata.cast(dtype), self)

    def float(self) -> "Tensor":
        return self.cast(dtypes.float32)

    def int(self) -> "Tensor":
        return self.cast(dtypes.int32)

    def bool(self) -> "Tensor":
        return self.cast(dtypes.bool)

    def half(self) -> "Tensor":
        return self.cast(dtypes.float16)

    def assign(self, value: "Tensor | Scalar | np.ndarray") -> "Tensor":
        """Overwrite this tensor's data with `value` (same shape, dtype and device), in place."""
        if not isinstance(value, Tensor):
            value = Tensor(value, device=self.device, dtype=self.dtype)
        if value.shape != self.shape:
            raise ValueError(f"assign: shape {value.shape} does not match the target's shape {self.shape}")
        if value.device != self.device:
            raise RuntimeError(f"assign: value is on {value.device} but the target is on {self.device}")
        if value.dtype != self.dtype:
            raise TypeError(f"assign: dtype {value.dtype.name} does not match the target's {self.dtype.name}")
        target = self.lazydata
        if target.is_view or target.realized is None:
            node = value.lazydata  # nothing to write into yet: just take the new value
        else:
            node = target.assign(value.lazydata)
        if value.requires_grad and not Tensor.no_grad:  # gradients flow to the value, as torch's copy_
            if self.requires_grad and Tensor._grad_leaves.get(id(self)) is self:
                raise RuntimeError(
                    "assign: a leaf tensor that requires grad cannot be overwritten in place while gradients "
                    "are recorded (as torch); do it under `with minigrad.no_grad():`, or assign to a copy"
                )
            node = node.custom_rule((value.lazydata,), _ASSIGN_RULE) if node is not value.lazydata else node
            self._requires_grad = True
        self.lazydata = node
        return self

    # ---- construction ---------------------------------------------------------------------------

    @staticmethod
    def full(
        shape: Shape | int,
        fill_value: Scalar,
        device: str | None = None,
        dtype: DType | str | None = None,
        requires_grad: bool | None = None,
    ) -> "Tensor":
        shape = _shape_args((shape,) if isinstance(shape, int) else (tuple(shape),))
        dtype = to_dtype(dtype) if dtype is not None else dtypes.from_py(fill_value)
        device = Device.canonicalize(device) if device is not None else Device.DEFAULT
        out = Tensor._from_node(LazyNode.const(fill_value, dtype, device, shape))
        out.requires_grad = requires_grad
        return out

    @staticmethod
    def zeros(
        *shape, device: DeviceArg = None, dtype: DTypeArg = None, requires_grad: bool | None = None
    ) -> "Tensor":
        return Tensor.full(_shape_args(shape), 0.0, device, dtype or dtypes.default_float, requires_grad)

    @staticmethod
    def ones(
        *shape, device: DeviceArg = None, dtype: DTypeArg = None, requires_grad: bool | None = None
    ) -> "Tensor":
        return Tensor.full(_shape_args(shape), 1.0, device, dtype or dtypes.default_float, requires_grad)

    @staticmethod
    def empty(
        *shape, device: DeviceArg = None, dtype: DTypeArg = None, requires_grad: bool | None = None
    ) -> "Tensor":
        shape = _shape_args(shape)
        dtype = to_dtype(dtype or dtypes.default_float)
        device = Device.canonicalize(device) if device is not None else Device.DEFAULT
        out = Tensor._from_node(LazyNode.buffer(None, shape, dtype, device))
        out.requires_grad = requires_grad
        return out

    @staticmethod
    def arange(
        start: Scalar,
        stop: Scalar | None = None,
        step: Scalar = 1,
        device: DeviceArg = None,
        dtype: DTypeArg = None,
        requires_grad: bool | None = None,
    ) -> "Tensor":
        if stop is None:
            start, stop = 0, start
        if step == 0:
            raise ValueError("arange: step must not be zero")
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
        dtype = to_dtype(dtype) if dtype else (dtypes.default_int if is_int else dtypes.default_float)
        if not is_int:
            return Tensor(np.arange(start, stop, step), device, dtype, requires_grad)
        # integers: computed where they are read, so codegen can see that x[i] picks one row (opt.pick)
        index, device = dtype if dtypes.is_int(dtype) else dtypes.default_int, device or Device.DEFAULT
        out = Tensor(LazyNode.iota(len(range(start, stop, step)), index, Device.canonicalize(device)))
        return Tensor(out if (start, step) == (0, 1) else out * step + start, None, dtype, requires_grad)

    @staticmethod
    def eye(
        n: int,
        m: int | None = None,
        device: DeviceArg = None,
        dtype: DTypeArg = None,
        requires_grad: bool | None = None,
    ) -> "Tensor":
        return Tensor(
            np.eye(n, m), device=device, dtype=dtype or dtypes.default_float, requires_grad=requires_grad
        )

    @staticmethod
    def manual_seed(seed: int = 0) -> None:
        """Seed the host generator: the same seed gives the same numbers on every device."""
        Tensor._rng = np.random.default_rng(seed)

    @staticmethod
    def rand(
        *shape, device: DeviceArg = None, dtype: DTypeArg = None, requires_grad: bool | None = None
    ) -> "Tensor":
        return Tensor._random(device, dtype, requires_grad, "random", _shape_args(shape), np.float32)

    @staticmethod
    def randn(
        *shape, device: DeviceArg = None, dtype: DTypeArg = None, requires_grad: bool | None = None
    ) -> "Tensor":
        return Tensor._random(device, dtype, requires_grad, "standard_normal", _shape_args(shape), np.float32)

    @staticmethod
    def uniform(
        *shape,
        low: float = 0.0,
        high: float = 1.0,
        device: DeviceArg = None,
        dtype: DTypeArg = None,
        requires_grad: bool | None = None,
    ) -> "Tensor":
        return Tensor._random(device, dtype, requires_grad, "uniform", low, high, _shape_args(shape))

    @staticmethod
    def randint(
        *shape,
        low: int = 0,
        high: int = 10,
        device: DeviceArg = None,
        dtype: DTypeArg = None,
        requires_grad: bool | None = None,
    ) -> "Tensor":
        if high <= low:
            raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
        return Tensor._random(
            device, dtype or dtypes.default_int, requires_grad, "integers", low, high, _shape_args(shape)
        )

    @staticmethod
    def _random(device: DeviceArg, dtype: DTypeArg, requires_grad, method: str, *args, **kwargs) -> "Tensor":
        """Host random numbers, `Tensor._rng.<method>(*args, **kwargs)`. Under TinyJit every replay loads
        new ones (lazy.LazyNode.buffer), as a call would draw them."""
        draw = lambda: getattr(Tensor._rng, method)(*args, **kwargs)  # noqa: E731
        out = Tensor(draw(), device=device, dtype=dtype or dtypes.default_float, requires_grad=requires_grad)
        out.lazydata.arg = (out.lazydata.arg, lambda: _to_numpy(draw(), out.dtype))
        return out

    @staticmethod
    def zeros_like(t: "Tensor", **kwargs) -> "Tensor":
        return Tensor.full_like(t, 0, **kwargs)

    @staticmethod
    def ones_like(t: "Tensor", **kwargs) -> "Tensor":
        return Tensor.full_like(t, 1, **kwargs)

    @staticmethod
    def full_like(t: "Tensor", fill_value: Scalar, **kwargs) -> "Tensor":
        """A tensor of t's shape filled with `fill_value`. As in every `*_like`, the keywords are device,
        dtype (both t's when not given, or None) and requires_grad."""
        return Tensor.full(t.shape, fill_value, **_like(t, kwargs))

    @staticmethod
    def rand_like(t: "Tensor", **kwargs) -> "Tensor":
        return Tensor.rand(*t.shape, **_like(t, kwargs))

    @staticmethod
    def randn_like(t: "Tensor", **kwargs) -> "Tensor":
        return Tensor.randn(*t.shape, **_like(t, kwargs))

    # ---- modes ----------------------------------------------------------------------------------

    @staticmethod
    @contextlib.contextmanager
    def train(mode: bool = True) -> Iterator[None]:
        previous, Tensor.training = Tensor.training, mode
        try:
            yield
        finally:
            Tensor.training = previous

    # ---- autograd -------------------------------------------------------------------------------

    def _wrap(self, node: LazyNode, *parents: "Tensor") -> "Tensor":
        """A Tensor for the result of an op on `parents`, with requires_grad propagated."""
        flags = [p._requires_grad for p in parents]  # any True: True; else any None (undecided): None
        requires_grad = True if True in flags else (None if None in flags else False)
        if Tensor.no_grad and requires_grad:
            node, requires_grad = node.detach(), False
        return Tensor._from_node(node, requires_grad)

    def gradient(self, *targets: "Tensor", gradient: "Tensor | None" = None) -> list["Tensor"]:
        """d(self)/d(target) for each target as new (differentiable) Tensors; `.grad` is not touched."""
        root_grad = self._root_gradient(gradient)
        grads = reverse_gradient([self.lazydata], [t.lazydata for t in targets], [root_grad.lazydata])
        return [
            Tensor._from_node(g if g is not None else t.lazydata.const_like(0.0), requires_grad=True)
            for g, t in zip(grads, targets)
        ]

    def backward(self, gradient: "Tensor | None" = None, retain_graph: bool | None = None) -> "Tensor":
        """Accumulate d(self)/d(leaf) into `.grad` of every tensor with requires_grad=True that self uses.
        The graph is always kept (a second call accumulates again): `retain_graph` is accepted, unused."""
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of it was created "
                "with requires_grad=True"
            )
        root_grad = self._root_gradient(gradient)
        graph = differentiable_graph([self.lazydata])
        in_graph = {id(n) for n in graph}
        leaves = [
            t for t in list(Tensor._grad_leaves.values()) if t.requires_grad and id(t.lazydata) in in_graph
        ]
        grads = reverse_gradient([self.lazydata], [t.lazydata for t in leaves], [root_grad.lazydata], graph)
        for leaf, grad in zip(leaves, grads):
            if grad is None:  # used only through ops with no gradient (comparisons): zero, as torch
                grad = leaf.lazydata.const_like(0.0)
            grad_tensor = Tensor._from_node(grad.detach(), requires_grad=False)
            leaf.grad = grad_tensor if leaf.grad is None else leaf.grad + grad_tensor
        Tensor._backward_roots[id(self)] = self
        return self

    def _root_gradient(self, gradient: "Tensor | None") -> "Tensor":
        if gradient is None:
            if self.numel() != 1:
                raise RuntimeError(
                    f"backward()/gradient() needs gradient= for a non-scalar output "
                    f"(shape {self.shape}); pass a tensor of that shape"
                )
            return Tensor.ones(*self.shape, device=self.device, dtype=self.dtype)
        if not isinstance(gradient, Tensor):
            gradient = Tensor(gradient, device=self.device, dtype=self.dtype)
        if gradient.shape != self.shape:
            raise ValueError(f"gradient= has shape {gradient.shape} but the output has shape {self.shape}")
        if gradient.device != self.device:
            raise RuntimeError(f"gradient= is on {gradient.device} but the output is on {self.device}")
        return gradient.cast(self.dtype)

    # ---- elementwise plumbing -------------------------------------------------------------------

    def _const(self, value: Scalar, dtype: DType | None = None) -> "Tensor":
        return Tensor._from_node(LazyNode.const(value, dtype or self.dtype, self.device, self.shape), False)

    def _to_tensor(self, other: "Tensor | Scalar", shape: Shape = ()) -> "Tensor":
        """A Python scalar becomes a constant (of `shape`) of a dtype that keeps self's kind (like torch)."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, np.ndarray):
            return Tensor(other, device=self.device)
        kind = dtypes.from_py(other)
        if dtypes.is_float(self.dtype):
            dtype = self.dtype  # a float tensor keeps its precision for any scalar
        elif kind == dtypes.default_float:
            dtype = kind  # an int or bool tensor with a float scalar computes in float
        elif self.dtype == dtypes.bool and kind != dtypes.bool:
            dtype = dtypes.default_int
        else:
            dtype = self.dtype
        return Tensor._from_node(LazyNode.const(other, dtype, self.device, shape), False)

    def _broadcasted(self, other: "Tensor | Scalar", reverse: bool = False) -> tuple["Tensor", "Tensor"]:
        """Both operands with one dtype and one shape, numpy-style."""
        x, y = self, self._to_tensor(other, self.shape)  # a scalar is made at self's shape
        if reverse:
            x, y = y, x
        a, b = x.lazydata, y.lazydata
        if a.shape == b.shape and a.dtype is b.dtype and a.device == b.device:
            return x, y  # the common case: nothing to cast or broadcast
        dtype = dtypes.promote(x.dtype, y.dtype)
        x, y = x.cast(dtype), y.cast(dtype)
        shape = broadcast_shape(x.shape, y.shape)
        return x._broadcast_to(shape), y._broadcast_to(shape)

    def _broadcast_to(self, shape: Shape) -> "Tensor":
        if self.shape == shape:
            return self
        node = self.lazydata.reshape((1,) * (len(shape) - self.ndim) + self.shape)  # shapes already checked
        return self._wrap(node.expand(shape), self)

    def _alu(self, op: Op, *others: "Tensor") -> "Tensor":
        return self._wrap(self.lazydata.alu(op, *[o.lazydata for o in others]), self, *others)

    def _float(self) -> "Tensor":
        """Self as a floating-point tensor (transcendental ops on ints work in float, like torch)."""
        return self if dtypes.is_float(self.dtype) else self.cast(dtypes.default_float)

    # ---- primitive elementwise ------------------------------------------------------------------

    def add(self, other: Operand, reverse: bool = False) -> "Tensor":
        x, y = self._broadcasted(other, reverse)
        return x._alu(Op.ADD, y)

    def mul(self, other: Operand, reverse: bool = False) -> "Tensor":
        x, y = self._broadcasted(other, reverse)
        return x._alu(Op.MUL, y)

    def neg(self) -> "Tensor":
        return self.logical_not() if self.dtype == dtypes.bool else self._alu(Op.NEG)

    def sub(self, other: Operand, reverse: bool = False) -> "Tensor":
        if not reverse and isinstance(other, (int, float)) and not isinstance(other, bool):
            return self.add(-other)  # fold the negation into the constant
        x, y = self._broadcasted(other, reverse)
        return x._alu(Op.ADD, y.neg())

    def reciprocal(self) -> "Tensor":
        return self._float()._alu(Op.RECIP)

    def div(self, other: Operand, reverse: bool = False) -> "Tensor":
        if not reverse and isinstance(other, (int, float)) and not isinstance(other, bool):
            if 1e-30 < abs(other) < 1e30:  # 1/other is a normal float32: fold it into the constant
                return self._float() * (1 / other)
        x, y = self._broadcasted(other, reverse)
        return x._float()._alu(Op.DIV, y._float())

    def maximum(self, other: Operand) -> "Tensor":
        x, y = self._broadcasted(other)
        return x._alu(Op.MAX, y)

    def minimum(self, other: Operand) -> "Tensor":
        x, y = self._broadcasted(other)
        if x.dtype == dtypes.bool:
            return x.logical_not().maximum(y.logical_not()).logical_not()
        return -((-x).maximum(-y))

    def where(self, x: Operand, y: Operand) -> "Tensor":
        """`self ? x : y`, elementwise; self is a condition (cast to bool)."""
        if isinstance(x, Tensor):
            x_t, y_t = x, x._to_tensor(y, x.shape)
        elif isinstance(y, Tensor):
            x_t, y_t = y._to_tensor(x, y.shape), y
        else:
            dtype = dtypes.promote(dtypes.from_py(x), dtypes.from_py(y))
            x_t, y_t = (self._const(v, dtype) for v in (x, y))
        x_t, y_t = x_t._broadcasted(y_t)
        shape = broadcast_shape(self.shape, x_t.shape)
        cond, x_t, y_t = (t._broadcast_to(shape) for t in (self.bool(), x_t, y_t))
        return cond._wrap(cond.lazydata.alu(Op.WHERE, x_t.lazydata, y_t.lazydata), x_t, y_t)

    def __lt__(self, other: Operand) -> "Tensor":
        x, y = self._broadcasted(other)
        return x._alu(Op.CMPLT, y)

    def __gt__(self, other: Operand) -> "Tensor":
        x, y = self._broadcasted(other)
        return y._alu(Op.CMPLT, x)

    def __eq__(self, other: Operand) -> "Tensor":  # type: ignore[override]
        x, y = self._broadcasted(other)
        return x._alu(Op.CMPEQ, y)

    def __ne__(self, other: Operand) -> "Tensor":  # type: ignore[override]
        return (self == other).logical_not()

    def __le__(self, other: Operand) -> "Tensor":
        return (self < other) | (self == other)

    def __ge__(self, other: Operand) -> "Tensor":
        return (self > other) | (self == other)

    def logical_not(self) -> "Tensor":
        return self.bool()._alu(Op.CMPEQ, self._const(False, dtypes.bool))

    def __and__(self, other: Operand) -> "Tensor":
        x, y = self._broadcasted(other)
        return x._alu(Op.MUL, y) if x.dtype == dtypes.bool else _bitwise_unsupported("&", x.dtype)

    def __or__(self, other: Operand) -> "Tensor":
        x, y = self._broadcasted(other)
        return x._alu(Op.MAX, y) if x.dtype == dtypes.bool else _bitwise_unsupported("|", x.dtype)

    def __xor__(self, other: Operand) -> "Tensor":
        x, y = self._broadcasted(other)
        return x != y if x.dtype == dtypes.bool else _bitwise_unsupported("^", x.dtype)

    def __invert__(self) -> "Tensor":
        return self.logical_not() if self.dtype == dtypes.bool else _bitwise_unsupported("~", self.dtype)

    def floordiv(self, other: Operand, reverse: bool = False) -> "Tensor":
        """Division rounding down (Python's //), from the truncating DIV. An int x // 0 is 0, as numpy."""
        x, y = self._broadcasted(other, reverse)
        if dtypes.is_float(x.dtype):
            return (x / y).floor()
        truncated = x._alu(Op.DIV, y)
        inexact = x._alu(Op.MOD, y) != 0
        signs_differ = (x < 0) != (y < 0)
        return truncated - (inexact & signs_differ).cast(x.dtype)

    def mod(self, other: Operand, reverse: bool = False) -> "Tensor":
        """Remainder with the sign of the divisor (Python's %), from the truncating MOD. Int x % 0 is 0."""
        x, y = self._broadcasted(other, reverse)
        if dtypes.is_float(x.dtype):
            return x - (x / y).floor() * y
        remainder = x._alu(Op.MOD, y)
        fix = (remainder != 0) & ((remainder < 0) != (y < 0))
        return fix.where(remainder + y, remainder)

    def pow(self, exponent: Operand, reverse: bool = False) -> "Tensor":
        if not reverse and not isinstance(exponent, Tensor):
            return self._pow_scalar(exponent)
        base, exponent = self._broadcasted(exponent, reverse)
        a, b = base._float(), exponent._float()
        zero, is_int = a == 0, b == b.trunc()
        # |a|^b through exp2/log2; a == 0 is a constant (through log2(0) every derivative would be NaN)
        magnitude = (b * zero.where(1.0, a.abs()).log2()).exp2()
        magnitude = zero.where((b > 0).where(0.0, (b < 0).where(math.inf, math.nan)), magnitude)
        negative = (a < 0) | (zero & (a.reciprocal() < 0))  # the sign bit, -0 included
        odd = is_int & ((b.abs() % 2) == 1)
        signed = (negative & odd).where(-magnitude, magnitude)
        invalid = (a < 0) & (a > -math.inf) & b.isinf().logical_not() & is_int.logical_not()
        # C's pow is 1 where exp2/log2 give NaN: a ** 0 for a in (0, inf, nan), 1 ** nan, (-1) ** inf
        one = magnitude.isnan() & ((b == 0) | (a == 1) | ((a == -1) & b.isinf()))
        return one.where(1.0, invalid.where(math.nan, signed))

    def _pow_scalar(self, exponent: Scalar) -> "Tensor":
        """x ** c: exact products for small integer powers, sqrt for 0.5, exp2/log2 otherwise."""
        if exponent == 0:  # 1 everywhere (nan ** 0 too), still in the graph with gradient 0, as torch
            return self._const(True, dtypes.bool).where(1, self)
        if float(exponent).is_integer() and abs(exponent) <= 8:
            result = self
            for _ in range(int(abs(exponent)) - 1):
                result = result * self
            return result.reciprocal() if exponent < 0 else result
        if exponent in (0.5, -0.5):  # as torch: sqrt and rsqrt (so (-0) ** -0.5 is -inf, (-inf) ** 0.5 NaN)
            return self.sqrt() if exponent > 0 else self.rsqrt()
        return self.pow(self._float()._const(float(exponent)), reverse=False)

    # ---- operators ------------------------------------------------------------------------------

    __neg__ = neg  # and __add__, __radd__ (2 + t), ... after the class

    def __matmul__(self, other: Operand) -> "Tensor":
        return self.matmul(other)

    def __rmatmul__(self, other: Operand) -> "Tensor":
        return self._to_tensor(other).matmul(self)

    # ---- unary math -----------------------------------------------------------------------------

    def exp2(self) -> "Tensor":
        return self._float()._alu(Op.EXP2)

    def log2(self) -> "Tensor":
        return self._float()._alu(Op.LOG2)

    def exp(self) -> "Tensor":
        return (self._float() * (1 / math.log(2))).exp2()

    def log(self) -> "Tensor":
        return self.log2() * math.log(2)

    def sqrt(self) -> "Tensor":
        return self._float()._alu(Op.SQRT)

    def rsqrt(self) -> "Tensor":
        return self.sqrt().reciprocal()

    def sin(self) -> "Tensor":
        return self._float()._alu(Op.SIN)

    def cos(self) -> "Tensor":
        return ((math.pi / 2) - self._float()).sin()

    def tan(self) -> "Tensor":
        return self.sin() / self.cos()

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

    def isinf(self) -> "Tensor":
        return self.abs() == math.inf if dtypes.is_float(self.dtype) else self._const(False, dtypes.bool)

    def lerp(self, end: Operand, weight: Operand) -> "Tensor":
        return self + (end - self) * weight

    def clip(self, min_: Scalar | None = None, max_: Scalar | None = None) -> "Tensor":
        """Clamp into [min_, max_]; the gradient is 1 inside, boundaries included (as torch)."""
        if min_ is None and max_ is None:
            raise ValueError("clip needs at least one of min_ and max_")
        out = self
        if min_ is not None:
            out = (out < min_).where(min_, out)
        if max_ is not None:
            out = (out > max_).where(max_, out)
        return out

    clamp = clip

    # ---- activations ----------------------------------------------------------------------------

    def relu(self) -> "Tensor":
        """max(x, 0) with torch's edges: relu(nan) is nan, and the gradient at 0 is 0."""
        return ((self > 0) | self.isnan()).where(self, 0)

    def sigmoid(self) -> "Tensor":
        """Stable: each branch only exponentiates a non-positive number, so nothing overflows."""
        x = self._float()
        positive = x >= 0
        upper = 1 / (1 + (-positive.where(x, 0)).exp())
        lower_exp = positive.where(0, x).exp()
        return positive.where(upper, lower_exp / (1 + lower_exp))

    def tanh(self) -> "Tensor":
        return 2.0 * (2.0 * self).sigmoid() - 1.0

    def erf(self) -> "Tensor":
        """Abramowitz & Stegun 7.1.26 (max error 1.5e-7)."""
        x = self._float()
        t = 1.0 / (1.0 + 0.3275911 * x.abs())
        poly = t * (
            0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
        )
        return x.sign() * (1.0 - poly * (-(x * x)).exp())

    def gelu(self, approximate: str = "none") -> "Tensor":
        """torch's GELU: exact (erf) by default, `approximate="tanh"` for the tanh form."""
        if approximate == "tanh":
            return 0.5 * self * (1 + (math.sqrt(2 / math.pi) * (self + 0.044715 * self * self * self)).tanh())
        return 0.5 * self * (1 + (self * (1 / math.sqrt(2))).erf())

    def silu(self) -> "Tensor":
        return self * self.sigmoid()

    swish = silu

    def leaky_relu(self, neg_slope: float = 0.01) -> "Tensor":
        return (self > 0).where(self, self * neg_slope)

    def elu(self, alpha: float = 1.0) -> "Tensor":
        # where(.., 0, self), not minimum(0): the slope at 0 is alpha, as torch (a tie of minimum halves it)
        return (self > 0).where(self, alpha * ((self > 0).where(0, self).exp() - 1))

    def softplus(self, beta: float = 1.0) -> "Tensor":
        """log(1 + exp(beta*x)) / beta in the stable form max(z, 0) + log(1 + exp(-|z|))."""
        z = self * beta
        return (z.maximum(0) + (1 + (-z.abs()).exp()).log()) * (1 / beta)

    def relu6(self) -> "Tensor":
        return self.hardtanh(0.0, 6.0)

    def hardtanh(self, min_val: float = -1.0, max_val: float = 1.0) -> "Tensor":
        """Clamp into [min_val, max_val]; the gradient is 0 at the boundaries (torch; clip's is 1 there)."""
        return ((self > min_val) & (self < max_val)).where(self, self.clip(min_val, max_val).detach())

    # ---- movement -------------------------------------------------------------------------------

    def reshape(self, *shape) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if not all(type(s) is int and s >= 0 for s in shape):  # plain sizes need no resolving
            shape = self._resolve_shape(shape)
        if prod(shape) != self.numel():
            raise ValueError(f"reshape: cannot reshape {self.shape} ({self.numel()} elements) into {shape}")
        return self._wrap(self.lazydata.reshape(shape), self)

    def _resolve_shape(self, shape: tuple) -> Shape:
        """A reshape's target with its -1 worked out and numpy integers made ints."""
        if sum(1 for s in shape if s == -1) > 1:
            raise ValueError(f"reshape: only one dimension can be -1, got {shape}")
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
            raise ValueError(f"permute: order {order} does not match {self.ndim} dimensions of {self.shape}")
        order = tuple(normalize_axis(a, self.ndim) for a in order)
        if sorted(order) != list(range(self.ndim)):
            raise ValueError(f"permute: {order} is not a permutation of the dimensions of {self.shape}")
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
        if self.ndim == 0:
            return self
        dim = normalize_axis(dim, self.ndim)
        return self if self.shape[dim] != 1 else self.reshape(self.shape[:dim] + self.shape[dim + 1 :])

    def unsqueeze(self, dim: int) -> "Tensor":
        dim = normalize_axis(dim, self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def pad(self, padding: Sequence, value: Scalar = 0.0) -> "Tensor":
        """Pad with `value`. `padding` is ((before, after), ...) per dim (None = no pad), or PyTorch's flat
        (last_before, last_after, second_last_before, ...). Negative amounts crop."""
        pairs = self._padding_pairs(padding)
        crop = tuple((max(0, -b), s - max(0, -a)) for (b, a), s in zip(pairs, self.shape))
        x = self.shrink(crop) if any(c != (0, s) for c, s in zip(crop, self.shape)) else self
        grow = tuple((max(0, b), max(0, a)) for b, a in pairs)
        padded = x._wrap(x.lazydata.pad(grow), x)
        if value == 0:
            return padded
        inside = x._const(True, dtypes.bool)
        inside = Tensor._from_node(inside.lazydata.pad(grow), False)
        return inside.where(padded, value)

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

    def flip(self, axis: int | Sequence[int]) -> "Tensor":
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        return self._wrap(self.lazydata.flip(tuple(normalize_axis(a, self.ndim) for a in axes)), self)

    def repeat(self, *repeats) -> "Tensor":
        repeats = _shape_args(repeats)
        if len(repeats) < self.ndim:
            raise ValueError(f"repeat: {len(repeats)} repeats for a tensor with {self.ndim} dimensions")
        base = self.reshape((1,) * (len(repeats) - self.ndim) + self.shape)
        interleaved = tuple(v for s in base.shape for v in (1, s))
        expanded = tuple(v for r, s in zip(repeats, base.shape) for v in (r, s))
        out = base.reshape(interleaved).expand(expanded)
        return out.reshape(tuple(r * s for r, s in zip(repeats, base.shape)))

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

    # ---- indexing -------------------------------------------------------------------------------

    def __getitem__(self, index: Any) -> "Tensor":
        """numpy-style indexing: ints, slices (any step), None, ..., and integer tensors (gather)."""
        items = list(index) if isinstance(index, tuple) else [index]
        items = [_host_index(i, self.device) if isinstance(i, (list, np.ndarray)) else i for i in items]
        items = [_Mask(i.numpy()) if isinstance(i, Tensor) and i.dtype == dtypes.bool else i for i in items]
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
            if isinstance(item, Tensor):
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
                    raise IndexError(f"index {item} is out of range for dim {dim} with size {size}")
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

    def _check_bounds(self, low: int, high: int, what: str) -> None:
        """Raise IndexError unless every value of this integer tensor is in [low, high). Reads the values,
        so it realizes them; BOUNDS_CHECK=0 turns it off (an index out of range then selects nothing: 0)."""
        if not getenv("BOUNDS_CHECK", 1) or self.numel() == 0:
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
                expanded += [Tensor(p, device=self.device) for p in np.nonzero(item.positions)]
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

    def _gather_tensor_indices(self, dims: list[int], indices: list["Tensor"]) -> "Tensor":
        """Advanced indexing by integer tensors, composed as a one-hot selection and a sum."""
        index_shape = broadcast_shape(*[t.shape for t in indices])
        rest = [d for d in range(self.ndim) if d not in dims]
        sizes = [self.shape[d] for d in dims]
        k, s = len(dims), len(index_shape)
        x = self.permute(rest + dims)
        x = x.reshape(x.shape[: len(rest)] + (1,) * s + tuple(sizes))
        mask = None
        for i, (t, size) in enumerate(zip(indices, sizes)):
            t = t.cast(dtypes.int32)
            t = (t < 0).where(t + size, t)._broadcast_to(index_shape)
            positions = _positions(size, self.device).reshape((1,) * (s + i) + (size,) + (1,) * (k - i - 1))
            hit = t.reshape(index_shape + (1,) * k) == positions
            mask = hit if mask is None else mask & hit
        picked = mask.reshape((1,) * len(rest) + mask.shape).where(x, 0)
        picked = picked.sum(tuple(range(picked.ndim - k, picked.ndim))) if k else picked
        # result is rest + index_shape; numpy puts index dims in place when they were adjacent
        if dims == list(range(dims[0], dims[0] + k)):
            order = (
                list(range(dims[0])) + list(range(len(rest), len(rest) + s)) + list(range(dims[0], len(rest)))
            )
            return picked.permute(order)
        return picked.permute(list(range(len(rest), len(rest) + s)) + list(range(len(rest))))

    def gather(self, dim: int, index: "Tensor") -> "Tensor":
        """out[i][j][k] = self[i][index[i][j][k]][k] for dim=1 (torch.gather)."""
        dim = normalize_axis(dim, self.ndim)
        if index.ndim != self.ndim:
            raise ValueError(f"gather: index has {index.ndim} dims, the input {self.ndim} ({self.shape})")
        if any(index.shape[d] > self.shape[d] for d in range(self.ndim) if d != dim):
            raise ValueError(f"gather: index {index.shape} exceeds input {self.shape} outside dim {dim}")
        if dtypes.is_float(index.dtype):
            raise TypeError(f"gather: index must be an integer tensor, got {index.dtype.name}")
        index._check_bounds(0, self.shape[dim], f"gather index for dim {dim} with size {self.shape[dim]}")
        x = self.shrink([None if d == dim else (0, index.shape[d]) for d in range(self.ndim)])
        size = self.shape[dim]
        x_last, index_last = x.transpose(dim, -1), index.transpose(dim, -1)
        hit = index_last.unsqueeze(-1) == Tensor.arange(size, device=self.device, dtype=index.dtype)
        return hit.where(x_last.unsqueeze(-2), 0).sum(-1).transpose(dim, -1)

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
        values (10^7 x 0.1 summed to 997,298 in one step), and the first step has outputs for every thread."""
        kept = [d for d in range(self.ndim) if d not in axes]
        x = self.permute(kept + list(axes)).reshape(tuple(self.shape[d] for d in kept) + (-1,))
        while x.shape[-1] > SPLIT:  # SPLIT elements at a time, until one sum is left
            x = x.pad([(0, 0)] * len(kept) + [(0, -x.shape[-1] % SPLIT)])
            x = x.reshape(x.shape[:-1] + (-1, SPLIT)).sum(-1)
        out = x.sum(-1)
        return out.reshape(tuple(1 if d in axes else s for d, s in enumerate(self.shape))) if keepdim else out

    def sum(self, axis: Axis = None, keepdim: bool = False) -> "Tensor":
        integer = dtypes.is_int(self.dtype) or self.dtype == dtypes.bool
        x = self.cast(dtypes.int64) if integer else self  # integer sums are int64, as torch
        return x._reduce(Op.REDUCE_SUM, axis, keepdim)

    def max(self, axis: Axis = None, keepdim: bool = False) -> "Tensor":
        if 0 in (self.shape[d] for d in self._axes(axis)):  # it gave -inf; torch and numpy raise
            raise ValueError(f"max/min over an empty dim of a {self.shape} tensor: it has no identity")
        return self._reduce(Op.REDUCE_MAX, axis, keepdim)

    def min(self, axis: Axis = None, keepdim: bool = False) -> "Tensor":
        if self.dtype == dtypes.bool:
            return self.logical_not().max(axis, keepdim).logical_not()
        if self.dtype == dtypes.uint8:
            return 255 - (255 - self).max(axis, keepdim)
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

    def prod(self, axis: Axis = None, keepdim: bool = False) -> "Tensor":
        """Product as a tree of MULs over halves (exact with zeros and signs, unlike exp(sum(log)))."""
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
        countdown = Tensor.arange(size, 0, -1, device=self.device, dtype=dtypes.int32).reshape(
            (size,) + (1,) * (self.ndim - axis - 1)
        )
        return (size - (is_max.where(countdown, 0)).max(axis, keepdim)).cast(dtypes.int64)

    def argmin(self, axis: int | None = None, keepdim: bool = False) -> "Tensor":
        return (-self if self.dtype != dtypes.bool else self.logical_not()).argmax(axis, keepdim)

    def softmax(self, axis: int = -1) -> "Tensor":
        x = self._float()
        shifted = x - x._reduce(Op.REDUCE_MAX, axis, True).detach()
        e = shifted.exp()
        return e / e.sum(axis, keepdim=True)

    def log_softmax(self, axis: int = -1) -> "Tensor":
        x = self._float()
        shifted = x - x._reduce(Op.REDUCE_MAX, axis, True).detach()
        return shifted - shifted.exp().sum(axis, keepdim=True).log()

    def logsumexp(self, axis: Axis = None, keepdim: bool = False) -> "Tensor":
        x = self._float()
        peak = x._reduce(Op.REDUCE_MAX, axis, True).detach()
        peak = peak.isinf().where(0.0, peak)  # all -inf (or +inf) rows: no shift, as torch
        out = (x - peak).exp().sum(axis, keepdim=True).log() + peak
        return (
            out if keepdim else out.reshape(tuple(s for d, s in enumerate(x.shape) if d not in x._axes(axis)))
        )

    def cumsum(self, axis: int = 0) -> "Tensor":
        """Running sum along `axis`: a masked sum against a lower-triangular pattern."""
        axis = normalize_axis(axis, self.ndim)
        x = self.transpose(axis, -1) if self.ndim else self.reshape(1)
        n = x.shape[-1]
        take = _positions(n, self.device).reshape(n, 1) >= _positions(n, self.device)
        out = take.where(x.unsqueeze(-2), 0).sum(-1)
        return out.transpose(axis, -1) if self.ndim else out.reshape(())

    def tril(self, diagonal: int = 0) -> "Tensor":
        rows, cols = self.shape[-2:]
        keep = _positions(rows, self.device).reshape(rows, 1) + diagonal >= _positions(cols, self.device)
        return keep.where(self, 0)

    def triu(self, diagonal: int = 0) -> "Tensor":
        rows, cols = self.shape[-2:]
        keep = _positions(rows, self.device).reshape(rows, 1) + diagonal <= _positions(cols, self.device)
        return keep.where(self, 0)

    # ---- linear algebra -------------------------------------------------------------------------

    def matmul(self, other: "Tensor") -> "Tensor":
        """Matrix product with numpy's rules for 1-D operands and broadcast batch dims: a MUL and a SUM."""
        x, w = self, self._to_tensor(other)
        if x.ndim == 0 or w.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension, got {x.shape} and {w.shape}")
        x2 = x.unsqueeze(0) if x.ndim == 1 else x
        w2 = w.unsqueeze(-1) if w.ndim == 1 else w
        if x2.shape[-1] != w2.shape[-2]:
            raise ValueError(
                f"matmul: shapes {x.shape} and {w.shape} do not match ({x2.shape[-1]} != {w2.shape[-2]})"
            )
        out = (x2.unsqueeze(-2) * w2.transpose(-1, -2).unsqueeze(-3)).sum(-1)
        if x.ndim == 1:
            out = out.squeeze(-2)
        if w.ndim == 1:
            out = out.squeeze(-1)
        return out

    dot = matmul

    def linear(self, weight: "Tensor", bias: "Tensor | None" = None) -> "Tensor":
        """`self @ weight + bias` with weight shaped (in, out), as tinygrad (nn.Linear passes weight.T)."""
        out = self * weight if weight.ndim == 1 else self.matmul(weight)
        return out + bias if bias is not None else out

    # ---- neural-network functions ---------------------------------------------------------------

    def _window(self, axis: int, kernel: int, stride: int, dilation: int) -> "Tensor":
        """Replace dim `axis` (size n) by the o window positions and append a new last dim of the k taps:
        out[..., o, ..., j] = self[..., o*stride + j*dilation, ...]. Pure views (no copy)."""
        n = self.shape[axis]
        if min(kernel, stride, dilation) < 1:
            raise ValueError(f"kernel size {kernel}, stride {stride}, dilation {dilation}: all must be >= 1")
        outputs = (n - dilation * (kernel - 1) - 1) // stride + 1
        if outputs <= 0:
            raise ValueError(f"window of {kernel} taps (dilation {dilation}) does not fit in size {n}")
        order = [d for d in range(self.ndim) if d != axis] + [axis]
        x = self.permute(order)
        batch = x.shape[:-1]
        if kernel == stride and dilation == 1:  # non-overlapping windows: a plain reshape
            rows = x.shrink([None] * len(batch) + [(0, outputs * kernel)]).reshape(batch + (outputs, kernel))
            rows = rows.permute(list(range(len(batch))) + [len(batch) + 1, len(batch)])
        else:
            # repeat each row k times with a stride of n + dilation: row j then starts at element j*dilation
            rows = x.unsqueeze(-2).expand(batch + (kernel, n)).reshape(batch + (kernel * n,))
            rows = rows.pad([(0, 0)] * len(batch) + [(0, kernel * dilation)]).reshape(
                batch + (kernel, n + dilation)
            )
            width = max(n + dilation, outputs * stride)
            rows = rows.pad([(0, 0)] * (len(batch) + 1) + [(0, width - n - dilation)])
            rows = rows.shrink([None] * (len(batch) + 1) + [(0, outputs * stride)])
            rows = rows.reshape(batch + (kernel, outputs, stride))[..., 0]
        nb = len(batch)
        return rows.permute(list(range(axis)) + [nb + 1] + list(range(axis, nb)) + [nb])

    def _pool(self, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> "Tensor":
        """Sliding windows over the last len(kernel) dims: (..., *spatial) -> (..., *outputs, *kernel)."""
        x = self
        first = self.ndim - len(kernel)
        for i, (k, s, d) in enumerate(zip(kernel, stride, dilation)):
            x = x._window(first + i, k, s, d)
        return x

    def conv2d(
        self,
        weight: "Tensor",
        bias: "Tensor | None" = None,
        groups: int = 1,
        stride: IntPair = 1,
        dilation: IntPair = 1,
        padding: IntPair = 0,
    ) -> "Tensor":
        """2-D convolution as torch's F.conv2d: input (N, Cin, H, W), weight (Cout, Cin/groups, kh, kw)."""
        if self.ndim != 4 or weight.ndim != 4:
            raise ValueError(f"conv2d: expected a 4-D input and weight, got {self.shape} and {weight.shape}")
        batch, cin, _, _ = self.shape
        cout, cin_group, kh, kw = weight.shape
        if cin != cin_group * groups or cout % groups:
            raise ValueError(f"conv2d: input {self.shape}, {groups} groups, mismatches weight {weight.shape}")
        x = self.pad(_conv_padding(padding)) if padding != 0 else self
        windows = x._pool((kh, kw), _pair(stride), _pair(dilation))  # (N, Cin, OH, OW, kh, kw)
        oh, ow = windows.shape[2:4]
        windows = windows.reshape(batch, groups, 1, cin_group, oh, ow, kh, kw)
        w = weight.reshape(1, groups, cout // groups, cin_group, 1, 1, kh, kw)
        out = (windows * w).sum((3, 6, 7)).reshape(batch, cout, oh, ow)
        return out + bias.reshape(1, cout, 1, 1) if bias is not None else out

    def conv_transpose2d(
        self,
        weight: "Tensor",
        bias: "Tensor | None" = None,
        groups: int = 1,
        stride: IntPair = 1,
        dilation: IntPair = 1,
        padding: IntPair = 0,
        output_padding: IntPair = 0,
    ) -> "Tensor":
        """Transposed convolution as torch: weight (Cin, Cout/groups, kh, kw).

        Computed as a stride-1 convolution of the input with stride-1 zeros inserted between its pixels."""
        if self.ndim != 4 or weight.ndim != 4:
            raise ValueError(
                f"conv_transpose2d: expected 4-D input and weight, got {self.shape} and {weight.shape}"
            )
        batch, cin, h, w_ = self.shape
        if weight.shape[0] != cin or cin % groups:
            raise ValueError(f"conv_transpose2d: input {self.shape} does not match weight {weight.shape}")
        (sh, sw), (dh, dw), (ph, pw), (oph, opw) = map(_pair, (stride, dilation, padding, output_padding))
        _, cout_group, kh, kw = weight.shape
        x = self
        if sh > 1 or sw > 1:  # put stride-1 zeros between input pixels
            x = x.reshape(batch, cin, h, 1, w_, 1).pad(
                ((0, 0), (0, 0), (0, 0), (0, sh - 1), (0, 0), (0, sw - 1))
            )
            x = x.reshape(batch, cin, h * sh, w_ * sw)[:, :, : (h - 1) * sh + 1, : (w_ - 1) * sw + 1]
        full_h, full_w = dh * (kh - 1), dw * (kw - 1)
        x = x.pad(((0, 0), (0, 0), (full_h - ph, full_h - ph + oph), (full_w - pw, full_w - pw + opw)))
        w = weight.reshape(groups, cin // groups, cout_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * cout_group, cin // groups, kh, kw).flip((2, 3))
        return x.conv2d(w, bias, groups=groups, dilation=(dh, dw))

    def max_pool2d(
        self,
        kernel_size: IntPair = (2, 2),
        stride: IntPair | None = None,
        dilation: IntPair = 1,
        padding: IntPair = 0,
    ) -> "Tensor":
        kernel = _pair(kernel_size)
        x = self.pad(_conv_padding(padding), value=-math.inf) if padding != 0 else self
        windows = x._pool(kernel, _pair(stride if stride is not None else kernel), _pair(dilation))
        return windows.max((-2, -1))

    def avg_pool2d(
        self,
        kernel_size: IntPair = (2, 2),
        stride: IntPair | None = None,
        dilation: IntPair = 1,
        padding: IntPair = 0,
    ) -> "Tensor":
        """Average over windows; padding zeros count in the average (torch's count_include_pad=True)."""
        kernel = _pair(kernel_size)
        x = self.pad(_conv_padding(padding)) if padding != 0 else self
        windows = x._pool(kernel, _pair(stride if stride is not None else kernel), _pair(dilation))
        return windows.mean((-2, -1))

    def dropout(self, p: float = 0.5) -> "Tensor":
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        if not Tensor.training or p == 0:
            return self
        keep = Tensor.rand(*self.shape, device=self.device) >= p
        return keep.where(self * (1 / (1 - p)), 0) if p < 1 else self * 0

    def layernorm(self, axis: Axis = -1, eps: float = 1e-5) -> "Tensor":
        centered = self - self.mean(axis, keepdim=True)
        return centered * ((centered * centered).mean(axis, keepdim=True) + eps).rsqrt()

    def batchnorm(
        self, weight: "Tensor | None", bias: "Tensor | None", mean: "Tensor", invstd: "Tensor"
    ) -> "Tensor":
        """(x - mean) * invstd * weight + bias, with per-channel (dim 1) parameters."""
        shape = (1, -1) + (1,) * (self.ndim - 2)
        x = self - mean.reshape(shape)
        if weight is not None:
            x = x * weight.reshape(shape)
        x = x * (invstd.reshape(shape) if invstd.ndim == 1 else invstd)
        return x + bias.reshape(shape) if bias is not None else x

    def one_hot(self, num_classes: int = -1) -> "Tensor":
        if dtypes.is_float(self.dtype):
            raise TypeError(f"one_hot needs an integer tensor, got {self.dtype.name}")
        classes = num_classes if num_classes >= 0 else int(self.max().item()) + 1  # -1: max + 1, as torch
        self._check_bounds(0, classes, f"class index for one_hot with {classes} classes")
        hot = self.unsqueeze(-1) == Tensor.arange(classes, device=self.device, dtype=self.dtype)
        return hot.cast(dtypes.int64)

    def sparse_categorical_crossentropy(
        self, Y: "Tensor", ignore_index: int = -1, label_smoothing: float = 0.0
    ) -> "Tensor":
        """Mean cross-entropy of logits `self` (N, C) against class indices `Y` (N,), as tinygrad."""
        return self.cross_entropy(Y, ignore_index=ignore_index, label_smoothing=label_smoothing)

    def cross_entropy(
        self, Y: "Tensor", reduction: str = "mean", label_smoothing: float = 0.0, ignore_index: int = -100
    ) -> "Tensor":
        """torch.nn.functional.cross_entropy: classes on dim 1; Y holds class indices or probabilities."""
        axis = 1 if self.ndim > 1 else 0
        log_probs = self.log_softmax(axis)
        classes = self.shape[axis]
        if dtypes.is_float(Y.dtype):
            if Y.shape != self.shape:
                raise ValueError(f"cross_entropy: probabilities {Y.shape} must match logits {self.shape}")
            target, keep, count = Y, None, None
        else:
            expected = self.shape[:axis] + self.shape[axis + 1 :]
            if Y.shape != expected:
                raise ValueError(
                    f"cross_entropy: class targets have shape {Y.shape}, expected {expected} "
                    f"for logits {self.shape}"
                )
            hot = Y.unsqueeze(-1) == Tensor.arange(classes, device=self.device, dtype=Y.dtype)
            target = hot.permute([0, hot.ndim - 1] + list(range(1, hot.ndim - 1))) if axis == 1 else hot
            # an ignore_index that is no class (-100) matches no column of `hot`: its rows pick nothing and
            # the hot entries count the others, so no mask is built (8 fewer nodes in every training step)
            keep = Y != ignore_index if label_smoothing or 0 <= ignore_index < classes else None
            count = (keep if keep is not None else hot).sum().float()
        if label_smoothing:
            target = target.float() * (1 - label_smoothing) + label_smoothing / classes
        if target.dtype == dtypes.bool:  # class indices: pick the target's log-probability
            picked = target.where(log_probs, 0)
        else:  # probabilities: weigh each class; a -inf logit with target 0 adds 0 (not 0 * -inf)
            picked = (target != 0).where(log_probs * target, 0)
        loss = -picked.sum(axis)
        if keep is not None:
            loss = keep.where(loss, 0)
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        if reduction != "mean":
            raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        return loss.sum() / count if count is not None else loss.mean()

    def binary_crossentropy(self, Y: "Tensor") -> "Tensor":
        """Mean BCE of probabilities `self` against targets `Y`; logs clamped at -100 as torch."""
        return -(Y * _clamped_log(self) + (1 - Y) * _clamped_log(1 - self)).mean()

    def binary_crossentropy_logits(self, Y: "Tensor") -> "Tensor":
        """Mean BCE of logits, in the stable form max(x, 0) - x*y + log(1 + exp(-|x|))."""
        return (self.maximum(0) - self * Y + (1 + (-self.abs()).exp()).log()).mean()

    def scaled_dot_product_attention(
        self, key: "Tensor", value: "Tensor", attn_mask: "Tensor | None" = None, is_causal: bool = False
    ) -> "Tensor":
        """softmax(q k^T / sqrt(d) + mask) v with q = self; a bool mask marks the positions to keep."""
        scores = self.matmul(key.transpose(-2, -1)) * (1 / math.sqrt(self.shape[-1]))
        if is_causal:
            keep = Tensor.ones(*scores.shape[-2:], device=self.device, dtype=dtypes.bool).tril()
            scores = keep.where(scores, -math.inf)
        if attn_mask is not None:
            scores = (
                attn_mask.where(scores, -math.inf) if attn_mask.dtype == dtypes.bool else scores + attn_mask
            )
        return scores.softmax(-1).matmul(value)


class _AssignRule:
    """The derivative of `target.assign(value)` (a FUNCTION over the ASSIGN): the value's, unchanged, as
    torch's copy_; the old target's value is gone and gets none."""

    name = "assign"

    def vjp(self, grad: LazyNode, needed: tuple[bool]) -> tuple[LazyNode]:
        return (grad,)

    def jvp(self, tangents: tuple) -> LazyNode | None:
        return tangents[0]


_ASSIGN_RULE = _AssignRule()


SPLIT_MIN, SPLIT = 1 << 16, 1024  # sums longer than 2^16 go in steps of 1024 (_split_sum; SPLIT_SUM=0: off)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _conv_padding(padding: int | Sequence[int]) -> tuple:
    """conv padding: int, (ph, pw), or flat (left, right, top, bottom) as PyTorch's F.pad."""
    if isinstance(padding, int):
        return ((0, 0), (0, 0), (padding, padding), (padding, padding))
    if len(padding) == 2:
        return ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1]))
    if len(padding) == 4:
        return ((0, 0), (0, 0), (padding[2], padding[3]), (padding[0], padding[1]))
    raise ValueError(f"padding must be an int, (ph, pw) or (left, right, top, bottom), got {padding}")


def _check_ints_fit(array: np.ndarray, dtype: DType) -> None:
    """Raise OverflowError when `dtype` is an integer type that cannot hold an int in `array` (Python data,
    which numpy would silently wrap around on conversion)."""
    if not dtypes.is_int(dtype) or array.size == 0 or array.dtype.kind not in "iuO":
        return
    values = array.reshape(-1)
    if array.dtype == object:
        values = [v for v in values if isinstance(v, int) and not isinstance(v, bool)] or [0]
    info, low, high = np.iinfo(dtype.np), int(min(values)), int(max(values))
    if low < info.min or high > info.max:
        bad = low if low < info.min else high
        raise OverflowError(f"Tensor: {bad} does not fit in {dtype.name} (range {info.min} to {info.max})")


class _Mask:
    """A boolean index given as host data (a list or array of bools): it selects its True positions."""

    def __init__(self, positions: np.ndarray):
        self.positions = positions


def _host_index(index: list | np.ndarray, device: str) -> "Tensor | _Mask":
    """A list or array used as an index: bools are a mask (as torch and numpy), ints a Tensor of indices."""
    array = np.asarray(index)
    if array.dtype == np.bool_:
        return _Mask(array)
    if array.size == 0:
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise IndexError(f"indices must be integers or bools, got {array.dtype} from {index!r}")
    return Tensor(array, device=device)


def _tensors_only(op: str, values: Sequence) -> tuple[Tensor, ...]:
    """`values` as a tuple, when every one is a Tensor; a TypeError naming the first that is not."""
    for i, value in enumerate(values):
        if not isinstance(value, Tensor):
            raise TypeError(f"{op}: expected Tensors, got {type(value).__name__} {value!r} at position {i}")
    return tuple(values)


def _positions(n: int, device: str) -> Tensor:
    """0, 1, ..., n-1 as int32: the positions masks compare against (cheaper than int64 in kernels)."""
    return Tensor.arange(n, device=device, dtype=dtypes.int32)


def _bitwise_unsupported(op: str, dtype: DType):
    raise TypeError(f"operator {op} is only supported on bool tensors, got {dtype.name}")


def _to_numpy(data: Any, dtype: DType | None) -> np.ndarray:
    """Host data for a new Tensor: Python ints become int64, floats float32, bools bool (unless dtype=). A
    Python int that the requested integer dtype cannot hold raises, as torch (numpy would wrap it)."""
    if isinstance(data, np.ndarray):
        array = data
    elif isinstance(data, (bool, int, float, np.generic)):
        scalar = data.item() if isinstance(data, np.generic) else data
        _check_ints_fit(np.array(scalar, dtype=object), dtype or dtypes.from_py(scalar))
        array = np.array(scalar, dtype=(dtype or dtypes.from_py(scalar)).np)
    elif isinstance(data, (list, tuple)):
        try:
            array = np.array(data)
        except ValueError:
            array = np.array(None, dtype=object)
        _check_ints_fit(array, dtype or dtypes.default_int)  # (ints beyond 64 bits make an object array)
        if array.dtype == object:
            raise ValueError("Tensor: nested lists must be rectangular (rows of one length) and hold numbers")
        defaults = {"f": dtypes.default_float, "i": dtypes.default_int, "u": dtypes.default_int}  # [] is "f"
        array = array.astype(defaults[array.dtype.kind].np) if array.dtype.kind in defaults else array
    else:
        raise TypeError(f"cannot make a Tensor from {type(data).__name__}")
    if dtype is not None:
        array = array.astype(dtype.np)
    else:
        dtypes.from_numpy(array.dtype)  # raises TypeError for unsupported numpy dtypes
    return np.array(array, order="C")  # a private copy (ascontiguousarray would turn 0-d into 1-d)


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow"):  # t + 2 and, reflected, 2 + t
    _method = getattr(Tensor, "div" if _name == "truediv" else _name)
    setattr(Tensor, f"__{_name}__", _method)
    setattr(Tensor, f"__r{_name}__", partialmethod(_method, reverse=True))


class no_grad(contextlib.ContextDecorator):
    """`with minigrad.no_grad():` ops inside record no graph for gradients (`no_grad(False)`: they do)."""

    def __init__(self, mode: bool = True) -> None:
        self.mode = mode

    def __enter__(self) -> None:
        self.previous, Tensor.no_grad = Tensor.no_grad, self.mode

    def __exit__(self, *exc) -> None:
        Tensor.no_grad = self.previous


__all__ = ["Tensor", "no_grad", "broadcast_shape"]
