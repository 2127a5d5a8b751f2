"""Reverse-mode autograd: accumulation, requires_grad rules, higher order, finite differences, deep graphs."""

import numpy as np
import pytest
import torch

import minigrad
from minigrad import Tensor, dtypes


def test_backward_fills_grad_of_leaves(device):
    x = Tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    w = Tensor([0.5, -1.0, 2.0], device=device, requires_grad=True)
    loss = (x * w).sum()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5, -1.0, 2.0])
    np.testing.assert_allclose(w.grad.numpy(), [1.0, 2.0, 3.0])
    assert x.grad.requires_grad is False


def test_gradients_accumulate_until_reset(device):
    x = Tensor([1.0, 2.0], device=device, requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_requires_grad_propagation_and_no_grad(device):
    x = Tensor([1.0], device=device, requires_grad=True)
    y = Tensor([2.0], device=device)
    assert (x * y).requires_grad is True
    assert (y * 2).requires_grad is None
    assert Tensor([1.0], device=device, requires_grad=False).exp().requires_grad is False
    with minigrad.no_grad():
        z = x * 2
    assert z.requires_grad is False
    assert Tensor.no_grad is False
    w = Tensor([3.0], device=device, requires_grad=True)
    (z * w).sum().backward()  # z was made under no_grad: no gradient flows through it into x
    assert x.grad is None
    np.testing.assert_allclose(w.grad.numpy(), [2.0])


def test_detach_stops_gradient(device):
    x = Tensor([2.0], device=device, requires_grad=True)
    (x * x.detach()).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0])


def test_backward_with_explicit_gradient(device):
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], device=device, requires_grad=True)
    (x * x).backward(gradient=Tensor([[1.0, 0.0], [0.5, 2.0]], device=device))
    np.testing.assert_allclose(x.grad.numpy(), [[2.0, 0.0], [3.0, 16.0]])


def test_gradient_returns_tensors_without_touching_grad(device):
    x = Tensor([1.0, 2.0], device=device, requires_grad=True)
    unused = Tensor([5.0], device=device, requires_grad=True)
    dx, dunused = (x * x).sum().gradient(x, unused)
    np.testing.assert_allclose(dx.numpy(), [2.0, 4.0])
    np.testing.assert_allclose(dunused.numpy(), [0.0])
    assert x.grad is None


def test_grad_of_grad_matches_torch(device):
    values = np.array([0.3, -1.2, 2.0], np.float32)
    x = Tensor(values, device=device, requires_grad=True)
    tx = torch.tensor(values, requires_grad=True)
    f = (x * x * x * x.sin()).sum()
    tf = (tx * tx * tx * tx.sin()).sum()
    (dx,) = f.gradient(x)
    (tdx,) = torch.autograd.grad(tf, tx, create_graph=True)
    np.testing.assert_allclose(dx.numpy(), tdx.detach().numpy(), rtol=1e-4, atol=1e-5)
    (ddx,) = dx.sum().gradient(x)
    (tddx,) = torch.autograd.grad(tdx.sum(), tx, create_graph=True)
    np.testing.assert_allclose(ddx.numpy(), tddx.detach().numpy(), rtol=1e-4, atol=1e-5)
    (dddx,) = ddx.sum().gradient(x)
    (tdddx,) = torch.autograd.grad(tddx.sum(), tx)
    np.testing.assert_allclose(dddx.numpy(), tdddx.numpy(), rtol=1e-4, atol=1e-4)


def test_mixed_second_derivative_matches_torch(device):
    rng = np.random.default_rng(0)
    xv, wv = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)
    x, w = Tensor(xv, device=device, requires_grad=True), Tensor(wv, device=device, requires_grad=True)
    tx, tw = torch.tensor(xv, requires_grad=True), torch.tensor(wv, requires_grad=True)
    (gw,) = (x @ w).tanh().softmax(-1).log().sum().gradient(w)
    (tgw,) = torch.autograd.grad((tx @ tw).tanh().softmax(-1).log().sum(), tw, create_graph=True)
    (gx,) = (gw * gw).sum().gradient(x)
    (tgx,) = torch.autograd.grad((tgw * tgw).sum(), tx)
    np.testing.assert_allclose(gx.numpy(), tgx.numpy(), rtol=1e-3, atol=1e-4)


