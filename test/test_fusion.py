"""Kernel counts pin the fusion rules of engine/schedule.py (inputs already realized)."""

import numpy as np
import pytest

from minigrad import GlobalCounters, Tensor
from minigrad.helpers import Context


def realized(*shape, device):
    return Tensor(
        np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32), device=device
    ).realize()


def kernels(fn) -> int:
    out = fn()
    GlobalCounters.reset()
    out.realize()
    return GlobalCounters.kernel_count


def test_elementwise_and_reduce_fusion(device):
    a, b, c, w, x = (realized(16, 8, device=device) for _ in range(5))
    assert kernels(lambda: (a + b) * c) == 1
    assert kernels(lambda: (a * b).sum(1)) == 1
    assert kernels(lambda: x.sum(1) / 8) == 1
    assert kernels(lambda: a * (1 - w) + b * w) == 1
    assert kernels(lambda: x - x.max(1, keepdim=True)) <= 2
    assert kernels(lambda: x.softmax(-1)) <= 3


def test_layers_fuse(device):
    x, W1, b1 = realized(4, 8, device=device), realized(16, 8, device=device), realized(16, device=device)
    W2, b2 = realized(3, 16, device=device), realized(3, device=device)
    assert kernels(lambda: x @ W1.T + b1) == 1
    assert kernels(lambda: (x @ W1.T + b1).relu() @ W2.T + b2) == 2


def test_fused_results_match_numpy(device):
    x, W1, b1 = realized(4, 8, device=device), realized(16, 8, device=device), realized(16, device=device)
    expected = np.maximum(x.numpy() @ W1.numpy().T + b1.numpy(), 0).sum(1) / 3
    np.testing.assert_allclose(((x @ W1.T + b1).relu().sum(1) / 3).numpy(), expected, rtol=1e-5, atol=1e-5)


def _chain(x: Tensor, length: int) -> Tensor:
    for _ in range(length):
        x = x * 1.0001 + 0.0
    return x


def test_long_elementwise_chain_is_one_kernel(device):
    x = realized(5, device=device)
    y = _chain(x, 200)
    GlobalCounters.reset()
    np.testing.assert_allclose(y.numpy(), x.numpy() * 1.0001**200, rtol=1e-4)
    assert GlobalCounters.kernel_count == 1


def test_huge_kernels_are_cut_r9(device):
    """A 20,000-op chain compiled as one C function took minutes; R9 cuts it into kernels of at most
    KERNEL_OPS ops. A kernel reading 1,100 buffers exceeded ctypes' 1,024 arguments; R9 keeps it under."""
    x = realized(5, device=device)
    y = _chain(x, 2000)
    GlobalCounters.reset()
    np.testing.assert_allclose(y.numpy(), x.numpy() * 1.0001**2000, rtol=1e-4)
    assert 4000 // 512 <= GlobalCounters.kernel_count <= 4000 // 256
    pieces = [Tensor([float(i)], device=device) for i in range(1100)]
    np.testing.assert_equal(Tensor.cat(*pieces).numpy(), np.arange(1100, dtype=np.float32))


# measured; tinygrad 0.14 needs 22 for the same step (batch 16 and 128, CPU). One of the 20 is R6: the
# first ReLU gets a buffer so the two matmuls that read it do not recompute it in their inner loops.
MLP_STEP_KERNELS = 20


def test_broadcast_rule_computes_once_and_can_be_turned_off(device):
    """R6: relu(h) read through a broadcast by a matmul's reduce loop is computed once, in its own kernel."""
    h, W = realized(32, 256, device=device), realized(256, 256, device=device)
    assert kernels(lambda: h.relu() @ W) == 2
    with_rule = (h.relu() @ W).numpy()
    with Context(SPLIT_BROADCAST=0):
        assert kernels(lambda: h.relu() @ W) == 1
        np.testing.assert_array_equal((h.relu() @ W).numpy(), with_rule)


@pytest.mark.parametrize("batch", [16, 128])
def test_mlp_sgd_step_kernel_count(device, batch):
    """One full SGD step of a 784-512-512-10 MLP: forward, cross-entropy, backward, six updates."""
    rng = np.random.default_rng(0)
    shapes = [(784, 512), (512,), (512, 512), (512,), (512, 10), (10,)]
    params = [
        Tensor(rng.standard_normal(s).astype(np.float32) * 0.01, device=device, requires_grad=True).realize()
        for s in shapes
    ]
    x = realized(batch, 784, device=device)
    y = Tensor(rng.integers(0, 10, batch).astype(np.int32), device=device).realize()
    w1, b1, w2, b2, w3, b3 = params
    loss = ((x.linear(w1, b1).relu()).linear(w2, b2).relu()).linear(w3, b3).sparse_categorical_crossentropy(y)
    loss.backward()
    for p in params:
        p.assign(p.detach() - 0.01 * p.grad)
    GlobalCounters.reset()
    Tensor.realize(loss, *params)
    assert GlobalCounters.kernel_count <= MLP_STEP_KERNELS
