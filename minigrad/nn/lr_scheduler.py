"""Learning-rate schedules, as torch.optim.lr_scheduler's, for any optimizer of nn/optim.py.

In: an optimizer and the schedule's parameters. Out: a scheduler whose `step()` (after each
`optimizer.step()`) sets `optimizer.lr` for the next step; `get_last_lr()` gives it as a one-element list, as
torch. Setting `optimizer.lr` writes a device tensor that the update kernels read, so a schedule compiles
nothing after the first step and works inside TinyJit. Each schedule is a closed form of the number of
steps taken, which torch's equal (up to float rounding).
"""

from __future__ import annotations

import bisect
import math


class LRScheduler:
    def __init__(self, optimizer):
        self.optimizer, self.base_lr, self.last_epoch = optimizer, optimizer.lr, 0
        self.optimizer.lr = self.lr_at(0)

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def get_last_lr(self) -> list[float]:
        return [self.optimizer.lr]


class StepLR(LRScheduler):
    """lr * gamma every step_size steps."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """lr * gamma at each milestone."""

    def __init__(self, optimizer, milestones: list[int], gamma: float = 0.1):
        self.milestones, self.gamma = sorted(milestones), gamma
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class CosineAnnealingLR(LRScheduler):
    """From lr down to eta_min along half a cosine over T_max steps (torch's closed form). With `warmup`
    steps first, the rate climbs linearly to lr (lr * (t + 1) / warmup at step t) and the cosine follows."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, warmup: int = 0):
        self.T_max, self.eta_min, self.warmup = T_max, eta_min, warmup
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        if epoch < self.warmup:
            return self.base_lr * (epoch + 1) / self.warmup
        t = epoch - self.warmup
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class OneCycleLR(LRScheduler):
    """torch's one-cycle policy (two phases, cosine): from max_lr / div_factor up to max_lr over pct_start of
    total_steps, then down to that start / final_div_factor. The learning rate only (torch also cycles
    momentum unless cycle_momentum=False)."""

    def __init__(
        self,
        optimizer,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
    ):
        self.max_lr, self.total_steps = max_lr, total_steps
        self.initial_lr = max_lr / div_factor
        self.min_lr = self.initial_lr / final_div_factor
        self.peak = float(pct_start * total_steps) - 1
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        if epoch > self.total_steps:
            raise ValueError(f"OneCycleLR: step {epoch} is past total_steps = {self.total_steps}")
        if epoch <= self.peak:
            return _cosine(self.initial_lr, self.max_lr, epoch / self.peak)
        return _cosine(self.max_lr, self.min_lr, (epoch - self.peak) / (self.total_steps - 1 - self.peak))


class ReduceLROnPlateau:
    """lr * factor when the metric given to `step(metric)` has not improved (by more than `threshold`,
    relative) for `patience` steps, then `cooldown` steps of waiting; never below min_lr (torch's)."""

    def __init__(
        self,
        optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ):
        if mode not in ("min", "max") or factor >= 1:
            raise ValueError(
                f"ReduceLROnPlateau: mode must be 'min' or 'max' and factor < 1, got {mode}, {factor}"
            )
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, factor, patience
        self.threshold, self.cooldown, self.min_lr, self.eps = threshold, cooldown, min_lr, eps
        self.best, self.bad_steps, self.cooldown_left = math.inf if mode == "min" else -math.inf, 0, 0

    def step(self, metric: float) -> None:
        metric = float(metric)
        better = (
            metric < self.best * (1 - self.threshold)
            if self.mode == "min"
            else metric > self.best * (1 + self.threshold)
        )
        self.best, self.bad_steps = (metric, 0) if better else (self.best, self.bad_steps + 1)
        if self.cooldown_left > 0:
            self.cooldown_left, self.bad_steps = self.cooldown_left - 1, 0
        if self.bad_steps > self.patience:
            new_lr = max(self.optimizer.lr * self.factor, self.min_lr)
            if self.optimizer.lr - new_lr > self.eps:
                self.optimizer.lr = new_lr
            self.cooldown_left, self.bad_steps = self.cooldown, 0

    def get_last_lr(self) -> list[float]:
        return [self.optimizer.lr]


def _cosine(start: float, end: float, fraction: float) -> float:
    return end + (start - end) / 2 * (math.cos(math.pi * fraction) + 1)
