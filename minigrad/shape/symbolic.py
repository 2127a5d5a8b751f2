"""Symbolic integer expressions: the index arithmetic of a view, simplified as it is built.

In: loop variables (`Variable("idx0", 0, 9)`) combined with ints by `+ - * // %` and the comparisons
`lt`/`ge`/`and_nodes`. Out: an expression tree that can be
  - evaluated (`node.evaluate({"idx0": array})`, with Python ints or numpy arrays: the NUMPY backend), and
  - rendered as C (`node.render()`: codegen).
Every node knows its `min` and `max`, which is what lets `//` and `%` simplify away:
`(idx0*4 + idx1) // 4` becomes `idx0` when `idx1` is in [0, 4).

Division and modulo are floor division and floor modulo, as in Python. C's `/` and `%` truncate, so
`render()` shifts a possibly negative numerator by a multiple of the divisor before dividing.
"""

from __future__ import annotations

import math
from typing import Any, Sequence


class Node:
    """Base of all expression nodes. Subclasses set `min` and `max` and implement render/evaluate."""

    min: int
    max: int

    def render(self) -> str:
        raise NotImplementedError

    def evaluate(self, env: dict[str, Any]) -> Any:
        raise NotImplementedError

    @property
    def key(self) -> str:
        """A string that is equal for structurally equal expressions (used to merge like terms)."""
        return self.render()

    def __add__(self, other: Node | int) -> Node:
        return sum_node([self, to_node(other)])

    def __radd__(self, other: int) -> Node:
        return sum_node([to_node(other), self])

    def __sub__(self, other: Node | int) -> Node:
        return sum_node([self, mul_node(to_node(other), -1)])

    def __rsub__(self, other: int) -> Node:
        return sum_node([to_node(other), mul_node(self, -1)])

    def __neg__(self) -> Node:
        return mul_node(self, -1)

    def __mul__(self, factor: int) -> Node:
        return mul_node(self, factor)

    __rmul__ = __mul__

    def __floordiv__(self, divisor: int) -> Node:
        return div_node(self, divisor)

    def __mod__(self, divisor: int) -> Node:
        return mod_node(self, divisor)

    def __repr__(self) -> str:
        return f"<{self.render()} in [{self.min}, {self.max}]>"


class NumNode(Node):
    def __init__(self, value: int):
        self.value = self.min = self.max = int(value)

    def render(self) -> str:
        return str(self.value)

    def evaluate(self, env: dict[str, Any]) -> int:
        return self.value


class Variable(Node):
    """A loop index: an integer in [min, max]."""

    def __init__(self, name: str, vmin: int, vmax: int):
        self.name, self.min, self.max = name, vmin, vmax

    def render(self) -> str:
        return self.name

    def evaluate(self, env: dict[str, Any]) -> Any:
        return env[self.name]


class MulNode(Node):
    def __init__(self, a: Node, factor: int):
        self.a, self.factor = a, factor
        lo, hi = a.min * factor, a.max * factor
        self.min, self.max = min(lo, hi), max(lo, hi)

    def render(self) -> str:
        return f"{self.a.render()}*{self.factor}"

    def evaluate(self, env: dict[str, Any]) -> Any:
        return self.a.evaluate(env) * self.factor


