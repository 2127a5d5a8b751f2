"""A character-level transformer trained on minigrad's own source code, then asked to write some.

    python examples/tiny_gpt.py [--device CPU] [--steps 600]

Embedding, LayerNorm, causal scaled_dot_product_attention and AdamW, with a TinyJit training step. It
prints the held-out loss against the unigram baseline (the loss of always predicting each character's
frequency; a model that learned nothing about context cannot beat it), then samples text.
"""

import argparse
import math
import pathlib
import time

import numpy as np
from tqdm import trange

import minigrad
from minigrad import Context, Device, Tensor, TinyJit, nn
from minigrad.nn import optim
from minigrad.nn.state import get_parameters


def load_text() -> str:
    root = pathlib.Path(minigrad.__file__).parent
    return "\n".join(p.read_text() for p in sorted(root.rglob("*.py")))


class Block:
    def __init__(self, dim: int, heads: int):
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.up, self.down = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def __call__(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attention = q.scaled_dot_product_attention(k, v, is_causal=True)  # (b, heads, t, d / heads)
        x = x + self.proj(attention.permute(0, 2, 1, 3).reshape(b, t, d))
        return x + self.down(self.up(self.ln2(x)).gelu())


class TinyGPT:
    def __init__(self, vocab: int, context: int, dim: int = 64, heads: int = 4, layers: int = 2):
        self.token, self.position = nn.Embedding(vocab, dim), nn.Embedding(context, dim)
        self.blocks = [Block(dim, heads) for _ in range(layers)]
        self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab)
        self.positions = Tensor.arange(context, dtype="int32")

    def __call__(self, idx: Tensor) -> Tensor:
        x = self.token(idx) + self.position(self.positions[: idx.shape[1]])
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=Device.DEFAULT)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--sample", type=int, default=200, help="characters to generate at the end")
    args = parser.parse_args()

    text = load_text()
    chars = sorted(set(text))
    encode = {c: i for i, c in enumerate(chars)}
    data = np.array([encode[c] for c in text], dtype=np.int32)
    split = int(0.9 * len(data))
    train, held_out = data[:split], data[split:]
    counts = np.bincount(train, minlength=len(chars)) + 1
    unigram = float(-(counts / counts.sum() * np.log(counts / counts.sum())).sum())

    Tensor.manual_seed(0)
    with Context(DEVICE=args.device):
        model = TinyGPT(len(chars), args.context)
    opt = optim.AdamW([p for p in get_parameters(model) if p.requires_grad], lr=args.lr, weight_decay=0.01)
    rng = np.random.default_rng(0)

    def batch(source: np.ndarray) -> tuple[Tensor, Tensor]:
        starts = rng.integers(0, len(source) - args.context - 1, args.batch)
        x = np.stack([source[s : s + args.context] for s in starts])
        y = np.stack([source[s + 1 : s + args.context + 1] for s in starts])
        return Tensor(x, device=args.device), Tensor(y, device=args.device)

    def loss_of(x: Tensor, y: Tensor) -> Tensor:
        return model(x).reshape(-1, len(chars)).sparse_categorical_crossentropy(y.reshape(-1))

    @TinyJit
    def train_step(x: Tensor, y: Tensor) -> Tensor:
        opt.zero_grad()
        loss = loss_of(x, y)
        loss.backward()
        opt.step()
        return loss

    start = time.perf_counter()
    bar = trange(1, args.steps + 1, desc="tiny_gpt", mininterval=0.5)
    for step in bar:
        loss = train_step(*batch(train))
        if step == 1:  # the first step compiles the kernels: the rate counts the steps after it
            compiled = time.perf_counter()
        elif step % 25 == 0 or step == args.steps:
            rate = (step - 1) * args.batch * args.context / (time.perf_counter() - compiled)
            bar.set_postfix(loss=f"{loss.item():.3f}", chars_per_s=f"{rate:.0f}")
    held_out_loss = float(np.mean([loss_of(*batch(held_out)).item() for _ in range(8)]))

    next_logits = TinyJit(lambda window: model(window)[0, -1])  # one window shape: compiled once
    context = list(held_out[: args.context])  # a prompt of one full window from the held-out text
    for _ in range(args.sample):
        window = np.array([context[-args.context :]], dtype=np.int32)
        logits = next_logits(Tensor(window, device=args.device)).numpy()
        p = np.exp((logits - logits.max()) / 0.8)
        context.append(int(rng.choice(len(chars), p=p / p.sum())))
    prompt, sample = (
        "".join(chars[i] for i in context[: args.context]),
        "".join(chars[i] for i in context[args.context :]),
    )
    print(f"--- prompt ---\n{prompt}\n--- sample ---\n{sample}\n--------------")
    seconds = time.perf_counter() - start
    print(
        f"held-out loss {held_out_loss:.3f} nats/char vs unigram baseline {unigram:.3f} "
        f"({math.exp(held_out_loss):.1f} vs {math.exp(unigram):.1f} perplexity; "
        f"{args.device}, {seconds:.1f} s in all, compiling included)"
    )


if __name__ == "__main__":
    main()
