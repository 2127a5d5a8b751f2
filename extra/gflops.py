"""GFLOPS of the two contractions the kernel optimizer is judged on, next to NumPy and PyTorch in one run.

    python extra/gflops.py [--reps 5]           # native code
    CC="gcc -march=x86-64-v3" python extra/gflops.py   # AVX2 code on an AVX-512 machine

Rows: matmul 2048^2 (x @ w) and conv2d forward b32 32->64 3x3 pad 1 32^2, output realized. Each result is
checked against NumPy / PyTorch before it is timed; times are medians, the frameworks interleaved.
"""

import argparse
import time

import numpy as np

import minigrad
from minigrad import Tensor

minigrad.Device[minigrad.Device.DEFAULT]  # the CPU device first: its OpenMP waits passively (ops_cpu.py)
try:
    import torch
except ImportError:
    torch = None


def median(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def matmul_row(n: int):
    a, b = np.random.rand(n, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
    ma, mb = Tensor(a), Tensor(b)
    fns = {"minigrad": lambda: (ma @ mb).numpy(), "numpy": lambda: a @ b}
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fns["torch"] = lambda: ta @ tb
    np.testing.assert_allclose(fns["minigrad"](), a @ b, rtol=1e-3, atol=1e-2)
    return f"matmul {n}^2", 2 * n**3, fns


def conv_row(batch: int = 32, cin: int = 32, cout: int = 64, size: int = 32):
    x = np.random.rand(batch, cin, size, size).astype(np.float32)
    w = (np.random.rand(cout, cin, 3, 3).astype(np.float32) - 0.5) / 10
    mx, mw = Tensor(x), Tensor(w)
    fns = {"minigrad": lambda: mx.conv2d(mw, padding=1).numpy()}
    if torch is not None:
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        fns["torch"] = lambda: torch.nn.functional.conv2d(tx, tw, padding=1)
        expected = fns["torch"]().numpy()
        np.testing.assert_allclose(fns["minigrad"](), expected, rtol=1e-3, atol=1e-3)
    return f"conv2d b{batch} {cin}->{cout} 3x3 {size}^2", 2 * batch * cout * size * size * cin * 9, fns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    print(f"device {minigrad.Device.DEFAULT}")
    for name, flops, fns in (matmul_row(2048), conv_row()):
        for fn in fns.values():
            fn()  # compile and warm up
        times = {k: [] for k in fns}
        for _ in range(args.reps):  # interleaved: each framework sees the same noise
            for k, fn in fns.items():
                times[k].append(median(fn, 1))
        gflops = {k: flops / sorted(t)[len(t) // 2] / 1e9 for k, t in times.items()}
        cells = "  ".join(f"{k} {g:7.1f}" for k, g in gflops.items())
        print(f"{name:32s} GFLOPS: {cells}")


if __name__ == "__main__":
    main()
