"""Layers: Linear, Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d, BatchNorm2d (alias BatchNorm),
LayerNorm, Embedding; the other norms are in nn/norms.py (GroupNorm, InstanceNorm, LayerNorm2d, RMSNorm),
LSTMCell, LSTM and MultiheadAttention in nn/recurrent.py.

In: hyperparameters (sizes, eps, ...). Out: callable objects, `layer(x) -> Tensor`, whose parameters are
plain Tensor attributes (`weight`, `bias`, and BatchNorm's running statistics), so that nn/state.py finds
them by walking attributes. Initialisation follows PyTorch's defaults: weights and biases uniform in
+-1/sqrt(fan_in) (PyTorch's kaiming_uniform with a=sqrt(5) comes to that bound), norms start at weight 1
and bias 0, embeddings are standard normal. Parameters require gradients; running statistics do not.
"""

from __future__ import annotations

import math

from minigrad.dtype import dtypes
from minigrad.tensor import Tensor


def _uniform(*shape: int, fan_in: int) -> Tensor:
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return Tensor.uniform(*shape, low=-bound, high=bound, requires_grad=True)


class Linear:
    """y = x @ weight.T + bias, with weight of shape (out_features, in_features) as in PyTorch."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        self.weight = _uniform(out_features, in_features, fan_in=in_features)
        self.bias = _uniform(out_features, fan_in=in_features) if bias else None

    def __call__(self, x: Tensor) -> Tensor:
        return x.linear(self.weight.T, self.bias)


class Conv2d:
    """Convolution of (N, C_in, *spatial) inputs with weight (C_out, C_in / groups, *kernel): 2-D here, 1-D
    as Conv1d, 3-D as Conv3d. padding: an int, one per dim, 'valid' (none) or 'same' (the output keeps the input's size,
    stride 1; an odd total puts the extra element after, as torch)."""

    dims = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int = 1,
        padding: int | tuple | str = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
    ):
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{type(self).__name__}: groups={groups} must divide {in_channels} and {out_channels} channels"
            )
        kernel = (kernel_size,) * self.dims if isinstance(kernel_size, int) else tuple(kernel_size)
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.padding = _conv_padding(padding, kernel, stride, dilation, type(self).__name__)
        fan_in = in_channels // groups * math.prod(kernel)
        self.weight = _uniform(out_channels, in_channels // groups, *kernel, fan_in=fan_in)
        self.bias = _uniform(out_channels, fan_in=fan_in) if bias else None

    def __call__(self, x: Tensor) -> Tensor:
        return x.conv2d(self.weight, self.bias, self.groups, self.stride, self.dilation, self.padding)


class Conv1d(Conv2d):
    dims = 1


class Conv3d(Conv2d):
    dims = 3


class ConvTranspose2d:
    """Transposed convolution (the gradient of a convolution), weight (C_in, C_out / groups, *kernel) as
    torch's; 1-D as ConvTranspose1d, 3-D as ConvTranspose3d."""

    dims = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int = 1,
        padding: int = 0,
        output_padding: int = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int = 1,
    ):
        kernel = (kernel_size,) * self.dims if isinstance(kernel_size, int) else tuple(kernel_size)
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.groups, self.dilation = groups, dilation
        fan_in = out_channels // groups * math.prod(kernel)  # torch's: the weight's dim 1 and kernel
        self.weight = _uniform(in_channels, out_channels // groups, *kernel, fan_in=fan_in)
        self.bias = _uniform(out_channels, fan_in=fan_in) if bias else None

    def __call__(self, x: Tensor) -> Tensor:
        return x.conv_transpose2d(
            self.weight, self.bias, self.groups, self.stride, self.dilation, self.padding, self.output_padding
        )


class ConvTranspose1d(ConvTranspose2d):
    dims = 1


class ConvTranspose3d(ConvTranspose2d):
    dims = 3


def _conv_padding(padding, kernel: tuple, stride, dilation, name: str):
    """A convolution's padding as conv2d takes it; the strings 'valid' and 'same' as torch reads them."""
    if not isinstance(padding, str):
        return padding
    if padding == "valid":
        return 0
    if padding != "same":
        raise ValueError(f"{name}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    if stride != 1:
        raise ValueError(f"{name}: padding='same' needs stride 1, got stride {stride}")
    dilations = (dilation,) * len(kernel) if isinstance(dilation, int) else tuple(dilation)
    flat = []
    for k, d in reversed(list(zip(kernel, dilations))):  # F.pad's order: the last dim first
        total = d * (k - 1)
        flat += [total // 2, total - total // 2]
    return tuple(flat)


class BatchNorm2d:
    """Normalizes each channel (dim 1) over the batch and the other dims.

    In training (`Tensor.training`) it uses the batch's statistics and updates the running ones like
    PyTorch (biased variance to normalize, unbiased variance into running_var); otherwise it uses the
    running statistics.
    """

    def __init__(
        self,
        sz: int,
        eps: float = 1e-5,
        affine: bool = True,
        track_running_stats: bool = True,
        momentum: float = 0.1,
    ):
        self.eps, self.momentum, self.track_running_stats = eps, momentum, track_running_stats
        self.weight = Tensor.ones(sz, requires_grad=True) if affine else None
        self.bias = Tensor.zeros(sz, requires_grad=True) if affine else None
        if track_running_stats:
            # buffers, not parameters: an optimizer given get_parameters(model) leaves them alone
            self.running_mean = Tensor.zeros(sz, requires_grad=False)
            self.running_var = Tensor.ones(sz, requires_grad=False)
            self.num_batches_tracked = Tensor.zeros((), dtype="int64", requires_grad=False)

    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or (self.weight is not None and x.shape[1] != self.weight.shape[0]):
            raise ValueError(f"BatchNorm: expected (N, {self.weight.shape[0]}, ...) input, got {x.shape}")
        axes = tuple(d for d in range(x.ndim) if d != 1)
        if Tensor.training or not self.track_running_stats:
            if Tensor.training and x.numel() == x.shape[1]:  # one value per channel: its output is always 0
                raise ValueError(
                    f"BatchNorm in training needs more than one value per channel, got {x.shape}"
                )
            mean = x.mean(axes)
            var = ((x - mean.reshape((1, -1) + (1,) * (x.ndim - 2))).square()).mean(axes)
            if Tensor.training and self.track_running_stats:
                n = x.numel() // x.shape[1]
                unbiased = var.detach() * (n / max(n - 1, 1))
                m = self.momentum
                self.running_mean.assign((1 - m) * self.running_mean + m * mean.detach())
                self.running_var.assign((1 - m) * self.running_var + m * unbiased)
                self.num_batches_tracked.assign(self.num_batches_tracked + 1)
        else:
            mean, var = self.running_mean, self.running_var
        return x.batchnorm(self.weight, self.bias, mean, (var + self.eps).rsqrt())


BatchNorm = BatchNorm1d = BatchNorm3d = BatchNorm2d  # one class: it normalizes dim 1 of any rank


class LayerNorm:
    """Normalizes over the last len(normalized_shape) dims, then scales and shifts elementwise."""

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5, elementwise_affine=True):
        self.shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = Tensor.ones(*self.shape, requires_grad=True) if elementwise_affine else None
        self.bias = Tensor.zeros(*self.shape, requires_grad=True) if elementwise_affine else None

    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[-len(self.shape) :] != self.shape:
            raise ValueError(f"LayerNorm: input {x.shape} does not end in the normalized shape {self.shape}")
        y = x.layernorm(tuple(range(-len(self.shape), 0)), self.eps)
        return y if self.weight is None else y * self.weight + self.bias


class Embedding:
    """Rows of a (vocab_size, embed_size) table picked by integer indices of any shape."""

    def __init__(self, vocab_size: int, embed_size: int):
        self.vocab_size, self.embed_size = vocab_size, embed_size
        self.weight = Tensor.randn(vocab_size, embed_size, requires_grad=True)

    def __call__(self, idx: Tensor) -> Tensor:
        if not isinstance(idx, Tensor) or not dtypes.is_int(idx.dtype):
            raise TypeError(f"Embedding takes an integer Tensor of indices, got {getattr(idx, 'dtype', idx)}")
        # a one-hot matmul: one fused kernel forward, and the backward is a matmul too (no scatter needed)
        return idx.one_hot(self.vocab_size).cast(self.weight.dtype) @ self.weight


__all__ = ["Linear", "Conv2d", "BatchNorm2d", "BatchNorm", "LayerNorm", "Embedding"]


from minigrad.nn.norms import GroupNorm, InstanceNorm, LayerNorm2d, RMSNorm  # noqa: E402, F401
from minigrad.nn.recurrent import LSTM, LSTMCell, MultiheadAttention  # noqa: E402, F401
