"""Replay: a composite op called again on inputs like the last ones copies the nodes it made then.

In: a Tensor method made of many small ops (softmax, cross_entropy, gelu, matmul), wrapped by `@replayed`.
Out: the same method, whose later calls skip the Python that built its graph. Off: REPLAY=0.

A composite's graph depends only on what it is given: its inputs' shapes, dtypes, devices and views, whether
they require grad, its other arguments, and a few global modes (no_grad, the default dtypes, training). A
call's *key* is all of that. The first call with a key runs the method and records the nodes it made, in
creation order, each as (op, sources, arg, dtype, view): a template. A later call with the same key makes
the same nodes over its own inputs, without running the method: no broadcasting, no checks, no
ShapeTracker arithmetic, as each node's view is the one recorded (the inputs' views are part of the key).
The result is the graph the method would have built, node for node (test_replay checks this).

A method is wrapped only when its graph is a function of the key alone: no kernels run inside it, no random
numbers, no reads of data. A call that breaks that anyway (it made a buffer, a copy, an assign, a custom
derivative rule, or it returned one of its inputs) is recorded as not replayable, and later calls run the
method. Inside a `Context` that overrides another setting, methods run as written (settings such as
MATMUL_COPY shape the graph, and are not in the key).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from minigrad import helpers
from minigrad.dtype import dtypes
from minigrad.helpers import LRU, getenv
from minigrad.lazy import LazyNode, serial_mark, toposort
from minigrad.ops import Op

_SIMPLE = (int, float, bool, str, type(None))
_MADE_ELSEWHERE = (Op.BUFFER, Op.COPY, Op.ASSIGN, Op.FUNCTION)  # nodes a template does not remake
_NOT_REPLAYABLE = "not replayable"
_templates = LRU(lambda: 4096)  # key -> _Template or _NOT_REPLAYABLE


class _Template:
    """The nodes one call made: `steps` in creation order, each (op, sources, arg, dtype, device, view, base),
    sources and base as positions in the call's list of values, which starts with the inputs' nodes, then
    their bases, then the older constants the call used."""

    def __init__(self, steps: list, constants: list, requires_grad: bool | None):
        self.steps, self.constants, self.requires_grad = steps, constants, requires_grad

    def make(self, inputs: list) -> LazyNode:
        values = [t.lazydata for t in inputs]
        values += [node.base for node in values] + self.constants
        for op, srcs, arg, dtype, device, st, base in self.steps:
            srcs = tuple([values[i] for i in srcs])
            values.append(LazyNode(op, srcs, arg, dtype, device, st, None if base is None else values[base]))
        return values[-1]


def replayed(method: Callable) -> Callable:
    """Wrap a Tensor method whose graph depends only on its arguments' shapes, dtypes and views (above)."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if not _active():
            return method(self, *args, **kwargs)
        inputs = [self]
        key = _key(method, self, args, kwargs, inputs)
        template = _templates.get(key) if key is not None else _NOT_REPLAYABLE
        if template is _NOT_REPLAYABLE:
            return method(self, *args, **kwargs)
        if template is not None:
            return type(self)._from_node(template.make(inputs), template.requires_grad)
        mark = serial_mark()
        out = method(self, *args, **kwargs)
        _templates.put(key, _record(out, inputs, mark, type(self)))
        return out

    return call


def _active() -> bool:
    """REPLAY is on and no Context overrides another setting (a hook's frame, TRAINING's, is empty)."""
    return getenv("REPLAY", 1) and all(frame.keys() <= {"REPLAY"} for frame in helpers._overrides)


def _key(method: Callable, self, args: tuple, kwargs: dict, inputs: list) -> tuple | None:
    """What the method's graph depends on, appending each Tensor argument (also inside lists and tuples) to
    `inputs`; None when an argument is neither a Tensor nor a plain value (a numpy array, a dict)."""
    tensor = type(self)
    parts: list[Any] = [method, tensor.no_grad, tensor.training, dtypes.default_float, dtypes.default_int]
    for name, value in (*enumerate(args), *kwargs.items()):
        described = _plain(value, tensor, inputs)
        if described is None:
            return None
        parts.append((name, described))
    for t in inputs:
        parts.append(_describe(t))
    nodes = [t.lazydata for t in inputs]  # which inputs are the same node, or views of the same buffer
    parts.append(tuple(nodes.index(n) for n in nodes))
    bases = [n.base for n in nodes]
    parts.append(tuple(bases.index(b) for b in bases))
    return tuple(parts)


def _plain(value: Any, tensor: type, inputs: list) -> Any:
    """A hashable description of an argument that tells every value apart (repr: -0.0 from 0.0, True from 1),
    a Tensor by its place among the inputs (described by _describe), or None for one that is neither."""
    if isinstance(value, tensor):
        inputs.append(value)
        return len(inputs) - 1
    if type(value) in _SIMPLE:
        return repr(value)
    if type(value) in (tuple, list):
        items = [_plain(v, tensor, inputs) for v in value]
        return None if None in items else (type(value).__name__, *items)
    return None


def _describe(t) -> tuple:
    """An input as the method sees it: a base node by its shape (its view is its shape's), a view or a
    constant by its view and what its buffer is (matmul copies a transposed buffer first)."""
    node = t.lazydata
    if node._base is None and node.op is not Op.CONST:
        return (node.shape, node.dtype, node.device, t._requires_grad)
    return (node.st, node.base.op, node.dtype, node.device, t._requires_grad)


def _record(out: Any, inputs: list, mark: int, tensor: type) -> _Template | str:
    """The template of the call that made `out` from `inputs`, or _NOT_REPLAYABLE."""
    if not isinstance(out, tensor) or out.lazydata.serial < mark:
        return _NOT_REPLAYABLE  # not a Tensor, or one the call did not make (an input, a cached constant)
    nodes = [t.lazydata for t in inputs]
    position: dict[int, int] = {}  # id of a node -> its place in _Template.make's values
    for i, node in enumerate(nodes):
        position.setdefault(id(node), i)
    for i, node in enumerate(nodes):
        position.setdefault(id(node.base), len(nodes) + i)
    walk = toposort([out.lazydata], stop=lambda n: n.serial < mark)
    constants = [n for n in walk if n.serial < mark and id(n) not in position]
    if any(n.op is not Op.CONST for n in constants):
        return _NOT_REPLAYABLE  # an older node that is not an input: the graph is not the key's alone
    position.update((id(n), 2 * len(nodes) + i) for i, n in enumerate(constants))
    new = [n for n in walk if n.serial >= mark]  # sorted by serial: these come after the older nodes
    first = 2 * len(nodes) + len(constants)  # the position of the first node the call made
    steps = []
    for node in new:
        if node.op in _MADE_ELSEWHERE or node._buffer is not None or node.leaf_of:
            return _NOT_REPLAYABLE
        base = None if node._base is None else position.get(id(node._base))
        if node._base is not None and base is None:
            return _NOT_REPLAYABLE  # a view of a node the walk did not reach
        srcs = tuple(position[id(s)] for s in node.srcs)
        position[id(node)] = first + len(steps)
        steps.append((node.op, srcs, node.arg, node.dtype, node.device, node.st, base))
    return _Template(steps, constants, out._requires_grad)
