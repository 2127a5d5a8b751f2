"""What codegen does for GPUs (global loops as threads, grouped reductions), on every GPU-style device here.

PoCL's OPENCL device runs these in CI; CUDA runs them where a GPU is present.
"""

import numpy as np
import pytest

from minigrad import Tensor
from minigrad.device import Device
from minigrad.engine.schedule import create_schedule
from minigrad.helpers import Context
from test.helpers import H100

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
    from minigrad.codegen.pipeline import generate
    from minigrad.runtime.ops_cuda import CUDA_LANGUAGE

    a = Tensor(np.ones((64, 64), np.float32), device="NUMPY")
    item = [i for i in create_schedule([(a * 2 + 1).lazydata]) if i.ast.op.name == "STORE"][0]
    source = generate(item.ast, CUDA_LANGUAGE, H100)[1]
    assert "float4 vec" in source and "make_float4(" in source


TILE_CASES = {  # (768, 48) @ (48, 768): 144 work-groups of 64x64 outputs (opt.tile)
    "plain": lambda a, b, c: a @ b,
    "epilogue": lambda a, b, c: (a @ b).relu() * 2 + c,
    "fused_operands": lambda a, b, c: a.relu() @ b.exp(),
    "transposed_w": lambda a, b, c: a @ b.T.contiguous().T,  # both operands walk the reduce contiguously
    "padded": lambda a, b, c: a[:, :40].pad(((0, 0), (4, 4))) @ b,  # zeros from the mask reach the tile
    "batched": lambda a, b, c: a.reshape(2, 384, 48) @ b,
}


def run_tiled(device: str, name: str, tile: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(3)
    a, b, c = (rng.standard_normal(s).astype(np.float32) for s in ((768, 48), (48, 768), (768,)))
    with Context(TILE=tile):
        out = TILE_CASES[name](*(Tensor(x, device=device) for x in (a, b, c)))
        source = sources(device, out) if device != "NUMPY" else []
        return out.numpy(), source


@pytest.mark.parametrize("device", GPU_DEVICES)
@pytest.mark.parametrize("name", TILE_CASES)
def test_local_memory_tiles_match_untiled_and_numpy(device, name):
    tiled, source = run_tiled(device, name, tile=1)
    assert any("tile0[" in s for s in source), "TILE=1: the matmul reads its operands from local memory"
    untiled, source = run_tiled(device, name, tile=0)
    assert not any("tile0[" in s for s in source)
    np.testing.assert_allclose(tiled, untiled, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tiled, run_tiled("NUMPY", name, tile=0)[0], rtol=1e-4, atol=1e-4)


def test_cuda_tiles_big_matmuls_and_nvrtc_compiles_them():
    from minigrad.codegen.pipeline import generate
    from minigrad.runtime.ops_cuda import CUDA_LANGUAGE, CudaCompiler

    a = Tensor(np.ones((2048, 2048), np.float32), device="NUMPY")
    ast = [i for i in create_schedule([(a @ a).lazydata]) if i.ast.op.name == "STORE"][0].ast
    name, source, (global_size, local_size) = generate(ast, CUDA_LANGUAGE, H100)
    assert "__shared__ float tile0" in source and "__syncthreads();" in source
    assert local_size == (256,) and global_size == (256 * 256,), "16x16 blocks of 128x128 outputs"
    assert CudaCompiler(90).compile(source)
    with Context(TILE=0):
        assert "__shared__" not in generate(ast, CUDA_LANGUAGE, H100)[1]
    small = Tensor(np.ones((256, 256), np.float32), device="NUMPY")
    ast = [i for i in create_schedule([(small @ small).lazydata]) if i.ast.op.name == "STORE"][0].ast
    assert "tile0" not in generate(ast, CUDA_LANGUAGE, H100)[1], "16 work-groups would leave most SMs idle"