FINITE_DIFFERENCE_CASES = {
    "polynomial": lambda x: (x * x * x - 2 * x).sum(),
    "transcendental": lambda x: (x.exp() * x.sin() + x.sigmoid().log()).sum(),
    "softmax_ce": lambda x: x.reshape(2, 3).log_softmax(-1)[:, 1].sum(),
    "matmul_tanh": lambda x: (x.reshape(2, 3) @ x.reshape(3, 2)).tanh().sum(),
    "movement": lambda x: (x.reshape(3, 2).T.pad(((1, 0), (0, 1))).flip(0)[1:, ::2] * 3).sum(),
    "reduce_max": lambda x: x.reshape(2, 3).max(1).sum() + x.abs().mean(),
    "conv": lambda x: (
        x.reshape(1, 1, 2, 3).conv2d(x.reshape(1, 1, 2, 3)[:, :, :, :2], padding=1).square().sum()
    ),
}


@pytest.mark.parametrize("name", FINITE_DIFFERENCE_CASES)
def test_gradients_match_float64_finite_differences(device, name):
    if not minigrad.Device[device].supports_dtype(dtypes.float64):
        pytest.skip(f"{device} has no float64")
    f = FINITE_DIFFERENCE_CASES[name]
    point = np.array([0.3, -0.7, 1.1, 0.5, -1.3, 0.9])
    x = Tensor(point, device=device, dtype=dtypes.float64, requires_grad=True)
    assert x.dtype == dtypes.float64
    f(x).backward()
    eps = 1e-6
    numeric = np.zeros_like(point)
    for i in range(point.size):
        step = np.zeros_like(point)
        step[i] = eps
        plus = f(Tensor(point + step, device=device, dtype=dtypes.float64)).item()
        minus = f(Tensor(point - step, device=device, dtype=dtypes.float64)).item()
        numeric[i] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(x.grad.numpy(), numeric, rtol=1e-5, atol=1e-6)


def test_ten_thousand_op_chain_has_no_recursion_limit(device):
    x = Tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    np.testing.assert_allclose(y.numpy(), np.array([1.0, 2.0]) * 1.0001**10_000, rtol=1e-3)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001**10_000] * 2, rtol=1e-3)


def test_integer_inputs_get_no_gradient(device):
    x = Tensor([1.0, 2.0], device=device, requires_grad=True)
    index = Tensor([1, 0], device=device)
    x[index].sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_backward_builds_no_gradient_nobody_needs(device):
    """The rules skip sources with no target behind them: x @ w (a panel matmul on the CPU), x * w and
    where() build no graph for x's gradient when x does not require one, and w's gradient is the same."""
    from minigrad import lazy

    rng = np.random.default_rng(0)
    data = [rng.standard_normal(s).astype(np.float32) for s in ((128, 128), (128, 128), (128, 128))]
    built, grads = [], []
    for x_needs in (True, False):
        x, w, v = (
            Tensor(data[0], device=device, requires_grad=x_needs),
            *[Tensor(d, device=device, requires_grad=True) for d in data[1:]],
        )
        loss = ((x @ w) * x + (x > 0).where(x, v)).sum()
        start = next(lazy._serials)
        loss.backward()
        built.append(next(lazy._serials) - start)
        grads.append((w.grad.numpy(), v.grad.numpy()))
    assert built[1] <= built[0] - 8, built
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_realized_intermediate_still_backpropagates(device):
    x = Tensor([1.0, 2.0], device=device, requires_grad=True)
    y = (x * x).realize()
    (y * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 12.0])


def test_assign_keeps_leaf_and_drops_history(device):
    w = Tensor([1.0, 2.0], device=device, requires_grad=True)
    for _ in range(3):
        loss = (w * w).sum()
        loss.backward()
        w.assign(w.detach() - 0.1 * w.grad).realize()
        w.grad = None
    np.testing.assert_allclose(w.numpy(), np.array([1.0, 2.0]) * 0.8**3, rtol=1e-6)
    assert w.lazydata.srcs == (), "an assigned, realized leaf keeps no graph behind it"


def test_backward_finds_its_leaves_in_the_graph_it_walks():
    """No registry of every tensor: the leaves backward fills are those its graph reaches (lazy.leaf_of)."""
    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0], requires_grad=True)
    assert a.is_leaf and not (a * 2).is_leaf
    (a * a).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [2.0, 4.0])
    assert b.grad is None  # not in that graph
    a.realize()
    assert a.is_leaf  # its realized node stands for the same leaf
    (a * b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [5.0, 7.0])
    assert not hasattr(Tensor, "_grad_leaves") and not hasattr(Tensor, "_backward_roots")


