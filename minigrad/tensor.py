"""Tensor: the user-facing, PyTorch-like array. Every method is composed from the primitive ops.

In: user calls (`x @ w`, `x.relu()`, `loss.backward()`). Out: Tensors wrapping lazy nodes (lazy.py);
nothing is computed until `realize()`, `numpy()`, `item()` or `tolist()` asks for data.

Host numpy appears only where data is created (constructors, random numbers); every computation goes
through lazy.py's primitive ops, so it can be differentiated (gradient.py) and run on any device.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import weakref
from functools import partialmethod
from typing import Any, ClassVar, Iterator

import numpy as np

from minigrad.device import Buffer, Device
from minigrad.dtype import DType, dtypes, from_storage, to_dtype, to_storage
from minigrad.engine.realize import REALIZE_LOCK
from minigrad.engine.realize import realize as realize_nodes
from minigrad.gradient import differentiable_graph
from minigrad.gradient import gradient as reverse_gradient
from minigrad import viz
from minigrad.helpers import CONTEXT_HOOKS, getenv, normalize_axis, prod
from minigrad.lazy import LazyNode
from minigrad.library.activations import ActivationOps
from minigrad.library.einsum import EinsumOps
from minigrad.library.indexing import IndexingOps
from minigrad.library.math import MathOps
from minigrad.library.movement import MovementOps
from minigrad.library.nn import NNOps
from minigrad.library.reduce import ReduceOps
from minigrad.library.selection import SelectionOps
from minigrad.library.transcendental import TranscendentalOps
from minigrad.library.shapes import DTypeArg, Operand, Scalar, Shape, _shape_args, broadcast_shape
from minigrad.ops import Op

DeviceArg = "str | None"


def _like(t: "Tensor", kwargs: dict) -> dict:
    return {"device": t.device, "dtype": t.dtype, **{k: v for k, v in kwargs.items() if v is not None}}


class Tensor(
    MathOps,
    TranscendentalOps,
    ActivationOps,
    MovementOps,
    IndexingOps,
    SelectionOps,
    ReduceOps,
    EinsumOps,
    NNOps,
):
    """The face users see: data, construction, autograd and the elementwise primitives are here; the
    composed ops come from the op library's families (minigrad/library/), one base class each."""

    # roots: on a gradient that backward() made, weak references to the outputs it was called on (the losses),
    # which the optimizer's step realizes with the update (nn/optim.py); () on every other tensor
    __slots__ = ("lazydata", "_requires_grad", "grad", "roots", "__weakref__")
    # numpy leaves `np.float32(2) * t` and `array + t` to Tensor: the result is a Tensor, not an array
    __array_ufunc__ = None

    training: ClassVar[bool] = False
    no_grad: ClassVar[bool] = False
    _rng: ClassVar[np.random.Generator] = np.random.default_rng(0)

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
            element = dtype or dtypes.from_numpy(array.dtype)  # (bfloat16's host array holds its bits)
            _check_supported(device, element)
            node = _host_leaf(array, element, device)
        self.lazydata: LazyNode = node
        self.grad: Tensor | None = None
        self.roots: tuple = ()
        self._requires_grad: bool | None = None
        self.requires_grad = requires_grad

    @staticmethod
    def _from_node(node: LazyNode, requires_grad: bool | None = None) -> "Tensor":
        """Wrap a lazy node produced by an op (not a user leaf)."""
        out = Tensor.__new__(Tensor)
        out.lazydata, out.grad, out._requires_grad, out.roots = node, None, requires_grad, ()
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
        if value and not self.is_leaf:  # a user tensor that requires grad: its node knows it (lazy.leaf_of)
            self.lazydata.leaf_of += (weakref.ref(self),)

    @property
    def is_leaf(self) -> bool:
        """Made by the user with requires_grad=True (backward fills its .grad), not by an op."""
        return any(ref() is self for ref in self.lazydata.leaf_of)

    def _replace_node(self, node: LazyNode) -> None:
        """Point this tensor at `node` (realized, or assigned), which stands for the leaf it was, if so."""
        if self.is_leaf:
            node.leaf_of += (weakref.ref(self),)
        self.lazydata = node

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

    def size(self, dim: int | None = None) -> "Shape | int":
        """The shape, or the size of one dim (torch's size())."""
        return self.shape if dim is None else self.shape[normalize_axis(dim, self.ndim)]

    def element_size(self) -> int:
        """Bytes per element."""
        return self.dtype.itemsize

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
                t._replace_node(t.lazydata.contiguous())
        realize_nodes([t.lazydata for t in tensors])
        for t in tensors:
            t._forget_history()
        return self

    def _forget_history(self) -> None:
        """After realizing, drop the graph behind this tensor when no gradient can need it."""
        node = self.lazydata
        is_leaf = self.is_leaf or not self.requires_grad
        if not node.is_view and node.realized is not None and node.srcs and is_leaf:
            self._replace_node(LazyNode.from_buffer(node.realized, node.shape, node.dtype, node.device))

    def numpy(self) -> np.ndarray:
        node = self.lazydata
        if node.is_view or node.op is Op.CONST:
            node = node.contiguous()
        with REALIZE_LOCK:  # no other thread's assign() writes the buffer while it is read
            realize_nodes([node])
            data = node.realized.numpy().reshape(self.shape)
        if node is self.lazydata:
            self._forget_history()
        return from_storage(data, self.dtype)  # (bfloat16: float32 values; numpy has no bfloat16)

    def item(self) -> Scalar:
        if self.numel() != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def to(self, device: str) -> "Tensor":
        """This tensor on `device`: itself when it is there already (as torch)."""
        device = Device.canonicalize(device)
        if device == self.device:
            return self
        out = self._wrap(self.lazydata.copy_to(device), self)
        if self.grad is not None:
            out.grad = self.grad.to(device)
        return out

    def to_(self, device: str) -> "Tensor":
        """Move this tensor to `device` in place (tinygrad's): every alias sees it there."""
        moved = self.to(device)
        self.lazydata, self.grad = moved.lazydata, moved.grad
        return self

    def detach(self) -> "Tensor":
        return Tensor._from_node(self.lazydata.detach(), requires_grad=False)

    def contiguous(self) -> "Tensor":
        return self._wrap(self.lazydata.contiguous(), self)

    def clone(self) -> "Tensor":
        """A copy in a buffer of its own (differentiable, as torch.clone)."""
        return self._wrap(self.lazydata.contiguous(copy=True), self)

    def bitcast(self, dtype: DType | str) -> "Tensor":
        """The same bytes read as `dtype` of the same size (torch's view(dtype)). There is no op for it: the
        tensor is realized and reinterpreted on the host, so the result has no gradient."""
        dtype = to_dtype(dtype)
        if dtype.itemsize != self.dtype.itemsize:
            raise RuntimeError(f"bitcast: {self.dtype.name} and {dtype.name} differ in size")
        bits = to_storage(self.numpy(), self.dtype).view(dtype.np)
        return Tensor(from_storage(bits, dtype), device=self.device, dtype=dtype)

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

    def bfloat16(self) -> "Tensor":
        return self.cast(dtypes.bfloat16)

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
        old = target = self.lazydata
        if target.op is Op.FUNCTION and target.st == target.base.st:  # a derivative rule over a buffer: write
            target = target.base  # into the buffer (a second assign after one with a gradient, for one)
        if target.is_view or target.realized is None:
            node = value.lazydata  # nothing to write into yet: just take the new value
        else:
            node = target.assign(value.lazydata)
        recording, leaf = not Tensor.no_grad, self.is_leaf
        if recording and value.requires_grad and self.requires_grad and leaf:
            raise RuntimeError(
                "assign: a leaf tensor that requires grad cannot be overwritten in place while gradients "
                "are recorded (as torch); do it under `with minigrad.no_grad():`, or assign to a copy"
            )
        # the old value of a non-leaf in the graph: its leaves get zero gradients, as torch's. The FUNCTION
        # remembers only which leaves (keeping the old graph would chain together every step of a loop
        # that assigns), and takes the value as an input only when it has a gradient
        overwritten = recording and self.requires_grad and not leaf
        if overwritten or (recording and value.requires_grad and node is not value.lazydata):
            rule = _AssignRule(old) if overwritten else _ASSIGN_RULE
            node = node.custom_rule((value.lazydata,) if value.requires_grad else (), rule)
        if recording and value.requires_grad:
            self._requires_grad = True
        self._replace_node(node)
        return self

    def _in_place(self, op, other: "Tensor | Scalar") -> "Tensor":
        """`self op= other` (+=, *=, @=, ...): the result written into this tensor (assign), so that every
        name for it sees the new value, as in torch; inside TinyJit the write is replayed. The result must
        keep self's shape, and its dtype must cast back without changing kind (an int tensor += 0.5 is a
        RuntimeError, as torch's)."""
        result = op(self, other)
        if result.shape != self.shape:
            raise RuntimeError(
                f"in-place op: the result's shape {result.shape} differs from the tensor's {self.shape}"
            )
        kinds = [
            0 if d == dtypes.bool else 2 if dtypes.is_float(d) else 1 for d in (result.dtype, self.dtype)
        ]
        if kinds[0] > kinds[1]:
            raise RuntimeError(
                f"in-place op: a {result.dtype.name} result cannot be written into a {self.dtype.name} tensor"
            )
        return self.assign(result.cast(self.dtype))

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
    def linspace(
        start: Scalar,
        stop: Scalar,
        steps: int,
        device: DeviceArg = None,
        dtype: DTypeArg = None,
        requires_grad: bool | None = None,
    ) -> "Tensor":
        """`steps` evenly spaced values from start to stop, both included; as torch, the first half counts up
        from start and the second half down from stop, and integer dtypes truncate."""
        dtype = to_dtype(dtype or dtypes.default_float)
        if steps < 0:
            raise ValueError(f"linspace: steps must be non-negative, got {steps}")
        if dtype == dtypes.bool:
            raise ValueError("linspace: bool is not a valid dtype")
        i = Tensor.arange(steps, device=device, dtype=dtypes.float32)
        step = (stop - start) / (steps - 1) if steps > 1 else 0.0
        values = (i < steps / 2).where(start + step * i, stop - step * (steps - 1 - i))
        return Tensor(values.cast(dtype), requires_grad=requires_grad)

    @staticmethod
    def logspace(
        start: Scalar,
        stop: Scalar,
        steps: int,
        base: float = 10.0,
        device: DeviceArg = None,
        dtype: DTypeArg = None,
        requires_grad: bool | None = None,
    ) -> "Tensor":
        values = base ** Tensor.linspace(start, stop, steps, device=device)
        return Tensor(values.cast(to_dtype(dtype or dtypes.default_float)), requires_grad=requires_grad)

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
    def normal(
        *shape,
        mean: float = 0.0,
        std: float = 1.0,
        device: DeviceArg = None,
        dtype: DTypeArg = None,
        requires_grad: bool | None = None,
    ) -> "Tensor":
        return Tensor._random(device, dtype, requires_grad, "normal", mean, std, _shape_args(shape))

    @staticmethod
    def scaled_uniform(*shape, **kwargs) -> "Tensor":
        """Uniform in [-1, 1) / sqrt(numel), as tinygrad."""
        shape = _shape_args(shape)
        return Tensor.uniform(*shape, low=-1.0, high=1.0, **kwargs) * prod(shape) ** -0.5

    @staticmethod
    def glorot_uniform(*shape, **kwargs) -> "Tensor":
        """Xavier/Glorot uniform: bound sqrt(6 / (fan_out + fan_in)), fan_out the first dim."""
        shape = _shape_args(shape)
        bound = math.sqrt(6 / (shape[0] + prod(shape[1:]))) if shape else 1.0
        return Tensor.uniform(*shape, low=-bound, high=bound, **kwargs)

    @staticmethod
    def kaiming_uniform(*shape, a: float = 0.01, **kwargs) -> "Tensor":
        """He uniform for a leaky relu of slope a: bound sqrt(3) * gain / sqrt(fan_in), fan_in = prod(shape[1:])."""
        shape = _shape_args(shape)
        bound = math.sqrt(3.0) * math.sqrt(2.0 / (1 + a**2)) / math.sqrt(max(1, prod(shape[1:])))
        return Tensor.uniform(*shape, low=-bound, high=bound, **kwargs)

    @staticmethod
    def kaiming_normal(*shape, a: float = 0.01, **kwargs) -> "Tensor":
        """He normal for a leaky relu of slope a: std gain / sqrt(fan_in)."""
        shape = _shape_args(shape)
        std = math.sqrt(2.0 / (1 + a**2)) / math.sqrt(max(1, prod(shape[1:])))
        return Tensor.normal(*shape, mean=0.0, std=std, **kwargs)

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
    def randperm(
        n: int, device: DeviceArg = None, dtype: DTypeArg = None, requires_grad: bool | None = None
    ) -> "Tensor":
        """0 .. n-1 in a random order (int64 unless dtype=)."""
        if n < 0:
            raise ValueError(f"randperm: n must be >= 0, got {n}")
        return Tensor._random(device, dtype or dtypes.int64, requires_grad, "permutation", n)

    @staticmethod
    def from_blob(ptr: int, shape: Shape, dtype: DTypeArg = None, device: DeviceArg = None) -> "Tensor":
        """A tensor with a copy of the host memory at address `ptr` (shape and dtype as given; tinygrad's
        from_blob shares the memory, this one copies it)."""
        dtype = to_dtype(dtype) if dtype is not None else dtypes.default_float
        shape = _shape_args((shape,) if isinstance(shape, (tuple, list)) else (shape,))
        raw = (ctypes.c_char * (prod(shape) * dtype.itemsize)).from_address(ptr)
        array = np.frombuffer(bytes(raw), dtype=dtype.np).reshape(shape)
        return Tensor(from_storage(array, dtype), device=device, dtype=dtype)

    @staticmethod
    def _random(device: DeviceArg, dtype: DTypeArg, requires_grad, method: str, *args, **kwargs) -> "Tensor":
        """Host random numbers, `Tensor._rng.<method>(*args, **kwargs)`. Under TinyJit every replay loads
        new ones (lazy.LazyNode.buffer), as a call would draw them."""
        draw = lambda: getattr(Tensor._rng, method)(*args, **kwargs)  # noqa: E731
        dtype = to_dtype(dtype) if dtype is not None else dtypes.default_float
        device = Device.canonicalize(device) if device is not None else Device.DEFAULT
        _check_supported(device, dtype)
        array = _to_numpy(draw(), dtype)
        node = LazyNode.buffer((array, lambda: _to_numpy(draw(), dtype)), array.shape, dtype, device)
        return Tensor(node, requires_grad=requires_grad)

    def zeros_like(self, **kwargs) -> "Tensor":
        return self.full_like(0, **kwargs)

    def ones_like(self, **kwargs) -> "Tensor":
        return self.full_like(1, **kwargs)

    def full_like(self, fill_value: Scalar, **kwargs) -> "Tensor":
        """A tensor of self's shape filled with `fill_value`. As in every `*_like`, the keywords are device,
        dtype (both self's when not given, or None) and requires_grad."""
        return Tensor.full(self.shape, fill_value, **_like(self, kwargs))

    def rand_like(self, **kwargs) -> "Tensor":
        return Tensor.rand(*self.shape, **_like(self, kwargs))

    def randn_like(self, **kwargs) -> "Tensor":
        return Tensor.randn(*self.shape, **_like(self, kwargs))

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
        if getenv("VIZ"):  # the viewer shows the nodes made from here on as the backward pass
            viz.phase("backward")
        root_grad = self._root_gradient(gradient)
        graph = differentiable_graph([self.lazydata])
        found = [(n, ref()) for n in graph for ref in n.leaf_of]  # the leaves this graph reaches
        reached = {id(t): t for n, t in found if t is not None and t.lazydata is n and t.requires_grad}
        for leaf in (ref() for ref in _overwritten_leaves(graph)):  # behind a value assign() overwrote: zeros
            if leaf is not None and leaf.requires_grad:
                reached.setdefault(id(leaf), leaf)
        leaves = list(reached.values())
        grads = reverse_gradient([self.lazydata], [t.lazydata for t in leaves], [root_grad.lazydata], graph)
        for leaf, grad in zip(leaves, grads):
            if grad is None:  # used only through ops with no gradient (comparisons): zero, as torch
                grad = leaf.lazydata.const_like(0.0)
            grad_tensor = Tensor._from_node(grad.detach(), requires_grad=False)
            grad_tensor = grad_tensor if leaf.grad is None else leaf.grad + grad_tensor
            grad_tensor.roots = leaf.grad.roots if leaf.grad is not None else ()
            grad_tensor.roots += (weakref.ref(self),)  # realized with the update: optim.Optimizer.step
            leaf.grad = grad_tensor
        if getenv("VIZ"):
            viz.phase("forward")
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
        float_tensor = dtypes.is_float(self.dtype)
        # (the usual case, a float tensor and a Python float or int, skips from_py's type checks)
        kind = None if float_tensor and type(other) in (float, int) else dtypes.from_py(other)
        if float_tensor:
            dtype = self.dtype  # a float tensor keeps its precision for any scalar
        elif kind == dtypes.default_float:
            dtype = kind  # an int or bool tensor with a float scalar computes in float
        elif self.dtype == dtypes.bool and kind != dtypes.bool:
            dtype = dtypes.default_int
        else:
            dtype = self.dtype
        return Tensor._from_node(LazyNode.shared_const(other, dtype, self.device, shape), False)

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

    def _wide(self) -> "Tensor":
        """Self (a float tensor) in float64 where its device has float64, else self: for a formula whose
        float32 roundings add up (pow, tan of large x), computed wide and rounded once with .cast(dtype)."""
        if self.dtype.itemsize < 8 and Device[self.device].supports_dtype(dtypes.float64):
            return self.cast(dtypes.float64)
        return self

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

    def div(self, other: Operand, reverse: bool = False, rounding_mode: str | None = None) -> "Tensor":
        """True division (ints give floats), or with rounding_mode "trunc" / "floor" rounded, as torch."""
        if rounding_mode is not None:
            return self._rounded_div(other, reverse, rounding_mode)
        if not reverse and isinstance(other, (int, float)) and not isinstance(other, bool):
            if 1e-30 < abs(other) < 1e30:  # 1/other is a normal float32: fold it into the constant
                return self._float() * (1 / other)
        x, y = self._broadcasted(other, reverse)
        return x._float()._alu(Op.DIV, y._float())

    def _rounded_div(self, other: Operand, reverse: bool, rounding_mode: str) -> "Tensor":
        if rounding_mode not in ("trunc", "floor"):
            raise RuntimeError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
        x, y = self._broadcasted(other, reverse)
        if rounding_mode == "floor":
            return x.floordiv(y)
        return (x / y).trunc() if dtypes.is_float(x.dtype) else x._alu(Op.DIV, y)

    def fmod(self, other: Operand) -> "Tensor":
        """Remainder with the sign of the dividend (C's fmod, torch.fmod)."""
        x, y = self._broadcasted(other)
        if dtypes.is_float(x.dtype):
            return x - (x / y).trunc() * y
        return x._alu(Op.MOD, y)

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

    def _bitwise(self, op: Op, other: Operand, reverse: bool) -> "Tensor":
        """& | ^ on integer tensors (AND, OR, XOR) and on bools (MUL, MAX, CMPEQ keep them 0/1)."""
        x, y = self._broadcasted(other, reverse)
        if x.dtype == dtypes.bool:
            return x._alu(Op.MUL, y) if op is Op.AND else (x._alu(Op.MAX, y) if op is Op.OR else x != y)
        if not dtypes.is_int(x.dtype):
            raise RuntimeError(f"bitwise {op.name} needs integer or bool tensors, got {x.dtype.name}")
        return x._alu(op, y)

    def bitwise_and(self, other: Operand, reverse: bool = False) -> "Tensor":
        return self._bitwise(Op.AND, other, reverse)

    def bitwise_or(self, other: Operand, reverse: bool = False) -> "Tensor":
        return self._bitwise(Op.OR, other, reverse)

    def bitwise_xor(self, other: Operand, reverse: bool = False) -> "Tensor":
        return self._bitwise(Op.XOR, other, reverse)

    def bitwise_not(self) -> "Tensor":
        if self.dtype == dtypes.bool:
            return self.logical_not()
        return self.bitwise_xor(
            -1 if not dtypes.is_unsigned(self.dtype) else 2 ** (8 * self.dtype.itemsize) - 1
        )

    __invert__ = bitwise_not

    def lshift(self, shift: Operand, reverse: bool = False) -> "Tensor":
        """x << n as x * 2**n, in 64 bits and cast back: the bits shifted out are dropped, as in torch."""
        x, n = self._broadcasted(shift, reverse)
        _check_int_operands("<<", x)
        wide = dtypes.uint64 if dtypes.is_unsigned(x.dtype) else dtypes.int64
        return (x.cast(wide) * _power_of_two(n, wide)).cast(x.dtype)

    def rshift(self, shift: Operand, reverse: bool = False) -> "Tensor":
        """x >> n as floor division by 2**n (arithmetic: negative numbers stay negative), in 64 bits so
        that 2**31 fits."""
        x, n = self._broadcasted(shift, reverse)
        _check_int_operands(">>", x)
        wide = dtypes.uint64 if dtypes.is_unsigned(x.dtype) else dtypes.int64
        return x.cast(wide).floordiv(_power_of_two(n, wide)).cast(x.dtype)

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

    remainder = mod  # torch's names
    floor_divide = floordiv

    def pow(self, exponent: Operand, reverse: bool = False) -> "Tensor":
        if not reverse and not isinstance(exponent, Tensor):
            return self._pow_scalar(exponent)
        base, exponent = self._broadcasted(exponent, reverse)
        from minigrad.library.power import Pow  # (power.py imports tensor.py)

        return Pow.apply(base._float(), exponent._float())

    def _pow_scalar(self, exponent: Scalar) -> "Tensor":
        """x ** c: exact products for integer powers (by squaring), sqrt for 0.5, exp2/log2 otherwise. An
        integer tensor stays integer for an integer c >= 0 (a negative one raises, as torch); a float c
        makes it float."""
        if isinstance(exponent, float) and not dtypes.is_float(self.dtype):
            return self._float()._pow_scalar(exponent)
        if exponent == 0:  # 1 everywhere (nan ** 0 too), still in the graph with gradient 0, as torch
            return self._const(True, dtypes.bool).where(1, self)
        if float(exponent).is_integer() and (abs(exponent) <= 8 or not dtypes.is_float(self.dtype)):
            if exponent < 0 and not dtypes.is_float(self.dtype):
                raise RuntimeError(f"integers to negative integer powers are not allowed ({self.dtype.name})")
            result = _power_by_squaring(self, int(abs(exponent)))
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


