"""conv2d's derivative rules: the input's gradient as one convolution of the upstream gradient.

In: the padded input, the weight and the conv's settings. Out: `Conv2d.apply(...)`, the convolution, whose
gradients come from the rules below rather than from differentiating the windowed view. Differentiated
through the view, the input's gradient is a product per tap (a 9x larger tensor for 3x3) folded back by two
reduce kernels over padded views; as a convolution of the upstream gradient (with stride-1 zeros between
its pixels when the stride is larger, and the weight flipped and transposed) it is one kernel like the
forward's. The weight's gradient is the one the view gives (windows times the upstream gradient, summed
over the batch and the output pixels). Both rules are Tensor ops on saved inputs, so they can be
differentiated again; `jvp` is the forward-mode rule (the conv is linear in each argument).
CONV_GRAD_AS_CONV=0: differentiate the windowed view instead.
"""

from __future__ import annotations

from minigrad.function import Function, FunctionCtx
from minigrad.tensor import Tensor


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
    reach less the input's padding, convolved with the weight flipped and its in and out channels swapped."""
    batch, cout, oh, ow = grad.shape
    _, cin_group, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
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
