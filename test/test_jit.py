"""TinyJit: replays equal eager results, never alias outputs, and handle changed or structured inputs."""

import numpy as np
import pytest

from minigrad import Context, Tensor, TinyJit, nn
from minigrad.engine import schedule
from minigrad.nn import optim
from minigrad.nn.state import get_parameters


def inputs(device, i, shape=(4, 5)):
    rng = np.random.default_rng(i)
    return Tensor(rng.standard_normal(shape).astype(np.float32), device=device)


def test_replay_equals_eager_over_5_calls(device):
    def f(a, b):
        return (a @ b.T).relu().sum(1) * 2 + a.max()

    jitted = TinyJit(f)
    for i in range(5):
        a, b = inputs(device, i), inputs(device, i + 100)
        np.testing.assert_allclose(jitted(a, b).numpy(), f(a, b).numpy(), rtol=1e-6)
    assert len(jitted.recordings) == 1


def test_replay_does_not_schedule_or_compile(device, monkeypatch):
    jitted = TinyJit(lambda a: (a * 3).exp().sum())
    for i in range(2):
        jitted(inputs(device, i))
    a = inputs(device, 7).realize()

    def no_scheduling(*args):
        raise AssertionError("a replay must not schedule")

    monkeypatch.setattr(schedule, "create_schedule", no_scheduling)
    monkeypatch.setattr("minigrad.engine.realize.create_schedule", no_scheduling)
    out = jitted(a)
    monkeypatch.undo()
    np.testing.assert_allclose(out.numpy(), (a * 3).exp().sum().numpy(), rtol=1e-6)


def test_outputs_of_two_calls_do_not_alias(device):
    jitted = TinyJit(lambda a: a + 1)
    outs = [jitted(Tensor.full((3,), float(i), device=device)) for i in range(4)]
    assert [o.tolist() for o in outs] == [[1.0] * 3, [2.0] * 3, [3.0] * 3, [4.0] * 3]


def test_structured_inputs_and_outputs(device):
    def f(pair, named, scale):
        return {"sum": pair[0] + pair[1] * named["w"], "scaled": [named["w"] * scale]}

    jitted = TinyJit(f)
    for i in range(4):
        pair, named = [inputs(device, i), inputs(device, i + 1)], {"w": inputs(device, i + 2)}
        got, want = jitted(pair, named, 2.0), f(pair, named, 2.0)
        np.testing.assert_allclose(got["sum"].numpy(), want["sum"].numpy(), rtol=1e-6)
        np.testing.assert_allclose(got["scaled"][0].numpy(), want["scaled"][0].numpy(), rtol=1e-6)
    out = jitted(pair, named, 3.0)  # a new non-Tensor argument is a new recording, not a stale replay
    np.testing.assert_allclose(out["scaled"][0].numpy(), named["w"].numpy() * 3, rtol=1e-6)


def test_new_shapes_and_dtypes_record_again(device):
    jitted = TinyJit(lambda a: a * 2)
    for i in range(3):
        jitted(inputs(device, i))
    wide = inputs(device, 9, shape=(2, 8))
    np.testing.assert_allclose(jitted(wide).numpy(), wide.numpy() * 2)
    ints = Tensor([1, 2, 3], device=device)
    assert jitted(ints).tolist() == [2, 4, 6]


def test_views_as_inputs(device):
    jitted = TinyJit(lambda a: a * 2)
    for i in range(4):
        a = inputs(device, i, shape=(6, 6))
        np.testing.assert_allclose(jitted(a[1:4, ::2].T).numpy(), a.numpy()[1:4, ::2].T * 2)


def test_unsupported_arguments_are_rejected_loudly():
    with pytest.raises(TypeError, match="neither a Tensor nor hashable"):
        TinyJit(lambda a: a)(np.ones(3))


def test_training_step_matches_eager(device):
    def make():
        Tensor.manual_seed(0)
        with Context(DEVICE=device):
            layers = [nn.Linear(6, 8), nn.Linear(8, 3)]
        return layers, optim.Adam(get_parameters(layers), lr=0.01)

    def step_fn(layers, opt):
        def step(x, y):
            opt.zero_grad()
            loss = layers[1](layers[0](x).relu()).sparse_categorical_crossentropy(y)
            loss.backward()
            opt.step()
            return loss

        return step

    (eager_layers, eager_opt), (jit_layers, jit_opt) = make(), make()
    eager, jitted = step_fn(eager_layers, eager_opt), TinyJit(step_fn(jit_layers, jit_opt))
    rng = np.random.default_rng(0)
    for i in range(5):
        eager_opt.lr = jit_opt.lr = 0.01 * 0.5**i  # a schedule: replays read the new learning rate
        x = Tensor(rng.standard_normal((4, 6)).astype(np.float32), device=device)
        y = Tensor(rng.integers(0, 3, 4).astype(np.int32), device=device)
        np.testing.assert_allclose(jitted(x, y).numpy(), eager(x, y).numpy(), rtol=1e-5)
    for mine, theirs in zip(get_parameters(jit_layers), get_parameters(eager_layers)):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-7)


