"""Tensor construction, inspection, transfer, dtypes and device selection."""

import gc
import operator
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import minigrad
from minigrad.lazy import toposort
from minigrad import GlobalCounters, Tensor, TinyJit, dtypes, no_grad


def test_construction_from_python_and_numpy(device):
    assert Tensor(3.0, device=device).dtype == dtypes.float32 and Tensor(3.0, device=device).shape == ()
    assert Tensor(3, device=device).dtype == dtypes.int64
    assert Tensor(True, device=device).dtype == dtypes.bool
    assert Tensor([[1, 2], [3, 4]], device=device).dtype == dtypes.int64
    assert Tensor([1.5, 2], device=device).dtype == dtypes.float32
    assert Tensor(np.zeros(3, np.float64), device=device).dtype == dtypes.float64
    assert Tensor([1, 2], device=device, dtype=dtypes.float32).dtype == dtypes.float32
    assert Tensor([1, 2], device=device, dtype="int64").dtype == dtypes.int64
    assert Tensor([], device=device).shape == (0,)
    np.testing.assert_equal(
        Tensor(np.arange(6).reshape(2, 3), device=device).numpy(), np.arange(6).reshape(2, 3)
    )


def test_host_data_is_copied(device):
    data = np.ones(3, np.float32)
    t = Tensor(data, device=device)
    data[0] = 5
    np.testing.assert_equal(t.numpy(), [1, 1, 1])


def test_factories(device):
    np.testing.assert_equal(Tensor.zeros(2, 3, device=device).numpy(), np.zeros((2, 3)))
    np.testing.assert_equal(Tensor.zeros((2, 3), device=device).numpy(), np.zeros((2, 3)))
    np.testing.assert_equal(Tensor.ones(2, device=device).numpy(), [1, 1])
    np.testing.assert_equal(Tensor.full((2, 2), 7, device=device).numpy(), np.full((2, 2), 7))
    assert Tensor.full((2,), 7, device=device).dtype == dtypes.int64
    assert Tensor.empty(3, 4, device=device).shape == (3, 4)
    np.testing.assert_equal(Tensor.arange(5, device=device).numpy(), np.arange(5))
    np.testing.assert_allclose(Tensor.arange(1, 2, 0.25, device=device).numpy(), np.arange(1, 2, 0.25))
    assert Tensor.arange(1, 2, 0.25, device=device).dtype == dtypes.float32
    np.testing.assert_equal(Tensor.eye(3, device=device).numpy(), np.eye(3))
    x = Tensor.ones(2, 3, device=device, dtype=dtypes.int32)
    assert Tensor.zeros_like(x).dtype == dtypes.int32 and Tensor.zeros_like(x).shape == (2, 3)
    np.testing.assert_equal(Tensor.full_like(x, 4).numpy(), np.full((2, 3), 4))
    np.testing.assert_equal(Tensor.ones_like(x).numpy(), np.ones((2, 3)))
    assert Tensor.rand_like(Tensor.ones(4, device=device)).shape == (4,)
    assert Tensor.randn_like(Tensor.ones(4, device=device)).shape == (4,)


def test_random_numbers(device):
    Tensor.manual_seed(42)
    a = Tensor.rand(1000, device=device).numpy()
    Tensor.manual_seed(42)
    b = Tensor.rand(1000, device="NUMPY").numpy()
    np.testing.assert_equal(a, b)
    assert 0 <= a.min() and a.max() < 1 and 0.45 < a.mean() < 0.55
    n = Tensor.randn(10_000, device=device).numpy()
    assert abs(n.mean()) < 0.05 and 0.95 < n.std() < 1.05
    u = Tensor.uniform(1000, low=-3, high=-1, device=device).numpy()
    assert -3 <= u.min() and u.max() < -1
    r = Tensor.randint(1000, low=2, high=5, device=device)
    assert r.dtype == dtypes.int64 and set(np.unique(r.numpy())) == {2, 3, 4}


