"""A walkthrough of minigrad: one three-line program, followed through every stage of the compiler.

    x, w = Tensor.randn(4, 3), Tensor.randn(3, 2, requires_grad=True)
    loss = (x @ w).relu().sum()
    loss.backward()

Each section prints one stage, in the order the data flows (../README.md, "How minigrad works"):
  1. the Tensor calls, and the primitive ops each one is made of       (tensor.py)
  2. the lazy graph of primitive ops: nothing has run yet                (lazy.py, ops.py)
  3. the nodes autograd added for the gradient                           (gradient.py)
  4. the schedule: which kernels, and why each buffer exists             (engine/schedule.py)
  5. the linear IR of one kernel   (codegen/pipeline.py: lower.py, opt.py, target.py, linearize.py)
  6. its source in C, and in OpenCL C and CUDA C when those backends import (codegen/cstyle.py)
  7. the kernels running, with their times                               (runtime/, engine/realize.py)
  8. the results, checked against numpy
  9. --steps more steps of gradient descent, which the caches answer

    python examples/walkthrough.py [--device CPU] [--steps 3]

To click through the same stages in a browser: python -m minigrad viz examples/walkthrough.py (minigrad/viz.py).
"""

import argparse
import functools

import numpy as np

from minigrad import Context, Device, GlobalCounters, Tensor
from minigrad.codegen.cstyle import C_LANGUAGE
from minigrad.codegen.linearize import format_ir, linearize
from minigrad.codegen.pipeline import generate, plan
from minigrad.codegen.target import Target
from minigrad.engine.realize import print_graph, print_schedule
from minigrad.engine.schedule import create_schedule
from minigrad.lazy import toposort
from minigrad.ops import REDUCE


def heading(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)))


def trace_tensor_calls(names: list[str]) -> None:
    """Print each call of these Tensor methods, indented by how deep it is nested inside another."""
    depth = [0]

    def traced(name, method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            shown = ", ".join(f"Tensor{a.shape}" if isinstance(a, Tensor) else repr(a) for a in args)
            print(f"{'  ' * depth[0]}Tensor{self.shape}.{name}({shown})")
            depth[0] += 1
            try:
                out = method(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            print(f"{'  ' * depth[0]}  -> Tensor{out.shape}, lazy node {out.lazydata.op.name}")
            return out

        return call

    for name in names:
        setattr(Tensor, name, traced(name, getattr(Tensor, name)))


def main(device: str, steps: int) -> None:
    rng = np.random.default_rng(3)
    x_np, w_np = (
        rng.standard_normal((4, 3)).astype(np.float32),
        rng.standard_normal((3, 2)).astype(np.float32),
    )
    x, w = Tensor(x_np, device=device), Tensor(w_np, device=device, requires_grad=True)

    heading("1. Tensor calls: composite ops are made of primitive ones")
    originals = {
        n: getattr(Tensor, n) for n in ("matmul", "relu", "sum", "mul", "maximum", "reshape", "expand")
    }
    trace_tensor_calls(list(originals))
    loss = (x @ w).relu().sum()
    for name, method in originals.items():
        setattr(Tensor, name, method)

    heading("2. The lazy graph: primitive ops, nothing computed yet")
    print_graph([loss.lazydata])
    forward = {id(n) for n in toposort([loss.lazydata])}

    heading("3. The gradient graph that loss.backward() added")
    loss.backward()
    added = [n for n in toposort([w.grad.lazydata]) if id(n) not in forward]
    print(f"{len(added)} new nodes for w.grad (reverse rules of RESHAPE, REDUCE_SUM, WHERE, MUL...):")
    print("  " + " ".join(n.op.name for n in added))

    heading("4. The schedule: kernels, and the rule behind each buffer")
    schedule = create_schedule([loss.lazydata, w.grad.lazydata])
    print_schedule(schedule)
    print("(GRAPH=1 draws this schedule and the lazy graph as graphviz files)")

    kernel = next(item.ast for item in schedule if any(n.op in REDUCE for n in item.ast.toposort()))
    heading("5. The linear IR of the first reduce kernel (the matmul x @ w)")
    cpu = Device["CPU"].target  # what the optimizer knows of this CPU: vector width, caches, cores
    print(f"(optimized for: {cpu.describe()})")
    print(format_ir(linearize(kernel, plan(kernel, cpu))))

    heading("6. The same kernel as source code")
    source = generate(kernel, C_LANGUAGE, cpu)[1]
    gpu = Target(gpu=True, float4=True, max_work_group=256)  # a small GPU, to show its source without one
    print("(math helpers omitted)\n" + source[source.index("void ") :])
    for module, language in (("ops_opencl", "OPENCL_LANGUAGE"), ("ops_cuda", "CUDA_LANGUAGE")):
        try:  # rendering needs only the backend's Language; CUDA C renders without a GPU
            lang = getattr(__import__(f"minigrad.runtime.{module}", fromlist=[language]), language)
            print(f"--- as {lang.name} ---\n{generate(kernel, lang, gpu)[1]}")
        except ImportError as e:
            print(f"--- {module}: not shown ({e}) ---")

    heading(f"7. Running the schedule on {Device.canonicalize(device)} (DEBUG=1: one line per kernel)")
    with Context(DEBUG=1):
        Tensor.realize(loss, w.grad)

    heading("8. The results, checked against numpy")
    h = x_np @ w_np
    expected_grad = x_np.T @ (h > 0).astype(np.float32)
    print(f"loss   = {loss.item():.6f}   numpy: {np.maximum(h, 0).sum():.6f}")
    print(f"w.grad =\n{w.grad.numpy()}\nnumpy:\n{expected_grad}")
    print("match:", np.allclose(w.grad.numpy(), expected_grad, atol=1e-5))
    if steps:
        train(x, w, loss, steps)


def train(x: Tensor, w: Tensor, loss: Tensor, steps: int) -> None:
    """Gradient descent on w with the same program: each step builds the same graph again, so the schedule
    cache answers stages 4-6 (from step 2 on for all of it: step 1 also schedules the update of w once)."""
    heading(f"9. {steps} steps of gradient descent, w <- w - 0.1 * w.grad: the caches answer")
    for step in range(1, steps + 1):
        w.assign(w.detach() - 0.1 * w.grad)
        w.grad = None
        loss = (x @ w).relu().sum()
        loss.backward()
        GlobalCounters.reset()
        Tensor.realize(loss, w.grad)
        print(
            f"step {step}  loss {loss.item():.6f}  kernels run {GlobalCounters.kernel_count}  "
            f"schedule cache hits {GlobalCounters.schedule_cache_hits}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=Device.DEFAULT)
    parser.add_argument("--steps", type=int, default=3, help="steps of gradient descent after stage 8")
    args = parser.parse_args()
    main(args.device, args.steps)
