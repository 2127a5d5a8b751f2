"""Compare a minigrad function with its torch counterpart, forward and backward, on random inputs."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from minigrad import Tensor
from minigrad.codegen.target import Target

FORWARD_TOL = dict(atol=1e-6, rtol=1e-3)
GRAD_TOL = dict(atol=1e-4, rtol=1e-3)


def check_op(
    device: str,
    shapes: Sequence[tuple[int, ...]] | None,
    torch_fn: Callable,
    minigrad_fn: Callable | None = None,
    values: Sequence[np.ndarray] | None = None,
    low: float = -2.0,
    high: float = 2.0,
    forward_only: bool = False,
    seed: int = 0,
    atol: float = FORWARD_TOL["atol"],
    rtol: float = FORWARD_TOL["rtol"],
    grad_atol: float = GRAD_TOL["atol"],
    grad_rtol: float = GRAD_TOL["rtol"],
    transpose_inputs: bool = False,
) -> None:
    """Run both functions on the same inputs; compare outputs, then input gradients for a random cotangent.

    transpose_inputs: feed the functions non-contiguous (transposed) views of the inputs.
    """
    minigrad_fn = minigrad_fn or torch_fn
    rng = np.random.default_rng(seed)
    if values is None:
        shape_list = [tuple(reversed(s)) if transpose_inputs else s for s in shapes]
        values = [rng.uniform(low, high, size=s).astype(np.float32) for s in shape_list]
    grads_wanted = [v.dtype.kind == "f" and not forward_only for v in values]
    torch_inputs = [torch.tensor(v, requires_grad=g) for v, g in zip(values, grads_wanted)]
    minigrad_inputs = [Tensor(v, device=device, requires_grad=g) for v, g in zip(values, grads_wanted)]
    if transpose_inputs:
        torch_args = [t.permute(*reversed(range(t.ndim))) for t in torch_inputs]
        minigrad_args = [t.permute(*reversed(range(t.ndim))) for t in minigrad_inputs]
    else:
        torch_args, minigrad_args = torch_inputs, minigrad_inputs
    torch_out = torch_fn(*torch_args)
    minigrad_out = minigrad_fn(*minigrad_args)
    assert tuple(minigrad_out.shape) == tuple(torch_out.shape), (minigrad_out.shape, torch_out.shape)
    np.testing.assert_allclose(
        minigrad_out.numpy(), torch_out.detach().numpy(), atol=atol, rtol=rtol, err_msg="forward"
    )
    if not any(grads_wanted) or not torch_out.dtype.is_floating_point:
        return
    cotangent = rng.uniform(-1, 1, size=tuple(torch_out.shape)).astype(np.float32)
    (torch_out * torch.tensor(cotangent)).sum().backward()
    (minigrad_out * Tensor(cotangent, device=device)).sum().backward()
    for i, (t, m, wanted) in enumerate(zip(torch_inputs, minigrad_inputs, grads_wanted)):
        if not wanted:
            continue
        expected = t.grad.numpy() if t.grad is not None else np.zeros(t.shape, np.float32)
        assert m.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(
            m.grad.numpy(), expected, atol=grad_atol, rtol=grad_rtol, err_msg=f"gradient of input {i}"
        )


# What an H100's driver reports (cuDeviceGetAttribute): the target for CUDA kernels compiled without a GPU.
H100 = Target(
    gpu=True,
    float4=True,
    local_tiles=True,
    max_work_group=1024,
    compute_units=132,
    local_memory_bytes=48 << 10,
)
