"""Symbolic index expressions: simplification, evaluation and C rendering agree with Python integers."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from minigrad.shape.symbolic import NumNode, Variable, and_nodes, ge, lt


def eval_rendered_c(node, env):
    """Evaluate the C text of `node` in Python. Valid because render() only divides non-negative numbers,
    where C's truncating / and % agree with Python's // and %."""
    text = node.render().replace("/", "//").replace("&&", " and ")
    return int(eval(text, {}, dict(env)))


def test_simplifications_read_naturally():
    i, j = Variable("i", 0, 9), Variable("j", 0, 3)
    assert ((i * 4 + j) // 4).render() == "i"
    assert ((i * 4 + j) % 4).render() == "j"
    assert ((i * 4 + j + 8) // 4).render() == "(i+2)"
    assert (i * 2 + i).render() == "i*3"
    assert (i - i).render() == "0"
    assert (j // 4).render() == "0"
    assert ((i * 6 + j * 2) // 4).render() == "(i+((i+j)/2))"  # 6 = 4 + 2: i leaves whole
    assert lt(j, 4).render() == "1" and ge(j, 0).render() == "1"
    assert and_nodes([lt(i, 5), NumNode(1)]).render() == "(i<5)"
    assert and_nodes([lt(i, 5), NumNode(0)]).render() == "0"


def test_bounds_are_tight_for_affine():
    i, j = Variable("i", 0, 9), Variable("j", 0, 3)
    e = i * 4 - j + 2
    assert (e.min, e.max) == (-1, 38)


@st.composite
def expressions(draw):
    variables = [Variable("a", 0, draw(st.integers(0, 12))), Variable("b", 0, draw(st.integers(0, 7)))]
    node = variables[0] * draw(st.integers(-5, 5)) + variables[1] * draw(st.integers(-5, 5))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["add", "mul", "div", "mod"]))
        value = draw(st.integers(1, 9))
        if kind == "add":
            node = (
                node
                + draw(st.integers(-20, 20))
                + variables[draw(st.integers(0, 1))] * draw(st.integers(-3, 3))
            )
        elif kind == "mul":
            node = node * draw(st.integers(-3, 3))
        elif kind == "div":
            node = node // value
        else:
            node = node % value
    return variables, node


@settings(max_examples=300, deadline=None)
@given(expressions())
def test_evaluate_and_render_match_python(case):
    variables, node = case
    for a, b in itertools.product(range(variables[0].max + 1), range(variables[1].max + 1)):
        env = {"a": a, "b": b}
        value = node.evaluate(env)
        assert node.min <= value <= node.max, (node, env, value)
        assert eval_rendered_c(node, env) == value, (node.render(), env)
