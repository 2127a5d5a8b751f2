"""minigrad.Function: user-defined forward/backward (and optional jvp), on every device."""

import gc
import weakref

import numpy as np
import pytest
import torch

import minigrad
from minigrad import Function, Tensor

TOL = dict(atol=1e-5, rtol=1e-4)


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y


class ScaledSquare(Function):
    """x * x * scale, a non-Tensor argument; backward uses the saved input, so it differentiates again."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * scale

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x * (2 * ctx.scale), None  # one per argument, as torch

    @staticmethod
    def jvp(ctx, x_tangent):
        (x,) = ctx.saved_tensors
        return x_tangent * x * (2 * ctx.scale)


class ClampGrad(Function):
    """Identity forward; backward clips the gradient: a rule no composition of ops gives."""

    @staticmethod
    def forward(ctx, x):
        return x + 0

    @staticmethod
    def backward(ctx, grad):
        return grad.clip(-0.1, 0.1)


def test_function_backward_and_gradient(device):
    x_np = np.array([0.5, -1.0, 2.0], np.float32)
    x = Tensor(x_np, device=device, requires_grad=True)
    out = Exp.apply(x)
    assert out.requires_grad
    np.testing.assert_allclose(out.numpy(), np.exp(x_np), **TOL)
    (out * Tensor([1.0, 2.0, 3.0], device=device)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x_np) * [1, 2, 3], **TOL)
    (g,) = Exp.apply(x).sum().gradient(x)
    np.testing.assert_allclose(g.numpy(), np.exp(x_np), **TOL)


def test_function_rule_replaces_the_ops_rules(device):
    x = Tensor([3.0, -2.0], device=device, requires_grad=True)
    (ClampGrad.apply(x) * 5).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.1, 0.1], **TOL)


def test_function_in_transforms_and_second_order(device):
    x = Tensor([0.5, -1.5], device=device)
    f = lambda a: ScaledSquare.apply(a, 3.0).sum()  # noqa: E731
    np.testing.assert_allclose(minigrad.grad(f)(x).numpy(), [3.0, -9.0], **TOL)
    np.testing.assert_allclose(
        minigrad.grad(lambda a: minigrad.grad(f)(a).sum())(x).numpy(), [6.0, 6.0], **TOL
    )
    _, tangent = minigrad.jvp(
        lambda a: ScaledSquare.apply(a, 3.0), (x,), (Tensor([1.0, 1.0], device=device),)
    )
    np.testing.assert_allclose(tangent.numpy(), [3.0, -9.0], **TOL)
    np.testing.assert_allclose(
        minigrad.hvp(f, (x,), (Tensor([1.0, 2.0], device=device),))[0].numpy(), [6, 12], **TOL
    )
    _, vjp_fn = minigrad.vjp(lambda a: Exp.apply(a), x)
    np.testing.assert_allclose(
        vjp_fn(Tensor([1.0, 1.0], device=device))[0].numpy(), np.exp([0.5, -1.5]), **TOL
    )


def test_function_matches_torch_autograd_function(device):
    class TorchScaledSquare(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale):
            ctx.save_for_backward(x)
            ctx.scale = scale
            return x * x * scale

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * x * (2 * ctx.scale), None

    values = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    x, tx = Tensor(values, device=device, requires_grad=True), torch.tensor(values, requires_grad=True)
    ScaledSquare.apply(x, 0.5).sin().sum().backward()
    TorchScaledSquare.apply(tx, 0.5).sin().sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **TOL)


def test_function_errors_name_the_function(device):
    x = Tensor([1.0, 2.0], device=device)
    with pytest.raises(RuntimeError, match="Exp has no forward-mode rule"):
        minigrad.jvp(lambda a: Exp.apply(a), (x,), (x,))[1].numpy()

    class TwoGrads(Exp):
        @staticmethod
        def backward(ctx, grad):
            return grad, grad

    with pytest.raises(ValueError, match="TwoGrads.backward returned 2 gradients"):
        minigrad.grad(lambda a: TwoGrads.apply(a).sum())(x)

    class WrongShape(Exp):
        @staticmethod
        def backward(ctx, grad):
            return grad.sum()

    with pytest.raises(ValueError, match="WrongShape.backward: result 0"):
        minigrad.grad(lambda a: WrongShape.apply(a).sum())(x)

    class NoTensor(Function):
        @staticmethod
        def forward(ctx, x):
            return 3

    with pytest.raises(TypeError, match="NoTensor.forward must return a Tensor or a tuple of them"):
        NoTensor.apply(x)


# ---- several outputs, saved outputs, second derivatives ------------------------------------------------


class SinCos(Function):
    """Two outputs; backward takes one gradient per output."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin(), x.cos()

    @staticmethod
    def backward(ctx, grad_sin, grad_cos):
        (x,) = ctx.saved_tensors
        return grad_sin * x.cos() - grad_cos * x.sin()

    @staticmethod
    def jvp(ctx, tangent):
        (x,) = ctx.saved_tensors
        return tangent * x.cos(), -tangent * x.sin()


