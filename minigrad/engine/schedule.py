"""The scheduler: turns the lazy nodes to realize into an ordered list of fused kernels.

In: the lazy nodes a user asked for. Out: `ScheduleItem`s in dependency order, each one kernel: an AST
(ops.AstNode tree rooted at STORE) that reads `inputs` and writes `outputs`.

Inside an AST, sources are reached through
  - LOAD(buffer number, ShapeTracker): read a buffer through a view (movement ops are free: they are only
    index arithmetic in the load); buffer numbers count outputs first, then inputs;
  - CONST(value, ShapeTracker): a constant, inlined, never a buffer.

Which nodes get a buffer of their own (become a kernel's output) is decided by these rules, each applied
in one place (`_KernelPlanner`); every other node is inlined into the kernels that read it:
  R1 requested      the user asked for it;
  R2 buffer op      BUFFER (host data), COPY, CONTIGUOUS and ASSIGN always own a buffer, and so do the
                    source of a COPY and an ASSIGN's value that reads other elements of its target;
  R3 padded view    a node read through a padded view: its value outside the pad must be 0, not f(0);
  R4 reduce reuse   a node that contains a reduce, read by another reduce or through a view that is not a
                    plain reshape (the result is needed in another loop nest), or read in two orders
                    (x + x.T: one kernel builds its reduce in one order); and, when a reduce's result
                    is needed by several kernels, the node where its uses fan out (so the reduce runs once);
  R5 one reduce     a kernel holds one reduce loop nest: a second reduce reaching it gets its own kernel;
  R6 broadcast      an elementwise node (not a load, nor a comparison with an arange, which opt.pick folds)
                    that a reduce loop reads through a broadcast, each value 8 or more times (2^20 reads in
                    all): computed once into a buffer, not in the inner loop. SPLIT_BROADCAST=0: off.
One rule orders kernels rather than buffers:
  R7 reads first    a kernel that reads a buffer's old value runs before the ASSIGN that overwrites it. When
                    two ASSIGNs each read the other's old buffer (BatchNorm's weight and bias updates both
                    recompute the relu mask from both), such reads go to copies of the old values instead.
  R8 recompute      an elementwise node read by several kernels, when recomputing it in each would repeat
                    more than 64 ops (a chain of softmaxes: each kernel recomputed all the chains before
                    it). SPLIT_RECOMPUTE=0 turns R8 off.
  R9 kernel size    a kernel stays within MAX_KERNEL_OPS ops and buffer reads (the distinct nodes
                    inlined into it; a C compiler takes time quadratic in a function's size: a chain of 4,000
                    ops took 6 s, a cat of 600 one-element tensors 3.6 s) and within its
                    device's `max_buffers` (a kernel's arguments: ctypes passes at most 1,024): the inlined
                    sources of the node that crosses the limit get buffers of their own.
So elementwise chains fuse into one kernel, and so do elementwise ops feeding a reduce (`(a*b).sum(1)`) and
after it at its shape (`x.sum(1) / n`); nodes read by several kernels are recomputed in each (R6 and R8
aside; a reduce never is). BUFFER (copy host data into a new device buffer) and COPY are not kernels.

Schedule cache (SCHEDULE_CACHE=0 turns it off): a training loop builds the same graph every step, on new
nodes. `create_schedule` first computes the graph's *signature* (every unrealized base node's op, arg,
dtype, device and shape, and each source as (position, view); constants and realized buffers as leaves,
leaves that share a buffer numbered alike), and on a hit replays the kernels planned (and ordered by R7)
for that signature on the new nodes, skipping the planner.
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

from minigrad.device import Device
from minigrad.helpers import LRU, GlobalCounters, getenv, prod
from minigrad.lazy import LazyNode
from minigrad.ops import ELEMENTWISE, IOTA, REDUCE, AstNode, Op
from minigrad.shape.shapetracker import ShapeTracker
from minigrad.shape.view import contiguous_strides

# R6: a value that a reduce loop reads 8 times over (or more), a million reads in all, is computed once
BROADCAST, BROADCAST_READS = 8, 1 << 20
RECOMPUTE_OPS = 64  # R8: an elementwise expression longer than this is computed once, not in every reader
MAX_KERNEL_OPS = 512  # R9 (KERNEL_OPS=N): a 20,000-op chain compiles in seconds as 40 kernels, not in minutes


class ScheduleItem(NamedTuple):  # a NamedTuple: a cache hit rebuilds ~30 of them per training step
    ast: AstNode
    outputs: tuple[LazyNode, ...]
    inputs: tuple[LazyNode, ...]
    reason: str  # which rule gave the output a buffer of its own (printed with DEBUG=2)


def _is_leaf(node: LazyNode) -> bool:
    """Nodes the scheduler never looks through: computed buffers and constants."""
    return node.op is Op.CONST or node.realized is not None


def _toposort_bases(targets: list[LazyNode]) -> list[LazyNode]:
    """Unrealized base nodes reachable from `targets` through base sources, sources first (iterative).

    Depth first from the last target: gradients are usually requested in the order of the parameters, so
    the backward pass then starts at the loss end and each gradient's kernel runs as soon as its inputs
    exist, which lets checkpointed intermediates die early (a 32-layer MLP: 16.25 -> 11 MiB at peak)."""
    order, visited = [], set()
    stack = [(t.base, False) for t in targets]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited or _is_leaf(node):
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((src.base, False) for src in reversed(node.srcs))
    return order


def _is_reshape(st: ShapeTracker, base_size: int) -> bool:
    """True when the view reads all of its base in order: a plain reshape (or the identity)."""
    return st.contiguous and st.size == base_size


def _as_permutation(st: ShapeTracker, base_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """If `st` reads all of a contiguous buffer of `base_shape` as a permutation of its dims (size-1 dims
    aside), a permutation `p` with base.permute(p).reshape(st.shape) == st; else None."""
    view = st.views[0]
    if len(st.views) != 1 or view.mask is not None or view.offset != 0 or st.size != prod(base_shape):
        return None
    base_strides = contiguous_strides(base_shape)
    walked: list[int] = []
    for size, stride in zip(view.shape, view.strides):
        if size == 1:
            continue
        match = [d for d, (s, b) in enumerate(zip(base_shape, base_strides)) if (s, b) == (size, stride)]
        if not match or match[0] in walked:
            return None
        walked.append(match[0])
    return tuple([d for d, s in enumerate(base_shape) if s == 1] + walked)


def _pads(st: ShapeTracker) -> bool:
    return any(v.mask is not None for v in st.views)


class _KernelPlanner:
    """Decides which base nodes own a buffer (the rules R1..R6 of the module docstring)."""

    def __init__(self, targets: list[LazyNode]):
        self.order = _toposort_bases(targets)
        self.consumers: dict[int, list[tuple[LazyNode, ShapeTracker]]] = {id(n): [] for n in self.order}
        for node in self.order:
            for src in node.srcs:
                if id(src.base) in self.consumers:
                    self.consumers[id(src.base)].append((node, src.st))
        # each node's sources' bases in the graph (the rules below walk these on every pass)
        self.sources = {id(n): [s.base for s in n.srcs if id(s.base) in self.consumers] for n in self.order}
        self.reasons: dict[int, str] = {}
        for t in targets:
            if not _is_leaf(t.base):
                self.reasons.setdefault(id(t.base), "R1 requested")
        for node in self.order:
            self._static_rules(node)
        while self._dynamic_rules():
            pass

    def owns_buffer(self, node: LazyNode) -> bool:
        return id(node) in self.reasons

    def _mark(self, node: LazyNode, reason: str) -> bool:
        if id(node) in self.reasons:
            return False
        self.reasons[id(node)] = reason
        return True

    def _static_rules(self, node: LazyNode) -> None:
        if node.op in (Op.BUFFER, Op.COPY, Op.CONTIGUOUS, Op.ASSIGN):
            self._mark(node, f"R2 buffer op {node.op.name}")
        elif any(consumer.op is Op.COPY for consumer, _ in self.consumers[id(node)]):
            self._mark(node, "R2 copied to another device")
        elif any(_pads(st) for _, st in self.consumers[id(node)]):
            self._mark(node, "R3 read through a padded view")

    def _kernels_reading(self) -> tuple[dict[int, set[int]], dict[int, list[LazyNode]]]:
        """For each inlined node, the kernels (by output) it ends up in; for each kernel, its reduces."""
        members: dict[int, set[int]] = {id(n): set() for n in self.order}
        reduces: dict[int, list[LazyNode]] = {}
        for root in self.order:
            if not self.owns_buffer(root):
                continue
            reduces[id(root)] = []
            stack, seen = [root], set()
            while stack:
                node = stack.pop()
                if id(node) in seen:
                    continue
                seen.add(id(node))
                members[id(node)].add(id(root))
                if node.op in REDUCE:
                    reduces[id(root)].append(node)
                stack += [b for b in self.sources[id(node)] if not self.owns_buffer(b)]
        return members, reduces

    def _contains_reduce(self, node: LazyNode, contains: dict[int, bool]) -> bool:
        """Does `node`'s kernel-to-be contain a reduce, given the buffers decided so far?"""
        inlined = [b for b in self.sources[id(node)] if id(b) in contains and not self.owns_buffer(b)]
        return node.op in REDUCE or any(contains[id(b)] for b in inlined)

    def _dynamic_rules(self) -> bool:
        """Apply R4, R6, then R5, once; True if a node gained a buffer (the caller repeats until none does).

        Each pass recomputes, sources first, whether a node's kernel would contain a reduce, so that a
        buffer given to a source in this pass already counts when its users are looked at."""
        members, reduces = self._kernels_reading()
        changed = False
        contains: dict[int, bool] = {}
        for node in self.order:
            contains[id(node)] = self._contains_reduce(node, contains) and not self.owns_buffer(node)
            fans_out = len({id(c) for c, _ in self.consumers[id(node)]}) > 1
            if contains[id(node)] and len(members[id(node)]) > 1 and fans_out:
                changed |= self._mark(node, "R4 reduce result used by several kernels")
                contains[id(node)] = False
        contains = {}
        for node in self.order:
            contains[id(node)] = self._contains_reduce(node, contains) and not self.owns_buffer(node)
            if contains[id(node)] and any(
                not self._fits(node, consumer, st) for consumer, st in self.consumers[id(node)]
            ):
                changed |= self._mark(node, "R4 reduce result read by a reduce or through a view")
                contains[id(node)] = False
            elif contains[id(node)] and self._read_in_two_orders(node):
                changed |= self._mark(node, "R4 reduce result read in two orders (x + x.T)")
                contains[id(node)] = False
        if changed or self._broadcast_rule(contains) or self._recompute_rule(members) or self._size_rule():
            return True
        for kernel_reduces in reduces.values():
            for extra in kernel_reduces[1:]:
                changed |= self._mark(extra, "R5 second reduce in one kernel")
        return changed

    def _broadcast_rule(self, contains: dict[int, bool]) -> bool:
        """R6: an elementwise node that a reduce loop reads through a broadcast gets a buffer."""
        if not getenv("SPLIT_BROADCAST", 1):
            return False
        under_reduce: set[int] = set()  # inlined nodes whose values feed a reduce in the same kernel
        for node in reversed(self.order):
            if node.op in REDUCE or id(node) in under_reduce:
                under_reduce.update(id(s.base) for s in node.srcs if id(s.base) in self.consumers)
        changed = False
        for node in self.order:
            if node.op not in ELEMENTWISE or self.owns_buffer(node) or contains[id(node)]:
                continue
            if any(
                (consumer.op in REDUCE or id(consumer) in under_reduce)
                and st.size >= max(BROADCAST * node.st.size, BROADCAST_READS)
                for consumer, st in self.consumers[id(node)]
            ) and not _picks(node):
                changed |= self._mark(node, "R6 elementwise work read through a broadcast in a reduce")
        return changed

    def _recompute_rule(self, members: dict[int, set[int]]) -> bool:
        """R8: an elementwise node that several kernels would each recompute gets a buffer when that is
        more than RECOMPUTE_OPS ops: the distinct nodes inlined into it, as R9 counts (a value read twice
        is computed once in a kernel; counted as a tree, relu's three reads of x tripled the count at
        every relu, and a 16x16 chain of 9 `(x * a + b).relu() + c` was cut into 3 kernels)."""
        if not getenv("SPLIT_RECOMPUTE", 1):
            return False
        inlined_ops: dict[int, frozenset[int] | None] = {}  # None: over RECOMPUTE_OPS (its readers are too)
        changed = False
        for node in self.order:
            parts = [inlined_ops[id(b)] for b in self.sources[id(node)] if not self.owns_buffer(b)]
            ops = None if None in parts else frozenset([id(node)]).union(*parts)
            inlined_ops[id(node)] = ops if ops is not None and len(ops) <= RECOMPUTE_OPS else None
            if (
                inlined_ops[id(node)] is None
                and len(members[id(node)]) > 1
                and len({id(c) for c, _ in self.consumers[id(node)]}) > 1  # it fans out
            ):
                changed |= self._mark(
                    node, f"R8 more than {RECOMPUTE_OPS} ops that several kernels would repeat"
                )
        return changed

    def _size_rule(self) -> bool:
        """R9: cut kernels that would exceed KERNEL_OPS distinct ops and buffer reads, or their device's
        buffer limit, sources first: the inlined sources of the node that crosses the limit get buffers.
        Sets, not sums, of nodes: a value read twice in one kernel is computed once there."""
        ops: dict[int, frozenset[int]] = {}  # the distinct inlined nodes of a node's kernel-to-be
        reads: dict[int, frozenset[int]] = {}  # and the buffers it reads
        max_ops, limits, changed = getenv("KERNEL_OPS", MAX_KERNEL_OPS), {}, False
        size = lambda b: len(ops[id(b)]) + len(reads[id(b)])  # noqa: E731
        for node in self.order:
            if node.device not in limits:
                limits[node.device] = Device[node.device].max_buffers - 1  # one argument is the output
            inlined = [b for b in self.sources[id(node)] if not self.owns_buffer(b)]
            direct = {id(s.base) for s in node.srcs if s.base.op is not Op.CONST}
            buffers = frozenset(direct - {id(b) for b in inlined})
            ops[id(node)] = frozenset({id(node)}).union(*(ops[id(b)] for b in inlined))
            reads[id(node)] = buffers.union(*(reads[id(b)] for b in inlined))
            if size(node) > max_ops or len(reads[id(node)]) >= limits[node.device]:
                for source in inlined:  # all of them: a source left inlined in two kernels would run twice
                    changed |= self._mark(source, f"R9 kernel size: over {max_ops} ops or the buffer limit")
                ops[id(node)], reads[id(node)] = frozenset({id(node)}), frozenset(direct)
        return changed

    def _read_in_two_orders(self, node: LazyNode) -> bool:
        """Is a reduce's result read both in order and permuted (or in two permutations)? One kernel
        builds its reduce in one order only."""
        orders = {
            None if _is_reshape(st, node.st.size) else _as_permutation(st, node.shape)
            for _, st in self.consumers[id(node)]
        }
        return len(orders) > 1

    @staticmethod
    def _fits(node: LazyNode, consumer: LazyNode, st: ShapeTracker) -> bool:
        """Can a reduce inside `node` run in `consumer`'s kernel? Not under another reduce; and only read
        in order, or, for the reduce node itself, as a permutation (the reduce is then built permuted)."""
        if consumer.op in REDUCE:
            return False
        return _is_reshape(st, node.st.size) or (
            node.op in REDUCE and _as_permutation(st, node.shape) is not None
        )


