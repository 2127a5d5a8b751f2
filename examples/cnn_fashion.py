"""Train a small conv net on Fashion-MNIST (60k 28x28 clothing images, 10 classes).

    apt-get install dataset-fashion-mnist          # once: the full dataset, 31 MB, nothing downloaded here
    python examples/cnn_fashion.py [--device CPU] [--steps 1500] [--data DIR]

Data comes from extra/datasets.py (IDX files from --data, FASHION_MNIST_DIR, or Debian's install path).
Prints the accuracy on the 10k test images.
"""

import argparse
import pathlib
import sys
import time

import numpy as np
from tqdm import trange

from minigrad import Context, Device, Tensor, TinyJit, nn
from minigrad.nn import optim
from minigrad.nn.state import get_parameters

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "extra"))
from datasets import load_mnist  # noqa: E402


class ConvNet:
    def __init__(self):
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
        self.head = nn.Linear(32 * 7 * 7, 10)

    def __call__(self, x: Tensor) -> Tensor:
        x = self.bn1(self.conv1(x)).relu().max_pool2d()  # 28x28 -> 14x14
        x = self.bn2(self.conv2(x)).relu().max_pool2d()  # 14x14 -> 7x7
        return self.head(x.flatten(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=Device.DEFAULT)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--data", default=None, help="directory of the IDX files")
    parser.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test images")
    args = parser.parse_args()

    data = load_mnist(args.data)
    x_train = (data["train_images"].astype(np.float32) / 255.0)[:, None]
    x_test = (data["test_images"][: args.test_limit].astype(np.float32) / 255.0)[:, None]
    y_train, y_test = (
        data["train_labels"].astype(np.int32),
        data["test_labels"][: args.test_limit].astype(np.int32),
    )

    Tensor.manual_seed(0)
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
    bar = trange(1, args.steps + 1, desc="cnn_fashion", mininterval=0.5)
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

    evaluate = TinyJit(lambda x: model(x).argmax(-1))
    chunks = [x_test[i : i + 500] for i in range(0, len(x_test), 500)]
    predictions = np.concatenate([evaluate(Tensor(c, device=args.device)).numpy() for c in chunks])
    accuracy = (predictions == y_test).mean()
    seconds = time.perf_counter() - start
    print(
        f"test accuracy {accuracy * 100:.2f}% on {len(y_test)} Fashion-MNIST test images "
        f"({args.device}, {seconds:.1f} s in all, compiling included)"
    )


if __name__ == "__main__":
    main()
