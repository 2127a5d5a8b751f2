"""Shared test setup: every op test runs on every selected device that opens on this machine.

Which devices: every one that is available (`python -m minigrad` says why the others are not), narrowed by
MINIGRAD_TEST_DEVICES=CPU,NUMPY or `pytest --devices CPU,NUMPY`; the first of them in minigrad's own order
of preference is also the default device of the tests that name none. MINIGRAD_REQUIRE_DEVICES=NUMPY,CPU,OPENCL
turns a listed device that is unavailable into an error before any test runs (.ci/run sets it, so CI cannot
pass by skipping OPENCL). The summary at the end says which devices ran and why the others did not.

Without a GPU, the CUDA backend still gets checked: every kernel the tests make is also rendered as CUDA C
and compiled by NVRTC (no driver needed), so a syntax or type error in the CUDA dialect fails the test that
made the kernel. This needs the `cuda` extra (cuda-bindings, nvidia-cuda-nvrtc); the report header says
whether the check is on.
"""

import os

import pytest

from minigrad.codegen.pipeline import generate
from minigrad.device import _PREFERENCE, Device
from minigrad.dtype import dtypes
from minigrad.helpers import codegen_settings
from test.helpers import H100

DEVICES: list[str] = []  # the devices under test, filled in by pytest_configure before any test module loads
NOT_TESTED: dict[str, str] = {}  # device -> why it does not run


def _names(text: str, source: str) -> list[str]:
    names = [name.strip().upper() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in Device.known]
    if unknown:
        raise pytest.UsageError(f"{source}: unknown device(s) {unknown}; known devices are {Device.known}")
    return names


def pytest_addoption(parser):
    parser.addoption(
        "--devices", default=None, help="comma-separated devices to test (MINIGRAD_TEST_DEVICES)"
    )
    parser.addoption(
        "--device-tests-only",
        action="store_true",
        help="only tests that run on a device under test (python -m minigrad.conformance uses it)",
    )


def pytest_collection_modifyitems(config, items):
    """With --device-tests-only: keep the tests parametrized by a device under test, and those marked
    `conformance` (they loop over DEVICES themselves)."""
    if not config.getoption("--device-tests-only"):
        return
    keep, drop = [], []
    for item in items:
        device = getattr(item, "callspec", None) and item.callspec.params.get("device")
        (keep if device in DEVICES or item.get_closest_marker("conformance") else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


def pytest_configure(config):
    option = config.getoption("--devices")
    chosen = _names(option, "--devices") if option else None
    if chosen is None and os.environ.get("MINIGRAD_TEST_DEVICES"):
        chosen = _names(os.environ["MINIGRAD_TEST_DEVICES"], "MINIGRAD_TEST_DEVICES")
    required = _names(os.environ.get("MINIGRAD_REQUIRE_DEVICES", ""), "MINIGRAD_REQUIRE_DEVICES")
    DEVICES.clear()
    for name in Device.known:
        reason = Device.unavailable_reason(name)
        if name in required and reason is not None:
            raise pytest.UsageError(f"MINIGRAD_REQUIRE_DEVICES lists {name}, which is unavailable: {reason}")
        if chosen is not None and name not in chosen:
            NOT_TESTED[name] = "not selected"
        elif reason is not None:
            NOT_TESTED[name] = f"unavailable: {reason}"
        else:
            DEVICES.append(name)
    if not DEVICES:
        raise pytest.UsageError(f"no device to test: {NOT_TESTED}")
    if chosen is not None and "DEVICE" not in os.environ:
        os.environ["DEVICE"] = next(name for name in _PREFERENCE if name in DEVICES)


def pytest_terminal_summary(terminalreporter):
    skipped = "".join(f"\n  not tested: {name} ({why})" for name, why in NOT_TESTED.items())
    terminalreporter.write_line(f"minigrad devices tested: {', '.join(DEVICES)}{skipped}")


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
            compiler.compile_cached(generate(ast, CUDA_LANGUAGE, H100)[1])
        return original(ast, nest)

    numpy_backend.get_program = get_program
    yield
    numpy_backend.get_program = original


def pytest_generate_tests(metafunc):
    """A test that takes `device` and does not parametrize it itself runs once per device under test."""
    own = [m.args[0] for m in metafunc.definition.iter_markers("parametrize")]
    own = [name.strip() for names in own for name in (names.split(",") if isinstance(names, str) else names)]
    if "device" in metafunc.fixturenames and "device" not in own:
        metafunc.parametrize("device", DEVICES)