class DivNode(Node):
    def __init__(self, a: Node, divisor: int):
        self.a, self.divisor = a, divisor
        self.min, self.max = a.min // divisor, a.max // divisor

    def render(self) -> str:
        if self.a.min >= 0:
            return f"({self.a.render()}/{self.divisor})"
        shift = -(self.a.min // self.divisor)  # makes the numerator non-negative
        return f"(({(self.a + shift * self.divisor).render()})/{self.divisor}-{shift})"

    def evaluate(self, env: dict[str, Any]) -> Any:
        return self.a.evaluate(env) // self.divisor


class ModNode(Node):
    def __init__(self, a: Node, divisor: int):
        self.a, self.divisor = a, divisor
        self.min, self.max = 0, (min(a.max, divisor - 1) if a.min >= 0 else divisor - 1)

    def render(self) -> str:
        if self.a.min >= 0:
            return f"({self.a.render()}%{self.divisor})"
        shift = -(self.a.min // self.divisor)
        return f"(({(self.a + shift * self.divisor).render()})%{self.divisor})"

    def evaluate(self, env: dict[str, Any]) -> Any:
        return self.a.evaluate(env) % self.divisor


class MinNode(Node):
    """min(a, bound): where the last block of a loop that does not divide its dim starts (linearize.py)."""

    def __init__(self, a: Node, bound: int):
        self.a, self.bound = a, bound
        self.min, self.max = min(a.min, bound), min(a.max, bound)

    def render(self) -> str:
        a = self.a.render()
        return f"(({a})<{self.bound}?({a}):{self.bound})"

    def evaluate(self, env: dict[str, Any]) -> Any:
        value = self.a.evaluate(env)
        return min(value, self.bound) if isinstance(value, int) else value.clip(max=self.bound)


class SumNode(Node):
    def __init__(self, terms: Sequence[Node]):
        self.terms = tuple(terms)
        self.min = sum(t.min for t in self.terms)
        self.max = sum(t.max for t in self.terms)

    def render(self) -> str:
        text = self.terms[0].render()
        for term in self.terms[1:]:
            rendered = term.render()
            text += rendered if rendered.startswith("-") else "+" + rendered
        return f"({text})"

    def evaluate(self, env: dict[str, Any]) -> Any:
        total = self.terms[0].evaluate(env)
        for term in self.terms[1:]:
            total = total + term.evaluate(env)
        return total


class CmpNode(Node):
    """`a < bound` or `a >= bound`: 1 when true, 0 when false."""

    def __init__(self, a: Node, op: str, bound: int):
        assert op in ("<", ">=")
        self.a, self.op, self.bound = a, op, bound
        self.min, self.max = 0, 1

    def render(self) -> str:
        return f"({self.a.render()}{self.op}{self.bound})"

    def evaluate(self, env: dict[str, Any]) -> Any:
        value = self.a.evaluate(env)
        return value < self.bound if self.op == "<" else value >= self.bound


class AndNode(Node):
    def __init__(self, terms: Sequence[Node]):
        self.terms = tuple(terms)
        self.min, self.max = 0, 1

    def render(self) -> str:
        return "(" + "&&".join(t.render() for t in self.terms) + ")"

    def evaluate(self, env: dict[str, Any]) -> Any:
        result = self.terms[0].evaluate(env)
        for term in self.terms[1:]:
            result = result & term.evaluate(env)
        return result


# ---- constructors that simplify -------------------------------------------------------------------


def to_node(value: Node | int) -> Node:
    return value if isinstance(value, Node) else NumNode(value)


def _split_coefficient(term: Node) -> tuple[Node, int]:
    """`x*3` -> (x, 3); `x` -> (x, 1)."""
    return (term.a, term.factor) if isinstance(term, MulNode) else (term, 1)


def sum_node(nodes: Sequence[Node]) -> Node:
    """Flatten nested sums, fold constants and merge like terms (`a*2 + a` -> `a*3`)."""
    flat: list[Node] = []
    for node in nodes:
        flat.extend(node.terms if isinstance(node, SumNode) else [node])
    constant, coefficients, bases = 0, {}, {}
    for term in flat:
        if isinstance(term, NumNode):
            constant += term.value
            continue
        base, factor = _split_coefficient(term)
        coefficients[base.key] = coefficients.get(base.key, 0) + factor
        bases.setdefault(base.key, base)
    terms = [mul_node(bases[k], c) for k, c in coefficients.items() if c != 0]
    if constant != 0 or not terms:
        terms.append(NumNode(constant))
    return terms[0] if len(terms) == 1 else SumNode(terms)


def variables(node: Node) -> set[str]:
    """The names of the variables that occur in `node`."""
    if isinstance(node, Variable):
        return {node.name}
    children = node.terms if isinstance(node, (SumNode, AndNode)) else [node.a] if hasattr(node, "a") else []
    return set().union(*(variables(c) for c in children))


def affine_coefficients(node: Node) -> dict[str, int | None]:
    """How far `node` moves per unit step of each of its variables; None for a variable that occurs inside
    a div, mod or comparison (not affine). `(a*4+b)%3 + c*2` -> {a: None, b: None, c: 2}."""
    coefficients: dict[str, int | None] = {}
    for term in node.terms if isinstance(node, SumNode) else [node]:
        base, factor = _split_coefficient(term)
        if isinstance(base, Variable) and coefficients.get(base.name, 0) is not None:
            coefficients[base.name] = coefficients.get(base.name, 0) + factor
        else:
            coefficients.update(dict.fromkeys(variables(base)))
    return coefficients


def mul_node(a: Node, factor: int) -> Node:
    if factor == 0:
        return NumNode(0)
    if factor == 1:
        return a
    if isinstance(a, NumNode):
        return NumNode(a.value * factor)
    if isinstance(a, MulNode):
        return mul_node(a.a, a.factor * factor)
    if isinstance(a, SumNode):
        return sum_node([mul_node(t, factor) for t in a.terms])
    return MulNode(a, factor)


def _terms_and_constant(a: Node) -> tuple[list[Node], int]:
    terms = list(a.terms) if isinstance(a, SumNode) else [a]
    constant = sum(t.value for t in terms if isinstance(t, NumNode))
    return [t for t in terms if not isinstance(t, NumNode)], constant


def _common_factor(a: Node, divisor: int) -> int:
    """The largest g dividing `divisor` and every coefficient of `a` (so `a//divisor` can cancel g)."""
    terms, constant = _terms_and_constant(a)
    g = math.gcd(divisor, constant)
    for term in terms:
        g = math.gcd(g, _split_coefficient(term)[1])
    return g


def div_node(a: Node, divisor: int) -> Node:
    """Floor division by a positive constant, simplified using the range of `a`."""
    if divisor <= 0:
        raise ValueError(f"symbolic division needs a positive divisor, got {divisor}")
    if divisor == 1:
        return a
    if a.min // divisor == a.max // divisor:
        return NumNode(a.min // divisor)
    if isinstance(a, DivNode):
        return div_node(a.a, a.divisor * divisor)
    terms, constant = _terms_and_constant(a)
    # a coefficient f = q*divisor + r leaves q whole: (x + 35*y) // 34 = y + (x + y) // 34
    whole = [mul_node(b, f // divisor) for b, f in map(_split_coefficient, terms) if f >= divisor]
    rest = [mul_node(b, f % divisor if f >= divisor else f) for b, f in map(_split_coefficient, terms)]
    rest = [t for t in rest if not isinstance(t, NumNode)]
    if whole or constant >= divisor or constant < 0:
        quotient, remainder = divmod(constant, divisor)
        return sum_node(whole + [NumNode(quotient), div_node(sum_node(rest + [NumNode(remainder)]), divisor)])
    g = _common_factor(a, divisor)
    return div_node(_exact_divide(a, g), divisor // g) if g > 1 else DivNode(a, divisor)


def mod_node(a: Node, divisor: int) -> Node:
    """Floor modulo by a positive constant, simplified using the range of `a`."""
    if divisor <= 0:
        raise ValueError(f"symbolic modulo needs a positive divisor, got {divisor}")
    if divisor == 1:
        return NumNode(0)
    if a.min >= 0 and a.max < divisor:
        return a
    if a.min // divisor == a.max // divisor:
        return a - (a.min // divisor) * divisor
    if isinstance(a, ModNode) and a.divisor % divisor == 0:
        return mod_node(a.a, divisor)
    terms, constant = _terms_and_constant(a)
    # coefficients count modulo the divisor: (x + 35*y) % 34 = (x + y) % 34, which a range may then drop
    reduced = [(b, f % divisor) for b, f in map(_split_coefficient, terms)]
    rest = [mul_node(b, f) for b, f in reduced if f]
    changed = any(f != _split_coefficient(t)[1] for (_, f), t in zip(reduced, terms))
    if changed or not 0 <= constant < divisor:
        return mod_node(sum_node(rest + [NumNode(constant % divisor)]), divisor)
    g = _common_factor(a, divisor)
    return mul_node(mod_node(_exact_divide(a, g), divisor // g), g) if g > 1 else ModNode(a, divisor)


def _exact_divide(a: Node, g: int) -> Node:
    """`a / g` for an `a` whose every coefficient is a multiple of g."""
    terms, constant = _terms_and_constant(a)
    parts = [mul_node(b, f // g) for b, f in map(_split_coefficient, terms)]
    return sum_node(parts + [NumNode(constant // g)])


def lt(a: Node, bound: int) -> Node:
    decided = a.max < bound or a.min >= bound  # every value of a on one side of the bound
    return NumNode(int(a.max < bound)) if decided else CmpNode(a, "<", bound)


def ge(a: Node, bound: int) -> Node:
    decided = a.max < bound or a.min >= bound
    return NumNode(int(a.min >= bound)) if decided else CmpNode(a, ">=", bound)


def and_nodes(nodes: Sequence[Node]) -> Node:
    terms = [n for n in nodes if not (isinstance(n, NumNode) and n.value == 1)]
    if any(isinstance(n, NumNode) and n.value == 0 for n in terms):
        return NumNode(0)
    if not terms:
        return NumNode(1)
    return terms[0] if len(terms) == 1 else AndNode(terms)
