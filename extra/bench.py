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
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import minigrad
from minigrad import Device

try:
    import torch
except ImportError:
    torch = None
try:
    import importlib.metadata

    import tinygrad
    import tinygrad.codegen

    TINYGRAD_VERSION = importlib.metadata.version("tinygrad")
except ImportError:
    tinygrad, TINYGRAD_VERSION = None, "absent"

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


def median_time(fn, reps: int) -> float:
    fn()  # warm up: compile, allocate
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


SETTLE_S = 0.2  # pause before each framework's turn (see interleaved)


def interleaved(fns: dict, reps: int, seconds: float = 1.0, settle: bool = True) -> dict:
    """Median seconds per call for each framework, the frameworks taking turns `reps` times. A fast workload
    runs several calls a turn (about `seconds` per framework in all, at most 30 a turn): on a noisy machine
    the median of 7 samples of a 10 ms step still moves by 20% from run to run.

    With `settle`, each turn starts with a pause and one untimed call. Thread pools spin for a while after
    their work (OpenBLAS about 0.1 s, OpenMP too) and take the cores from whatever runs next: right after
    numpy's matmul, minigrad's 1024^2 matmul took 47-52 ms instead of 22, and torch's 30 instead of 13-17.
    Each framework is so timed in its steady state, as in a training loop."""
    per_call = {}
    for name, fn in fns.items():
        fn()
        start = time.perf_counter()
        fn()
        per_call[name] = time.perf_counter() - start
    calls = {name: max(1, min(30, int(seconds / reps / max(t, 1e-6)))) for name, t in per_call.items()}
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            if settle:
                time.sleep(SETTLE_S)
                fn()
            for _ in range(calls[name]):
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


# ---- the frameworks: minigrad and tinygrad share one Tensor API, so one function times both ---------

TINYGRAD_DEVICE = {"CPU": "CPU", "OPENCL": "CL", "CUDA": "CUDA"}


def tensor_frameworks(device: str) -> dict:
    """{name: (module, its device name)} for the tinygrad-style libraries that run on `device`."""
    found = {"minigrad": (minigrad, device)}
    tg_device = TINYGRAD_DEVICE.get(Device.canonicalize(device))
    if tinygrad is not None and tg_device is not None and _tinygrad_opens(tg_device):
        found["tinygrad"] = (tinygrad, tg_device)
    return found


@functools.cache
def _tinygrad_opens(tg_device: str) -> bool:
    """Can tinygrad open this device? (Its OpenCL runtime looks for a system libOpenCL that pip's PoCL
    does not install.) Its columns are left empty where it cannot."""
    try:
        tinygrad.Device[tg_device]
        return True
    except Exception as error:  # any failure to open the device: compare without tinygrad
        print(f"tinygrad cannot open {tg_device} ({type(error).__name__}: {error}); its columns stay empty")
        return False


def for_each_framework(device: str, make) -> dict:
    """{name: make(module, device name)} for minigrad and tinygrad alike."""
    return {name: make(module, dev) for name, (module, dev) in tensor_frameworks(device).items()}


def synchronized(fn, name: str, device: str):
    """`fn` followed by waiting for the device (GPU kernels run after their launch returns)."""
    if name == "numpy":
        return fn
    if name == "torch":
        return (lambda: (fn(), torch.cuda.synchronize())) if TORCH_DEVICE == "cuda" else fn
    module, dev = tensor_frameworks(device)[name]
    return lambda: (fn(), module.Device[dev].synchronize())


# ---- workloads: each returns ({framework: function to time}, work per call, unit) ----------------------


def elementwise_chain(device: str, n: int):
    arrays = [np.random.default_rng(i).standard_normal(n).astype(np.float32) for i in range(3)]

    def chain(a, b, c):  # numpy, torch, minigrad and tinygrad all read this
        return ((((a + b) * c - a) * 0.5 + b) * c - 1.0).clip(-1, 1)

    def make(fw, dev):
        tensors = [fw.Tensor(x, device=dev).realize() for x in arrays]
        return lambda: chain(*tensors).realize()

    fns = {"numpy": lambda: chain(*arrays), **for_each_framework(device, make)}
    if torch:
        t = [to_torch(x) for x in arrays]
        fns["torch"] = lambda: chain(*t)
    return fns, 4 * n * 4, "GB/s"  # bytes: three inputs read, one output written


def reductions(device: str, n: int, kind: str):
    x = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)

    def numpy_softmax():
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def make(fw, dev):
        m = fw.Tensor(x, device=dev).realize()
        return (lambda: m.sum(1).realize()) if kind == "sum" else (lambda: m.softmax(-1).realize())

    fns = {
        "numpy": (lambda: x.sum(1)) if kind == "sum" else numpy_softmax,
        **for_each_framework(device, make),
    }
    if torch:
        tx = to_torch(x)
        fns["torch"] = (lambda: tx.sum(1)) if kind == "sum" else (lambda: tx.softmax(-1))
    return fns, n * n * 4 * (1 if kind == "sum" else 2), "GB/s"


