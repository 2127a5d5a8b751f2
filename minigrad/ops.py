"""The primitive ops: the whole instruction set of minigrad, and the kernel AST built from it.

In: nothing (a leaf module besides dtype). Out: the `Op`s, their groups, and `AstNode`.

Every Tensor method is composed from these ops (tensor.py); autograd has one rule per op (gradient.py);
the scheduler turns graphs of them into kernels (engine/schedule.py); a backend only ever sees them.

| group      | op          | why it is primitive                                                          |
|------------|-------------|------------------------------------------------------------------------------|
| unary      | EXP2        | 2^x: pow composes from it; hardware has exp2                                 |
|            | EXP         | e^x: as exp2(x log2 e) it was 60 ulp off at |x| = 88 (the product's rounding |
|            |             | scaled by 88); an exact reduction composed of primitives took 24 nodes and |
|            |             | twice the kernel time in every softmax. sigmoid, tanh, sinh compose from it  |
|            | LOG2        | log is log2 times a constant; hardware has log2                              |
|            | SIN COS     | tan composes from them; cos as sin(pi/2 - x) is not: the float32 subtraction |
|            |             | rounds away the argument's low bits (cos(1e7) gave -0.650, not -0.907)       |
|            | SQRT        | composing it (exp2(log2(x)/2)) is slow and wrong at 0                        |
|            | RECIP       | 1/x (reciprocal, rsqrt, derivatives) in one op                               |
|            | NEG         | subtraction and the sign flips of every derivative rule                      |
|            | CAST        | changes the element type; cannot be composed                                 |
| binary     | ADD MUL     | the ring operations                                                          |
|            | MAX         | relu, clamp, maximum; composing it from CMPLT+WHERE doubles the work         |
|            | CMPLT CMPEQ | produce bools; every other comparison composes from these two                |
|            | MOD         | remainder, truncating as C does (fmod on floats)                             |
|            | AND OR XOR  | bitwise logic on integers: no composition from arithmetic short of a loop    |
|            |             | over the bits (shifts compose: x << n is x * 2**n)                           |
|            | DIV         | a/b: truncating on ints, as C; exact on floats, where a*recip(b) is not      |
|            |             | (1/b overflows for a subnormal b: 0/1e-40 gave NaN) and is off by an ulp     |
| ternary    | WHERE       | selection without arithmetic (no 0*inf = nan when masking)                   |
| reduce     | REDUCE_SUM  | sum over axes; with MUL it gives matmul and convolution                      |
|            | REDUCE_MAX  | max over axes (softmax, pooling, argmax); not composable from sums           |
| movement   | RESHAPE PERMUTE EXPAND PAD SHRINK FLIP | views: change how a buffer is indexed, never copy |
| buffer     | BUFFER      | a leaf: data loaded from the host, or an empty buffer                        |
|            | CONST       | a scalar broadcast by views, or IOTA (arange); costs no memory               |
|            | COPY        | moves a buffer to another device                                             |
|            | CONTIGUOUS  | forces a view to be materialized in its own buffer                           |
|            | ASSIGN      | writes a value into an existing buffer (optimizer updates)                   |
|            | DETACH      | an identity view that stops the gradient walk (`detach()`, `no_grad()`)      |
|            | FUNCTION    | an identity view whose derivatives come from user rules (`Function`,         |
|            |             | `checkpoint`): the only way a composite op gets its own derivative           |

Two more ops appear only inside a kernel AST: LOAD (read a buffer through a view) and STORE (write the
kernel's result). A kernel AST is a small tree of `AstNode`s whose root is a STORE.
"""

from __future__ import annotations

from typing import Any

from minigrad.dtype import DType


