"""GRAPH=1: draw what realize() computes, as graphviz files.

In: the lazy nodes handed to realize() and their schedule. Out: per realize, two files in GRAPH_DIR (default
<temp dir>/minigrad-graph), plus an .svg of each when graphviz's `dot` program is installed:
  graph-N.dot     the lazy graph: a box per node, coloured by op group, an arrow from each source; nodes
                  that already have a buffer are drawn with a thick border and not looked through;
  schedule-N.dot  the kernels: each a cluster of its AST nodes, fed by the buffers it reads (grey boxes
                  outside the clusters) and writing the buffer its STORE fills.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
from typing import Any

from minigrad.engine.schedule import ScheduleItem
from minigrad.lazy import LazyNode, toposort
from minigrad.ops import ELEMENTWISE, MOVEMENT, REDUCE, Op

COLOURS = {"elementwise": "#a5d8ff", "reduce": "#ffc078", "movement": "#b2f2bb", "other": "#e9ecef"}
_written = 0  # realize calls drawn so far in this process (numbers the files)


def colour(op: Op) -> str:
    group = "elementwise" if op in ELEMENTWISE else "reduce" if op in REDUCE else None
    return COLOURS[group or ("movement" if op in MOVEMENT else "other")]


def _box(name: str, label: str, op: Op, extra: str = "") -> str:
    return f'  {name} [label="{label}", fillcolor="{colour(op)}"{extra}];'


def lazy_dot(roots: list[LazyNode]) -> str:
    nodes = toposort(roots, stop=lambda n: n.realized is not None)
    lines = ["digraph lazy {", "  node [shape=box, style=filled, fontname=monospace];"]
    for n in nodes:
        value = f" {n.arg}" if n.op is Op.CONST else ""
        label = f"{n.op.name}{value}\\n{n.shape} {n.dtype.name}" + ("\\n(has a buffer)" if n.realized else "")
        lines.append(_box(f"n{id(n)}", label, n.op, ", penwidth=3" if n.realized else ""))
        lines += [f"  n{id(s)} -> n{id(n)};" for s in (n.srcs if n.realized is None else ())]
    return "\n".join(lines + ["}"])


def _ast_label(node: Any) -> str:
    if node.op in (Op.LOAD, Op.STORE):
        return f"{node.op.name} buffer {node.arg[0]}\\n{node.arg[1].shape}"
    if node.op is Op.CONST:
        return f"CONST {node.arg[0]}"
    return node.op.name + (f" axes {node.arg}" if node.op in REDUCE else "")


def schedule_dot(schedule: list[ScheduleItem]) -> str:
    lines = ["digraph schedule {", "  compound=true; node [shape=box, style=filled, fontname=monospace];"]
    declared: set[int] = set()  # a buffer read by several kernels is declared once
    for k, item in enumerate(schedule):
        buffers = list(item.outputs) + list(item.inputs)
        for b in (b for b in buffers if id(b) not in declared):
            declared.add(id(b))
            lines.append(_box(f"b{id(b)}", f"buffer\\n{b.shape} {b.dtype.name}", Op.BUFFER))
        if item.ast.op is not Op.STORE:
            continue  # host data or a copy: the buffer box is all there is
        lines.append(f'  subgraph cluster_{k} {{ label="kernel {k}: buffer because {item.reason}";')
        ast_nodes = item.ast.toposort()
        names = {id(a): f"k{k}_{i}" for i, a in enumerate(ast_nodes)}
        for a in ast_nodes:
            lines.append("  " + _box(names[id(a)], _ast_label(a), a.op))
            lines += [f"    {names[id(s)]} -> {names[id(a)]};" for s in a.srcs]
        lines.append("  }")
        for a in ast_nodes:
            if a.op is Op.LOAD:
                lines.append(f"  b{id(buffers[a.arg[0]])} -> {names[id(a)]};")
        lines.append(f"  {names[id(item.ast)]} -> b{id(buffers[item.ast.arg[0]])};")
    return "\n".join(lines + ["}"])


def write(roots: list[LazyNode], schedule: list[ScheduleItem]) -> list[pathlib.Path]:
    """Write graph-N.dot and schedule-N.dot (and .svg when `dot` is installed); print and return the paths."""
    global _written
    _written += 1
    directory = pathlib.Path(
        os.environ.get("GRAPH_DIR") or pathlib.Path(tempfile.gettempdir()) / "minigrad-graph"
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, text in (("graph", lazy_dot(roots)), ("schedule", schedule_dot(schedule))):
        path = directory / f"{stem}-{_written}.dot"
        path.write_text(text)
        paths.append(path)
        if shutil.which("dot"):
            svg = path.with_suffix(".svg")
            subprocess.run(["dot", "-Tsvg", str(path), "-o", str(svg)], check=True, capture_output=True)
            paths.append(svg)
    missing = "" if shutil.which("dot") else " (no .svg: `dot` is missing; apt-get install graphviz)"
    print(f"GRAPH: wrote {', '.join(str(p) for p in paths)}{missing}")
    return paths
