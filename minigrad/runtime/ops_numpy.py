"""The NUMPY device: runs kernel ASTs directly with numpy. No code generation.

In: a kernel AST (ops.AstNode tree rooted at STORE) and the buffers it names. Out: the STORE'd buffer.
It is the oracle every compiled backend is tested against, so it is written for obviousness, not speed.
Like any backend file it imports only device, dtype and helpers: it recognises ops by their names.
"""

from __future__ import annotations

import numpy as np

from minigrad.device import Allocator, Backend, Compiler, Program


def _truncating_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division rounding toward zero, as C does (numpy's // rounds down)."""
    quotient = np.floor_divide(a, b)
    return quotient + ((quotient < 0) & (quotient * b != a))


NUMPY_CODE_FOR_OP = {
    "EXP2": np.exp2,
    "LOG2": np.log2,
    "SIN": np.sin,
    "SQRT": np.sqrt,
    "RECIP": np.reciprocal,
    "NEG": lambda x: np.logical_not(x) if x.dtype == np.bool_ else np.negative(x),
    "ADD": np.add,
    "MUL": np.multiply,
    "MAX": np.maximum,
    "CMPLT": np.less,
    "CMPEQ": np.equal,
    "MOD": np.fmod,
    "IDIV": _truncating_divide,
    "WHERE": np.where,
}


def _check_bounds(view, flat_size: int, region: list[tuple[int, int]]) -> int:
    """Start offset of the masked region of a single view; raises if it would read outside the buffer."""
    start = view.offset + sum(b * st for (b, _), st in zip(region, view.strides))
    low = start + sum(min(0, st * (e - b - 1)) for (b, e), st in zip(region, view.strides))
    high = start + sum(max(0, st * (e - b - 1)) for (b, e), st in zip(region, view.strides))
    if low < 0 or high >= flat_size:
        raise RuntimeError(f"view {view} reads [{low}, {high}] outside a buffer of {flat_size} elements")
    return start


def load(flat: np.ndarray, st) -> np.ndarray:
    """Read `flat` through the ShapeTracker `st`; positions outside its mask read 0."""
    if len(st.views) > 1:  # general case: evaluate the symbolic index of every position
        index, valid = st.evaluate_indices()
        return np.where(valid, flat[np.where(valid, index, 0)], 0).astype(flat.dtype)
    view = st.views[0]
    region = list(view.mask) if view.mask is not None else [(0, s) for s in view.shape]
    out = np.zeros(view.shape, dtype=flat.dtype)
    if any(b >= e for b, e in region):
        return out
    start = _check_bounds(view, flat.size, region)
    window = np.lib.stride_tricks.as_strided(
        flat[start:], shape=[e - b for b, e in region], strides=[st * flat.itemsize for st in view.strides]
    )
    out[tuple(slice(b, e) for b, e in region)] = window
    return out


def _const(value, st, dtype: np.dtype) -> np.ndarray:
    if st.views[-1].mask is None and len(st.views) == 1:
        return np.full(st.shape, value, dtype=dtype)
    _, valid = st.evaluate_indices()
    return np.where(valid, np.asarray(value, dtype=dtype), np.zeros((), dtype=dtype))


def _reduce_max(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    if x.size == 0:  # the identity of max
        shape = tuple(1 if d in axes else s for d, s in enumerate(x.shape))
        low = -np.inf if x.dtype.kind == "f" else (False if x.dtype == np.bool_ else np.iinfo(x.dtype).min)
        return np.full(shape, low, dtype=x.dtype)
    return np.max(x, axis=axes, keepdims=True)


def _typed(buf: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """View a byte buffer as elements of `dtype` (an empty buffer still has one byte allocated)."""
    return buf[: len(buf) // dtype.itemsize * dtype.itemsize].view(dtype)


class NumpyProgram(Program):
    """Interprets one kernel AST; `binary` is the AST itself."""

    def __call__(self, *buffers, global_size=(1,), local_size=(1,), vals=(), wait=False):
        values: dict[int, np.ndarray] = {}
        with np.errstate(all="ignore"):
            for node in self.binary.toposort():
                srcs = [values[id(s)] for s in node.srcs]
                dtype = node.dtype.np
                name = node.op.name
                if name == "LOAD":
                    index, st = node.arg
                    result = load(_typed(buffers[index], dtype), st)
                elif name == "CONST":
                    result = _const(node.arg[0], node.arg[1], dtype)
                elif name == "STORE":
                    index, st = node.arg
                    out = _typed(buffers[index], dtype)
                    value = np.broadcast_to(srcs[0], st.shape).astype(dtype, copy=False)
                    if st.contiguous:
                        out[:] = value.reshape(-1)
                    else:
                        flat_index, valid = st.evaluate_indices()
                        out[flat_index[valid]] = value[valid]
                    continue
                elif name == "REDUCE_SUM":
                    result = np.sum(srcs[0], axis=node.arg, keepdims=True, dtype=dtype)
                elif name == "REDUCE_MAX":
                    result = _reduce_max(srcs[0], node.arg)
                elif name == "CAST":
                    result = srcs[0].astype(dtype)
                else:
                    result = NUMPY_CODE_FOR_OP[name](*srcs)
                values[id(node)] = np.asarray(result).astype(dtype, copy=False)
        return None


class NumpyAllocator(Allocator):
    """Device memory is a numpy byte array; programs view it with the element type they need."""

    def alloc(self, nbytes: int) -> np.ndarray:
        return np.empty(nbytes, dtype=np.uint8)

    def copyin(self, buf: np.ndarray, src: memoryview) -> None:
        buf[:] = np.frombuffer(src, dtype=np.uint8)

    def copyout(self, dest: memoryview, buf: np.ndarray) -> None:
        np.frombuffer(dest, dtype=np.uint8)[:] = buf


class NumpyCompiler(Compiler):
    def compile(self, source):
        return source  # nothing to compile: the "source" is the AST


class NumpyDevice(Backend):
    def __init__(self):
        super().__init__(
            "NUMPY", NumpyAllocator(), lambda ast: ("numpy_kernel", ast), NumpyCompiler(), NumpyProgram
        )
