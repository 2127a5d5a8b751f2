"""Benchmarks: minigrad against NumPy and PyTorch (and tinygrad when installed), measured in one run.

    python extra/bench.py [--device CPU] [--reps 5] [--quick]

On a GPU device (--device CUDA) PyTorch runs on the GPU too, both frameworks are synchronized before a
time is taken, and a matmul 4096^2 row is added.

Each row times the same computation in every framework, interleaving the frameworks and taking the median
of the repetitions (the machines are shared and noisy). minigrad times are end to end: building the lazy
graph, scheduling and running (compiled kernels are cached after the first, untimed, run). The hardware
rows measure this machine's limits in the same run: memory bandwidth with a stream-triad kernel compiled
from C (OpenMP, all cores), and the float32 FLOP rate of a large BLAS matmul.
"""

import argparse
import ctypes
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np

from minigrad import Device, Tensor

try:
    import torch
except ImportError:
    torch = None
try:
    import tinygrad
except ImportError:
    tinygrad = None

TRIAD_C = """
#include <stddef.h>
void triad(float* a, const float* b, const float* c, float s, size_t n) {
  #pragma omp parallel for
  for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
}
"""


TORCH_DEVICE = "cpu"  # "cuda" when minigrad runs on CUDA


def to_torch(x: np.ndarray, **kwargs):
    return torch.tensor(x, device=TORCH_DEVICE, **kwargs)


def synchronized(fn, device: str):
    """`fn` followed by waiting for the device (GPU kernels run after their launch returns)."""

    def run():
        out = fn()
        if device == "torch":
            torch.cuda.synchronize() if TORCH_DEVICE == "cuda" else None
        else:
            Device[device].synchronize()
        return out

    return run


def median_time(fn, reps: int) -> float:
    fn()  # warm up: compile, allocate
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns: dict, reps: int, seconds: float = 1.0) -> dict:
    """Median seconds per framework, running the frameworks in turn within each repetition. Fast workloads
    get more than `reps` repetitions (about `seconds` per framework, at most 200): on a noisy machine the
    median of 7 samples of a 10 ms step still moves by 20% from run to run."""
    warmup = []
    for fn in fns.values():
        fn()
        start = time.perf_counter()
        fn()
        warmup.append(time.perf_counter() - start)
    reps = max(reps, min(200, int(seconds / max(max(warmup), 1e-6))))
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def stream_triad_gbs(n: int = 1 << 25) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        src, lib = os.path.join(tmp, "triad.c"), os.path.join(tmp, "triad.so")
        open(src, "w").write(TRIAD_C)
        subprocess.run(
            ["cc", "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", src, "-o", lib], check=True
        )
        triad = ctypes.CDLL(lib).triad
        a, b, c = np.zeros(n, np.float32), np.ones(n, np.float32), np.ones(n, np.float32)
        args = [ctypes.c_void_p(x.ctypes.data) for x in (a, b, c)]
        seconds = median_time(lambda: triad(*args, ctypes.c_float(3.0), ctypes.c_size_t(n)), 7)
    return 3 * n * 4 / seconds / 1e9


def blas_peak_gflops(n: int = 2048) -> float:
    a, b = np.random.rand(n, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
    return 2 * n**3 / median_time(lambda: a @ b, 5) / 1e9


def gpu_limits() -> tuple[float, float]:
    """(copy GB/s, float32 matmul GFLOPS) of the GPU, measured through torch."""
    a = torch.empty(1 << 28, dtype=torch.float32, device="cuda")
    copy = median_time(synchronized(lambda: a.clone(), "torch"), 7)
    m = torch.randn(8192, 8192, device="cuda")
    matmul = median_time(synchronized(lambda: m @ m, "torch"), 5)
    return 2 * a.numel() * 4 / copy / 1e9, 2 * 8192**3 / matmul / 1e9


def elementwise_chain(device: str, n: int):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]

    def numpy_fn():
        a, b, c = arrays
        return ((((a + b) * c - a) * 0.5 + b) * c - 1.0).clip(-1, 1)

    m = [Tensor(x, device=device).realize() for x in arrays]
    fns = {
        "numpy": numpy_fn,
        "minigrad": lambda: ((((m[0] + m[1]) * m[2] - m[0]) * 0.5 + m[1]) * m[2] - 1.0).clip(-1, 1).realize(),
    }
    if torch:
        t = [to_torch(x) for x in arrays]
        fns["torch"] = lambda: ((((t[0] + t[1]) * t[2] - t[0]) * 0.5 + t[1]) * t[2] - 1.0).clip(-1, 1)
    return fns, 4 * n * 4  # bytes: three inputs read, one output written