class _AssignRule:
    """The derivative of `target.assign(value)` (a FUNCTION over the ASSIGN): the value's, unchanged, as
    torch's copy_; the old target's value is gone and gets none. The leaves the old value came from are
    remembered (weakly: not its graph), so that backward gives them zeros, as torch does."""

    name = "assign"

    def __init__(self, old: LazyNode | None = None):
        self.overwritten = _overwritten_leaves(differentiable_graph([old])) if old is not None else ()

    def vjp(self, grad: LazyNode, needed: tuple[bool], grad_of=None) -> tuple[LazyNode, ...]:
        return (grad,)[: len(needed)]  # (no input: the value has no gradient)

    def jvp(self, tangents: tuple) -> LazyNode | None:
        return tangents[0] if tangents else None


_ASSIGN_RULE = _AssignRule()


def _overwritten_leaves(graph: list[LazyNode]) -> tuple:
    """Weak references to the leaf tensors of `graph`, and to those behind values assign() overwrote in it
    (an earlier assign's rule remembers them), each once; not those of tensors the user no longer holds
    (`(Tensor(..., requires_grad=True) * 2).sum().backward()`: hashing a dead weak reference raises)."""
    refs = [ref for node in graph for ref in node.leaf_of]
    refs += [ref for node in graph if isinstance(node.arg, _AssignRule) for ref in node.arg.overwritten]
    return tuple(dict.fromkeys(ref for ref in refs if ref() is not None))


