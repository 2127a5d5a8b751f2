"""The schedule cache (engine/schedule.py): a graph seen again skips planning, and gives identical results."""

import numpy as np
import pytest

from minigrad import GlobalCounters, Tensor
from minigrad.helpers import Context


def sgd_steps(device, steps=3):
    rng = np.random.default_rng(0)
    params = [
        Tensor(rng.standard_normal(s).astype(np.float32) * 0.1, device=device, requires_grad=True).realize()
        for s in [(12, 8), (8,), (8, 3), (3,)]
    ]
    x = Tensor(rng.standard_normal((5, 12)).astype(np.float32), device=device).realize()
    y = Tensor(rng.integers(0, 3, 5).astype(np.int32), device=device).realize()
    losses = []
    for _ in range(steps):
        w1, b1, w2, b2 = params
        loss = x.linear(w1, b1).relu().linear(w2, b2).sparse_categorical_crossentropy(y)
        loss.backward()
        for p in params:
            p.assign(p.detach() - 0.1 * p.grad)
            p.grad = None
        Tensor.realize(loss, *params)
        losses.append(loss.numpy())
    return losses, [p.numpy() for p in params]


def test_training_steps_hit_the_cache_and_match_uncached(device):
    GlobalCounters.reset()
    cached_losses, cached_params = sgd_steps(device)
    assert GlobalCounters.schedule_cache_hits >= 2  # the second and third steps repeat the first one's graph
    with Context(SCHEDULE_CACHE=0):
        GlobalCounters.reset()
        losses, params = sgd_steps(device)
        assert GlobalCounters.schedule_cache_hits == 0
    for a, b in zip(cached_losses + cached_params, losses + params):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("values", [(2.0, 3.0), (0.0, -0.0), (float("nan"), float("nan")), (1, 1.5)])
def test_constants_are_part_of_the_signature(device, values):
    x = Tensor(np.ones(4, np.float32), device=device).realize()
    for value in values:
        got = (x * value).numpy()
        np.testing.assert_array_equal(got, np.ones(4, np.float32) * np.float32(value))
        assert np.signbit(got).tolist() == np.signbit(np.float32(value) * np.ones(4)).tolist()


def test_a_different_view_is_a_different_graph(device):
    a = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), device=device).realize()
    np.testing.assert_array_equal((a + 1).numpy(), np.arange(6).reshape(2, 3) + 1)
    np.testing.assert_array_equal((a.T + 1).numpy(), np.arange(6).reshape(2, 3).T + 1)
    np.testing.assert_array_equal((a.flip(1) + 1).numpy(), np.arange(6).reshape(2, 3)[:, ::-1] + 1)


def test_leaves_that_share_a_buffer_are_part_of_the_signature(device):
    """The planner (R2) and R7 look at which leaves hold one buffer: `a.assign(b.flip(0) + 1)` where b is a's
    buffer must not replay the plan made for a b of its own (it would overwrite what it still reads)."""
    from minigrad.lazy import LazyNode

    def fresh():
        return Tensor(np.arange(64, dtype=np.float32), device=device).realize()

    for shared in (False, True, False, True):
        a = fresh()
        buffer = a.lazydata.realized if shared else fresh().lazydata.realized
        b = Tensor(LazyNode.from_buffer(buffer, (64,), a.dtype, a.device))
        a.assign(b.flip(0) + 1).realize()
        np.testing.assert_array_equal(a.numpy(), np.arange(64)[::-1] + 1, err_msg=f"shared={shared}")
