"""Numerical stability: finite values and gradients at magnitude 1e4 and with -inf masks, on every device."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minigrad import Tensor

LOGITS = np.array([[1e4, -1e4, 0.5], [-1e4, 3.0, 1e4]], np.float32)
LABELS = np.array([0, 2])
TARGETS = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
KEEP = np.array([[True, False, True], [False, True, True]])  # an attention-style mask: False -> -inf


def _masked(x):
    if isinstance(x, Tensor):
        return Tensor(KEEP, device=x.device).where(x, -math.inf)
    return torch.where(torch.tensor(KEEP), x, -math.inf)


# name: (minigrad, torch); each takes the logits
CASES = {
    "softmax": (lambda x: x.softmax(-1), lambda x: x.softmax(-1)),
    "log_softmax": (lambda x: x.log_softmax(-1), lambda x: x.log_softmax(-1)),
    "logsumexp": (lambda x: x.logsumexp(-1), lambda x: x.logsumexp(-1)),
    "sparse_categorical_crossentropy": (
        lambda x: x.sparse_categorical_crossentropy(Tensor(LABELS, device=x.device)),
        lambda x: F.cross_entropy(x, torch.tensor(LABELS)),
    ),
    "cross_entropy": (
        lambda x: x.cross_entropy(Tensor(LABELS, device=x.device), reduction="none"),
        lambda x: F.cross_entropy(x, torch.tensor(LABELS), reduction="none"),
    ),
    "binary_crossentropy_logits": (
        lambda x: x.binary_crossentropy_logits(Tensor(TARGETS, device=x.device)),
        lambda x: F.binary_cross_entropy_with_logits(x, torch.tensor(TARGETS)),
    ),
    "softplus": (lambda x: x.softplus(), F.softplus),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid),
    "masked_softmax": (lambda x: _masked(x).softmax(-1), lambda x: _masked(x).softmax(-1)),
    "masked_log_softmax": (lambda x: _masked(x).log_softmax(-1), lambda x: _masked(x).log_softmax(-1)),
    "masked_logsumexp": (lambda x: _masked(x).logsumexp(-1), lambda x: _masked(x).logsumexp(-1)),
    "masked_cross_entropy": (
        lambda x: _masked(x).cross_entropy(Tensor(LABELS, device=x.device)),
        lambda x: F.cross_entropy(_masked(x), torch.tensor(LABELS)),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_large_logits_and_masks_stay_finite(device, name):
    minigrad_fn, torch_fn = CASES[name]
    x, tx = Tensor(LOGITS, device=device, requires_grad=True), torch.tensor(LOGITS, requires_grad=True)
    out, expected = minigrad_fn(x), torch_fn(tx)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-5)  # -inf == -inf
    weights = np.random.default_rng(0).uniform(-1, 1, tuple(expected.shape)).astype(np.float32)
    finite = out.isinf().logical_not()  # a masked log-probability is -inf; weight only the finite ones
    (finite.where(out, 0) * Tensor(weights, device=device)).sum().backward()
    (torch.where(expected.isinf(), 0, expected) * torch.tensor(weights)).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_attention_with_a_causal_mask_is_finite(device):
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 4, 8)).astype(np.float32) * 100 for _ in range(3))
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    mq, mk, mv = (Tensor(a, device=device, requires_grad=True) for a in (q, k, v))
    out = mq.scaled_dot_product_attention(mk, mv, is_causal=True)
    expected = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-3, atol=1e-3)
    out.sum().backward()
    expected.sum().backward()
    for m, t in ((mq, tq), (mk, tk), (mv, tv)):
        assert np.isfinite(m.grad.numpy()).all()
        np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=1e-3, atol=1e-2)


def test_log_of_zero_is_minus_infinity(device):
    x = Tensor([0.0, 1.0], device=device, requires_grad=True)
    np.testing.assert_array_equal(x.log().numpy(), [-np.inf, 0.0])
    np.testing.assert_array_equal(x.log2().numpy(), [-np.inf, 0.0])
    x.log().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [np.inf, 1.0])  # as torch