def _check_ints_fit(array: np.ndarray, dtype: DType) -> None:
    """Raise OverflowError when `dtype` is an integer type that cannot hold an int in `array` (Python data,
    which numpy would silently wrap around on conversion). As torch, an unsigned type takes negatives down to
    -max, wrapped around (Tensor([-1], dtype=uint8) is 255)."""
    if not dtypes.is_int(dtype) or array.size == 0 or array.dtype.kind not in "iuO":
        return
    values = array.reshape(-1)
    if array.dtype == object:
        values = [v for v in values if isinstance(v, int) and not isinstance(v, bool)] or [0]
    info, low, high = np.iinfo(dtype.np), int(min(values)), int(max(values))
    lowest = -int(info.max) if dtypes.is_unsigned(dtype) else int(info.min)
    if low < lowest or high > info.max:
        bad = low if low < lowest else high
        raise OverflowError(f"Tensor: {bad} does not fit in {dtype.name} (range {lowest} to {info.max})")


def _power_by_squaring(x: "Tensor", n: int) -> "Tensor":
    """x ** n for an integer n >= 1 in about 2 log2(n) products."""
    result, square = None, x
    while n:
        if n & 1:
            result = square if result is None else result * square
        n >>= 1
        if n:
            square = square * square
    return result


def _check_int_operands(op: str, x: "Tensor") -> None:
    if not dtypes.is_int(x.dtype):
        raise RuntimeError(f"operator {op} needs integer tensors, got {x.dtype.name}")


