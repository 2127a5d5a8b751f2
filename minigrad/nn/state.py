"""Model state: find the Tensors of a model, name them, save and load them as safetensors.

In: any object whose Tensors sit in attributes, lists, tuples or dicts (nested). Out: `get_state_dict`
gives {dotted name: Tensor} ("layers.0.weight"); `get_parameters` gives the Tensors once each;
`load_state_dict` copies a state dict into the model; `safe_save` / `safe_load` write and read the
safetensors format: an 8-byte little-endian header length, a JSON header {name: {"dtype", "shape",
"data_offsets"}}, then the raw little-endian bytes. Files are interchangeable with the `safetensors`
package.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

import numpy as np

from minigrad.dtype import dtypes
from minigrad.tensor import Tensor

# safetensors' dtype codes for the dtypes minigrad stores
SAFETENSORS_DTYPES = {
    dtypes.float32: "F32",
    dtypes.float16: "F16",
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


def load_state_dict(obj: Any, state_dict: dict[str, Tensor], strict: bool = True) -> None:
    """Copy `state_dict` into the model's Tensors, in place (on the model's devices and dtypes)."""
    own = get_state_dict(obj)
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [
        f"{k}: model {own[k].shape}, state dict {tuple(state_dict[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    if mismatched or (strict and (missing or unexpected)):
        problems = [f"missing keys: {missing}"] if missing else []
        problems += [f"unexpected keys: {unexpected}"] if unexpected else []
        problems += [f"shape mismatches: {mismatched}"] if mismatched else []
        raise ValueError("load_state_dict: " + "; ".join(problems))
    for name in set(own) & set(state_dict):
        target, value = own[name], state_dict[name]
        value = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
        target.assign(value.to(target.device).cast(target.dtype).detach())
    Tensor.realize(*own.values())


def safe_save(state_dict: dict[str, Tensor], path: str | os.PathLike, metadata: dict | None = None) -> None:
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name, tensor in state_dict.items():
        if tensor.dtype not in SAFETENSORS_DTYPES:
            raise TypeError(f"safe_save: {name} has dtype {tensor.dtype.name}, which safetensors cannot hold")
        blob = np.ascontiguousarray(tensor.numpy()).astype(tensor.dtype.np.newbyteorder("<")).tobytes()
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


def safe_load(path: str | os.PathLike, device: str | None = None) -> dict[str, Tensor]:
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"safe_load: {path} is too short to be a safetensors file")
    (length,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + length])
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"safe_load: {path} has no valid safetensors header ({error})") from None
    body = memoryview(data)[8 + length :]
    state: dict[str, Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in FROM_SAFETENSORS:
            raise TypeError(f"safe_load: {name} has dtype {info['dtype']}, which minigrad does not support")
        dtype = FROM_SAFETENSORS[info["dtype"]]
        begin, end = info["data_offsets"]
        array = np.frombuffer(body[begin:end], dtype=dtype.np.newbyteorder("<")).reshape(info["shape"])
        state[name] = Tensor(array.astype(dtype.np), device=device, dtype=dtype)
    return state


__all__ = ["get_state_dict", "get_parameters", "load_state_dict", "safe_save", "safe_load"]
