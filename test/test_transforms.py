"""The functional transforms (transforms.py) and the forward rules (gradient.py), against torch.func and
float64 finite differences, on every device."""

import numpy as np
import pytest
import torch

import minigrad
from minigrad import Tensor, dtypes
from minigrad.gradient import FORWARD_RULES, REVERSE_RULES
from minigrad.lazy import toposort
from minigrad.ops import Op

TOL = dict(atol=1e-4, rtol=1e-3)


def _where(condition, a, b):
    return condition.where(a, b) if isinstance(condition, Tensor) else torch.where(condition, a, b)


# each case is written once and runs on minigrad and torch Tensors alike; together they reach every op
# that has a forward rule (test_cases_reach_every_primitive_op)
CASES = {
    "exp2_log2_sin": (lambda x: x.exp2() + (x * x + 1).log2() + x.sin(), [(6,)]),
    "cos": (lambda x: x.cos() * x, [(6,)]),
    "sqrt_recip_neg": (lambda x: (x * x + 1).sqrt() / (x + 3) - x + (x * x + 1).reciprocal(), [(6,)]),
    "max_where_cmp": (
        lambda x, y: x.maximum(y) + _where(x < y, x * 2, y) * (x == y).logical_not(),
        [(6,), (6,)],
    ),
    "reduce_sum_max": (lambda x: x.reshape(2, 3).sum(1) * x.reshape(2, 3).amax(1), [(6,)]),
    "movement": (
        lambda x: (x.reshape(3, 2).T[:, 1:].flip(0) * 3).reshape(1, 2, 2).expand(3, 2, 2).permute(2, 0, 1),
        [(6,)],
    ),
    "matmul_softmax": (lambda x, y: (x.reshape(2, 3) @ y.reshape(3, 2)).softmax(-1), [(6,), (6,)]),
}


def _pad(x):
    """PAD and CONTIGUOUS (torch has no lazy pad on a Tensor method; both libraries get their own)."""
    if isinstance(x, Tensor):
        return x.reshape(2, 3).pad(((1, 0), (0, 2))).contiguous() * 2
    return torch.nn.functional.pad(x.reshape(2, 3), (0, 2, 1, 0)).contiguous() * 2


CASES["pad_contiguous"] = (_pad, [(6,)])


def _inputs(shapes, device, seed=0):
    rng = np.random.default_rng(seed)
    values = [rng.uniform(-1.5, 1.5, size=s).astype(np.float32) for s in shapes]
    return values, [Tensor(v, device=device) for v in values], [torch.tensor(v) for v in values]


@pytest.fixture(autouse=True)
def _amax():
    Tensor.amax = lambda self, axis: self.max(axis)  # torch's name for a max over an axis (a max is a tuple)
    yield
    del Tensor.amax


@pytest.mark.parametrize("name", CASES)
def test_jvp_matches_torch_func(device, name):
    fn, shapes = CASES[name]
    _, primals, torch_primals = _inputs(shapes, device)
    _, tangents, torch_tangents = _inputs(shapes, device, seed=1)
    out, out_tangent = minigrad.jvp(fn, primals, tangents)
    expected_out, expected_tangent = torch.func.jvp(fn, tuple(torch_primals), tuple(torch_tangents))
    np.testing.assert_allclose(out.numpy(), expected_out.numpy(), **TOL)
    np.testing.assert_allclose(out_tangent.numpy(), expected_tangent.numpy(), **TOL)


@pytest.mark.parametrize("name", CASES)
def test_vjp_matches_torch_func(device, name):
    fn, shapes = CASES[name]
    _, primals, torch_primals = _inputs(shapes, device)
    out, vjp_fn = minigrad.vjp(fn, *primals)
    expected_out, torch_vjp_fn = torch.func.vjp(fn, *torch_primals)
    cotangent = np.random.default_rng(2).uniform(-1, 1, expected_out.shape).astype(np.float32)
    for got, want in zip(vjp_fn(Tensor(cotangent, device=device)), torch_vjp_fn(torch.tensor(cotangent))):
        np.testing.assert_allclose(got.numpy(), want.numpy(), **TOL)


def test_cases_reach_every_primitive_op(device):
    """Every op with a forward rule that can carry a tangent appears in some case's graph."""
    seen = set()
    for fn, shapes in CASES.values():
        _, primals, _ = _inputs(shapes, device)
        seen |= {node.op for node in toposort([fn(*primals).lazydata])}
    seen |= {Op.CAST, Op.COPY}  # test_jvp_through_a_cast_and_a_copy
    no_tangent = {Op.CMPLT, Op.CMPEQ, Op.MOD, Op.AND, Op.OR, Op.XOR, Op.ASSIGN, Op.DETACH, Op.FUNCTION}
    assert set(FORWARD_RULES) == set(REVERSE_RULES)
    assert set(FORWARD_RULES) - no_tangent <= seen, set(FORWARD_RULES) - no_tangent - seen


