"""The MLP that bench.py, overhead.py and the cold-start row train, written once for minigrad and tinygrad.

In: layer sizes and a batch size. Out: initial parameters and data (numpy), the loss, one SGD update.
Imports neither torch nor tinygrad: the cold-start row runs it in a fresh process, whose time must be the
framework's own (importing torch alone takes about a second).
"""

import numpy as np


def param(fw, value: np.ndarray, dev: str):
    """A tensor that gets a gradient (tinygrad 0.14 gives one to every float tensor in the graph)."""
    t = fw.Tensor(value, device=dev)
    if hasattr(t, "requires_grad"):
        t.requires_grad = True
    return t


def mlp_init(sizes: list[int], batch: int):
    """(weights and biases, inputs, integer labels), the same in every run."""
    rng = np.random.default_rng(0)
    shapes = [s for a, b in zip(sizes, sizes[1:]) for s in ((a, b), (b,))]
    init = [(rng.standard_normal(s) * 0.05).astype(np.float32) for s in shapes]
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    return init, x, rng.integers(0, sizes[-1], batch).astype(np.int32)


def mlp_loss(x, y, params):
    """The same MLP and loss in minigrad and tinygrad (relu between linear layers)."""
    h = x
    for i in range(0, len(params), 2):
        h = h.linear(params[i], params[i + 1])
        h = h.relu() if i + 2 < len(params) else h
    return h.sparse_categorical_crossentropy(y)


def sgd(params) -> None:
    for p in params:
        p.assign(p.detach() - 0.01 * p.grad)
        p.grad = None