def _power_of_two(n: "Tensor", dtype: DType) -> "Tensor":
    """2**n for integer 0 <= n < 63, exact (a power of two is exact in float32), as `dtype`."""
    return n.cast(dtypes.float32).exp2().cast(dtype)


def _to_numpy(data: Any, dtype: DType | None) -> np.ndarray:
    """Host data for a new Tensor: Python ints become int64, floats float32, bools bool (unless dtype=). A
    Python int that the requested integer dtype cannot hold raises, as torch (numpy would wrap it)."""
    if data is None:  # an empty tensor, as tinygrad's Tensor(None)
        array = np.zeros(0, dtype=np.float32)
    elif isinstance(data, (bytes, bytearray)):  # the bytes themselves: uint8, or reinterpreted as dtype
        array = np.frombuffer(data, dtype=(dtype or dtypes.uint8).np).copy()
        array = from_storage(array, dtype or dtypes.uint8)
    elif isinstance(data, np.ndarray):
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
        array = to_storage(array, dtype)
    else:
        dtypes.from_numpy(array.dtype)  # raises TypeError for unsupported numpy dtypes
    return array


def _check_supported(device: str, dtype: DType) -> None:
    if not Device[device].supports_dtype(dtype):
        raise TypeError(f"device {device} does not support dtype {dtype.name}")