def test_inspection(device):
    t = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=device)
    assert t.shape == (2, 3) and t.ndim == 2 and t.numel() == 6 and len(t) == 2
    assert t.device == device and t.dtype == dtypes.float32
    assert t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert t[1, 2].item() == 6.0 and isinstance(t[1, 2].item(), float)
    assert t.realize() is t
    assert t.T.contiguous().tolist() == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]
    assert t.to(device).tolist() == t.tolist()
    assert t.detach().requires_grad is False


def test_casts(device):
    t = Tensor([1.5, -2.5, 0.0], device=device)
    assert t.int().tolist() == [1, -2, 0] and t.int().dtype == dtypes.int32
    assert t.bool().tolist() == [True, True, False]
    assert t.cast(dtypes.float64).dtype == dtypes.float64
    assert (Tensor([1, 2], device=device) + Tensor([0.5, 0.5], device=device)).dtype == dtypes.float32
    assert (Tensor([True], device=device) + 1).dtype == dtypes.int64


def test_half_precision(device):
    if not minigrad.Device[device].supports_dtype(dtypes.float16):
        pytest.skip(f"{device} has no float16 (OpenCL: no cl_khr_fp16; CPU: C has no portable half)")
    t = Tensor([1.5, -2.5, 0.0], device=device)
    h = t.half()
    assert h.dtype == dtypes.float16 and h.float().tolist() == [1.5, -2.5, 0.0]
    assert (h * 2).dtype == dtypes.float16 and (h * 2).float().tolist() == [3.0, -5.0, 0.0]


def test_assign_in_place(device):
    w = Tensor([1.0, 2.0], device=device).realize()
    buffer = w.lazydata.realized
    w.assign(w * 3).realize()
    assert w.lazydata.realized is buffer, "assign writes into the existing buffer"
    assert w.tolist() == [3.0, 6.0]
    with pytest.raises(ValueError, match="shape"):
        w.assign(Tensor([1.0], device=device))


@pytest.mark.parametrize(
    "update",
    [
        lambda x, m: x.flip(0) + 1,  # reads other elements of the target
        lambda x, m: m @ x,  # reads the target in a reduce
        lambda x, m: x.T @ m,
        lambda x, m: (m[:, 0].cast(dtypes.int32) % 4).one_hot(4).T.float() @ x,  # a scatter of the target
        lambda x, m: x * 2 - 1,  # element by element: stays one kernel
    ],
)
def test_assign_of_a_value_that_reads_other_elements_of_the_target(device, update):
    """An ASSIGN kernel writes element i while it reads the target: a value that reads element j != i
    (through a view or a reduce) would see j already overwritten. Such a value is computed first."""
    rng = np.random.default_rng(0)
    x0, m0 = rng.integers(0, 4, (4, 4)).astype(np.float32), rng.integers(0, 4, (4, 4)).astype(np.float32)
    x, m = Tensor(x0, device=device).realize(), Tensor(m0, device=device).realize()
    expected = update(Tensor(x0, device=device), m).numpy()
    x.assign(update(x, m)).realize()
    np.testing.assert_equal(x.numpy(), expected)


def test_repeated_assign_does_not_pile_up_graphs_or_memory(device):
    """A written ASSIGN forgets its sources, so step N's graph and buffers are not reachable from step N+1.
    `state` is not a gradient leaf (it came from a requires_grad tensor), so realize() keeps its history."""
    w = Tensor(np.ones((64, 64), np.float32), device=device, requires_grad=True)
    state = (w * 2).realize()
    for _ in range(3):
        state.assign(state.detach() * 0.5 + (state.detach() + 1).sum(0)).realize()
    gc.collect()
    held = GlobalCounters.mem_used
    for _ in range(10):
        state.assign(state.detach() * 0.5 + (state.detach() + 1).sum(0)).realize()
    gc.collect()
    assert GlobalCounters.mem_used == held
    # a written assign keeps no history: a buffer, seen through the assign's derivative rule (state came
    # from w, so the rule remembers that w gets a zero gradient, as torch's)
    assert len(toposort([state.lazydata])) <= 3, toposort([state.lazydata])


