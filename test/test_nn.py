"""nn layers and optimizers against torch.nn / torch.optim on the same weights, on every device."""

import numpy as np
import pytest
import torch

from minigrad import Context, Device, Tensor, dtypes, nn
from minigrad.helpers import GlobalCounters
from minigrad.nn import lr_scheduler, optim
from minigrad.nn.state import get_parameters, get_state_dict


def to_torch_layer(layer, torch_layer):
    """Copy every tensor of a minigrad layer into the torch layer of the same structure."""
    with torch.no_grad():
        for name, value in get_state_dict(layer).items():
            getattr(torch_layer, name).copy_(torch.from_numpy(value.numpy()))
    return torch_layer


def compare(layer, torch_layer, x: np.ndarray, device: str, atol=1e-5, integer_input=False):
    """Output, input gradient (float inputs) and parameter gradients of one forward/backward."""
    mx = Tensor(x, device=device, requires_grad=not integer_input)
    tx = torch.tensor(x, requires_grad=not integer_input)
    out, tout = layer(mx), torch_layer(tx)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), atol=atol, rtol=1e-4)
    cotangent = np.random.default_rng(1).standard_normal(tout.shape).astype(np.float32)
    (out * Tensor(cotangent, device=device)).sum().backward()
    (tout * torch.from_numpy(cotangent)).sum().backward()
    if not integer_input:
        np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), atol=atol, rtol=1e-4)
    for name, p in get_state_dict(layer).items():
        tp = getattr(torch_layer, name)
        if tp.requires_grad:
            np.testing.assert_allclose(
                p.grad.numpy(), tp.grad.numpy(), atol=atol * 10, rtol=1e-3, err_msg=name
            )


@pytest.mark.parametrize("bias", [True, False])
def test_linear(device, bias):
    with Context(DEVICE=device):
        layer = nn.Linear(7, 5, bias=bias)
    x = np.random.default_rng(0).standard_normal((3, 7)).astype(np.float32)
    compare(layer, to_torch_layer(layer, torch.nn.Linear(7, 5, bias=bias)), x, device)
    assert layer.weight.shape == (5, 7) and layer.weight.device == device


@pytest.mark.parametrize(
    "kwargs", [{}, {"stride": 2, "padding": 1}, {"groups": 2, "dilation": 2, "padding": 2}]
)
def test_conv2d(device, kwargs):
    with Context(DEVICE=device):
        layer = nn.Conv2d(4, 6, 3, **kwargs)
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 9)).astype(np.float32)
    compare(layer, to_torch_layer(layer, torch.nn.Conv2d(4, 6, 3, **kwargs)), x, device, atol=1e-4)


def test_batchnorm2d_train_then_eval(device):
    with Context(DEVICE=device):
        layer = nn.BatchNorm2d(3)
    torch_layer = to_torch_layer(layer, torch.nn.BatchNorm2d(3))
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32) * 3 + 1
    with Tensor.train():
        compare(layer, torch_layer.train(), x, device, atol=1e-4)
    np.testing.assert_allclose(layer.running_mean.numpy(), torch_layer.running_mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(layer.running_var.numpy(), torch_layer.running_var.numpy(), rtol=1e-5)
    assert layer.num_batches_tracked.numpy() == 1
    out = layer(Tensor(x, device=device)).numpy()  # not training: the running statistics
    np.testing.assert_allclose(out, torch_layer.eval()(torch.from_numpy(x)).detach().numpy(), atol=1e-4)
    assert nn.BatchNorm is nn.BatchNorm2d


def test_layernorm(device):
    with Context(DEVICE=device):
        layer = nn.LayerNorm((4, 6))
        layer.weight.assign(Tensor.randn(4, 6) + 1)  # not the identity, so the test sees weight and bias
        layer.bias.assign(Tensor.randn(4, 6))
    x = np.random.default_rng(0).standard_normal((3, 4, 6)).astype(np.float32) * 5
    compare(layer, to_torch_layer(layer, torch.nn.LayerNorm((4, 6))), x, device, atol=1e-4)


def test_embedding(device):
    with Context(DEVICE=device):
        layer = nn.Embedding(11, 4)
    idx = np.array([[0, 3, 3], [10, 1, 2]], dtype=np.int32)
    torch_layer = to_torch_layer(layer, torch.nn.Embedding(11, 4))
    out = layer(Tensor(idx, device=device))
    np.testing.assert_allclose(out.numpy(), torch_layer(torch.from_numpy(idx).long()).detach().numpy())
    out.square().sum().backward()
    torch_layer(torch.from_numpy(idx).long()).square().sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), torch_layer.weight.grad.numpy(), atol=1e-5)
    with pytest.raises(TypeError, match="integer Tensor"):
        layer(Tensor([0.5, 1.0], device=device))


