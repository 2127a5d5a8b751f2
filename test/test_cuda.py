"""The CUDA backend: NVRTC compiles without a GPU (CI); running needs one and skips, saying why."""

import numpy as np
import pytest

from minigrad import Tensor
from test.helpers import H100
from minigrad.codegen.pipeline import generate
from minigrad.device import Device
from minigrad.engine.schedule import create_schedule

ops_cuda = pytest.importorskip("minigrad.runtime.ops_cuda", reason="the cuda extra is not installed")
GPU_MISSING = Device.unavailable_reason("CUDA")
needs_gpu = pytest.mark.skipif(GPU_MISSING is not None, reason=f"no usable GPU: {GPU_MISSING}")


def cuda_kernels(*tensors: Tensor) -> list[tuple]:
    """(name, CUDA source, (global size, local size)) of each kernel that realizing `tensors` would run."""
    items = create_schedule([t.lazydata for t in tensors])
    return [generate(i.ast, ops_cuda.CUDA_LANGUAGE, H100) for i in items if i.ast.op.name == "STORE"]


def test_nvrtc_makes_a_cubin_and_a_ptx_without_a_gpu():
    x = Tensor(np.ones((8, 16), np.float32), device="NUMPY")
    ((_, source, _),) = cuda_kernels((x.exp() * 2).sum(1).sqrt())
    cubin = ops_cuda.CudaCompiler(90).compile(source)
    ptx = ops_cuda.CudaCompiler(90, ptx=True).compile(source)
    assert cubin[:4] == b"\x7fELF", "a cubin is an ELF file"
    assert b".entry" in ptx and b".target" in ptx, "PTX is text with an entry point"


def test_an_architecture_nvrtc_does_not_know_falls_back_to_ptx():
    compiler = ops_cuda.CudaCompiler(999)
    assert compiler.ptx and b"compute_" in compiler.options[0]


def test_nvrtc_errors_name_the_problem_and_show_the_source():
    with pytest.raises(RuntimeError, match="NVRTC could not compile") as error:
        ops_cuda.CudaCompiler(90).compile('extern "C" __global__ void k(float* a) { a[0] = nope; }')
    assert "nope" in str(error.value)


def test_no_gpu_gives_a_reason():
    if GPU_MISSING is None:
        pytest.skip("a GPU is present")
    assert "cuInit" in GPU_MISSING or "driver" in GPU_MISSING


@needs_gpu
@pytest.mark.parametrize("ptx", [False, True])
def test_cubin_and_ptx_both_run(ptx):
    backend = Device["CUDA"]
    x = np.random.default_rng(0).standard_normal((33, 70)).astype(np.float32)
    ((name, source, (global_size, local_size)),) = cuda_kernels((Tensor(x, device="CUDA").exp() * 2).sum(1))
    compiler = ops_cuda.CudaCompiler(backend.compiler.arch, ptx=ptx)
    program = ops_cuda.CudaProgram(name, compiler.compile(source))
    out, inp = backend.allocator.alloc(33 * 4), backend.allocator.alloc(x.nbytes)
    backend.allocator.copyin(inp, memoryview(x.reshape(-1).view(np.uint8)))
    assert program(out, inp, global_size=global_size, local_size=local_size, wait=True) > 0
    got = np.empty(33, np.float32)
    backend.allocator.copyout(memoryview(got.view(np.uint8)), out)
    np.testing.assert_allclose(got, (np.exp(x) * 2).sum(1), rtol=1e-5)
