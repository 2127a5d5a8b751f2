"""Replay (minigrad/replay.py): a composite op called again with a key seen before makes, from its template,
the graph the method itself would have built, node for node, with the same values and gradients."""

import numpy as np
import pytest

from minigrad import Tensor, dtypes, no_grad
from minigrad import replay
from minigrad.helpers import Context
from minigrad.library.conv import windowed_conv
from minigrad.ops import Op


def structure(out: Tensor) -> list:
    """The graph behind `out`: every node's op, arg, dtype, device, view, sources and base, by position; a
    node that existed before (an input's) by identity; requires_grad of the result."""
    nodes = []  # sources first, in the order of each node's sources (creation order would put a shared
    seen = set()  # constant that an earlier call made first)
    stack = [(out.lazydata, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            nodes.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((s, False) for s in reversed(node.srcs))
    place = {id(n): i for i, n in enumerate(nodes)}
    rows = [
        (n.op, n.arg, n.dtype, n.device, n.st, tuple(place[id(s)] for s in n.srcs), place.get(id(n.base)))
        if n.srcs or n.op is Op.CONST
        else id(n)
        for n in nodes
    ]
    return rows + [out._requires_grad]


def data(shape, device, seed=0, requires_grad=None, dtype=np.float32):
    values = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    t = Tensor(values, device=device).realize()
    if requires_grad is not None:
        t.requires_grad = requires_grad
    return t


CASES = {
    "sigmoid": lambda x, w, y: x.sigmoid(),
    "tanh": lambda x, w, y: x.tanh(),
    "erf": lambda x, w, y: x.erf(),
    "gelu": lambda x, w, y: x.gelu(),
    "gelu tanh": lambda x, w, y: x.gelu(approximate="tanh"),
    "silu": lambda x, w, y: x.silu(),
    "softmax": lambda x, w, y: x.softmax(),
    "softmax 0": lambda x, w, y: x.softmax(0),
    "log_softmax": lambda x, w, y: x.log_softmax(axis=1),
    "logsumexp": lambda x, w, y: x.logsumexp((0, 1), keepdim=True),
    "matmul": lambda x, w, y: x @ w,
    "matmul self": lambda x, w, y: x @ x,
    "linear": lambda x, w, y: x.linear(w, w[0]),
    "linear no bias": lambda x, w, y: x.linear(w),
    "layernorm": lambda x, w, y: x.layernorm(eps=1e-3),
    "batchnorm": lambda x, w, y: x.batchnorm(w[0], None, w[1], w[2], axis=1),
    "max_pool2d": lambda x, w, y: x.reshape(1, 1, 6, 6).max_pool2d(2),
    "avg_pool2d": lambda x, w, y: x.reshape(1, 2, 3, 6).avg_pool2d((2, 3), 1, padding=1),
    "windowed conv": lambda x, w, y: windowed_conv(
        x.reshape(2, 2, 3, 3), w.reshape(4, 1, 3, 3), 2, (1, 1), (1, 1), ((1, 1), (1, 1))
    ),
    "attention": lambda x, w, y: x.reshape(2, 3, 6).scaled_dot_product_attention(
        w.reshape(2, 3, 6), x.T.reshape(2, 3, 6), is_causal=True
    ),
    "x[idx]": lambda x, w, y: x[y],
    "x[idx, idx]": lambda x, w, y: x[y, y.flip(0)],
    "cross_entropy": lambda x, w, y: x.cross_entropy(y),
    "cross_entropy smoothed": lambda x, w, y: x.cross_entropy(y, label_smoothing=0.1, reduction="sum"),
}


NOT_FOR_INTEGERS = ("cross_entropy", "cross_entropy smoothed", "layernorm", "batchnorm", "attention")
LAYOUTS = [
    (name, layout)
    for name in CASES
    for layout in ["base", "transposed", "int", "requires_grad"]
    if layout != "int" or name not in NOT_FOR_INTEGERS
]


@pytest.mark.parametrize("name, layout", LAYOUTS)
def test_replay_builds_the_graph_the_method_builds(device, name, layout):
    f = CASES[name]
    x = data((6, 6), device, 0, requires_grad=layout == "requires_grad")
    w = data((6, 6), device, 1, requires_grad=True)
    y = Tensor(np.arange(6) % 4, device=device).realize()
    if layout == "transposed":
        x = x.T
    if layout == "int":
        x = Tensor((np.arange(36).reshape(6, 6) % 5) - 2, device=device)
        w = w.cast(dtypes.int64) if name.startswith(("matmul", "linear")) else w
    with Context(REPLAY=0):
        written = f(x, w, y)
    recorded, replayed = f(x, w, y), f(x, w, y)
    assert structure(replayed) == structure(written) == structure(recorded)
    assert replayed.lazydata is not recorded.lazydata
    np.testing.assert_array_equal(replayed.numpy(), written.numpy())
    leaves = [t for t in (x, w) if t.requires_grad and t.is_leaf]
    if written.requires_grad and leaves:
        grads = []
        for out in (written, replayed):
            out.sum().backward()
            grads.append([None if t.grad is None else t.grad.numpy() for t in leaves])
            for t in leaves:
                t.grad = None
        for a, b in zip(*grads):
            assert (a is None) == (b is None)
            np.testing.assert_array_equal(a, b)


def test_the_key_tells_apart_what_changes_the_graph(device):
    x, w = data((5, 5), device, 0), data((5, 5), device, 1, requires_grad=True)
    y = data((5, 5), device, 2)  # x's twin: only which node is which tells the calls below apart
    xt = x.T
    for f in [
        lambda: x @ x,
        lambda: x @ y,
        lambda: y @ x,
        lambda: x @ x,
        lambda: x @ x.T,  # two views of one buffer, then of two
        lambda: x @ y.T,
        lambda: x @ x.T,
        lambda: xt @ xt,  # one view twice, then two views alike of one buffer
        lambda: xt @ x.T,
        lambda: xt @ xt,
        lambda: x @ w,
        lambda: x @ x,  # the same node twice, then two nodes: the template must not merge them
        lambda: w @ x,
        lambda: x.T @ w,
        lambda: x[1:] @ w,
        lambda: x.softmax(),
        lambda: x.softmax(0),
        lambda: x.layernorm(eps=0.0),
        lambda: x.layernorm(eps=-0.0),
        lambda: x.reshape(25).softmax(),
        lambda: x.cast(dtypes.float64).softmax(),
    ]:
        with Context(REPLAY=0):
            written = f()
        assert structure(f()) == structure(written)  # recorded or replayed: after a similar call either way
        assert structure(f()) == structure(written)
    plain = lambda value: replay._plain(value, Tensor, [])  # noqa: E731
    assert plain(-0.0) != plain(0.0) and plain(True) != plain(1) and plain(np.float32(1)) is None


def test_no_grad_and_requires_grad_are_part_of_the_key(device):
    x = data((4, 4), device, 0, requires_grad=True)
    assert x.sigmoid().requires_grad and x.sigmoid().requires_grad
    with no_grad():
        first, second = x.sigmoid(), x.sigmoid()
        assert not first.requires_grad and not second.requires_grad
        with Context(REPLAY=0):
            written = x.sigmoid()
        assert structure(second) == structure(written)  # with _wrap's detach of x's first use
        assert any(row[0] is Op.DETACH for row in structure(second)[:-1] if isinstance(row, tuple))
    assert x.sigmoid().requires_grad
    assert not x.detach().sigmoid().requires_grad


def test_a_call_that_makes_buffers_or_returns_an_input_runs_every_time(device):
    noisy = replay.replayed(lambda self: self + Tensor.rand(*self.shape, device=self.device))
    same = replay.replayed(lambda self: self)
    x = data((64,), device)
    first, second = noisy(x).numpy(), noisy(x).numpy()
    assert not np.array_equal(first, second)  # the random numbers are drawn again, not replayed
    assert same(x) is x and same(x) is x


def test_a_failing_call_is_not_recorded(device):
    x, w = data((3, 4), device), data((5, 2), device)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="do not match"):
            x @ w


def test_replay_off_runs_the_method():
    x = data((4, 4), None)
    with Context(REPLAY=0):
        x.softmax()
    key_count = len(replay._templates)
    with Context(REPLAY=0):
        x.tanh()
    assert len(replay._templates) == key_count


def test_threads_record_and_replay_at_once():
    """Threads building the same composites, each shape recorded by whichever thread comes first."""
    import threading

    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for i in range(40):
            a = rng.standard_normal((3 + i % 4, 5)).astype(np.float32)
            got = Tensor(a).log_softmax().numpy()
            want = a - a.max(1, keepdims=True)
            want = want - np.log(np.exp(want).sum(1, keepdims=True))
            if not np.allclose(got, want, atol=1e-5):
                errors.append(f"thread {seed} call {i}")

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_conv2d_whose_forward_replays_inside_its_function(device):
    """conv2d is a Function (its own derivative rules); the windowed product inside its forward replays."""
    x = data((2, 3, 7, 7), device, 0, requires_grad=True)
    w = data((4, 3, 3, 3), device, 1, requires_grad=True)
    results = []
    for settings in ({"REPLAY": 0}, {}, {}):
        with Context(**settings):
            out = x.conv2d(w, stride=2, padding=1)
        (out * out).sum().backward()
        results.append([out.numpy(), x.grad.numpy(), w.grad.numpy()])
        x.grad = w.grad = None
    for written, replayed in zip(results[0], results[2]):
        np.testing.assert_array_equal(written, replayed)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_steps_replay_to_the_same_parameters(device, name):
    """Adam's moments and step are replayed functions (nn/optim.py): three steps give the bits REPLAY=0 gives."""
    from minigrad.nn import optim

    results = []
    for settings in ({"REPLAY": 0}, {}):
        w = data((5, 4), device, 0, requires_grad=True)
        opt = getattr(optim, name)([w], lr=0.01, weight_decay=0.1)
        for step in range(3):
            with Context(**settings):
                loss = ((w * w).sum(1) * (step + 1)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        results.append(w.numpy())
    np.testing.assert_array_equal(*results)
