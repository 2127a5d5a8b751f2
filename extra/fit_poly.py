"""Fit the polynomials that minigrad/library/math.py evaluates for its float32 transcendentals.

In: nothing (run `python extra/fit_poly.py`; needs scipy for erf/erfc). Out: one line per polynomial, its
coefficients from the constant term up, rounded to float32, ready to paste into math.py.

Each polynomial approximates a smooth remainder of a function on a small interval (the form is in FITS),
fitted in float64 by least squares in a Chebyshev basis, reweighted until the largest error is about as small
as it gets (a near-minimax fit), then converted to powers of the variable.
"""

import numpy as np
from numpy.polynomial import chebyshev, polynomial
from scipy.special import erf, erfc


def fit(target, low: float, high: float, degree: int, samples: int = 20000, rounds: int = 40) -> np.ndarray:
    """Coefficients c0..c_degree of the polynomial nearest to target(v) on [low, high] in the largest error."""
    v = np.linspace(low, high, samples)
    y = target(v)
    t = (2 * v - (low + high)) / (high - low)
    basis = chebyshev.chebvander(t, degree)
    weights = np.ones(samples)
    for _ in range(rounds):  # weigh up where the error is large: least squares drifts toward minimax
        coefficients, *_ = np.linalg.lstsq(basis * weights[:, None], y * weights, rcond=None)
        error = np.abs(basis @ coefficients - y)
        weights = weights * (error / error.max() + 1e-2) ** 0.7
        weights /= weights.max()
    in_t = chebyshev.cheb2poly(coefficients)
    scale, shift = 2 / (high - low), -(low + high) / (high - low)  # t = scale * v + shift
    powers = np.zeros(degree + 1)
    for k, ck in enumerate(in_t):
        powers += ck * np.pad(polynomial.polypow([shift, scale], k), (0, degree - k))
    return powers


def odd(f):
    """The remainder P(z) of an odd function written f(x) = x + x z P(z), z = x^2."""
    return lambda z: (f(np.sqrt(z)) / np.sqrt(z) - 1) / z


def _erfc_exponent(center: float):
    """erfc(x) = exp(-x^2 - 0.5625 + P(1/x - center)) / x: P as a function of u = 1/x - center."""
    return lambda u: np.log(erfc(1 / (u + center)) / (u + center)) + 1 / (u + center) ** 2 + 0.5625


def _log_remainder(z):
    """R(z) / z for the C helper mg_log2f: log(1 + f) = f - f^2/2 + s (f^2/2 + R), s = f / (2 + f), z = s^2."""
    s = np.sqrt(z)
    f = 2 * s / (1 - s)
    half_square = 0.5 * f * f
    return ((np.log((1 + s) / (1 - s)) - f + half_square) / s - half_square) / z


def _acosh_remainder(t):
    """acosh(1 + t) / sqrt(2t), acosh in its cancellation-free form."""
    return np.log1p(t + np.sqrt(t * (t + 2))) / np.sqrt(2 * t)


def _cot_remainder(z):
    """(1/r - cot(r)) / r with z = r^2: cot(r) = 1/r - r P(z)."""
    r = np.sqrt(z)
    return (1 / r - 1 / np.tan(r)) / r


ERFC_PARTS = [(0.84, 1.25), (1.25, 2.5), (2.5, 10.5)]
FITS = {  # name: (target, low, high, degree)
    "TANH": (odd(np.tanh), 1e-5, 0.625**2, 4),  # tanh(x) = x + x z P(z) for |x| < 0.625
    "SINH": (odd(np.sinh), 1e-5, 1.0, 3),  # |x| < 1
    "ASINH": (odd(np.arcsinh), 1e-5, 0.25, 5),  # |x| < 0.5
    "ATANH": (odd(np.arctanh), 1e-5, 0.25, 6),  # |x| < 0.5
    "ASIN": (odd(np.arcsin), 1e-8, 0.25, 5),  # |x| < 0.5
    "EXPM1": (lambda x: (np.expm1(x) - x) / x**2, -0.5, 0.5, 6),  # expm1(x) = x + x^2 P(x), |x| < 0.5
    "LOG1P": (lambda x: (np.log1p(x) - x) / x**2, -0.2, 0.3, 7),  # log1p(x) = x + x^2 P(x)
    "TAN": (odd(np.tan), 1e-9, 1.0001 * (np.pi / 4) ** 2, 6),  # |x| <= pi/4
    "COT": (_cot_remainder, 1e-9, 1.0001 * (np.pi / 4) ** 2, 6),  # cot(x) = 1/x - x P(z), |x| <= pi/4
    "ACOSH": (_acosh_remainder, 1e-9, 1.0, 7),  # acosh(1 + t) = sqrt(2t) P(t), 0 <= t < 1
    "ERF": (lambda z: erf(np.sqrt(z)) / np.sqrt(z) - 1, 1e-8, 0.84**2, 5),  # erf(x) = x + x P(z), |x| < 0.84
    # codegen/cstyle.py's mg_log2f: R(z) = z P(z) for |s| <= (sqrt(2) - 1) / (sqrt(2) + 1)
    "LOG_REMAINDER": (_log_remainder, 1e-6, ((2**0.5 - 1) / (2**0.5 + 1)) ** 2, 3),
}
for i, (low, high) in enumerate(ERFC_PARTS):
    center = 0.5 * (1 / low + 1 / high)
    FITS[f"ERFC_{i}"] = (_erfc_exponent(center), 1 / high - center, 1 / low - center, 8)


if __name__ == "__main__":
    for name, (target, low, high, degree) in FITS.items():
        if name.startswith("ERFC_"):
            continue
        coefficients = ", ".join(f"{float(np.float32(c)):.9g}" for c in fit(target, low, high, degree))
        print(f"{name} = ({coefficients})")
    print("ERFC_TAIL = (  # (from x, center of u = 1/x - center, coefficients)")
    for i, (low, high) in enumerate(ERFC_PARTS):
        target, u_low, u_high, degree = FITS[f"ERFC_{i}"]
        coefficients = ", ".join(f"{float(np.float32(c)):.9g}" for c in fit(target, u_low, u_high, degree))
        print(f"    ({low}, {0.5 * (1 / low + 1 / high)!r}, ({coefficients})),")
    print(")")
