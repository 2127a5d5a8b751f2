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
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from math import prod

import numpy as np
from bench_mlp import mlp_init, mlp_loss, param, sgd

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
        # where its layers put what they create (BatchNorm's statistics): DEV in 0.14, Device.DEFAULT before
        if hasattr(tinygrad.helpers, "DEV"):
            tinygrad.helpers.DEV.value = tg_device
        else:
            tinygrad.Device.DEFAULT = tg_device
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


class Methods:
    """The unary math of a tinygrad-style tensor (x.exp2()) called like numpy's and torch's (m.exp2(x))."""

    exp2, log2 = staticmethod(lambda x: x.exp2()), staticmethod(lambda x: x.log2())
    sin, sqrt, relu = (
        staticmethod(lambda x: x.sin()),
        staticmethod(lambda x: x.sqrt()),
        staticmethod(lambda x: x.relu()),
    )


class NumpyMath:
    exp2, log2, sin, sqrt = np.exp2, np.log2, np.sin, np.sqrt
    relu = staticmethod(lambda x: np.maximum(x, 0))


CHAINS = {  # each reads three arrays; m is the framework's math (numpy, torch, Methods)
    "8-op chain": lambda m, a, b, c: ((((a + b) * c - a) * 0.5 + b) * c - 1.0).clip(-1, 1),
    "relu exp2 sqrt chain": lambda m, a, b, c: m.sqrt(m.exp2(m.relu(a * 1.5 + b) * c - a)),
    "sqrt log2 sin chain": lambda m, a, b, c: m.sin(m.log2(m.sqrt(a * a + 1.0) + m.sin(b) * 0.5) * c),
}


def elementwise_chain(device: str, n: int, chain: str):
    arrays = [np.random.default_rng(i).standard_normal(n).astype(np.float32) for i in range(3)]
    fn = CHAINS[chain]

    def make(fw, dev):
        tensors = [fw.Tensor(x, device=dev).realize() for x in arrays]
        return lambda: fn(Methods, *tensors).realize()

    fns = {"numpy": lambda: fn(NumpyMath, *arrays), **for_each_framework(device, make)}
    if torch:
        t = [to_torch(x) for x in arrays]
        fns["torch"] = lambda: fn(torch, *t)
    return checked_results(fns), 4 * n * 4, "GB/s"  # bytes: three inputs read, one output written


def _numpy_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


REDUCTIONS = {  # kind: (numpy, minigrad and tinygrad, torch, bytes moved per element) over an n x n matrix
    "sum": (lambda x: x.sum(1), lambda m: m.sum(1), lambda t: t.sum(1), 4),
    "sum0": (lambda x: x.sum(0), lambda m: m.sum(0), lambda t: t.sum(0), 4),
    "max": (lambda x: x.max(1), lambda m: m.max(1), lambda t: t.max(1).values, 4),
    "softmax": (_numpy_softmax, lambda m: m.softmax(-1), lambda t: t.softmax(-1), 8),
    "cumsum": (lambda x: x.cumsum(1), lambda m: m.cumsum(1), lambda t: t.cumsum(1), 8),
}


def reductions(device: str, n: int, kind: str):
    x = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    numpy_fn, tensor_fn, torch_fn, nbytes = REDUCTIONS[kind]

    def make(fw, dev):
        m = fw.Tensor(x, device=dev).realize()
        return lambda: tensor_fn(m).realize()

    fns = {"numpy": lambda: numpy_fn(x), **for_each_framework(device, make)}
    if torch:
        tx = to_torch(x)
        fns["torch"] = lambda: torch_fn(tx)
    return checked_results(fns), n * n * nbytes, "GB/s"


