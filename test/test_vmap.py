"""vmap and the transforms built on it (jacrev, jacfwd, hessian, linearize), and has_aux, against torch.func."""

import numpy as np
import pytest
import torch

import minigrad
from minigrad import GlobalCounters, Tensor, nn
from minigrad.batching import BATCHING_RULES
from minigrad.ops import OP_NAMES, Op

TOL = dict(atol=1e-5, rtol=1e-4)
rng = np.random.default_rng(0)


def values(*shapes):
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def both(device, *arrays):
    return [Tensor(a, device=device) for a in arrays], [torch.tensor(a) for a in arrays]


def test_every_graph_op_has_a_batching_rule():
    kernel_only = {"LOAD", "STORE", "BUFFER", "CONST"}  # no sources: never batched
    assert {getattr(Op, n) for n in OP_NAMES if n not in kernel_only} <= BATCHING_RULES.keys()


@pytest.mark.parametrize(
    "in_axes,out_axes,b_shape",
    [
        (0, 0, (4, 3)),
        ((1, None), 0, (3, 4)),
        ((0, 0), 1, (4, 3)),
        ((-1, None), -1, (2,)),
        ((None, 0), 0, (5, 2)),
    ],
)
def test_in_axes_and_out_axes_as_torch(device, in_axes, out_axes, b_shape):
    a, b = values((4, 3), b_shape)
    (ma, mb), (ta, tb) = both(device, a, b)

    def f(x, y):
        return (x * 2 + y.sum()).exp() if x.shape == y.shape else x.sin() * y.sum()

    want = torch.vmap(f, in_dims=in_axes, out_dims=out_axes)(ta, tb)
    np.testing.assert_allclose(minigrad.vmap(f, in_axes, out_axes)(ma, mb).numpy(), want.numpy(), **TOL)
    got = minigrad.vmap(f, in_dims=in_axes, out_dims=out_axes)(ma, mb)  # torch.func's spelling
    np.testing.assert_allclose(got.numpy(), want.numpy(), **TOL)


def test_matmul_softmax_reductions_reshapes_and_indexing(device):
    x, w, idx = values((5, 6), (6, 4), ())[0], values((6, 4))[0], rng.integers(0, 4, (5, 3))
    (mx, mw), (tx, tw) = both(device, x, w)
    mi, ti = Tensor(idx, device=device), torch.tensor(idx)

    def f(row, weights, index):
        h = (row @ weights).softmax(-1)
        return h[index] * h.max() + row.reshape(2, 3).T.sum(0).mean() - h.flip(0).cumsum(0)[index]

    got = minigrad.vmap(f, in_axes=(0, None, 0))(mx, mw, mi)
    want = torch.vmap(f, in_dims=(0, None, 0))(tx, tw, ti)
    np.testing.assert_allclose(got.numpy(), want.numpy(), **TOL)


def test_tuple_outputs_and_unbatched_output_broadcast(device):
    x = values((3, 2))[0]
    (mx,), (tx,) = both(device, x)
    got = minigrad.vmap(lambda r: (r.relu(), Tensor.ones(2, device=device)))(mx)
    assert isinstance(got, tuple) and got[1].shape == (3, 2)
    want = torch.vmap(lambda r: (r.relu(), torch.ones(2)))(tx)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), **TOL)


def test_nested_vmap(device):
    a, b = values((2, 3, 4), (3, 4))
    (ma, mb), (ta, tb) = both(device, a, b)
    inner = lambda x, y: (x * y).sum() + x  # noqa: E731
    got = minigrad.vmap(minigrad.vmap(inner), in_axes=(0, None), out_axes=1)(ma, mb)
    want = torch.vmap(torch.vmap(inner), in_dims=(0, None), out_dims=1)(ta, tb)
    np.testing.assert_allclose(got.numpy(), want.numpy(), **TOL)