def test_initialisation_follows_pytorch_bounds():
    Tensor.manual_seed(0)
    linear, conv = nn.Linear(400, 300), nn.Conv2d(8, 16, 5)
    for tensor, fan_in in [(linear.weight, 400), (linear.bias, 400), (conv.weight, 200), (conv.bias, 200)]:
        values, bound = tensor.numpy(), 1 / np.sqrt(fan_in)
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.95 * bound
        assert abs(values.std() - bound / np.sqrt(3)) < 0.1 * bound  # uniform in +-bound
    embedding = nn.Embedding(1000, 64).weight.numpy()
    assert abs(embedding.std() - 1) < 0.02 and abs(embedding.mean()) < 0.02
    assert all(p.requires_grad for p in get_parameters(linear))
    assert not nn.BatchNorm2d(3).running_mean.requires_grad


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="BatchNorm"):
        nn.BatchNorm2d(3)(Tensor.ones(2, 4, 5, 5))
    with pytest.raises(ValueError, match="LayerNorm"):
        nn.LayerNorm(5)(Tensor.ones(2, 4))
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)


OPTIMIZERS = {
    "sgd": (lambda p: optim.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd_momentum_wd": (
        lambda p: optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
    ),
    "sgd_nesterov": (
        lambda p: optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
    ),
    "adam": (lambda p: optim.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    "adam_l2": (
        lambda p: optim.Adam(p, lr=0.01, b1=0.8, b2=0.99, weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
    ),
    "adamw": (
        lambda p: optim.AdamW(p, lr=0.01, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    ),
    "lamb_as_adamw": (
        lambda p: optim.LAMB(p, lr=0.01, eps=1e-8, weight_decay=0.1, adam=True),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    ),
    "rmsprop": (lambda p: optim.RMSprop(p, lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    "rmsprop_centered_momentum_wd": (
        lambda p: optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.8, centered=True, weight_decay=0.05),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.8, centered=True, weight_decay=0.05),
    ),
    "adagrad": (lambda p: optim.Adagrad(p, lr=0.1), lambda p: torch.optim.Adagrad(p, lr=0.1)),
    "adagrad_decay_wd_initial": (
        lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.05, weight_decay=0.02, initial_accumulator_value=0.3),
        lambda p: torch.optim.Adagrad(
            p, lr=0.1, lr_decay=0.05, weight_decay=0.02, initial_accumulator_value=0.3
        ),
    ),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_matches_torch_over_10_steps(device, name):
    make, make_torch = OPTIMIZERS[name]
    rng = np.random.default_rng(0)
    w0, b0 = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    x, y = rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    w, b = Tensor(w0, device=device, requires_grad=True), Tensor(b0, device=device, requires_grad=True)
    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    opt, topt = make([w, b]), make_torch([tw, tb])
    mx, my = Tensor(x, device=device), Tensor(y, device=device)
    for _ in range(10):
        opt.zero_grad()
        ((mx @ w + b).tanh() - my).square().mean().backward()
        opt.step()
        topt.zero_grad()
        ((torch.from_numpy(x) @ tw + tb).tanh() - torch.from_numpy(y)).square().mean().backward()
        topt.step()
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.numpy(), tb.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["adam", "adagrad"])
def test_optimizer_counters_stay_float32_under_a_float16_default(name):
    """b2^t rounded to float16 made Adam's steps 1.3% short: the step counters and learning rate are float32
    whatever dtypes.default_float is."""
    make, make_torch = OPTIMIZERS[name]
    w0 = np.random.default_rng(2).standard_normal((2, 3)).astype(np.float32)
    old, dtypes.default_float = dtypes.default_float, dtypes.float16
    try:
        w = Tensor(w0, requires_grad=True)
        opt = make([w])
        for _ in range(3):
            opt.zero_grad()
            w.square().sum().backward()
            opt.step()
    finally:
        dtypes.default_float = old
    tw = torch.tensor(w0, requires_grad=True)
    topt = make_torch([tw])
    for _ in range(3):
        topt.zero_grad()
        tw.square().sum().backward()
        topt.step()
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["sgd_momentum_wd", "adamw"])
def test_learning_rate_schedule_matches_torch_and_compiles_once(device, name):
    """Setting opt.lr every step changes a device tensor, not the kernels: it compiled every step (400 ms)."""
    make, make_torch = OPTIMIZERS[name]
    rng = np.random.default_rng(1)
    w0, x = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((8, 4)).astype(np.float32)
    w, tw = Tensor(w0, device=device, requires_grad=True), torch.tensor(w0, requires_grad=True)
    opt, topt = make([w]), make_torch([tw])
    mx = Tensor(x, device=device)
    for step in range(6):
        if step == 2:
            programs = len(Device[device]._programs)
        opt.lr = topt.param_groups[0]["lr"] = 0.05 * 0.7**step
        assert opt.lr == 0.05 * 0.7**step
        opt.zero_grad()
        (mx @ w).tanh().square().mean().backward()
        opt.step()
        topt.zero_grad()
        (torch.from_numpy(x) @ tw).tanh().square().mean().backward()
        topt.step()
    assert len(Device[device]._programs) == programs  # steps 2-5 compiled nothing
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_adam_step_is_one_realize_with_fused_updates():
    """784-512-512-10 MLP: the update of a parameter and its two moments is a few kernels, not one per op."""
    layers = [nn.Linear(784, 512), nn.Linear(512, 512), nn.Linear(512, 10)]
    opt = optim.Adam(get_parameters(layers))
    x, y = Tensor.randn(128, 784), Tensor.randint(128, low=0, high=10)
    Tensor.realize(x, y, *opt.params, *opt.buffers)

    def loss():
        return layers[2](layers[1](layers[0](x).relu()).relu()).sparse_categorical_crossentropy(y)

    loss().backward()
    Tensor.realize(*[p.grad for p in opt.params])
    GlobalCounters.reset()
    opt.step()
    # per parameter: m, v and the parameter itself (3 written buffers), plus b1**t and b2**t
    assert GlobalCounters.kernel_count <= 3 * 6 + 2, GlobalCounters.kernel_count


def test_conv_batchnorm_relu_trains_like_torch():
    """The BatchNorm weight and bias updates each read the other's old value (through the relu mask): the
    second step raised "one realize both reads a tensor's value from before an assign()"."""
    rng = np.random.default_rng(0)
    w0, x0 = (rng.standard_normal(s).astype(np.float32) for s in ((2, 1, 3, 3), (4, 1, 6, 6)))
    conv, bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)
    conv.weight.assign(Tensor(w0)).realize()
    tconv, tbn = torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)
    with torch.no_grad():
        tconv.weight.copy_(torch.tensor(w0))
        tconv.bias.copy_(torch.tensor(conv.bias.numpy()))
    opt = optim.SGD(get_parameters([conv, bn]), lr=0.1)
    topt = torch.optim.SGD([*tconv.parameters(), *tbn.parameters()], lr=0.1)
    x = Tensor(x0)
    for _ in range(4):
        with Tensor.train():
            loss = bn(conv(x)).relu().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        expected = torch.relu(tbn(tconv(torch.tensor(x0)))).mean()
        topt.zero_grad()
        expected.backward()
        topt.step()
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), tbn.running_var.numpy(), rtol=1e-5)


