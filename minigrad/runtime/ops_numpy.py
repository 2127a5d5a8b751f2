"""The NUMPY device: runs kernel ASTs directly with numpy. No code generation.

In: a kernel AST (ops.AstNode tree rooted at STORE) and the buffers it names. Out: the STORE'd buffer.
It is the oracle every compiled backend is tested against, so it is written for obviousness, not speed:
every LOAD evaluates the same symbolic index expression (ShapeTracker.evaluate_indices) that codegen
renders into C, so the index math is exercised by every test. Like any backend file it imports only
device, dtype and helpers; the primitive ops (`Op`, from ops.py) come through device.py, the one op
vocabulary of every stage.
"""

from __future__ import annotations

import functools

import numpy as np

from minigrad.device import IOTA, Backend, Compiler, HostAllocator, Op, Program
from minigrad.dtype import dtypes, from_storage, to_storage


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b; integers round toward zero, as C does (numpy's // rounds down)."""
    if a.dtype.kind == "f":
        return np.true_divide(a, b)
    quotient = np.floor_divide(a, b)
    return quotient + ((quotient < 0) & (quotient * b != a))


def _reduce_max(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    if x.size == 0:  # max of nothing is the lowest value of the type
        shape = tuple(1 if d in axes else s for d, s in enumerate(x.shape))
        lowest = -np.inf if x.dtype.kind == "f" else (0 if x.dtype == np.bool_ else np.iinfo(x.dtype).min)
        return np.full(shape, lowest, dtype=x.dtype)
    return np.max(x, axis=axes, keepdims=True)


def _in_float64(fn):
    """fn computed in float64 for narrower floats (the result is rounded back by _evaluate's cast): numpy's
    float32 exp, log and sin are up to 3 ulp off, and the oracle should be correctly rounded."""

    def precise(x: np.ndarray) -> np.ndarray:
        return fn(x.astype(np.float64)) if x.dtype.kind == "f" and x.dtype.itemsize < 8 else fn(x)

    return precise


NUMPY_CODE_FOR_OP = {
    Op.EXP2: _in_float64(np.exp2), Op.EXP: _in_float64(np.exp), Op.LOG2: _in_float64(np.log2),
    Op.SIN: _in_float64(np.sin), Op.COS: _in_float64(np.cos), Op.SQRT: np.sqrt, Op.RECIP: np.reciprocal,
    Op.NEG: lambda x: np.logical_not(x) if x.dtype == np.bool_ else np.negative(x),
    Op.ADD: np.add, Op.MUL: np.multiply, Op.MAX: np.maximum, Op.CMPLT: np.less, Op.CMPEQ: np.equal,
    Op.MOD: np.fmod, Op.DIV: _divide, Op.WHERE: np.where,
    Op.AND: np.bitwise_and, Op.OR: np.bitwise_or, Op.XOR: np.bitwise_xor,
}  # fmt: skip


@functools.lru_cache(maxsize=64)
def _indices(st) -> tuple[np.ndarray, np.ndarray]:
    """(buffer index, valid) of every position of a view; recently used views are cached."""
    return st.evaluate_indices()


def _typed(buf: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """View a byte buffer as elements of `dtype` (an empty buffer still has one byte allocated)."""
    return buf[: len(buf) // dtype.itemsize * dtype.itemsize].view(dtype)


def load(flat: np.ndarray, st) -> np.ndarray:
    """Read `flat` through the ShapeTracker `st`; positions outside its mask read 0."""
    index, valid = _indices(st)
    if flat.size == 0:
        return np.zeros(st.shape, dtype=flat.dtype)
    return np.where(valid, flat[np.where(valid, index, 0)], np.zeros((), dtype=flat.dtype))


def _evaluate(node, srcs: list[np.ndarray], buffers: tuple[np.ndarray, ...]) -> np.ndarray:
    """The value of one AST node, given the values of its sources. A bfloat16 value is a float32 array
    rounded to bfloat16 (its buffer holds the bits)."""
    op = node.op
    dtype = np.dtype(np.float32) if node.dtype is dtypes.bfloat16 else node.dtype.np  # the arrays' type
    if op is Op.LOAD:
        return from_storage(load(_typed(buffers[node.arg[0]], node.dtype.np), node.arg[1]), node.dtype)
    if op is Op.CONST:
        value, st = node.arg
        index, valid = _indices(st)
        value = index if value == IOTA else np.array(value, dtype=dtype)  # IOTA: its own index
        result = np.where(valid, value, np.zeros((), dtype=dtype))
    elif op is Op.REDUCE_SUM:
        result = np.sum(srcs[0], axis=node.arg, keepdims=True, dtype=dtype)
    elif op is Op.REDUCE_MAX:
        result = _reduce_max(srcs[0], node.arg)
    else:
        result = NUMPY_CODE_FOR_OP[op](*srcs) if op is not Op.CAST else srcs[0]
    return from_storage(to_storage(result, node.dtype), node.dtype)  # (bfloat16: rounded to it)


class NumpyProgram(Program):
    """Interprets one kernel AST (the "binary" is the AST itself), operands before users."""

    def __call__(self, *buffers, global_size=(1,), local_size=(1,), vals=(), wait=False):
        values: dict[int, np.ndarray] = {}
        with np.errstate(all="ignore"):
            for node in self.binary.toposort():
                srcs = [values[id(s)] for s in node.srcs]
                if node.op is not Op.STORE:
                    values[id(node)] = _evaluate(node, srcs, buffers)
                    continue
                index, valid = _indices(node.arg[1])
                out = _typed(buffers[node.arg[0]], node.dtype.np)
                value = np.broadcast_to(to_storage(srcs[0], node.dtype), valid.shape)
                out[index[valid]] = value[valid]
        return None


class NumpyCompiler(Compiler):
    def compile(self, source):
        return source  # nothing to compile: the "source" is the AST

    compile_cached = compile  # and nothing to keep on disk


class NumpyDevice(Backend):
    def __init__(self):
        super().__init__(
            "NUMPY",
            HostAllocator(),
            lambda ast, nest=None: ("numpy_kernel", ast, ((1,), None)),
            NumpyCompiler(),
            NumpyProgram,
        )
