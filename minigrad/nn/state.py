"""Model state: find the Tensors of a model, name them, save and load them as safetensors.

In: any object whose Tensors sit in attributes, lists, tuples or dicts (nested). Out: `get_state_dict`
gives {dotted name: Tensor} ("layers.0.weight"); `get_parameters` gives the Tensors once each;
`load_state_dict` copies a state dict into the model; `safe_save` / `safe_load` write and read the
safetensors format: an 8-byte little-endian header length, a JSON header {name: {"dtype", "shape",
"data_offsets"}}, then the raw little-endian bytes. Files are interchangeable with the `safetensors`
package.
"""

from __future__ import annotations

import functools
import json
import math
import os
import pathlib
import struct
from typing import Any

import numpy as np

from minigrad.device import Device
from minigrad.dtype import dtypes, from_storage, to_storage
from minigrad.tensor import Tensor

# safetensors' dtype codes for the dtypes minigrad stores
SAFETENSORS_DTYPES = {
    dtypes.float32: "F32",
    dtypes.float16: "F16",
    dtypes.bfloat16: "BF16",
    dtypes.float64: "F64",
    dtypes.int32: "I32",
    dtypes.int64: "I64",
    dtypes.int8: "I8",
    dtypes.uint8: "U8",
    dtypes.bool: "BOOL",
}
FROM_SAFETENSORS = {code: dtype for dtype, code in SAFETENSORS_DTYPES.items()}


def get_state_dict(obj: Any, prefix: str = "") -> dict[str, Tensor]:
    """Every Tensor reachable from `obj` through attributes, lists, tuples and dicts, by dotted name."""
    if isinstance(obj, Tensor):
        return {prefix.rstrip("."): obj}
    if isinstance(obj, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(obj)]
    elif isinstance(obj, dict):
        items = [(str(k), v) for k, v in obj.items()]
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        items = list(vars(obj).items())
    else:
        return {}
    state: dict[str, Tensor] = {}
    for name, value in items:
        state.update(get_state_dict(value, f"{prefix}{name}."))
    return state


def get_parameters(obj: Any) -> list[Tensor]:
    """The Tensors of `obj`, each once (a Tensor shared by two layers is one parameter)."""
    return list({id(t): t for t in get_state_dict(obj).values()}.values())


def functional_call(
    model: Any, tensors: dict[str, Tensor] | tuple, args: Any = (), kwargs: dict | None = None
):
    """model(*args, **kwargs) with some of its Tensors replaced, by dotted name (get_state_dict's), for the
    length of the call, as torch.func.functional_call: the way to hand a model's parameters to grad or
    vmap as arguments. `tensors` may be a tuple of such dicts; `args` one argument or a tuple of them."""
    dicts = tensors if isinstance(tensors, (tuple, list)) else (tensors,)
    replacing = {name: value for d in dicts for name, value in d.items()}
    known = get_state_dict(model)
    missing = [name for name in replacing if name not in known]
    if missing:
        raise KeyError(f"functional_call: the model has no tensors named {missing} (it has {list(known)})")
    saved = {name: _swap(model, name, value) for name, value in replacing.items()}
    try:
        return model(*(args if isinstance(args, tuple) else (args,)), **(kwargs or {}))
    finally:
        for name, value in saved.items():
            _swap(model, name, value)


def _swap(obj: Any, name: str, value: Tensor) -> Tensor:
    """Put `value` where the dotted `name` points inside obj (attributes, lists, dicts); return what was
    there."""
    *path, last = name.split(".")
    for part in path:
        obj = (
            obj[int(part)]
            if isinstance(obj, (list, tuple))
            else obj[part]
            if isinstance(obj, dict)
            else getattr(obj, part)
        )
    if isinstance(obj, tuple):
        raise TypeError(f"functional_call: {name} is inside a tuple, which cannot be changed; use a list")
    if isinstance(obj, list):
        old, obj[int(last)] = obj[int(last)], value
    elif isinstance(obj, dict):
        old, obj[last] = obj[last], value
    else:
        old = getattr(obj, last)
        setattr(obj, last, value)
    return old