def test_batchnorm_running_statistics_are_buffers_not_parameters():
    bn = nn.BatchNorm2d(3)
    params = optim.SGD(get_parameters(bn), lr=0.1).params
    assert [p.shape for p in params] == [(3,), (3,)] and all(p.requires_grad for p in params)
    assert {"running_mean", "running_var", "num_batches_tracked"} <= {
        k.split(".")[-1] for k in get_state_dict(bn)
    }


def test_optimizer_needs_parameters():
    with pytest.raises(ValueError, match="no parameters"):
        optim.SGD([Tensor.ones(3, requires_grad=False)])


# ---- more layers, each against torch's, forward and input gradients --------------------------------------

LAYERS = {
    "conv1d_same": (
        lambda: nn.Conv1d(4, 6, 3, padding="same"),
        lambda: torch.nn.Conv1d(4, 6, 3, padding="same"),
        (2, 4, 9),
    ),
    "conv2d_same_dilated": (
        lambda: nn.Conv2d(4, 6, (2, 3), padding="same", dilation=2),
        lambda: torch.nn.Conv2d(4, 6, (2, 3), padding="same", dilation=2),
        (2, 4, 7, 8),
    ),
    "conv2d_valid": (
        lambda: nn.Conv2d(4, 6, 3, padding="valid", stride=2),
        lambda: torch.nn.Conv2d(4, 6, 3, padding="valid", stride=2),
        (2, 4, 7, 8),
    ),
    "conv_transpose1d": (
        lambda: nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1),
        lambda: torch.nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1),
        (2, 4, 5),
    ),
    "conv_transpose2d": (
        lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2),
        lambda: torch.nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2),
        (2, 4, 5, 5),
    ),
    "conv3d": (
        lambda: nn.Conv3d(2, 3, 2, padding=1),
        lambda: torch.nn.Conv3d(2, 3, 2, padding=1),
        (1, 2, 3, 4, 5),
    ),
    "conv_transpose3d": (
        lambda: nn.ConvTranspose3d(2, 3, 2, stride=2),
        lambda: torch.nn.ConvTranspose3d(2, 3, 2, stride=2),
        (1, 2, 3, 2, 3),
    ),
    "group_norm": (lambda: nn.GroupNorm(2, 6), lambda: torch.nn.GroupNorm(2, 6), (3, 6, 4, 4)),
    "instance_norm": (
        lambda: nn.InstanceNorm(6),
        lambda: torch.nn.InstanceNorm2d(6, affine=True),
        (3, 6, 4, 4),
    ),
    "rms_norm": (lambda: nn.RMSNorm(8), lambda: torch.nn.RMSNorm(8), (3, 5, 8)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_torch(device, name):
    make, make_torch, shape = LAYERS[name]
    ours, theirs = make(), make_torch()
    for attribute in ("weight", "bias"):
        if getattr(ours, attribute, None) is not None:
            value = getattr(theirs, attribute).detach().numpy()
            setattr(ours, attribute, Tensor(value, device=device, requires_grad=True))
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    tx, mx = torch.tensor(x, requires_grad=True), Tensor(x, device=device, requires_grad=True)
    expected, out = theirs(tx), ours(mx)
    cotangent = np.random.default_rng(1).normal(size=tuple(expected.shape)).astype(np.float32)
    (expected * torch.tensor(cotangent)).sum().backward()
    (out * Tensor(cotangent, device=device)).sum().backward()
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), atol=5e-5, rtol=1e-4)


