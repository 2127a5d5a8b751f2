"""minigrad.linalg against torch.linalg: values and gradients, batched, on every device; torch's errors."""

import numpy as np
import pytest
import torch

import minigrad
from minigrad import Tensor, linalg, vmap

rng = np.random.default_rng(0)
A = rng.standard_normal((2, 3, 3)).astype(np.float32) + 2 * np.eye(3, dtype=np.float32)
B = rng.standard_normal((2, 3, 2)).astype(np.float32)
SPD = (A @ A.transpose(0, 2, 1) + np.eye(3)).astype(np.float32)
TALL = rng.standard_normal((2, 4, 3)).astype(np.float32)
TOL = dict(atol=2e-5, rtol=2e-4)

# name: (minigrad function, torch function, input, outputs to compare (eigh's vectors up to sign))
CASES = {
    "solve": (
        lambda a: linalg.solve(a, Tensor(B, device=a.device)),
        lambda a: torch.linalg.solve(a, torch.tensor(B)),
        A,
    ),
    "solve vector": (
        lambda a: linalg.solve(a, Tensor(B[..., 0], device=a.device)),
        lambda a: torch.linalg.solve(a, torch.tensor(B[..., 0])),
        A,
    ),
    "inv": (linalg.inv, torch.linalg.inv, A),
    "det": (linalg.det, torch.linalg.det, A),
    "slogdet": (lambda a: linalg.slogdet(a)[1], lambda a: torch.linalg.slogdet(a)[1], A),
    "slogdet sign": (lambda a: linalg.slogdet(a)[0], lambda a: torch.linalg.slogdet(a)[0], -A),
    "cholesky": (linalg.cholesky, torch.linalg.cholesky, SPD),
    "cholesky upper": (
        lambda a: linalg.cholesky(a, upper=True),
        lambda a: torch.linalg.cholesky(a, upper=True),
        SPD,
    ),
    "qr Q": (lambda a: linalg.qr(a)[0], lambda a: torch.linalg.qr(a)[0], TALL),
    "qr R": (lambda a: linalg.qr(a)[1], lambda a: torch.linalg.qr(a)[1], TALL),
    "qr R wide": (lambda a: linalg.qr(a)[1], lambda a: torch.linalg.qr(a)[1], TALL.transpose(0, 2, 1).copy()),
    "qr complete Q": (
        lambda a: linalg.qr(a, "complete")[0],
        lambda a: torch.linalg.qr(a, "complete")[0],
        TALL,
    ),
    "eigh values": (lambda a: linalg.eigh(a)[0], lambda a: torch.linalg.eigh(a)[0], SPD),
    "eigh vectors squared": (lambda a: linalg.eigh(a)[1] ** 2, lambda a: torch.linalg.eigh(a)[1] ** 2, SPD),
}


@pytest.mark.parametrize("name", list(CASES))
def test_values_and_gradients_as_torch(device, name):
    ours, theirs, value = CASES[name]
    x, tx = Tensor(value, device=device, requires_grad=True), torch.tensor(value, requires_grad=True)
    out, t_out = ours(x), theirs(tx)
    assert out.shape == tuple(t_out.shape)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), **TOL, err_msg="value")
    if name in ("slogdet sign", "qr complete Q"):  # piecewise constant; torch has no gradient for the other
        return
    cotangent = rng.standard_normal(out.shape).astype(np.float32)
    (out * Tensor(cotangent, device=device)).sum().backward()
    (t_out * torch.tensor(cotangent)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-4, rtol=1e-3, err_msg="gradient")


def test_eigh_decomposes_and_orders_ascending():
    values, vectors = linalg.eigh(Tensor(SPD))
    w, V = values.numpy(), vectors.numpy()
    assert (np.diff(w, axis=-1) > 0).all()
    np.testing.assert_allclose(V @ (w[..., None] * V.transpose(0, 2, 1)), SPD, atol=1e-4)
    np.testing.assert_allclose(V.transpose(0, 2, 1) @ V, np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-5)