def attention(device: str, batch: int, heads: int, length: int, width: int):
    """softmax(q @ k.T / sqrt(width)) @ v, one head's scores a (length x length) matrix."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((batch, heads, length, width)).astype(np.float32) for _ in range(3))
    scale = 1 / np.sqrt(width)

    def make(fw, dev):
        tq, tk, tv = (fw.Tensor(a, device=dev).realize() for a in (q, k, v))
        return lambda: ((tq @ tk.transpose(-1, -2) * scale).softmax(-1) @ tv).realize()

    fns = {
        "numpy": lambda: (
            _numpy_softmax((q @ k.swapaxes(-1, -2) * scale).reshape(-1, length)).reshape(
                batch, heads, length, length
            )
            @ v
        ),
        **for_each_framework(device, make),
    }
    if torch:
        tq, tk, tv = (to_torch(a) for a in (q, k, v))
        fns["torch"] = lambda: torch.softmax(tq @ tk.transpose(-1, -2) * scale, -1) @ tv
    return checked_results(fns), 4 * batch * heads * length * length * width, "GFLOPS"


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
    return checked_results(fns), 2 * batch * 784 * 4 + batch * 4, "GB/s"


def embedding_grad(device: str, rows: int, batch: int, dim: int = 64):
    """The gradient of an embedding lookup, `table[idx]`: each upstream row added into the table at its index
    (repeated indices add up). numpy: np.add.at. Rate: the table's gradient written plus the rows read."""
    rng = np.random.default_rng(0)
    table = rng.standard_normal((rows, dim)).astype(np.float32)
    idx = rng.integers(0, rows, batch).astype(np.int32)
    g = rng.standard_normal((batch, dim)).astype(np.float32)

    def make(fw, dev):
        t = param(fw, table, dev).realize()
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


def matmul(device: str, m: int, k: int, n: int, batch: tuple = (), transpose: str = ""):
    """a @ b of shapes batch+(m, k) and batch+(k, n). transpose "a" or "b": that operand is stored the other way
    round and passed transposed (a.T @ b, a @ b.T): the kernel reads a strided view."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal(batch + ((k, m) if transpose == "a" else (m, k))).astype(np.float32)
    b = rng.standard_normal(batch + ((n, k) if transpose == "b" else (k, n))).astype(np.float32)

    def swap(x):  # the last two dims swapped, in numpy, torch, minigrad and tinygrad
        return x.swapaxes(-1, -2) if isinstance(x, np.ndarray) else x.transpose(-1, -2)

    def op(x, y):
        return (swap(x) if transpose == "a" else x) @ (swap(y) if transpose == "b" else y)

    def make(fw, dev):
        ma, mb = fw.Tensor(a, device=dev).realize(), fw.Tensor(b, device=dev).realize()
        return lambda: op(ma, mb).realize()

    fns = {"numpy": lambda: op(a, b), **for_each_framework(device, make)}
    if torch:
        ta, tb = to_torch(a), to_torch(b)
        fns["torch"] = lambda: op(ta, tb)
    return checked_results(fns), 2 * m * k * n * prod(batch), "GFLOPS"


def as_numpy(result) -> list:
    """A timed function's result (an array, a tensor of any framework, or a list of them) as numpy arrays."""
    results = result if isinstance(result, (list, tuple)) else [result]
    out = []
    for r in results:
        r = r.detach().cpu() if torch is not None and isinstance(r, torch.Tensor) else r
        out.append(np.asarray(r.numpy() if hasattr(r, "numpy") else r))
    return out


def checked_results(fns: dict) -> dict:
    """`fns`, once the results they return match torch's (numpy's without torch): see `checked`."""
    reference = "torch" if "torch" in fns else "numpy"
    outputs = {name: (lambda fn=fn: as_numpy(fn())) for name, fn in fns.items()}
    return checked(fns, outputs, reference)


def checked(fns: dict, outputs: dict, reference: str = "torch") -> dict:
    """`fns`, once each framework's outputs (`outputs[name]()`: arrays, computed by the timed function)
    match the reference's (to 1e-3, relative to each output's largest value: a long sum rounds differently):
    a row must compute what a user computes before it is timed. A peer (tinygrad) that disagrees is left
    out of the row, with the reason printed; minigrad disagreeing stops the run."""
    if reference not in outputs:
        return fns
    expected, kept = outputs[reference](), dict(fns)
    for name, get in outputs.items():
        if name == reference:  # computed once: a training step's second call starts from other weights
            continue
        for i, (got, want) in enumerate(zip(get(), expected)):
            scale = float(np.abs(want).max(initial=1.0))
            try:
                np.testing.assert_allclose(
                    got, want, rtol=1e-3, atol=1e-3 * scale, err_msg=f"{name} output {i}"
                )
            except AssertionError as error:
                if name == "minigrad":
                    raise
                reason = " ".join(str(error).split())[:160]
                print(f"{name} left out of a row: its output {i} differs from {reference}'s ({reason})")
                del kept[name]
                break
    return kept


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
            mx, mw, mb = (param(fw, v, dev) for v in (x, w, b))
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