def _compose(view: ShapeTracker, outer: ShapeTracker) -> ShapeTracker:
    """The view that reads through `view` at the positions `outer` picks from its (contiguous) result."""
    if _is_reshape(outer, view.size):
        return view if outer.shape == view.shape else view.reshape(outer.shape)
    inner = view.views[:-1] if view.views[-1].contiguous else view.views  # a contiguous top view adds nothing
    return ShapeTracker(inner + outer.views)


class _KernelBuilder:
    """Builds one kernel's AST, inlining every node that does not own a buffer (iteratively)."""

    def __init__(self, root: LazyNode, planner: _KernelPlanner):
        self.root, self.planner = root, planner
        self.inputs: list[LazyNode] = []
        self.built: dict[tuple[int, ShapeTracker], AstNode] = {}

    def _leaf(self, node: LazyNode, st: ShapeTracker) -> AstNode | None:
        if node.op is Op.CONST:
            return AstNode(Op.CONST, (), (node.arg, st), node.dtype)
        if node is not self.root and (node.realized is not None or self.planner.owns_buffer(node)):
            position = next((i for i, b in enumerate(self.inputs) if b is node), None)
            if position is None:
                position = len(self.inputs)
                self.inputs.append(node)
            return AstNode(Op.LOAD, (), (1 + position, st), node.dtype)
        return None

    def _operands(
        self, node: LazyNode, st: ShapeTracker
    ) -> tuple[object, list[tuple[LazyNode, ShapeTracker]]]:
        """`node`'s arg and the (base, view) of each operand, computed at the positions `st` picks."""
        if node.op in REDUCE:  # a reduce reads its source over its own full shape ...
            src = node.srcs[0]
            order = None if _is_reshape(st, node.st.size) else _as_permutation(st, node.shape)
            if order is None:
                return node.arg, [(src.base, src.st)]
            # ... permuted when its result is read permuted: permute(reduce(x)) == reduce(permute(x))
            return tuple(sorted(order.index(a) for a in node.arg)), [(src.base, src.st.permute(order))]
        if node.op in (Op.CONTIGUOUS, Op.ASSIGN):
            src = node.srcs[-1]
            return node.arg, [(src.base, _compose(src.st, st))]
        return node.arg, [(src.base, _compose(src.st, st)) for src in node.srcs]

    def value(self, node: LazyNode, st: ShapeTracker) -> AstNode:
        stack = [(node, st, False)]
        while stack:
            n, view, ready = stack.pop()
            key = (id(n), view)
            if key in self.built:
                continue
            leaf = self._leaf(n, view)
            if leaf is not None:
                self.built[key] = leaf
                continue
            arg, operands = self._operands(n, view)
            if not ready:
                stack.append((n, view, True))
                stack.extend((b, v, False) for b, v in reversed(operands) if (id(b), v) not in self.built)
                continue
            srcs = tuple(self.built[(id(b), v)] for b, v in operands)
            if n.op in (Op.CONTIGUOUS, Op.ASSIGN):
                self.built[key] = srcs[0]
            else:
                self.built[key] = AstNode(n.op, srcs, arg, n.dtype)
        return self.built[(id(node), st)]