def test_layer_norm_2d_normalizes_each_pixel_over_channels(device):
    x = np.random.default_rng(2).normal(size=(2, 6, 3, 3)).astype(np.float32)
    expected = torch.nn.functional.layer_norm(torch.tensor(x).permute(0, 2, 3, 1), (6,)).permute(0, 3, 1, 2)
    layer = nn.LayerNorm2d(6)
    layer.weight, layer.bias = Tensor.ones(6, device=device), Tensor.zeros(6, device=device)
    out = layer(Tensor(x, device=device))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=2e-5)


def test_conv_padding_strings_are_checked():
    with pytest.raises(ValueError, match="'valid' or 'same'"):
        nn.Conv2d(2, 2, 3, padding="full")
    with pytest.raises(ValueError, match="stride 1"):
        nn.Conv1d(2, 2, 3, padding="same", stride=2)


# ---- learning-rate schedules and gradient clipping -------------------------------------------------------

SCHEDULES = {
    "step": (lambda o: lr_scheduler.StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    "multistep": (
        lambda o: lr_scheduler.MultiStepLR(o, [2, 5, 6], 0.3),
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5, 6], 0.3),
    ),
    "cosine": (
        lambda o: lr_scheduler.CosineAnnealingLR(o, 7, eta_min=0.001),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, eta_min=0.001),
    ),
    "one_cycle": (
        lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=12),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=12, cycle_momentum=False),
    ),
}