def reductions(device: str, n: int, kind: str):
    x = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    m = Tensor(x, device=device).realize()
    if kind == "sum":
        fns = {"numpy": lambda: x.sum(1), "minigrad": lambda: m.sum(1).realize()}
        if torch:
            tx = to_torch(x)
            fns["torch"] = lambda: tx.sum(1)
    else:

        def numpy_softmax():
            e = np.exp(x - x.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)

        fns = {"numpy": numpy_softmax, "minigrad": lambda: m.softmax(-1).realize()}
        if torch:
            tx = to_torch(x)
            fns["torch"] = lambda: tx.softmax(-1)
    return fns, n * n * 4 * (1 if kind == "sum" else 2)


def matmul(device: str, n: int):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
    ma, mb = Tensor(a, device=device).realize(), Tensor(b, device=device).realize()
    fns = {"numpy": lambda: a @ b, "minigrad": lambda: (ma @ mb).realize()}
    if torch:
        ta, tb = to_torch(a), to_torch(b)
        fns["torch"] = lambda: ta @ tb
    return fns, 2 * n**3


def conv2d(device: str, batch: int):
    rng = np.random.default_rng(0)
    x, w = (
        rng.standard_normal((batch, 32, 32, 32)).astype(np.float32),
        rng.standard_normal((64, 32, 3, 3)).astype(np.float32),
    )

    def minigrad_fn():
        mx, mw = Tensor(x, device=device, requires_grad=True), Tensor(w, device=device, requires_grad=True)
        mx.conv2d(mw, padding=1).sum().backward()
        Tensor.realize(mx.grad, mw.grad)

    fns = {"minigrad": minigrad_fn}
    if torch:

        def torch_fn():
            tx, tw = to_torch(x, requires_grad=True), to_torch(w, requires_grad=True)
            torch.nn.functional.conv2d(tx, tw, padding=1).sum().backward()

        fns["torch"] = torch_fn
    return fns, 3 * 2 * batch * 64 * 32 * 32 * 32 * 9


