"""Neural-network functions: convolutions and pooling as windowed views, normalization, dropout, losses,
attention.

In: Tensors. Out: Tensors. The methods of one mixin class that `Tensor` (tensor.py) inherits: `self` is
always a Tensor, and new tensors are made through `type(self)` (this module cannot import tensor.py).
"""

from __future__ import annotations

import math

import numpy as np
from typing import TYPE_CHECKING, Sequence

from minigrad.dtype import dtypes
from minigrad.helpers import getenv, normalize_axis
from minigrad.library.shapes import Axis, IntPair
from minigrad.replay import replayed

if TYPE_CHECKING:
    from minigrad.tensor import Tensor


class NNOps:
    __slots__ = ()

    # ---- neural-network functions ---------------------------------------------------------------

    def _window(self, axis: int, kernel: int, stride: int, dilation: int) -> "Tensor":
        """Replace dim `axis` (size n) by the o window positions and append a new last dim of the k taps:
        out[..., o, ..., j] = self[..., o*stride + j*dilation, ...]. Pure views (no copy)."""
        n = self.shape[axis]
        if min(kernel, stride, dilation) < 1:
            raise ValueError(f"kernel size {kernel}, stride {stride}, dilation {dilation}: all must be >= 1")
        outputs = (n - dilation * (kernel - 1) - 1) // stride + 1
        if outputs <= 0:
            raise RuntimeError(f"window of {kernel} taps (dilation {dilation}) does not fit in size {n}")
        order = [d for d in range(self.ndim) if d != axis] + [axis]
        x = self.permute(order)
        batch = x.shape[:-1]
        if kernel == stride and dilation == 1:  # non-overlapping windows: a plain reshape
            rows = x.shrink([None] * len(batch) + [(0, outputs * kernel)]).reshape(batch + (outputs, kernel))
            rows = rows.permute(list(range(len(batch))) + [len(batch) + 1, len(batch)])
        else:
            # repeat each row k times with a stride of n + dilation: row j then starts at element j*dilation
            rows = x.unsqueeze(-2).expand(batch + (kernel, n)).reshape(batch + (kernel * n,))
            rows = rows.pad([(0, 0)] * len(batch) + [(0, kernel * dilation)]).reshape(
                batch + (kernel, n + dilation)
            )
            width = max(n + dilation, outputs * stride)
            rows = rows.pad([(0, 0)] * (len(batch) + 1) + [(0, width - n - dilation)])
            rows = rows.shrink([None] * (len(batch) + 1) + [(0, outputs * stride)])
            rows = rows.reshape(batch + (kernel, outputs, stride)).shrink(
                [None] * (len(batch) + 2) + [(0, 1)]
            )
            rows = rows.reshape(batch + (kernel, outputs))  # (the first of each stride: no __getitem__)
        nb = len(batch)
        return rows.permute(list(range(axis)) + [nb + 1] + list(range(axis, nb)) + [nb])

    @replayed
    def _pool(self, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> "Tensor":
        """Sliding windows over the last len(kernel) dims: (..., *spatial) -> (..., *outputs, *kernel)."""
        x = self
        first = self.ndim - len(kernel)
        for i, (k, s, d) in enumerate(zip(kernel, stride, dilation)):
            x = x._window(first + i, k, s, d)
        return x

    def conv2d(
        self,
        weight: "Tensor",
        bias: "Tensor | None" = None,
        groups: int = 1,
        stride: IntPair = 1,
        dilation: IntPair = 1,
        padding: IntPair = 0,
    ) -> "Tensor":
        """Convolution as torch's F.conv1d/conv2d/conv3d, by the weight's rank: input (N, Cin, *spatial),
        weight (Cout, Cin/groups, *kernel). padding: an int, one per spatial dim, or F.pad's flat
        (last_before, last_after, ...)."""
        dims = weight.ndim - 2
        if dims < 1 or self.ndim != weight.ndim:
            raise RuntimeError(f"conv2d: input {self.shape} and weight {weight.shape} need equal ranks >= 3")
        cout, cin_group = weight.shape[:2]
        if self.shape[1] != cin_group * groups or cout % groups:
            raise RuntimeError(
                f"conv2d: input {self.shape}, {groups} groups, mismatches weight {weight.shape}"
            )
        pads = _pool_padding(padding, dims)
        stride, dilation = _per_dim(stride, dims, "stride"), _per_dim(dilation, dims, "dilation")
        if dims == 1:  # as a 2-D convolution of height 1
            out = self.unsqueeze(2).conv2d(
                weight.unsqueeze(2), None, groups, (1, *stride), (1, *dilation), ((0, 0), *pads)
            )
            out = out.squeeze(2)
        elif dims == 2:
            from minigrad.library.conv import Conv2d, windowed_conv  # (conv.py imports tensor.py)

            settings = (groups, stride, dilation, pads)
            by_rules = getenv("CONV_GRAD_AS_CONV", 1) and (self.requires_grad or weight.requires_grad)
            out = (
                Conv2d.apply(self, weight, *settings) if by_rules else windowed_conv(self, weight, *settings)
            )
        else:
            out = self._conv_by_windows(weight, groups, stride, dilation, pads)
        return out + bias.reshape(1, cout, *[1] * dims) if bias is not None else out

    def _conv_by_windows(self, weight: "Tensor", groups: int, stride, dilation, pads) -> "Tensor":
        """Any-rank convolution as windows of the padded input times the weight, summed (3-D and up)."""
        dims = weight.ndim - 2
        cout, cin_group, *kernel = weight.shape
        x = self.pad(((0, 0), (0, 0), *pads))
        windows = x._pool(kernel, stride, dilation)  # (N, Cin, *out, *kernel)
        out = windows.shape[2 : 2 + dims]
        windows = windows.reshape(self.shape[0], groups, 1, cin_group, *out, *kernel)
        w = weight.reshape(1, groups, cout // groups, cin_group, *[1] * dims, *kernel)
        reduced = (3, *range(4 + dims, 4 + 2 * dims))
        return (windows * w).sum(reduced).reshape(self.shape[0], cout, *out)

    def conv_transpose2d(
        self,
        weight: "Tensor",
        bias: "Tensor | None" = None,
        groups: int = 1,
        stride: IntPair = 1,
        dilation: IntPair = 1,
        padding: IntPair = 0,
        output_padding: IntPair = 0,
    ) -> "Tensor":
        """Transposed convolution as torch's F.conv_transpose1d/2d/3d: weight (Cin, Cout/groups, *kernel).

        Computed as a stride-1 convolution of the input with stride-1 zeros inserted between its pixels."""
        dims = weight.ndim - 2
        if dims < 1 or self.ndim != weight.ndim:
            raise RuntimeError(
                f"conv_transpose2d: input {self.shape} and weight {weight.shape} need equal ranks"
            )
        cin, cout_group, *kernel = weight.shape
        if self.shape[1] != cin or cin % groups:
            raise RuntimeError(f"conv_transpose2d: input {self.shape} does not match weight {weight.shape}")
        stride, dilation = _per_dim(stride, dims, "stride"), _per_dim(dilation, dims, "dilation")
        padding, output_padding = (
            _per_dim(padding, dims, "padding"),
            _per_dim(output_padding, dims, "padding"),
        )
        x = self
        for axis, s in enumerate(stride, start=2):  # put s-1 zeros between input pixels along each dim
            if s > 1:
                n = x.shape[axis]
                x = x.unsqueeze(axis + 1)
                x = x.pad([None] * (axis + 1) + [(0, s - 1)] + [None] * (x.ndim - axis - 2))
                x = x.flatten(axis, axis + 1)
                x = x.shrink([None] * axis + [(0, (n - 1) * s + 1)] + [None] * (x.ndim - axis - 1))
        reach = [d * (k - 1) for d, k in zip(dilation, kernel)]
        x = x.pad(((0, 0), (0, 0), *[(r - p, r - p + o) for r, p, o in zip(reach, padding, output_padding)]))
        w = weight.reshape(groups, cin // groups, cout_group, *kernel).transpose(1, 2)
        w = w.reshape(groups * cout_group, cin // groups, *kernel).flip(tuple(range(2, 2 + dims)))
        return x.conv2d(w, bias, groups=groups, dilation=dilation)

    @replayed
    def max_pool2d(
        self,
        kernel_size: IntPair = (2, 2),
        stride: IntPair | None = None,
        dilation: IntPair = 1,
        padding: IntPair = 0,
        ceil_mode: bool = False,
        return_indices: bool = False,
    ) -> "Tensor | tuple[Tensor, Tensor]":
        """Max over windows of the last len(kernel_size) dims (2 for an int), as torch's max_pool1d/2d/3d.
        return_indices: also the flat index in each input plane of each maximum (int64)."""
        kernel = _kernel(kernel_size)
        lowest = -math.inf if dtypes.is_float(self.dtype) else self.dtype.min
        windows = self._pool_windows(kernel, stride, dilation, padding, ceil_mode, lowest)
        kernel_axes = tuple(range(-len(kernel), 0))
        if not return_indices:
            return windows.max(kernel_axes)
        flat = windows.flatten(-len(kernel), -1)
        spatial = self.shape[-len(kernel) :]
        positions = type(self).arange(math.prod(spatial), device=self.device).reshape(spatial)
        positions = positions._pool_windows(kernel, stride, dilation, padding, ceil_mode, -1)
        positions = positions.flatten(-len(kernel), -1).expand(flat.shape)
        return flat.max(-1), positions.gather(-1, flat.argmax(-1).unsqueeze(-1)).squeeze(-1)

    @replayed
    def avg_pool2d(
        self,
        kernel_size: IntPair = (2, 2),
        stride: IntPair | None = None,
        dilation: IntPair = 1,
        padding: IntPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> "Tensor":
        """Average over windows of the last len(kernel_size) dims, as torch's avg_pool1d/2d/3d: the padding
        counts in the divisor when count_include_pad; the extra windows of ceil_mode never do."""
        kernel = _kernel(kernel_size)
        windows = self._pool_windows(kernel, stride, dilation, padding, ceil_mode, 0.0)
        kernel_axes = tuple(range(-len(kernel), 0))
        if padding == 0 and not ceil_mode:
            return windows.mean(kernel_axes)
        ones = type(self).ones(*self.shape[-len(kernel) :], device=self.device)
        inside = 1.0 if count_include_pad else 0.0
        counts = ones._pool_windows(kernel, stride, dilation, padding, ceil_mode, 0.0, inside)
        return windows.sum(kernel_axes) / counts.sum(kernel_axes)

    def _pool_windows(self, kernel, stride, dilation, padding, ceil_mode, value, inside=None) -> "Tensor":
        """The windows (..., *out, *kernel) over the last len(kernel) dims of self padded by `padding` with
        `value`, and for ceil_mode with `value` again at the end, so that a last partial window is kept
        (unless it would start in the padding). inside: pad by `padding` with this value instead."""
        dims = len(kernel)
        stride = _per_dim(stride if stride is not None else kernel, dims, "stride")
        dilation = _per_dim(dilation, dims, "dilation")
        pads = _pool_padding(padding, dims)
        extra = []
        for n, k, s, d, (before, after) in zip(self.shape[-dims:], kernel, stride, dilation, pads):
            if min(k, s, d) < 1:
                raise ValueError(f"kernel size {k}, stride {s}, dilation {d}: all must be >= 1")
            reach, total = d * (k - 1) + 1, n + before + after
            outputs = (total - reach + (s - 1 if ceil_mode else 0)) // s + 1
            if ceil_mode and (outputs - 1) * s >= n + before:  # a window may not start in the end padding
                outputs -= 1
            extra.append(max(0, (outputs - 1) * s + reach - total))
        batch = [(0, 0)] * (self.ndim - dims)
        x = self
        if any(p for pair in pads for p in pair):
            x = x.pad(batch + list(pads), value=value if inside is None else inside)
        if any(extra):
            x = x.pad(batch + [(0, e) for e in extra], value=value)
        return x._pool(kernel, stride, dilation)

    def max_unpool2d(
        self,
        indices: "Tensor",
        kernel_size: IntPair = (2, 2),
        stride: IntPair | None = None,
        dilation: IntPair = 1,
        padding: IntPair = 0,
        output_size: Sequence[int] | None = None,
    ) -> "Tensor":
        """The inverse of max_pool2d(return_indices=True): each value put at its index in a zero plane."""
        kernel = _kernel(kernel_size)
        dims = len(kernel)
        stride = _per_dim(stride if stride is not None else kernel, dims, "stride")
        dilation, padding = _per_dim(dilation, dims, "dilation"), _per_dim(padding, dims, "padding")
        if output_size is None:
            spatial = self.shape[-dims:]
            output_size = [
                (n - 1) * s - 2 * p + d * (k - 1) + 1
                for n, s, p, d, k in zip(spatial, stride, padding, dilation, kernel)
            ]
        output_size = tuple(output_size)[-dims:]
        batch = self.shape[:-dims]
        flat_values, flat_indices = self.flatten(-dims, -1), indices.flatten(-dims, -1)
        plane = type(self).zeros(*batch, math.prod(output_size), device=self.device, dtype=self.dtype)
        return plane.scatter(-1, flat_indices, flat_values).reshape(*batch, *output_size)

    # ---- torch's rank-named forms (argument order as torch.nn.functional), on the N-d ones above ------

    def conv1d(self, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> "Tensor":
        return self.conv2d(_of_rank(weight, 1, "conv1d"), bias, groups, stride, dilation, padding)

    def conv3d(self, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> "Tensor":
        return self.conv2d(_of_rank(weight, 3, "conv3d"), bias, groups, stride, dilation, padding)

    def conv_transpose1d(
        self, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
    ):
        weight = _of_rank(weight, 1, "conv_transpose1d")
        return self.conv_transpose2d(weight, bias, groups, stride, dilation, padding, output_padding)

    def conv_transpose3d(
        self, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
    ):
        weight = _of_rank(weight, 3, "conv_transpose3d")
        return self.conv_transpose2d(weight, bias, groups, stride, dilation, padding, output_padding)

    def max_pool1d(
        self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
    ):
        kernel = _per_dim(kernel_size, 1, "kernel_size")
        return self.max_pool2d(kernel, stride, dilation, padding, ceil_mode, return_indices)

    def max_pool3d(
        self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
    ):
        kernel = _per_dim(kernel_size, 3, "kernel_size")
        return self.max_pool2d(kernel, stride, dilation, padding, ceil_mode, return_indices)

    def avg_pool1d(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        kernel = _per_dim(kernel_size, 1, "kernel_size")
        return self.avg_pool2d(kernel, stride, 1, padding, ceil_mode, count_include_pad)

    def avg_pool3d(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        kernel = _per_dim(kernel_size, 3, "kernel_size")
        return self.avg_pool2d(kernel, stride, 1, padding, ceil_mode, count_include_pad)

    def interpolate(self, size: Sequence[int], mode: str = "linear", align_corners: bool = False) -> "Tensor":
        """Resize the last len(size) dims, as torch's F.interpolate: 'linear' (bilinear, trilinear by the
        number of dims; torch's names 'bilinear' and 'trilinear' too), 'nearest' or 'nearest-exact'. Each
        dim is a product with a constant (out, in) matrix of weights, so gradients flow to the input."""
        ranks = {"bilinear": 2, "trilinear": 3}
        if mode in ranks:
            if len(size) != ranks[mode]:
                raise ValueError(
                    f"interpolate: mode '{mode}' resizes {ranks[mode]} dims, got size {tuple(size)}"
                )
            mode = "linear"
        x = self._float()
        for axis, m in zip(range(self.ndim - len(size), self.ndim), size):
            weights = _resize_weights(x.shape[axis], int(m), mode, align_corners)
            matrix = type(self)(weights, device=self.device, dtype=x.dtype)
            x = x.transpose(axis, -1).matmul(matrix.transpose(0, 1)).transpose(axis, -1)
        if x.dtype == self.dtype:
            return x
        return (x.round() if mode == "linear" else x).cast(self.dtype)  # integer images stay integer, rounded

    def dropout(self, p: float = 0.5) -> "Tensor":
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        if not type(self).training or p == 0:
            return self
        keep = type(self).rand(*self.shape, device=self.device) >= p
        return keep.where(self * (1 / (1 - p)), 0) if p < 1 else self * 0

    @replayed
    def layernorm(self, axis: Axis = -1, eps: float = 1e-5) -> "Tensor":
        centered = self - self.mean(axis, keepdim=True)
        return centered * ((centered * centered).mean(axis, keepdim=True) + eps).rsqrt()

    @replayed
    def batchnorm(
        self,
        weight: "Tensor | None",
        bias: "Tensor | None",
        mean: "Tensor",
        invstd: "Tensor",
        axis: int | tuple[int, ...] = 1,
    ) -> "Tensor":
        """(x - mean) * invstd * weight + bias, the parameters laid along `axis` (the channel dim, 1 by
        default, or several dims), as tinygrad's."""
        axes = tuple(normalize_axis(a, self.ndim) for a in ((axis,) if isinstance(axis, int) else axis))
        shape = tuple(s if d in axes else 1 for d, s in enumerate(self.shape))
        x = self - mean.reshape(shape)
        if weight is not None:
            x = x * weight.reshape(shape)
        x = x * (invstd.reshape(shape) if invstd.ndim == len(axes) else invstd)
        return x + bias.reshape(shape) if bias is not None else x

    def one_hot(self, num_classes: int = -1) -> "Tensor":
        if dtypes.is_float(self.dtype):
            raise TypeError(f"one_hot needs an integer tensor, got {self.dtype.name}")
        classes = num_classes if num_classes >= 0 else int(self.max().item()) + 1  # -1: max + 1, as torch
        self._check_bounds(0, classes, f"class index for one_hot with {classes} classes")
        hot = self.unsqueeze(-1) == type(self).arange(classes, device=self.device, dtype=self.dtype)
        return hot.cast(dtypes.int64)

    def sparse_categorical_crossentropy(
        self, Y: "Tensor", ignore_index: int = -1, label_smoothing: float = 0.0, reduction: str = "mean"
    ) -> "Tensor":
        """Cross-entropy of logits `self` (..., C), classes on the last dim as tinygrad, against class indices
        `Y` (...)."""
        x = self.permute(0, self.ndim - 1, *range(1, self.ndim - 1)) if self.ndim > 2 else self
        return x.cross_entropy(
            Y, reduction=reduction, label_smoothing=label_smoothing, ignore_index=ignore_index
        )

    def nll_loss(
        self, Y: "Tensor", weight: "Tensor | None" = None, ignore_index: int = -100, reduction: str = "mean"
    ) -> "Tensor":
        """torch's F.nll_loss: minus the log-probability `self` (N, C, ...) of each class index in Y (N, ...),
        times weight[Y]; 'mean' divides by the weights' sum over the targets not ignored."""
        axis = 1 if self.ndim > 1 else 0
        classes = self.shape[axis]
        expected = self.shape[:axis] + self.shape[axis + 1 :]
        if Y.shape != expected or dtypes.is_float(Y.dtype):
            raise RuntimeError(
                f"nll_loss: targets {Y.shape} {Y.dtype.name}, expected class indices of shape {expected}"
            )
        class_shape = (classes,) + (1,) * (self.ndim - axis - 1)
        hot = Y.unsqueeze(axis) == type(self).arange(classes, device=self.device, dtype=Y.dtype).reshape(
            class_shape
        )
        picked = hot.where(self, 0).sum(axis)
        weights = (Y != ignore_index).float()
        if weight is not None:
            weights = weights * hot.where(weight.reshape(class_shape), 0).sum(axis)
        loss = -picked * weights
        return _reduced(loss, reduction, "nll_loss", weights.sum())

    @replayed
    def cross_entropy(
        self,
        Y: "Tensor",
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        ignore_index: int = -100,
        weight: "Tensor | None" = None,
    ) -> "Tensor":
        """torch.nn.functional.cross_entropy: classes on dim 1; Y holds class indices or probabilities;
        weight (C,) weighs each class, and 'mean' over class indices divides by the targets' weights."""
        axis = 1 if self.ndim > 1 else 0
        log_probs = self.log_softmax(axis)
        classes = self.shape[axis]
        class_weight = None if weight is None else weight.reshape((classes,) + (1,) * (self.ndim - axis - 1))
        if dtypes.is_float(Y.dtype):
            if Y.shape != self.shape:
                raise RuntimeError(f"cross_entropy: probabilities {Y.shape} must match logits {self.shape}")
            target, keep, count = Y, None, None
        else:
            expected = self.shape[:axis] + self.shape[axis + 1 :]
            if Y.shape != expected:
                raise RuntimeError(
                    f"cross_entropy: class targets have shape {Y.shape}, expected {expected} "
                    f"for logits {self.shape}"
                )
            hot = Y.unsqueeze(-1) == type(self).arange(classes, device=self.device, dtype=Y.dtype)
            target = hot.permute([0, hot.ndim - 1] + list(range(1, hot.ndim - 1))) if axis == 1 else hot
            # an ignore_index that is no class (-100) matches no column of `hot`: its rows pick nothing and
            # the hot entries count the others, so no mask is built (8 fewer nodes in every training step)
            keep = Y != ignore_index if label_smoothing or 0 <= ignore_index < classes else None
            if class_weight is not None:
                counted = target if keep is None else target & keep.unsqueeze(axis)
                count = counted.where(class_weight, 0).sum()
            elif keep is not None:
                count = keep.sum().float()
            else:  # the rows whose index is a class: hot's count, without summing its N x C compares
                count = ((Y >= 0) & (Y < classes)).sum().float()  # (4096 x 1000: 1.9 ms -> a few us)
        if label_smoothing:
            target = target.float() * (1 - label_smoothing) + label_smoothing / classes
        if class_weight is not None:
            target = target.where(class_weight, 0) if target.dtype == dtypes.bool else target * class_weight
        if target.dtype == dtypes.bool:  # class indices: pick the target's log-probability
            picked = target.where(log_probs, 0)
        else:  # probabilities: weigh each class; a -inf logit with target 0 adds 0 (not 0 * -inf)
            picked = (target != 0).where(log_probs * target, 0)
        loss = -picked.sum(axis)
        if keep is not None:
            loss = keep.where(loss, 0)
        return _reduced(loss, reduction, "cross_entropy", count)

    def binary_crossentropy(self, Y: "Tensor", reduction: str = "mean") -> "Tensor":
        """BCE of probabilities `self` against targets `Y`; logs clamped at -100 as torch."""
        loss = -(Y * _clamped_log(self) + (1 - Y) * _clamped_log(1 - self))
        return _reduced(loss, reduction, "binary_crossentropy")

    def binary_crossentropy_logits(
        self, Y: "Tensor", reduction: str = "mean", pos_weight: "Tensor | None" = None
    ) -> "Tensor":
        """BCE of logits as (1 - y) x + (1 + (pos_weight - 1) y) softplus(-x) (stable, and smooth at 0: its
        Hessian there is torch's 0.25); pos_weight weighs the positive targets of each class (the last dim)."""
        softplus_neg = (-self).softplus()
        scale = 1 if pos_weight is None else 1 + (pos_weight - 1) * Y
        return _reduced((1 - Y) * self + scale * softplus_neg, reduction, "binary_crossentropy_logits")

    def binary_cross_entropy(self, target: "Tensor", weight: "Tensor | None" = None, reduction: str = "mean"):
        """torch's name and arguments for binary_crossentropy; `weight` rescales each element's loss."""
        loss = self.binary_crossentropy(target, reduction="none")
        return _reduced(loss * weight if weight is not None else loss, reduction, "binary_cross_entropy")

    def binary_cross_entropy_with_logits(
        self,
        target: "Tensor",
        weight: "Tensor | None" = None,
        reduction: str = "mean",
        pos_weight: "Tensor | None" = None,
    ) -> "Tensor":
        """torch's name and arguments for binary_crossentropy_logits; `weight` rescales each element."""
        loss = self.binary_crossentropy_logits(target, reduction="none", pos_weight=pos_weight)
        name = "binary_cross_entropy_with_logits"
        return _reduced(loss * weight if weight is not None else loss, reduction, name)

    def mse_loss(self, target: "Tensor", reduction: str = "mean") -> "Tensor":
        return _reduced((self - target).square(), reduction, "mse_loss")

    def l1_loss(self, target: "Tensor", reduction: str = "mean") -> "Tensor":
        return _reduced((self - target).abs(), reduction, "l1_loss")

    def smooth_l1_loss(self, target: "Tensor", reduction: str = "mean", beta: float = 1.0) -> "Tensor":
        """0.5 d² / beta where |d| < beta, else |d| - beta / 2 (torch's F.smooth_l1_loss); beta 0 is L1."""
        signed = self - target
        diff = signed.abs()
        if beta == 0:
            return _reduced(diff, reduction, "smooth_l1_loss")
        quadratic = 0.5 * signed.square() / beta  # of d, not |d|: |d|'s slope 0 at 0 made the Hessian 0 there
        return _reduced((diff < beta).where(quadratic, diff - 0.5 * beta), reduction, "smooth_l1_loss")

    def huber_loss(self, target: "Tensor", reduction: str = "mean", delta: float = 1.0) -> "Tensor":
        """0.5 d² where |d| < delta, else delta (|d| - delta / 2): smooth L1 scaled by delta."""
        signed = self - target
        diff = signed.abs()
        loss = (diff < delta).where(0.5 * signed.square(), delta * (diff - 0.5 * delta))
        return _reduced(loss, reduction, "huber_loss")

    def kl_div(self, target: "Tensor", reduction: str = "mean", log_target: bool = False) -> "Tensor":
        """torch's F.kl_div with log-probabilities `self`: target (log target - self), 0 where target is 0.
        reduction 'batchmean' divides the sum by the batch size (dim 0)."""
        if log_target:
            loss = target.exp() * (target - self)
        else:
            positive = target > 0
            loss = positive.where(target * (positive.where(target, 1).log() - self), 0)
        if reduction == "batchmean":
            return loss.sum() / (self.shape[0] if self.ndim else 1)
        return _reduced(loss, reduction, "kl_div")

    def normalize(self, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> "Tensor":
        """self divided by its p-norm along dim, at least eps (torch's F.normalize)."""
        return self / self.norm(p, dim, keepdim=True).maximum(eps)

    @replayed
    def scaled_dot_product_attention(
        self,
        key: "Tensor",
        value: "Tensor",
        attn_mask: "Tensor | None" = None,
        is_causal: bool = False,
        enable_gqa: bool = False,
    ) -> "Tensor":
        """softmax(q k^T / sqrt(d) + mask) v with q = self; a bool mask marks the positions to keep.
        enable_gqa: key and value have fewer heads (dim -3), each shared by a group of the query's."""
        if is_causal and attn_mask is not None:
            raise RuntimeError("scaled_dot_product_attention: give is_causal or attn_mask, not both")
        if enable_gqa and key.ndim >= 3 and key.shape[-3] != self.shape[-3]:
            heads, kv_heads = self.shape[-3], key.shape[-3]
            if heads % kv_heads:
                raise RuntimeError(
                    f"scaled_dot_product_attention: {heads} query heads in groups of {kv_heads}"
                )
            key = key.repeat_interleave(heads // kv_heads, -3)
            value = value.repeat_interleave(heads // kv_heads, -3)
        return self._attention_weights(key, attn_mask, is_causal).matmul(value)

    def _attention_weights(self, key: "Tensor", attn_mask: "Tensor | None", is_causal: bool) -> "Tensor":
        """softmax(q k^T / sqrt(d) + mask) with q = self (nn.MultiheadAttention returns them too)."""
        scores = self.matmul(key.transpose(-2, -1)) * (1 / math.sqrt(self.shape[-1]))
        if is_causal:
            keep = type(self).ones(*scores.shape[-2:], device=self.device, dtype=dtypes.bool).tril()
            scores = keep.where(scores, -math.inf)
        if attn_mask is not None:
            scores = (
                attn_mask.where(scores, -math.inf) if attn_mask.dtype == dtypes.bool else scores + attn_mask
            )
        return scores.softmax(-1)


def _reduced(loss: "Tensor", reduction: str, name: str, total: "Tensor | None" = None) -> "Tensor":
    """A loss per element, reduced as torch's `reduction=`: 'none', 'sum', or 'mean' (over `total`)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction != "mean":
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return loss.sum() / total if total is not None else loss.mean()


def _clamped_log(p: "Tensor") -> "Tensor":
    """log(p) clamped at -100, as torch's BCE, with a derivative of 0 where p is 0: a sigmoid saturated to 1.0
    in float32 gave NaN gradients through log(0)."""
    positive = p > 0
    return positive.where(positive.where(p, 1.0).log(), -100.0).maximum(-100)


def _resize_weights(n: int, m: int, mode: str, align_corners: bool) -> np.ndarray:
    """(m, n) float32 weights: output position j of a resized dim reads input positions as torch's modes."""
    j = np.arange(m, dtype=np.float32)
    weights = np.zeros((m, n), np.float32)
    scale = np.float32(n) / np.float32(m)
    if mode in ("nearest", "nearest-exact"):
        offset = np.float32(0.5) if mode == "nearest-exact" else np.float32(0)
        weights[np.arange(m), np.minimum(np.floor((j + offset) * scale).astype(np.int64), n - 1)] = 1
        return weights
    if mode != "linear":
        raise NotImplementedError(f"interpolate: mode {mode!r} is not 'linear', 'nearest' or 'nearest-exact'")
    if align_corners:
        source = j * np.float32((n - 1) / (m - 1)) if m > 1 else np.zeros(m, np.float32)
    else:
        source = np.maximum((j + np.float32(0.5)) * scale - np.float32(0.5), 0)
    low = np.minimum(np.floor(source).astype(np.int64), n - 1)
    high = np.minimum(low + 1, n - 1)
    fraction = source - low
    np.add.at(weights, (np.arange(m), low), 1 - fraction)
    np.add.at(weights, (np.arange(m), high), fraction)
    return weights


def _of_rank(weight: "Tensor", dims: int, name: str) -> "Tensor":
    """The weight of a `dims`-d convolution (Cout, Cin/groups, *kernel), or a RuntimeError naming its shape."""
    if weight.ndim != dims + 2:
        raise RuntimeError(
            f"{name}: the weight must have {dims + 2} dims (out, in, kernel), got {weight.shape}"
        )
    return weight


def _kernel(kernel_size: int | Sequence[int]) -> tuple[int, ...]:
    """A pooling kernel: an int is square over 2 dims (the `2d` of the names), a sequence gives the rank."""
    return _per_dim(kernel_size, 2 if isinstance(kernel_size, int) else len(kernel_size), "kernel_size")


def _per_dim(value: int | Sequence[int], dims: int, name: str) -> tuple[int, ...]:
    """An int for every spatial dim, or one per dim."""
    if isinstance(value, int):
        return (value,) * dims
    if len(value) != dims:
        raise ValueError(f"{name} {tuple(value)}: expected an int or {dims} values, one per spatial dim")
    return tuple(int(v) for v in value)


def _pool_padding(padding: int | Sequence, dims: int) -> tuple[tuple[int, int], ...]:
    """Padding of the spatial dims as (before, after) pairs from an int, one int per dim, the pairs
    themselves, or F.pad's flat (last_before, last_after, second_last_before, ...)."""
    if isinstance(padding, int):
        return ((padding, padding),) * dims
    padding = tuple(padding)
    if len(padding) == dims and all(isinstance(p, (tuple, list)) for p in padding):
        return tuple((int(a), int(b)) for a, b in padding)
    if len(padding) == dims:
        return tuple((int(p), int(p)) for p in padding)
    if len(padding) == 2 * dims:
        return tuple((int(padding[2 * i]), int(padding[2 * i + 1])) for i in reversed(range(dims)))
    raise ValueError(
        f"padding {padding}: expected an int, {dims} values, or {2 * dims} for (before, after) pairs"
    )
