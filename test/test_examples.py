"""The examples run and reach their promised results."""

import pathlib
import re
import subprocess
import sys

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
