"""minigrad: a small, lazy deep-learning compiler behind a PyTorch-like Tensor.

Read the stages in order: ops.py, lazy.py + shape/, gradient.py, engine/schedule.py, codegen/, runtime/.

    >>> from minigrad import Tensor
    >>> x = Tensor([[1.0, -2.0], [3.0, 4.0]]); w = Tensor([[1.0], [1.0]], requires_grad=True)
    >>> loss = (x @ w).relu().sum()     # a lazy graph: nothing has run
    >>> _ = loss.backward()             # more lazy nodes: the gradient (backward returns loss)
    >>> loss.item(), w.grad.numpy().ravel().tolist()   # asking for data compiles and runs kernels
    (7.0, [3.0, 4.0])
"""

from minigrad.device import Device
from minigrad.dtype import dtypes
from minigrad.function import Function, FunctionCtx
from minigrad.helpers import Context, GlobalCounters, getenv
from minigrad.jit import TinyJit, Variable
from minigrad.tensor import Tensor, no_grad
from minigrad import distributed  # noqa: E402 (data parallelism over MPI; mpi4py loads on init())
from minigrad import linalg  # noqa: E402 (torch.linalg's decompositions, composed of primitive ops)
from minigrad.nn.state import functional_call
from minigrad.transforms import (
    checkpoint,
    grad,
    grad_and_value,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    linearize,
    value_and_grad,
    vjp,
    vmap,
)

__version__ = "0.1.0"
__all__ = [
    "Tensor",
    "dtypes",
    "Device",
    "TinyJit",
    "Variable",
    "no_grad",
    "getenv",
    "Context",
    "GlobalCounters",
]
__all__ += ["Function", "FunctionCtx", "checkpoint"]  # user-defined derivatives (function.py, transforms.py)
__all__ += ["grad", "value_and_grad", "vjp", "jvp", "hvp", "jacrev", "jacfwd", "jacobian"]  # transforms.py
__all__ += ["hessian", "linearize", "vmap", "grad_and_value"]  # transforms.py, batching.py
__all__ += ["functional_call"]  # a model's tensors swapped for a call (nn/state.py), as torch.func's