def conv_bn_relu_block(device: str, batch: int):
    """conv 3x3 -> batchnorm (training) -> relu, twice, 32 channels at 32^2, forward and backward: the
    output, the gradients of x and of every conv and batchnorm parameter, and the running statistics, all
    realized. The upstream gradient is random (a loss (out * g).sum())."""
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((batch, 32, 32, 32)), rng.standard_normal((batch, 32, 32, 32))
    ws = [rng.standard_normal((32, 32, 3, 3)) / 17 for _ in range(2)]
    x, g, *ws = (v.astype(np.float32) for v in (x, g, *ws))
    results = {}

    def make(fw, dev):
        convs = [param(fw, w, dev).realize() for w in ws]
        norms = [importlib.import_module(fw.__name__ + ".nn").BatchNorm2d(32) for _ in ws]
        mg = fw.Tensor(g, device=dev).realize()

        def step():
            fw.Tensor.training = True
            mx = param(fw, x, dev)
            out = mx
            for w, bn in zip(convs, norms):
                out = bn(out.conv2d(w, padding=1)).relu()
            (out * mg).sum().backward()
            grads = (
                [mx.grad] + [t.grad for t in convs] + [t.grad for bn in norms for t in (bn.weight, bn.bias)]
            )
            stats = [t for bn in norms for t in (bn.running_mean, bn.running_var)]
            fw.Tensor.realize(out, *grads, *stats)
            for t in convs + [t for bn in norms for t in (bn.weight, bn.bias)]:
                t.grad = None
            results[fw.__name__] = [out, *grads]
            fw.Tensor.training = False

        return step

    fns = for_each_framework(device, make)
    outputs = {name: (lambda name=name: (fns[name](), [t.numpy() for t in results[name]])[1]) for name in fns}
    if torch:
        tconvs = [to_torch(w, requires_grad=True) for w in ws]
        tnorms = [torch.nn.BatchNorm2d(32).to(TORCH_DEVICE) for _ in ws]
        tg = to_torch(g)

        def torch_fn():
            tx = to_torch(x, requires_grad=True)
            out = tx
            for w, bn in zip(tconvs, tnorms):
                out = torch.relu(bn(torch.nn.functional.conv2d(out, w, padding=1)))
            for t in tconvs + [t for bn in tnorms for t in bn.parameters()]:
                t.grad = None
            (out * tg).sum().backward()
            return (
                [out, tx.grad] + [t.grad for t in tconvs] + [t.grad for bn in tnorms for t in bn.parameters()]
            )

        fns["torch"] = torch_fn
        outputs["torch"] = lambda: [t.detach().cpu().numpy() for t in torch_fn()]
    return checked(fns, outputs), 2 * 3 * 2 * batch * 32 * 32 * 32 * 32 * 9, "GFLOPS"


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
        return loss

    return step


def mlp_step(device: str, sizes: list[int], batch: int):
    """An MLP's eager SGD step: build the graph, backward, update, realize the loss and the parameters.
    The first step's loss is checked against torch's."""
    init, x, y = mlp_init(sizes, batch)

    def make(fw, dev):
        params = [param(fw, p, dev).realize() for p in init]
        mx, my = fw.Tensor(x, device=dev).realize(), fw.Tensor(y, device=dev).realize()

        def step():
            loss = mlp_loss(mx, my, params)
            loss.backward()
            sgd(params)
            fw.Tensor.realize(loss, *params)
            return loss

        return step

    fns = for_each_framework(device, make)
    if torch:
        fns["torch"] = _torch_mlp_step(init, x, y)
    return checked_results(fns), 6 * batch * sum(a * b for a, b in zip(sizes, sizes[1:])), "GFLOPS"


def mlp_jit(device: str, sizes: list[int], batch: int):
    """An MLP's SGD step under TinyJit in minigrad and tinygrad (eager in torch): kernels, little Python."""
    init, x, y = mlp_init(sizes, batch)

    def make(fw, dev):
        params = [param(fw, p, dev).realize() for p in init]
        mx, my = fw.Tensor(x, device=dev).realize(), fw.Tensor(y, device=dev).realize()

        @fw.TinyJit
        def step(bx, by):
            loss = mlp_loss(bx, by, params)
            loss.backward()
            sgd(params)
            return loss.realize(*params)

        return lambda: step(mx, my)

    fns = for_each_framework(device, make)
    if torch:
        fns["torch"] = _torch_mlp_step(init, x, y)
    return checked_results(fns), 6 * batch * sum(a * b for a, b in zip(sizes, sizes[1:])), "GFLOPS"


