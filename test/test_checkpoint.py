"""checkpoint(f): equal gradients, lower peak memory, repeated random numbers, forward mode; every device."""

import numpy as np
import pytest

import minigrad
from minigrad import GlobalCounters, Tensor

TOL = dict(atol=1e-5, rtol=1e-4)


def _mlp(device, layers, width, batch, seed=0):
    rng = np.random.default_rng(seed)
    weights = [
        Tensor(rng.standard_normal((width, width)).astype(np.float32) / width**0.5, device=device).realize()
        for _ in range(layers)
    ]
    x = Tensor(rng.standard_normal((batch, width)).astype(np.float32), device=device).realize()
    return weights, x


def _block(h, *weights):
    for w in weights:
        h = (h @ w).relu()
    return h


def peak_and_grads(weights, x, segment: int | None):
    """Peak bytes of live buffers while one realize runs forward and backward, and the gradients."""
    h = x
    step = segment or len(weights)
    for i in range(0, len(weights), step):
        part = weights[i : i + step]
        h = minigrad.checkpoint(_block)(h, *part) if segment else _block(h, *part)
    loss = h.square().mean()
    grads = loss.gradient(*weights)
    GlobalCounters.reset()
    held = GlobalCounters.mem_used
    Tensor.realize(loss, *grads)
    return GlobalCounters.mem_peak - held, [g.numpy() for g in grads]


def test_checkpoint_gives_equal_gradients_and_lower_peak_memory(device):
    weights, x = _mlp(device, layers=32, width=64, batch=64)
    plain_peak, plain = peak_and_grads(weights, x, None)
    checkpointed_peak, checkpointed = peak_and_grads(weights, x, 8)
    for a, b in zip(plain, checkpointed):
        np.testing.assert_allclose(a, b, **TOL)
    assert checkpointed_peak < 0.6 * plain_peak, (checkpointed_peak, plain_peak)


def test_checkpoint_backward_after_a_separate_forward(device):
    weights, x = _mlp(device, layers=4, width=16, batch=8)
    for w in weights:
        w.requires_grad = True
    out = minigrad.checkpoint(_block)(x, *weights).sum()
    value = out.item()  # the forward runs alone; its intermediates are freed
    out.backward()
    expected = _block(x, *[Tensor(w.numpy(), device=device, requires_grad=True) for w in weights]).sum()
    assert abs(value - expected.item()) < 1e-3
    with_grad = [Tensor(w.numpy(), device=device, requires_grad=True) for w in weights]
    _block(x, *with_grad).sum().backward()
    for w, ref in zip(weights, with_grad):
        np.testing.assert_allclose(w.grad.numpy(), ref.grad.numpy(), **TOL)


def test_checkpoint_repeats_dropout_masks(device):
    x = Tensor(np.ones((4, 32), np.float32), device=device, requires_grad=True)

    def block(h):
        with Tensor.train():
            return (h * 3).dropout(0.5)

    Tensor.manual_seed(7)
    plain = block(x)
    (plain * plain).sum().backward()
    expected, x.grad = x.grad.numpy(), None
    Tensor.manual_seed(7)
    out = minigrad.checkpoint(block)(x)
    (out * out).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), expected, **TOL)
    np.testing.assert_allclose(out.numpy(), plain.numpy(), **TOL)


def test_checkpoint_under_transforms(device):
    f = minigrad.checkpoint(lambda a, b: (a * b).sin())
    x, y = Tensor([0.3, -0.4], device=device), Tensor([1.5, 2.0], device=device)
    _, tangent = minigrad.jvp(lambda a: f(a, y), (x,), (Tensor([1.0, 1.0], device=device),))
    np.testing.assert_allclose(tangent.numpy(), np.cos([0.45, -0.8]) * [1.5, 2.0], **TOL)
    hessian_vector = minigrad.hvp(lambda a: f(a, y).sum(), (x,), (Tensor([1.0, 0.0], device=device),))[0]
    np.testing.assert_allclose(hessian_vector.numpy(), [-np.sin(0.45) * 1.5**2, 0.0], **TOL)


def test_checkpoint_needs_a_tensor_result(device):
    with pytest.raises(TypeError, match="one Tensor"):
        minigrad.checkpoint(lambda a: (a, a))(Tensor([1.0], device=device))