def _picks(node: LazyNode, depth: int = 4) -> bool:
    """Is `node` a comparison with an arange (or a product or cast of a few), which opt.pick folds?"""
    if node.realized is not None or depth == 0 or node.op not in (Op.CMPEQ, Op.MUL, Op.CAST):
        return False
    iota = any(s.base.op is Op.CONST and s.base.arg == IOTA for s in node.srcs)
    return iota if node.op is Op.CMPEQ else any(_picks(s.base, depth - 1) for s in node.srcs)


def _fit_to_reduce(store: AstNode) -> AstNode:
    """Give the nodes after a kernel's reduce the reduce's output shape (they were reached by reshapes)."""
    order = store.toposort()
    reduce = next((n for n in order if n.op in REDUCE), None)
    if reduce is None:
        return store
    shape = tuple(1 if d in reduce.arg else s for d, s in enumerate(_full_shape(reduce)))
    below = {id(n) for n in reduce.toposort()}
    rebuilt: dict[int, AstNode] = {}
    for n in order:
        if id(n) in below:
            rebuilt[id(n)] = n
            continue
        srcs = tuple(rebuilt[id(s)] for s in n.srcs)
        arg = n.arg
        if n.op in (Op.LOAD, Op.CONST, Op.STORE) and arg[1].shape != shape:
            arg = (arg[0], arg[1].reshape(shape))
        rebuilt[id(n)] = n if (srcs == n.srcs and arg is n.arg) else AstNode(n.op, srcs, arg, n.dtype)
    return rebuilt[id(store)]


