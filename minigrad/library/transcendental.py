"""The float32 transcendentals beyond the primitives, composed to stay within a few ulp of torch over their
whole range: expm1 log1p sinh cosh tanh asinh acosh atanh asin acos erf erfc.

In: Tensors. Out: Tensors. The methods of one mixin class that `Tensor` (tensor.py) inherits: `self` is
always a Tensor, and new tensors are made through `type(self)` (this module cannot import tensor.py).

Textbook formulas such as sinh = (e^x - e^-x) / 2 cancel near 0 (hundreds of ulp off), so each function is
a short polynomial where that happens and the textbook formula where it does not, joined by `where`. The
polynomials are fitted by extra/fit_poly.py. A branch that is not taken is fed a harmless value (the
`where(small, x, 0)` below): its derivative is multiplied by 0, and 0 * inf would be NaN.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from minigrad.tensor import Tensor

# coefficients from the constant term up (python extra/fit_poly.py prints them)
TANH = (-0.333333284, 0.133327931, -0.0538540035, 0.0210099276, -0.00611310452)
SINH = (0.166666672, 0.00833333936, 0.000198380993, 2.80629843e-06)
ASINH = (-0.166666672, 0.0749997422, -0.04463052, 0.0301617943, -0.0205525178, 0.00997772068)
ATANH = (0.333333343, 0.199999556, 0.14288491, 0.110473268, 0.0977896526, 0.0399550498, 0.157573789)
ASIN = (0.166666657, 0.07500121, 0.0445907749, 0.0311996769, 0.0166868754, 0.0344441533)
EXPM1 = (0.5, 0.166666672, 0.0416666679, 0.00833318196, 0.00138886087, 0.000199621427, 2.49570076e-05)
LOG1P = (-0.5, 0.333333641, -0.250001013, 0.19994922, -0.166521564, 0.145009607, -0.132047832, 0.0880483389)
ERF = (0.128379166, -0.376125842, 0.11282856, -0.0268084425, 0.00506127719, -0.000637638208)
ERFC_SPLIT = 2.5  # erfc's tail has one polynomial in 1/x - center on [0.84, 2.5] and one on [2.5, 10.5]
ERFC_NEAR = (
    0.7952380952380953,
    (
        -0.212782145,
        -0.362810105,
        -0.0132083269,
        0.0723967105,
        -0.0658520684,
        0.0442630164,
        -0.0220089629,
        -0.00227924017,
        0.014668121,
    ),
)
ERFC_FAR = (
    0.24761904761904763,
    (
        -0.0384668522,
        -0.216392994,
        -0.332296461,
        0.330619186,
        -0.0212337915,
        -0.401167005,
        0.588116407,
        -0.0370582119,
        -1.09700823,
    ),
)
LN2 = math.log(2)


class TranscendentalOps:
    __slots__ = ()

    def expm1(self) -> "Tensor":
        """x + x^2 P(x) for |x| < 0.5; exp(x) - 1 beyond, where it loses at most an ulp."""
        x = self._float()
        small = _magnitude(x) < 0.5
        xs = small.where(x, 0.0)
        return small.where(_signed_zero(xs, xs + xs * xs * _poly(xs, EXPM1)), x.exp() - 1)

    def log1p(self) -> "Tensor":
        """x + x^2 P(x) for -0.2 < x < 0.3; beyond, log(u) with u = 1 + x, plus (x - (u - 1)) / u for the
        rounding of u (its first-order correction)."""
        x = self._float()
        small = (x > -0.2) & (x < 0.3)
        xs = small.where(x, 0.0)
        u = small.where(1.0, x) + 1
        finite = (u > 0) & (u < math.inf)  # log(0), log(inf) and NaN need no correction
        safe = finite.where(u, 1.0)
        correction = finite.where((small.where(0.0, x) - (safe - 1)) / safe, 0.0)
        return small.where(xs + xs * xs * _poly(xs, LOG1P), u.log() + correction)

    def log10(self) -> "Tensor":
        """log2(x) log10(2); for 0.8 < x < 1.3, where log10 is near 0 and log2's error large against it,
        log1p's polynomial of x - 1 (exact there) over ln 10."""
        x = self._float()
        near = (x > 0.8) & (x < 1.3)
        t = near.where(x, 1.0) - 1
        return near.where((t + t * t * _poly(t, LOG1P)) * (1 / math.log(10)), x.log2() * math.log10(2))

    def sinh(self) -> "Tensor":
        """x + x^3 P(x^2) for |x| < 1; beyond, h - 1/(4h) with h = e^|x| / 2 (finite up to |x| = 89.4)."""
        x = self._float()
        a = _magnitude(x)
        small = a < 1
        xs = small.where(x, 0.0)
        half = _half_exp(small.where(1.0, a))
        far = half - 0.25 / half
        return small.where(_odd(xs, SINH), (x < 0).where(-far, far))

    def cosh(self) -> "Tensor":
        half = _half_exp(_magnitude(self._float()))
        return half + 0.25 / half

    def tanh(self) -> "Tensor":
        """x + x^3 P(x^2) for |x| < 0.625; beyond, 1 - 2 / (e^(2|x|) + 1) (|x| capped at 20, where
        tanh is 1.0 in float32, so that the derivative is not inf / inf)."""
        x = self._float()
        a = _magnitude(x)
        small = a < 0.625
        xs = small.where(x, 0.0)
        far = 1 - 2 / ((2 * a.minimum(20.0)).exp() + 1)
        return small.where(_odd(xs, TANH), (x < 0).where(-far, far))

    def asinh(self) -> "Tensor":
        """x + x^3 P(x^2) for |x| < 0.5; log1p(a + a^2 / (1 + sqrt(1 + a^2))) to a = 4096; log(a) + log 2
        above (a^2 would overflow)."""
        x = self._float()
        a = _magnitude(x)
        small, huge = a < 0.5, a > 4096
        xs = small.where(x, 0.0)
        mid = huge.where(1.0, a)
        far = huge.where(
            huge.where(a, 1.0).log() + LN2, (mid + mid * mid / (1 + (1 + mid * mid).sqrt())).log1p()
        )
        return small.where(_odd(xs, ASINH), (x < 0).where(-far, far))

    def acosh(self) -> "Tensor":
        """log1p(t + sqrt(t (t + 2))) with t = x - 1 (exact) below 2; log(2x - 1/(x + sqrt(x^2 - 1))) to 2^28;
        log(x) + log 2 above. Below 1 the first form is NaN by itself, and its derivative is torch's formula
        1 / sqrt(x^2 - 1) (finite below -1, as torch's), until t^2 would overflow."""
        x = self._float()
        low, huge = x < 2, x > 2.0**28
        t = low.where(x, 1.0) - 1
        near = (t + (t * (t + 2)).sqrt()).log1p()
        m = (low | huge).where(2.0, x)
        mid = (2 * m - 1 / (m + (m * m - 1).sqrt())).log()
        far = huge.where(huge.where(x, 1.0).log() + LN2, mid)
        return (x < -(2.0**60)).where(math.nan, low.where(near, far))

    def atanh(self) -> "Tensor":
        """x + x^3 P(x^2) for |x| < 0.5; log1p(2a / (1 - a)) / 2 beyond (1 - a is exact there)."""
        x = self._float()
        a = _magnitude(x)
        small = a < 0.5
        xs = small.where(x, 0.0)
        a = small.where(0.75, a)
        far = (2 * a / (1 - a)).log1p() * 0.5
        return small.where(_odd(xs, ATANH), (x < 0).where(-far, far))

    def asin(self) -> "Tensor":
        """x + x^3 P(x^2) for |x| <= 0.5; beyond, pi/2 - 2 asin(s) with s = sqrt((1 - |x|) / 2) <= 0.5 (the
        same polynomial), pi/2 in two parts."""
        x = self._float()
        a = _magnitude(x)
        small = a <= 0.5
        far = _asin_far(small.where(0.0, a))
        return small.where(_odd(small.where(x, 0.0), ASIN), (x < 0).where(-far, far))

    def acos(self) -> "Tensor":
        """pi/2 - asin(x) for |x| <= 0.5; 2 asin(s) for x > 0.5 and pi - 2 asin(s) for x < -0.5, with
        s = sqrt((1 - |x|) / 2)."""
        x = self._float()
        a = _magnitude(x)
        small = a <= 0.5
        a = small.where(1.0, a)
        s = ((1 - a) * 0.5).sqrt()
        twice = 2 * _odd(s, ASIN)
        far = (x < 0).where(math.pi - twice, twice)
        return small.where(math.pi / 2 - _odd(small.where(x, 0.0), ASIN), far)

    def erf(self) -> "Tensor":
        """x + x P(x^2) for |x| < 0.84; 1 - erfc(|x|) beyond (erfc <= 0.24 there: no cancellation)."""
        x = self._float()
        a = _magnitude(x)
        small = a < 0.84
        xs = small.where(x, 0.0)
        far = 1 - _erfc_tail(small.where(1.0, a))
        return small.where(xs + xs * _poly(xs * xs, ERF), (x < 0).where(-far, far))

    def erfc(self) -> "Tensor":
        """1 - erf(x) for |x| < 0.84, arranged so that the subtraction is exact (Sterbenz) or tiny:
        (1 - x) - x P for x >= 0.5, 0.5 - ((x - 0.5) + x P) for x >= 0.25; the tail beyond, 2 - tail(-x)
        for x <= -0.84."""
        x = self._float()
        a = _magnitude(x)
        small = a < 0.84
        xs = small.where(x, 0.0)
        rest = xs * _poly(xs * xs, ERF)  # erf(x) - x
        near = (xs < 0.25).where(
            1 - (xs + rest), (xs < 0.5).where(0.5 - ((xs - 0.5) + rest), (1 - xs) - rest)
        )
        tail = _erfc_tail(small.where(1.0, a))
        return small.where(near, (x < 0).where(2 - tail, tail))


