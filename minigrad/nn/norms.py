"""Normalization layers beyond BatchNorm and LayerNorm (nn/__init__.py): GroupNorm, InstanceNorm,
LayerNorm2d, RMSNorm.

In: hyperparameters. Out: callable layers `layer(x) -> Tensor` whose weight and bias are plain Tensor
attributes (weight 1, bias 0 at the start, as PyTorch), found by nn/state.py like every other parameter.
"""

from __future__ import annotations

from minigrad.tensor import Tensor


def _affine(channels: int, affine: bool) -> tuple[Tensor | None, Tensor | None]:
    if not affine:
        return None, None
    return Tensor.ones(channels, requires_grad=True), Tensor.zeros(channels, requires_grad=True)


def _per_channel(x: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    """x * weight + bias with one value per channel (dim 1)."""
    if weight is None:
        return x
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * weight.reshape(shape) + bias.reshape(shape)


class GroupNorm:
    """Normalizes (N, C, ...) inputs over each group of C / num_groups channels and the other dims (torch's
    nn.GroupNorm)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True):
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: {num_groups} groups do not divide {num_channels} channels")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight, self.bias = _affine(num_channels, affine)

    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: expected (N, {self.num_channels}, ...) input, got {x.shape}")
        grouped = x.reshape(x.shape[0], self.num_groups, -1).layernorm(-1, self.eps).reshape(x.shape)
        return _per_channel(grouped, self.weight, self.bias)


class InstanceNorm:
    """Normalizes each channel of each sample over its other dims (a GroupNorm with one channel a group);
    affine by default, as tinygrad's (torch's InstanceNorm2d has affine=False)."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True):
        self.num_features, self.eps = num_features, eps
        self.weight, self.bias = _affine(num_features, affine)

    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim < 3 or x.shape[1] != self.num_features:
            raise ValueError(f"InstanceNorm: expected (N, {self.num_features}, ...) input, got {x.shape}")
        normed = x.reshape(x.shape[0], x.shape[1], -1).layernorm(-1, self.eps).reshape(x.shape)
        return _per_channel(normed, self.weight, self.bias)


class LayerNorm2d:
    """LayerNorm over the channels (dim 1) of (N, C, H, W) images, at each pixel, as tinygrad's."""

    def __init__(self, channels: int, eps: float = 1e-5, elementwise_affine: bool = True):
        self.channels, self.eps = channels, eps
        self.weight, self.bias = _affine(channels, elementwise_affine)

    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"LayerNorm2d: expected (N, {self.channels}, H, W) input, got {x.shape}")
        return _per_channel(x.layernorm(1, self.eps), self.weight, self.bias)


class RMSNorm:
    """x / sqrt(mean(x^2) + eps) over the last dim, times a weight (torch's nn.RMSNorm; eps None: float32's
    machine epsilon, as torch)."""

    def __init__(self, dim: int, eps: float | None = None, elementwise_affine: bool = True):
        self.dim, self.eps = dim, 1.1920928955078125e-07 if eps is None else eps
        self.weight = Tensor.ones(dim, requires_grad=True) if elementwise_affine else None

    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"RMSNorm: the last dim of {x.shape} is not {self.dim}")
        normed = x * (x.square().mean(-1, keepdim=True) + self.eps).rsqrt()
        return normed if self.weight is None else normed * self.weight