def gather_rows(device: str, rows: int, batch: int):
    """A minibatch of rows picked by an index tensor, `x[idx]` (sampling a dataset, an embedding lookup)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 784)).astype(np.float32)
    idx = rng.integers(0, rows, batch).astype(np.int32)

    def make(fw, dev):
        mx, midx = fw.Tensor(x, device=dev).realize(), fw.Tensor(idx, device=dev).realize()
        return lambda: mx[midx].realize()

    fns = {"numpy": lambda: x[idx], **for_each_framework(device, make)}
    if torch:
        tx, tidx = to_torch(x), to_torch(idx).long()
        fns["torch"] = lambda: tx[tidx]
    return fns, 2 * batch * 784 * 4 + batch * 4, "GB/s"


def embedding_grad(device: str, rows: int, batch: int, dim: int = 64):
    """The gradient of an embedding lookup, `table[idx]`: each upstream row added into the table at its index
    (repeated indices add up). numpy: np.add.at. Rate: the table's gradient written plus the rows read."""
    rng = np.random.default_rng(0)
    table = rng.standard_normal((rows, dim)).astype(np.float32)
    idx = rng.integers(0, rows, batch).astype(np.int32)
    g = rng.standard_normal((batch, dim)).astype(np.float32)

    def make(fw, dev):
        t = _param(fw, table, dev).realize()
        mi, mg = fw.Tensor(idx, device=dev).realize(), fw.Tensor(g, device=dev).realize()

        def step():
            t.grad = None
            (t[mi] * mg).sum().backward()
            t.grad.realize()

        return step

    def numpy_step():
        grad = np.zeros_like(table)
        np.add.at(grad, idx, g)

    fns = {"numpy": numpy_step, **for_each_framework(device, make)}
    if torch:
        tt, tidx, tg = to_torch(table, requires_grad=True), to_torch(idx).long(), to_torch(g)

        def torch_step():
            tt.grad = None
            (tt[tidx] * tg).sum().backward()

        fns["torch"] = torch_step
    return fns, (rows + 2 * batch) * dim * 4 + batch * 4, "GB/s"


def matmul(device: str, n: int):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)

    def make(fw, dev):
        ma, mb = fw.Tensor(a, device=dev).realize(), fw.Tensor(b, device=dev).realize()
        return lambda: (ma @ mb).realize()

    fns = {"numpy": lambda: a @ b, **for_each_framework(device, make)}
    if torch:
        ta, tb = to_torch(a), to_torch(b)
        fns["torch"] = lambda: ta @ tb
    return fns, 2 * n**3, "GFLOPS"


def checked(fns: dict, outputs: dict) -> dict:
    """`fns`, once each framework's outputs (`outputs[name]()`: arrays, computed by the timed function)
    match torch's (to 1e-3, relative to each output's largest value: a long sum rounds differently):
    a row must compute what a user computes before it is timed."""
    if "torch" not in outputs:
        return fns
    expected = outputs["torch"]()
    for name, get in outputs.items():
        for i, (got, want) in enumerate(zip(get(), expected)):
            scale = float(np.abs(want).max(initial=1.0))
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * scale, err_msg=f"{name} output {i}")
    return fns


def conv2d(device: str, batch: int, backward: bool):
    """conv2d(x, w, b, padding=1), its output realized; with `backward`, also the gradients of x, w and b
    for an upstream gradient g (a loss (out * g).sum())."""
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((batch, 32, 32, 32)), rng.standard_normal((batch, 64, 32, 32))
    w, b = rng.standard_normal((64, 32, 3, 3)) / 17, rng.standard_normal(64)
    x, g, w, b = (v.astype(np.float32) for v in (x, g, w, b))
    results = {}

    def make(fw, dev):
        def step():
            mx, mw, mb = (_param(fw, v, dev) for v in (x, w, b))
            out = mx.conv2d(mw, mb, padding=1)
            if backward:
                (out * fw.Tensor(g, device=dev)).sum().backward()
            results[fw.__name__] = [out, mx.grad, mw.grad, mb.grad] if backward else [out]
            fw.Tensor.realize(*results[fw.__name__])

        return step

    fns = for_each_framework(device, make)
    outputs = {name: (lambda name=name: (fns[name](), [t.numpy() for t in results[name]])[1]) for name in fns}
    if torch:

        def torch_fn():
            tx, tw, tb = (to_torch(v, requires_grad=backward) for v in (x, w, b))
            out = torch.nn.functional.conv2d(tx, tw, tb, padding=1)
            if backward:
                (out * to_torch(g)).sum().backward()
            return [out, tx.grad, tw.grad, tb.grad] if backward else [out]

        fns["torch"] = torch_fn
        outputs["torch"] = lambda: [t.detach().cpu().numpy() for t in torch_fn()]
    return checked(fns, outputs), (3 if backward else 1) * 2 * batch * 64 * 32 * 32 * 32 * 9, "GFLOPS"


