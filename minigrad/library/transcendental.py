"""The float32 transcendentals beyond the primitives, composed to stay within a few ulp of torch over their
whole range: tan expm1 log1p sinh cosh tanh asinh acosh atanh asin acos erf erfc.

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

from minigrad.replay import replayed

if TYPE_CHECKING:
    from minigrad.tensor import Tensor

# coefficients from the constant term up (python extra/fit_poly.py prints them)
TANH = (-0.333333284, 0.133327931, -0.0538540035, 0.0210099276, -0.00611310452)
SINH = (0.166666672, 0.00833333936, 0.000198380993, 2.80629843e-06)
ASINH = (-0.166666672, 0.0749997422, -0.04463052, 0.0301617943, -0.0205525178, 0.00997772068)
TAN = (0.333333343, 0.133331403, 0.0540128723, 0.0214857608, 0.0104090814, 0.000509403006, 0.00422435487)
COT = (
    0.333333373,
    0.0222192053,
    0.00217319792,
    -0.000180260889,
    0.0012448146,
    -0.00175902934,
    0.000951250433,
)
# pi/2 in 10-bit parts and a float32 rest: k * part is exact for k < 2^14
HALF_PI_PARTS = (1.5703125, 0.00048351287841796875, 3.1385570764541626e-07, 6.07710062827671e-11)
ACOSH = (
    1,
    -0.0833332986,
    0.0187491924,
    -0.00557351252,
    0.00186992576,
    -0.000630471681,
    0.000174727073,
    -2.67041232e-05,
)
ATANH = (0.333333343, 0.199999556, 0.14288491, 0.110473268, 0.0977896526, 0.0399550498, 0.157573789)
ASIN = (0.166666657, 0.07500121, 0.0445907749, 0.0311996769, 0.0166868754, 0.0344441533)
EXPM1 = (0.5, 0.166666672, 0.0416666679, 0.00833318196, 0.00138886087, 0.000199621427, 2.49570076e-05)
LOG1P = (-0.5, 0.333333641, -0.250001013, 0.19994922, -0.166521564, 0.145009607, -0.132047832, 0.0880483389)
ERF = (0.128379166, -0.376125842, 0.11282856, -0.0268084425, 0.00506127719, -0.000637638208)
# erfc's tail: (from x, center, P) with erfc(x) = e^(-x^2 - 0.5625 + P(1/x - center)) / x up to the next part
ERFC_TAIL = (
    (
        0.84,
        0.9952380952380953,
        (
            -0.285385907,
            -0.361200929,
            0.0174434409,
            0.0340423211,
            -0.0334812254,
            0.0229756981,
            -0.0129609518,
            0.00567672541,
            -0.00116529153,
        ),
    ),
    (
        1.25,
        0.6000000000000001,
        (
            -0.143099472,
            -0.347056359,
            -0.0744048655,
            0.143589973,
            -0.119803347,
            0.0639232099,
            -0.00291620917,
            -0.0537599586,
            0.08041545,
        ),
    ),
    (
        2.5,
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
        poly = _poly(xs, EXPM1)
        return small.where(_signed_zero(xs, xs + xs * xs * poly, xs * (1 + xs * poly)), x.exp() - 1)

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

    def tan(self) -> "Tensor":
        """tan(r) + r_low (1 + tan(r)^2) with x = k pi/2 + r + r_low, r + r_low exact to float precision
        (Cody-Waite: pi/2 in parts whose products with k are exact; the last two subtractions' rounding
        errors kept as r_low); tan(r) = r + r^3 P(r^2) for even k, -cot(r) = r P'(r^2) - 1/r for odd k (not
        -1/tan(r), whose rounding a reciprocal can double). Beyond |x| = 16384 sin(x) / cos(x), in float64
        where the device has it (in float32 the two roundings of sin and cos add up to 3 ulp)."""
        x = self._float()
        near = _magnitude(x) <= 16384
        xs = near.where(x, 0.0)
        k = ((xs * (2 / math.pi) + 12582912.0) - 12582912.0).detach()  # 1.5 * 2^23: rounds to an integer
        r = (xs - k * HALF_PI_PARTS[0]) - k * HALF_PI_PARTS[1]  # exact
        r, low = _two_sum(r, -k * HALF_PI_PARTS[2])
        r, lower = _two_sum(r, -k * HALF_PI_PARTS[3])
        r_low = low + lower
        z = r * r
        odd = (k - 2 * ((k * 0.5 + 12582912.0) - 12582912.0)) != 0  # k/2 ends in .5: rounds away from k/2
        ro = odd.where(r, 1.0)
        tan_poly = _poly(z, TAN)
        value = odd.where(ro * _poly(ro * ro, COT) - 1 / ro, r + r * z * tan_poly)
        xf = near.where(1.0, x)._wide()
        value = near.where(value + r_low * (1 + value * value), (xf.sin() / xf.cos()).cast(x.dtype))
        return _signed_zero(x, value, r * (1 + z * tan_poly))  # at 0: k = 0, r = x

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

    @replayed
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
        """sqrt(2t) P(t) with t = x - 1 (exact) below 2; log(2x - 1/(x + sqrt(x^2 - 1))) to 2^28; log(x) + log 2
        above. Below 1, log1p(t + sqrt(t (t + 2))), NaN by itself, whose derivative is torch's formula
        1 / sqrt(x^2 - 1) (finite below -1, as torch's), until t^2 would overflow."""
        x = self._float()
        below, low, huge = x < 1, x < 2, x > 2.0**28
        t = below.where(x, 1.0) - 1
        nan = (t + (t * (t + 2)).sqrt()).log1p()
        t = (below | ~low).where(0.5, x - 1)
        near = (2 * t).sqrt() * _poly(t, ACOSH)
        m = (low | huge).where(2.0, x)
        mid = (2 * m - 1 / (m + (m * m - 1).sqrt())).log()
        far = huge.where(huge.where(x, 1.0).log() + LN2, mid)
        return (x < -(2.0**60)).where(math.nan, below.where(nan, low.where(near, far)))

    def atanh(self) -> "Tensor":
        """x + x^3 P(x^2) for |x| < 0.5; log1p(2a / (1 - a)) / 2 beyond (1 - a is exact there). At |x| = 1,
        (log1p(a) - log1p(-a)) / 2: the same inf, and torch's infinite derivatives (the quotient's gave
        0 * inf = NaN)."""
        x = self._float()
        a = _magnitude(x)
        small, edge = a < 0.5, a == 1
        xs = small.where(x, 0.0)
        a_far, a_edge = (small | edge).where(0.75, a), edge.where(a, 0.75)
        far = edge.where((a_edge.log1p() - (-a_edge).log1p()) * 0.5, (2 * a_far / (1 - a_far)).log1p() * 0.5)
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

    @replayed
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
    poly = _poly(z, coefficients)
    return _signed_zero(x, x + x * z * poly, x * (1 + z * poly))


def _signed_zero(x: "Tensor", value: "Tensor", factored: "Tensor") -> "Tensor":
    """value, but `factored` (the same function as x * q(x)) where x is 0: value's x + ... rounds -0.0 to
    +0.0, and f(-0.0) is -0.0 for these f; x * q(x) keeps the sign, and every derivative at 0 (x itself
    would make all but the first 0: expm1''(0) came out 0, not 1)."""
    return (x == 0).where(factored, value)


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
    """erfc(a) for a >= 0.84, a capped at 10.5 (where erfc underflows to 0): e^(-a^2 - 0.5625 + P(1/a)) / a
    with one rounding of the exponent, undone. a^2 = z^2 + (a - z)(a + z) where z is a rounded to a multiple
    of 2^-8, so -z^2 - 0.5625 is exact; the exponent's small rest is added to it, and the two additions'
    rounding errors (found exactly, as a + b - s) multiply the result as 1 + error."""
    c = a.minimum(10.5)
    z = ((c + 49152.0) - 49152.0).detach()  # 1.5 * 2^15: adding and subtracting it rounds to 2^-8
    p = _pieces(c, 1 / c, ERFC_TAIL)
    rest, rest_error = _two_sum((z - c) * (z + c), p)
    exact = -z * z - 0.5625
    exponent = exact + rest  # |exact| > |rest|: its rounding error is rest - (exponent - exact)
    error = (rest - (exponent - exact)) + rest_error
    y = exponent.exp() / c
    return y + y * error


def _pieces(x: "Tensor", v: "Tensor", table) -> "Tensor":
    """P(v - center), P the polynomial of the last row of `table` (rows of (from x, center, coefficients))
    that x has reached: one Horner's rule over coefficients chosen by where."""

    def chosen(values: list[float]) -> "Tensor":
        value = values[0]
        for row, other in zip(table[1:], values[1:]):
            value = (x >= row[0]).where(other, value)
        return value

    u = v - chosen([row[1] for row in table])
    degree = len(table[0][2]) - 1
    result = chosen([row[2][degree] for row in table])
    for k in reversed(range(degree)):
        result = result * u + chosen([row[2][k] for row in table])
    return result


def _two_sum(a: "Tensor", b: "Tensor") -> tuple["Tensor", "Tensor"]:
    """(s, e) with s = a + b rounded and e its rounding error exactly (Knuth's TwoSum, any magnitudes)."""
    s = a + b
    b_part = s - a
    return s, (a - (s - b_part)) + (b - b_part)
