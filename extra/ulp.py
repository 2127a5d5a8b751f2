"""Accuracy of minigrad's float32 transcendentals against torch 2.13, in ulps, on every available device.

In: nothing (run `python extra/ulp.py [N]`, N samples per function, default 200,000). Out: a table of the
largest and the 99.9th-percentile error in units of the last place of torch's float32 result, per function
and device, over inputs spread log-uniformly across each function's float32 domain (both signs where the
domain has them), plus the edge values (0, -0, inf, nan, the domain's ends). A result whose NaN/inf-ness
differs from torch's counts as an infinite error.
"""

import sys

import numpy as np
import torch

from minigrad import Device, Tensor

# name: (minigrad method, torch function, domain (low, high) of |x| or of x, signed)
FUNCTIONS = {
    "exp": ("exp", torch.exp, (1e-6, 88.0), True),
    "exp2": ("exp2", torch.exp2, (1e-6, 127.0), True),
    "expm1": ("expm1", torch.expm1, (1e-6, 88.0), True),
    "log": ("log", torch.log, (1e-30, 1e30), False),
    "log2": ("log2", torch.log2, (1e-30, 1e30), False),
    "log10": ("log10", torch.log10, (1e-30, 1e30), False),
    "log1p": ("log1p", torch.log1p, (1e-6, 1e30), False),
    "sqrt": ("sqrt", torch.sqrt, (1e-30, 1e30), False),
    "rsqrt": ("rsqrt", torch.rsqrt, (1e-30, 1e30), False),
    "sin": ("sin", torch.sin, (1e-6, 1e7), True),
    "cos": ("cos", torch.cos, (1e-6, 1e7), True),
    "tan": ("tan", torch.tan, (1e-6, 1e4), True),
    "sin wide": ("sin", torch.sin, (1e-6, 3e38), True),  # the whole float32 range
    "cos wide": ("cos", torch.cos, (1e-6, 3e38), True),
    "tan wide": ("tan", torch.tan, (1e-6, 3e38), True),
    "asin": ("asin", torch.asin, (1e-6, 1.0), True),
    "acos": ("acos", torch.acos, (1e-6, 1.0), True),
    "atan": ("atan", torch.atan, (1e-6, 1e30), True),
    "sinh": ("sinh", torch.sinh, (1e-3, 88.0), True),
    "cosh": ("cosh", torch.cosh, (1e-3, 88.0), True),
    "tanh": ("tanh", torch.tanh, (1e-3, 20.0), True),
    "asinh": ("asinh", torch.asinh, (1e-3, 1e30), True),
    "acosh": ("acosh", torch.acosh, (1.0, 1e30), False),
    "atanh": ("atanh", torch.atanh, (1e-3, 0.999), True),
    "erf": ("erf", torch.erf, (1e-3, 5.0), True),
    "erfc": ("erfc", torch.erfc, (1e-3, 9.0), True),
    "sigmoid": ("sigmoid", torch.sigmoid, (1e-3, 80.0), True),
}


def inputs(domain: tuple[float, float], signed: bool, n: int) -> np.ndarray:
    low, high = domain
    rng = np.random.default_rng(0)
    x = np.exp(rng.uniform(np.log(low), np.log(high), n)).astype(np.float32)
    if signed:
        x[::2] = -x[::2]
    edges = [0.0, -0.0, np.inf, -np.inf, np.nan, low, high, -low, -high]
    return np.concatenate([x, np.array(edges, np.float32)])


def ulp_errors(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """|ours - reference| in ulps of the reference (float32 spacing at its magnitude)."""
    special = ~np.isfinite(reference) | ~np.isfinite(ours)
    same_special = (np.isnan(ours) & np.isnan(reference)) | (ours == reference)
    spacing = np.spacing(np.abs(reference).astype(np.float32)).astype(np.float64)
    errors = np.abs(ours.astype(np.float64) - reference.astype(np.float64)) / np.where(
        spacing > 0, spacing, 1
    )
    return np.where(special, np.where(same_special, 0.0, np.inf), errors)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    devices = [d for d in Device.known if Device.unavailable_reason(d) is None and d != "CUDA"]
    print(f"{'function':10s}" + "".join(f"{d + ' max':>14s}{d + ' p99.9':>14s}" for d in devices))
    for name, (method, torch_fn, domain, signed) in FUNCTIONS.items():
        x = inputs(domain, signed, n)
        with np.errstate(all="ignore"):
            reference = torch_fn(torch.tensor(x)).numpy()
        row = f"{name:10s}"
        for device in devices:
            ours = getattr(Tensor(x, device=device), method)().numpy()
            errors = ulp_errors(ours, reference)
            finite = errors[np.isfinite(errors)]
            worst = "nan/inf" if not np.isfinite(errors).all() else f"{errors.max():.1f}"
            row += f"{worst:>14s}{np.percentile(finite, 99.9):>14.1f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
