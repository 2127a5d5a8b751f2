"""extra/bench.py runs (at its smallest sizes) and prints one row per workload; extra/overhead.py runs."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_bench_quick_prints_every_row():
    result = subprocess.run(
        [sys.executable, str(ROOT / "extra" / "bench.py"), "--quick", "--reps", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("hardware:") and "tinygrad ms" in lines[1]
    for row in (
        "elementwise",
        "softmax",
        "gather",
        "embedding",
        "elementwise relu exp2 sqrt",
        "elementwise sqrt log2 sin",
        "matmul 1024",
        "matmul 1024^2, a.T @ b",
        "matmul batched",
        "matmul 1025",
        "matmul 4097x64",
        "conv2d fwd+bwd",
        "conv-bn-relu",
        "MLP step",
        "tiny MLP 64-32-10 b16, eager",
        "tiny MLP",
        "1000-op graph: build + realize",
    ):
        assert any(line.startswith(row) for line in lines), (row, result.stdout)


def test_overhead_script_times_each_part():
    result = subprocess.run(
        [sys.executable, str(ROOT / "extra" / "overhead.py"), "--steps", "3", "--device", "NUMPY"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for part in ("forward", "backward", "sgd", "schedule", "launch", "total"):
        assert f" {part} " in result.stdout, result.stdout


def test_contention_script_compares_two_processes_with_one():
    result = subprocess.run(
        [sys.executable, str(ROOT / "extra" / "contention.py"), "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "alone:" in result.stdout and "2 at once:" in result.stdout and "slower at worst" in result.stdout
