"""The OPENCL device: kernels rendered as OpenCL C, built and run through pyopencl.

In: a kernel AST. Out: an OpenCL program binary (built once, cached on disk per device and driver), run on
device buffers. It uses the first device, over every platform, that builds and runs a trivial kernel
(Debian's `pocl-opencl-icd` gives a CPU one, PoCL); MINIGRAD_OPENCL_PLATFORM (a platform's number or part
of its name) or pyopencl's PYOPENCL_CTX ("platform:device") chooses instead. Global loops are work-items
(`get_global_id(0)`); the runtime picks the work-group size.
bool lives in `uchar` buffers (OpenCL kernels cannot take `bool*`); float16 and bfloat16 in `unsigned short`
ones, computed in float (no extension needed); double needs cl_khr_fp64, without which a device does not
support that dtype.
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from minigrad.codegen.cstyle import Language
from minigrad.device import Allocator, Backend, Compiler, Program, Target
from minigrad.dtype import DType, dtypes

try:
    import pyopencl as cl
except ImportError as e:  # the device is reported unavailable with this reason
    raise ImportError(
        "the OPENCL device needs pyopencl: pip install pyopencl (and apt-get install pocl-opencl-icd)"
    ) from e

OPENCL_TYPES = {dtypes.bool: "uchar", dtypes.uint8: "uchar", dtypes.int8: "char", dtypes.int64: "long"}
OPENCL_TYPES |= {dtypes.uint16: "ushort", dtypes.uint32: "uint", dtypes.uint64: "ulong"}
OPENCL_LANGUAGE = Language(
    name="OpenCL",
    headers="#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n",
    kernel_prefix="__kernel void",
    buffer_prefix="__global ",
    type_names={d: OPENCL_TYPES.get(d, d.c_name) for d in dtypes.all()},
    global_index="get_global_id(0)",
    group_index="get_group_id(0)",
    local_index="get_local_id(0)",
    local_prefix="__local ",
    barrier="barrier(CLK_LOCAL_MEM_FENCE);",
    vector_load="vload4(0, {ptr})",
    vector_store="vstore4((float4)({values}), 0, {ptr})",
    bitcasts="#define MG_FN static inline\n#define mg_bits(f) as_uint(f)\n#define mg_float(u) as_float(u)\n",
)


class OpenclAllocator(Allocator):
    def __init__(self, context, queue):
        super().__init__()
        self.context, self.queue = context, queue

    def _alloc(self, nbytes: int):
        return cl.Buffer(self.context, cl.mem_flags.READ_WRITE, nbytes)

    def _free(self, buf) -> None:
        buf.release()

    def copyin(self, buf, src: memoryview) -> None:
        cl.enqueue_copy(self.queue, buf, np.frombuffer(src, dtype=np.uint8), is_blocking=True)

    def copyout(self, dest: memoryview, buf) -> None:
        cl.enqueue_copy(self.queue, np.frombuffer(dest, dtype=np.uint8), buf, is_blocking=True)


class OpenclCompiler(Compiler):
    def __init__(self, context, device):
        self.context, self.device = context, device
        self.cache_key = f"opencl {device.platform.name} {device.name} {device.driver_version}"

    def compile(self, source: str) -> bytes:
        try:
            program = cl.Program(self.context, source).build()
        except cl.RuntimeError as e:
            raise RuntimeError(
                f"the OpenCL compiler rejected a kernel:\n{e}\n--- source ---\n{source}"
            ) from e
        return program.get_info(cl.program_info.BINARIES)[0]


PROBE_SOURCE = "__kernel void probe(__global float* out) { out[get_global_id(0)] = 2.0f * get_global_id(0); }"


def probe(cl_device) -> str | None:
    """None if `cl_device` builds and runs a trivial kernel, else the first line of what went wrong. PoCL
    links kernels with the system `ld` and aborts the whole process without it, so that is checked first."""
    if "Portable Computing Language" in cl_device.platform.name and not shutil.which("ld"):
        return "PoCL needs the system linker `ld`: apt-get install binutils"
    try:
        context = cl.Context([cl_device])
        queue = cl.CommandQueue(context)
        out = np.zeros(4, dtype=np.float32)
        buffer = cl.Buffer(context, cl.mem_flags.READ_WRITE, out.nbytes)
        cl.Program(context, PROBE_SOURCE).build().probe(queue, (4,), None, buffer)
        cl.enqueue_copy(queue, out, buffer, is_blocking=True)
    except Exception as e:  # any driver failure: this device is not usable
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        return next((line for line in lines if "error" in line.lower() and ":" in line), lines[0])
    return None if out.tolist() == [0.0, 2.0, 4.0, 6.0] else f"the probe kernel computed {out.tolist()}"


def candidates() -> list:
    """Every (platform number, device) pair, narrowed by MINIGRAD_OPENCL_PLATFORM or PYOPENCL_CTX."""
    pairs = [(i, d) for i, p in enumerate(cl.get_platforms()) for d in p.get_devices()]
    choice = os.environ.get("MINIGRAD_OPENCL_PLATFORM") or os.environ.get("PYOPENCL_CTX", "").split(":")[0]
    if choice.isdigit():
        return [(i, d) for i, d in pairs if i == int(choice)]
    return [(i, d) for i, d in pairs if choice.lower() in d.platform.name.lower()]


def pick_device():
    """The first device that passes `probe`; raises with each device's reason when none does."""
    reasons = []
    for number, cl_device in candidates():
        reason = probe(cl_device)
        if reason is None:
            return cl_device
        reasons.append(f"platform {number} {cl_device.platform.name!r} {cl_device.name!r}: {reason}")
    if not reasons:
        raise RuntimeError("no OpenCL device found: apt-get install pocl-opencl-icd gives a CPU one")
    raise RuntimeError("no OpenCL device built and ran a trivial kernel: " + "; ".join(reasons))