def test_per_example_gradients_vmap_of_grad(device):
    w, x, y = values((3, 4), (6, 3), (6, 4))
    (mw, mx, my), (tw, tx, ty) = both(device, w, x, y)
    loss = lambda weights, xi, yi: (((xi @ weights).tanh() - yi) ** 2).mean()  # noqa: E731
    got = minigrad.vmap(minigrad.grad(loss), in_axes=(None, 0, 0))(mw, mx, my)
    want = torch.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(tw, tx, ty)
    assert got.shape == (6, 3, 4)
    np.testing.assert_allclose(got.numpy(), want.numpy(), **TOL)


def test_grad_of_vmap(device):
    w, x = values((3, 4), (6, 3))
    (mw, mx), (tw, tx) = both(device, w, x)
    outer = lambda weights, xs: minigrad.vmap(lambda xi: (xi @ weights).sigmoid().sum())(xs).sum()  # noqa: E731
    t_outer = lambda weights, xs: torch.vmap(lambda xi: (xi @ weights).sigmoid().sum())(xs).sum()  # noqa: E731
    np.testing.assert_allclose(
        minigrad.grad(outer)(mw, mx).numpy(), torch.func.grad(t_outer)(tw, tx).numpy(), **TOL
    )
    mw.requires_grad = True  # and backward() through a vmapped graph to a closure's weights
    outer(mw, mx).backward()
    np.testing.assert_allclose(mw.grad.numpy(), torch.func.grad(t_outer)(tw, tx).numpy(), **TOL)


def test_nn_layers_under_vmap(device):
    Tensor.manual_seed(0)
    with minigrad.Context(DEVICE=device):
        linear, norm = nn.Linear(4, 5), nn.LayerNorm(5)
    x = values((3, 7, 4))[0]
    tl, tn = torch.nn.Linear(4, 5), torch.nn.LayerNorm(5)
    with torch.no_grad():
        tl.weight.copy_(torch.tensor(linear.weight.numpy()))
        tl.bias.copy_(torch.tensor(linear.bias.numpy()))
    got = minigrad.vmap(lambda b: norm(linear(b)).gelu())(Tensor(x, device=device))
    want = torch.vmap(lambda b: torch.nn.functional.gelu(tn(tl(b))))(torch.tensor(x))
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), **TOL)


def test_vmap_errors_are_clear():
    x = Tensor(values((3, 2))[0])
    with pytest.raises(RuntimeError, match="cannot branch on one example's values"):
        minigrad.vmap(lambda r: r * r.sum().item())(x)
    with pytest.raises(ValueError, match=r"different batch sizes \[3, 4\]"):
        minigrad.vmap(lambda a, b: a.sum() + b.sum())(x, Tensor.ones(4, 2))
    with pytest.raises(ValueError, match="no argument is batched"):
        minigrad.vmap(lambda a: a, in_axes=None)(x)
    with pytest.raises(ValueError, match="in_axes 2 is out of range"):
        minigrad.vmap(lambda a: a, in_axes=2)(x)
    with pytest.raises(ValueError, match="in_axes=.* has 1 entries for 2 arguments"):
        minigrad.vmap(lambda a, b: a, in_axes=(0,))(x, x)
    with pytest.raises(ValueError, match="out_axes None for an output that depends"):
        minigrad.vmap(lambda a: a, out_axes=None)(x)
    with pytest.raises(TypeError, match="must return a Tensor, or lists, tuples or dicts of Tensors"):
        minigrad.vmap(lambda a: (a, 1))(x)
    with pytest.raises(ValueError, match="does not match the structure"):
        minigrad.vmap(lambda p: p[0], in_axes=((0, 0, 0),))((x, x))
    with pytest.raises(NotImplementedError, match="randomness='different'"):
        minigrad.vmap(lambda a: a, randomness="different")
    with pytest.raises(ValueError, match="chunk_size"):
        minigrad.vmap(lambda a: a, chunk_size=0)