def test_singular_and_indefinite_inputs_raise_as_torch():
    singular = Tensor(np.ones((3, 3), np.float32))
    with pytest.raises(
        RuntimeError, match="linalg.solve: The solver failed because the input matrix is singular"
    ):
        linalg.solve(singular, Tensor(np.ones((3, 1), np.float32)))
    with pytest.raises(RuntimeError, match="input matrix is singular"):
        linalg.inv(Tensor(np.zeros((2, 2), np.float32)))
    with pytest.raises(RuntimeError, match="the leading minor of order 2 is not positive-definite"):
        linalg.cholesky(Tensor(np.array([[1.0, 2.0], [2.0, 1.0]], np.float32)))
    sign, logabs = linalg.slogdet(singular)
    assert sign.item() == 0 and logabs.item() == -np.inf and linalg.det(singular).item() == 0
    with pytest.raises(RuntimeError, match="square matrices"):
        linalg.inv(Tensor(np.ones((2, 3), np.float32)))
    with pytest.raises(RuntimeError, match="B needs 3 rows"):
        linalg.solve(Tensor(SPD[0]), Tensor(np.ones((2, 1), np.float32)))


VMAPPED = {
    "inv": (linalg.inv, torch.linalg.inv, A),
    "det": (linalg.det, torch.linalg.det, A),
    "solve": (
        lambda a: linalg.solve(a, Tensor(B[0, :, 0], device=a.device)),
        lambda a: torch.linalg.solve(a, torch.tensor(B[0, :, 0])),
        A,
    ),
    "cholesky": (linalg.cholesky, torch.linalg.cholesky, SPD),
    "qr R": (lambda a: linalg.qr(a)[1], lambda a: torch.linalg.qr(a)[1], TALL),
    "eigh values": (lambda a: linalg.eigh(a)[0], lambda a: torch.linalg.eigh(a)[0], SPD),
}


@pytest.mark.parametrize("name", list(VMAPPED))
def test_vmap_of_linalg_as_torch_func(device, name):
    """Inside vmap the data of one example does not exist: the checks that read it back are skipped, eigh
    runs whole sweeps, and the results equal torch.func.vmap's."""
    ours, theirs, value = VMAPPED[name]
    out = vmap(ours)(Tensor(value, device=device))
    np.testing.assert_allclose(out.numpy(), torch.func.vmap(theirs)(torch.tensor(value)).numpy(), **TOL)


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_eigh_of_larger_and_odd_sizes_and_repeated_eigenvalues(n):
    """The round-robin rounds cover every pair (odd n: one index sits out each round); a repeated
    eigenvalue (the identity block) keeps an orthonormal basis."""
    a = rng.standard_normal((n, n)).astype(np.float32)
    cases = [a + a.T, np.diag(np.r_[np.ones(n // 2), np.arange(n - n // 2)]).astype(np.float32)]
    for m in cases:
        values, vectors = linalg.eigh(Tensor(m))
        w, V = values.numpy(), vectors.numpy()
        np.testing.assert_allclose(w, torch.linalg.eigh(torch.tensor(m))[0].numpy(), atol=1e-4 * n)
        np.testing.assert_allclose(V.T @ V, np.eye(n), atol=1e-5 * n)
        np.testing.assert_allclose(V @ np.diag(w) @ V.T, m, atol=1e-4 * n)


def test_named_results_and_eigvalsh_as_torch():
    """slogdet, qr and eigh return torch's named tuples (fields or unpacking), also through vmap and
    jacrev; eigvalsh is eigh's values."""
    x, tx = Tensor(SPD), torch.tensor(SPD)
    ours, theirs = linalg.slogdet(x), torch.linalg.slogdet(tx)
    np.testing.assert_allclose(ours.logabsdet.numpy(), theirs.logabsdet.numpy(), **TOL)
    assert ours.sign.numpy().tolist() == theirs.sign.numpy().tolist()
    q, r = linalg.qr(Tensor(TALL))
    np.testing.assert_allclose(linalg.qr(Tensor(TALL)).R.numpy(), r.numpy())
    np.testing.assert_allclose(linalg.eigvalsh(x).numpy(), torch.linalg.eigvalsh(tx).numpy(), **TOL)
    batched = vmap(linalg.eigh)(x)
    assert type(batched).__name__ == "EighResult" and batched.eigenvectors.shape == (2, 3, 3)
    np.testing.assert_allclose(batched.eigenvalues.numpy(), torch.linalg.eigh(tx).eigenvalues.numpy(), **TOL)
    jac = minigrad.jacrev(linalg.slogdet)(Tensor(SPD[0]))
    tjac = torch.func.jacrev(torch.linalg.slogdet)(tx[0])
    np.testing.assert_allclose(jac.logabsdet.numpy(), tjac.logabsdet.numpy(), atol=1e-5)