def _host_leaf(array: np.ndarray, dtype: DType, device: str) -> LazyNode:
    """A leaf holding a private copy of `array` (later writes to the caller's array do not show). Where
    the device's memory is this process's (CPU, NUMPY), the copy goes straight into a device buffer, now:
    one copy, into memory the allocator reuses (a fresh host array costs its page faults, a second copy
    at realize); elsewhere a host copy, uploaded by the first realize."""
    if Device[device].allocator.host:
        buffer = Buffer(device, array.size, dtype).copyin(array)
        return LazyNode.from_buffer(buffer, array.shape, dtype, device)
    copy = np.array(array, order="C")  # (ascontiguousarray would turn 0-d into 1-d)
    return LazyNode.buffer(copy, array.shape, dtype, device)


_OPERATORS = {"truediv": "div", "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor"}
for _name in (
    "add",
    "sub",
    "mul",
    "truediv",
    "floordiv",
    "mod",
    "pow",
    "and",
    "or",
    "xor",
    "lshift",
    "rshift",
):
    _method = getattr(Tensor, _OPERATORS.get(_name, _name))  # t + 2 and, reflected, 2 + t
    setattr(Tensor, f"__{_name}__", _method)
    setattr(Tensor, f"__r{_name}__", partialmethod(_method, reverse=True))
    setattr(Tensor, f"__i{_name}__", partialmethod(Tensor._in_place, _method))
