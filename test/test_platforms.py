"""The OPENCL backend's platform probe: it uses the first OpenCL device that builds and runs a trivial kernel,
and says why each one before it did not.

The real case: PoCL's PyPI wheel (LLVM 14) cannot build for a CPU family newer than LLVM 14 knows ("unknown
target CPU 'generic'"), while Debian's pocl-opencl-icd can. qemu-user emulates such a CPU on any x86-64 host
(`-cpu EPYC-Milan,family=26,model=2` reads as AMD Zen 5), so the probe is tested on one wherever qemu is.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import types

import pytest

opencl = pytest.importorskip("minigrad.runtime.ops_opencl", reason="the OPENCL backend needs pyopencl")


def fake_platforms(*names: str) -> list:
    """Platforms with one device each, named as given: enough for candidates() and pick_device()."""
    platforms = []
    for name in names:
        platform = types.SimpleNamespace(name=name, version=f"OpenCL 3.0 {name}  Linux, Release")
        device = types.SimpleNamespace(platform=platform, name=f"{name} cpu")
        platform.get_devices = lambda device=device: [device]
        platforms.append(platform)
    return platforms


@pytest.fixture
def two_platforms(monkeypatch):
    platforms = fake_platforms("Broken PoCL", "Working PoCL")  # the same objects at every call, as pyopencl's
    monkeypatch.setattr(opencl.cl, "get_platforms", lambda: platforms)
    monkeypatch.delenv("MINIGRAD_OPENCL_PLATFORM", raising=False)
    monkeypatch.delenv("PYOPENCL_CTX", raising=False)
    monkeypatch.setattr(
        opencl, "probe", lambda d: "error: unknown target CPU 'generic'" if "Broken" in d.name else None
    )


def test_the_first_device_that_runs_the_trivial_kernel_is_used(two_platforms):
    assert opencl.pick_device().name == "Working PoCL cpu"


def test_a_platform_can_be_chosen_by_number_or_name(two_platforms, monkeypatch):
    monkeypatch.setenv("MINIGRAD_OPENCL_PLATFORM", "working")
    assert [d.name for _, d in opencl.candidates()] == ["Working PoCL cpu"]
    monkeypatch.setenv("MINIGRAD_OPENCL_PLATFORM", "0")
    with pytest.raises(
        RuntimeError, match="platform 0 'Broken PoCL' 'Broken PoCL cpu': error: unknown target CPU"
    ):
        opencl.pick_device()
    monkeypatch.delenv("MINIGRAD_OPENCL_PLATFORM")
    monkeypatch.setenv("PYOPENCL_CTX", "1:0")
    assert [d.name for _, d in opencl.candidates()] == ["Working PoCL cpu"]


def test_python_m_minigrad_reports_every_platform_with_its_verdict(two_platforms):
    backend = object.__new__(opencl.OpenclDevice)  # its report() needs only the device in use
    backend.language = None  # and no optimizer target line: the platform lines alone
    backend.cl_device = opencl.pick_device()
    assert backend.report() == [
        "platform 0 'OpenCL 3.0 Broken PoCL' 'Broken PoCL cpu': error: unknown target CPU 'generic'",
        "platform 1 'OpenCL 3.0 Working PoCL' 'Working PoCL cpu': in use",
    ]


def test_no_platform_says_what_to_install(monkeypatch):
    monkeypatch.setattr(opencl.cl, "get_platforms", lambda: [])
    with pytest.raises(RuntimeError, match="apt-get install pocl-opencl-icd"):
        opencl.pick_device()


def test_pocl_is_not_touched_without_the_system_linker(monkeypatch):
    """PoCL aborts the whole process (uncatchable) when it cannot run `ld`: the probe checks first."""
    device = fake_platforms("Portable Computing Language")[0].get_devices()[0]
    monkeypatch.setattr(opencl.shutil, "which", lambda name: None)
    assert "apt-get install binutils" in opencl.probe(device)


PROBE_SCRIPT = """
from minigrad.runtime.ops_opencl import candidates, probe
from minigrad import Tensor
for number, device in candidates():
    print("probe", device.platform.version, "->", probe(device))
print("result", (Tensor([1.0, 2.0, 3.0], device="OPENCL") * 2).sum().item())
"""


def emulated(cpu: str) -> str:
    """PROBE_SCRIPT's output when run by qemu-user emulating `cpu`, with a fresh PoCL kernel cache."""
    env = {**os.environ, "POCL_CACHE_DIR": tempfile.mkdtemp(), "XDG_CACHE_HOME": tempfile.mkdtemp()}
    command = ["qemu-x86_64", "-cpu", cpu, sys.executable, "-c", PROBE_SCRIPT]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def wheel_pocl_present() -> bool:
    return any("PoCL 3.0" in p.version for p in opencl.cl.get_platforms())


@pytest.mark.skipif(not shutil.which("qemu-x86_64"), reason="needs qemu-user (apt-get install qemu-user)")
@pytest.mark.skipif(
    not wheel_pocl_present(), reason="needs PoCL's PyPI wheel (pip install pocl-binary-distribution)"
)
def test_on_a_cpu_family_that_the_pocl_wheel_cannot_target_the_probe_passes_over_it():
    zen5 = emulated("EPYC-Milan,family=26,model=2")
    wheel = next(line for line in zen5.splitlines() if line.startswith("probe") and "PoCL 3.0" in line)
    assert "unknown target CPU 'generic'" in wheel, zen5
    if any("debian" in p.version for p in opencl.cl.get_platforms()):  # Debian's PoCL runs the kernels there
        assert "result 12.0" in zen5, zen5
    zen3 = emulated("EPYC-Milan")  # the control: the same wheel on a CPU family LLVM 14 knows
    wheel = next(line for line in zen3.splitlines() if line.startswith("probe") and "PoCL 3.0" in line)
    assert wheel.endswith("-> None"), zen3
