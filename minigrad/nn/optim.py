"""Optimizers: SGD (momentum, nesterov, weight decay), Adam, AdamW, RMSprop and Adagrad, with PyTorch's
update rules; LAMB and Muon as tinygrad's.

In: the parameters (Tensors) and hyperparameters. Out: `step()` updates every parameter in place from its
`.grad`; `zero_grad()` clears the gradients. Tensors given with requires_grad=False (BatchNorm's running
statistics, from `get_parameters(model)`) are not updated but realized with every step, so that their own
pending updates run (inside TinyJit too). A step builds the update of every parameter and optimizer
buffer as one lazy graph and realizes it once, so the scheduler fuses each parameter's update into one
kernel per written buffer, not one kernel per op. Per-step scalars that change (Adam's bias corrections)
live in device tensors, so the kernels stay the same from step to step and compile once. So does the
learning rate: `opt.lr = 0.01` (a schedule, every step) writes the new value into a device tensor that
the update kernels read, instead of baking a new constant into them (which compiled every kernel again:
an SGD step with a decaying lr took 400 ms instead of 1).
"""

from __future__ import annotations

import math

from minigrad import viz
from minigrad.dtype import dtypes
from minigrad.helpers import getenv
from minigrad.replay import replayed
from minigrad.tensor import Tensor


