"""MNIST-format datasets (MNIST, Fashion-MNIST) from IDX files on disk; nothing is downloaded.

In: a directory holding the four standard files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte), each optionally gzipped. The directory comes from the
`path` argument, else the FASHION_MNIST_DIR environment variable, else where Debian's
`dataset-fashion-mnist` package installs the full Fashion-MNIST (60k training, 10k test images):
`apt-get install dataset-fashion-mnist`. Out: numpy arrays, images uint8 (N, 28, 28), labels uint8 (N,).

IDX format: a big-endian header of two zero bytes, a type code (0x08: unsigned byte), the number of
dimensions, then each dimension as a 32-bit big-endian integer, then the data in row-major order.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import struct

import numpy as np

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One IDX file (gzipped when its name ends in .gz) as a numpy array of its shape."""
    path = pathlib.Path(path)
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=IDX_TYPES[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape}, but the file holds {array.size} values")
    return array.reshape(shape)


def _find(directory: pathlib.Path, name: str) -> pathlib.Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"{name}[.gz] not found in {directory}. Fashion-MNIST comes with Debian's package: "
        "`apt-get install dataset-fashion-mnist` (31 MB, installs to "
        f"{DEBIAN_FASHION_MNIST}); or put MNIST-format IDX files in a directory and pass it as the path "
        "argument (examples: --data) or in FASHION_MNIST_DIR"
    )


def load_mnist(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """{"train_images", "train_labels", "test_images", "test_labels"} from an MNIST-format directory."""
    directory = pathlib.Path(path or os.environ.get("FASHION_MNIST_DIR") or DEBIAN_FASHION_MNIST)
    return {key: read_idx(_find(directory, name)) for key, name in FILES.items()}


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz); used by the tests."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    pathlib.Path(path).write_bytes(gzip.compress(data) if str(path).endswith(".gz") else data)
