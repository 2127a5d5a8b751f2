"""Neural-network functions: convolutions and pooling as windowed views, normalization, dropout, losses,
attention.

In: Tensors. Out: Tensors. The methods of one mixin class that `Tensor` (tensor.py) inherits: `self` is
always a Tensor, and new tensors are made through `type(self)` (this module cannot import tensor.py).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from minigrad.dtype import dtypes
from minigrad.helpers import getenv
from minigrad.library.shapes import Axis, IntPair

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
            raise ValueError(f"window of {kernel} taps (dilation {dilation}) does not fit in size {n}")
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
            rows = rows.reshape(batch + (kernel, outputs, stride))[..., 0]
        nb = len(batch)
        return rows.permute(list(range(axis)) + [nb + 1] + list(range(axis, nb)) + [nb])

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
        """2-D convolution as torch's F.conv2d: input (N, Cin, H, W), weight (Cout, Cin/groups, kh, kw)."""
        if self.ndim != 4 or weight.ndim != 4:
            raise ValueError(f"conv2d: expected a 4-D input and weight, got {self.shape} and {weight.shape}")
        batch, cin, _, _ = self.shape
        cout, cin_group, kh, kw = weight.shape
        if cin != cin_group * groups or cout % groups:
            raise ValueError(f"conv2d: input {self.shape}, {groups} groups, mismatches weight {weight.shape}")
        from minigrad.library.conv import Conv2d, windowed_conv  # (conv.py imports tensor.py)

        settings = (groups, _pair(stride), _pair(dilation), _conv_padding(padding)[2:])
        by_rules = getenv("CONV_GRAD_AS_CONV", 1) and (self.requires_grad or weight.requires_grad)
        out = Conv2d.apply(self, weight, *settings) if by_rules else windowed_conv(self, weight, *settings)
        return out + bias.reshape(1, cout, 1, 1) if bias is not None else out

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
        """Transposed convolution as torch: weight (Cin, Cout/groups, kh, kw).

        Computed as a stride-1 convolution of the input with stride-1 zeros inserted between its pixels."""
        if self.ndim != 4 or weight.ndim != 4:
            raise ValueError(
                f"conv_transpose2d: expected 4-D input and weight, got {self.shape} and {weight.shape}"
            )
        batch, cin, h, w_ = self.shape
        if weight.shape[0] != cin or cin % groups:
            raise ValueError(f"conv_transpose2d: input {self.shape} does not match weight {weight.shape}")
        (sh, sw), (dh, dw), (ph, pw), (oph, opw) = map(_pair, (stride, dilation, padding, output_padding))
        _, cout_group, kh, kw = weight.shape
        x = self
        if sh > 1 or sw > 1:  # put stride-1 zeros between input pixels
            x = x.reshape(batch, cin, h, 1, w_, 1).pad(
                ((0, 0), (0, 0), (0, 0), (0, sh - 1), (0, 0), (0, sw - 1))
            )
            x = x.reshape(batch, cin, h * sh, w_ * sw)[:, :, : (h - 1) * sh + 1, : (w_ - 1) * sw + 1]
        full_h, full_w = dh * (kh - 1), dw * (kw - 1)
        x = x.pad(((0, 0), (0, 0), (full_h - ph, full_h - ph + oph), (full_w - pw, full_w - pw + opw)))
        w = weight.reshape(groups, cin // groups, cout_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * cout_group, cin // groups, kh, kw).flip((2, 3))
        return x.conv2d(w, bias, groups=groups, dilation=(dh, dw))

    def max_pool2d(
        self,
        kernel_size: IntPair = (2, 2),
        stride: IntPair | None = None,
        dilation: IntPair = 1,
        padding: IntPair = 0,
    ) -> "Tensor":
        kernel = _pair(kernel_size)
        x = self.pad(_conv_padding(padding), value=-math.inf) if padding != 0 else self
        windows = x._pool(kernel, _pair(stride if stride is not None else kernel), _pair(dilation))
        return windows.max((-2, -1))

    def avg_pool2d(
        self,
        kernel_size: IntPair = (2, 2),
        stride: IntPair | None = None,
        dilation: IntPair = 1,
        padding: IntPair = 0,
    ) -> "Tensor":
        """Average over windows; padding zeros count in the average (torch's count_include_pad=True)."""
        kernel = _pair(kernel_size)
        x = self.pad(_conv_padding(padding)) if padding != 0 else self
        windows = x._pool(kernel, _pair(stride if stride is not None else kernel), _pair(dilation))
        return windows.mean((-2, -1))

    def dropout(self, p: float = 0.5) -> "Tensor":
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        if not type(self).training or p == 0:
            return self
        keep = type(self).rand(*self.shape, device=self.device) >= p
        return keep.where(self * (1 / (1 - p)), 0) if p < 1 else self * 0

    def layernorm(self, axis: Axis = -1, eps: float = 1e-5) -> "Tensor":
        centered = self - self.mean(axis, keepdim=True)
        return centered * ((centered * centered).mean(axis, keepdim=True) + eps).rsqrt()

    def batchnorm(
        self, weight: "Tensor | None", bias: "Tensor | None", mean: "Tensor", invstd: "Tensor"
    ) -> "Tensor":
        """(x - mean) * invstd * weight + bias, with per-channel (dim 1) parameters."""
        shape = (1, -1) + (1,) * (self.ndim - 2)
        x = self - mean.reshape(shape)
        if weight is not None:
            x = x * weight.reshape(shape)
        x = x * (invstd.reshape(shape) if invstd.ndim == 1 else invstd)
        return x + bias.reshape(shape) if bias is not None else x

    def one_hot(self, num_classes: int = -1) -> "Tensor":
        if dtypes.is_float(self.dtype):
            raise TypeError(f"one_hot needs an integer tensor, got {self.dtype.name}")
        classes = num_classes if num_classes >= 0 else int(self.max().item()) + 1  # -1: max + 1, as torch
        self._check_bounds(0, classes, f"class index for one_hot with {classes} classes")
        hot = self.unsqueeze(-1) == type(self).arange(classes, device=self.device, dtype=self.dtype)
        return hot.cast(dtypes.int64)

    def sparse_categorical_crossentropy(
        self, Y: "Tensor", ignore_index: int = -1, label_smoothing: float = 0.0
    ) -> "Tensor":
        """Mean cross-entropy of logits `self` (N, C) against class indices `Y` (N,), as tinygrad."""
        return self.cross_entropy(Y, ignore_index=ignore_index, label_smoothing=label_smoothing)

    def cross_entropy(
        self, Y: "Tensor", reduction: str = "mean", label_smoothing: float = 0.0, ignore_index: int = -100
    ) -> "Tensor":
        """torch.nn.functional.cross_entropy: classes on dim 1; Y holds class indices or probabilities."""
        axis = 1 if self.ndim > 1 else 0
        log_probs = self.log_softmax(axis)
        classes = self.shape[axis]
        if dtypes.is_float(Y.dtype):
            if Y.shape != self.shape:
                raise ValueError(f"cross_entropy: probabilities {Y.shape} must match logits {self.shape}")
            target, keep, count = Y, None, None
        else:
            expected = self.shape[:axis] + self.shape[axis + 1 :]
            if Y.shape != expected:
                raise ValueError(
                    f"cross_entropy: class targets have shape {Y.shape}, expected {expected} "
                    f"for logits {self.shape}"
                )
            hot = Y.unsqueeze(-1) == type(self).arange(classes, device=self.device, dtype=Y.dtype)
            target = hot.permute([0, hot.ndim - 1] + list(range(1, hot.ndim - 1))) if axis == 1 else hot
            # an ignore_index that is no class (-100) matches no column of `hot`: its rows pick nothing and
            # the hot entries count the others, so no mask is built (8 fewer nodes in every training step)
            keep = Y != ignore_index if label_smoothing or 0 <= ignore_index < classes else None
            count = (keep if keep is not None else hot).sum().float()
        if label_smoothing:
            target = target.float() * (1 - label_smoothing) + label_smoothing / classes
        if target.dtype == dtypes.bool:  # class indices: pick the target's log-probability
            picked = target.where(log_probs, 0)
        else:  # probabilities: weigh each class; a -inf logit with target 0 adds 0 (not 0 * -inf)
            picked = (target != 0).where(log_probs * target, 0)
        loss = -picked.sum(axis)
        if keep is not None:
            loss = keep.where(loss, 0)
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        if reduction != "mean":
            raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        return loss.sum() / count if count is not None else loss.mean()

    def binary_crossentropy(self, Y: "Tensor") -> "Tensor":
        """Mean BCE of probabilities `self` against targets `Y`; logs clamped at -100 as torch."""
        return -(Y * _clamped_log(self) + (1 - Y) * _clamped_log(1 - self)).mean()

    def binary_crossentropy_logits(self, Y: "Tensor") -> "Tensor":
        """Mean BCE of logits, in the stable form max(x, 0) - x*y + log(1 + exp(-|x|))."""
        return (self.maximum(0) - self * Y + (1 + (-self.abs()).exp()).log()).mean()

    def scaled_dot_product_attention(
        self, key: "Tensor", value: "Tensor", attn_mask: "Tensor | None" = None, is_causal: bool = False
    ) -> "Tensor":
        """softmax(q k^T / sqrt(d) + mask) v with q = self; a bool mask marks the positions to keep."""
        scores = self.matmul(key.transpose(-2, -1)) * (1 / math.sqrt(self.shape[-1]))
        if is_causal:
            keep = type(self).ones(*scores.shape[-2:], device=self.device, dtype=dtypes.bool).tril()
            scores = keep.where(scores, -math.inf)
        if attn_mask is not None:
            scores = (
                attn_mask.where(scores, -math.inf) if attn_mask.dtype == dtypes.bool else scores + attn_mask
            )
        return scores.softmax(-1).matmul(value)


def _clamped_log(p: "Tensor") -> "Tensor":
    """log(p) clamped at -100, as torch's BCE, with a derivative of 0 where p is 0: a sigmoid saturated to 1.0
    in float32 gave NaN gradients through log(0)."""
    positive = p > 0
    return positive.where(positive.where(p, 1.0).log(), -100.0).maximum(-100)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _conv_padding(padding: int | Sequence[int]) -> tuple:
    """conv padding: int, (ph, pw), or flat (left, right, top, bottom) as PyTorch's F.pad."""
    if isinstance(padding, int):
        return ((0, 0), (0, 0), (padding, padding), (padding, padding))
    if len(padding) == 2:
        return ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1]))
    if len(padding) == 4:
        return ((0, 0), (0, 0), (padding[2], padding[3]), (padding[0], padding[1]))
    raise ValueError(f"padding must be an int, (ph, pw) or (left, right, top, bottom), got {padding}")
