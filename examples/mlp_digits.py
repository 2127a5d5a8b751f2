"""Train an MLP on scikit-learn's bundled 8x8 digits with nn.Linear, Adam and TinyJit.

    python examples/mlp_digits.py [--device CPU] [--steps 1500]

The training step (forward, loss, backward, Adam update) is one TinyJit function: from its third call on,
it replays the recorded kernels without building or scheduling a graph. Prints the test accuracy.
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from tqdm import trange

from minigrad import Context, Device, Tensor, TinyJit, nn
from minigrad.nn import optim
from minigrad.nn.state import get_parameters


def load_data(seed: int = 0):
    """Digits as float32 in [0, 1], split 80/20 with a fixed shuffle."""
    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    split = int(0.8 * len(x))
    return x[order[:split]], y[order[:split]], x[order[split:]], y[order[split:]]


class MLP:
    def __init__(self, hidden: int = 128):
        self.layers = [nn.Linear(64, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 10)]

    def __call__(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = layer(x).relu()
        return self.layers[-1](x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=Device.DEFAULT)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()

    Tensor.manual_seed(0)
    x_train, y_train, x_test, y_test = load_data()
    with Context(DEVICE=args.device):
        model = MLP()
    opt = optim.Adam(get_parameters(model), lr=args.lr)

    @TinyJit
    def train_step(x: Tensor, y: Tensor) -> Tensor:
        with Tensor.train():
            opt.zero_grad()
            loss = model(x).sparse_categorical_crossentropy(y)
            loss.backward()
            opt.step()
            return loss

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    bar = trange(1, args.steps + 1, desc="mlp_digits", mininterval=0.5)
    for step in bar:
        batch = rng.integers(0, len(x_train), args.batch)
        loss = train_step(
            Tensor(x_train[batch], device=args.device), Tensor(y_train[batch], device=args.device)
        )
        if step == 1:  # the first step compiles the kernels: the rate counts the steps after it
            compiled = time.perf_counter()
        elif step % 50 == 0 or step == args.steps:
            rate = (step - 1) * args.batch / (time.perf_counter() - compiled)
            bar.set_postfix(loss=f"{loss.item():.4f}", examples_per_s=f"{rate:.0f}")
    predictions = model(Tensor(x_test, device=args.device)).argmax(-1).numpy()
    accuracy = (predictions == y_test).mean()
    seconds = time.perf_counter() - start
    print(
        f"test accuracy {accuracy * 100:.2f}% on {len(y_test)} held-out digits "
        f"({args.device}, {seconds:.1f} s in all, compiling included)"
    )


if __name__ == "__main__":
    main()