def _full_shape(reduce: AstNode) -> tuple[int, ...]:
    """The shape a reduce reads: the shape of any leaf below it."""
    leaf = next(n for n in reduce.toposort() if n.op in (Op.LOAD, Op.CONST))
    return leaf.arg[1].shape


_KERNELS = LRU(lambda: getenv("SCHEDULE_CACHE_SIZE", 64) * 8)  # each kernel AST once (_kernel_for)


def _kernel_for(node: LazyNode, planner: _KernelPlanner) -> ScheduleItem:
    reason = planner.reasons[id(node)]
    if node.op in (Op.BUFFER, Op.COPY):
        inputs = tuple(src.base for src in node.srcs)
        return ScheduleItem(AstNode(node.op, (), None, node.dtype), (node,), inputs, reason)
    builder = _KernelBuilder(node, planner)
    st = ShapeTracker.from_shape(node.shape)
    value = builder.value(node, st)
    store = _fit_to_reduce(AstNode(Op.STORE, (value,), (0, st), node.dtype))
    store = _KERNELS.get(store) or _KERNELS.put(store, store)  # one object per kernel: lookups by identity
    return ScheduleItem(store, (node,), tuple(builder.inputs), reason)


def _reads_before_writes(schedule: list[ScheduleItem]) -> list[ScheduleItem]:
    """R7: reorder (stably) so that every kernel reading a buffer runs before an ASSIGN that overwrites it."""
    writer = {
        id(it.outputs[0].srcs[0].base.realized): i
        for i, it in enumerate(schedule)
        if it.outputs[0].op is Op.ASSIGN
    }
    if not writer:
        return schedule
    reads = [(i, node.realized) for i, item in enumerate(schedule) for node in item.inputs]
    if all(writer.get(id(buffer), i) >= i for i, buffer in reads if buffer is not None):
        return schedule  # every reader already runs before its buffer's ASSIGN (the planner's order usually)
    producer = {id(item.outputs[0]): i for i, item in enumerate(schedule)}
    waits_for: list[set[int]] = [set() for _ in schedule]
    for i, item in enumerate(schedule):
        for node in item.inputs:
            if id(node) in producer:
                waits_for[i].add(producer[id(node)])
            elif node.realized is not None and writer.get(id(node.realized), i) != i:
                waits_for[writer[id(node.realized)]].add(i)
    users: list[list[int]] = [[] for _ in schedule]
    for i, before in enumerate(waits_for):
        for j in before:
            users[j].append(i)
    pending = [len(before) for before in waits_for]
    ready = [i for i, n in enumerate(pending) if n == 0]
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for user in users[i]:
            pending[user] -= 1
            if pending[user] == 0:
                heapq.heappush(ready, user)
    if len(order) < len(schedule):  # a cycle: read the old values from copies made first
        return _reads_before_writes(_snapshot_old_values(schedule, writer))
    return [schedule[i] for i in order]