@pytest.mark.parametrize("optimizer", ["sgd_momentum_wd", "adam", "rmsprop", "adagrad"])
@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_matches_torch_with_every_optimizer(name, optimizer):
    make, make_torch = OPTIMIZERS[optimizer]
    schedule, torch_schedule = SCHEDULES[name]
    rng = np.random.default_rng(4)
    w0, x = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((8, 4)).astype(np.float32)
    w, tw = Tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    opt, topt = make([w]), make_torch([tw])
    sched, tsched = schedule(opt), torch_schedule(topt)
    for _ in range(11):
        assert sched.get_last_lr()[0] == pytest.approx(tsched.get_last_lr()[0], rel=1e-9, abs=1e-12)
        opt.zero_grad()
        (Tensor(x) @ w).tanh().square().mean().backward()
        opt.step()
        sched.step()
        topt.zero_grad()
        (torch.from_numpy(x) @ tw).tanh().square().mean().backward()
        topt.step()
        tsched.step()
    # Adam divides by sqrt(v): where a gradient is tiny, float32 noise moves a weight by ~1e-6
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-5)


def test_cosine_warm_up_climbs_linearly_first():
    opt = optim.SGD([Tensor.ones(2, requires_grad=True)], lr=0.4)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=4, warmup=4)
    rates = [sched.get_last_lr()[0]] + [(sched.step(), sched.get_last_lr()[0])[1] for _ in range(8)]
    assert rates[:4] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert rates[4:] == pytest.approx([0.4 * (1 + np.cos(np.pi * t / 4)) / 2 for t in range(5)])


def test_reduce_on_plateau_matches_torch():
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.89, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.6, 0.6, 0.6, 0.6]
    w, tw = Tensor.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    opt, topt = optim.SGD([w], lr=1.0), torch.optim.SGD([tw], lr=1.0)
    sched = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    for metric in metrics:
        sched.step(metric)
        tsched.step(metric)
        assert sched.get_last_lr()[0] == pytest.approx(tsched.get_last_lr()[0])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_matches_torch(device, norm_type):
    rng = np.random.default_rng(5)
    values = [rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (5,))]
    ours = [Tensor(v, device=device, requires_grad=True) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    sum((p * p * 3).sum() for p in ours).backward()
    sum((p * p * 3).sum() for p in theirs).backward()
    total = optim.clip_grad_norm_(ours, 1.5, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.5, norm_type)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["adam", "sgd_momentum_wd", "rmsprop_centered_momentum_wd", "adagrad"])