class OpenclDevice(Backend):
    def __init__(self):
        self.cl_device = pick_device()
        self.max_buffers = self.cl_device.max_parameter_size // (self.cl_device.address_bits // 8)
        self.context = cl.Context([self.cl_device])
        self.queue = cl.CommandQueue(self.context, properties=cl.command_queue_properties.PROFILING_ENABLE)
        context, cl_device, queue = self.context, self.cl_device, self.queue
        language = OPENCL_LANGUAGE
        target = Target(
            gpu=True,
            float4=True,
            local_tiles=not cl_device.type & cl.device_type.CPU,  # PoCL on a CPU: tiles ran 9-50x slower
            max_work_group=cl_device.max_work_group_size,
            compute_units=cl_device.max_compute_units,
            local_memory_bytes=cl_device.local_mem_size,
        )

        class OpenclProgram(Program):
            def __init__(self, name: str, binary: bytes):
                super().__init__(name, binary)
                self.kernel = getattr(cl.Program(context, [cl_device], [binary]).build(), name)

            def __call__(self, *buffers, global_size=(1,), local_size=None, vals=(), wait=False):
                event = self.kernel(queue, global_size, local_size, *buffers)
                if wait:
                    event.wait()
                    return (event.profile.end - event.profile.start) * 1e-9
                return None

        super().__init__(
            "OPENCL",
            OpenclAllocator(self.context, self.queue),
            language,
            OpenclCompiler(self.context, self.cl_device),
            OpenclProgram,
            target,
        )

    def synchronize(self) -> None:
        self.queue.finish()

    def supports_dtype(self, dtype: DType) -> bool:
        extension = {dtypes.float64: "cl_khr_fp64"}.get(dtype)  # (16-bit floats are computed in float)
        return extension is None or extension in self.cl_device.extensions

    def report(self) -> list[str]:
        lines = super().report()  # the optimizer target
        for number, cl_device in candidates():  # the others are probed now, for this report only
            verdict = "in use" if cl_device == self.cl_device else probe(cl_device) or "works"
            version = cl_device.platform.version.split("  ")[0]  # "OpenCL 3.0 PoCL 3.1+debian"
            lines.append(f"platform {number} {version!r} {cl_device.name!r}: {verdict}")
        return lines