class Optimizer:
    def __init__(self, params: list[Tensor], lr: float):
        unique = list({id(p): p for p in params}.values())
        self.params = [p for p in unique if p.requires_grad is not False]
        if not self.params:
            raise ValueError("optimizer got no parameters that require gradients")
        # the learning rate and step counters: float32 whatever the default float (b2^t in float16 is 2% off);
        # float64 with a float64 parameter (0.1 rounded to float32 would be 0.10000000149)
        self.scalar_dtype = (
            dtypes.float64 if any(p.dtype == dtypes.float64 for p in self.params) else dtypes.float32
        )
        self._lr_tensor = Tensor.zeros((), device=self.params[0].device, dtype=self.scalar_dtype).contiguous()
        self.lr = lr
        for p in self.params:
            p.requires_grad = True
        self.buffers: list[Tensor] = []  # optimizer state, realized with the parameters
        self.frozen = [p for p in unique if p.requires_grad is False]  # not updated, but realized with them

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = float(value)
        self._lr_tensor.assign(Tensor(self._lr, device=self._lr_tensor.device, dtype=self._lr_tensor.dtype))
        self._lr_tensor.realize()  # now, in place: a TinyJit replay reads this buffer

    def _zeros(self) -> list[Tensor]:
        """A zero state tensor per parameter: its shape, device and dtype."""
        return [Tensor.zeros(*p.shape, device=p.device, dtype=p.dtype) for p in self.params]

    def _lr_for(self, p: Tensor) -> Tensor:
        """The learning rate as a tensor p's update can read (same device and dtype)."""
        return self._lr_tensor.to(p.device).cast(p.dtype)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient; one realize for all of them. The tensors backward()
        was called on (the losses), which each gradient names (Tensor.roots), are computed in the same
        realize, before the parameters change:
        `loss.item()` after `step()` is then the loss that gave the gradients, as in PyTorch, even when the
        loss reads a parameter directly (an L2 term). Without this it would need the overwritten values."""
        grads = [p.grad for p in self.params if p.grad is not None]
        losses = {id(t): t for g in grads for t in (ref() for ref in g.roots) if t is not None}
        for g in grads:
            g.roots = ()  # computed now: a later step need not realize them again
        if getenv("VIZ"):  # the viewer shows the update's nodes as the optimizer step
            viz.phase("optimizer step")
        updates = self.schedule_step()
        if getenv("VIZ"):
            viz.phase("forward")
        Tensor.realize(*losses.values(), *updates)

    def schedule_step(self) -> list[Tensor]:
        """The lazy update (assigns) of every parameter and buffer, not yet realized."""
        for i, p in enumerate(self.params):
            if p.grad is not None:
                p.assign(self._update(i, p.detach(), p.grad.detach()))
        return self.params + self.buffers + self.frozen

    def _update(self, i: int, p: Tensor, g: Tensor) -> Tensor:
        raise NotImplementedError


class SGD(Optimizer):
    def __init__(self, params, lr=0.001, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov momentum needs momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov
        if momentum:
            self.buffers = self._zeros()

    def _update(self, i: int, p: Tensor, g: Tensor) -> Tensor:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            velocity = self.buffers[i].assign(self.momentum * self.buffers[i] + g)
            g = g + self.momentum * velocity if self.nesterov else velocity
        return p - self._lr_for(p) * g


class Adam(Optimizer):
    """Adam; `weight_decay` is the L2 penalty added to the gradient (PyTorch's Adam). AdamW decouples it."""

    decoupled = False

    def __init__(self, params, lr=0.001, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.b1, self.b2, self.eps, self.weight_decay = b1, b2, eps, weight_decay
        device = self.params[0].device
        # b1**t and b2**t, kept on the device so that the kernels do not change with t
        self.b1_t, self.b2_t = (Tensor.ones((), device=device, dtype=self.scalar_dtype) for _ in range(2))
        self.m, self.v = self._zeros(), self._zeros()
        self.buffers = [self.b1_t, self.b2_t, *self.m, *self.v]

    def schedule_step(self) -> list[Tensor]:
        self.b1_t.assign(self.b1_t * self.b1)
        self.b2_t.assign(self.b2_t * self.b2)
        return super().schedule_step()

    def _update(self, i: int, p: Tensor, g: Tensor) -> Tensor:
        if self.weight_decay and self.decoupled:
            p = p * (1 - self._lr_for(p) * self.weight_decay)
        elif self.weight_decay:
            g = g + self.weight_decay * p
        m = self.m[i].assign(_running_mean(self.m[i], g, self.b1))
        v = self.v[i].assign(_running_mean(self.v[i], g.square(), self.b2))
        return _adam_step(p, m, v, self._lr_for(p), self.b1_t, self.b2_t, self.eps)


@replayed  # (pure: the replay of later steps skips ~20 ops of Python per parameter)
def _running_mean(mean: Tensor, x: Tensor, beta: float) -> Tensor:
    return beta * mean + (1 - beta) * x


@replayed
def _adam_step(p: Tensor, m: Tensor, v: Tensor, lr: Tensor, b1_t: Tensor, b2_t: Tensor, eps: float) -> Tensor:
    """p less Adam's step: lr m / (1 - b1^t) over sqrt(v) / sqrt(1 - b2^t) + eps, from the moments m and v."""
    step_size = lr / (1 - b1_t)
    denominator = v.sqrt() / (1 - b2_t).sqrt() + eps
    return p - step_size * m / denominator


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * weight_decay before the Adam step."""

    decoupled = True

    def __init__(self, params, lr=0.001, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, b1, b2, eps, weight_decay)


class RMSprop(Optimizer):
    """torch's RMSprop: a running mean of g^2 (alpha) divides the step; `centered` subtracts the square of
    the running mean of g; `momentum` accumulates the divided steps."""

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, lr)
        self.alpha, self.eps, self.weight_decay = alpha, eps, weight_decay
        self.momentum, self.centered = momentum, centered
        self.square_avg = self._zeros()
        self.grad_avg = self._zeros() if centered else []
        self.momentum_buffer = self._zeros() if momentum else []
        self.buffers = self.square_avg + self.grad_avg + self.momentum_buffer

    def _update(self, i: int, p: Tensor, g: Tensor) -> Tensor:
        if self.weight_decay:
            g = g + self.weight_decay * p
        square_avg = self.square_avg[i].assign(
            self.alpha * self.square_avg[i] + (1 - self.alpha) * g.square()
        )
        if self.centered:
            grad_avg = self.grad_avg[i].assign(self.alpha * self.grad_avg[i] + (1 - self.alpha) * g)
            average = (square_avg - grad_avg.square()).sqrt() + self.eps
        else:
            average = square_avg.sqrt() + self.eps
        step = g / average
        if self.momentum:
            step = self.momentum_buffer[i].assign(self.momentum * self.momentum_buffer[i] + step)
        return p - self._lr_for(p) * step


class Adagrad(Optimizer):
    """torch's Adagrad: the step divided by the root of the sum of all past g^2; the learning rate decays
    as lr / (1 + (t - 1) lr_decay), t counted on the device."""

    def __init__(
        self, params, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10
    ):
        super().__init__(params, lr)
        self.lr_decay, self.weight_decay, self.eps = lr_decay, weight_decay, eps
        self.sums = [
            Tensor.full(p.shape, initial_accumulator_value, device=p.device, dtype=p.dtype)
            for p in self.params
        ]
        self.t = Tensor.zeros((), device=self.params[0].device, dtype=self.scalar_dtype)
        self.buffers = [self.t, *self.sums]

    def schedule_step(self) -> list[Tensor]:
        self.t.assign(self.t + 1)
        return super().schedule_step()

    def _update(self, i: int, p: Tensor, g: Tensor) -> Tensor:
        if self.weight_decay:
            g = g + self.weight_decay * p
        total = self.sums[i].assign(self.sums[i] + g.square())
        lr = self._lr_for(p) / (1 + (self.t.to(p.device).cast(p.dtype) - 1) * self.lr_decay)
        return p - lr * g / (total.sqrt() + self.eps)


class LAMB(Adam):
    """Adam's step scaled per tensor by the trust ratio ||p|| / ||step|| (1 where either is 0), weight
    decay added to the step (You et al. 2019, as tinygrad's LAMB); adam=True leaves the ratio out, which is
    AdamW. Adam's moments and bias corrections."""

    def __init__(self, params, lr=0.001, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.0, adam=False):
        super().__init__(params, lr, b1, b2, eps, weight_decay)
        self.adam = adam

    def _update(self, i: int, p: Tensor, g: Tensor) -> Tensor:
        m = self.m[i].assign(self.b1 * self.m[i] + (1 - self.b1) * g)
        v = self.v[i].assign(self.b2 * self.v[i] + (1 - self.b2) * g.square())
        step = (m / (1 - self.b1_t)) / ((v / (1 - self.b2_t)).sqrt() + self.eps) + self.weight_decay * p
        if not self.adam:
            weight_norm, step_norm = p.square().sum().sqrt(), step.square().sum().sqrt()
            ratio = ((weight_norm > 0) & (step_norm > 0)).where(weight_norm / step_norm, 1.0)
            step = step * ratio
        return p - self._lr_for(p) * step


class Muon(Optimizer):
    """SGD with (nesterov) momentum whose step is orthogonalized: the momentum, as a (rows, -1) matrix, is
    pushed toward U V^T of its SVD by ns_steps Newton-Schulz iterations of an odd polynomial (Jordan et al.,
    as tinygrad's Muon); weight decay p *= 1 - lr * weight_decay after the momentum. Matches tinygrad
    0.14's Muon step for step (test_nn.py)."""

    def __init__(
        self,
        params,
        lr=0.001,
        momentum=0.95,
        weight_decay=0.1,
        ns_steps=5,
        ns_coefficients=(3.4445, -4.775, 2.0315),
        nesterov=True,
    ):
        super().__init__(params, lr)
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov
        self.ns_steps, self.ns_coefficients = ns_steps, ns_coefficients
        self.buffers = self._zeros()

    def _update(self, i: int, p: Tensor, g: Tensor) -> Tensor:
        if self.momentum:
            velocity = self.buffers[i].assign(self.momentum * self.buffers[i] + g)
            g = g + self.momentum * velocity if self.nesterov else velocity
        g = newton_schulz(g.reshape(g.shape[0], -1), self.ns_steps, self.ns_coefficients).reshape(g.shape)
        if self.weight_decay:
            p = p * (1 - self._lr_for(p) * self.weight_decay)
        return p - self._lr_for(p) * g


def newton_schulz(x: Tensor, steps: int, coefficients: tuple[float, ...], eps: float = 1e-7) -> Tensor:
    """`steps` iterations of X <- sum_k c_k (X X^T)^k X from X = x / ||x||_F (the wider orientation: a tall
    matrix is done transposed), for Muon."""
    if x.shape[-2] > x.shape[-1]:
        return newton_schulz(x.transpose(-2, -1), steps, coefficients, eps).transpose(-2, -1)
    x = x / (x.square().sum((-2, -1), keepdim=True).sqrt() + eps)
    for _ in range(steps):
        gram, term, total = x @ x.transpose(-2, -1), x, x * coefficients[0]
        for c in coefficients[1:]:
            term = gram @ term
            total = total + c * term
        x = total
    return x


def clip_grad_norm_(params: list[Tensor], max_norm: float, norm_type: float = 2.0) -> Tensor:
    """Scale the gradients of `params` so that their joint norm is at most max_norm (torch's, with its 1e-6
    in the denominator); returns the norm before clipping. Lazy: nothing is read back to the host."""
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    norms = Tensor.stack([p.grad.detach().float().norm(norm_type) for p in grads])
    total = norms.max() if norm_type == math.inf else norms.norm(norm_type)
    scale = (max_norm / (total + 1e-6)).minimum(1.0)
    for p in grads:
        clipped = p.grad * scale.to(p.grad.device).cast(p.grad.dtype)
        clipped.roots = p.grad.roots  # the losses the optimizer's step realizes with the update
        p.grad = clipped
    return total


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "LAMB", "Muon", "clip_grad_norm_"]