def test_pytree_arguments_and_results_kwargs_and_torch_func_options(device):
    """in_dims as a structure per argument, results as lists/dicts with out_dims structures, keyword
    arguments passed through unbatched, chunk_size and randomness="same" accepted: as torch.func.vmap."""
    (a, b), (ta, tb) = both(device, *values((3, 4), (4, 3)))

    def f(pair, scale=1.0):
        return {"sum": (pair[0] + pair[1]) * scale, "parts": [pair[0], pair[1].exp()]}

    kwargs = dict(in_dims=((0, 1),), out_dims={"sum": 1, "parts": [0, 1]})
    ours = minigrad.vmap(f, chunk_size=2, randomness="same", **kwargs)((a, b), scale=3.0)
    theirs = torch.func.vmap(f, chunk_size=2, randomness="same", **kwargs)((ta, tb), scale=3.0)
    assert set(ours) == {"sum", "parts"} and isinstance(ours["parts"], list)
    for got, want in zip([ours["sum"], *ours["parts"]], [theirs["sum"], *theirs["parts"]]):
        np.testing.assert_allclose(got.numpy(), want.numpy(), **TOL)


def test_per_example_gradients_of_a_model_through_functional_call(device):
    """torch.func's recipe: vmap(grad(loss of functional_call(model, params, x)), in_dims=(None, 0, 0))."""
    Tensor.manual_seed(0)
    with minigrad.Context(DEVICE=device):
        model = nn.Linear(4, 3)
    tmodel = torch.nn.Linear(4, 3)
    params = {name: t for name, t in nn.state.get_state_dict(model).items()}
    tparams = {name: torch.tensor(t.numpy()) for name, t in params.items()}
    (x, y), (tx, ty) = both(device, *values((5, 4), (5, 3)))

    def loss(p, xi, yi, m=model, call=minigrad.functional_call):
        return ((call(m, p, (xi.unsqueeze(0),)) - yi) ** 2).sum()

    def tloss(p, xi, yi):
        return ((torch.func.functional_call(tmodel, p, (xi.unsqueeze(0),)) - yi) ** 2).sum()

    ours = minigrad.vmap(minigrad.grad(loss), in_axes=(None, 0, 0))(params, x, y)
    theirs = torch.func.vmap(torch.func.grad(tloss), in_dims=(None, 0, 0))(tparams, tx, ty)
    for name in tparams:
        np.testing.assert_allclose(ours[name].numpy(), theirs[name].numpy(), **TOL)
    assert nn.state.get_state_dict(model)["weight"] is params["weight"]  # the model's own tensors are back
    g, value = minigrad.grad_and_value(loss)(params, x[0], y[0])
    tg, tvalue = torch.func.grad_and_value(tloss)(tparams, tx[0], ty[0])
    np.testing.assert_allclose(value.numpy(), tvalue.numpy(), **TOL)
    np.testing.assert_allclose(g["bias"].numpy(), tg["bias"].numpy(), **TOL)


# ---- Jacobians, Hessians, linearize, has_aux ---------------------------------------------------------


def test_jacrev_and_jacfwd_of_pytrees_as_torch_func(device):
    w, b, x = values((3, 4), (3,), (4,))
    (mw, mb, mx), (tw, tb, tx) = both(device, w, b, x)

    def f(params, v):
        h = params["w"] @ v + params["b"]
        return h.tanh(), (h * v[:3]).sum()

    for ours, theirs in ((minigrad.jacrev, torch.func.jacrev), (minigrad.jacfwd, torch.func.jacfwd)):
        got = ours(f, argnums=(0, 1))({"w": mw, "b": mb}, mx)
        want = theirs(f, argnums=(0, 1))({"w": tw, "b": tb}, tx)
        assert isinstance(got, tuple) and len(got) == 2  # one entry per output
        for g_out, w_out in zip(got, want):
            assert set(g_out[0]) == {"w", "b"}
            for key in ("w", "b"):
                assert g_out[0][key].shape == tuple(w_out[0][key].shape)
                np.testing.assert_allclose(g_out[0][key].numpy(), w_out[0][key].numpy(), **TOL)
            np.testing.assert_allclose(g_out[1].numpy(), w_out[1].numpy(), **TOL)


