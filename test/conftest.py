"""Shared test setup: every op test runs on every device that opens on this machine.

Without a GPU, the CUDA backend still gets checked: every kernel the tests make is also rendered as CUDA C
and compiled by NVRTC (no driver needed), so a syntax or type error in the CUDA dialect fails the test that
made the kernel. This needs the `cuda` extra (cuda-bindings, nvidia-cuda-nvrtc); the report header says
whether the check is on.
"""

import pytest

from minigrad.codegen.cstyle import render_kernel
from minigrad.device import Device
from minigrad.dtype import dtypes
from minigrad.helpers import codegen_settings


def available_devices() -> list[str]:
    return [name for name in Device.known if Device.unavailable_reason(name) is None]


DEVICES = available_devices()
NVRTC_ARCH = 90  # compile-only target: an H100


def _nvrtc_check_reason() -> str | None:
    """None when the NVRTC compile check runs, else why not."""
    if "CUDA" in DEVICES:
        return "a GPU is present: CUDA kernels run for real"
    try:
        import minigrad.runtime.ops_cuda  # noqa: F401
    except ImportError as e:
        return str(e)
    return None


def pytest_report_header(config) -> str:
    reason = _nvrtc_check_reason()
    check = f"every kernel also compiled as CUDA C by NVRTC (sm_{NVRTC_ARCH})" if reason is None else reason
    return f"minigrad devices: {DEVICES}; CUDA check: {check}"


@pytest.fixture(autouse=True, scope="session")
def compile_kernels_as_cuda():
    """Wrap NUMPY's get_program (every op test runs there): each new kernel is also compiled by NVRTC."""
    if _nvrtc_check_reason() is not None:
        yield
        return
    from minigrad.runtime.ops_cuda import CUDA_LANGUAGE, CudaCompiler

    numpy_backend, compiler = Device["NUMPY"], CudaCompiler(NVRTC_ARCH)
    original = numpy_backend.get_program

    def get_program(ast, nest=None):
        half = any(node.dtype == dtypes.float16 for node in ast.toposort())  # CUDA has no float16 (yet)
        if (ast, codegen_settings(), None) not in numpy_backend._programs and not half:
            compiler.compile_cached(render_kernel(ast, CUDA_LANGUAGE)[1])
        return original(ast, nest)

    numpy_backend.get_program = get_program
    yield
    numpy_backend.get_program = original


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param