def test_train_and_no_grad_flags():
    assert Tensor.training is False
    with Tensor.train():
        assert Tensor.training is True
    assert Tensor.training is False

    @minigrad.no_grad()
    def f(x):
        return x * 2

    assert f(Tensor([1.0], requires_grad=True)).requires_grad is False
    with minigrad.no_grad():
        with minigrad.no_grad(False):  # records again inside, as torch.enable_grad()
            assert (Tensor([1.0], requires_grad=True) * 2).requires_grad is True
        assert (Tensor([1.0], requires_grad=True) * 2).requires_grad is False


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def test_device_env_var():
    result = run_python(
        "from minigrad import Device, Tensor; print(Device.DEFAULT, Tensor([1]).device)", DEVICE="numpy"
    )
    assert result.stdout.split() == ["NUMPY", "NUMPY"], result.stderr
    result = run_python("from minigrad import Tensor; Tensor([1])", DEVICE="TPU9")
    assert result.returncode != 0 and "unknown device 'TPU9'" in result.stderr


def test_debug_1_prints_one_line_per_kernel():
    result = run_python(
        "from minigrad import Tensor; (Tensor([1.0]) * 2 + 1).realize(); Tensor([2.0, 3.0]).sum().realize()",
        DEBUG="1",
    )
    kernel_lines = [line for line in result.stdout.splitlines() if line.startswith("***")]
    assert len(kernel_lines) == 2 and "GFLOPS" in kernel_lines[0], result.stdout + result.stderr


# ---- in-place operators ---------------------------------------------------------------------------------

IN_PLACE = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "@=": operator.imatmul,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
}


@pytest.mark.parametrize("op", IN_PLACE)
@pytest.mark.parametrize("realized", [False, True], ids=["lazy", "realized"])
def test_in_place_operators_update_every_alias(device, op, realized):
    """`x op= y` changes x itself, as torch: another name for x sees the new value."""
    integer = op in ("&=", "|=", "^=", "<<=", ">>=", "//=", "%=")
    start = np.array([[5, 7], [12, 3]]) if integer else np.array([[1.5, -2.0], [0.5, 3.0]], np.float32)
    other = np.array([[2, 1], [3, 2]]) if integer else np.array([[2.0, 0.5], [-1.5, 1.25]], np.float32)
    x = Tensor(start, device=device)
    if realized:
        x.realize()
    alias = x
    result = IN_PLACE[op](x, Tensor(other, device=device))
    expected = torch.tensor(start)
    if op == "@=":  # torch has no in-place matmul: compare with the product
        expected = expected @ torch.tensor(other)
    else:
        IN_PLACE[op](expected, torch.tensor(other))
    assert result is alias and x.dtype.name == str(expected.dtype).removeprefix("torch.")
    np.testing.assert_allclose(alias.numpy(), expected.numpy(), rtol=1e-6)