def test_jacobians_with_has_aux(device):
    (mx,), (tx,) = both(device, values((3,))[0])
    f = lambda v: ((v * v).sin(), v.sum())  # noqa: E731
    for ours, theirs in ((minigrad.jacrev, torch.func.jacrev), (minigrad.jacfwd, torch.func.jacfwd)):
        jac, aux = ours(f, has_aux=True)(mx)
        t_jac, t_aux = theirs(f, has_aux=True)(tx)
        np.testing.assert_allclose(jac.numpy(), t_jac.numpy(), **TOL)
        np.testing.assert_allclose(aux.numpy(), t_aux.numpy(), **TOL)


def test_hessian_single_and_tuple_argnums(device):
    x, y = values((3,), (2,))
    (mx, my), (tx, ty) = both(device, x, y)
    f = lambda a, b: (a.sin() * a).sum() * (b * b).sum() + (a[:2] * b).exp().sum()  # noqa: E731
    np.testing.assert_allclose(
        minigrad.hessian(f)(mx, my).numpy(), torch.func.hessian(f)(tx, ty).numpy(), **TOL
    )
    got, want = minigrad.hessian(f, argnums=(0, 1))(mx, my), torch.func.hessian(f, argnums=(0, 1))(tx, ty)
    for i in range(2):
        for j in range(2):
            assert got[i][j].shape == tuple(want[i][j].shape)
            np.testing.assert_allclose(got[i][j].numpy(), want[i][j].numpy(), **TOL)


def test_jacrev_of_256_to_256_is_a_handful_of_kernels(device):
    w, x = values((256, 256), (256,))
    w /= 16
    f = lambda v: (Tensor(w, device=device) @ v).tanh() * v.sin()  # noqa: E731
    GlobalCounters.kernel_count = 0
    jac = minigrad.jacrev(f)(Tensor(x, device=device)).numpy()
    assert GlobalCounters.kernel_count <= 12, GlobalCounters.kernel_count
    want = torch.func.jacrev(lambda v: (torch.tensor(w) @ v).tanh() * v.sin())(torch.tensor(x))
    np.testing.assert_allclose(jac, want.numpy(), **TOL)


def test_linearize_as_jax(device):
    x, t1, t2 = values((4,), (4,), (4,))
    (mx, m1, m2), (tx, tt1, tt2) = both(device, x, t1, t2)
    f = lambda v: (v.exp() * v.cos()).cumsum(0)  # noqa: E731
    out, jvp_fn = minigrad.linearize(f, mx)
    np.testing.assert_allclose(out.numpy(), f(tx).numpy(), **TOL)
    for mt, tt in ((m1, tt1), (m2, tt2)):  # one linearization, several tangents
        np.testing.assert_allclose(jvp_fn(mt).numpy(), torch.func.jvp(f, (tx,), (tt,))[1].numpy(), **TOL)


def test_grad_and_value_and_grad_with_aux(device):
    (mx,), (tx,) = both(device, values((3,))[0])
    f = lambda v: ((v**3).sum(), {"norm": v.square().sum()})  # noqa: E731
    g, aux = minigrad.grad(f, has_aux=True)(mx)
    t_g, t_aux = torch.func.grad(f, has_aux=True)(tx)
    np.testing.assert_allclose(g.numpy(), t_g.numpy(), **TOL)
    assert not aux["norm"].requires_grad
    assert minigrad.grad(lambda v: (v.sum(), ("any", 3)), has_aux=True)(mx)[1] == ("any", 3)  # as JAX
    np.testing.assert_allclose(aux["norm"].numpy(), t_aux["norm"].numpy(), **TOL)
    (value, aux), g = minigrad.value_and_grad(f, has_aux=True)(mx)  # JAX's ((value, aux), grad)
    np.testing.assert_allclose(value.numpy(), (tx**3).sum().numpy(), **TOL)
    np.testing.assert_allclose(g.numpy(), t_g.numpy(), **TOL)
    with pytest.raises(TypeError, match="must return a pair"):
        minigrad.grad(lambda v: v.sum(), has_aux=True)(mx)


