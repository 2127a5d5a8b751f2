"""A tour of automatic differentiation, on functions small enough to check by hand.

    python examples/ad_tour.py [--device CPU]

1. Dual numbers: forward mode is arithmetic on a + b*eps with eps^2 = 0.
2. Forward vs reverse mode: a Jacobian costs one walk per input (forward) or per output (reverse).
3. A Hessian-vector product (forward over reverse) drives Newton-CG on the Rosenbrock function.
4. Checkpointing: a 32-layer MLP's backward pass holds less memory when it recomputes its activations.
Every number printed comes with what it should be, so you can check it.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import minigrad
from minigrad import Context, Device, GlobalCounters, Tensor, dtypes


def heading(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


# ---- 1. dual numbers ----------------------------------------------------------------------------------


class Dual:
    """a + b*eps with eps*eps = 0: carrying b along computes the derivative exactly, with no limits."""

    def __init__(self, value: float, tangent: float):
        self.value, self.tangent = value, tangent

    def __add__(self, other: Dual) -> Dual:
        return Dual(self.value + other.value, self.tangent + other.tangent)

    def __mul__(self, other: Dual) -> Dual:  # (a + b eps)(c + d eps) = ac + (ad + bc) eps
        return Dual(self.value * other.value, self.value * other.tangent + self.tangent * other.value)

    def sin(self) -> Dual:  # sin(a + b eps) = sin a + b cos(a) eps
        return Dual(math.sin(self.value), self.tangent * math.cos(self.value))


def dual_numbers(device: str) -> None:
    heading("1. dual numbers: f(x) = x * x * sin(x) at x = 1.5")
    by_hand = (lambda x: x * x * x.sin())(Dual(1.5, 1.0))
    _, tangent = minigrad.jvp(
        lambda x: x * x * x.sin(), (Tensor([1.5], device=device),), (Tensor([1.0], device=device),)
    )
    exact = 2 * 1.5 * math.sin(1.5) + 1.5**2 * math.cos(1.5)
    print(f"Dual(1.5, 1) through f gives tangent {by_hand.tangent:.6f}")
    print(f"minigrad.jvp gives                  {tangent.item():.6f}")
    print(f"f'(x) = 2x sin x + x^2 cos x        {exact:.6f}")
    print("minigrad.jvp does the same in its graph: FORWARD_RULES in gradient.py give each op's tangent.")


# ---- 2. forward vs reverse mode ------------------------------------------------------------------------


def cost_of(jacobian_fn, f, x: Tensor) -> tuple[np.ndarray, int, int, float]:
    """The Jacobian, the lazy nodes its graph has, the kernels that computed it, and the seconds it took."""
    start = time.perf_counter()
    jac = jacobian_fn(f)(x)
    nodes = len(minigrad.lazy.toposort([jac.lazydata]))
    GlobalCounters.reset()
    values = jac.numpy()
    return values, nodes, GlobalCounters.kernel_count, time.perf_counter() - start


def forward_vs_reverse(device: str, n: int) -> None:
    heading(f"2. forward vs reverse mode: Jacobians of R^{n} -> R^1 (wide) and R^1 -> R^{n} (tall)")
    w = Tensor(np.linspace(-1, 1, n, dtype=np.float32), device=device)
    wide = lambda x: (x.sin() * w).sum(keepdim=True)  # noqa: E731   one output, n inputs
    tall = lambda t: (w * t).sin()  # noqa: E731                      n outputs, one input
    x, t = Tensor(np.linspace(0, 1, n, dtype=np.float32), device=device), Tensor([0.5], device=device)
    print(f"{'Jacobian':28s} {'mode':8s} {'walks':>6s} {'graph nodes':>12s} {'kernels':>8s} {'seconds':>8s}")
    for name, f, point, outputs, inputs in (
        ("wide (1 x %d)" % n, wide, x, 1, n),
        ("tall (%d x 1)" % n, tall, t, n, 1),
    ):
        results = {}
        for mode, transform, walks in (
            ("reverse", minigrad.jacrev, outputs),
            ("forward", minigrad.jacfwd, inputs),
        ):
            results[mode], nodes, kernels, seconds = cost_of(transform, f, point)
            print(f"{name:28s} {mode:8s} {walks:6d} {nodes:12d} {kernels:8d} {seconds:8.3f}")
        assert np.allclose(results["reverse"], results["forward"], atol=1e-5)
    print("Both modes agree. Reverse mode needs one walk per output, forward mode one per input: a gradient")
    print("(wide) is cheap in reverse, a tall Jacobian in forward. minigrad.jacobian picks the cheaper one.")


# ---- 3. Newton-CG with Hessian-vector products ---------------------------------------------------------


def rosenbrock(x: Tensor) -> Tensor:
    return (100 * (x[1:] - x[:-1] * x[:-1]).square() + (1 - x[:-1]).square()).sum()


def conjugate_gradient(hessian_times, b: np.ndarray, iterations: int) -> np.ndarray:
    """Solve H p = b with only products H v (H is never formed)."""
    p, r = np.zeros_like(b), b.copy()
    d = r.copy()
    for _ in range(iterations):
        hd = hessian_times(d)
        curvature = d @ hd
        if curvature <= 0:  # not positive definite along d: stop with what we have
            return p if p.any() else b
        alpha = (r @ r) / curvature
        p, r_next = p + alpha * d, r - alpha * hd
        if np.linalg.norm(r_next) < 1e-10:
            return p
        d, r = r_next + (r_next @ r_next) / (r @ r) * d, r_next
    return p


def newton_cg(device: str, dim: int, start: list[float]) -> None:
    heading(f"3. Newton-CG on the {dim}-dimensional Rosenbrock function, from {start[:2]}...")
    dtype = dtypes.float64 if Device[device].supports_dtype(dtypes.float64) else dtypes.float32
    as_tensor = lambda a: Tensor(a, device=device, dtype=dtype)  # noqa: E731
    x, hvps = np.array((start * dim)[:dim], dtype=np.float64), 0
    for step in range(100):
        value, gradient = minigrad.value_and_grad(rosenbrock)(as_tensor(x))
        g = gradient.numpy().astype(np.float64)
        done = np.linalg.norm(g) < 1e-6
        if step % 10 == 0 or done:
            norm = np.linalg.norm(g)
            print(f"step {step:2d}  f = {value.item():.3e}  |grad| = {norm:.3e}  hvps so far {hvps}")
        if done:
            break

        def hessian_times(v: np.ndarray) -> np.ndarray:
            nonlocal hvps
            hvps += 1
            return minigrad.hvp(rosenbrock, (as_tensor(x),), (as_tensor(v),))[0].numpy().astype(np.float64)

        direction = conjugate_gradient(hessian_times, -g, iterations=2 * dim)
        step_size, f0 = 1.0, value.item()
        while rosenbrock(as_tensor(x + step_size * direction)).item() > f0 + 1e-4 * step_size * (
            g @ direction
        ):
            step_size /= 2  # backtracking line search
        x = x + step_size * direction
    found = np.round(x, 5) if dim <= 4 else f"max |x_i - 1| = {np.abs(x - 1).max():.1e}"
    print(f"minimum found: {found} (the global minimum is all ones)")


def hessian_columns(device: str) -> None:
    dtype = dtypes.float64 if Device[device].supports_dtype(dtypes.float64) else dtypes.float32
    one = Tensor([1.0, 1.0], device=device, dtype=dtype)
    columns = [
        minigrad.hvp(rosenbrock, (one,), (Tensor(e, device=device, dtype=dtype),))[0].numpy()
        for e in np.eye(2)
    ]
    print(f"hvp with e1 and e2 at (1, 1): {columns[0].round(6)}, {columns[1].round(6)}")
    print("by hand, the Hessian there is [[2 - 400(y - 3x^2), -400x], [-400x, 200]]")
    print("                            = [[802, -400], [-400, 200]]")


# ---- 4. checkpointing ----------------------------------------------------------------------------------


def block(h: Tensor, *weights: Tensor) -> Tensor:
    for w in weights:
        h = (h @ w).relu()
    return h


def checkpointing(device: str, layers: int, width: int, batch: int) -> None:
    heading(f"4. checkpointing: a {layers}-layer MLP, width {width}, batch {batch}")
    rng = np.random.default_rng(0)
    weights = [
        Tensor(rng.standard_normal((width, width)).astype(np.float32) / width**0.5, device=device).realize()
        for _ in range(layers)
    ]
    x = Tensor(rng.standard_normal((batch, width)).astype(np.float32), device=device).realize()
    activation_mib, gradients_mib = batch * width * 4 / 2**20, layers * width * width * 4 / 2**20
    print(
        f"each activation is {activation_mib:.2f} MiB; the weight gradients alone are {gradients_mib:.2f} MiB"
    )
    reference = None
    for segment in (None, 8, 4):
        h = x
        for i in range(0, layers, segment or layers):
            part = weights[i : i + (segment or layers)]
            h = minigrad.checkpoint(block)(h, *part) if segment else block(h, *part)
        loss = h.square().mean()
        grads = loss.gradient(*weights)
        GlobalCounters.reset()
        held = GlobalCounters.mem_used
        Tensor.realize(loss, *grads)
        peak = (GlobalCounters.mem_peak - held) / 2**20
        values = [g.numpy() for g in grads]
        reference = reference or values
        same = all(np.allclose(a, b, atol=1e-5) for a, b in zip(reference, values))
        label = "no checkpoint" if segment is None else f"checkpoint every {segment} layers"
        kernels = GlobalCounters.kernel_count
        print(f"{label:30s} peak {peak:7.2f} MiB  kernels {kernels:4d}  gradients equal: {same}")
    print(
        "Checkpointed segments keep only their inputs; the backward pass runs each segment's forward again."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default=Device.DEFAULT)
    parser.add_argument("--small", action="store_true", help="smaller sizes (the test suite uses this)")
    args = parser.parse_args()
    with Context(DEVICE=args.device):
        dual_numbers(args.device)
        forward_vs_reverse(args.device, n=16 if args.small else 64)
        newton_cg(args.device, dim=2, start=[-1.2, 1.0])
        hessian_columns(args.device)
        newton_cg(args.device, dim=8 if args.small else 20, start=[0.0])
        checkpointing(
            args.device, layers=32, width=64 if args.small else 256, batch=64 if args.small else 256
        )


if __name__ == "__main__":
    main()