def _param(fw, value: np.ndarray, dev: str):
    """A tensor that gets a gradient (tinygrad 0.14 gives one to every float tensor in the graph)."""
    t = fw.Tensor(value, device=dev)
    if hasattr(t, "requires_grad"):
        t.requires_grad = True
    return t


def _mlp_init(sizes: list[int], batch: int):
    rng = np.random.default_rng(0)
    shapes = [s for a, b in zip(sizes, sizes[1:]) for s in ((a, b), (b,))]
    init = [(rng.standard_normal(s) * 0.05).astype(np.float32) for s in shapes]
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    return init, x, rng.integers(0, sizes[-1], batch).astype(np.int32)


def _mlp_loss(x, y, params):
    """The same MLP and loss in minigrad and tinygrad (relu between linear layers)."""
    h = x
    for i in range(0, len(params), 2):
        h = h.linear(params[i], params[i + 1])
        h = h.relu() if i + 2 < len(params) else h
    return h.sparse_categorical_crossentropy(y)


def _sgd(params) -> None:
    for p in params:
        p.assign(p.detach() - 0.01 * p.grad)
        p.grad = None


def _torch_mlp_step(init, x, y):
    params = [to_torch(p, requires_grad=True) for p in init]
    tx, ty = to_torch(x), to_torch(y).long()
    opt = torch.optim.SGD(params, lr=0.01)

    def step():
        h = tx
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            h = torch.relu(h) if i + 2 < len(params) else h
        loss = torch.nn.functional.cross_entropy(h, ty)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def mlp_step(device: str, batch: int):
    sizes = [784, 512, 512, 10]
    init, x, y = _mlp_init(sizes, batch)

    def make(fw, dev):
        params = [_param(fw, p, dev).realize() for p in init]
        mx, my = fw.Tensor(x, device=dev).realize(), fw.Tensor(y, device=dev).realize()

        def step():
            loss = _mlp_loss(mx, my, params)
            loss.backward()
            _sgd(params)
            fw.Tensor.realize(loss, *params)

        return step

    fns = for_each_framework(device, make)
    if torch:
        fns["torch"] = _torch_mlp_step(init, x, y)
    return fns, 6 * batch * sum(a * b for a, b in zip(sizes, sizes[1:])), "GFLOPS"


def mlp_jit(device: str, sizes: list[int], batch: int):
    """An MLP's SGD step under TinyJit in minigrad and tinygrad (eager in torch): kernels, little Python."""
    init, x, y = _mlp_init(sizes, batch)

    def make(fw, dev):
        params = [_param(fw, p, dev).realize() for p in init]
        mx, my = fw.Tensor(x, device=dev).realize(), fw.Tensor(y, device=dev).realize()

        @fw.TinyJit
        def step(bx, by):
            loss = _mlp_loss(bx, by, params)
            loss.backward()
            _sgd(params)
            return loss.realize(*params)

        return lambda: step(mx, my)

    fns = for_each_framework(device, make)
    if torch:
        fns["torch"] = _torch_mlp_step(init, x, y)
    return fns, 6 * batch * sum(a * b for a, b in zip(sizes, sizes[1:])), "GFLOPS"


def graph_of_1000_ops(device: str, cached: bool):
    """Build and realize a graph of about 1,000 ops on 16x16 data (so kernels cost nothing). Uncached: the
    schedule caches are off and the in-memory program caches are emptied first, so each call schedules,
    lowers and renders every kernel (the compiled binaries still come from each framework's disk cache)."""

    def build(x):
        for i in range(90):
            x = (x * 0.99 + 0.01).relu() + 0.1  # 4 ops
            if i % 9 == 8:
                x = x.softmax(-1) * 16  # a reduce: a new kernel
        return x

    def make(fw, dev):
        x = fw.Tensor(np.linspace(-1, 1, 256, dtype=np.float32).reshape(16, 16), device=dev).realize()
        if fw is minigrad:

            def run():
                if cached:
                    return build(x).realize()
                minigrad.Device[dev]._programs.clear()
                with minigrad.Context(SCHEDULE_CACHE=0):
                    return build(x).realize()

        else:

            def run():
                if cached:
                    return build(x).realize()
                tinygrad.codegen.to_program_cache.clear()
                with tinygrad.Context(SCACHE=0):
                    return build(x).realize()

        return run

    return for_each_framework(device, make), None, "-"


