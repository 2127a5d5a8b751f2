"""Train a two-layer MLP on scikit-learn's digits with plain Tensors and hand-written SGD.

No nn module, no optimizer class: the whole training loop is visible here. Run:

    python examples/mlp_plain.py --device NUMPY --steps 400
"""

import argparse
import math
import time

import numpy as np
from sklearn.datasets import load_digits
from tqdm import trange

from minigrad import Device, Tensor


def load_data(seed: int = 0):
    """Digits as float32 in [0, 1], split 80/20 with a fixed shuffle."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    split = int(0.8 * len(x))
    return x[order[:split]], y[order[:split]], x[order[split:]], y[order[split:]]


def init_layer(fan_in: int, fan_out: int, device: str) -> tuple[Tensor, Tensor]:
    """PyTorch's default Linear init: uniform in +-1/sqrt(fan_in)."""
    bound = 1 / math.sqrt(fan_in)
    weight = Tensor.uniform(fan_in, fan_out, low=-bound, high=bound, device=device, requires_grad=True)
    bias = Tensor.uniform(fan_out, low=-bound, high=bound, device=device, requires_grad=True)
    return weight, bias


def forward(params: list[Tensor], x: Tensor) -> Tensor:
    w1, b1, w2, b2 = params
    return (x @ w1 + b1).relu() @ w2 + b2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=Device.DEFAULT)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()

    Tensor.manual_seed(0)
    x_train, y_train, x_test, y_test = load_data()
    params = [*init_layer(64, args.hidden, args.device), *init_layer(args.hidden, 10, args.device)]
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    bar = trange(1, args.steps + 1, desc="mlp_plain", mininterval=0.5)
    for step in bar:
        batch = rng.integers(0, len(x_train), args.batch)
        logits = forward(params, Tensor(x_train[batch], device=args.device))
        loss = logits.cross_entropy(Tensor(y_train[batch], device=args.device))
        loss.backward()
        for p in params:  # plain SGD: p <- p - lr * grad
            p.assign(p.detach() - args.lr * p.grad)
            p.grad = None
        Tensor.realize(*params)
        if step == 1:  # the first step compiles the kernels: the rate counts the steps after it
            compiled = time.perf_counter()
        elif step % 50 == 0 or step == args.steps:
            rate = (step - 1) * args.batch / (time.perf_counter() - compiled)
            bar.set_postfix(loss=f"{loss.item():.4f}", examples_per_s=f"{rate:.0f}")
    predictions = forward(params, Tensor(x_test, device=args.device)).argmax(-1).numpy()
    accuracy = (predictions == y_test).mean()
    seconds = time.perf_counter() - start
    print(
        f"test accuracy {accuracy * 100:.2f}% on {len(y_test)} held-out digits "
        f"({args.device}, {seconds:.1f} s in all, compiling included)"
    )


if __name__ == "__main__":
    main()