def test_functions_with_their_own_rules_under_vmap(device):
    """conv2d is a Function (its own derivative rules) and checkpoint a FUNCTION node: their values batch as
    any graph, their rules run on one example's placeholders and are batched too."""
    x, w = values((4, 2, 5, 5), (3, 2, 3, 3))
    (mx, mw), (tx, tw) = both(device, x, w)
    loss = lambda weight, xi: xi.unsqueeze(0).conv2d(weight, padding=1).relu().sum()  # noqa: E731
    t_loss = lambda weight, xi: torch.nn.functional.conv2d(xi.unsqueeze(0), weight, padding=1).relu().sum()  # noqa: E731
    want = torch.vmap(torch.func.grad(t_loss), in_dims=(None, 0))(tw, tx)
    got = minigrad.vmap(minigrad.grad(loss), in_axes=(None, 0))(mw, mx)  # per-example gradients
    np.testing.assert_allclose(got.numpy(), want.numpy(), **TOL)
    summed = minigrad.grad(lambda weight: minigrad.vmap(lambda xi: loss(weight, xi))(mx).sum())(mw)
    np.testing.assert_allclose(summed.numpy(), want.sum(0).numpy(), atol=1e-4, rtol=1e-4)
    _, tangent = minigrad.jvp(
        lambda xs: minigrad.vmap(lambda xi: xi.unsqueeze(0).conv2d(mw, padding=1))(xs),
        (mx,),
        (Tensor.ones_like(mx),),
    )
    t_tangent = torch.func.jvp(
        lambda xs: torch.nn.functional.conv2d(xs, tw, padding=1), (tx,), (torch.ones_like(tx),)
    )[1]
    np.testing.assert_allclose(tangent.numpy().reshape(t_tangent.shape), t_tangent.numpy(), **TOL)
    f = minigrad.checkpoint(lambda a: (a.sin() * a).sum())
    got = minigrad.vmap(minigrad.grad(f))(mx[:, 0, 0])
    a = x[:, 0, 0]
    np.testing.assert_allclose(got.numpy(), np.sin(a) + a * np.cos(a), **TOL)


def test_a_function_with_two_outputs_under_vmap(device):
    from test.test_function import SinCos

    x = values((4, 3))[0]
    mx = Tensor(x, device=device)
    f = lambda r: (lambda s, c: (s * 2 + c * 3).sum())(*SinCos.apply(r))  # noqa: E731
    want = 2 * np.cos(x) - 3 * np.sin(x)
    np.testing.assert_allclose(minigrad.vmap(minigrad.grad(f))(mx).numpy(), want, **TOL)
    np.testing.assert_allclose(minigrad.grad(lambda xs: minigrad.vmap(f)(xs).sum())(mx).numpy(), want, **TOL)
    only_cos = minigrad.grad(lambda xs: minigrad.vmap(lambda r: SinCos.apply(r)[1].sum())(xs).sum())(mx)
    np.testing.assert_allclose(only_cos.numpy(), -np.sin(x), **TOL)  # the other output's gradient: zeros


def test_index_checks_run_on_the_batched_indices(device):
    """An index out of range inside vmap raises IndexError as outside (checked once f is batched: one
    example's indices do not exist while vmap traces), nested too; in range, the values are torch's."""
    x = Tensor(np.arange(12, dtype=np.float32).reshape(3, 4), device=device)
    ok = minigrad.vmap(lambda a, i: a[i])(x, Tensor(np.array([1, 0, 3]), device=device))
    want = torch.func.vmap(lambda a, i: a[i])(torch.arange(12.0).reshape(3, 4), torch.tensor([1, 0, 3]))
    np.testing.assert_equal(ok.numpy(), want.numpy())
    with pytest.raises(IndexError, match="4 is out of range"):
        minigrad.vmap(lambda a, i: a[i])(x, Tensor(np.array([1, 0, 4]), device=device))
    with pytest.raises(IndexError, match="9 is out of range"):
        minigrad.vmap(lambda a, i: a.gather(0, i))(x, Tensor(np.array([[1], [0], [9]]), device=device))
    with pytest.raises(IndexError, match="7 is out of range"):
        minigrad.vmap(minigrad.vmap(lambda a, i: a[i]))(
            x.reshape(3, 1, 4), Tensor([[1], [0], [7]], device=device)
        )
