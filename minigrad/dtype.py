"""Data types: the small set of element types a Tensor can hold.

In: nothing (a leaf module). Out: `DType` records and the `dtypes` namespace, used by every stage.
A DType knows its name, size in bytes, its numpy equivalent (host data) and its C name (codegen).
bfloat16 has no numpy type: its host data are the uint16 bit patterns (to_storage / from_storage convert).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class DType:
    """One instance per type (the attributes of `dtypes`), so `==` is identity and hashing is by id: graph
    building compares dtypes on every op, and a dataclass's field-by-field `==` was 2-3% of an MLP step."""

    priority: int  # kind and width: bool 0, ints 1-4 by size, floats 7-9 (dtypes.promote)
    itemsize: int
    name: str
    np_name: str
    c_name: str

    @property
    def np(self) -> np.dtype:
        return np.dtype(self.np_name)

    @property
    def min(self):
        """The lowest value (bool: False; floats: -inf), as tinygrad's `dtypes.int32.min`."""
        return _limits(self)[0]

    @property
    def max(self):
        return _limits(self)[1]

    def __repr__(self) -> str:
        return f"dtypes.{self.name}"

    def __reduce__(self):  # copies and pickles stay the one instance
        return getattr, (dtypes, self.name)


class dtypes:
    """Namespace of the supported dtypes (tinygrad/PyTorch names)."""

    bool = DType(0, 1, "bool", "bool", "bool")
    uint8 = DType(1, 1, "uint8", "uint8", "unsigned char")
    int8 = DType(1, 1, "int8", "int8", "signed char")
    uint16 = DType(2, 2, "uint16", "uint16", "unsigned short")
    int16 = DType(2, 2, "int16", "int16", "short")
    uint32 = DType(3, 4, "uint32", "uint32", "unsigned int")
    int32 = DType(3, 4, "int32", "int32", "int")
    uint64 = DType(4, 8, "uint64", "uint64", "unsigned long long")
    int64 = DType(4, 8, "int64", "int64", "long long")
    # 16-bit floats: computed in float registers, stored as 16 bits (codegen/cstyle.py HALF_FLOATS)
    float16 = DType(7, 2, "float16", "float16", "float")
    bfloat16 = DType(7, 2, "bfloat16", "uint16", "float")  # host data: the bits (numpy has no bfloat16)
    float32 = DType(8, 4, "float32", "float32", "float")
    float64 = DType(9, 8, "float64", "float64", "double")
    half, float, double, int, long, short = float16, float32, float64, int32, int64, int16
    uchar, char, ushort, uint, ulong = uint8, int8, uint16, uint32, uint64
    default_float = float32
    default_int = int64  # as torch: Tensor([2**40]) keeps its value

    @staticmethod
    def all() -> tuple[DType, ...]:
        return tuple(
            getattr(dtypes, name)
            for name in (
                "bool uint8 int8 uint16 int16 uint32 int32 uint64 int64 float16 bfloat16 float32 float64".split()
            )
        )

    @staticmethod
    def is_float(dtype: DType) -> bool:
        return dtype.priority >= dtypes.float16.priority  # floats rank above every int (asked on every op)

    @staticmethod
    def is_int(dtype: DType) -> bool:
        return 0 < dtype.priority < dtypes.float16.priority

    @staticmethod
    def from_numpy(np_dtype) -> DType:
        name = np.dtype(np_dtype).name
        for dt in dtypes.all():
            if dt.np_name == name:
                return dt
        raise TypeError(
            f"numpy dtype {name} is not supported by minigrad (supported: {[d.name for d in dtypes.all()]})"
        )

    @staticmethod
    def from_py(value) -> DType:
        """The dtype a Python scalar gets: bool -> bool, int -> int64, float -> default float."""
        if isinstance(value, (bool, np.bool_)):
            return dtypes.bool
        if isinstance(value, (int, np.integer)):
            return dtypes.default_int
        if isinstance(value, (float, np.floating)):
            return dtypes.default_float
        raise TypeError(f"cannot make a Tensor element from {type(value).__name__} {value!r}")

    @staticmethod
    def is_unsigned(dtype: DType) -> bool:
        return dtype.np_name.startswith("uint")

    @staticmethod
    def promote(a: DType, b: DType) -> DType:
        """The dtype of a binary op on `a` and `b`, as torch: floats above ints above bool, the wider of
        two of a kind; a signed and an unsigned int give a signed int that holds both (uint8 + int8 is
        int16; uint64 + a signed int is int64)."""
        if a is b:
            return a
        if {a, b} == {dtypes.float16, dtypes.bfloat16}:  # neither holds the other (torch: float32)
            return dtypes.float32
        if not (dtypes.is_int(a) and dtypes.is_int(b)):  # a float or a bool: the higher kind and width wins
            return a if a.priority > b.priority else b
        if dtypes.is_unsigned(a) == dtypes.is_unsigned(b):
            return a if a.itemsize >= b.itemsize else b
        signed, unsigned = (b, a) if dtypes.is_unsigned(a) else (a, b)
        if signed.itemsize > unsigned.itemsize:
            return signed
        return {1: dtypes.int16, 2: dtypes.int32}.get(unsigned.itemsize, dtypes.int64)


DTYPES_DICT = {dtype.name: dtype for dtype in dtypes.all()}  # every dtype by name (tinygrad's table)


def to_bfloat16(values: np.ndarray) -> np.ndarray:
    """The bfloat16 bit patterns (uint16) nearest to `values`, ties to even; NaN stays a (quiet) NaN."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((bits >> 16) | 0x40).astype(np.uint16), rounded)


def from_bfloat16(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def to_storage(values, dtype: DType) -> np.ndarray:
    """Host values as a buffer of `dtype` holds them: cast to its numpy type (a float too large for float16
    becomes inf, as torch, without numpy's warning), or bfloat16's bits."""
    if dtype is dtypes.bfloat16:
        return to_bfloat16(values)
    with np.errstate(over="ignore"):
        return np.asarray(values).astype(dtype.np, copy=False)


def from_storage(array: np.ndarray, dtype: DType) -> np.ndarray:
    """The values a buffer's host array holds: the array itself, or float32 for bfloat16's bits."""
    return from_bfloat16(array) if dtype is dtypes.bfloat16 else array


def _limits(dtype: DType) -> tuple:
    if dtype is dtypes.bool:
        return False, True
    if dtypes.is_float(dtype):
        return -float("inf"), float("inf")
    info = np.iinfo(dtype.np)
    return int(info.min), int(info.max)


class DTypeError(TypeError, AttributeError):
    """Not a dtype at all: a TypeError, as torch raises, and an AttributeError, as tinygrad's lookup raises."""


def to_dtype(dtype) -> DType:
    """Accept a DType, a numpy dtype or a name like "float32"; raise TypeError for anything else."""
    if isinstance(dtype, DType):
        return dtype
    if isinstance(dtype, str) and hasattr(dtypes, dtype) and isinstance(getattr(dtypes, dtype), DType):
        return getattr(dtypes, dtype)
    try:
        np.dtype(dtype)
    except Exception:
        raise DTypeError(f"not a dtype: {dtype!r}") from None
    return dtypes.from_numpy(dtype)  # a numpy dtype minigrad lacks raises TypeError naming it
