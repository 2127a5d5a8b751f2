"""Every op of API.md, forward and backward, against torch 2.13 (CPU), on every available device."""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minigrad import Context, Device, Tensor, dtypes
from minigrad.engine.schedule import create_schedule
from minigrad.helpers import prod
from minigrad.ops import AstNode, Op
from test.helpers import check_op

# ---- elementwise ---------------------------------------------------------------------------------

UNARY = {
    "neg": (lambda x: -x, None, -2, 2),
    "exp": (torch.exp, Tensor.exp, -2, 2),
    "exp2": (torch.exp2, Tensor.exp2, -2, 2),
    "log": (torch.log, Tensor.log, 0.1, 3),
    "log2": (torch.log2, Tensor.log2, 0.1, 3),
    "sqrt": (torch.sqrt, Tensor.sqrt, 0.1, 3),
    "rsqrt": (torch.rsqrt, Tensor.rsqrt, 0.1, 3),
    "sin": (torch.sin, Tensor.sin, -3, 3),
    "cos": (torch.cos, Tensor.cos, -3, 3),
    "tan": (torch.tan, Tensor.tan, -1.2, 1.2),
    "reciprocal": (torch.reciprocal, Tensor.reciprocal, 0.2, 3),
    "square": (torch.square, Tensor.square, -2, 2),
    "abs": (torch.abs, Tensor.abs, -2, 2),
    "sign": (torch.sign, Tensor.sign, -2, 2),
    "relu": (torch.relu, Tensor.relu, -2, 2),
    "sigmoid": (torch.sigmoid, Tensor.sigmoid, -6, 6),
    "tanh": (torch.tanh, Tensor.tanh, -3, 3),
    "gelu": (F.gelu, Tensor.gelu, -3, 3),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: x.gelu(approximate="tanh"), -3, 3),
    "silu": (F.silu, Tensor.silu, -3, 3),
    "swish": (F.silu, Tensor.swish, -3, 3),
    "leaky_relu": (F.leaky_relu, Tensor.leaky_relu, -2, 2),
    "leaky_relu_0.2": (lambda x: F.leaky_relu(x, 0.2), lambda x: x.leaky_relu(0.2), -2, 2),
    "elu": (F.elu, Tensor.elu, -2, 2),
    "softplus": (F.softplus, Tensor.softplus, -5, 5),
    "relu6": (F.relu6, Tensor.relu6, -3, 9),
    "hardtanh": (F.hardtanh, Tensor.hardtanh, -2, 2),
    "trunc": (torch.trunc, Tensor.trunc, -5, 5),
    "floor": (torch.floor, Tensor.floor, -5, 5),
    "ceil": (torch.ceil, Tensor.ceil, -5, 5),
    "round": (torch.round, Tensor.round, -5, 5),
    "clip": (lambda x: x.clip(-0.5, 0.7), lambda x: x.clip(-0.5, 0.7), -2, 2),
    "clamp_min": (lambda x: x.clamp(min=0.1), lambda x: x.clamp(0.1), -2, 2),
    "pow_2": (lambda x: x**2, None, -2, 2),
    "pow_3": (lambda x: x**3, None, -2, 2),
    "pow_-1": (lambda x: x**-1, None, 0.5, 2),
    "pow_0.5": (lambda x: x**0.5, None, 0.1, 2),
    "pow_1.7": (lambda x: x**1.7, None, 0.1, 2),
    "rpow": (lambda x: 2.0**x, None, -2, 2),
    "scalar_ops": (lambda x: (3 - x) * 2 / 5 + 1, None, -2, 2),
    "rdiv": (lambda x: 1.5 / x, None, 0.5, 2),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary(device, name):
    torch_fn, minigrad_fn, low, high = UNARY[name]
    check_op(device, [(3, 4)], torch_fn, minigrad_fn, low=low, high=high)


@pytest.mark.parametrize("name", ["exp", "relu", "sigmoid", "abs", "sqrt"])
def test_unary_noncontiguous_and_odd_shapes(device, name):
    torch_fn, minigrad_fn, low, high = UNARY[name]
    check_op(device, [(5, 3)], torch_fn, minigrad_fn, low=low, high=high, transpose_inputs=True)
    for shape in [(), (1,), (1, 4), (0, 3)]:
        check_op(device, [shape], torch_fn, minigrad_fn, low=low, high=high)


BINARY = {
    "add": (torch.add, Tensor.add, -2, 2),
    "sub": (torch.sub, Tensor.sub, -2, 2),
    "mul": (torch.mul, Tensor.mul, -2, 2),
    "div": (torch.div, Tensor.div, 0.5, 2),
    "pow": (torch.pow, Tensor.pow, 0.5, 2),
    "maximum": (torch.maximum, Tensor.maximum, -2, 2),
    "minimum": (torch.minimum, Tensor.minimum, -2, 2),
    "lerp": (lambda a, b: torch.lerp(a, b, 0.3), lambda a, b: a.lerp(b, 0.3), -2, 2),
    "operators": (lambda a, b: (a + b) * (a - b) / (b * b + 1), None, -2, 2),
}


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize(
    "shapes", [[(3, 4), (3, 4)], [(3, 1), (1, 4)], [(2, 3, 4), (4,)], [(4,), ()], [(0, 4), (4,)]]
)
def test_binary_broadcasting(device, name, shapes):
    torch_fn, minigrad_fn, low, high = BINARY[name]
    check_op(device, shapes, torch_fn, minigrad_fn, low=low, high=high)


def test_binary_noncontiguous(device):
    check_op(device, [(4, 3), (4, 3)], lambda a, b: a * b + a, transpose_inputs=True)


def test_a_sum_of_terms_a_condition_per_row_selects(device):
    """cond[i, k] picks x[k, j] or 0 in a sum over k: in a CPU register tile the condition is one value for a
    row of columns computed as vectors (a `c ? x : 0` of vectors, which GCC's C once refused to compile);
    gradients of x too. Sizes up to a wide tile's, and cumsum's blocks (4096x512x8 failed)."""
    rng = np.random.default_rng(0)
    for n, k, m in ((64, 8, 64), (48, 16, 128)):
        cond, x = rng.random((n, k)) > 0.5, rng.standard_normal((k, m)).astype(np.float32)

        def torch_fn(c, v):
            return torch.where(c.reshape(n, k, 1), v.reshape(1, k, m), 0.0).sum(1)

        def minigrad_fn(c, v):
            return c.reshape(n, k, 1).where(v.reshape(1, k, m), 0.0).sum(1)

        check_op(device, None, torch_fn, minigrad_fn, values=[cond, x])
    values = rng.standard_normal((64, 512, 8)).astype(np.float32)
    check_op(device, None, lambda v: v.cumsum(-1), values=[values], atol=1e-5, rtol=1e-5)