class TorchSinCos(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin(), x.cos()

    @staticmethod
    def backward(ctx, grad_sin, grad_cos):
        (x,) = ctx.saved_tensors
        return grad_sin * x.cos() - grad_cos * x.sin()


def test_a_function_with_two_outputs_as_torch(device):
    values = np.array([0.3, -1.2, 2.0], dtype=np.float32)
    for use in ("both", "first", "second"):
        x, tx = Tensor(values, device=device, requires_grad=True), torch.tensor(values, requires_grad=True)
        (s, c), (ts, tc) = SinCos.apply(x), TorchSinCos.apply(tx)
        pick = {
            "both": lambda a, b: (a * b * 3).sum(),
            "first": lambda a, b: a.sum(),
            "second": lambda a, b: b.sum(),
        }
        pick[use](s, c).backward()
        pick[use](ts, tc).backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-6, err_msg=use)
    x = Tensor(values, device=device)
    _, (t_sin, t_cos) = minigrad.jvp(SinCos.apply, (x,), (Tensor.ones_like(x),))
    np.testing.assert_allclose(t_sin.numpy(), np.cos(values), atol=1e-6)
    np.testing.assert_allclose(t_cos.numpy(), -np.sin(values), atol=1e-6)


def test_unused_outputs_get_zeros_or_none(device):
    seen = []

    class Pair(Function):
        @staticmethod
        def forward(ctx, x, materialize):
            ctx.set_materialize_grads(materialize)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, g_first, g_second):
            seen.append(g_second if g_second is None else g_second.tolist())
            return g_first * 2, None

    for materialize in (True, False):
        x = Tensor([1.0, 2.0], device=device, requires_grad=True)
        Pair.apply(x, materialize)[0].sum().backward()
        assert x.grad.tolist() == [2.0, 2.0]
    assert seen == [[0.0, 0.0], None]  # torch: zeros by default, None when not materialized


class SavedOutputExp(Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)  # an output: it stands for the Function's result in backward
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y


def test_second_derivative_through_a_custom_backward(device):
    x = Tensor([0.5, -1.0], device=device)
    second = minigrad.grad(lambda v: minigrad.grad(lambda u: SavedOutputExp.apply(u).sum())(v).sum())(x)
    np.testing.assert_allclose(second.numpy(), np.exp([0.5, -1.0]), rtol=1e-6)  # was 0: y was a constant
    third = minigrad.grad(lambda v: minigrad.grad(lambda u: SinCos.apply(u)[0].sum())(v).sum())(x)
    np.testing.assert_allclose(third.numpy(), -np.sin([0.5, -1.0]), rtol=1e-6)  # through a saved input


def test_a_call_leaves_no_reference_cycle(device):
    """A Function's graph, its saved tensors and its buffers go when the last tensor goes, without the
    garbage collector (a cycle through the rule kept conv2d's buffers until a collection ran: page faults
    and unstable step times). A saved output still stands for the result (second derivatives)."""
    gc.collect()
    gc.disable()
    try:
        x = Tensor([0.5, 1.0], device=device, requires_grad=True)
        y = Exp.apply(x)  # saves its output
        z = x.reshape(1, 1, 1, 2).conv2d(Tensor.ones(1, 1, 1, 2, device=device))  # a library Function
        g = minigrad.grad(lambda a: minigrad.grad(lambda b: Exp.apply(b).sum())(a).sum())(x)
        np.testing.assert_allclose(g.numpy(), np.exp([0.5, 1.0]), rtol=1e-6)
        (y.sum() + z.sum()).backward()
        refs = [weakref.ref(t.lazydata) for t in (y, z)] + [weakref.ref(y.lazydata.srcs[0].base)]
        del y, z, x
        assert all(ref() is None for ref in refs)
    finally:
        gc.enable()


def _sort_function(base, sort, zeros_like):
    class Sort(base):
        @staticmethod
        def forward(ctx, x):
            values, indices = sort(x)
            ctx.mark_non_differentiable(indices)
            ctx.save_for_backward(indices)
            return values, indices

        @staticmethod
        def backward(ctx, grad_values, grad_indices):
            (indices,) = ctx.saved_tensors
            return zeros_like(grad_values).scatter(0, indices, grad_values)

    return Sort


def test_mark_non_differentiable_as_torch(device):
    """An output marked non-differentiable (sort's indices) is a constant: requires_grad False, and the
    other outputs' gradients flow as torch's."""
    x = np.array([3.0, 1.0, 2.0], np.float32)
    Sort = _sort_function(Function, lambda t: t.sort(), lambda t: t.zeros_like())
    TSort = _sort_function(torch.autograd.Function, torch.sort, torch.zeros_like)
    a, ta = Tensor(x, device=device, requires_grad=True), torch.tensor(x, requires_grad=True)
    (values, indices), (tvalues, tindices) = Sort.apply(a), TSort.apply(ta)
    assert indices.requires_grad is False and tindices.requires_grad is False
    (values * Tensor([1.0, 2.0, 3.0], device=device)).sum().backward()
    (tvalues * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy())


class ExpSavingBoth(Function):
    """Saves its input and its output: x.grad's graph reaches this call's rule through the saved output."""

    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * y + x * 0


def test_a_saved_input_closes_no_reference_cycle_through_its_grad(device):
    """Without the garbage collector, the input and its buffer go as soon as the user drops them (a cycle
    x -> x.grad -> rule -> ctx -> x kept every buffer of a training step until the collector ran)."""
    gc.collect()
    gc.disable()
    try:
        x = Tensor([0.0, 1.0], device=device, requires_grad=True)
        ExpSavingBoth.apply(x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), np.exp([0.0, 1.0]), **TOL)
        alive = weakref.ref(x)
        del x
        assert alive() is None
    finally:
        gc.enable()