class Op:
    """One primitive op of the table above: one instance per name (`Op.ADD`), so `is` compares them."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"Op.{self.name}"

    def __reduce__(self):  # copies and pickles stay the one instance
        return getattr, (Op, self.name)


# A plain class, not an Enum: in Python 3.11 every read of an Enum's member through its class (`Op.ADD`)
# goes through a __getattr__ hook written in Python, 3x slower, and building a graph reads them on every op
# (an eager MLP step's Python took 1.40 -> 1.31 ms).
OP_NAMES = (
    "EXP2 EXP LOG2 SIN COS SQRT RECIP NEG CAST ADD MUL MAX CMPLT CMPEQ MOD DIV AND OR XOR WHERE REDUCE_SUM REDUCE_MAX RESHAPE"
    " PERMUTE EXPAND PAD SHRINK FLIP BUFFER CONST COPY CONTIGUOUS ASSIGN DETACH FUNCTION LOAD STORE"
).split()
for _name in OP_NAMES:
    setattr(Op, _name, Op(_name))


UNARY = frozenset({Op.EXP2, Op.EXP, Op.LOG2, Op.SIN, Op.COS, Op.SQRT, Op.RECIP, Op.NEG, Op.CAST})
BINARY = frozenset({Op.ADD, Op.MUL, Op.MAX, Op.CMPLT, Op.CMPEQ, Op.MOD, Op.DIV, Op.AND, Op.OR, Op.XOR})
BITWISE = frozenset({Op.AND, Op.OR, Op.XOR})
TERNARY = frozenset({Op.WHERE})
ELEMENTWISE = UNARY | BINARY | TERNARY
REDUCE = frozenset({Op.REDUCE_SUM, Op.REDUCE_MAX})
MOVEMENT = frozenset({Op.RESHAPE, Op.PERMUTE, Op.EXPAND, Op.PAD, Op.SHRINK, Op.FLIP})
COMPARISON = frozenset({Op.CMPLT, Op.CMPEQ})


# the value of a CONST whose elements are their own positions (arange): its view's index, computed in the
# kernel, where codegen sees which element a comparison with it picks (opt.pick)
IOTA = "IOTA"


class AstNode:
    """One node of a kernel AST.

    op:   an elementwise or reduce Op, or LOAD / CONST / STORE.
    srcs: the operand nodes.
    arg:  LOAD and STORE: (buffer index, ShapeTracker); CONST: (value, ShapeTracker);
          REDUCE_*: the reduced axes; CAST: the target DType; otherwise None.
    dtype: the element type this node produces.

    Nodes are immutable and compare by structure, so two kernels built from different graphs but doing the
    same work hit the same compiled program. The hash is computed once from the children's hashes and
    equality is checked without recursion: fused kernels can be thousands of nodes deep."""

    __slots__ = ("op", "srcs", "arg", "dtype", "_key", "_hash", "_orders")

    def __init__(self, op: Op, srcs: tuple["AstNode", ...], arg: Any, dtype: DType):
        self.op, self.srcs, self.arg, self.dtype = op, tuple(srcs), arg, dtype
        # constants compare by repr: -0.0 is not 0.0 (x * -0.0 has another sign), and nan equals nan
        identity = (repr(arg[0]), arg[1]) if op is Op.CONST else arg
        self._key = (op, identity, dtype, len(self.srcs))
        self._hash = hash((self._key, tuple(s._hash for s in self.srcs)))
        self._orders: dict[bool, list[AstNode]] = {}  # toposort's results (the node never changes)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AstNode):
            return NotImplemented
        pending, checked = [(self, other)], set()
        while pending:
            a, b = pending.pop()
            if a is b or (id(a), id(b)) in checked:
                continue
            if a._hash != b._hash or a._key != b._key:
                return False
            checked.add((id(a), id(b)))
            pending.extend(zip(a.srcs, b.srcs))
        return True

    def __repr__(self) -> str:
        return f"AstNode({self.op.name}, {len(self.srcs)} srcs, arg={self.arg!r}, {self.dtype})"

    def toposort(self, stop_at_reduce: bool = False) -> list["AstNode"]:
        """All distinct nodes of this tree, operands before users (iterative; no recursion limit), computed
        once per node. With `stop_at_reduce`, the operands of reduces are not visited."""
        if stop_at_reduce in self._orders:
            return self._orders[stop_at_reduce]
        order: list[AstNode] = []
        seen: set[int] = set()
        stack: list[tuple[AstNode, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            if not (stop_at_reduce and node.op in REDUCE):
                stack.extend((src, False) for src in reversed(node.srcs))
        self._orders[stop_at_reduce] = order
        return order