def test_jvp_through_a_cast_and_a_copy(device):
    other = "NUMPY" if device != "NUMPY" else "CPU"
    x, t = Tensor([1.0, 2.0], device=device), Tensor([0.5, -1.0], device=device)
    if minigrad.Device[device].supports_dtype(dtypes.float64):
        _, tangent = minigrad.jvp(lambda a: a.cast(dtypes.float64).square().cast(dtypes.float32), (x,), (t,))
        np.testing.assert_allclose(tangent.numpy(), [1.0, -4.0])
    _, tangent = minigrad.jvp(lambda a: (a.to(other) * 3).to(device), (x,), (t,))
    np.testing.assert_allclose(tangent.numpy(), [1.5, -3.0])


def test_jvp_runs_no_reverse_rule(device, monkeypatch):
    """Forward mode by construction: with every reverse rule broken, jvp still works."""

    def broken(node, grad, needed):
        raise AssertionError("jvp ran a reverse rule")

    monkeypatch.setattr("minigrad.gradient.REVERSE_RULES", {op: broken for op in REVERSE_RULES})
    fn, shapes = CASES["matmul_softmax"]
    _, primals, _ = _inputs(shapes, device)
    _, tangents, _ = _inputs(shapes, device, seed=1)
    assert np.isfinite(minigrad.jvp(fn, primals, tangents)[1].numpy()).all()


def _scalar_f(x, y):
    return ((x.reshape(2, 3) @ y.reshape(3, 2)).tanh().sum() + (x * y).exp().sum()) * 0.5


def test_hvp_matches_torch(device):
    _, primals, torch_primals = _inputs([(6,), (6,)], device)
    _, vectors, torch_vectors = _inputs([(6,), (6,)], device, seed=3)
    got = minigrad.hvp(_scalar_f, primals, vectors)
    grad_f = torch.func.grad(_scalar_f, argnums=(0, 1))
    _, want = torch.func.jvp(grad_f, tuple(torch_primals), tuple(torch_vectors))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), **TOL)


def test_hvp_never_forms_the_hessian(device):
    """hvp on a 4096-element input: a Hessian would be 4096^2; every node in the graph stays 1-D of 4096."""
    x = Tensor(np.linspace(-1, 1, 4096, dtype=np.float32), device=device)
    (product,) = minigrad.hvp(lambda a: (a.sin() * a).sum(), (x,), (Tensor.ones_like(x),))
    assert max(np.prod(n.shape) for n in toposort([product.lazydata])) == 4096
    xs = x.numpy()
    np.testing.assert_allclose(product.numpy(), 2 * np.cos(xs) - xs * np.sin(xs), **TOL)


@pytest.mark.parametrize("shape_in,shape_out", [((3,), (7,)), ((7,), (3,))])
def test_jacrev_and_jacfwd_match_torch(device, shape_in, shape_out):
    weights = np.random.default_rng(4).uniform(-1, 1, (shape_out[0], shape_in[0])).astype(np.float32)

    def f(x):
        w = Tensor(weights, device=device) if isinstance(x, Tensor) else torch.tensor(weights)
        return (w @ x).sin() * x.sum()

    _, (x,), (tx,) = _inputs([shape_in], device)
    want = torch.func.jacrev(f)(tx).numpy()
    assert want.shape == shape_out + shape_in
    for transform in (minigrad.jacrev, minigrad.jacfwd, minigrad.jacobian):
        np.testing.assert_allclose(transform(f)(x).numpy(), want, **TOL)
    np.testing.assert_allclose(torch.func.jacfwd(f)(tx).numpy(), want, **TOL)


def test_jacobian_picks_the_cheaper_mode(device, monkeypatch):
    calls = {"forward": 0, "reverse": 0}
    for mode, name in (("forward", "_forward"), ("reverse", "_reverse")):
        original = getattr(minigrad.transforms, name)

        def counted(*args, _original=original, _mode=mode):
            calls[_mode] += 1
            return _original(*args)

        monkeypatch.setattr(minigrad.transforms, name, counted)
    minigrad.jacobian(lambda x: x.reshape(2, 1) * Tensor.ones(2, 10, device=device))(
        Tensor([1.0, 2.0], device=device)
    )
    assert calls == {"forward": 1, "reverse": 0}  # tall: 2 inputs, 20 outputs (one walk, batched by vmap)
    minigrad.jacobian(lambda x: x.sum(0, keepdim=True))(Tensor(np.ones(10, np.float32), device=device))
    assert calls == {"forward": 1, "reverse": 1}  # wide: 10 inputs, 1 output


