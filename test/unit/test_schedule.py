"""The scheduler's output format (the contract with codegen) and the one-kernel-per-op rules of this stage."""

import numpy as np

from minigrad import Context, GlobalCounters, Tensor
from minigrad.engine.schedule import create_schedule
from minigrad.ops import AstNode, Op


def realized(*shape):
    return Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32)).realize()


def kernels_of(t: Tensor):
    return [item for item in create_schedule([t.lazydata]) if item.ast.op is Op.STORE]


def test_elementwise_kernel_ast_format():
    a, b = realized(2, 3), realized(2, 3)
    (item,) = kernels_of(a + b)
    store = item.ast
    assert store.op is Op.STORE and store.arg[0] == 0 and store.arg[1].contiguous
    add = store.srcs[0]
    assert add.op is Op.ADD
    assert [leaf.op for leaf in add.srcs] == [Op.LOAD, Op.LOAD]
    assert [leaf.arg[0] for leaf in add.srcs] == [1, 2], "buffer numbers: outputs first, then inputs"
    assert item.inputs == (a.lazydata, b.lazydata)


def test_movement_ops_are_free_index_math():
    x = realized(2, 3, 4)
    view = x.permute(2, 0, 1).reshape(4, 6).pad(((1, 1), (0, 0))).flip(0)[1:5, ::2]
    (item,) = kernels_of(view * 2)
    load = item.ast.srcs[0].srcs[0]
    assert load.op is Op.LOAD and load.arg[1].shape == (4, 3) and not load.arg[1].contiguous
    GlobalCounters.reset()
    np.testing.assert_equal(
        (view * 2).numpy(),
        np.flip(np.pad(x.numpy().transpose(2, 0, 1).reshape(4, 6), ((1, 1), (0, 0))), 0)[1:5, ::2] * 2,
    )
    assert GlobalCounters.kernel_count == 1


def test_constants_are_inlined_not_buffers():
    x = realized(3)
    (item,) = kernels_of(x + 1.5)
    const = item.ast.srcs[0].srcs[1]
    assert const.op is Op.CONST and const.arg[0] == 1.5 and len(item.inputs) == 1


def test_reduce_kernel_keeps_dims():
    x = realized(3, 4)
    (item,) = kernels_of(x.sum(1, keepdim=True))
    reduce = item.ast.srcs[0]
    assert reduce.op is Op.REDUCE_SUM and reduce.arg == (1,)
    assert reduce.srcs[0].arg[1].shape == (3, 4) and item.ast.arg[1].shape == (3, 1)


def test_shared_nodes_and_realized_leaves():
    x = realized(4)
    shared = x * 2
    GlobalCounters.reset()
    (shared + 1).realize(shared - 1)
    assert GlobalCounters.kernel_count == 2, "x*2 is cheap: recomputed inside both kernels"
    shared.realize()
    GlobalCounters.reset()
    (shared + 3).realize()
    assert GlobalCounters.kernel_count == 1, "a realized node is a leaf: it is not recomputed"


def test_building_a_graph_does_no_device_work():
    x = realized(8, 8)
    GlobalCounters.reset()
    y = ((x @ x).relu().sum(0) * 3).exp()
    assert GlobalCounters.kernel_count == 0
    y.realize()
    assert GlobalCounters.kernel_count > 0


def test_debug_2_prints_why_buffers_exist(capsys):
    x = realized(4)
    with Context(DEBUG=2):
        (x * 2 + 1).realize()
    out = capsys.readouterr().out
    assert "schedule: 1 items" in out and "buffer because: R1 requested" in out
    assert "*** " in out


def test_ast_toposort_is_iterative():
    leaf = AstNode(Op.CONST, (), (1.0, None), None)
    node = leaf
    for _ in range(5000):
        node = AstNode(Op.NEG, (node,), None, None)
    assert len(node.toposort()) == 5001


def test_global_counters():
    a, b = realized(1000), realized(1000)
    GlobalCounters.reset()
    (a * b).realize()
    assert GlobalCounters.kernel_count == 1
    assert GlobalCounters.global_ops == 1000
    assert GlobalCounters.global_mem == 3 * 4000
    GlobalCounters.reset()
    assert (GlobalCounters.kernel_count, GlobalCounters.global_ops, GlobalCounters.global_mem) == (0, 0, 0)


def test_global_ops_counts_post_reduce_ops_at_the_output_shape():
    x, b = realized(4, 8), realized(4, 1)
    GlobalCounters.reset()
    (x.sum(1, keepdim=True) + b).realize()
    assert GlobalCounters.kernel_count == 1
    assert GlobalCounters.global_ops == 4 * 8 + 4  # the reduce reads 32 elements; the add makes 4


def _softmax_chain(x: Tensor, generations: int) -> Tensor:
    for _ in range(generations):
        for _ in range(9):
            x = (x * 0.99 + 0.01).relu() + 0.1
        x = x.softmax(-1) * 16
    return x


def test_r8_long_expressions_read_by_several_kernels_are_computed_once():
    x = realized(16, 16)
    items = kernels_of(_softmax_chain(x, 10))
    assert max(len(item.ast.toposort()) for item in items) < 100  # without R8: over 600 nodes
    assert any(item.reason.startswith("R8") for item in items)
    with Context(SPLIT_RECOMPUTE=0, KERNEL_OPS=1 << 30):  # (R9 would cut it too)
        plain = kernels_of(_softmax_chain(x, 10))
        assert max(len(item.ast.toposort()) for item in plain) > 600
        expected = _softmax_chain(x, 10).numpy()
    np.testing.assert_allclose(_softmax_chain(x, 10).numpy(), expected, rtol=1e-5, atol=1e-6)