def _magnitude(x: "Tensor") -> "Tensor":
    """|x| in three nodes (abs() takes seven: x * sign(x), for its derivative of 0 at 0, which no branch
    here needs: at 0 the polynomial branch is taken)."""
    return (x < 0).where(-x, x)


def _poly(x: "Tensor", coefficients: Sequence[float]) -> "Tensor":
    """c0 + c1 x + c2 x^2 + ... by Horner's rule."""
    result = x * coefficients[-1] + coefficients[-2]
    for c in reversed(coefficients[:-2]):
        result = result * x + c
    return result


def _odd(x: "Tensor", coefficients: Sequence[float]) -> "Tensor":
    """x + x^3 P(x^2): an odd function near 0, its first term exact."""
    z = x * x
    return _signed_zero(x, x + x * z * _poly(z, coefficients))


def _signed_zero(x: "Tensor", value: "Tensor") -> "Tensor":
    """value, but x itself where x is 0: -0.0 + 0.0 rounds to +0.0, and f(-0.0) is -0.0 for these f."""
    return (x == 0).where(x, value)


def _half_exp(a: "Tensor") -> "Tensor":
    """e^a / 2, finite up to a = 89.4 where e^a overflows: (e^m / 2) e^(a - m) with m = min(a, 88)."""
    m = a.minimum(88.0)
    return (m.exp() * 0.5) * (a - m).exp()


