"""The Python overhead of an eager training step, part by part, with the kernels taken out.

In: nothing (the 784-512-512-10 MLP and SGD step of bench.py, batch 128). Out: one line, the milliseconds
per step spent building the forward graph, in `backward()`, in the SGD update, in the schedule (signature
and cache hit) and in the rest of realize (buffers and the launch loop). After a few real steps the
device's kernel calls are replaced by a no-op, so only Python is timed; each part is the minimum over
`--steps` steps (a pure-Python path's minimum is stable on a noisy machine, its median is not).

    python extra/overhead.py [--device CPU] [--steps 300]
"""

from __future__ import annotations

import argparse
import time

from bench_mlp import mlp_init, mlp_loss, param, sgd

import minigrad
from minigrad.device import Device
from minigrad.engine.schedule import create_schedule

PARTS = ("forward", "backward", "sgd", "schedule", "realize")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=Device.DEFAULT)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    init, x, y = mlp_init([784, 512, 512, 10], 128)
    params = [param(minigrad, p, args.device).realize() for p in init]
    mx, my = (minigrad.Tensor(v, device=args.device).realize() for v in (x, y))
    for _ in range(3):  # compile every kernel and fill the schedule cache
        loss = mlp_loss(mx, my, params)
        loss.backward()
        sgd(params)
        minigrad.Tensor.realize(loss, *params)
    Device[args.device].program.__call__ = lambda self, *args, **kwargs: 0.0  # no kernels: only Python
    best = dict.fromkeys(PARTS, float("inf"))
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = mlp_loss(mx, my, params)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        sgd(params)
        t3 = time.perf_counter()
        create_schedule([loss.lazydata] + [p.lazydata for p in params])  # what realize() repeats first
        t4 = time.perf_counter()
        minigrad.Tensor.realize(loss, *params)
        t5 = time.perf_counter()
        for part, seconds in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            best[part] = min(best[part], seconds)
    best["launch"] = best.pop("realize") - best["schedule"]  # realize = its schedule + the launch loop
    parts = "  ".join(f"{part} {seconds * 1e3:.3f}" for part, seconds in best.items())
    print(f"ms per step (min of {args.steps}): {parts}  total {sum(best.values()) * 1e3:.3f}")


if __name__ == "__main__":
    main()
