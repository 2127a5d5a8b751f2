"""What codegen does for GPUs (global loops as threads, grouped reductions), on every GPU-style device here.

PoCL's OPENCL device runs these in CI; CUDA runs them where a GPU is present.
"""

import numpy as np
import pytest

from minigrad import Tensor
from minigrad.device import Device
from minigrad.engine.schedule import create_schedule
from minigrad.helpers import Context

from .conftest import DEVICES

GPU_DEVICES = [d for d in DEVICES if d in ("OPENCL", "CUDA")]
pytestmark = pytest.mark.skipif(not GPU_DEVICES, reason="no OPENCL or CUDA device here")
X = np.random.default_rng(0).standard_normal((48, 2048)).astype(np.float32)
REDUCES = {
    "sum_rows": lambda t: t.sum(1),
    "max_rows": lambda t: t.max(1),
    "sum_all": lambda t: t.sum(),
    "softmax": lambda t: t.softmax(-1),
    "mean_cols": lambda t: t.T.mean(1),  # the reduce walks a strided dim
    "logsumexp": lambda t: t.logsumexp(1),
}


def sources(device: str, out: Tensor) -> list[str]:
    items = [i for i in create_schedule([out.lazydata]) if i.ast.op.name == "STORE"]
    return [Device[device].get_program(i.ast).source for i in items]


@pytest.mark.parametrize("device", GPU_DEVICES)
@pytest.mark.parametrize("name", REDUCES)
def test_grouped_reductions_match_ungrouped_and_numpy(device, name):
    grouped = REDUCES[name](Tensor(X, device=device)).numpy()
    with Context(GROUP=0):
        ungrouped = REDUCES[name](Tensor(X, device=device)).numpy()
    expected = REDUCES[name](Tensor(X, device="NUMPY")).numpy()
    np.testing.assert_allclose(grouped, ungrouped, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grouped, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", GPU_DEVICES)
def test_long_reductions_are_grouped_and_group_0_turns_it_off(device):
    t = Tensor(X, device=device)
    assert any("partial" in s for s in sources(device, t.sum(1))), "a work-group shares each row"
    with Context(GROUP=0):
        assert not any("partial" in s for s in sources(device, t.sum(1)))
    big = Tensor(np.ones((256, 256), np.float32), device=device)
    assert not any("partial" in s for s in sources(device, big @ big)), "65536 outputs: a thread each"


@pytest.mark.parametrize("device", GPU_DEVICES)
def test_odd_sizes_run_one_thread_per_output(device):
    x = np.random.default_rng(1).standard_normal((7, 333)).astype(np.float32)
    np.testing.assert_allclose(Tensor(x, device=device).sum(1).numpy(), x.sum(1), rtol=1e-5, atol=1e-4)