def _asin_far(a: "Tensor") -> "Tensor":
    """asin(a) for 0.5 < a <= 1 as pi/2 - 2 asin(s), s = sqrt((1 - a) / 2); pi/2 = high + low in float32."""
    s = ((1 - a) * 0.5).sqrt()
    high = 1.57079637  # pi/2 rounded to float32
    z = s * s
    return (high - 2 * s) - (2 * (s * z * _poly(z, ASIN)) - (math.pi / 2 - high))


def _erfc_tail(a: "Tensor") -> "Tensor":
    """erfc(a) for a >= 0.84: e^(-z^2 - 0.5625) e^((z - a)(z + a) + P(1/a)) / a, with z = a rounded to a
    multiple of 2^-8 (its square is exact, so e^(-a^2) keeps all its bits) and a capped at 10.5, where erfc
    underflows to 0."""
    c = a.minimum(10.5)
    z = ((c + 49152.0) - 49152.0).detach()  # 1.5 * 2^15: adding and subtracting it rounds to 2^-8
    near = c < ERFC_SPLIT
    u = 1 / c - near.where(ERFC_NEAR[0], ERFC_FAR[0])
    p = near.where(_poly(u, ERFC_NEAR[1]), _poly(u, ERFC_FAR[1]))
    return (-z * z - 0.5625).exp() * ((z - c) * (z + c) + p).exp() / c