def test_training_resumes_exactly_from_a_checkpoint_with_optimizer_state(tmp_path, name):
    """get_state_dict(optimizer) holds its state (moments, step counts, learning rate): saved with the model
    and loaded into new objects, 3 + 3 steps equal 6 steps."""
    from minigrad.nn.state import load_state_dict, safe_load, safe_save

    make = OPTIMIZERS[name][0]
    rng = np.random.default_rng(6)
    w0, x = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((8, 4)).astype(np.float32)

    def train(w, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            (Tensor(x) @ w).tanh().square().mean().backward()
            opt.step()

    straight = Tensor(w0, requires_grad=True)
    train(straight, make([straight]), 6)
    first = Tensor(w0, requires_grad=True)
    opt = make([first])
    train(first, opt, 3)
    safe_save({**get_state_dict({"w": first}), **get_state_dict({"opt": opt})}, tmp_path / "ckpt")
    resumed = Tensor(np.zeros_like(w0), requires_grad=True)
    new_opt = make([resumed])
    state = safe_load(tmp_path / "ckpt")
    load_state_dict({"w": resumed}, {"w": state["w"]})
    load_state_dict({"opt": new_opt}, {k: v for k, v in state.items() if k.startswith("opt.")})
    train(resumed, new_opt, 3)
    np.testing.assert_array_equal(resumed.numpy(), straight.numpy())


@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_matches_torch(device, batch_first):
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(5, 4, num_layers=2, batch_first=batch_first)
    ours = nn.LSTM(5, 4, num_layers=2, batch_first=batch_first)
    for name, value in theirs.state_dict().items():
        setattr(ours, name, Tensor(value.numpy(), device=device, requires_grad=True))
    x = np.random.default_rng(7).normal(size=(3, 6, 5)).astype(np.float32)  # (seq, batch) or (batch, seq)
    tx, mx = torch.tensor(x, requires_grad=True), Tensor(x, device=device, requires_grad=True)
    expected, (h, c) = theirs(tx)
    out, (mh, mc) = ours(mx)
    for got, want in [(out, expected), (mh, h), (mc, c)]:
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), atol=1e-5)
    (expected.sum() + c.sum()).backward()
    (out.sum() + mc.sum()).backward()
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.weight_hh_l1.grad.numpy(), theirs.weight_hh_l1.grad.numpy(), atol=1e-5)
    cell = nn.LSTMCell(5, 4)
    assert cell.weight_ih.shape == (16, 5) and np.abs(cell.weight_ih.numpy()).max() <= 0.5


def _reference_lamb(w, grads, lr, b1, b2, eps, wd, adam):
    """LAMB in float64 numpy (You et al.; tinygrad's arrangement): one weight, a gradient per step."""
    m, v, w = np.zeros_like(w), np.zeros_like(w), w.astype(np.float64)
    for t, g in enumerate(grads, start=1):
        g = g(w)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        step = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps) + wd * w
        r1, r2 = np.linalg.norm(w), np.linalg.norm(step)
        ratio = 1.0 if adam or r1 == 0 or r2 == 0 else r1 / r2
        w = w - lr * ratio * step
    return w


def _reference_muon(w, grads, lr, momentum, wd, steps, coefficients):
    def orthogonalize(x):
        if x.shape[0] > x.shape[1]:
            return orthogonalize(x.T).T
        x = x / (np.linalg.norm(x) + 1e-7)
        for _ in range(steps):
            gram = x @ x.T
            x = sum(c * np.linalg.matrix_power(gram, k) @ x for k, c in enumerate(coefficients))
        return x

    buffer, w = np.zeros_like(w, dtype=np.float64), w.astype(np.float64)
    for g in grads:
        g = g(w)
        buffer = momentum * buffer + g
        update = orthogonalize(g + momentum * buffer)
        w = w * (1 - lr * wd) - lr * update
    return w


@pytest.mark.parametrize("adam", [False, True])
def test_lamb_matches_its_definition(device, adam):
    rng = np.random.default_rng(8)
    w0, x = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((8, 4)).astype(np.float32)
    target = rng.standard_normal((8, 3)).astype(np.float32)
    gradient = lambda w: 2 * x.T @ (x @ w - target) / target.size  # noqa: E731  (of the mean squared error)
    w = Tensor(w0, device=device, requires_grad=True)
    opt = optim.LAMB([w], lr=0.05, weight_decay=0.1, adam=adam)
    for _ in range(10):
        opt.zero_grad()
        ((Tensor(x, device=device) @ w - Tensor(target, device=device)).square().mean()).backward()
        opt.step()
    expected = _reference_lamb(w0, [gradient] * 10, 0.05, 0.9, 0.999, 1e-6, 0.1, adam)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w.numpy(), LAMB_BY_TINYGRAD_0_14[adam], rtol=0, atol=1e-5)