def test_pow_negative_base_integer_exponent(device):
    base = np.array([-2.0, -1.5, 0.0, 1.5, 2.0], np.float32)
    exponent = np.array([2.0, 3.0, 2.0, 0.5, -1.0], np.float32)
    check_op(device, None, torch.pow, Tensor.pow, values=[base, exponent], forward_only=True)


def test_pow_gradients_at_zero_match_torch(device):
    """Through log2(0) these were NaN (x ** 1.5 at 0, a tensor exponent on a zero base), and 2 ** x had a
    gradient of 0 at x = 0 (an exponent of 0 picked a constant 1)."""
    x = np.array([0.0, 0.5, 2.0], np.float32)
    check_op(device, None, lambda t: t**1.5, values=[x])
    check_op(device, None, lambda t: 2.0**t, values=[x])
    check_op(device, None, lambda t: t.pow(t * 0 + 2), values=[x])
    base, exponent = np.array([0.0, 0.0, 2.0], np.float32), np.array([0.0, 2.0, 0.5], np.float32)
    check_op(device, None, torch.pow, Tensor.pow, values=[base, exponent])  # 0 < e < 1 at 0: torch inf, not 0


def test_std_of_a_constant_has_gradient_0(device):
    """sqrt's gradient at 0 is infinite: std of equal values gave NaN gradients (torch gives 0)."""
    check_op(
        device, None, lambda x: x.std(1), values=[np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]], np.float32)]
    )


def test_activation_gradients_at_their_kinks_match_torch(device):
    """elu has slope alpha at 0 (it got half); relu6 and hardtanh have 0 at their bounds (they got 1)."""
    x = np.array([-1.0, 0.0, 1.0, 6.0, 7.0], np.float32)
    check_op(device, None, F.elu, Tensor.elu, values=[x])
    check_op(device, None, F.relu6, Tensor.relu6, values=[x])
    check_op(device, None, F.hardtanh, Tensor.hardtanh, values=[x])


def test_binary_crossentropy_of_a_saturated_sigmoid_has_finite_gradients(device):
    """sigmoid(30) is 1.0 in float32: log(1 - p) was log(0), and its gradient NaN."""
    y = [1.0, 0.0, 1.0]
    check_op(
        device,
        None,
        lambda x: F.binary_cross_entropy(x.sigmoid(), torch.tensor(y)),
        lambda x: x.sigmoid().binary_crossentropy(Tensor(y, device=device)),
        values=[np.array([30.0, -30.0, 0.5], np.float32)],
    )


@pytest.mark.parametrize("op", ["lt", "le", "gt", "ge", "eq", "ne"])
def test_comparisons(device, op):
    a = np.array([[1, 2, 3], [3, 2, 1]], np.float32)
    b = np.array([2, 2, 2], np.float32)
    fn = {
        "lt": lambda x, y: x < y,
        "le": lambda x, y: x <= y,
        "gt": lambda x, y: x > y,
        "ge": lambda x, y: x >= y,
        "eq": lambda x, y: x == y,
        "ne": lambda x, y: x != y,
    }[op]
    out = fn(Tensor(a, device=device), Tensor(b, device=device))
    assert out.dtype == dtypes.bool
    np.testing.assert_equal(out.numpy(), fn(a, b))
    np.testing.assert_equal(fn(Tensor(a, device=device), 2).numpy(), fn(a, 2))


def test_where(device):
    cond = np.array([[True, False, True], [False, False, True]])
    check_op(
        device,
        None,
        lambda c, x, y: torch.where(c, x, y),
        lambda c, x, y: c.where(x, y),
        values=[cond, np.random.rand(2, 3).astype(np.float32), np.random.rand(1, 3).astype(np.float32)],
    )
    np.testing.assert_equal(Tensor(cond, device=device).where(1.0, 2.5).numpy(), np.where(cond, 1.0, 2.5))


def test_logical_and_predicates(device):
    x = np.array([1.0, -np.inf, np.nan, 0.0, np.inf], np.float32)
    t = Tensor(x, device=device)
    np.testing.assert_equal(t.isnan().numpy(), np.isnan(x))
    np.testing.assert_equal(t.isinf().numpy(), np.isinf(x))
    b = Tensor([True, False, True], device=device)
    np.testing.assert_equal(b.logical_not().numpy(), [False, True, False])
    np.testing.assert_equal((b & Tensor([True, True, False], device=device)).numpy(), [True, False, False])
    np.testing.assert_equal((b | Tensor([False, True, False], device=device)).numpy(), [True, True, True])


