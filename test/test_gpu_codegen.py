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


VECTOR_CASES = {
    "chain": lambda a, b: (a * 2 + b).exp() - a,
    "matmul_epilogue": lambda a, b: (a @ b).relu() * 2,  # reduce kernels are not vectorized
    "transposed": lambda a, b: a.T + 1,  # loads strided, store contiguous
    "unaligned": lambda a, b: a[:, 1:5] * 3,  # store vectorized, loads not (index 1 mod 4)
    "padded": lambda a, b: a.pad(((0, 0), (1, 3))) + 1,  # masked loads stay scalar
}


@pytest.mark.parametrize("device", GPU_DEVICES)
@pytest.mark.parametrize("name", VECTOR_CASES)
def test_vector_loads_match_scalar_loads_and_numpy(device, name):
    rng = np.random.default_rng(2)
    a, b = (
        rng.standard_normal((256, 256)).astype(np.float32),
        rng.standard_normal((256, 256)).astype(np.float32),
    )
    run = lambda dev: VECTOR_CASES[name](Tensor(a, device=dev), Tensor(b, device=dev)).numpy()  # noqa: E731
    vectorized = run(device)
    with Context(VECTORIZE=0):
        scalar = run(device)
    np.testing.assert_allclose(vectorized, scalar, rtol=1e-4, atol=1e-4)  # sums of 256: rounding differs
    np.testing.assert_allclose(vectorized, run("NUMPY"), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", GPU_DEVICES)
def test_contiguous_float_accesses_are_vectors_and_vectorize_0_turns_them_off(device):
    a = Tensor(np.ones((64, 64), np.float32), device=device)
    vector = {"OPENCL": ("vload4", "vstore4"), "CUDA": ("*((float4*)", "make_float4")}[device]
    assert all(word in "".join(sources(device, a * 2 + 1)) for word in vector)
    transposed = "".join(sources(device, a.T.exp() + 1))
    assert vector[1] in transposed and vector[0] not in transposed, "4 stores in a row, strided loads"
    shifted = "".join(sources(device, a[:, 1:5] * 3))
    assert vector[1] in shifted and vector[0] not in shifted, "an unaligned load stays scalar"
    big = Tensor(np.ones((256, 256), np.float32), device=device)
    reduces = [s for s in sources(device, big @ big) if "acc" in s]  # not the panel copy (tensor.py)
    assert reduces and "float4" not in "".join(reduces), "reduce kernels keep scalar accesses"
    with Context(VECTORIZE=0):
        assert "float4" not in "".join(sources(device, a * 2 + 1))


def test_cuda_source_uses_float4_without_a_gpu():
    from minigrad.codegen.cstyle import render_kernel
    from minigrad.runtime.ops_cuda import CUDA_LANGUAGE

    a = Tensor(np.ones((64, 64), np.float32), device="NUMPY")
    item = [i for i in create_schedule([(a * 2 + 1).lazydata]) if i.ast.op.name == "STORE"][0]
    source = render_kernel(item.ast, CUDA_LANGUAGE)[1]
    assert "float4 vec" in source and "make_float4(" in source