def _snapshot_old_values(schedule: list[ScheduleItem], writer: dict[int, int]) -> list[ScheduleItem]:
    """The schedule with every read of a buffer that another kernel's ASSIGN overwrites redirected to a copy
    of its old value (a COPY item at the front): no kernel then has to run before an ASSIGN."""
    copies: dict[int, LazyNode] = {}
    items = []
    for i, item in enumerate(schedule):
        inputs = list(item.inputs)
        for j, node in enumerate(inputs):
            if node.realized is not None and writer.get(id(node.realized), i) != i:
                st = ShapeTracker.from_shape(node.shape)
                inputs[j] = copies.setdefault(
                    id(node), LazyNode(Op.COPY, (node,), None, node.dtype, node.device, st)
                )
        items.append(item._replace(inputs=tuple(inputs)))
    front = [
        ScheduleItem(AstNode(Op.COPY, (), None, n.dtype), (n,), n.srcs, "R7 old value")
        for n in copies.values()
    ]
    return front + items


def _plan(targets: list[LazyNode]) -> list[ScheduleItem]:
    planner = _KernelPlanner(targets)
    while True:
        items = [_kernel_for(node, planner) for node in planner.order if planner.owns_buffer(node)]
        unsafe = [item.outputs[0].srcs[1].base for item in items if _reads_target_elsewhere(item)]
        # the value's kernel is the ASSIGN's less its store: the rules that gave it its buffers still hold
        if not any([planner._mark(n, "R2 its ASSIGN reads the target elsewhere") for n in unsafe]):
            return items


