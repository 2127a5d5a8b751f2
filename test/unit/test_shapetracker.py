"""Views and ShapeTrackers: every movement op, alone and combined, reads exactly what numpy reads."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigrad.shape.shapetracker import ShapeTracker


def read(st: ShapeTracker, buffer: np.ndarray) -> np.ndarray:
    """What a kernel sees through `st`: buffer[index] where valid, 0 elsewhere."""
    index, valid = st.evaluate_indices()
    return np.where(valid, buffer[np.where(valid, index, 0)], 0)


def check(shape, moves):
    """Apply `moves` to both a ShapeTracker and a numpy array; they must agree."""
    buffer = np.arange(1, int(np.prod(shape)) + 1)
    array, tracker = buffer.reshape(shape), ShapeTracker.from_shape(shape)
    for op, arg in moves:
        tracker = getattr(tracker, op)(arg)
        array = NUMPY_MOVES[op](array, arg)
        assert tracker.shape == array.shape
        np.testing.assert_equal(read(tracker, buffer), array, err_msg=f"after {op}{arg}")
    return tracker


NUMPY_MOVES = {
    "reshape": lambda a, shape: a.reshape(shape),
    "permute": lambda a, order: a.transpose(order),
    "expand": lambda a, shape: np.broadcast_to(a, shape),
    "pad": lambda a, padding: np.pad(a, padding),
    "shrink": lambda a, bounds: a[tuple(slice(b, e) for b, e in bounds)],
    "flip": lambda a, axes: np.flip(a, axes),
}


def test_each_movement_op():
    check((2, 3, 4), [("reshape", (6, 4))])
    check((2, 3, 4), [("permute", (2, 0, 1))])
    check((2, 1, 4), [("expand", (2, 5, 4))])
    check((2, 3), [("pad", ((1, 2), (0, 3)))])
    check((5, 6), [("shrink", ((1, 4), (2, 6)))])
    check((3, 4), [("flip", (0, 1))])


def test_combinations():
    check((2, 3, 4), [("permute", (1, 0, 2)), ("reshape", (3, 8))])  # reshape after permute
    check((4, 5), [("pad", ((2, 2), (1, 1))), ("shrink", ((1, 7), (0, 6)))])  # pad then shrink
    check((4, 5), [("pad", ((2, 2), (1, 1))), ("shrink", ((2, 6), (1, 6)))])  # shrink undoes pad exactly
    check(
        (4, 6),
        [
            ("shrink", ((0, 4), (0, 6))),
            ("reshape", (4, 3, 2)),
            ("shrink", ((0, 4), (0, 3), (0, 1))),
            ("reshape", (4, 3, 1)),
            ("expand", (4, 3, 5)),
        ],
    )  # expand of a strided view
    check(
        (10,), [("flip", (0,)), ("shrink", ((1, 9),)), ("reshape", (4, 2)), ("shrink", ((0, 4), (0, 1)))]
    )  # negative-step slicing x[8:0:-2]
    check((3, 4), [("pad", ((1, 1), (1, 1))), ("reshape", (30,))])  # reshape of a padded view
    check((3, 4), [("pad", ((1, 1), (1, 1))), ("reshape", (5, 3, 2)), ("permute", (2, 0, 1)), ("flip", (1,))])


def test_reshape_of_padded_view_stacks_a_view():
    tracker = check((3, 4), [("pad", ((1, 1), (1, 1))), ("reshape", (30,))])
    assert len(tracker.views) == 2


def test_simple_reshapes_stay_one_view():
    assert len(check((2, 3, 4), [("permute", (1, 0, 2)), ("reshape", (3, 2, 2, 2))]).views) == 1
    assert len(check((2, 1, 4), [("expand", (2, 3, 4)), ("reshape", (2, 3, 2, 2))]).views) == 1
    assert len(check((4, 4), [("pad", ((1, 1), (0, 0))), ("reshape", (6, 2, 2))]).views) == 1
    assert ShapeTracker.from_shape((2, 3)).reshape((6,)).contiguous


def test_empty_and_scalar_shapes():
    check((0, 3), [("reshape", (3, 0)), ("permute", (1, 0))])
    check((), [("reshape", (1, 1)), ("expand", (2, 3))])
    check((1,), [("reshape", ()), ("reshape", (1, 1, 1))])


@st.composite
def move_sequences(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    moves, current = [], shape
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(list(NUMPY_MOVES)))
        n = len(current)
        if op == "reshape":
            size = int(np.prod(current))
            divisors = [d for d in range(1, size + 1) if size % d == 0]
            first = draw(st.sampled_from(divisors))
            arg = (first, size // first) if draw(st.booleans()) else (size,)
        elif op == "permute":
            arg = tuple(draw(st.permutations(range(n))))
        elif op == "expand":
            if 1 not in current:
                current_with_one = current + (1,)
                moves.append(("reshape", current_with_one))
                current, n = current_with_one, n + 1
            arg = tuple(draw(st.integers(1, 3)) if s == 1 else s for s in current)
        elif op == "pad":
            arg = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(n))
        elif op == "shrink":
            bounds = []
            for s in current:
                begin = draw(st.integers(0, s - 1))
                bounds.append((begin, draw(st.integers(begin + 1, s))))
            arg = tuple(bounds)
        else:
            arg = tuple(sorted(set(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n)))))
        moves.append((op, arg))
        current = NUMPY_MOVES[op](np.zeros(current), arg).shape
    return shape, moves


@settings(max_examples=400, deadline=None)
@given(move_sequences())
def test_random_move_sequences_match_numpy(case):
    shape, moves = case
    check(shape, moves)


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_rendered_index_matches_evaluated(order):
    """The C text of a multi-view index computes the same numbers as evaluate_indices."""
    from test.unit.test_symbolic import eval_rendered_c

    tracker = ShapeTracker.from_shape((3, 4)).pad(((1, 1), (1, 1))).reshape((5, 3, 2)).permute(order)
    index, valid = tracker.expr_node()
    want_index, want_valid = tracker.evaluate_indices()
    for position in np.ndindex(*tracker.shape):
        env = {f"idx{d}": p for d, p in enumerate(position)}
        assert eval_rendered_c(valid, env) == want_valid[position]
        if want_valid[position]:
            assert eval_rendered_c(index, env) == want_index[position]


def test_moves_are_cached_and_bad_moves_always_raise():
    """Movement ops are cached per (tracker, argument): the same move gives the same tracker object, and
    a bad move raises a ValueError naming the shapes every time (an exception is never cached)."""
    tracker = ShapeTracker.from_shape((2, 3))
    assert tracker.reshape((3, 2)) is tracker.reshape((3, 2))
    assert tracker.permute((0, 1)) is tracker
    bad = [
        ("reshape", (4, 2), "cannot reshape"),
        ("permute", (0, 0), "cannot permute"),
        ("expand", (4, 3), "cannot expand"),
        ("expand", (2, 3, 1), "cannot expand"),
        ("pad", ((-1, 0), (0, 0)), "negative padding"),
        ("shrink", ((0, 3), (0, 3)), "cannot shrink"),
    ]
    for op, arg, message in bad * 2:
        with pytest.raises(ValueError, match=message):
            getattr(tracker, op)(arg)