def test_grad_takes_argnums_and_structures(device):
    def loss(params, x, scale):
        return ((x @ params["w"] + params["b"][0]).relu().sum() + params["b"][1].square().sum()) * scale

    rng = np.random.default_rng(5)
    w, b0, b1, x = (rng.standard_normal(s).astype(np.float32) for s in [(3, 2), (2,), (2,), (4, 3)])
    params = {"w": Tensor(w, device=device), "b": [Tensor(b0, device=device), Tensor(b1, device=device)]}
    value, (g_params, g_x) = minigrad.value_and_grad(loss, argnums=(0, 1))(
        params, Tensor(x, device=device), 2.0
    )
    tp = {"w": torch.tensor(w), "b": [torch.tensor(b0), torch.tensor(b1)]}
    t_value, (t_params, t_x) = torch.func.grad_and_value(loss, argnums=(0, 1))(tp, torch.tensor(x), 2.0)[::-1]
    np.testing.assert_allclose(value.numpy(), t_value.numpy(), **TOL)
    np.testing.assert_allclose(g_params["w"].numpy(), t_params["w"].numpy(), **TOL)
    for g, t in zip(g_params["b"], t_params["b"]):
        np.testing.assert_allclose(g.numpy(), t.numpy(), **TOL)
    np.testing.assert_allclose(g_x.numpy(), t_x.numpy(), **TOL)
    single = minigrad.grad(loss, argnums=1)(params, Tensor(x, device=device), 2.0)
    np.testing.assert_allclose(single.numpy(), t_x.numpy(), **TOL)


def test_grad_of_grad_and_closures(device):
    x = Tensor([0.7], device=device)
    third = minigrad.grad(
        lambda a: minigrad.grad(lambda b: minigrad.grad(lambda c: c.sin().sum())(b).sum())(a).sum()
    )
    np.testing.assert_allclose(third(x).numpy(), -np.cos([0.7]), **TOL)
    # a closure over the same tensor is a constant, as in JAX: d/dy (x * y) with y = x is x, not 2x
    np.testing.assert_allclose(minigrad.grad(lambda y: (x * y).sum())(x).numpy(), [0.7], **TOL)
    with minigrad.no_grad():  # a transform asks for its gradients itself
        np.testing.assert_allclose(minigrad.grad(lambda y: (y * y).sum())(x).numpy(), [1.4], **TOL)


