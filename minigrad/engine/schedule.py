"""The scheduler: turns the lazy nodes to realize into an ordered list of kernels.

In: the lazy nodes a user asked for. Out: `ScheduleItem`s, in dependency order, each one kernel:
an AST (ops.AstNode tree rooted at STORE) that reads `inputs` and writes `outputs`.

Inside an AST, sources are reached through
  - LOAD(buffer number, ShapeTracker): read a realized buffer through a view (movement ops are free: they
    are only index arithmetic in the load), buffer numbers count outputs first, then inputs;
  - CONST(value, ShapeTracker): a constant, inlined, never a buffer.

This first scheduler makes one kernel per base node (every non-movement, non-constant op); fusing chains
into one kernel is the next stage of the project and changes only how the ASTs are grown, not their format.
Two items are not kernels: BUFFER (copy host data into a new device buffer) and COPY (between devices);
their `ast` holds just that op.
"""

from __future__ import annotations

from dataclasses import dataclass

from minigrad.lazy import LazyNode, toposort
from minigrad.ops import ELEMENTWISE, REDUCE, AstNode, Op
from minigrad.shape.shapetracker import ShapeTracker


@dataclass(frozen=True)
class ScheduleItem:
    ast: AstNode
    outputs: tuple[LazyNode, ...]
    inputs: tuple[LazyNode, ...]
    reason: str  # why the output got a buffer of its own (printed with DEBUG=2)


def _is_leaf(node: LazyNode) -> bool:
    """Nodes the scheduler never looks through: computed buffers and constants."""
    return node.realized is not None or node.op is Op.CONST


def _base_sources(node: LazyNode) -> list[LazyNode]:
    return [src.base for src in node.srcs]


def _reason(node: LazyNode, requested: set[int]) -> str:
    if id(node) in requested:
        return "requested"
    if node.op in REDUCE:
        return "reduce result (one kernel per op until fusion)"
    if node.op is Op.CONTIGUOUS:
        return "CONTIGUOUS"
    return "op result (one kernel per op until fusion)"


class _KernelBuilder:
    """Collects the input buffers of one kernel while its AST is built."""

    def __init__(self, n_outputs: int):
        self.n_outputs = n_outputs
        self.inputs: list[LazyNode] = []

    def source(self, node: LazyNode) -> AstNode:
        """The AST leaf that reads `node` (a view of some base) at the kernel's logical index."""
        base = node.base
        if base.op is Op.CONST:
            return AstNode(Op.CONST, (), (base.arg, node.st), base.dtype)
        position = next((i for i, b in enumerate(self.inputs) if b is base), None)
        if position is None:
            position = len(self.inputs)
            self.inputs.append(base)
        return AstNode(Op.LOAD, (), (self.n_outputs + position, node.st), base.dtype)


def _kernel_for(node: LazyNode, requested: set[int]) -> ScheduleItem:
    if node.op in (Op.BUFFER, Op.COPY):
        inputs = tuple(_base_sources(node))
        return ScheduleItem(AstNode(node.op, (), None, node.dtype), (node,), inputs, "data")
    builder = _KernelBuilder(n_outputs=1)
    if node.op in ELEMENTWISE:
        value = AstNode(node.op, tuple(builder.source(s) for s in node.srcs), node.arg, node.dtype)
    elif node.op in REDUCE:
        value = AstNode(node.op, (builder.source(node.srcs[0]),), node.arg, node.dtype)
    elif node.op is Op.CONTIGUOUS:
        value = builder.source(node.srcs[0])
    elif node.op is Op.ASSIGN:
        value = builder.source(node.srcs[1])
    else:
        raise RuntimeError(f"the scheduler cannot make a kernel for {node}")
    store = AstNode(Op.STORE, (value,), (0, ShapeTracker.from_shape(node.shape)), node.dtype)
    return ScheduleItem(store, (node,), tuple(builder.inputs), _reason(node, requested))


def create_schedule(targets: list[LazyNode]) -> list[ScheduleItem]:
    """The kernels that compute `targets`, each after the kernels it reads from."""
    bases = [t.base for t in targets if not _is_leaf(t.base)]
    requested = {id(b) for b in bases}
    order = _toposort_bases(bases)
    return [_kernel_for(node, requested) for node in order if not _is_leaf(node)]


def _toposort_bases(bases: list[LazyNode]) -> list[LazyNode]:
    """Base nodes reachable from `bases` through base sources, sources first."""
    wrapper: dict[int, _BaseView] = {}

    def wrap(node: LazyNode) -> "_BaseView":
        if id(node) not in wrapper:
            wrapper[id(node)] = _BaseView(node, [] if _is_leaf(node) else _base_sources(node), wrap)
        return wrapper[id(node)]

    return [w.node for w in toposort([wrap(b) for b in bases])]


class _BaseView:
    """Presents a base node with its *base* sources, so the generic toposort skips movement nodes."""

    __slots__ = ("node", "_srcs", "_wrap")

    def __init__(self, node: LazyNode, srcs: list[LazyNode], wrap):
        self.node, self._srcs, self._wrap = node, srcs, wrap

    @property
    def srcs(self) -> list["_BaseView"]:
        return [self._wrap(s) for s in self._srcs]
