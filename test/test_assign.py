"""Mutation safety: assign() never silently changes a result that needs the old value; every device."""

import numpy as np
import pytest

from minigrad import Tensor
from minigrad.nn import optim


def test_optimizer_pattern_updates_in_place(device):
    w = Tensor([1.0, 2.0], device=device, requires_grad=True)
    expected = np.array([1.0, 2.0])
    for _ in range(3):
        loss = (w * w).sum()
        loss.backward()
        w.assign(w.detach() - 0.1 * w.grad).realize()  # w.assign(w - lr * g)
        expected = expected - 0.1 * 2 * expected
        w.grad = None
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)


def test_optimizer_step_with_loss_realized_together(device):
    w = Tensor([1.0, 2.0], device=device, requires_grad=True)
    opt = optim.SGD([w], lr=0.5)
    loss = (w * w * w).sum() + (w * 3).sum()  # the loss itself reads w: realize it with the step
    loss.backward()
    Tensor.realize(loss, *opt.schedule_step())
    assert loss.item() == pytest.approx(18.0)  # the value before the update
    np.testing.assert_allclose(w.numpy(), [1.0 - 0.5 * 6, 2.0 - 0.5 * 15])


def test_a_read_in_the_same_realize_sees_the_old_value(device):
    for order in ("read first", "write first"):
        w = Tensor([1.0, 2.0], device=device).realize()
        y = w * 3
        w.assign(w * 2)
        Tensor.realize(y, w) if order == "read first" else Tensor.realize(w, y)
        np.testing.assert_allclose(y.numpy(), [3.0, 6.0], err_msg=order)
        np.testing.assert_allclose(w.numpy(), [2.0, 4.0], err_msg=order)


def test_two_assigns_that_read_each_others_old_values(device):
    """Each update must run before the other (R7): the old values are copied first. This raised; a conv,
    BatchNorm and relu model trained with SGD hit it at its second step (test_nn)."""
    a, b = Tensor([1.0, 2.0], device=device).realize(), Tensor([10.0, 20.0], device=device).realize()
    old_a, old_b = a * 1, b * 1
    a.assign(old_b + 1)
    b.assign(old_a + 1)
    Tensor.realize(a, b)
    np.testing.assert_allclose(a.numpy(), [11.0, 21.0])
    np.testing.assert_allclose(b.numpy(), [2.0, 3.0])


def test_a_pending_read_of_an_overwritten_leaf_raises(device):
    w = Tensor([1.0, 2.0], device=device).realize()
    y = w * 3
    w.assign(w * 2).realize()
    with pytest.raises(RuntimeError, match="assign"):
        y.numpy()


def test_a_saved_backward_that_needs_the_old_value_raises(device):
    x = Tensor([1.0, 1.0], device=device, requires_grad=True)
    w = Tensor([2.0, 3.0], device=device).realize()
    loss = (x * w).sum()
    w.assign(w * 5).realize()
    loss.backward()
    with pytest.raises(RuntimeError, match="overwritten"):
        x.grad.numpy()


def test_a_computed_value_is_recomputed_instead(device):
    """A pending graph that needs the old value of a computed tensor gets it again from its sources."""
    a, b = Tensor([1.0, 2.0], device=device).realize(), Tensor([10.0, 20.0], device=device).realize()
    h = a + b
    y = h * 2  # built before h is realized: it reads h's node, not a copy
    h.realize()
    h.assign(h * 100).realize()
    np.testing.assert_allclose(y.numpy(), [22.0, 44.0])
    np.testing.assert_allclose(h.numpy(), [1100.0, 2200.0])


def test_clone_keeps_the_old_value(device):
    w = Tensor([1.0, 2.0], device=device).realize()
    old = w.clone().realize()
    w.assign(w * 2).realize()
    np.testing.assert_allclose(old.numpy(), [1.0, 2.0])


def test_loss_read_after_step_is_the_loss_before_it(device):
    """PyTorch's loop: backward(), step(), then loss.item(). step() computes the loss with the update."""
    torch = pytest.importorskip("torch")
    x_np = np.array([[1.0, 2.0], [3.0, -1.0]], dtype=np.float32)
    w = Tensor([[0.5], [-0.5]], device=device, requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    tw = torch.tensor([[0.5], [-0.5]], requires_grad=True)
    topt = torch.optim.SGD([tw], lr=0.1)
    for _ in range(3):
        loss = ((Tensor(x_np, device=device) @ w) ** 2).mean() + 0.1 * (w * w).sum()  # reads w directly
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = ((torch.from_numpy(x_np) @ tw) ** 2).mean() + 0.1 * (tw * tw).sum()
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-5)
        np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-5)