COLD_START = """
import sys
import numpy as np
fw = __import__(sys.argv[1])
sys.path.insert(0, sys.argv[3])
from bench import _mlp_init, _mlp_loss, _param, _sgd
init, x, y = _mlp_init([784, 512, 512, 10], 128)
params = [_param(fw, p, sys.argv[2]) for p in init]
loss = _mlp_loss(fw.Tensor(x, device=sys.argv[2]), fw.Tensor(y, device=sys.argv[2]), params)
loss.backward()
_sgd(params)
print(loss.realize(*params).item())
"""


def cold_start(device: str):
    """Process start to the first MLP training step's loss, with an empty kernel cache (a new directory)."""

    def make(fw, dev):
        def run():
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, XDG_CACHE_HOME=cache, CACHEDB=os.path.join(cache, "tinygrad.db"))
                here = os.path.dirname(os.path.abspath(__file__))
                args = [sys.executable, "-c", COLD_START, fw.__name__, dev, here]
                subprocess.run(args, env=env, check=True, capture_output=True)

        return run

    return for_each_framework(device, make), None, "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test, as in CI)")
    parser.add_argument("--only", default="", help="run only the rows whose name contains this text")
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
    versions = f"torch {torch.__version__ if torch else 'absent'}, tinygrad {TINYGRAD_VERSION}"
    print(f"hardware: {hardware} ({versions})")
    rows = [
        ("elementwise 8-op chain, 3x16M", elementwise_chain(args.device, 1 << (16 if q else 24))),
        ("sum axis 1, 4096^2", reductions(args.device, 256 if q else 4096, "sum")),
        ("softmax -1, 4096^2", reductions(args.device, 256 if q else 4096, "softmax")),
        ("gather 128 of 60000 rows, x[idx]", gather_rows(args.device, 600 if q else 60000, 128)),
        ("embedding grad, 512 of 50000x64", embedding_grad(args.device, 500 if q else 50000, 512)),
        ("matmul 1024^2", matmul(args.device, 128 if q else 1024)),
        ("matmul 2048^2", matmul(args.device, 128 if q else 2048)),
        *([("matmul 4096^2", matmul(args.device, 128 if q else 4096))] if gpu else []),
        ("conv2d fwd b32 32->64 3x3 32^2", conv2d(args.device, 2 if q else 32, backward=False)),
        ("conv2d fwd+bwd b32 32->64 3x3 32^2", conv2d(args.device, 2 if q else 32, backward=True)),
        ("MLP step 784-512-512-10 b128", mlp_step(args.device, 128)),
        ("MLP step 784-512-512-10, TinyJit", mlp_jit(args.device, [784, 512, 512, 10], 128)),
        ("tiny MLP 64-32-10 b16, TinyJit", mlp_jit(args.device, [64, 32, 10], 16)),
        ("1000-op graph: schedule + lower", graph_of_1000_ops(args.device, cached=False)),
        ("1000-op graph seen again (cache)", graph_of_1000_ops(args.device, cached=True)),
        *([] if q else [("cold start: first MLP step", cold_start(args.device))]),
    ]
    columns = ["numpy", "torch", "tinygrad"]
    print(
        f"{'benchmark':36s}"
        + "".join(f"{c + ' ms':>12s}" for c in columns)
        + f"{'minigrad ms':>12s}"
        + "".join(f"{'vs ' + c:>12s}" for c in columns)
        + f"{'minigrad rate':>17s} {'of hw':>6s}"
    )
    for name, (fns, work, unit) in [r for r in rows if args.only in r[0]]:
        fns = {k: synchronized(fn, k, args.device) for k, fn in fns.items()}
        slow = "matmul 2048" in name or "conv" in name or "cold" in name
        times = interleaved(
            fns,
            max(2, args.reps // 2) if slow else args.reps,
            seconds=0 if "cold" in name else 1,
            settle="cold" not in name,  # a cold start is a new process each time
        )
        mine = times["minigrad"]
        cells = "".join(f"{times[c] * 1e3:12.2f}" if c in times else f"{'-':>12s}" for c in columns)
        ratios = "".join(f"{times[c] / mine:11.2f}x" if c in times else f"{'-':>12s}" for c in columns)
        rate = "" if work is None else f"{work / mine / 1e9:11.2f} {unit:5s}"
        limit = "" if work is None else f"{work / mine / 1e9 / (bandwidth if unit == 'GB/s' else peak):6.0%}"
        print(f"{name:36s}{cells}{mine * 1e3:12.2f}{ratios}{rate:>17s} {limit:>6s}")
    print("ratios are other-framework time / minigrad time: above 1x, minigrad is faster")


if __name__ == "__main__":
    main()
