"""conv2d's derivative rules: the input's gradient as one convolution of the upstream gradient.

In: the padded input, the weight and the conv's settings. Out: `Conv2d.apply(...)`, the convolution, whose
gradients come from the rules below rather than from differentiating the windowed view. Differentiated
through the view, the input's gradient is a product per tap (a 9x larger tensor for 3x3) folded back by two
reduce kernels over padded views; as a convolution of the upstream gradient (the weight flipped and
transposed) it is one kernel like the forward's, or with a stride one per phase of the input, interleaved.
The weight's gradient is the one the view gives (windows times the upstream gradient, summed over the batch
and the output pixels). Both rules are Tensor ops on saved inputs, so they can be
differentiated again; `jvp` is the forward-mode rule (the conv is linear in each argument).
CONV_GRAD_AS_CONV=0: differentiate the windowed view instead.
"""

from __future__ import annotations

import math

from minigrad.function import Function, FunctionCtx
from minigrad.helpers import getenv
from minigrad.replay import replayed
from minigrad.tensor import Tensor


@replayed
def windowed_conv(x: Tensor, weight: Tensor, groups: int, stride, dilation, pads) -> Tensor:
    """conv2d as a windowed view of the padded input times the weight, summed: the forward."""
    windows = _windows(x, weight.shape, groups, stride, dilation, pads)
    batch, _, _, _, oh, ow, _, _ = windows.shape
    cout, cin_group, kh, kw = weight.shape
    w = weight.reshape(1, groups, cout // groups, cin_group, 1, 1, kh, kw)
    return (windows * w).sum((3, 6, 7)).reshape(batch, cout, oh, ow)


def _windows(x: Tensor, shape: tuple, groups: int, stride, dilation, pads) -> Tensor:
    """The input, padded, as windows for a weight of `shape`: (N, groups, 1, Cin/groups, OH, OW, kh, kw)."""
    _, cin_group, kh, kw = shape
    padded = x.pad(((0, 0), (0, 0), *pads)) if any(p for pad in pads for p in pad) else x
    windows = padded._pool((kh, kw), stride, dilation)  # (N, Cin, OH, OW, kh, kw)
    return windows.reshape(x.shape[0], groups, 1, cin_group, *windows.shape[2:])


class Conv2d(Function):
    """conv2d of an input (N, Cin, H, W), padded by `pads` ((top, bottom), (left, right)) of zeros, with a
    weight (Cout, Cin/groups, kh, kw); no bias."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, weight: Tensor, groups: int, stride, dilation, pads):
        ctx.save_for_backward(x, weight)
        ctx.settings = (groups, stride, dilation, pads)
        return windowed_conv(x, weight, groups, stride, dilation, pads)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        grad_x = _input_gradient(grad, weight, x.shape, *ctx.settings) if need_x else None
        grad_w = _weight_gradient(grad, x, weight.shape, *ctx.settings) if need_w else None
        return grad_x, grad_w, None, None, None, None

    @staticmethod
    def jvp(ctx: FunctionCtx, tangent_x: Tensor, tangent_w: Tensor) -> Tensor:
        x, weight = ctx.saved_tensors
        return Conv2d.apply(tangent_x, weight, *ctx.settings) + Conv2d.apply(x, tangent_w, *ctx.settings)


def _input_gradient(grad: Tensor, weight: Tensor, shape: tuple, groups: int, stride, dilation, pads):
    """d(conv)/dx: the upstream gradient, stride-1 zeros put between its pixels and padded by the kernel's
    reach less the input's padding, convolved with the weight flipped and its in and out channels swapped.
    With a stride, by phases instead (_phase_gradient; CONV_GRAD_PHASES=0: the zeros)."""
    batch, cout, oh, ow = grad.shape
    _, cin_group, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    if (sh > 1 or sw > 1) and getenv("CONV_GRAD_PHASES", 1):
        return _phase_gradient(grad, weight, shape, groups, stride, dilation, pads)
    if sh > 1 or sw > 1:
        grad = grad.reshape(batch, cout, oh, 1, ow, 1)
        grad = grad.pad(((0, 0), (0, 0), (0, 0), (0, sh - 1), (0, 0), (0, sw - 1)))
        grad = grad.reshape(batch, cout, oh * sh, ow * sw)[:, :, : (oh - 1) * sh + 1, : (ow - 1) * sw + 1]
    # output row i reads gradient rows i + top - reach .. i + top: zeros where those fall outside
    rows = _signed_pad(grad.shape[2], dh * (kh - 1) - pads[0][0], shape[2] + pads[0][0] - grad.shape[2])
    cols = _signed_pad(grad.shape[3], dw * (kw - 1) - pads[1][0], shape[3] + pads[1][0] - grad.shape[3])
    grad = grad.pad(((0, 0), (0, 0), rows[0], cols[0]))[:, :, rows[1], cols[1]]
    w = weight.reshape(groups, cout // groups, cin_group, kh, kw).transpose(1, 2)
    # copied (a few thousand values) so that the kernel reads the weight in the forward's layout
    w = w.reshape(groups * cin_group, cout // groups, kh, kw).flip((2, 3)).contiguous()
    return Conv2d.apply(grad, w, groups, (1, 1), dilation, ((0, 0), (0, 0)))


def _phase_gradient(grad: Tensor, weight: Tensor, shape: tuple, groups: int, stride, dilation, pads):
    """d(conv)/dx for a stride s > 1, without the zeros between the gradient's pixels (3/4 of the terms for
    s = 2): the input rows y = Y*s + r of one phase r get gradient rows Y + (r + pad - k*d)/s from the taps k
    that make it whole, k0, k0 + m, ... (m = s / gcd(s, d)): a stride-1 conv gradient with those taps, its
    padding (r + pad - k0*d)/s and dilation d / gcd(s, d). The phases interleave into the input's shape (a
    stride-2 conv, 64 -> 128 channels 32^2: the input gradient 19.6 -> 5 ms)."""
    batch, cin = shape[:2]
    rows = [
        _phase_taps(r, shape[2], stride[0], dilation[0], pads[0][0], weight.shape[2])
        for r in range(stride[0])
    ]
    cols = [
        _phase_taps(c, shape[3], stride[1], dilation[1], pads[1][0], weight.shape[3])
        for c in range(stride[1])
    ]
    height, width = -(-shape[2] // stride[0]), -(-shape[3] // stride[1])
    phases = []
    for r_size, r_first, r_step, r_pad, r_dilation in rows:
        row = []
        for c_size, c_first, c_step, c_pad, c_dilation in cols:
            if r_first is None or c_first is None or r_size == 0 or c_size == 0:  # no tap reaches it
                phase = Tensor.zeros(batch, cin, r_size, c_size, device=grad.device, dtype=grad.dtype)
            else:
                taps = weight[:, :, r_first::r_step, c_first::c_step]
                phase = _input_gradient(
                    grad,
                    taps,
                    (batch, cin, r_size, c_size),
                    groups,
                    (1, 1),
                    (r_dilation, c_dilation),
                    ((r_pad, 0), (c_pad, 0)),
                )
            row.append(phase.pad(((0, 0), (0, 0), (0, height - r_size), (0, width - c_size))))
        phases.append(Tensor.stack(*row, dim=-1).reshape(batch, cin, height, width * stride[1]))
    whole = Tensor.stack(*phases, dim=3).reshape(batch, cin, height * stride[0], width * stride[1])
    return whole[:, :, : shape[2], : shape[3]]


def _phase_taps(phase: int, size: int, stride: int, dilation: int, pad: int, kernel: int) -> tuple:
    """For the input positions phase, phase + stride, ... < size: (how many, the first tap that reaches
    them or None, the step between such taps, the padding and the dilation of their stride-1 gradient)."""
    count = len(range(phase, size, stride))
    first = next((k for k in range(kernel) if (phase + pad - k * dilation) % stride == 0), None)
    step = stride // math.gcd(stride, dilation)
    offset = 0 if first is None else (phase + pad - first * dilation) // stride
    return count, first, step, offset, dilation // math.gcd(stride, dilation)


def _signed_pad(size: int, before: int, after: int) -> tuple[tuple[int, int], slice]:
    """A dim of `size` given `before` and `after` more elements (zeros), or fewer where negative: the
    zeros to pad with, and the slice of the padded dim to keep."""
    zeros = (max(before, 0), max(after, 0))
    return zeros, slice(max(-before, 0), zeros[0] + size + zeros[1] - max(-after, 0))


def _weight_gradient(grad: Tensor, x: Tensor, shape: tuple, groups: int, stride, dilation, pads):
    """d(conv)/dweight: each tap's window of the input times the upstream gradient, summed over the batch
    and the output pixels."""
    windows = _windows(x, shape, groups, stride, dilation, pads)
    batch, _, _, _, oh, ow, _, _ = windows.shape
    g = grad.reshape(batch, groups, shape[0] // groups, 1, oh, ow, 1, 1)
    return (windows * g).sum((0, 4, 5)).reshape(shape)
