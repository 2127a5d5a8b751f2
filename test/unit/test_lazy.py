"""The lazy graph: nodes record work, movement nodes are views of a base, DETACH is an identity view."""

import numpy as np

from minigrad.dtype import dtypes
from minigrad.lazy import LazyNode, toposort
from minigrad.ops import Op


def leaf(*shape):
    return LazyNode.buffer(np.zeros(shape, np.float32), shape, dtypes.float32, "NUMPY")


def test_movement_nodes_are_views_of_their_base():
    x = leaf(2, 3)
    y = x.permute((1, 0)).reshape((6,)).pad(((1, 1),))
    assert y.base is x and y.is_view and y.shape == (8,)
    assert [n.op for n in toposort([y])] == [Op.BUFFER, Op.PERMUTE, Op.RESHAPE, Op.PAD]


def test_compute_nodes_are_bases():
    x = leaf(2, 3)
    y = x.alu(Op.ADD, x)
    assert y.base is y and not y.is_view and y.st.contiguous


def test_noop_movements_return_the_same_node():
    x = leaf(2, 3)
    assert x.reshape((2, 3)) is x and x.permute((0, 1)) is x and x.pad(((0, 0), (0, 0))) is x
    assert x.shrink(((0, 2), (0, 3))) is x and x.expand((2, 3)) is x


def test_detach_is_an_identity_view():
    x = leaf(2)
    d = x.detach()
    assert d.op is Op.DETACH and d.base is x and d.st == x.st


def test_const_is_a_broadcast_scalar():
    c = LazyNode.const(2.0, dtypes.float32, "NUMPY", (3, 4))
    assert c.shape == (3, 4) and c.op is Op.CONST and not c.is_view and not c.srcs  # one node
    assert c.st.real_strides() == (0, 0)  # every position reads the one element


def test_comparisons_produce_bool():
    x = leaf(2)
    assert x.alu(Op.CMPLT, x).dtype == dtypes.bool


def test_toposort_of_a_deep_chain():
    node = leaf(1)
    for _ in range(20_000):
        node = node.alu(Op.NEG)
    assert len(toposort([node])) == 20_001


def test_ops_are_one_instance_each():
    """Ops compare by identity: a copy, a deep copy (search.py copies loop nests that hold ASTs) and a
    pickle give back the same instance; every name in OP_NAMES is one."""
    import copy
    import pickle

    from minigrad.ops import OP_NAMES, Op

    assert len({id(getattr(Op, name)) for name in OP_NAMES}) == len(OP_NAMES) > 30
    for op in (Op.ADD, Op.CONST, Op.STORE):
        assert copy.copy(op) is op and copy.deepcopy([op])[0] is op and pickle.loads(pickle.dumps(op)) is op
        assert repr(op) == f"Op.{op.name}"
