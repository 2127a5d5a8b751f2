"""Rendering: the linear IR as C-family source. One renderer, one small `Language` per dialect.

In: a `LinearKernel` (codegen/linearize.py) and a `Language`. Out: (function name, source,
(global, local) size).
It is the last stage of codegen (codegen/pipeline.py calls lower, optimize, linearize, then this).
A dialect differs from C only in what its `Language` says: the kernel's prefix, how buffers are declared,
type names, the text of each op, and how global loops run. C is the first instance (`C_LANGUAGE`); the
OpenCL and CUDA backends declare theirs in their own files.

Global loops: on a CPU they are `for` loops (the outermost maybe parallel). A GPU dialect names its flat
thread index (`Language.global_index`); the global loops then disappear: each thread computes one
iteration of all of them, recovering each loop variable from the thread index by division and modulo, and
the kernel is launched on `global size` = the product of the global loops' sizes (threads past it return).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from minigrad.codegen.linearize import LANEWISE_OPS, MASK_OPS, Instr, LinearKernel, Loop
import numpy as np

from minigrad.dtype import DType, dtypes, from_bfloat16, to_bfloat16
from minigrad.helpers import getenv, prod
from minigrad.ops import Op


def _max(a: str, b: str, dtype: DType) -> str:
    if dtypes.is_float(dtype):  # NaN wins, as in numpy and torch
        return f"(({a}>{b}||{a}!={a})?{a}:{b})"
    if dtype == dtypes.bool:  # no branch: a `?:` on a comparison of random data mispredicts half the time
        return f"({a}|{b})"
    return f"(({a}>{b})?{a}:{b})"


def _int_div(a: str, b: str, dtype: DType, op: str = "/") -> str:
    """Integer a/b or a%b that cannot trap (SIGFPE): by 0 gives 0, as numpy; by -1 negates (MIN stays MIN)."""
    by_minus_one = "0" if op == "%" else f"(0-(unsigned long)({a}))"  # wraps; the assignment converts back
    return f"({b}==0?0:{b}==-1?{by_minus_one}:{a}{op}{b})"


C_CODE_FOR_OP: dict[Op, Callable[..., str]] = {
    Op.EXP2: lambda x, dtype: f"exp2({x})",
    Op.EXP: lambda x, dtype: f"exp({x})",
    Op.LOG2: lambda x, dtype: f"log2({x})",
    Op.SIN: lambda x, dtype: f"sin({x})",
    Op.COS: lambda x, dtype: f"cos({x})",
    Op.SQRT: lambda x, dtype: f"sqrt({x})",
    Op.RECIP: lambda x, dtype: f"(1/{x})",
    Op.NEG: lambda x, dtype: f"(!{x})" if dtype == dtypes.bool else f"(-{x})",
    Op.ADD: lambda a, b, dtype: f"({a}+{b})",
    Op.MUL: lambda a, b, dtype: f"({a}*{b})",
    Op.MAX: _max,
    Op.CMPLT: lambda a, b, dtype: f"({a}<{b})",
    Op.CMPEQ: lambda a, b, dtype: f"({a}=={b})",
    Op.MOD: lambda a, b, dtype: f"fmod({a},{b})" if dtypes.is_float(dtype) else _int_div(a, b, dtype, "%"),
    Op.DIV: lambda a, b, dtype: f"({a}/{b})" if dtypes.is_float(dtype) else _int_div(a, b, dtype),
    Op.AND: lambda a, b, dtype: f"({a}&{b})",
    Op.OR: lambda a, b, dtype: f"({a}|{b})",
    Op.XOR: lambda a, b, dtype: f"({a}^{b})",
    Op.WHERE: lambda c, a, b, dtype: f"({c}?{a}:{b})",
}


# 16-bit floats, by the tag of their helpers: a buffer holds the bits (unsigned short), a value is a float
# rounded to the type after every op (as torch computes each op in float and rounds its result); sums
# accumulate in float. Converting needs the float's bits: a dialect gives mg_bits, mg_float and MG_FN (how
# it declares a helper function) in Language.bitcasts, or has no 16-bit floats. Rounding is to nearest even; the smallest float16s
# (subnormals) are rounded by float addition itself: a + 0.5 has its last bit at 2^-24.
HALF_FLOATS = {dtypes.float16: "f16", dtypes.bfloat16: "bf16"}
HALF_HELPERS = """MG_FN unsigned int mg_select(bool c, unsigned int a, unsigned int b) {  /* c ? a : b without a branch */
  unsigned int keep_a = 0u - (unsigned int)c;
  return (a & keep_a) | (b & ~keep_a);
}
MG_FN float mg_f16_to_float(unsigned short h) {
  unsigned int sign = (unsigned int)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  float subnormal = (float)(int)mantissa * 5.9604644775390625e-08f;
  unsigned int bits = ((exponent + 112u) << 23) | (mantissa << 13);
  bits = mg_select(exponent == 31u, 0x7f800000u | (mantissa << 13), bits);
  return mg_float(mg_select(exponent == 0u, mg_bits(subnormal), bits) | sign);
}
MG_FN unsigned short mg_float_to_f16(float f) {
  unsigned int x = mg_bits(f), sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
  unsigned int h = (a - (112u << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
  h = mg_select(a < 0x38800000u, mg_bits(mg_float(a) + 0.5f) - 0x3f000000u, h);
  h = mg_select(a >= 0x477ff000u, 0x7c00u, h);
  h = mg_select(a > 0x7f800000u, 0x7e00u, h);
  return (unsigned short)(h | sign);
}
MG_FN float mg_bf16_to_float(unsigned short b) { return mg_float((unsigned int)b << 16); }
MG_FN unsigned short mg_float_to_bf16(float f) {
  unsigned int x = mg_bits(f), rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  return (unsigned short)mg_select((x & 0x7fffffffu) > 0x7f800000u, (x >> 16) | 0x40u, rounded);
}
MG_FN float mg_round_f16(float f) { return mg_f16_to_float(mg_float_to_f16(f)); }
MG_FN float mg_round_bf16(float f) { return mg_bf16_to_float(mg_float_to_bf16(f)); }
"""
C_BITCASTS = """#define MG_FN static inline
static inline unsigned int mg_bits(float f) { union { float f; unsigned int u; } v = {f}; return v.u; }
static inline float mg_float(unsigned int u) { union { unsigned int u; float f; } v = {u}; return v.f; }
"""


@dataclass(frozen=True)
class Language:
    name: str
    headers: str = ""
    kernel_prefix: str = "void"
    buffer_prefix: str = ""
    type_names: dict[DType, str] = field(default_factory=lambda: {d: d.c_name for d in dtypes.all()})
    code_for_op: dict[Op, Callable[..., str]] = field(default_factory=lambda: dict(C_CODE_FOR_OP))
    parallel_for: str = ""  # a line before a parallel loop, e.g. an OpenMP pragma
    infinity: str = "INFINITY"
    global_index: str = ""  # a GPU's flat thread index (e.g. CUDA's blockIdx.x*blockDim.x+threadIdx.x)
    group_index: str = ""  # which work-group (block) this thread is in
    local_index: str = ""  # the thread's index inside its work-group
    local_prefix: str = ""  # declares an array shared by a work-group
    barrier: str = ""  # waits for every thread of the work-group
    # 4 floats at once, given `{ptr}` (and `{values}` to store); elements are read as .x .y .z .w
    vector_load: str = ""
    vector_store: str = ""
    # declares `{name}`, a vector of `{size}` bytes of `{scalar}` that may sit at any element's address
    # (vector columns: Instr.lanes), `+ - *` on each element, a scalar operand on all of them; and
    # `{name}_max(a, b)`, the max of each element (NaN wins), through `{int}`s of the element's size
    vector_type: str = ""
    # After the reduce loops, copy the accumulators to a local array behind a compiler barrier. GCC 12 only
    # vectorizes a group of accumulators when the values leaving the loop are stored as they are; with a
    # fused epilogue (`x @ W + b`) it left them scalar (8 -> 87 GFLOPS with the spill).
    spill_accumulators: bool = False
    # Put before a kernel with register tiling (opt.upcast): its tiles are written out as straight-line
    # code for the compiler's SLP vectorizer; GCC's loop vectorizer would otherwise vectorize loops across
    # iterations with strided loads and shuffles (x @ W.T, 128x512x512: 5 -> 69 GFLOPS; the relu backward
    # of a 2048x64x256 matmul in examples/tiny_gpt.py: 25 -> 0.9 ms).
    lanes_attribute: str = ""
    bitcasts: str = ""  # defines mg_bits(float), mg_float(unsigned int) and MG_FN; "" = no 16-bit floats
    # sin and cos are the MG_SIN macro: a fast kernel for |x| <= 16384 and an exact rerun (see _trig_rerun)
    trig_rerun: bool = False

    def type_name(self, dtype: DType) -> str:
        return self.type_names[dtype]

    def buffer_type(self, dtype: DType) -> str:
        return "unsigned short" if dtype in HALF_FLOATS else self.type_names[dtype]

    def literal(self, value: float | int | bool, dtype: DType) -> str:
        """A constant in source form, typed so that C does no surprising promotion."""
        if dtype == dtypes.bool:
            return "1" if value else "0"
        if dtypes.is_float(dtype):
            if math.isnan(value):
                return f"(({self.type_name(dtype)})NAN)"
            if math.isinf(value):
                return f"({'-' if value < 0 else ''}({self.type_name(dtype)}){self.infinity})"
            text = repr(_representable(float(value), dtype))
            return f"{text}f" if dtype == dtypes.float32 else f"(({self.type_name(dtype)}){text})"
        return f"(({self.type_name(dtype)}){int(value)})"

    def lowest(self, dtype: DType) -> str:
        """The identity of max for a dtype."""
        if dtypes.is_float(dtype):
            return self.literal(-math.inf, dtype)
        if dtype == dtypes.bool:
            return "0"
        bits = dtype.itemsize * 8
        return self.literal(0 if dtype == dtypes.uint8 else -(2 ** (bits - 1)), dtype)


# Float helpers for C, written so that GCC vectorizes them. GCC 12 keeps a float `?:` as a branch, and a
# branch stops its SLP vectorizer, so a max (NaN wins) is a bit select on masks: a max-reduce over 4096^2
# went 11.6 -> 4 ms. A libm exp2f call stays scalar (softmax spent 4.5 ns per exp2f), so 2^x for float32 is
# plain arithmetic: 2^x = 2^i * 2^f with i = rint(x) and f in [-0.5, 0.5], 2^f by its Taylor series to degree
# 7 (within 2 ulp of exp2). x is clamped to [-150, 129] first: -inf gives 0, inf gives inf, NaN stays NaN
# (mg_clampf: one compare a bound, as the bounds are never NaN; the two NaN-keeping maxes it replaced cost
# 9 of exp's 33 AVX-512 instructions: softmax's exp-sum kernel 3.0 -> 2.5-2.8 ms, its last 4.4 -> 4.1-4.3).
# 2^i is two factors, so denormal results come out right and no exponent field overflows. e^x is the same with
# i = rint(x log2 e) and f = (x - i ln 2) log2 e, ln 2 in a 16-bit and a low part so that i ln 2 is exact
# (Cody and Waite): within 1 ulp of expf. FAST_MATH_C=0 uses the ?: max and libm's exp2 and exp instead.
# log2 and sin likewise (libm's stay scalar: a sqrt-log2-sin chain ran at 5% of memory bandwidth, now ~100%).
# log2: x = m * 2^e with m in [0.71, 1.41), f = m - 1 (exact), log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)) with
# s = f / (2 + f) and R fitted by extra/fit_poly.py; f - f^2/2 is split into 12 high bits and the rest, so
# that its product with 1/ln 2 (also split) loses nothing (the split of fdlibm's log2f). Denormals scaled by
# 2^23 first; 0, negatives, inf and NaN by selects. Within 1 ulp of torch. sin: k = rint(x * 2/pi) and
# x = k pi/2 + r + low in float (pi/2 in 10-bit parts, whose products with k < 2^14 are exact, the last two
# subtractions' rounding kept in low), sin or cos of r by Cephes' polynomials as k mod 4 says, plus low times
# the other: within 1 ulp of libm for |x| <= 16384, in float only (8 lanes on AVX2; a reduction in double ran
# at 4, and the sqrt-log2-sin chain 1.55x slower). A larger |x| is noted by the kernel, which then runs again
# with libm's sinf and cosf and their exact reduction (render's _trig_rerun). cos is sin with k + 1.
C_HELPERS = """static inline float mg_maxf(float a, float b) {
  union { float f; int i; } ua = {a}, ub = {b};
  int keep_a = -((a > b) | (a != a));
  ua.i = (ua.i & keep_a) | (ub.i & ~keep_a);
  return ua.f;
}
static inline float mg_wheref(bool c, float a, float b) {
  union { float f; int i; } ua = {a}, ub = {b};
  int keep_a = -(int)c;
  ua.i = (ua.i & keep_a) | (ub.i & ~keep_a);
  return ua.f;
}
static inline float mg_clampf(float x, float lo, float hi) {  /* lo <= x <= hi, a NaN x kept: one compare each */
  x = mg_wheref(x < lo, lo, x);
  return mg_wheref(x > hi, hi, x);
}
static inline float mg_pow2f(float k, float f) {  /* 2^k 2^f for an integer k and f in [-0.5, 0.5] */
  float p = 1.5252733e-5f;
  p = p * f + 1.5403530e-4f; p = p * f + 1.3333558e-3f; p = p * f + 9.6181291e-3f;
  p = p * f + 5.5504109e-2f; p = p * f + 2.4022651e-1f; p = p * f + 6.9314718e-1f; p = p * f + 1.0f;
  int i = (int)k, half = i >> 1;
  union { unsigned bits; float f; } a = {(unsigned)(half + 127) << 23};
  union { unsigned bits; float f; } b = {(unsigned)(i - half + 127) << 23};
  return p * a.f * b.f;
}
static inline float mg_exp2f(float x) {
  float c = mg_clampf(x, -150.0f, 129.0f);
  float k = rintf(c);
  return mg_pow2f(k, c - k);
}
static inline float mg_expf(float x) {
  float c = mg_clampf(x, -104.0f, 89.0f);
  float k = rintf(c * 1.44269504f);
  return mg_pow2f(k, ((c - k * 0.693145751953125f) - k * 1.42860677e-06f) * 1.44269504f);
}
static inline float mg_log2f(float x) {
  bool tiny = x < 1.17549435e-38f;
  union { float f; int i; } u = {mg_wheref(tiny, x * 8388608.0f, x)};
  int e = ((u.i >> 23) & 0xff) - 127 - 23 * (int)tiny;
  u.i = (u.i & 0x7fffff) | 0x3f800000;
  bool big = u.f > 1.41421356f;
  float f = mg_wheref(big, u.f * 0.5f, u.f) - 1.0f, s = f / (2.0f + f), z = s * s;
  float remainder = z * (0.666666627f + z * (0.400015205f + z * (0.284180939f + z * 0.26402092f)));
  float half_square = 0.5f * f * f;
  union { float f; unsigned bits; } high = {f - half_square};
  high.bits &= 0xfffff000u;  /* 12 bits: high * 1.44287109f (1/ln 2 to 12 bits) is exact */
  float low = (f - high.f) - half_square + s * (half_square + remainder);
  float r = ((float)(e + big) + high.f * 1.44287109f) + ((low + high.f) * -1.76052853e-4f + low * 1.44287109f);
  r = mg_wheref(x == INFINITY, INFINITY, r);
  r = mg_wheref(x == 0.0f, -INFINITY, r);
  return mg_wheref((x < 0.0f) | (x != x), NAN, r);
}
static inline float mg_sum_error(float a, float b, float s) {  /* a + b - s exactly, s = a + b rounded */
  float b_part = s - a;
  return (a - (s - b_part)) + (b - b_part);
}
static inline float mg_sinf(float x, float shift) {  /* sin(x + shift * pi/2) for |x| <= 16384 (MG_SIN) */
  float k = rintf(x * 0.636619772f);
  float r = (x - k * 0x1.92p+0f) - k * 0x1.fbp-12f;  /* exact: pi/2 in 10-bit parts, k < 2^14 */
  float part = -k * 0x1.51p-22f, s = r + part, low = mg_sum_error(r, part, s);
  part = -k * 0x1.0b4612p-34f, r = s + part, low += mg_sum_error(s, part, r);
  k += shift;
  float q = k - 4.0f * rintf(k * 0.25f - 0.375f);  /* the quadrant, k mod 4 */
  float s2 = r * r;
  float ps = -1.9515295891e-4f;
  ps = ps * s2 + 8.3321608736e-3f; ps = ps * s2 - 1.6666654611e-1f; ps = ps * r * s2 + r;
  float pc = 2.443315711809948e-5f;
  pc = pc * s2 - 1.388731625493765e-3f; pc = pc * s2 + 4.166664568298827e-2f;
  pc = pc * s2 * s2 - 0.5f * s2 + 1.0f;
  bool odd = (q == 1.0f) | (q == 3.0f);  /* sin(r + low) = sin r + low cos r, cos(r + low) = cos r - low sin r */
  float v = mg_wheref(odd, pc - low * ps, ps + low * pc);
  return mg_wheref(q >= 2.0f, -v, v);
}
static inline float mg_sinf_exact(float x, float shift) {  /* libm's, with its exact reduction (any x) */
  return shift == 0.0f ? sinf(x) : cosf(x);
}
"""


def _guarded(macro: str, text: str) -> str:
    """Definitions that several kernels' sources may repeat in one compile (Compiler.compile_together)."""
    return f"#ifndef {macro}\n#define {macro}\n{text}\n#endif\n"


def _fast_float(dtype: DType) -> bool:
    """Is this value a float in a register (float32, and the 16-bit floats computed in float)?"""
    return (dtype == dtypes.float32 or dtype in HALF_FLOATS) and bool(getenv("FAST_MATH_C", 1))


def _libm(name: str, *args: str, dtype: DType) -> str:
    """A call of libm's `name` for values of `dtype`: its float version (sqrtf) for float32 and the 16-bit
    floats (computed in float), the double one otherwise. C has no overloads, and <tgmath.h>, which gives
    them, took 50 of every kernel's 130 ms of compiling (cold start: ~20 kernels)."""
    suffix = "f" if dtype == dtypes.float32 or dtype in HALF_FLOATS else ""
    return f"{name}{suffix}({', '.join(args)})"


C_FAST_OPS = {
    Op.EXP2: lambda x, dtype: f"mg_exp2f({x})" if _fast_float(dtype) else _libm("exp2", x, dtype=dtype),
    Op.EXP: lambda x, dtype: f"mg_expf({x})" if _fast_float(dtype) else _libm("exp", x, dtype=dtype),
    Op.LOG2: lambda x, dtype: f"mg_log2f({x})" if _fast_float(dtype) else _libm("log2", x, dtype=dtype),
    Op.SIN: lambda x, dtype: f"MG_SIN({x}, 0.0f)" if _fast_float(dtype) else _libm("sin", x, dtype=dtype),
    Op.COS: lambda x, dtype: f"MG_SIN({x}, 1.0f)" if _fast_float(dtype) else _libm("cos", x, dtype=dtype),
    Op.SQRT: lambda x, dtype: _libm("sqrt", x, dtype=dtype),
    Op.MOD: lambda a, b, dtype: (
        _libm("fmod", a, b, dtype=dtype) if dtypes.is_float(dtype) else _int_div(a, b, dtype, "%")
    ),
    Op.MAX: lambda a, b, dtype: f"mg_maxf({a},{b})" if _fast_float(dtype) else _max(a, b, dtype),
    Op.WHERE: lambda c, a, b, dtype: f"mg_wheref({c},{a},{b})" if _fast_float(dtype) else f"({c}?{a}:{b})",
}


VECTOR_TYPE = """typedef {scalar} {name} __attribute__((vector_size({size}), aligned({align}), may_alias));
typedef {int} {name}_bits __attribute__((vector_size({size})));
static inline {name} {name}_max({name} a, {name} b) {{
  {name}_bits keep_a = (a > b) | (a != a);
  return ({name})((({name}_bits)a & keep_a) | (({name}_bits)b & ~keep_a));
}}"""


C_LANGUAGE = Language(
    name="C",
    headers="#include <math.h>\n#include <stdbool.h>\n" + _guarded("MG_C_HELPERS", C_HELPERS),
    code_for_op={**C_CODE_FOR_OP, **C_FAST_OPS},
    parallel_for="#pragma omp parallel for",
    spill_accumulators=True,
    lanes_attribute='__attribute__((optimize("no-tree-loop-vectorize")))',
    bitcasts=C_BITCASTS,
    trig_rerun=True,
    vector_type=VECTOR_TYPE,
)


def _type(instr: Instr, language: Language) -> str:
    """The C type of an instruction's value: its dtype's, or a vector of them (vector columns)."""
    return language.type_name(instr.dtype) if instr.lanes == 1 else f"mg_{instr.dtype.name}x{instr.lanes}"


def _broadcast(value: str, scalar: bool, vector_type: str) -> str:
    """`value` as a value of `vector_type`: a scalar in every element, a vector as it is. The sum is cast
    back to the type: GCC gives it a plain vector type, which its C `c ? x : y` does not take beside one of
    `vector_type` (a cumsum of 4096x512x8: a kernel that did not compile)."""
    return f"({vector_type})(({vector_type}){{0}} + {value})" if scalar else value


def _mask_op(kernel: LinearKernel, instr: Instr, names: dict, language: Language) -> tuple[str, str]:
    """(C type, expression) of a comparison, WHERE or CAST of vectors (linearize._check_vector_alu). A
    comparison gives a mask: an integer vector of the compared vector's size, all bits set where true (C
    vector comparisons in GCC and clang); WHERE and CAST pick bits with it."""
    srcs = [kernel.instrs[s] for s in instr.srcs]
    vector_type = f"mg_{(srcs[0] if instr.arg in MASK_OPS else instr).dtype.name}x{instr.lanes}"
    operands = [_broadcast(names[s], src.lanes == 1, vector_type) for s, src in zip(instr.srcs, srcs)]
    bits = f"{vector_type}_bits"  # (the mask's type: the compared vector's integer twin)
    if instr.arg in MASK_OPS:
        return bits, f"({operands[0]} {'<' if instr.arg is Op.CMPLT else '=='} {operands[1]})"
    if instr.arg is Op.CAST:  # 1 where true: the bits of 1.0 where the mask is set
        one = _broadcast(language.literal(1, instr.dtype), True, vector_type)
        return vector_type, f"({vector_type})({names[instr.srcs[0]]} & ({bits}){one})"
    cond, x, y = names[instr.srcs[0]], operands[1], operands[2]
    if srcs[0].lanes == 1:  # one condition for every element
        return vector_type, f"({cond} ? {x} : {y})"
    return vector_type, f"({vector_type})((({bits}){x} & {cond}) | (({bits}){y} & ~{cond}))"


def _vector_types(kernel: LinearKernel, language: Language) -> str:
    """The declarations of the vector types the kernel uses (each once when kernels share a source)."""
    text = ""
    vectors = [i for i in kernel.instrs if i.lanes > 1 and i.dtype != dtypes.bool]  # (a mask: a _bits type)
    for instr in {(i.dtype, i.lanes): i for i in vectors}.values():
        name, scalar = _type(instr, language), language.type_name(instr.dtype)
        size, align = instr.dtype.itemsize * instr.lanes, instr.dtype.itemsize
        bits = language.type_name({4: dtypes.int32, 8: dtypes.int64}[align])
        declaration = language.vector_type.format(name=name, scalar=scalar, size=size, align=align, int=bits)
        text += _guarded(f"MG_{name.upper()}", declaration)
    return text


def _value_name(instr: Instr, position: int) -> str:
    prefix = {"LOAD": "val", "ALU": "alu", "CONST": "const", "ACC": "acc", "INDEX": "index"}[instr.op]
    return f"{prefix}{position}"


_FENCE = '__asm__ volatile("" : : "r"({array}) : "memory");'  # the array's stores are not moved past here


def _spill(
    accumulators: list[int], names: dict[int, str], kernel: LinearKernel, language: Language, add
) -> None:
    """Copy several accumulators into one array behind an empty asm barrier (see Language.spill_accumulators);
    later instructions read the array."""
    dtypes_used = {kernel.instrs[a].dtype for a in accumulators}
    if (
        len(accumulators) < 2
        or len(dtypes_used) != 1
        or any(kernel.instrs[a].lanes > 1 for a in accumulators)
    ):
        return  # (vectors are vectorized already)
    array = f"accs{accumulators[0]}"
    add(f"{language.type_name(dtypes_used.pop())} {array}[{len(accumulators)}];")
    for i, position in enumerate(accumulators):
        add(f"{array}[{i}] = {names[position]};")
        names[position] = f"{array}[{i}]"
    add(_FENCE.format(array=array))


def _thread_indices(
    kernel: LinearKernel, language: Language, add, int_type: str
) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """On a GPU, the global loops' variables from the flat thread index (the work-group's index when its
    threads share dims: LoopNest.threads). Returns (global size, local size); local None: the backend's."""
    loops = [i.arg for i in kernel.instrs if i.op == "LOOP" and not i.arg.reduce]
    total = prod(loop.size for loop in loops)
    if kernel.nest.threads:
        add(f"{int_type} gid = {language.group_index};")
        add(f"int lidx = {language.local_index};")
    else:
        add(f"{int_type} gid = {language.global_index};")
    add(f"if (gid >= {total}) return;")
    inner = total
    for loop in loops:
        outer, inner = inner, inner // loop.size
        index = "gid" if inner == 1 else f"(gid/{inner})"
        add(f"{int_type} {loop.var.name} = {index if outer == total else f'{index}%{loop.size}'};")
    size = kernel.nest.group_size
    return (total * size,), ((size,) if kernel.nest.threads else None)


def render(kernel: LinearKernel, language: Language) -> tuple[str, str, tuple]:
    """C-family source for one kernel: returns (function name, source, (global size, local size))."""
    names: dict[int, str] = {}  # instruction -> the C expression of its value
    lines, accumulators, depth, open_reduce_loops = [], [], 1, 0

    def add(text: str) -> None:
        lines.append("  " * depth + text)

    buffer_dtypes = {number: dtype for number, dtype, _ in kernel.buffers}
    reach = [i.arg[1].max for i in kernel.instrs if i.op in ("LOAD", "STORE", "VLOAD", "VSTORE")]
    reach.append(prod(kernel.nest.full_shape))  # bounds the loops and a mask's limits; past 2^31 - 1: 64 bits
    int_type = language.type_name(dtypes.int64) if max(reach, default=0) >= 2**31 - 1 else "int"
    launch = _thread_indices(kernel, language, add, int_type) if language.global_index else ((1,), None)

    for position, instr in enumerate(kernel.instrs):
        srcs = [names[s] for s in instr.srcs]
        if language.global_index and instr.op in ("LOOP", "ENDLOOP") and not instr.arg.reduce:
            continue  # a GPU: global loops are thread indices (computed at the top)
        if instr.op == "LOOP":
            loop: Loop = instr.arg
            if loop.parallel and language.parallel_for:
                add(language.parallel_for)
            e, var = names.get(loop.pick), loop.var.name
            if e:  # opt.pick: the loop runs at e only, if e is in the dim. An `if`, not a loop of one step:
                assert not loop.parallel  # the C compiler vectorizes the loop around it (x[idx]: 4-5x)
                add(f"if (0 <= {e} && {e} < {loop.size}) {{ {int_type} {var} = {e};")
            else:
                add(f"for ({int_type} {var} = 0; {var} < {loop.size}; {var}++) {{")
            depth += 1
            open_reduce_loops += loop.reduce
        elif instr.op == "ENDLOOP":
            depth -= 1
            add("}")
            open_reduce_loops -= instr.arg.reduce
            if (
                instr.arg.reduce
                and open_reduce_loops == 0
                and language.spill_accumulators
                and not kernel.spilled
            ):
                _spill(accumulators, names, kernel, language, add)
        elif instr.op == "CONST":
            names[position] = language.literal(instr.arg, instr.dtype)
        elif instr.op == "INDEX":
            names[position] = _value_name(instr, position)
            add(f"{language.type_name(instr.dtype)} {names[position]} = {instr.arg.render()};")
        elif instr.op == "ACC":
            accumulators.append(position)
            names[position] = _value_name(instr, position)
            initial, dtype = instr.arg[1], instr.dtype
            start = language.lowest(dtype) if initial == "lowest" else language.literal(initial, dtype)
            start = _broadcast(start, instr.lanes > 1, _type(instr, language))
            add(f"{_type(instr, language)} {names[position]} = {start};")
        elif instr.op == "UPDATE" and instr.lanes > 1 and instr.arg is Op.REDUCE_MAX:
            scalar, vector_type = kernel.instrs[instr.srcs[1]].lanes == 1, _type(instr, language)
            add(f"{srcs[0]} = {vector_type}_max({srcs[0]}, {_broadcast(srcs[1], scalar, vector_type)});")
        elif instr.op == "UPDATE":
            acc, value = srcs
            update = language.code_for_op[Op.ADD if instr.arg is Op.REDUCE_SUM else Op.MAX](
                acc, value, instr.dtype
            )
            add(f"{acc} = {update};")
        elif instr.op == "LOCAL":  # at the top: OpenCL wants local arrays at the kernel's outermost scope
            array = f"{language.type_name(instr.dtype)} {instr.arg[0]}[{instr.arg[1]}]"
            lines.insert(0, f"  {language.local_prefix}{array};")
        elif instr.op == "PRIVATE":  # where it is emitted: inside a parallel loop, each thread has its own
            add(f"{language.type_name(instr.dtype)} {instr.arg[0]}[{instr.arg[1]}];")
        elif instr.op == "BARRIER":
            add(language.barrier)
        elif instr.op == "FENCE":
            if language.spill_accumulators:  # (other dialects have no use for it)
                add(_FENCE.format(array=instr.arg))
        elif instr.op == "LOAD":
            names[position] = _value_name(instr, position)
            buffer, index, valid = instr.arg
            read = f"{_buffer_name(buffer)}[{index.render()}]"
            if instr.dtype in HALF_FLOATS and isinstance(buffer, int):
                read = f"mg_{HALF_FLOATS[instr.dtype]}_to_float({read})"
            if not (valid.min == 1 and valid.max == 1):
                read = f"({valid.render()})?{read}:{language.literal(0, instr.dtype)}"
            if instr.lanes > 1:  # (masked as a whole: the mask is the same for every lane)
                read = f"*({_type(instr, language)}*)({_pointer(instr.arg)})"
                read = (
                    read if valid.min == 1 else f"({valid.render()})?{read}:({_type(instr, language)}){{0}}"
                )
            add(f"{_type(instr, language)} {names[position]} = {read};")
        elif instr.op == "VLOAD":
            names[position] = f"vec{position}"
            load = language.vector_load.format(ptr=_pointer(instr.arg))
            add(f"float{instr.arg[2]} {names[position]} = {load};")
        elif instr.op == "LANE":
            names[position] = f"{srcs[0]}.{'xyzw'[instr.arg]}"
        elif instr.op == "VSTORE":
            add(language.vector_store.format(ptr=_pointer(instr.arg), values=", ".join(srcs)) + ";")
        elif instr.op == "ALU":
            names[position] = _value_name(instr, position)
            if instr.lanes > 1 and instr.arg in MASK_OPS + (Op.WHERE, Op.CAST):
                vector_type, expression = _mask_op(kernel, instr, names, language)
                add(f"{vector_type} {names[position]} = {expression};")
                continue
            if instr.arg is Op.CAST and instr.dtype == dtypes.bool:
                expression = f"({srcs[0]}!=0)"  # not a C cast: OpenCL keeps bools in uchar buffers
            elif instr.arg is Op.CAST:  # a bool through int: GCC 12 vectorizes no bool -> float conversion
                via_int = "(int)" if kernel.instrs[instr.srcs[0]].dtype == dtypes.bool else ""
                expression = f"({language.type_name(instr.dtype)})({via_int}{srcs[0]})"
            elif instr.lanes > 1 and instr.arg is Op.MAX:  # vectors, a scalar operand broadcast
                vector_type = _type(instr, language)
                a, b = (_broadcast(names[s], kernel.instrs[s].lanes == 1, vector_type) for s in instr.srcs)
                expression = f"{vector_type}_max({a}, {b})"
            elif instr.lanes > 1 and instr.arg in LANEWISE_OPS:  # the scalar code on each element, in a loop
                element = language.code_for_op[instr.arg](f"{srcs[0]}[element]", instr.dtype)
                add(f"{_type(instr, language)} {names[position]};")
                add(f"for (int element = 0; element < {instr.lanes}; element++) {{")
                add(f"  {names[position]}[element] = {element};")
                add("}")
                continue
            else:
                operand_dtype = kernel.instrs[instr.srcs[-1]].dtype
                expression = language.code_for_op[instr.arg](*srcs, operand_dtype)
            if instr.dtype in HALF_FLOATS:  # every op's result is rounded to the 16-bit type
                expression = f"mg_round_{HALF_FLOATS[instr.dtype]}({expression})"
            add(f"{_type(instr, language)} {names[position]} = {expression};")
        elif instr.op == "STORE":
            buffer, index, valid = instr.arg
            value = srcs[0]
            if isinstance(buffer, int) and buffer_dtypes[buffer] in HALF_FLOATS:
                value = f"mg_float_to_{HALF_FLOATS[buffer_dtypes[buffer]]}({value})"
            store = f"{_buffer_name(buffer)}[{index.render()}] = {value};"
            if instr.lanes > 1:
                store = f"*({_type(instr, language)}*)({_pointer(instr.arg)}) = {value};"
            add(store if valid.min == 1 else f"if ({valid.render()}) {store}")
        else:
            raise RuntimeError(f"cannot render IR instruction {instr.op}")
    params = ", ".join(
        f"{language.buffer_prefix}{language.buffer_type(dtype)}* data{number}"
        for number, dtype, _ in kernel.buffers
    )
    prefix = " ".join(
        filter(
            None,
            [
                language.lanes_attribute if kernel.nest.upcast and not kernel.nest.lane_loop else "",
                language.kernel_prefix,
            ],
        )
    )
    if language.trig_rerun and any("MG_SIN(" in line for line in lines):
        lines = _trig_rerun(lines, kernel, language)
    headers = language.headers
    if any(d in HALF_FLOATS for d in buffer_dtypes.values()) or any(
        i.dtype in HALF_FLOATS for i in kernel.instrs
    ):
        headers += _guarded("MG_HALF_HELPERS", language.bitcasts + HALF_HELPERS)
    headers += _vector_types(kernel, language)
    source = f"{headers}\n{prefix} {kernel.name}({params}) {{\n" + "\n".join(lines) + "\n}\n"
    return kernel.name, source, launch


def _trig_rerun(lines: list[str], kernel: LinearKernel, language: Language) -> list[str]:
    """The kernel body twice around sin and cos: first with the fast mg_sinf (float arithmetic, so 8 lanes
    on AVX2, exact for |x| <= 16384), which also notes whether any argument was larger; then, only if one
    was, again with libm's exact sinf and cosf. A kernel whose output is one of its inputs (an ASSIGN such
    as x.assign(x.sin())) cannot run twice: when the pointers say so, only the exact body runs.
    FAST_MATH_C=0 renders libm's sin and cos directly."""
    stores = {i.arg[0] for i in kernel.instrs if i.op in ("STORE", "VSTORE") and isinstance(i.arg[0], int)}
    loads = {i.arg[0] for i in kernel.instrs if i.op in ("LOAD", "VLOAD") and isinstance(i.arg[0], int)}
    aliases = [f"((void*)data{o} == (void*)data{i})" for o in sorted(stores) for i in sorted(loads - {o})]
    pragma = language.parallel_for
    fast = [line.replace(pragma, f"{pragma} reduction(|:mg_wide)") for line in lines] if pragma else lines
    return [
        f"  int mg_wide = {' | '.join(aliases) or '0'};  /* an output that is an input: the exact body only */",
        "  if (!mg_wide) {",
        "#define MG_SIN(x, s) (mg_wide |= fabsf(x) > 16384.0f, mg_sinf(x, s))",
        *fast,
        "#undef MG_SIN",
        "  }",
        "  if (mg_wide) {",
        "#define MG_SIN(x, s) mg_sinf_exact(x, s)",
        *lines,
        "#undef MG_SIN",
        "  }",
    ]


def _representable(value: float, dtype: DType) -> float:
    """The value a constant has in its type: a 16-bit float's constant is rounded to it."""
    if dtype == dtypes.float16:
        return float(np.float16(value))
    if dtype == dtypes.bfloat16:
        return float(from_bfloat16(to_bfloat16(np.float32(value))))
    return value


def _buffer_name(buffer: int | str) -> str:
    return f"data{buffer}" if isinstance(buffer, int) else buffer  # a kernel argument, or a local array


def _pointer(arg: tuple) -> str:
    """The address of a vector access: (buffer, index, ...) -> `data1+(index)`."""
    return f"{_buffer_name(arg[0])}+{arg[1].render()}"