def test_random_numbers_are_drawn_again_on_every_replay():
    """Tensor.rand and dropout in a jitted function: each replay draws new numbers, the ones a call would
    (they were constants of the recording: dropout kept one mask for a whole training run)."""

    def step(x):
        with Tensor.train():
            return (x * Tensor.rand(8) + x.dropout(0.5) + Tensor.randint(8, high=100)).realize()

    x = Tensor.ones(8).realize()
    Tensor.manual_seed(3)
    plain = [step(x).numpy() for _ in range(5)]
    Tensor.manual_seed(3)
    jitted = TinyJit(step)
    replayed = [jitted(x).numpy() for _ in range(5)]
    np.testing.assert_allclose(replayed, plain)
    assert len({tuple(r) for r in replayed}) == 5


def test_batchnorm_running_statistics_update_on_every_replay():
    """The running statistics are buffers the optimizer realizes with every step; a replay updates them as a
    call does (when nothing realized them, replays skipped their updates: 2 steps counted out of 6)."""

    def train(jit: bool):
        Tensor.manual_seed(0)
        conv, bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)
        opt = optim.SGD(get_parameters([conv, bn]), lr=0.1)

        def step(x):
            with Tensor.train():
                loss = bn(conv(x)).relu().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            return loss.realize()

        step = TinyJit(step) if jit else step
        x = Tensor.randn(4, 1, 6, 6).realize()
        for _ in range(6):
            step(x)
        return bn.running_mean.numpy(), bn.running_var.numpy(), bn.num_batches_tracked.item()

    eager, jitted = train(jit=False), train(jit=True)
    assert jitted[2] == eager[2] == 6
    np.testing.assert_allclose(jitted[0], eager[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jitted[1], eager[1], rtol=1e-5, atol=1e-6)


def test_inputs_sharing_a_buffer_record_apart(device):
    """f(a, a) records kernels that read one buffer twice: f(b, c) later must not reuse them."""
    add = TinyJit(lambda a, b: a + b)
    same = Tensor([10.0, 10.0], device=device).realize()
    for _ in range(3):
        assert add(same, same).numpy().tolist() == [20.0, 20.0]
    for _ in range(3):
        out = add(Tensor([10.0, 10.0], device=device), Tensor([100.0, 100.0], device=device))
        assert out.numpy().tolist() == [110.0, 110.0]


def test_global_counters_count_replays_too(device):
    from minigrad import GlobalCounters

    step = TinyJit(lambda x: (x * 2 + 1).sum(0))
    x = Tensor.ones(64, 32, device=device).realize()
    seen = []
    for _ in range(4):
        GlobalCounters.reset()
        step(x)
        seen.append((GlobalCounters.kernel_count, GlobalCounters.global_ops, GlobalCounters.global_mem))
    assert seen[0][0] >= 1 and len(set(seen)) == 1, seen


def test_prune_drops_kernels_that_do_not_depend_on_the_inputs(device):
    from minigrad import GlobalCounters

    w = Tensor.ones(8, 8, device=device).realize()
    kernels = {}
    for prune in (False, True):
        jitted = TinyJit(lambda x: x @ (w @ w), prune=prune)  # w @ w: the same on every call
        for i in range(4):
            x = Tensor.full((8, 8), float(i), device=device).realize()
            GlobalCounters.reset()
            out = jitted(x)
            assert out.numpy()[0, 0] == 64.0 * i
        kernels[prune] = GlobalCounters.kernel_count
    assert kernels[True] == kernels[False] - 1


def test_jit_as_a_method_decorator_records_per_instance(device):
    class Shift:
        def __init__(self, by: float):
            self.by = Tensor.full((3,), by, device=device).realize()

        @TinyJit
        def __call__(self, x: Tensor) -> Tensor:
            return x + self.by

    one, ten = Shift(1.0), Shift(10.0)
    for i in range(4):
        x = Tensor.full((3,), float(i), device=device).realize()
        assert one(x).tolist() == [i + 1.0] * 3 and ten(x).tolist() == [i + 10.0] * 3


def test_free_intermediates_gives_memory_back_and_replays_stay_right(device):
    from minigrad import GlobalCounters

    @TinyJit
    def f(x: Tensor) -> Tensor:
        t1 = (x * 2).contiguous().realize()
        t2 = (t1 + 1).contiguous().realize()
        return t2.sum().realize()

    for i in range(3):
        assert f(Tensor.full((1000,), float(i), device=device)).item() == 1000 * (2 * i + 1)
    before = GlobalCounters.mem_used
    f.captured.free_intermediates()
    assert before - GlobalCounters.mem_used >= 2 * 1000 * 4  # t1 and t2
    for i in range(3, 5):
        assert f(Tensor.full((1000,), float(i), device=device)).item() == 1000 * (2 * i + 1)


def test_a_bound_variable_is_its_value_and_checks_its_range(device):
    from minigrad import Variable

    @TinyJit
    def window(x: Tensor, start: int) -> Tensor:
        return x.shrink(((start, start + 2),)).contiguous()

    x = Tensor.arange(10, device=device).realize()
    for start in (0, 3, 3, 3, 5):
        assert window(x, Variable("start", 0, 8).bind(start)).tolist() == [start, start + 1]
    with pytest.raises(ValueError, match="outside"):
        Variable("start", 0, 8).bind(9)
