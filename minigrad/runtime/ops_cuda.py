"""The CUDA device: kernels rendered as CUDA C, compiled by NVRTC, run through the driver API.

In: a kernel AST. Out: a cubin for this GPU's compute capability (cached on disk), launched on device
buffers. Uses NVIDIA's own bindings (`pip install minigrad[cuda]`: cuda-bindings and nvidia-cuda-nvrtc);
NVRTC needs no GPU, so CI compiles every kernel without one. A cubin is preferred to PTX because the driver
refuses PTX from an NVRTC newer than itself (CUDA error 222); PTX (for the newest virtual architecture this
NVRTC knows) is the fallback when NVRTC cannot target the GPU's own architecture, or when CUDA_PTX=1.
Global loops are threads, BLOCK_SIZE to a block.
"""

from __future__ import annotations

import ctypes

from minigrad.codegen.cstyle import Language, render_kernel
from minigrad.device import Allocator, Backend, Compiler, Program
from minigrad.dtype import DType, dtypes
from minigrad.helpers import getenv

try:
    from cuda.bindings import driver, nvrtc
except ImportError as e:  # the device is reported unavailable with this reason
    raise ImportError("the CUDA device needs NVIDIA's bindings: pip install 'minigrad[cuda]'") from e

BLOCK_SIZE = 128
CUDA_LANGUAGE = Language(
    name="CUDA",
    headers="#define INFINITY (__int_as_float(0x7f800000))\n#define NAN (__int_as_float(0x7fffffff))\n",
    kernel_prefix='extern "C" __global__ void',
    buffer_prefix="",
    type_names={d: d.c_name for d in dtypes.all()},
    global_index="(blockIdx.x*blockDim.x+threadIdx.x)",
    group_index="blockIdx.x",
    local_index="threadIdx.x",
    local_prefix="__shared__ ",
    barrier="__syncthreads();",
)


def check(result: tuple) -> tuple:
    """Unwrap a cuda-bindings call's (error, *values); raise with the error's name on failure."""
    error, *values = result
    if int(error) != 0:
        raise RuntimeError(f"CUDA error {int(error)} ({error.name})")
    return values[0] if len(values) == 1 else tuple(values)


class CudaCompiler(Compiler):
    """NVRTC: `arch` is the GPU's compute capability as an int (90 for an H100)."""

    def __init__(self, arch: int, ptx: bool = False):
        supported = check(nvrtc.nvrtcGetSupportedArchs())
        self.arch, self.ptx = arch, ptx or arch not in supported
        target = f"compute_{max(a for a in supported if a <= arch)}" if self.ptx else f"sm_{arch}"
        self.options = [f"--gpu-architecture={target}".encode()]
        self.cache_key = f"nvrtc {check(nvrtc.nvrtcVersion())} {self.options}"

    def compile(self, source: str) -> bytes:
        program = check(nvrtc.nvrtcCreateProgram(source.encode(), b"kernel.cu", 0, [], []))
        try:
            status = nvrtc.nvrtcCompileProgram(program, len(self.options), self.options)[0]
            if status != nvrtc.nvrtcResult.NVRTC_SUCCESS:
                log = bytes(check(nvrtc.nvrtcGetProgramLogSize(program)))
                nvrtc.nvrtcGetProgramLog(program, log)
                raise RuntimeError(
                    f"NVRTC could not compile a kernel:\n{log.decode(errors='replace')}\n{source}"
                )
            get_size, get = (
                (nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX)
                if self.ptx
                else (nvrtc.nvrtcGetCUBINSize, nvrtc.nvrtcGetCUBIN)
            )
            binary = bytes(check(get_size(program)))
            check(get(program, binary))
            return binary
        finally:
            nvrtc.nvrtcDestroyProgram(program)


class CudaAllocator(Allocator):
    def _alloc(self, nbytes: int):
        return check(driver.cuMemAlloc(nbytes))

    def _free(self, buf) -> None:
        driver.cuMemFree(buf)

    def copyin(self, buf, src: memoryview) -> None:
        check(driver.cuMemcpyHtoD(buf, src, src.nbytes))

    def copyout(self, dest: memoryview, buf) -> None:
        check(driver.cuMemcpyDtoH(dest, buf, dest.nbytes))


class CudaProgram(Program):
    def __init__(self, name: str, binary: bytes):
        super().__init__(name, binary)
        self.module = check(driver.cuModuleLoadData(binary))
        self.function = check(driver.cuModuleGetFunction(self.module, name.encode()))

    def __call__(self, *buffers, global_size=(1,), local_size=None, vals=(), wait=False):
        pointers = (ctypes.c_uint64 * len(buffers))(*[int(b) for b in buffers])
        params = (ctypes.c_void_p * len(buffers))(
            *[ctypes.addressof(pointers) + 8 * i for i in range(len(buffers))]
        )
        block = local_size[0] if local_size else min(BLOCK_SIZE, global_size[0])
        grid = (global_size[0] + block - 1) // block
        if wait:
            start, end = check(driver.cuEventCreate(0)), check(driver.cuEventCreate(0))
            check(driver.cuEventRecord(start, 0))
        check(
            driver.cuLaunchKernel(self.function, grid, 1, 1, block, 1, 1, 0, 0, ctypes.addressof(params), 0)
        )
        if not wait:
            return None
        check(driver.cuEventRecord(end, 0))
        check(driver.cuEventSynchronize(end))
        elapsed_ms = check(driver.cuEventElapsedTime(start, end))
        driver.cuEventDestroy(start), driver.cuEventDestroy(end)
        return elapsed_ms * 1e-3


class CudaDevice(Backend):
    def __init__(self):
        try:
            check(driver.cuInit(0))
        except Exception as e:  # no driver library, or no GPU
            raise RuntimeError(f"the CUDA device needs an NVIDIA GPU and driver; cuInit failed: {e}") from e
        device = check(driver.cuDeviceGet(0))
        check(driver.cuCtxSetCurrent(check(driver.cuDevicePrimaryCtxRetain(device))))
        attribute = driver.CUdevice_attribute
        major = check(
            driver.cuDeviceGetAttribute(attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device)
        )
        minor = check(
            driver.cuDeviceGetAttribute(attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device)
        )
        super().__init__(
            "CUDA",
            CudaAllocator(),
            lambda ast: render_kernel(ast, CUDA_LANGUAGE),
            CudaCompiler(major * 10 + minor, ptx=bool(getenv("CUDA_PTX"))),
            CudaProgram,
        )

    def synchronize(self) -> None:
        check(driver.cuCtxSynchronize())

    def supports_dtype(self, dtype: DType) -> bool:
        return dtype != dtypes.float16  # cuda_fp16.h is not part of NVRTC
