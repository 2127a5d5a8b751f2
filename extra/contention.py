"""Two minigrad processes sharing the cores: how much slower is each than one alone?

In: nothing (a workload of bench.py's shapes: five eager training steps of a 784-512-512-10 MLP, batch 128,
and a 1024^2 matmul per round, on the CPU device). Out: the seconds per round of one process alone, of each of two processes
started together, and their ratio. Sharing 2 cores fairly gives about 2x; OpenMP's default spin-wait gave
4.5-40x (minigrad now waits passively, OMP_WAIT_POLICY; set it to ACTIVE to see the old behaviour).

    python extra/contention.py [--rounds 20] [--processes 2] [--device CPU]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from minigrad import Tensor, nn
from minigrad.nn.optim import SGD
from minigrad.nn.state import get_parameters

# No torch here: torch starts its own OpenMP, spin-waiting, which minigrad's kernels would share (ops_cpu.py).


class MLP:
    def __init__(self, sizes: list[int]):
        self.layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]

    def __call__(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = layer(x).relu()
        return self.layers[-1](x)


def work(device: str, rounds: int) -> float:
    """Seconds per round of the workload, after a warm-up round (kernels compiled); results checked."""
    Tensor.manual_seed(0)
    rng = np.random.default_rng(0)
    model = MLP([784, 512, 512, 10])  # on DEVICE, which together() sets
    Tensor.realize(*get_parameters(model))
    optimizer = SGD(get_parameters(model), lr=0.01)
    x = Tensor(rng.standard_normal((128, 784), dtype=np.float32), device=device).realize()
    y = Tensor(rng.integers(0, 10, 128).astype(np.int32), device=device).realize()
    a = rng.standard_normal((1024, 1024), dtype=np.float32)
    ta = Tensor(a, device=device).realize()

    def one_round() -> None:
        with Tensor.train():
            for _ in range(5):
                optimizer.zero_grad()
                loss = model(x).sparse_categorical_crossentropy(y).backward()
                optimizer.step()
                loss.realize()
        product = (ta @ ta).numpy()
        assert np.allclose(product[:4, :4], a[:4] @ a[:, :4], rtol=1e-3, atol=1e-2), "matmul is wrong"
        assert np.isfinite(loss.item()), "the loss is not finite"

    one_round()
    start = time.perf_counter()
    for _ in range(rounds):
        one_round()
    return (time.perf_counter() - start) / rounds


def together(count: int, device: str, rounds: int) -> list[float]:
    """Start `count` worker processes at once; each prints its seconds per round."""
    command = [sys.executable, __file__, "--worker", "--device", device, "--rounds", str(rounds)]
    env = {**os.environ, "DEVICE": device}
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) for _ in range(count)]
    outputs = [w.communicate()[0] for w in workers]
    if any(w.returncode for w in workers):
        raise SystemExit(f"a worker failed: {outputs}")
    return [float(out.split()[-1]) for out in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(f"seconds per round {work(args.device, args.rounds)}")
        return
    alone = together(1, args.device, args.rounds)[0]
    shared = together(args.processes, args.device, args.rounds)
    worst = max(shared) / alone
    print(
        f"alone: {alone * 1e3:.1f} ms per round; {args.processes} at once: "
        f"{', '.join(f'{s * 1e3:.1f}' for s in shared)} ms per round; each {worst:.2f}x slower at worst"
    )


if __name__ == "__main__":
    main()