def _reads_target_elsewhere(item: ScheduleItem) -> bool:
    """Would this ASSIGN kernel read its target under a reduce or at other elements than it writes?"""
    # such as `x.assign(x.flip(0) + 1)` or `w.assign(m @ w)`: it would read values it already overwrote
    node, store = item.outputs[0], item.ast
    if node.op is not Op.ASSIGN:  # most kernels: no need to walk the AST
        return False
    places = {1 + i for i, n in enumerate(item.inputs) if n.realized is node.srcs[0].base.realized}
    under = {id(n) for r in store.toposort() if r.op in REDUCE for n in r.toposort()}
    loads = [n for n in store.toposort() if n.op is Op.LOAD and n.arg[0] in places]
    return any(id(n) in under or n.arg[1] != store.arg[1] for n in loads)


def _signature(targets: list[LazyNode]) -> tuple[list[LazyNode], tuple]:
    """The nodes the planner can see (unrealized bases and their leaves), numbered in visiting order, and a
    hashable description of the graph in terms of those numbers (see the module docstring). The description
    is one flat tuple: per node its op, arg, dtype, device, shape and number of sources, then each source's
    number (a base: its view follows from its own entry) or (number, views); a leaf is "leaf", its value or
    buffer number, dtype, device and shape. This runs on every realize: it reads the nodes' fields directly."""
    nodes: list[LazyNode] = []
    leaves: set[LazyNode] = set()  # (nodes hash by identity: keys without id() calls)
    number: dict[LazyNode, int] = {}
    stack = [t.base for t in reversed(targets)]
    while stack:  # number the nodes first: a node's entry needs its sources' numbers
        node = stack.pop()
        if node not in number:
            number[node] = len(nodes)
            nodes.append(node)
            buffer = node._buffer  # _is_leaf and node.realized, inlined
            if node.op is Op.CONST or (buffer is not None and buffer.version == node._version):
                leaves.add(node)
            else:
                stack.extend([src._base or src for src in node.srcs[::-1]])
    entries: list = []  # leaves that share a buffer get one number: R2 and R7 depend on it
    bufs: dict[int, int] = {}
    for node in nodes:
        if node in leaves:  # repr: -0.0 and nan keep their identity
            value = repr(node.arg) if node.op is Op.CONST else bufs.setdefault(id(node._buffer), len(bufs))
            entries += ("leaf", value, node.dtype, node.device, node.shape)
            continue
        arg = None if node.op is Op.BUFFER else node.arg  # host data is not part of the plan
        entries += (node.op, arg, node.dtype, node.device, node.shape, len(node.srcs))
        for src in node.srcs:
            base = src._base
            entries.append(number[src] if base is None else (number[base], src.st.views))
    switches = ("SPLIT_BROADCAST", 1), ("SPLIT_RECOMPUTE", 1), ("KERNEL_OPS", MAX_KERNEL_OPS)
    entries += [getenv(name, default) for name, default in switches]  # the planner's switches
    entries += [number[t.base] for t in targets]
    return nodes, tuple(entries)


# signature -> [(ast, output positions, input positions, reason)], the most recently used plans
_SCHEDULES = LRU(lambda: getenv("SCHEDULE_CACHE_SIZE", 64))


def create_schedule(targets: list[LazyNode]) -> list[ScheduleItem]:
    """The kernels that compute `targets`, each after the kernels it reads from."""
    if not getenv("SCHEDULE_CACHE", 1):
        return _reads_before_writes(_plan(targets))
    nodes, signature = _signature(targets)
    cached = _SCHEDULES.get(signature)
    if cached is None:
        schedule = _reads_before_writes(_plan(targets))
        number = {id(n): i for i, n in enumerate(nodes)}
        if all(id(n) in number for item in schedule for n in item.inputs):  # not with R7's new copies
            at = lambda ns: tuple(number[id(n)] for n in ns)  # noqa: E731
            _SCHEDULES.put(signature, [(it.ast, at(it.outputs), at(it.inputs), it.reason) for it in schedule])
        return schedule
    GlobalCounters.schedule_cache_hits += 1
    return [
        ScheduleItem(ast, tuple([nodes[i] for i in outputs]), tuple([nodes[i] for i in inputs]), reason)
        for ast, outputs, inputs, reason in cached
    ]