Tensor.__imatmul__ = partialmethod(Tensor._in_place, Tensor.matmul)


def _set_training(value: Any) -> Any:
    """Context(TRAINING=1): Tensor.training for the block, as `with Tensor.train():`."""
    previous, Tensor.training = Tensor.training, bool(value)
    return lambda: setattr(Tensor, "training", previous)


def _set_default_float(value: Any) -> Any:
    """Context(DEFAULT_FLOAT=dtypes.float16): the dtype of float tensors made from Python data, for the block."""
    dtype = to_dtype(value)
    if not dtypes.is_float(dtype):
        raise TypeError(f"Context: DEFAULT_FLOAT must be a float dtype, got {dtype.name}")
    previous, dtypes.default_float = dtypes.default_float, dtype
    return lambda: setattr(dtypes, "default_float", previous)


CONTEXT_HOOKS["TRAINING"] = _set_training
CONTEXT_HOOKS["DEFAULT_FLOAT"] = _set_default_float


class no_grad(contextlib.ContextDecorator):
    """`with minigrad.no_grad():` ops inside record no graph for gradients (`no_grad(False)`: they do)."""

    def __init__(self, mode: bool = True) -> None:
        self.mode = mode

    def __enter__(self) -> None:
        self.previous, Tensor.no_grad = Tensor.no_grad, self.mode

    def __exit__(self, *exc) -> None:
        Tensor.no_grad = self.previous


__all__ = ["Tensor", "no_grad", "broadcast_shape"]