def test_backward_through_a_leaf_nobody_holds_any_more(device):
    """A leaf made and dropped in one expression (torch allows it; its gradient goes nowhere): backward
    raised TypeError, hashing the dead weak reference the leaf's node kept."""
    x = Tensor([1.0, 2.0], device=device, requires_grad=True).reshape(2, 1)
    w = Tensor([3.0], device=device, requires_grad=True)
    (x * w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [3.0])
    assert x.grad is None  # not a leaf, as torch


def test_a_step_realizes_the_losses_its_gradients_came_from():
    """Each gradient names the outputs backward was called on (Tensor.roots); the optimizer's step computes
    them with the update, so loss.item() afterwards is the loss before the update, as in torch."""
    from minigrad.nn.optim import SGD

    w = Tensor([1.0, 2.0], requires_grad=True)
    opt = SGD([w], lr=0.1)
    loss = (w * w).sum()
    loss.backward()
    assert [ref() is loss for ref in w.grad.roots] == [True]
    opt.step()
    assert loss.lazydata.base.realized is not None and w.grad.roots == ()
    np.testing.assert_allclose(loss.item(), 5.0)
    np.testing.assert_allclose(w.numpy(), [0.8, 1.6])


@pytest.mark.parametrize("kind", ["int", "slice", "mask", "tensor"])
def test_setitem_gradients_as_torch(device, kind):
    """x[i] = v on a tensor in the graph: the other elements' gradients flow to x, the written ones to v."""
    values = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    written = [10.0] if kind == "int" else [10.0, 20.0]
    x, v = (
        Tensor(values, device=device, requires_grad=True),
        Tensor(written, device=device, requires_grad=True),
    )
    tx, tv = torch.tensor(values, requires_grad=True), torch.tensor(written, requires_grad=True)
    index = {
        "int": (1, 1),
        "slice": (slice(1, 3), slice(1, 3)),
        "mask": (Tensor([True, False, True, False], device=device), torch.tensor([True, False, True, False])),
        "tensor": (Tensor([0, 3], device=device), torch.tensor([0, 3])),
    }[kind]
    y, ty = x * 2, (tx * 2).clone()
    y[index[0]] = (v[0] if kind == "int" else v) * 3
    ty[index[1]] = (tv[0] if kind == "int" else tv) * 3
    weights = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    (y * Tensor(weights, device=device)).sum().backward()
    (ty * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_allclose(v.grad.numpy(), tv.grad.numpy())


def test_in_place_add_on_a_non_leaf_and_assign_gradients_as_torch(device):
    x, tx = (
        Tensor([1.0, 2.0], device=device, requires_grad=True),
        torch.tensor([1.0, 2.0], requires_grad=True),
    )
    y, ty = x * 3, tx * 3
    y += x * x
    ty += tx * tx
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    w, tw = (
        Tensor([3.0, 4.0], device=device, requires_grad=True),
        torch.tensor([3.0, 4.0], requires_grad=True),
    )
    z, tz = (Tensor([1.0, 2.0], device=device) * 1).contiguous(), torch.tensor([1.0, 2.0]) * 1
    z.assign(w * 2)
    tz.copy_(tw * 2)
    (z * z).sum().backward()
    (tz * tz).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy())


@pytest.mark.parametrize("value_grad", [True, False])
@pytest.mark.parametrize("realize_before", [True, False])
@pytest.mark.parametrize("realize_after", [True, False])
def test_leaves_behind_an_overwritten_value_get_zero_gradients_as_torch(
    value_grad, realize_before, realize_after
):
    """x = a * 2; x.copy_(v * 3): a's gradient is zeros in torch (it is in the graph, its value gone), v's
    flows through; realized or not before and after the assign."""
    results = []
    for module, make in ((minigrad, minigrad.Tensor), (torch, torch.tensor)):
        a = make([1.0, 2.0, 3.0], requires_grad=True)
        v = make([4.0, 5.0, 6.0], requires_grad=value_grad)
        x = a * 2
        if realize_before and module is minigrad:
            x.realize()
        if module is minigrad:
            x.assign(v * 3)
        else:
            x.copy_(v * 3)
        if realize_after and module is minigrad:
            x.realize()
        (x * x).sum().backward()
        grads = [t.grad for t in (a, v)]
        results.append(
            [None if g is None else np.asarray(g.numpy() if module is minigrad else g) for g in grads]
        )
    for ours, theirs in zip(*results):
        assert (ours is None) == (theirs is None)
        if ours is not None:
            np.testing.assert_allclose(ours, theirs)