def test_integer_arithmetic(device):
    a = np.array([7, -7, 7, -7, 0, 5], np.int32)
    b = np.array([2, 2, -2, -2, 3, 5], np.int32)
    x, y = Tensor(a, device=device), Tensor(b, device=device)
    assert (x // y).dtype == dtypes.int32
    np.testing.assert_equal((x // y).numpy(), torch.floor_divide(torch.tensor(a), torch.tensor(b)).numpy())
    np.testing.assert_equal((x % y).numpy(), torch.remainder(torch.tensor(a), torch.tensor(b)).numpy())
    np.testing.assert_equal((x * y + x - 3).numpy(), a * b + a - 3)
    np.testing.assert_equal((x / y).numpy(), (torch.tensor(a) / torch.tensor(b)).numpy())
    np.testing.assert_equal(x.maximum(y).numpy(), np.maximum(a, b))
    np.testing.assert_equal((x * 2.5).numpy(), a * np.float32(2.5))
    assert (x * 2.5).dtype == dtypes.float32


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.int64])
def test_integer_division_by_0_and_by_minus_1_cannot_crash(device, dtype):
    """x86 traps (SIGFPE, the process dies) on an integer division by 0 and on MIN / -1: minigrad gives
    numpy's answers instead, 0 for a division by 0 and MIN // -1 == MIN (torch raises for the first)."""
    low = np.iinfo(dtype).min
    a = np.array([7, low, 5, low, 0], dtype)
    b = np.array([0, 0, 1, 1, 0], dtype) - np.array([0, 0, 0, 2, 0], dtype) * (low < 0)  # 0s and, signed, -1
    x, y = Tensor(a, device=device), Tensor(b, device=device)
    with np.errstate(divide="ignore", over="ignore"):
        np.testing.assert_equal((x // y).numpy(), a // b)
        np.testing.assert_equal((x % y).numpy(), a % b)


def test_long_sums_stay_exact_in_float32(device):
    """One float32 accumulator stops counting at 2^24 (a full sum of 20M ones gave 16,777,216): lanes or a
    work-group's threads keep each partial sum short."""
    np.testing.assert_allclose(Tensor.ones(20_000_000, device=device).sum().item(), 2e7, rtol=1e-5)


def test_long_sums_are_accurate_and_split_sum_0_turns_the_steps_off(device):
    """10^7 x 0.1 summed to 997,298 in one step (each lane added 0.1 to a large total, rounding every time);
    in steps of 1024 it is within 1e-5 of the exact sum (torch sums pairwise: 4e-7)."""
    values = np.full(10**7, 0.1, np.float32)
    x = Tensor(values, device=device)
    np.testing.assert_allclose(x.sum().item(), values.astype(np.float64).sum(), rtol=1e-5)
    np.testing.assert_allclose(x.mean().item(), 0.1, rtol=1e-5)
    with Context(SPLIT_SUM=0):
        # the one-step path still runs (its error grows as the lanes get fewer: 1.1 % with SSE's 4)
        np.testing.assert_allclose(x.sum().item(), 1e6, rtol=5e-2)


def test_long_sums_over_some_axes_match_torch_with_gradients(device):
    """A sum of 180,000 values near 100 in size that cancels to near 0 is off by float32 rounding (~1e-5)."""
    check_op(device, [(3, 70_001)], lambda x: x.sum(1))
    check_op(device, [(2, 300, 300)], lambda x: x.sum((0, 2), keepdim=True), atol=1e-4)
    check_op(device, [(70_000, 2)], lambda x: x.mean(0))
    check_op(device, [(300, 700)], lambda x: x.T.sum(), atol=1e-3)  # rows of 300 first (SPLIT_ROWS)


def test_8_bit_integer_sums_do_not_overflow(device):
    """torch sums int8 and uint8 into int64; minigrad into int32, as bool (they wrapped around at 8 bits)."""
    for dtype in (np.int8, np.uint8):
        np.testing.assert_equal(Tensor(np.full(3, 100, dtype), device=device).sum().numpy(), 300)


def test_bool_arithmetic_and_casts(device):
    b = Tensor([True, False, True], device=device)
    np.testing.assert_equal(b.sum().numpy(), 2)
    np.testing.assert_equal((b + 1).numpy(), [2, 1, 2])
    np.testing.assert_equal(Tensor([1.7, -1.7, 0.0], device=device).int().numpy(), [1, -1, 0])
    np.testing.assert_equal(Tensor([1.7, 0.0], device=device).bool().numpy(), [True, False])
    np.testing.assert_equal(Tensor([1, 2], device=device).float().numpy(), [1.0, 2.0])


# ---- reductions ----------------------------------------------------------------------------------


def _torch_prod(x, axis, keepdim):
    """torch.prod takes one dim at a time."""
    if axis is None:
        return x.prod()
    for a in sorted(axis if isinstance(axis, tuple) else (axis,), reverse=True):
        x = x.prod(a, keepdim=keepdim)
    return x


REDUCTIONS = {
    "sum": (
        lambda x, a, k: x.sum(a, keepdim=k) if a is not None else x.sum(),
        lambda x, a, k: x.sum(a, keepdim=k),
    ),
    "mean": (
        lambda x, a, k: x.mean(a, keepdim=k) if a is not None else x.mean(),
        lambda x, a, k: x.mean(a, keepdim=k),
    ),
    "max": (
        lambda x, a, k: x.amax(a, keepdim=k) if a is not None else x.max(),
        lambda x, a, k: x.max(a, keepdim=k),
    ),
    "min": (
        lambda x, a, k: x.amin(a, keepdim=k) if a is not None else x.min(),
        lambda x, a, k: x.min(a, keepdim=k),
    ),
    "prod": (lambda x, a, k: _torch_prod(x, a, k), lambda x, a, k: x.prod(a, keepdim=k)),
    "std": (
        lambda x, a, k: x.std(a, keepdim=k) if a is not None else x.std(),
        lambda x, a, k: x.std(a, keepdim=k),
    ),
    "var": (
        lambda x, a, k: x.var(a, keepdim=k) if a is not None else x.var(),
        lambda x, a, k: x.var(a, keepdim=k),
    ),
    "var0": (
        lambda x, a, k: x.var(a, keepdim=k, correction=0) if a is not None else x.var(correction=0),
        lambda x, a, k: x.var(a, keepdim=k, correction=0),
    ),
    "logsumexp": (
        lambda x, a, k: torch.logsumexp(x, a if a is not None else tuple(range(x.ndim)), keepdim=k),
        lambda x, a, k: x.logsumexp(a, keepdim=k),
    ),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("axis,keepdim", [(None, False), (1, False), (-1, True), ((0, 2), False), (0, True)])
def test_reductions(device, name, axis, keepdim):
    torch_fn, minigrad_fn = REDUCTIONS[name]
    check_op(
        device,
        [(3, 4, 5)],
        lambda x: torch_fn(x, axis, keepdim),
        lambda x: minigrad_fn(x, axis, keepdim),
        low=0.5 if name == "prod" else -2,
        high=1.5 if name == "prod" else 2,
    )


def test_reductions_noncontiguous_and_size_one(device):
    check_op(device, [(4, 3)], lambda x: x.sum(0), lambda x: x.sum(0), transpose_inputs=True)
    check_op(device, [(1, 4)], lambda x: x.amax(0), lambda x: x.max(0))
    check_op(device, [(3, 1)], lambda x: x.mean(1, keepdim=True), lambda x: x.mean(1, keepdim=True))


@pytest.mark.parametrize(
    "name", ["sum", "mean", "max", "min", "prod", "softmax", "log_softmax", "logsumexp", "cumsum", "argmax"]
)
def test_reductions_over_the_one_axis_of_a_0d_tensor(device, name):
    """torch accepts dim 0 and -1 on a 0-d tensor (they raised IndexError)."""
    torch_name = {"max": "amax", "min": "amin"}.get(name, name)
    for axis in (0, -1):
        check_op(
            device,
            [()],
            lambda x: getattr(x, torch_name)(axis),
            lambda x: getattr(x, name)(axis),
            forward_only=name == "argmax",
        )


def test_argmax_of_nan_is_the_first_nan(device):
    x = Tensor([[1.0, math.nan, 3.0, math.nan], [4.0, 2.0, 1.0, 0.0]], device=device)
    np.testing.assert_equal(x.argmax(1).numpy(), [1, 0])  # row 0 gave 4: past the end
    np.testing.assert_equal(x.argmax().numpy(), 1)
    np.testing.assert_equal((-x).argmin(1).numpy(), [1, 0])


def test_reductions_of_empty(device):
    x = Tensor.ones(0, 3, device=device)
    np.testing.assert_equal(x.sum(0).numpy(), np.zeros(3))
    assert x.sum(1).shape == (0,)
    np.testing.assert_equal(Tensor.ones(0, device=device).prod().numpy(), 1.0)
    with pytest.raises(ValueError, match="empty dim"):
        Tensor.ones(0, 3, device=device).max(0)  # gave -inf; torch and numpy raise
    assert not Tensor.ones(0, device=device).any().item() and Tensor.ones(0, device=device).all().item()
    assert Tensor.ones(3, 0, device=device).softmax(-1).shape == (3, 0)
    np.testing.assert_equal(Tensor.ones(3, 0, device=device).logsumexp(-1).numpy(), [-np.inf] * 3)
    empty = Tensor(np.zeros((3, 0), np.float32), device=device)  # a buffer: it read garbage past its end
    np.testing.assert_equal(empty.prod().numpy(), 1.0)
    np.testing.assert_equal(empty.reshape(0).pad(((0, 1),), value=2).reshape(()).numpy(), 2.0)


def test_integer_reductions(device):
    a = np.array([[3, -1, 4], [1, 5, -9]], np.int32)
    t = Tensor(a, device=device)
    np.testing.assert_equal(t.sum(1).numpy(), a.sum(1))
    np.testing.assert_equal(t.max(0).numpy(), a.max(0))
    np.testing.assert_equal(t.min().numpy(), a.min())
    b = Tensor([[True, False], [True, True]], device=device)
    np.testing.assert_equal(b.any(1).numpy(), [True, True])
    np.testing.assert_equal(b.all(1).numpy(), [False, True])
    np.testing.assert_equal(b.all().numpy(), False)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_argmax_argmin(device, axis):
    a = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    a[1, 2] = a[1, 3] = a.max() + 1  # a tie: the first index wins
    t = Tensor(a, device=device)
    expected_max = torch.tensor(a).argmax() if axis is None else torch.tensor(a).argmax(axis)
    expected_min = torch.tensor(a).argmin() if axis is None else torch.tensor(a).argmin(axis)
    np.testing.assert_equal(t.argmax(axis).numpy(), expected_max.numpy())
    np.testing.assert_equal(t.argmin(axis).numpy(), expected_min.numpy())
    np.testing.assert_equal(
        t.argmax(1, keepdim=True).numpy(), torch.tensor(a).argmax(1, keepdim=True).numpy()
    )


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax(device, fn, axis):
    check_op(device, [(3, 4, 5)], lambda x: getattr(torch, fn)(x, axis), lambda x: getattr(x, fn)(axis))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum(device, axis):
    check_op(device, [(3, 5)], lambda x: x.cumsum(axis), lambda x: x.cumsum(axis))


@pytest.mark.parametrize("name", ["cumsum", "cumprod", "cummax", "cummin"])
def test_long_running_reductions_go_in_blocks(device, name):
    """A running reduction longer than 64 goes in blocks of ~sqrt(n) (SPLIT_SCAN=0: one masked reduce of n^2
    terms): forward and backward against torch, lengths around the block edges; for ints the blocked
    result equals the one-reduce result exactly (products wrap alike)."""
    forward = {
        "cumsum": lambda x: x.cumsum(1),
        "cumprod": lambda x: (x * 0.01 + 1).cumprod(1),
        "cummax": lambda x: x.cummax(1)[0],
        "cummin": lambda x: x.cummin(1)[0],
    }[name]
    for n in (65, 100, 130):
        check_op(device, [(3, n)], forward, forward)
    ints = np.random.default_rng(0).integers(-9, 9, (4, 200))
    results = []
    for flag in (1, 0):
        with Context(SPLIT_SCAN=flag):
            out = getattr(Tensor(ints, device=device), name)(1)  # (ints: every order gives one result)
            results.append((out[0] if name in ("cummax", "cummin") else out).numpy())
    np.testing.assert_array_equal(results[0], results[1])


def test_stable_at_large_magnitude(device):
    """softmax, log_softmax, logsumexp, cross-entropies, softplus: finite for inputs of size 1e4."""
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], np.float32)
    labels = np.array([1, 2], np.int32)
    fns = {
        "softmax": (lambda t: t.softmax(-1), lambda t: t.softmax(-1)),
        "log_softmax": (lambda t: t.log_softmax(-1), lambda t: t.log_softmax(-1)),
        "logsumexp": (lambda t: t.logsumexp(-1), lambda t: torch.logsumexp(t, -1)),
        "softplus": (lambda t: t.softplus(), F.softplus),
        "sigmoid": (lambda t: t.sigmoid(), torch.sigmoid),
        "cross_entropy": (
            lambda t: t.cross_entropy(Tensor(labels, device=device)),
            lambda t: F.cross_entropy(t, torch.tensor(labels, dtype=torch.long)),
        ),
        "sparse_cce": (
            lambda t: t.sparse_categorical_crossentropy(Tensor(labels, device=device)),
            lambda t: F.cross_entropy(t, torch.tensor(labels, dtype=torch.long)),
        ),
        "bce_logits": (
            lambda t: t.binary_crossentropy_logits(Tensor(np.ones_like(x), device=device)),
            lambda t: F.binary_cross_entropy_with_logits(t, torch.ones_like(t)),
        ),
    }
    for name, (minigrad_fn, torch_fn) in fns.items():
        m = Tensor(x, device=device, requires_grad=True)
        out = minigrad_fn(m)
        out.sum().backward()
        t = torch.tensor(x, requires_grad=True)
        torch_out = torch_fn(t)
        torch_out.sum().backward()
        assert np.isfinite(out.numpy()).all() and np.isfinite(m.grad.numpy()).all(), name
        np.testing.assert_allclose(
            out.numpy(), torch_out.detach().numpy(), rtol=1e-4, atol=1e-3, err_msg=name
        )
        np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


def test_log_of_zero_is_minus_inf(device):
    assert Tensor([0.0], device=device).log().numpy()[0] == -np.inf


# ---- movement ------------------------------------------------------------------------------------

MOVEMENT = {
    "reshape": (lambda x: x.reshape(4, 6), lambda x: x.reshape(4, 6)),
    "reshape_minus1": (lambda x: x.reshape(-1, 3), lambda x: x.reshape(-1, 3)),
    "view": (lambda x: x.view(2, 12), lambda x: x.view(2, 12)),
    "permute": (lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    "transpose": (lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2)),
    "T": (lambda x: x.permute(2, 1, 0), lambda x: x.T),
    "expand": (lambda x: x[:, :1].expand(2, 5, 4), lambda x: x[:, :1].expand(2, 5, 4)),
    "expand_new_dims": (lambda x: x.expand(3, 2, 3, 4), lambda x: x.expand(3, 2, 3, 4)),
    "flatten": (lambda x: x.flatten(), lambda x: x.flatten()),
    "flatten_1": (lambda x: x.flatten(1), lambda x: x.flatten(1)),
    "unflatten": (lambda x: x.unflatten(2, (2, 2)), lambda x: x.unflatten(2, (2, 2))),
    "squeeze": (lambda x: x[:, :1].squeeze(1), lambda x: x[:, :1].squeeze(1)),
    "squeeze_all": (lambda x: x[:1, :1].squeeze(), lambda x: x[:1, :1].squeeze()),
    "unsqueeze": (lambda x: x.unsqueeze(1), lambda x: x.unsqueeze(1)),
    "unsqueeze_neg": (lambda x: x.unsqueeze(-1), lambda x: x.unsqueeze(-1)),
    "pad_flat": (lambda x: F.pad(x, (1, 2, 0, 1)), lambda x: x.pad((1, 2, 0, 1))),
    "pad_pairs": (lambda x: F.pad(x, (1, 0, 2, 2, 0, 1)), lambda x: x.pad(((0, 1), (2, 2), (1, 0)))),
    "pad_value": (lambda x: F.pad(x, (1, 1), value=2.5), lambda x: x.pad((1, 1), value=2.5)),
    "pad_negative": (lambda x: F.pad(x, (-1, 1)), lambda x: x.pad((-1, 1))),
    "shrink": (lambda x: x[:, 1:3, 1:], lambda x: x.shrink((None, (1, 3), (1, 4)))),
    "flip": (lambda x: x.flip(1), lambda x: x.flip(1)),
    "flip_many": (lambda x: x.flip((0, 2)), lambda x: x.flip((0, 2))),
    "repeat": (lambda x: x.repeat(2, 1, 3), lambda x: x.repeat(2, 1, 3)),
    "repeat_new": (lambda x: x.repeat(2, 1, 1, 2), lambda x: x.repeat(2, 1, 1, 2)),
    "pad_then_shrink": (lambda x: F.pad(x, (2, 2))[..., 1:5], lambda x: x.pad((2, 2))[..., 1:5]),
    "reshape_after_permute": (
        lambda x: x.permute(1, 0, 2).reshape(3, 8),
        lambda x: x.permute(1, 0, 2).reshape(3, 8),
    ),
    "reshape_of_padded": (lambda x: F.pad(x, (1, 1)).reshape(-1), lambda x: x.pad((1, 1)).reshape(-1)),
    "expand_of_strided": (lambda x: x[:, ::2, :1].expand(2, 2, 5), lambda x: x[:, ::2, :1].expand(2, 2, 5)),
}


@pytest.mark.parametrize("name", MOVEMENT)
def test_movement(device, name):
    torch_fn, minigrad_fn = MOVEMENT[name]
    check_op(device, [(2, 3, 4)], torch_fn, minigrad_fn)


def test_cat_stack_split_chunk(device):
    check_op(
        device,
        [(2, 3), (2, 1), (2, 2)],
        lambda a, b, c: torch.cat([a, b, c], 1),
        lambda a, b, c: a.cat(b, c, dim=1),
    )
    check_op(device, [(2, 3), (1, 3)], lambda a, b: torch.cat([a, b]), lambda a, b: a.cat(b))
    check_op(
        device, [(2, 3), (2, 3)], lambda a, b: torch.stack([a, b], 1), lambda a, b: Tensor.stack(a, b, dim=1)
    )
    check_op(
        device,
        [(2, 3), (2, 3)],
        lambda a, b: torch.stack([a, b], -1),
        lambda a, b: Tensor.stack([a, b], dim=-1),
    )
    check_op(
        device,
        [(5, 2)],
        lambda x: torch.split(x, 2)[2] * 2 + torch.split(x, 2)[0][:1],
        lambda x: x.split(2)[2] * 2 + x.split(2)[0][:1],
    )
    check_op(device, [(5, 2)], lambda x: torch.split(x, [1, 4])[1], lambda x: x.split([1, 4])[1])
    check_op(device, [(7, 2)], lambda x: torch.chunk(x, 3)[1], lambda x: x.chunk(3)[1])
    assert [t.shape for t in Tensor.ones(7, 2, device=device).chunk(3)] == [(3, 2), (3, 2), (1, 2)]


INDEXING = {
    "int": lambda x: x[1],
    "negative_int": lambda x: x[-1, -2],
    "slice": lambda x: x[1:, :2],
    "step": lambda x: x[:, ::2, 1::3],
    "negative_step": lambda x: x[::-1, ::-2],
    "negative_step_bounds": lambda x: x[:, 4:0:-2],
    "none": lambda x: x[None, :, None, 1],
    "ellipsis": lambda x: x[..., 2],
    "ellipsis_middle": lambda x: x[1, ..., 1:],
    "empty_slice": lambda x: x[:, 3:1],
}


@pytest.mark.parametrize("name", INDEXING)
def test_basic_indexing(device, name):
    fn = INDEXING[name]
    x = np.arange(3 * 5 * 6, dtype=np.float32).reshape(3, 5, 6)
    expected = fn(x)
    np.testing.assert_equal(fn(Tensor(x, device=device)).numpy(), expected)
    if name not in ("negative_step", "negative_step_bounds"):  # torch has no negative steps
        check_op(device, [(3, 5, 6)], fn)


@pytest.mark.parametrize(
    "index",
    [
        ([2, 0, -1],),
        ([[1, 2], [0, 0]],),
        (slice(None), [4, 0]),
        ([1, 0], slice(None), [3, 2]),
        (slice(None), [2, 0], [1, 3]),
        (1, [0, 4]),
    ],
)
def test_tensor_indexing(device, index):
    x = np.arange(3 * 5 * 6, dtype=np.float32).reshape(3, 5, 6)
    minigrad_index = tuple(Tensor(np.array(i), device=device) if isinstance(i, list) else i for i in index)
    np.testing.assert_equal(Tensor(x, device=device)[minigrad_index].numpy(), x[index])
    torch_index = tuple(torch.tensor(i) if isinstance(i, list) else i for i in index)
    check_op(device, [(3, 5, 6)], lambda t: t[torch_index], lambda t: t[minigrad_index])


@pytest.mark.parametrize("index", [([-1, 5, 29999, 30000, -30001],), ([[7, 0], [2, -2]], [1, 0])])
def test_indexing_loops_over_the_picked_row_only(device, index):
    """x[idx] compares every row with idx and sums what matches. opt.pick runs that sum at the matching
    row only (60000 rows: 2.8 s -> 1.3 ms), out-of-range indices give zeros with BOUNDS_CHECK=0 (by
    default they raise), and PICK=0 agrees."""
    x = np.random.default_rng(0).standard_normal((30000, 2, 5)).astype(np.float32)
    mx = Tensor(x, device=device).realize()
    tensors = tuple(Tensor(np.array(i, dtype=np.int32), device=device) for i in index)
    if len(index) == 1:
        with pytest.raises(IndexError, match="30000 is out of range"):
            mx[tensors]
    with Context(BOUNDS_CHECK=0):
        picked = mx[tensors]
    kernels = [item for item in create_schedule([picked.lazydata]) if item.ast.op is Op.STORE]
    if len(index) == 1:  # out of range: zeros
        expected = np.stack([x[i] if -30000 <= i < 30000 else np.zeros_like(x[0]) for i in index[0]])
    else:
        expected = x[tuple(np.array(i) for i in index)]
    np.testing.assert_equal(picked.numpy(), expected)
    with Context(PICK=0, BOUNDS_CHECK=0):
        np.testing.assert_equal(mx[tensors].numpy(), expected)
    assert all(prod(item.outputs[0].shape) < 30000 for item in kernels)  # R6 stored no one-hot mask
    source = Device[device].get_program(kernels[-1].ast).source
    if source is not None and not isinstance(source, AstNode):  # NUMPY runs the AST itself
        assert re.search(r"if \(0 <= \w+ && \w+ < \d+\) \{ \w+ ridx\d+ = ", source), (
            source
        )  # at the index only


@pytest.mark.parametrize("index", [([-1, 5, 5, 29999, 30000, -30001],), ([[7, 0], [2, -2]], [1, 1])])
def test_indexing_gradient_adds_each_row_to_its_index_only(device, index):
    """The gradient of x[idx] compares every row with every index and sums what matches. opt.pick's scatter
    zeroes the rows and adds each index's row at its index only (CPU: 5000x64, 512 indices 35 -> 0.3 ms);
    repeated indices add up, out-of-range ones add nothing (BOUNDS_CHECK=0), and SCATTER=0 agrees."""
    x = np.random.default_rng(0).standard_normal((30000, 2, 5)).astype(np.float32)
    tensors = tuple(Tensor(np.array(i, dtype=np.int32), device=device) for i in index)
    upstream = np.random.default_rng(1).standard_normal(np.array(index[0]).shape + x.shape[len(index) :])

    def gradient():
        mx = Tensor(x, device=device, requires_grad=True)
        with Context(BOUNDS_CHECK=0):
            (mx[tensors] * Tensor(upstream.astype(np.float32), device=device)).sum().backward()
        return mx.grad

    grad = gradient()
    kernels = [item for item in create_schedule([grad.lazydata]) if item.ast.op is Op.STORE]
    tx = torch.tensor(x, requires_grad=True)
    valid = [i if -30000 <= i < 30000 else 0 for i in np.ravel(index[0])]  # torch refuses out of range
    keep = torch.tensor([-30000 <= i < 30000 for i in np.ravel(index[0])]).reshape(np.array(index[0]).shape)
    torch_index = (torch.tensor(valid).reshape(keep.shape), *(torch.tensor(i) for i in index[1:]))
    keep = keep.reshape(keep.shape + (1,) * (x.ndim - len(index)))
    (tx[torch_index] * torch.tensor(upstream, dtype=torch.float32) * keep).sum().backward()
    np.testing.assert_allclose(grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-6)
    with Context(SCATTER=0):
        np.testing.assert_equal(gradient().numpy(), grad.numpy())
    source = Device[device].get_program(kernels[-1].ast).source
    if device == "CPU":  # a loop from the index inside the loop over indices, after the zeroed rows
        assert re.search(
            r"= 0\.0f;(.|\n)*for \(\w+ ridx\d+(.|\n)*if \(0 <= \w+ && \w+ < \d+\) \{ \w+ gidx\d+ = ", source
        )


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather(device, dim):
    index = np.random.default_rng(2).integers(0, 3, size=(2, 3, 2))
    check_op(
        device,
        None,
        lambda x, i: x.gather(dim, i.long()),
        lambda x, i: x.gather(dim, i),
        values=[np.random.rand(3, 3, 3).astype(np.float32), index.astype(np.int32)],
    )


# ---- neural-network functions --------------------------------------------------------------------


@pytest.mark.parametrize(
    "shapes",
    [
        [(3, 4), (4, 5)],
        [(4,), (4, 5)],
        [(3, 4), (4,)],
        [(4,), (4,)],
        [(2, 3, 4), (4, 5)],
        [(2, 1, 3, 4), (3, 4, 2)],
        [(0, 4), (4, 2)],
    ],
)
def test_matmul(device, shapes):
    check_op(device, shapes, torch.matmul, Tensor.matmul)
    check_op(device, shapes, lambda a, b: a @ b, lambda a, b: a @ b)


def test_matmul_noncontiguous_and_dot(device):
    check_op(device, [(4, 3), (3, 5)], lambda a, b: a @ b, lambda a, b: a @ b, transpose_inputs=True)
    check_op(device, [(3, 4), (4, 2)], torch.matmul, Tensor.dot)


def test_linear(device):
    check_op(
        device, [(3, 4), (5, 4), (5,)], lambda x, w, b: F.linear(x, w, b), lambda x, w, b: x.linear(w.T, b)
    )
    check_op(device, [(3, 4), (5, 4)], lambda x, w: F.linear(x, w), lambda x, w: x.linear(w.T))


CONV_CASES = [
    dict(),
    dict(stride=2),
    dict(padding=1),
    dict(padding=(2, 1), stride=(1, 2)),
    dict(dilation=2),
    dict(groups=2),
    dict(stride=2, padding=1, dilation=2, groups=2),
]


@pytest.mark.parametrize("kw", CONV_CASES, ids=[str(c) for c in CONV_CASES])
def test_conv2d(device, kw):
    groups = kw.get("groups", 1)
    check_op(
        device,
        [(2, 4, 7, 8), (6, 4 // groups, 3, 3), (6,)],
        lambda x, w, b: F.conv2d(x, w, b, **kw),
        lambda x, w, b: x.conv2d(w, b, **kw),
        atol=1e-5,
        grad_atol=1e-3,
    )


@pytest.mark.parametrize(
    "kw", [dict(stride=2, padding=1), dict(stride=3, dilation=2), dict(stride=(2, 3), groups=2)]
)
def test_strided_conv_input_gradients_by_phases_match_the_zero_upsampled_one(kw):
    """A strided conv's input gradient, one stride-1 conv per phase of the input (CONV_GRAD_PHASES=0: one
    conv over the gradient with zeros between its pixels): the same values, and torch's."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 11, 10)).astype(np.float32)
    w = rng.standard_normal((6, 4 // kw.get("groups", 1), 3, 3)).astype(np.float32)
    grads = []
    for flag in (1, 0):
        with Context(CONV_GRAD_PHASES=flag):
            t = Tensor(x, device="CPU", requires_grad=True)
            (t.conv2d(Tensor(w, device="CPU"), **kw) ** 2).sum().backward()
            grads.append(t.grad.numpy())
    tx = torch.tensor(x, requires_grad=True)
    (F.conv2d(tx, torch.tensor(w), **kw) ** 2).sum().backward()
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(grads[0], tx.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_conv2d_with_left_right_top_bottom_padding(device):
    check_op(
        device,
        [(2, 3, 6, 7), (4, 3, 3, 2), (4,)],
        lambda x, w, b: F.conv2d(F.pad(x, (1, 2, 0, 1)), w, b, stride=(2, 1)),
        lambda x, w, b: x.conv2d(w, b, padding=(1, 2, 0, 1), stride=(2, 1)),
        atol=1e-5,
        grad_atol=1e-3,
    )


@pytest.mark.parametrize("kw", CONV_CASES[1:], ids=[str(c) for c in CONV_CASES[1:]])
def test_conv2d_gradients_by_rules_match_the_windowed_view(kw):
    """CONV_GRAD_AS_CONV=0 differentiates the windowed view: first and second derivatives and the
    forward-mode derivative agree with the rules' (library/conv.py)."""
    import minigrad

    groups = kw.get("groups", 1)
    rng = np.random.default_rng(0)
    x0, w0 = rng.standard_normal((2, 4, 7, 8)), rng.standard_normal((6, 4 // groups, 3, 3))
    tangent = rng.standard_normal(x0.shape)

    def derivatives():
        x, w = Tensor(x0, requires_grad=True), Tensor(w0, requires_grad=True)
        out = x.conv2d(w, **kw)
        gx, gw = (out * out).sum().gradient(x, w)
        (ggw,) = (gx * gx).sum().gradient(w)  # the input gradient, differentiated again
        _, jv = minigrad.jvp(lambda a: a.conv2d(Tensor(w0), **kw), (Tensor(x0),), (Tensor(tangent),))
        return [t.numpy() for t in (out, gx, gw, ggw, jv)]

    with_rules = derivatives()
    with Context(CONV_GRAD_AS_CONV=0):
        through_view = derivatives()
    for got, want in zip(with_rules, through_view):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_conv2d_without_bias_and_1x1(device):
    check_op(device, [(1, 3, 5, 5), (2, 3, 1, 1)], lambda x, w: F.conv2d(x, w), lambda x, w: x.conv2d(w))
    check_op(
        device,
        [(1, 2, 5, 4), (3, 2, 2, 3)],
        lambda x, w: F.conv2d(x, w, stride=(2, 1)),
        lambda x, w: x.conv2d(w, stride=(2, 1)),
        atol=1e-5,
    )


TRANSPOSED_CASES = [
    dict(),
    dict(stride=2),
    dict(stride=2, padding=1),
    dict(stride=2, output_padding=1),
    dict(dilation=2),
    dict(groups=2, stride=(2, 1)),
]


@pytest.mark.parametrize("kw", TRANSPOSED_CASES, ids=[str(c) for c in TRANSPOSED_CASES])
def test_conv_transpose2d(device, kw):
    groups = kw.get("groups", 1)
    check_op(
        device,
        [(2, 4, 5, 4), (4, 6 // groups, 3, 3), (6,)],
        lambda x, w, b: F.conv_transpose2d(x, w, b, **kw),
        lambda x, w, b: x.conv_transpose2d(w, b, **kw),
        atol=1e-5,
        grad_atol=1e-3,
    )


POOL_CASES = [
    dict(kernel_size=(2, 2)),
    dict(kernel_size=(3, 3), stride=2),
    dict(kernel_size=(2, 3), stride=(1, 2)),
    dict(kernel_size=(3, 3), stride=1, padding=1),
    dict(kernel_size=(2, 2), stride=1, dilation=2),
]


@pytest.mark.parametrize("kw", POOL_CASES, ids=[str(c) for c in POOL_CASES])
def test_max_pool2d(device, kw):
    check_op(device, [(2, 3, 7, 8)], lambda x: F.max_pool2d(x, **kw), lambda x: x.max_pool2d(**kw))


@pytest.mark.parametrize("kw", [c for c in POOL_CASES if "dilation" not in c], ids=lambda c: str(c))
def test_avg_pool2d(device, kw):
    check_op(device, [(2, 3, 7, 8)], lambda x: F.avg_pool2d(x, **kw), lambda x: x.avg_pool2d(**kw))


def test_dropout(device):
    x = Tensor.ones(100, 100, device=device)
    assert (x.dropout(0.5).numpy() == 1).all(), "dropout must be a no-op outside training"
    with Tensor.train():
        out = x.dropout(0.25).numpy()
    kept = out != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)


def test_layernorm_batchnorm(device):
    check_op(device, [(3, 8)], lambda x: F.layer_norm(x, (8,)), lambda x: x.layernorm())
    check_op(device, [(2, 3, 4)], lambda x: F.layer_norm(x, (3, 4)), lambda x: x.layernorm((-2, -1)))
    mean = np.array([0.5, -0.2, 0.1], np.float32)
    check_op(
        device,
        [(2, 3, 4, 4), (3,), (3,)],
        # invstd 0.5 = 1/sqrt(4 + eps) up to 1e-6 (torch 2.11, on the GPU machine, refuses eps=0)
        lambda x, w, b: F.batch_norm(x, torch.tensor(mean), torch.ones(3) * 4, w, b, eps=1e-6),
        lambda x, w, b: x.batchnorm(w, b, Tensor(mean, device=device), Tensor.full((3,), 0.5, device=device)),
    )


@pytest.mark.parametrize("classes", [3, 5, -1])  # -1: as many as the largest label needs, as torch
def test_one_hot(device, classes):
    labels = np.array([0, 2, 1, 2], np.int32)
    np.testing.assert_equal(
        Tensor(labels, device=device).one_hot(classes).numpy(),
        F.one_hot(torch.tensor(labels, dtype=torch.long), classes).numpy(),
    )
    assert Tensor(labels, device=device).one_hot().shape == (4, 3)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropies(device, smoothing):
    labels = np.array([0, 2, 1, 4], np.int32)
    target = torch.tensor(labels, dtype=torch.long)
    check_op(
        device,
        [(4, 5)],
        lambda x: F.cross_entropy(x, target, label_smoothing=smoothing),
        lambda x: x.cross_entropy(Tensor(labels, device=device), label_smoothing=smoothing),
    )
    check_op(
        device,
        [(4, 5)],
        lambda x: F.cross_entropy(x, target, ignore_index=1, label_smoothing=smoothing),
        lambda x: x.sparse_categorical_crossentropy(
            Tensor(labels, device=device), ignore_index=1, label_smoothing=smoothing
        ),
    )
    ignored = np.array([0, -100, 3, -100], np.int32)  # the default ignore_index: rows pick nothing, no mask
    for reduction in ("mean", "none", "sum"):
        check_op(
            device,
            [(4, 5)],
            lambda x: F.cross_entropy(x, torch.tensor(ignored, dtype=torch.long), reduction=reduction),
            lambda x: x.cross_entropy(Tensor(ignored, device=device), reduction=reduction),
        )
    probs = np.random.default_rng(3).dirichlet(np.ones(5), size=4).astype(np.float32)
    check_op(
        device,
        [(4, 5)],
        lambda x: F.cross_entropy(x, torch.tensor(probs)),
        lambda x: x.cross_entropy(Tensor(probs, device=device)),
    )
    spatial = np.random.default_rng(4).integers(0, 3, size=(2, 4, 4)).astype(np.int32)
    check_op(
        device,
        [(2, 3, 4, 4)],
        lambda x: F.cross_entropy(x, torch.tensor(spatial, dtype=torch.long), reduction="sum"),
        lambda x: x.cross_entropy(Tensor(spatial, device=device), reduction="sum"),
    )


def test_binary_cross_entropies(device):
    y = np.random.default_rng(5).integers(0, 2, size=(6,)).astype(np.float32)
    check_op(
        device,
        [(6,)],
        lambda p: F.binary_cross_entropy(p, torch.tensor(y)),
        lambda p: p.binary_crossentropy(Tensor(y, device=device)),
        low=0.05,
        high=0.95,
    )
    check_op(
        device,
        [(6,)],
        lambda x: F.binary_cross_entropy_with_logits(x, torch.tensor(y)),
        lambda x: x.binary_crossentropy_logits(Tensor(y, device=device)),
        low=-4,
        high=4,
    )


@pytest.mark.parametrize("causal", [False, True])
def test_scaled_dot_product_attention(device, causal):
    check_op(
        device,
        [(2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 4)],
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
        lambda q, k, v: q.scaled_dot_product_attention(k, v, is_causal=causal),
        atol=1e-5,
    )


def test_attention_masks(device):
    mask = np.random.default_rng(6).random((5, 6)) > 0.3
    mask[:, 0] = True
    check_op(
        device,
        [(2, 5, 4), (2, 6, 4), (2, 6, 4)],
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=torch.tensor(mask)),
        lambda q, k, v: q.scaled_dot_product_attention(k, v, attn_mask=Tensor(mask, device=device)),
        atol=1e-5,
    )
    additive = np.random.default_rng(7).standard_normal((5, 6)).astype(np.float32)
    check_op(
        device,
        [(2, 5, 4), (2, 6, 4), (2, 6, 4)],
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=torch.tensor(additive)),
        lambda q, k, v: q.scaled_dot_product_attention(k, v, attn_mask=Tensor(additive, device=device)),
        atol=1e-5,
    )


def test_tril_triu(device):
    check_op(device, [(4, 5)], lambda x: x.tril(), lambda x: x.tril())
    check_op(device, [(4, 5)], lambda x: x.triu(1), lambda x: x.triu(1))


def test_erf_matches_torch(device):
    check_op(device, [(50,)], torch.erf, Tensor.erf, low=-3, high=3, atol=1e-6, grad_atol=1e-5)


def test_constants_math(device):
    assert math.isclose(Tensor(2.0, device=device).exp().item(), math.e**2, rel_tol=1e-6)
