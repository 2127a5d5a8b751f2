"""Train a small conv net (Conv2d, BatchNorm2d, max_pool2d) on scikit-learn's 8x8 digits.

    python examples/cnn_digits.py [--device CPU] [--steps 800] [--checkpoint cnn_digits.safetensors]

After training it saves the model as a safetensors file, loads it into a fresh model, and evaluates that
one: the printed accuracy is the reloaded checkpoint's.
"""

import argparse
import pathlib
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits
from tqdm import trange

from minigrad import Context, Device, Tensor, TinyJit, nn
from minigrad.nn import optim
from minigrad.nn.state import get_parameters, get_state_dict, load_state_dict, safe_load, safe_save


def load_data(seed: int = 0):
    """Digits as (N, 1, 8, 8) float32 images in [0, 1], split 80/20 with a fixed shuffle."""
    digits = load_digits()
    x, y = (digits.images / 16.0).astype(np.float32)[:, None], digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    split = int(0.8 * len(x))
    return x[order[:split]], y[order[:split]], x[order[split:]], y[order[split:]]


class ConvNet:
    def __init__(self):
        self.conv1, self.bn1 = nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64)
        self.head = nn.Linear(64 * 2 * 2, 10)

    def __call__(self, x: Tensor) -> Tensor:
        x = self.bn1(self.conv1(x)).relu().max_pool2d()  # 8x8 -> 4x4
        x = self.bn2(self.conv2(x)).relu().max_pool2d()  # 4x4 -> 2x2
        return self.head(x.flatten(1))


def evaluate(model: ConvNet, x: np.ndarray, y: np.ndarray, device: str) -> float:
    return float((model(Tensor(x, device=device)).argmax(-1).numpy() == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=Device.DEFAULT)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--checkpoint", default=str(pathlib.Path(tempfile.gettempdir()) / "cnn_digits.safetensors")
    )
    args = parser.parse_args()

    Tensor.manual_seed(0)
    x_train, y_train, x_test, y_test = load_data()
    with Context(DEVICE=args.device):
        model = ConvNet()
    opt = optim.Adam([p for p in get_parameters(model) if p.requires_grad], lr=args.lr)

    @TinyJit
    def train_step(x: Tensor, y: Tensor) -> Tensor:
        with Tensor.train():
            opt.zero_grad()
            loss = model(x).sparse_categorical_crossentropy(y)
            loss.backward()
            opt.step()
            Tensor.realize(loss, *get_parameters(model))  # BatchNorm's running statistics too
            return loss

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    bar = trange(1, args.steps + 1, desc="cnn_digits", mininterval=0.5)
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
    trained = evaluate(model, x_test, y_test, args.device)

    safe_save(get_state_dict(model), args.checkpoint)
    with Context(DEVICE=args.device):
        reloaded = ConvNet()
    load_state_dict(reloaded, safe_load(args.checkpoint, device=args.device))
    accuracy = evaluate(reloaded, x_test, y_test, args.device)
    seconds = time.perf_counter() - start
    print(f"checkpoint {args.checkpoint}: trained model {trained * 100:.2f}%, reloaded {accuracy * 100:.2f}%")
    print(
        f"test accuracy {accuracy * 100:.2f}% on {len(y_test)} held-out digits "
        f"({args.device}, {seconds:.1f} s in all, compiling included)"
    )


if __name__ == "__main__":
    main()
