"""`python -m minigrad` reports devices (with the reason for each one that does not open) and the cache."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def info(*args: str, cache: pathlib.Path) -> str:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "minigrad", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_info_lists_every_device_and_the_cache(tmp_path):
    from minigrad import Device

    out = info(cache=tmp_path)
    assert out.startswith("minigrad ")
    for name in Device.known:
        line = next(line for line in out.splitlines() if line.strip().startswith(name))
        reason = Device.unavailable_reason(name)
        assert ("unavailable: " in line) == (reason is not None), line
    assert "compiler:" in out and f"kernel cache: {tmp_path / 'minigrad'}" in out


def test_clear_cache_empties_the_kernel_cache(tmp_path):
    cache = tmp_path / "minigrad"
    cache.mkdir()
    (cache / "a.bin").write_bytes(b"x" * 2048)
    assert "(1 file," in info("cache", "--info", cache=tmp_path)  # (the device report compiles a kernel)
    assert "cleared (1 file," in info("cache", "--clear", cache=tmp_path)
    assert list(cache.iterdir()) == []
    assert "cleared (" in info("--clear-cache", cache=tmp_path)  # the old spelling, after the device report
    assert [p.name for p in cache.iterdir()] == ["secret"]  # (made when the device report stored a kernel)


def test_a_device_whose_compiler_cannot_build_a_kernel_is_unavailable_with_the_compilers_error(tmp_path):
    """A compiler that exists but builds nothing (here: gcc told to target a CPU it does not know) makes
    the device unavailable, with the compiler's error line; selecting it raises that, not a source dump."""
    env = {**os.environ, "CC": "gcc -march=no-such-cpu", "XDG_CACHE_HOME": str(tmp_path)}
    report = subprocess.run(
        [sys.executable, "-m", "minigrad"],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next(line for line in report.stdout.splitlines() if line.strip().startswith("CPU"))
    assert "unavailable" in line and "no-such-cpu" in line, line
    program = "from minigrad import Tensor\nTensor([1.0]).numpy()"
    run = subprocess.run(
        [sys.executable, "-c", program],
        env={**env, "DEVICE": "CPU", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith("minigrad.device.DeviceUnavailable: the CPU device is unavailable here"), error
    assert "no-such-cpu" in error and "--- source" not in run.stderr


def test_a_device_counts_as_available_only_after_its_trivial_kernel_computes_the_right_answer():
    from minigrad.device import Backend, Device, self_test

    backend = Device["NUMPY"]
    self_test(backend)  # the real one passes

    class WrongProgram:
        global_size = local_size = (1,)

        def __call__(self, out, inp, **sizes):
            out[:] = 0  # (a NUMPY buffer is a byte array)

    class Broken(Backend):
        def __init__(self):
            self.allocator = backend.allocator

        def get_program(self, ast, nest=None):
            return WrongProgram()

    with pytest.raises(RuntimeError, match="trivial kernel"):
        self_test(Broken())


def run_pytest(*args: str, **env: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", *args]
    return subprocess.run(
        command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


def test_the_devices_under_test_can_be_chosen_and_required():
    one_test = "test/test_ops.py::test_binary_noncontiguous"
    chosen = run_pytest(one_test, "-v", MINIGRAD_TEST_DEVICES="NUMPY")
    assert chosen.returncode == 0, chosen.stdout[-2000:]
    assert "test_binary_noncontiguous[NUMPY] PASSED" in chosen.stdout and "[CPU]" not in chosen.stdout
    assert "minigrad devices tested: NUMPY" in chosen.stdout and "CPU (not selected)" in chosen.stdout
    by_option = run_pytest(one_test, "-v", "--devices", "numpy")
    assert "test_binary_noncontiguous[NUMPY] PASSED" in by_option.stdout and "[CPU]" not in by_option.stdout
    unknown = run_pytest(one_test, MINIGRAD_TEST_DEVICES="NUMPY,TPU")
    assert unknown.returncode != 0 and "unknown device(s) ['TPU']" in unknown.stderr
    missing = run_pytest(
        one_test, MINIGRAD_REQUIRE_DEVICES="NUMPY,OPENCL", MINIGRAD_OPENCL_PLATFORM="no such"
    )
    assert missing.returncode != 0, missing.stdout[-2000:]
    assert "MINIGRAD_REQUIRE_DEVICES lists OPENCL, which is unavailable" in missing.stderr


def test_conformance_prints_a_table_by_op_family():
    command = [
        sys.executable,
        "-m",
        "minigrad.conformance",
        "NUMPY",
        "-p",
        "no:xdist",
        "-k",
        "binary_noncontiguous or test_where",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:]
    table = result.stdout.split("conformance of NUMPY:")[1]
    assert re.search(r"ops: elementwise +2 +0 +0", table), table
    assert re.search(r"total +2 +0 +0", table), table
    missing = subprocess.run(
        [sys.executable, "-m", "minigrad.conformance", "OPENCL"],
        env={**os.environ, "MINIGRAD_OPENCL_PLATFORM": "no such"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2 and "OPENCL is unavailable here" in missing.stdout