def test_transforms_match_float64_finite_differences(device):
    if not minigrad.Device[device].supports_dtype(dtypes.float64):
        pytest.skip(f"{device} has no float64")
    point = np.array([0.3, -0.7, 1.1, 0.5, -1.3, 0.9])
    direction = np.array([1.0, 0.5, -0.25, 2.0, 0.1, -1.0])

    def f(x):
        return (x.reshape(2, 3).softmax(-1) * x.reshape(2, 3).exp()).sum() + x.sin().prod()

    def value(p):
        return f(Tensor(p, device=device, dtype=dtypes.float64)).item()

    def grad_at(p):
        return minigrad.grad(f)(Tensor(p, device=device, dtype=dtypes.float64)).numpy()

    eps = 1e-6
    x, v = (
        Tensor(point, device=device, dtype=dtypes.float64),
        Tensor(direction, device=device, dtype=dtypes.float64),
    )
    numeric_jvp = (value(point + eps * direction) - value(point - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(minigrad.jvp(f, (x,), (v,))[1].item(), numeric_jvp, rtol=1e-6)
    numeric_hvp = (grad_at(point + eps * direction) - grad_at(point - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(minigrad.hvp(f, (x,), (v,))[0].numpy(), numeric_hvp, rtol=1e-5, atol=1e-7)


def test_transform_errors_name_the_problem(device):
    x = Tensor([1.0, 2.0], device=device)
    with pytest.raises(ValueError, match="one-element"):
        minigrad.grad(lambda a: a * 2)(x)
    with pytest.raises(TypeError, match="int64"):
        minigrad.grad(lambda a: a.sum())(Tensor([1, 2], device=device))
    with pytest.raises(ValueError, match="argnums"):
        minigrad.grad(lambda a: a.sum(), argnums=3)(x)
    with pytest.raises(ValueError, match="shape"):
        minigrad.jvp(lambda a: a * 2, (x,), (Tensor([1.0, 2.0, 3.0], device=device),))
    with pytest.raises(ValueError, match="cotangents"):
        minigrad.vjp(lambda a: a * 2, x)[1]((Tensor([1.0, 2.0], device=device), x))


# ---- derivatives at exactly 0, where piecewise formulas have their seams -------------------------------

AT_ZERO = {
    "erf": (lambda v: v.erf(), torch.erf),
    "softplus": (lambda v: v.softplus(), torch.nn.functional.softplus),
    "softplus beta 2": (lambda v: v.softplus(2.0), lambda t: torch.nn.functional.softplus(t, 2.0)),
    "logsigmoid": (lambda v: v.logsigmoid(), torch.nn.functional.logsigmoid),
    "gelu": (lambda v: v.gelu(), torch.nn.functional.gelu),
    "gelu tanh": (
        lambda v: v.gelu(approximate="tanh"),
        lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
    ),
    "bce with logits, y = 1": (
        lambda v: v.binary_crossentropy_logits(Tensor([1.0], device=v.device)),
        lambda t: torch.nn.functional.binary_cross_entropy_with_logits(t, torch.tensor([1.0])),
    ),
    "bce with logits, y = 0.3": (
        lambda v: v.binary_crossentropy_logits(Tensor([0.3], device=v.device)),
        lambda t: torch.nn.functional.binary_cross_entropy_with_logits(t, torch.tensor([0.3])),
    ),
    "atan": (lambda v: v.atan(), torch.atan),
    "expm1": (lambda v: v.expm1(), torch.expm1),
    "sinh": (lambda v: v.sinh(), torch.sinh),
    "tan": (lambda v: v.tan(), torch.tan),
    "elu alpha 2": (lambda v: v.elu(2.0), lambda t: torch.nn.functional.elu(t, 2.0)),
    "celu alpha 2": (lambda v: v.celu(2.0), lambda t: torch.nn.functional.celu(t, 2.0)),
    "selu": (lambda v: v.selu(), torch.nn.functional.selu),
    "smooth_l1": (
        lambda v: v.smooth_l1_loss(Tensor([0.0], device=v.device)),
        lambda t: torch.nn.functional.smooth_l1_loss(t, torch.tensor([0.0])),
    ),
    "huber": (
        lambda v: v.huber_loss(Tensor([0.0], device=v.device)),
        lambda t: torch.nn.functional.huber_loss(t, torch.tensor([0.0])),
    ),
    "mish": (lambda v: v.mish(), torch.nn.functional.mish),
    "silu": (lambda v: v.silu(), torch.nn.functional.silu),
}


@pytest.mark.parametrize("name", list(AT_ZERO))
def test_first_second_and_third_derivatives_at_zero_as_torch(device, name):
    f, tf = AT_ZERO[name]
    ours, theirs = [lambda v: f(v).sum()], [lambda t: tf(t).sum()]
    for _ in range(3):  # the derivatives (as sums, so each stays a scalar function of x)
        ours.append(lambda v, g=ours[-1]: minigrad.grad(g)(v).sum())
        theirs.append(lambda t, g=theirs[-1]: torch.func.grad(g)(t).sum())
    orders = 2 if name in ("huber", "smooth_l1") else 3  # piecewise quadratics: no third derivative
    x, tx = Tensor([0.0], device=device), torch.tensor([0.0])
    got = [ours[k](x) for k in range(1, orders + 1)]
    Tensor.realize(*got)  # one schedule: the graphs of all orders compile together
    for k, value in enumerate(got, start=1):
        want = theirs[k](tx).numpy()
        np.testing.assert_allclose(
            value.numpy(), want, atol=1e-5, rtol=1e-5, err_msg=f"{name}: derivative {k}"
        )


@pytest.mark.slow
def test_grad_through_a_2000_step_scalar_recurrence():
    """x = sin(x) * 0.9 + 0.1 (the audit's), and x = x + 0.001 sin(x), whose derivative stays near 1 over
    2,000 steps: one long chain each, which the scheduler cuts into kernels of at most KERNEL_OPS ops (R9)
    instead of one gigantic kernel."""

    def run(step, x):
        for _ in range(2000):
            x = step(x)
        return x

    contracting = lambda x: x.sin() * 0.9 + 0.1  # noqa: E731
    slow = lambda x: x + x.sin() * 0.001  # noqa: E731
    value, grad, derivative = np.float64(0.3), minigrad.grad(lambda x: run(slow, x).sum()), 1.0
    for _ in range(2000):
        derivative *= 1 + 0.001 * np.cos(value)
        value = value + 0.001 * np.sin(value)
    np.testing.assert_allclose(grad(Tensor([0.3])).numpy()[0], derivative, rtol=1e-4)
    reference = np.float64(0.3)
    for _ in range(2000):
        reference = np.sin(reference) * 0.9 + 0.1
    fixed_point = minigrad.value_and_grad(lambda x: run(contracting, x).sum())(Tensor([0.3]))[0]
    np.testing.assert_allclose(fixed_point.item(), reference, rtol=1e-5)


def test_vjp_and_jvp_with_aux_as_torch_func(device):
    x = np.linspace(-1, 1, 5, dtype=np.float32)

    def f(m):
        return lambda a: (m.sin(a) * 2, m.cos(a))

    out, vjp_fn, aux = minigrad.vjp(f(Tensor), Tensor(x, device=device), has_aux=True)
    tout, tvjp_fn, taux = torch.func.vjp(f(torch), torch.tensor(x), has_aux=True)
    cotangent = np.arange(5, dtype=np.float32)
    np.testing.assert_allclose(
        vjp_fn(Tensor(cotangent, device=device))[0].numpy(), tvjp_fn(torch.tensor(cotangent))[0], atol=1e-5
    )
    np.testing.assert_allclose(aux.numpy(), taux.numpy(), atol=1e-6)
    out, tangent, aux = minigrad.jvp(
        f(Tensor), (Tensor(x, device=device),), (Tensor(cotangent, device=device),), has_aux=True
    )
    tout, ttangent, taux = torch.func.jvp(
        f(torch), (torch.tensor(x),), (torch.tensor(cotangent),), has_aux=True
    )
    np.testing.assert_allclose(tangent.numpy(), ttangent.numpy(), atol=1e-6)
    np.testing.assert_allclose(aux.numpy(), taux.numpy(), atol=1e-6)


def _cube_function(base):
    """x^3 with its own rules, in torch 2's style (forward without ctx, then setup_context), which torch.func
    requires of an autograd.Function."""

    class Cube(base):
        generate_vmap_rule = True  # torch's; minigrad batches any Function

        @staticmethod
        def forward(x):
            return x * x * x

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])
            ctx.save_for_forward(inputs[0])  # torch's jvp reads only these

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 3 * x * x

        @staticmethod
        def jvp(ctx, tangent):
            (x,) = ctx.saved_tensors
            return tangent * 3 * x * x

    return Cube


def test_functions_in_setup_context_style_under_every_transform(device):
    Cube, TCube = _cube_function(minigrad.Function), _cube_function(torch.autograd.Function)
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    ours = [
        minigrad.grad(lambda a: Cube.apply(a).sum())(Tensor(x, device=device)),
        minigrad.vmap(Cube.apply)(Tensor(x, device=device)),
        minigrad.jvp(Cube.apply, (Tensor(x, device=device),), (Tensor(x, device=device),))[1],
        minigrad.hessian(lambda a: Cube.apply(a).sum())(Tensor(x[0], device=device)),
    ]
    theirs = [
        torch.func.grad(lambda a: TCube.apply(a).sum())(torch.tensor(x)),
        torch.func.vmap(TCube.apply)(torch.tensor(x)),
        torch.func.jvp(TCube.apply, (torch.tensor(x),), (torch.tensor(x),))[1],
        torch.func.hessian(lambda a: TCube.apply(a).sum())(torch.tensor(x[0])),
    ]
    for got, want in zip(ours, theirs):
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "name, point",
    [("atanh", 1.0), ("atanh", -1.0), ("asin", 1.0), ("acos", -1.0), ("sqrt", 0.0), ("log", 0.0)],
)
def test_derivatives_at_the_edge_of_the_domain_as_torch(device, name, point):
    """Infinite slopes where the function ends (atanh at +-1 gave NaN: 0 * inf inside its formula)."""
    ours = minigrad.grad(lambda x: getattr(x, name)())(Tensor(point, device=device)).item()
    theirs = torch.func.grad(getattr(torch, name))(torch.tensor(point)).item()
    assert ours == theirs, (ours, theirs)
    if name == "atanh":
        second = minigrad.grad(minigrad.grad(lambda x: x.atanh()))(Tensor(point, device=device)).item()
        assert second == torch.func.grad(torch.func.grad(torch.atanh))(torch.tensor(point)).item()