# what tinygrad 0.14's LAMB gives for test_lamb_matches_its_definition (pip install tinygrad==0.14.0; TRAINING=1)
LAMB_BY_TINYGRAD_0_14 = {
    False: [
        [-1.1703217029571533, -1.360421061515808, -0.7304567694664001],
        [-0.7546166181564331, -1.619244933128357, -0.31426337361335754],
        [-1.2377253770828247, 0.2861482799053192, 0.35317668318748474],
        [0.7751001119613647, 0.17992304265499115, -0.5390586256980896],
    ],
    True: [
        [-1.229772686958313, -1.361956238746643, -0.8174691200256348],
        [-0.7307946681976318, -1.7164580821990967, -0.3514266014099121],
        [-1.246036410331726, 0.37020793557167053, 0.4351426064968109],
        [0.8570062518119812, 0.25847363471984863, -0.487682580947876],
    ],
}


def test_muon_matches_its_definition(device):
    rng = np.random.default_rng(9)
    w0, x = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((8, 5)).astype(np.float32)
    target = rng.standard_normal((8, 3)).astype(np.float32)
    gradient = lambda w: 2 * x.T @ (x @ w - target) / target.size  # noqa: E731
    w = Tensor(w0, device=device, requires_grad=True)
    opt = optim.Muon([w], lr=0.02, weight_decay=0.1)
    for _ in range(10):
        opt.zero_grad()
        ((Tensor(x, device=device) @ w - Tensor(target, device=device)).square().mean()).backward()
        opt.step()
    expected = _reference_muon(w0, [gradient] * 10, 0.02, 0.95, 0.1, 5, (3.4445, -4.775, 2.0315))
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w.numpy(), MUON_BY_TINYGRAD_0_14, rtol=0, atol=1e-5)


# what tinygrad 0.14's Muon gives for test_muon_matches_its_definition (pip install tinygrad==0.14.0; TRAINING=1)
MUON_BY_TINYGRAD_0_14 = [
    [-0.7210929989814758, 0.21577970683574677, -1.5855112075805664],
    [0.5969755053520203, 1.1399413347244263, -0.45858249068260193],
    [0.3080778121948242, 0.18032239377498627, -0.3954518139362335],
    [-0.8604372143745422, -1.9392337799072266, 1.2483224868774414],
    [0.01860399916768074, 2.3359882831573486, 0.6605278849601746],
]


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_matches_torch(device, batch_first):
    torch.manual_seed(1)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first)
    ours = nn.MultiheadAttention(8, 2, batch_first=batch_first)
    for name, value in theirs.state_dict().items():
        owner, attribute = (
            (ours.out_proj, name.split(".")[1]) if name.startswith("out_proj") else (ours, name)
        )
        setattr(owner, attribute, Tensor(value.numpy(), device=device, requires_grad=True))
    rng = np.random.default_rng(10)
    q, kv = (rng.normal(size=s).astype(np.float32) for s in ((3, 4, 8), (5, 4, 8)))  # (length, batch, E)
    if batch_first:
        q, kv = np.ascontiguousarray(q.transpose(1, 0, 2)), np.ascontiguousarray(kv.transpose(1, 0, 2))
    causal = np.tril(np.ones((3, 5), bool))
    tq, tkv = torch.tensor(q, requires_grad=True), torch.tensor(kv)
    expected, weights = theirs(tq, tkv, tkv, attn_mask=torch.tensor(~causal))  # torch: True = masked out
    mq = Tensor(q, device=device, requires_grad=True)
    mkv = Tensor(kv, device=device)
    out, our_weights = ours(mq, mkv, mkv, attn_mask=Tensor(causal, device=device))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(our_weights.numpy(), weights.detach().numpy(), atol=1e-5)
    expected.sum().backward()
    out.sum().backward()
    np.testing.assert_allclose(mq.grad.numpy(), tq.grad.numpy(), atol=1e-5)


def test_batchnorm_along_another_axis(device):
    x = np.random.default_rng(11).normal(size=(2, 3, 4)).astype(np.float32)
    weight, bias = np.arange(1, 5, dtype=np.float32), np.arange(4, dtype=np.float32)
    mean, invstd = x.mean((0, 1)), 1 / np.sqrt(x.var((0, 1)) + 1e-5)
    out = Tensor(x, device=device).batchnorm(
        *(Tensor(a, device=device) for a in (weight, bias, mean, invstd)), axis=-1
    )
    np.testing.assert_allclose(out.numpy(), (x - mean) * invstd * weight + bias, atol=1e-5)