def test_in_place_operators_follow_torchs_rules(device):
    with pytest.raises(RuntimeError, match="int64"):
        x = Tensor([1, 2], device=device)
        x += 0.5  # a float result cannot go into an int tensor
    with pytest.raises(RuntimeError, match="shape"):
        x = Tensor([1.0, 2.0], device=device)
        x += Tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    leaf = Tensor([1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        leaf += 1
    with no_grad():
        leaf -= 1  # an optimizer's update: allowed
    assert leaf.numpy().tolist() == [0.0, 1.0]
    x = Tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x * 3
    y += x * x  # on a tensor in the graph: the gradient flows through, as torch's
    y.sum().backward()
    assert x.grad.numpy().tolist() == [5.0, 7.0]
    assert x.to(x.device) is x


def test_in_place_update_inside_tinyjit_is_replayed(device):
    counter = Tensor([0.0], device=device).realize()

    @TinyJit
    def step():
        nonlocal counter
        counter += 1
        return counter

    for _ in range(5):
        step()
    assert counter.numpy().tolist() == [5.0]


def test_factories_and_sizes_of_tinygrad_and_torch(device):
    Tensor.manual_seed(3)
    perm = Tensor.randperm(50, device=device)
    assert perm.dtype == dtypes.int64 and sorted(perm.numpy().tolist()) == list(range(50))
    assert perm.numpy().tolist() != list(range(50))
    assert Tensor.randperm(0, device=device).shape == (0,)
    assert Tensor(None, device=device).shape == (0,)
    raw = Tensor(b"\x01\xff", device=device)
    assert raw.dtype == dtypes.uint8 and raw.numpy().tolist() == [1, 255]
    floats = np.array([1.5, -2.0], np.float32)
    assert Tensor(floats.tobytes(), device=device, dtype="float32").numpy().tolist() == [1.5, -2.0]
    blob = np.arange(6, dtype=np.int32)
    from_blob = Tensor.from_blob(blob.ctypes.data, (2, 3), dtype=dtypes.int32, device=device)
    blob[0] = 100  # a copy: later writes do not show
    assert from_blob.numpy().tolist() == [[0, 1, 2], [3, 4, 5]]
    x, t = Tensor.ones(2, 3, device=device), torch.ones(2, 3)
    assert x.size() == tuple(t.size()) and x.size(-1) == t.size(-1) and x.element_size() == t.element_size()
    assert Tensor.ones(2, device=device, dtype="float16").element_size() == 2
    assert x.shrink_to(1, None).shape == (1, 3) and x.pad_to((3, 4)).numpy().sum() == 6
    assert x.pad_to(None, 4, value=-1).numpy()[:, 3].tolist() == [-1.0, -1.0]
    with pytest.raises(ValueError):
        x.pad_to(1, 3)


def test_errors_are_the_exception_types_torch_and_tinygrad_raise(device):
    """Not a dtype: TypeError (torch) and AttributeError (tinygrad); a shape of non-ints: TypeError (torch)
    and ValueError (tinygrad)."""
    for error in (TypeError, AttributeError):
        with pytest.raises(error, match="not a dtype"):
            Tensor([3], device=device, dtype="typo")
        with pytest.raises(error):
            Tensor([3], device=device, dtype=(dtypes.int32,))
    for error in (TypeError, ValueError):
        with pytest.raises(error, match="shape must be ints"):
            Tensor.zeros((2, 2), 2, device=device)
        with pytest.raises(error):
            Tensor.rand((128, 128), 0.0, 0.01, device=device)


def test_dtype_table_and_tinygrad_device_names():
    from minigrad.dtype import DTYPES_DICT

    assert DTYPES_DICT["float32"] is dtypes.float32 and set(DTYPES_DICT.values()) == set(dtypes.all())
    assert minigrad.Device.canonicalize("CLANG") == "CPU" and minigrad.Device.canonicalize("gpu") == "OPENCL"
    for name in ("CPU", "NUMPY"):  # tinygrad's capability query
        assert set(minigrad.Device[name].renderer.supported_dtypes()) == set(dtypes.all())


def test_unsigned_ints_take_negatives_as_torch(device):
    """torch.tensor([-1], dtype=uint8) is 255; -256 does not fit."""
    data = [-1, 0, 1, 255, -255]
    expected = torch.tensor(data, dtype=torch.uint8).tolist()
    assert Tensor(data, device=device, dtype=dtypes.uint8).tolist() == expected
    with pytest.raises(OverflowError, match="does not fit"):
        Tensor([-256], device=device, dtype=dtypes.uint8)


def test_to_in_place_moves_every_alias(device):
    other = "NUMPY" if device != "NUMPY" else "CPU"
    x = Tensor([1.0, 2.0], device=device)
    alias = x
    assert x.to_(other) is x and alias.device == other and alias.tolist() == [1.0, 2.0]
