"""extra/datasets.py reads IDX files, gzipped or not, and says how to get them when they are missing."""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "extra"))
from datasets import load_mnist, read_idx, write_idx  # noqa: E402


def test_reads_small_idx_files_plain_and_gzipped(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5)
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", labels)
    data = load_mnist(tmp_path)
    assert data["train_images"].shape == (5, 28, 28) and data["train_images"].dtype == np.uint8
    np.testing.assert_array_equal(data["test_images"], images)
    np.testing.assert_array_equal(data["test_labels"], labels)


def test_idx_header_is_checked(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="holds 3 values"):
        read_idx(tmp_path / "short")


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_mnist(tmp_path)
