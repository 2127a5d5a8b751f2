"""Bad input gets a clear Python exception that names the problem."""

import numpy as np
import pytest

from minigrad import Device, Tensor, dtypes, nn


def test_broadcast_mismatch_names_shapes(device):
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        Tensor.ones(2, 3, device=device) + Tensor.ones(4, device=device)


def test_matmul_mismatch_names_shapes(device):
    with pytest.raises(RuntimeError, match=r"\(2, 3\) and \(4, 5\)"):
        Tensor.ones(2, 3, device=device) @ Tensor.ones(4, 5, device=device)
    with pytest.raises(RuntimeError, match="at least 1 dimension"):
        Tensor.ones(2, device=device) @ Tensor(3.0, device=device)


def test_reshape_mismatch_names_shapes(device):
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        Tensor.ones(2, 3, device=device).reshape(4, 2)
    with pytest.raises(RuntimeError, match="only one dimension can be -1"):
        Tensor.ones(2, 3, device=device).reshape(-1, -1)


def test_invalid_axes_name_the_axis(device):
    x = Tensor.ones(2, 3, device=device)
    for bad in (
        lambda: x.sum(2),
        lambda: x.max(-3),
        lambda: x.transpose(0, 5),
        lambda: x.softmax(3),
        lambda: x.unsqueeze(4),
        lambda: x.flip(2),
    ):
        with pytest.raises(ValueError, match="axis .* out of range"):
            bad()
    with pytest.raises(RuntimeError, match="not a permutation"):  # as torch
        x.permute(0, 0)


def test_backward_errors(device):
    x = Tensor([1.0, 2.0], device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"non-scalar output \(shape \(2,\)\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0], device=device).sum().backward()
    with pytest.raises(ValueError, match=r"gradient= has shape \(3,\)"):
        (x * 2).backward(gradient=Tensor([1.0, 1.0, 1.0], device=device))


def test_unknown_device():
    with pytest.raises(ValueError, match="unknown device 'TPU9'"):
        Tensor([1.0], device="TPU9")
    with pytest.raises(ValueError, match="unknown device"):
        Device["NOPE"]


def test_unsupported_dtypes():
    with pytest.raises(TypeError, match="complex64"):
        Tensor([1.0], dtype="complex64")
    with pytest.raises(TypeError, match="complex128"):
        Tensor(np.array([1 + 2j]))
    with pytest.raises(TypeError, match="cannot make a Tensor from"):
        Tensor({"a": 1})
    with pytest.raises(RuntimeError, match="needs integer or bool tensors, got float32"):  # as torch
        Tensor([1.0]) & Tensor([2.0])


def test_index_errors(device):
    x = Tensor.ones(2, 3, device=device)
    with pytest.raises(IndexError, match="index 5 is out of bounds for dim 1 with size 3"):
        x[0, 5]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="must be integers or bools, got float32"):
        x[Tensor([0.5], device=device)]
    with pytest.raises(IndexError, match="boolean mask of shape"):
        x[Tensor([True, False, True], device=device)]  # a mask must match the dims it indexes
    assert x[Tensor([True, False], device=device)].shape == (1, 3)  # as torch: by mask


def test_only_float_tensors_require_gradients():
    with pytest.raises(RuntimeError, match="floating-point"):
        Tensor([1, 2], requires_grad=True)  # was accepted (torch raises)
    with pytest.raises(RuntimeError, match="floating-point"):
        Tensor.zeros(2, dtype=dtypes.int32).requires_grad = True


def test_batchnorm_in_training_needs_more_than_one_value_per_channel():
    with Tensor.train(), pytest.raises(ValueError, match="more than one value per channel"):
        nn.BatchNorm2d(3)(Tensor.ones(1, 3, 1, 1))  # gave zeros (torch raises)


def test_windows_need_positive_sizes(device):
    x, w = Tensor.ones(1, 1, 4, 4, device=device), Tensor.ones(1, 1, 2, 2, device=device)
    with pytest.raises(ValueError, match="stride 0"):
        x.max_pool2d(stride=0)  # was a bare ZeroDivisionError
    with pytest.raises(ValueError, match="dilation 0"):
        x.conv2d(w, dilation=0)  # was silently a (1, 1, 4, 4) result
    with pytest.raises(ValueError, match="kernel size 0"):
        x.avg_pool2d(kernel_size=0)


def test_misc_value_errors(device):
    x = Tensor.ones(2, 3, device=device)
    with pytest.raises(ValueError, match="cannot expand"):
        x.expand(4, 3)
    with pytest.raises(ValueError, match=r"shapes \[\(2, 3\), \(2, 2\)\] differ outside dim 0"):
        x.cat(Tensor.ones(2, 2, device=device))
    with pytest.raises(ValueError, match="item"):
        x.item()
    with pytest.raises(RuntimeError, match="conv2d"):
        Tensor.ones(1, 3, 5, 5, device=device).conv2d(Tensor.ones(2, 4, 3, 3, device=device))
    with pytest.raises(ValueError, match="shape"):
        Tensor.ones(-1, device=device)
    with pytest.raises(ValueError, match="rectangular"):
        Tensor([[1, 2], [3]])


@pytest.mark.parametrize("shape", [(1,), (128, 128)])  # 128x128: a matmul the CPU packs into panels
def test_mixed_devices_are_refused(shape):
    names = [d for d in Device.known if Device.unavailable_reason(d) is None][:2]
    a, b = Tensor.ones(*shape, device=names[0]), Tensor.ones(*shape, device=names[-1])
    if len(names) < 2:
        b.lazydata.device = "ELSEWHERE"  # simulate a second device: only the check itself is under test
    with pytest.raises(RuntimeError, match="different devices"):
        a + b
    with pytest.raises(RuntimeError, match="different devices"):
        (a @ b if len(shape) == 2 else a.dot(b)).realize()
    with pytest.raises(RuntimeError, match="different devices"):  # only the condition is elsewhere
        (a > 0).where(b, 0.0).realize()