def mlp_step(device: str, batch: int):
    rng = np.random.default_rng(0)
    shapes = [(784, 512), (512,), (512, 512), (512,), (512, 10), (10,)]
    init = [(rng.standard_normal(s) * 0.05).astype(np.float32) for s in shapes]
    x, y = rng.standard_normal((batch, 784)).astype(np.float32), rng.integers(0, 10, batch).astype(np.int32)
    params = [Tensor(p, device=device, requires_grad=True).realize() for p in init]
    mx, my = Tensor(x, device=device).realize(), Tensor(y, device=device).realize()

    def minigrad_fn():
        w1, b1, w2, b2, w3, b3 = params
        loss = (
            mx.linear(w1, b1).relu().linear(w2, b2).relu().linear(w3, b3).sparse_categorical_crossentropy(my)
        )
        loss.backward()
        for p in params:
            p.assign(p.detach() - 0.01 * p.grad)
            p.grad = None
        Tensor.realize(loss, *params)

    fns = {"minigrad": minigrad_fn}
    if torch:
        tparams = [to_torch(p, requires_grad=True) for p in init]
        tx, ty = to_torch(x), to_torch(y).long()
        opt = torch.optim.SGD(tparams, lr=0.01)

        def torch_fn():
            w1, b1, w2, b2, w3, b3 = tparams
            h = torch.relu(tx @ w1 + b1)
            loss = torch.nn.functional.cross_entropy(torch.relu(h @ w2 + b2) @ w3 + b3, ty)
            opt.zero_grad()
            loss.backward()
            opt.step()

        fns["torch"] = torch_fn
    return fns, 6 * batch * (784 * 512 + 512 * 512 + 512 * 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test, as in CI)")
    args = parser.parse_args()
    q = args.quick
    global TORCH_DEVICE
    gpu = Device.canonicalize(args.device) == "CUDA"
    TORCH_DEVICE = "cuda" if gpu and torch and torch.cuda.is_available() else "cpu"
    if TORCH_DEVICE == "cuda":
        bandwidth, peak = gpu_limits()
        hardware = f"{torch.cuda.get_device_name()}: copy {bandwidth:.0f} GB/s, torch float32 matmul"
        hardware += f" {peak:.0f} GFLOPS"
    else:
        bandwidth, peak = stream_triad_gbs(1 << (20 if q else 25)), blas_peak_gflops(256 if q else 2048)
        hardware = f"stream triad {bandwidth:.1f} GB/s, BLAS float32 matmul {peak:.1f} GFLOPS"
    print(
        f"hardware: {hardware} "
        f"(torch {torch.__version__ if torch else 'absent'}, "
        f"tinygrad {getattr(tinygrad, '__version__', 'absent')})"
    )
    rows = [
        ("elementwise 8-op chain, 3x16M", *elementwise_chain(args.device, 1 << (16 if q else 24)), "GB/s"),
        ("sum axis 1, 4096^2", *reductions(args.device, 256 if q else 4096, "sum"), "GB/s"),
        ("softmax -1, 4096^2", *reductions(args.device, 256 if q else 4096, "softmax"), "GB/s"),
        ("matmul 1024^2", *matmul(args.device, 128 if q else 1024), "GFLOPS"),
        ("matmul 2048^2", *matmul(args.device, 128 if q else 2048), "GFLOPS"),
        *([("matmul 4096^2", *matmul(args.device, 128 if q else 4096), "GFLOPS")] if gpu else []),
        ("conv2d fwd+bwd b32 32->64 3x3 32^2", *conv2d(args.device, 2 if q else 32), "GFLOPS"),
        ("MLP step 784-512-512-10 b128", *mlp_step(args.device, 128), "GFLOPS"),
    ]
    print(
        f"{'benchmark':36s} {'numpy ms':>10s} {'torch ms':>10s} {'minigrad ms':>12s} "
        f"{'vs numpy':>9s} {'vs torch':>9s} {'minigrad rate':>16s} {'of hw':>6s}"
    )
    for name, fns, work, unit in rows:
        fns = {
            k: fn if k == "numpy" else synchronized(fn, args.device if k == "minigrad" else k)
            for k, fn in fns.items()
        }
        times = interleaved(
            fns, args.reps if "matmul 2048" not in name and "conv" not in name else max(2, args.reps // 2)
        )
        mine = times["minigrad"]
        rate = work / mine / 1e9
        limit = bandwidth if unit == "GB/s" else peak

        def cell(key):
            return f"{times[key] * 1e3:10.2f}" if key in times else f"{'-':>10s}"

        def ratio(key):
            return f"{times[key] / mine:8.2f}x" if key in times else f"{'-':>9s}"

        print(
            f"{name:36s} {cell('numpy')} {cell('torch')} {mine * 1e3:12.2f} {ratio('numpy')} "
            f"{ratio('torch')} {rate:10.2f} {unit:5s} {rate / limit:5.0%}"
        )
    print("ratios are other-framework time / minigrad time: above 1x, minigrad is faster")


if __name__ == "__main__":
    main()
