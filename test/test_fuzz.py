"""Fuzz: random graphs of 2-40 ops mixing elementwise, reduce, movement and matmul, each compiled device
against NUMPY (the seed is in the test's name and in the failure message).

200 cases in CI; FUZZ_CASES=N runs more. Each case also draws random optimization settings (threads, groups,
upcasting, NOOPT), so the optimizer is fuzzed against unoptimized kernels through the same oracle.
"""

import os

import numpy as np
import pytest

from minigrad import Context, Tensor
from test.conftest import DEVICES

CASES = int(os.environ.get("FUZZ_CASES", "200"))
COMPILED = [d for d in DEVICES if d != "NUMPY"]

UNARY = [
    lambda t: -t,
    lambda t: t.relu(),
    lambda t: t.sin(),
    lambda t: (t.abs() + 0.5).sqrt(),
    lambda t: (t.abs() + 1).reciprocal(),
    lambda t: t.clip(-1, 1).exp2(),
    lambda t: (t.abs() + 0.1).log2(),
    lambda t: t * 0.5 + 0.25,
    lambda t: (t > 0).where(t, t * 0.1),
]
BINARY = [
    lambda a, b: a + b,
    lambda a, b: a * b,
    lambda a, b: a - b,
    lambda a, b: a.maximum(b),
    lambda a, b: (a < b).where(a, b),
]


def _movement(rng: np.random.Generator, t: Tensor) -> Tensor:
    choice = rng.integers(6)
    if choice == 0 and t.ndim > 1:
        return t.permute(*rng.permutation(t.ndim).tolist())
    if choice == 1:
        return t.flip(int(rng.integers(t.ndim)))
    if choice == 2:
        pads = [(int(rng.integers(0, 2)), int(rng.integers(0, 2))) for _ in range(t.ndim)]
        padded = t.pad(pads)
        return padded.shrink(
            [
                (int(rng.integers(0, b + 1)), int(rng.integers(0, b + 1)) + s)
                for (b, _), s in zip(pads, t.shape)
            ]
        )
    if choice == 3:
        return t.reshape(-1).reshape(t.shape)
    if choice == 4:
        axis = int(rng.integers(t.ndim))
        return t.shrink([(0, s) if d != axis or s < 2 else (1, s) for d, s in enumerate(t.shape)])
    return t[tuple(slice(None, None, -1) if rng.random() < 0.3 else slice(None) for _ in range(t.ndim))]


def random_graph(seed: int, device: str) -> list[Tensor]:
    """A graph of 2-40 ops over three inputs; the same seed builds the same graph on any device."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 6, size=rng.integers(1, 4)))
    if seed % 10 == 0:  # some big enough to run on several threads
        shape = (64, 32, 32)
    pool = [Tensor(rng.uniform(-1, 1, shape).astype(np.float32), device=device) for _ in range(3)]
    for _ in range(rng.integers(2, 41)):
        t = pool[rng.integers(len(pool))]
        kind = rng.choice(["unary", "binary", "reduce", "movement", "matmul"], p=[0.3, 0.3, 0.15, 0.17, 0.08])
        if kind == "matmul":  # (..., n, k) @ (..., k, n): a contraction whose output shape differs
            out = (t @ t.transpose(-1, -2)) * 0.25 if t.ndim > 1 else (t @ t).reshape(1) * 0.25
        elif kind == "unary":
            out = UNARY[rng.integers(len(UNARY))](t)
        elif kind == "binary":
            partners = [u for u in pool if _broadcastable(t.shape, u.shape)]
            out = BINARY[rng.integers(len(BINARY))](t, partners[rng.integers(len(partners))])
        elif kind == "reduce":
            axis = int(rng.integers(t.ndim))
            use_max = rng.random() < 0.4 and t.shape[axis] > 0  # max over an empty dim raises, as torch
            out = t.max(axis, keepdim=True) if use_max else t.mean(axis, keepdim=True)
        else:
            out = _movement(rng, t)
        pool.append(out)
    return pool[-3:]


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) and all(x == y or x == 1 or y == 1 for x, y in zip(a, b))


@pytest.mark.conformance
@pytest.mark.skipif(not COMPILED, reason="no compiled device available (only NUMPY)")
@pytest.mark.parametrize("seed", range(CASES))
def test_random_graph_matches_numpy(seed):
    rng = np.random.default_rng(10_000 + seed)
    settings = {
        "REORDER": int(rng.integers(0, 2)),
        "THREADS": int(rng.integers(0, 2)),
        "UPCAST": int(rng.integers(0, 2)),
        "GROUP": int(rng.integers(0, 2)),
        "GATHER_TILE": int(rng.integers(0, 2)),
        "SECOND_TILE": int(rng.integers(0, 2)),
        "STREAM_LANES": int(rng.integers(0, 2)),
        "PACK": int(rng.integers(0, 2)),
        "OVERLAP": int(rng.integers(0, 2)),
        "CHUNK": int(rng.integers(0, 2)),
        "LANE_LOOP": int(rng.integers(0, 2)),
        "EPILOGUE_LOOP": int(rng.integers(0, 2)),
        "VECTORIZE": int(rng.integers(0, 2)),
        "SIMD": int(rng.integers(0, 2)),
        "NOOPT": int(rng.random() < 0.3),
    }
    expected = [t.numpy() for t in random_graph(seed, "NUMPY")]
    for device in COMPILED:
        with Context(**settings):
            got = [t.numpy() for t in random_graph(seed, device)]
        for e, g in zip(expected, got):
            message = f"seed {seed}, {device} {settings}"
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5, err_msg=message)
