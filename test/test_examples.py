"""The examples run and reach their promised results."""

import pathlib
import re
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_plain_mlp_reaches_90_percent_on_numpy():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mlp_plain.py"), "--device", "NUMPY"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", result.stdout).group(1))
    assert accuracy >= 90.0, result.stdout


def run_example(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_mlp_digits_trains_for_a_few_steps():
    out = run_example("mlp_digits.py", "--steps", "60")
    assert float(re.search(r"test accuracy ([\d.]+)%", out).group(1)) > 50.0, out


def test_cnn_digits_saves_and_reloads_its_checkpoint(tmp_path):
    out = run_example("cnn_digits.py", "--steps", "30", "--checkpoint", str(tmp_path / "cnn.safetensors"))
    trained, reloaded = re.search(r"trained model ([\d.]+)%, reloaded ([\d.]+)%", out).groups()
    assert trained == reloaded and float(reloaded) > 30.0, out
    assert (tmp_path / "cnn.safetensors").exists()


def test_tiny_gpt_beats_the_unigram_baseline():
    out = run_example("tiny_gpt.py", "--steps", "40", "--sample", "20")
    loss, baseline = map(
        float, re.search(r"held-out loss ([\d.]+) nats/char vs unigram baseline ([\d.]+)", out).groups()
    )
    assert loss < baseline, out


def test_cnn_fashion_runs_a_few_steps(tmp_path):
    sys.path.insert(0, str(ROOT / "extra"))
    from datasets import DEBIAN_FASHION_MNIST, write_idx

    data = DEBIAN_FASHION_MNIST
    if not pathlib.Path(data, "train-images-idx3-ubyte.gz").exists():  # CI installs it; else a small fake set
        rng, data = np.random.default_rng(0), str(tmp_path)
        for split, n in [("train", 200), ("t10k", 100)]:
            write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
            write_idx(tmp_path / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))
    out = run_example("cnn_fashion.py", "--steps", "5", "--data", data, "--test-limit", "1000")
    assert re.search(r"test accuracy [\d.]+% on \d+ Fashion-MNIST test images", out), out


def test_ad_tour_prints_checkable_results():
    out = run_example("ad_tour.py", "--small", "--device", "CPU")
    assert "hvp with e1 and e2 at (1, 1): [ 802. -400.], [-400.  200.]" in out, out
    assert out.count("(the global minimum is all ones)") == 2 and "minimum found: [1. 1.]" in out, out
    peaks = [float(p) for p in re.findall(r"peak +([\d.]+) MiB", out)]
    assert len(peaks) == 3 and max(peaks[1:]) < 0.6 * peaks[0], out
    assert out.count("gradients equal: True") == 3, out


def test_walkthrough_prints_every_stage_in_order():
    out = run_example("walkthrough.py", "--device", "CPU")
    headings = re.findall(r"^=== (\d)\. ", out, flags=re.M)
    assert headings == list("123456789"), out
    assert re.search(r"step 3  loss [\d.]+  kernels run \d+  schedule cache hits 2", out), out
    for stage in (
        "matmul(Tensor(3, 2))",
        "REDUCE_SUM",
        "buffer because: R1 requested",
        "LOOP",
        "void r_",
        "***",
    ):
        assert stage in out, stage
    assert "--- as OpenCL ---" in out or "ops_opencl: not shown" in out
    assert "--- as CUDA ---" in out or "ops_cuda: not shown" in out
    assert "\nmatch: True\n" in out, out


def figures(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "extra" / "readme_figures.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def test_readme_figures_are_the_measured_ones():
    """The README's results, measured again by extra/readme_figures.py (times are not checked)."""
    result = figures("--check", "--only", "walkthrough", "mlp_plain", "mlp_digits", "tiny_gpt", "checkpoint")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def test_readme_figures_check_fails_on_a_stale_figure_and_write_fixes_it(tmp_path):
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    stale = re.sub(r"[\d.]+ MiB of live buffers at peak", "1.00 MiB of live buffers at peak", text)
    readme.write_text(stale)
    result = figures("--check", "--only", "checkpoint", "--readme", str(readme))
    assert result.returncode == 1 and "checkpoint: 1.00 -> " in result.stdout, result.stdout + result.stderr
    assert figures("--write", "--only", "checkpoint", "--readme", str(readme)).returncode == 0
    assert readme.read_text() == text
