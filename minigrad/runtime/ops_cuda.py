"""The CUDA device. In: a kernel AST. Out: CUDA C compiled by NVRTC to a cubin for this GPU (cached on disk),
launched through the driver API (cuda-bindings). A driver refuses PTX from a newer NVRTC (error 222), so PTX
is the fallback only: when NVRTC cannot target the GPU, or with CUDA_PTX=1. CI runs NVRTC without a GPU."""

import ctypes
import time

from minigrad.codegen.cstyle import Language
from minigrad.device import Allocator, Backend, Compiler, Program, Target
from minigrad.dtype import DType
from minigrad.helpers import getenv

try:
    from cuda.bindings import driver, nvrtc
except ImportError as e:  # the device is reported unavailable with this reason
    raise ImportError("the CUDA device needs NVIDIA's bindings: pip install 'minigrad[cuda]'") from e

CUDA_LANGUAGE = Language(
    name="CUDA",
    headers="#define INFINITY (__int_as_float(0x7f800000))\n#define NAN (__int_as_float(0x7fffffff))\n",
    kernel_prefix='extern "C" __global__ void',
    global_index="(blockIdx.x*blockDim.x+threadIdx.x)",
    group_index="blockIdx.x",
    local_index="threadIdx.x",
    local_prefix="__shared__ ",
    barrier="__syncthreads();",
    vector_load="*((float4*)({ptr}))",
    vector_store="*((float4*)({ptr})) = make_float4({values})",
    bitcasts="#define MG_FN static __device__ inline\n#define mg_bits(f) __float_as_uint(f)\n"
    "#define mg_float(u) __uint_as_float(u)\n",
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
                raise RuntimeError(f"NVRTC could not compile a kernel:\n{log.decode()}\n{source}")
            kind = "PTX" if self.ptx else "CUBIN"
            binary = bytes(check(getattr(nvrtc, f"nvrtcGet{kind}Size")(program)))
            check(getattr(nvrtc, f"nvrtcGet{kind}")(program, binary))
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
        pointers = [ctypes.c_uint64(int(b)) for b in buffers]  # kernelParams: the address of each argument
        params = (ctypes.c_void_p * len(buffers))(*[ctypes.addressof(p) for p in pointers])
        block = local_size[0] if local_size else min(128, global_size[0])  # threads per block
        launch = ((global_size[0] + block - 1) // block, 1, 1, block, 1, 1, 0, 0, ctypes.addressof(params), 0)
        start = time.perf_counter()
        check(driver.cuLaunchKernel(self.function, *launch))
        if wait:
            check(driver.cuCtxSynchronize())
        return time.perf_counter() - start if wait else None


class CudaDevice(Backend):
    max_buffers = 4096 // 8  # a kernel's parameters: at most 4 KiB (CUDA C Programming Guide), 8 per pointer

    def __init__(self):
        try:
            check(driver.cuInit(0))
        except Exception as e:  # no driver library, or no GPU
            raise RuntimeError(f"the CUDA device needs an NVIDIA GPU and driver; cuInit failed: {e}") from e
        device = check(driver.cuDeviceGet(0))
        check(driver.cuCtxSetCurrent(check(driver.cuDevicePrimaryCtxRetain(device))))
        capability = [f"CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_{part}" for part in ("MAJOR", "MINOR")]
        attributes = [getattr(driver.CUdevice_attribute, name) for name in capability]
        major, minor = (check(driver.cuDeviceGetAttribute(a, device)) for a in attributes)
        limits = ["MULTIPROCESSOR_COUNT", "MAX_THREADS_PER_BLOCK", "MAX_SHARED_MEMORY_PER_BLOCK"]
        units, threads, shared = (
            check(
                driver.cuDeviceGetAttribute(
                    getattr(driver.CUdevice_attribute, f"CU_DEVICE_ATTRIBUTE_{name}"), device
                )
            )
            for name in limits
        )
        target = Target(
            gpu=True,
            float4=True,
            local_tiles=True,
            max_work_group=threads,
            compute_units=units,
            local_memory_bytes=shared,
        )
        super().__init__(
            "CUDA",
            CudaAllocator(),
            CUDA_LANGUAGE,
            CudaCompiler(major * 10 + minor, ptx=bool(getenv("CUDA_PTX"))),
            CudaProgram,
            target,
        )

    def synchronize(self) -> None:
        check(driver.cuCtxSynchronize())

    def supports_dtype(self, dtype: DType) -> bool:
        return True  # float16 and bfloat16: stored in 16 bits, computed in float (codegen/cstyle.py)