def load_state_dict(obj: Any, state_dict: dict[str, Tensor], strict: bool = True) -> None:
    """Copy `state_dict` into the model's Tensors, in place (on the model's devices and dtypes)."""
    own = get_state_dict(obj)
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [
        f"Shape mismatch in layer `{k}`: Expected shape {own[k].shape}, but found {tuple(state_dict[k].shape)} "
        "in state dict."
        for k in sorted(set(own) & set(state_dict))
        if tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    if mismatched or (strict and (missing or unexpected)):
        problems = [f"missing keys: {missing}"] if missing else []
        problems += [f"unexpected keys: {unexpected}"] if unexpected else []
        problems += mismatched
        raise ValueError("load_state_dict: " + "; ".join(problems))
    for name in set(own) & set(state_dict):
        target, value = own[name], state_dict[name]
        value = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
        target.assign(value.to(target.device).cast(target.dtype).detach())
    Tensor.realize(*own.values())


def safe_save(state_dict: dict[str, Tensor], path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write `state_dict` (and `metadata`, str -> str, as safetensors requires) to a safetensors file."""
    if metadata is not None and not all(isinstance(v, str) for v in metadata.values()):
        raise TypeError(f"safe_save: metadata must map strings to strings, got {metadata!r}")
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name, tensor in state_dict.items():
        if tensor.dtype not in SAFETENSORS_DTYPES:
            raise TypeError(f"safe_save: {name} has dtype {tensor.dtype.name}, which safetensors cannot hold")
        data = to_storage(tensor.numpy(), tensor.dtype)  # (bfloat16: numpy() gave float32, this the bits)
        blob = np.ascontiguousarray(data).astype(tensor.dtype.np.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": SAFETENSORS_DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the safetensors package writes it
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob)


MAX_HEADER_BYTES = 100 << 20  # as the safetensors package


def safe_load(path: str | os.PathLike, device: str | None = None) -> dict[str, Tensor]:
    """The tensors of a safetensors file, validated as strictly as the safetensors package does: a bad
    file raises ValueError naming it and the problem. Each tensor keeps its dtype (float16 and bfloat16
    too) where the device holds it, and is promoted to float32 where it does not."""
    entries, body, _ = _read_header(path, pathlib.Path(path).read_bytes())
    backend = Device[device or Device.DEFAULT]
    state: dict[str, Tensor] = {}
    for name, (code, shape, begin, end) in entries.items():
        dtype = FROM_SAFETENSORS[code]
        array = np.frombuffer(body[begin:end], dtype=dtype.np.newbyteorder("<"))
        array = array.reshape(shape).astype(array.dtype.newbyteorder("="))
        array = from_storage(array, dtype)  # bfloat16: bits -> float32, exactly
        state[name] = Tensor(
            array, device=device, dtype=dtype if backend.supports_dtype(dtype) else dtypes.float32
        )
    return state


def safe_load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The `__metadata__` of a safetensors file ({} when it has none)."""
    return _read_header(path, pathlib.Path(path).read_bytes())[2]


def _invalid(path: Any, problem: str) -> ValueError:
    return ValueError(f"safe_load: {path} is not a valid safetensors file: {problem}")


def _parse_json(path: Any, data: bytes) -> tuple[dict, int]:
    """The header (a JSON object) and its length in bytes."""
    bad = functools.partial(_invalid, path)
    if len(data) < 8:
        raise bad(f"{len(data)} bytes, shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8 or length > MAX_HEADER_BYTES:
        raise bad(f"the header length {length} exceeds the file ({len(data)} bytes) or 100 MiB")
    try:
        header = json.loads(data[8 : 8 + length])
    except RecursionError:  # json's parser recurses per level: a deeply nested header stops it here
        raise bad("the header's JSON nests too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise bad(f"the header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise bad(f"the header is a JSON {type(header).__name__}, not an object")
    return header, length


def _read_header(path: Any, data: bytes) -> tuple[dict[str, tuple], memoryview, dict[str, str]]:
    """{name: (dtype code, shape, begin, end)}, the data section and the metadata, every field checked."""
    header, length = _parse_json(path, data)
    body, bad = memoryview(data)[8 + length :], functools.partial(_invalid, path)
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise bad("__metadata__ must map strings to strings")
    entries = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"{name!r} must have exactly dtype, shape and data_offsets, got {info!r}"[:300])
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if code not in FROM_SAFETENSORS:
            raise bad(f"{name!r} has dtype {code!r}; known: {sorted(FROM_SAFETENSORS)}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise bad(f"{name!r} has shape {shape!r}, not a list of non-negative integers")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
            raise bad(f"{name!r} has data_offsets {offsets!r}, not [begin, end] as non-negative integers")
        begin, end = offsets
        itemsize = FROM_SAFETENSORS[code].itemsize
        if not begin <= end <= len(body):
            raise bad(f"{name!r} has data_offsets {offsets} outside the {len(body)} bytes of data")
        if end - begin != math.prod(shape) * itemsize:
            raise bad(
                f"{name!r}: shape {shape} of {code} needs {math.prod(shape) * itemsize} bytes, "
                f"data_offsets {offsets} give {end - begin}"
            )
        entries[name] = (code, tuple(shape), begin, end)
    covered = 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: item[1][2:]):
        if begin != covered:
            problem = (
                "overlaps the one before" if begin < covered else f"leaves bytes {covered}-{begin} unused"
            )
            raise bad(f"{name!r} (data_offsets [{begin}, {end}]) {problem}")
        covered = end
    if covered != len(body):
        raise bad(f"the tensors cover {covered} of the {len(body)} bytes of data")
    return entries, body, metadata or {}


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


__all__ = [
    "get_state_dict",
    "get_parameters",
    "load_state_dict",
    "safe_save",
    "safe_load",
    "safe_load_metadata",
]