def graph_of_1000_ops(device: str, cached: bool):
    """Build and realize a graph of about 1,000 ops on 16x16 data (so kernels cost nothing; torch runs the same
    ops eagerly, as users of either write them: per-op cost against per-op cost). Uncached: the
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

    fns = for_each_framework(device, make)
    if torch and cached:  # torch runs each op as it comes: the same 1,000 ops, eagerly
        x = to_torch(np.linspace(-1, 1, 256, dtype=np.float32).reshape(16, 16))
        fns["torch"] = lambda: build(x)
    return checked_results(fns), None, "-"


COLD_START = """
import sys
import numpy as np
fw = __import__(sys.argv[1])
sys.path.insert(0, sys.argv[3])
from bench_mlp import mlp_init, mlp_loss, param, sgd
init, x, y = mlp_init([784, 512, 512, 10], 128)
params = [param(fw, p, sys.argv[2]) for p in init]
loss = mlp_loss(fw.Tensor(x, device=sys.argv[2]), fw.Tensor(y, device=sys.argv[2]), params)
loss.backward()
sgd(params)
print(loss.realize(*params).item())
"""


def cold_start(device: str):
    """Process start to the first MLP training step's loss, with an empty kernel cache (a new directory)."""

    def make(fw, dev):
        def run():
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, XDG_CACHE_HOME=cache, CACHEDB=os.path.join(cache, "tinygrad.db"))
                if fw is not minigrad:  # CC="gcc -march=x86-64-v3" is minigrad's ISA knob, not a program name
                    env.pop("CC", None)
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
    d, small, conv_batch = args.device, 1 << (16 if q else 24), 2 if q else 32
    mm = 128 if q else 1024  # the square matmuls' side (quick: all small)
    rows = [
        *[(f"elementwise {c}, 3x16M", elementwise_chain(d, small, c)) for c in CHAINS],
        ("sum axis 1, 4096^2", reductions(d, 256 if q else 4096, "sum")),
        ("softmax -1, 4096^2", reductions(d, 256 if q else 4096, "softmax")),
        ("sum axis 0, 4096^2", reductions(d, 256 if q else 4096, "sum0")),
        ("max axis 1, 4096^2", reductions(d, 256 if q else 4096, "max")),
        ("cumsum axis 1, 4096^2", reductions(d, 256 if q else 4096, "cumsum")),
        ("attention 8x8 heads, 256 x 64", attention(d, 2 if q else 8, 8, 64 if q else 256, 64)),
        ("gather 128 of 60000 rows, x[idx]", gather_rows(d, 600 if q else 60000, 128)),
        ("embedding grad, 512 of 50000x64", embedding_grad(d, 500 if q else 50000, 512)),
        ("matmul 1024^2", matmul(d, mm, mm, mm)),
        ("matmul 2048^2", matmul(d, 2 * mm, 2 * mm, 2 * mm)),
        *([("matmul 4096^2", matmul(d, 4 * mm, 4 * mm, 4 * mm))] if gpu else []),
        ("matmul 1024^2, a.T @ b", matmul(d, mm, mm, mm, transpose="a")),
        ("matmul 1024^2, a @ b.T", matmul(d, mm, mm, mm, transpose="b")),
        ("matmul batched 16 x 256^2", matmul(d, mm // 4, mm // 4, mm // 4, batch=(16,))),
        *[(f"matmul {n}^2", matmul(d, *(3 * (n if not q else 100 + n % 7,)))) for n in (1000, 1023, 1025)],
        ("matmul 4097x64 @ 64x64", matmul(d, 4097 if not q else 257, 64, 64)),
        ("conv2d fwd b32 32->64 3x3 32^2", conv2d(d, conv_batch, backward=False)),
        ("conv2d fwd+bwd b32 32->64 3x3 32^2", conv2d(d, conv_batch, backward=True)),
        ("conv-bn-relu x2 fwd+bwd b32 32ch 32^2", conv_bn_relu_block(d, conv_batch)),
        ("MLP step 784-512-512-10 b128", mlp_step(d, [784, 512, 512, 10], 128)),
        ("MLP step 784-512-512-10, TinyJit", mlp_jit(d, [784, 512, 512, 10], 128)),
        ("tiny MLP 64-32-10 b16, eager", mlp_step(d, [64, 32, 10], 16)),
        ("tiny MLP 64-32-10 b16, TinyJit", mlp_jit(d, [64, 32, 10], 16)),
        ("1000-op graph: build + realize", graph_of_1000_ops(d, cached=True)),
        ("1000-op graph, schedule caches off", graph_of_1000_ops(d, cached=False)),
        *([] if q else [("cold start: first MLP step", cold_start(d))]),
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
