"""`python -m minigrad` reports devices (with the reason for each one that does not open) and the cache."""

import os
import pathlib
import subprocess
import sys

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
    assert "(1 file," in info(cache=tmp_path)
    assert "cleared (1 file," in info("--clear-cache", cache=tmp_path)
    assert list(cache.iterdir()) == []
