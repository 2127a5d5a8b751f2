"""nn/state.py: state dicts by dotted name, strict loading, and safetensors files both ways."""

import numpy as np
import pytest
import safetensors.numpy

from minigrad import Tensor, dtypes, nn
from minigrad.nn.state import get_parameters, get_state_dict, load_state_dict, safe_load, safe_save


class Net:
    def __init__(self):
        self.layers = [nn.Linear(4, 3), nn.Linear(3, 2)]
        self.norm = nn.BatchNorm2d(2)
        self.extra = {"scale": Tensor.ones(2)}
        self.name = "not a tensor"


VALUES = {
    "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    "f16": np.array([1.5, -2.25, 65504.0], dtype=np.float16),
    "i32": np.array([[1, -2], [2**31 - 1, -(2**31)]], dtype=np.int32),
    "i64": np.array([2**40, -5], dtype=np.int64),
    "bool": np.array([True, False, True]),
    "scalar": np.array(3.5, dtype=np.float32),
}


def test_state_dict_has_dotted_names():
    net = Net()
    names = set(get_state_dict(net))
    assert names == {
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
        "norm.weight",
        "norm.bias",
        "norm.running_mean",
        "norm.running_var",
        "norm.num_batches_tracked",
        "extra.scale",
    }
    shared = nn.Linear(2, 2)
    assert len(get_parameters([shared, shared])) == 2  # one weight and one bias, listed once


def test_load_state_dict_copies_in_place():
    a, b = Net(), Net()
    load_state_dict(b, get_state_dict(a))
    for name, tensor in get_state_dict(a).items():
        np.testing.assert_array_equal(get_state_dict(b)[name].numpy(), tensor.numpy())


def test_load_state_dict_names_every_problem():
    net = Net()
    state = get_state_dict(Net())
    del state["layers.0.bias"]
    state["layers.9.weight"] = Tensor.ones(1)
    state["layers.1.weight"] = Tensor.ones(5, 5)
    with pytest.raises(ValueError) as error:
        load_state_dict(net, state)
    message = str(error.value)
    assert "missing keys: ['layers.0.bias']" in message
    assert "unexpected keys: ['layers.9.weight']" in message
    assert "Shape mismatch in layer `layers.1.weight`: Expected shape (2, 3), but found (5, 5)" in message
    del state["layers.1.weight"], state["layers.9.weight"]
    load_state_dict(net, {k: v for k, v in state.items() if k != "layers.1.weight"}, strict=False)


def test_safetensors_round_trip(tmp_path, device):
    state = {name: Tensor(value, device=device) for name, value in VALUES.items() if name != "f16"}
    safe_save(state, tmp_path / "model.safetensors")
    loaded = safe_load(tmp_path / "model.safetensors", device=device)
    for name, value in VALUES.items():
        if name in state:
            assert loaded[name].dtype == state[name].dtype and loaded[name].device == device
            np.testing.assert_array_equal(loaded[name].numpy(), value)


def test_safetensors_files_interchange_with_the_safetensors_package(tmp_path):
    safe_save({name: Tensor(value, device="NUMPY") for name, value in VALUES.items()}, tmp_path / "ours")
    theirs = safetensors.numpy.load_file(str(tmp_path / "ours"))
    for name, value in VALUES.items():
        assert theirs[name].dtype == value.dtype
        np.testing.assert_array_equal(theirs[name], value)
    safetensors.numpy.save_file(VALUES, str(tmp_path / "theirs"), metadata={"format": "np"})
    ours = safe_load(tmp_path / "theirs", device="NUMPY")
    assert ours["f16"].dtype == dtypes.float16 and ours["i64"].dtype == dtypes.int64
    for name, value in VALUES.items():
        np.testing.assert_array_equal(ours[name].numpy(), value)


def test_safe_load_rejects_a_file_that_is_not_safetensors(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ValueError, match="junk is not a valid safetensors file: the header is not JSON"):
        safe_load(tmp_path / "junk")


def test_bfloat16_and_float16_round_trip_through_torch_safetensors(tmp_path, device):
    """BF16 and F16 entries load with their dtype on every device, bit for bit, and save back as such."""
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch = pytest.importorskip("torch")
    values = torch.tensor([1.0, -2.5, 3.0e38, 1e-40, 0.1, float("inf")])
    tensors = {"bf16": values.to(torch.bfloat16), "f16": values[[0, 1, 4, 5]].to(torch.float16)}
    safetensors_torch.save_file(tensors, str(tmp_path / "theirs"))
    ours = safe_load(tmp_path / "theirs", device=device)
    for name, tensor in tensors.items():
        assert ours[name].dtype.name == str(tensor.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(ours[name].float().numpy(), tensor.float().numpy())
    safe_save(ours, tmp_path / "ours")
    back = safetensors_torch.load_file(str(tmp_path / "ours"))
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor)
