"""`python -m minigrad viz SCRIPT.py [-o OUT.html]`: one page that shows what a program computes.

In: a Python script, run in this process with VIZ=1: engine/realize.py reports here each realize (its lazy
graph and schedule), each compile and each kernel run; Tensor.backward and Optimizer.step mark where the
backward pass and the optimizer step begin. Out: one self-contained HTML file (styles, scripts and data
inlined; nothing loaded from the network), with, per realize:
  - the lazy graph as SVG, laid out by graphviz's `dot`: click a node (or Tab to it, Enter) for its op,
    shape, dtype, device and the kernel(s) it fused into; a graph of more than VIZ_NODES nodes is drawn
    one box per kernel instead (the chains each kernel fused, collapsed);
  - the schedule: each kernel with the rule that gave its output a buffer (R1..R9, engine/schedule.py),
    what it reads and writes, and whether it belongs to the forward pass, the backward pass or the
    optimizer step (by when its output node was created);
  - per kernel: the loop nest after lowering and after each optimization pass (a diff against the step
    before), the linear IR, the rendered source, the compile time and the run time.
Keys: j / k (or arrow keys) move through the kernels, n / p through the realizes.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import html
import json
import pathlib
import runpy
import shutil
import subprocess
import sys
import time
from typing import Any

from minigrad import lazy
from minigrad.engine.graph import colour, lazy_dot
from minigrad.helpers import Context, getenv
from minigrad.ops import Op

VIZ_NODES = 600  # above this many nodes a realize's graph is drawn one box per kernel
_realizes: list[dict] = []  # what the running script realized (filled while VIZ=1)
_phases: list[tuple[int, str]] = [(0, "forward")]  # (first node serial, phase) in creation order
_pending: dict[int, dict] = {}  # id(schedule item) -> its kernel's record, until it runs


# ---- recording (called by engine/realize.py, Tensor.backward, Optimizer.step when VIZ=1) -----------


def phase(name: str) -> None:
    """Nodes created from now on belong to `name` ("backward", "optimizer step", "forward")."""
    _phases.append((lazy.serial_mark(), name))


def _phase_of(node: Any) -> str:
    return next(name for serial, name in reversed(_phases) if serial <= node.serial)


def realize_started(roots: list, schedule: list) -> None:
    """Record a realize: its graph, and a kernel record per schedule item that runs a kernel."""
    from minigrad.device import Device

    owner = _owners(schedule)
    nodes = lazy.toposort(roots, stop=lambda n: n.realized is not None)
    kernels, kernel_index = [], {}  # kernel_index: id(output node) -> its kernel's number
    for item in schedule:
        if item.ast.op is not Op.STORE:
            continue
        out = item.outputs[0]
        record = {
            "index": len(kernels),
            "name": None,
            "reason": item.reason,
            "phase": _phase_of(out),
            "writes": f"{out.op.name}{out.shape} {out.dtype.name} on {out.device}",
            "reads": [f"{n.op.name}{n.shape} {n.dtype.name}" for n in item.inputs],
            "passes": _passes(item.ast, Device[out.device]),
            "source": "",
            "compile_s": 0.0,
            "run_s": None,
        }
        kernel_index[id(out)] = len(kernels)
        kernels.append(record)
        _pending[id(item)] = record
    info = {
        f"n{id(n)}": {
            "op": n.op.name,
            "shape": str(n.shape),
            "dtype": n.dtype.name,
            "device": n.device,
            "kernels": sorted({kernel_index[o] for o in owner.get(id(n), ()) if o in kernel_index}),
        }
        for n in nodes
    }
    dot = (
        lazy_dot(roots)
        if len(nodes) <= getenv("VIZ_NODES", VIZ_NODES)
        else _kernel_dot(schedule, kernel_index)
    )
    _realizes.append({"kernels": kernels, "nodes": info, "dot": dot, "size": len(nodes), "compile_s": 0.0})


def compiled(seconds: float, count: int) -> None:
    """The last realize compiled `count` new kernels together in `seconds` (Backend.precompile)."""
    if _realizes and count:
        _realizes[-1]["compile_s"] = seconds
        for record in _realizes[-1]["kernels"]:
            record["compile_s"] = seconds / count


def kernel_ran(item: Any, program: Any, run_s: float, fetch_s: float) -> None:
    """A kernel ran: its name and source (the program), its run time, and the time spent getting the
    program (a compile when it was not compiled with the realize's batch)."""
    record = _pending.pop(id(item), None)
    if record is not None:
        record["name"], record["run_s"] = program.name, run_s
        record["source"] = program.source if isinstance(program.source, str) else repr(program.source)
        record["compile_s"] = max(record["compile_s"], fetch_s) if fetch_s > 1e-3 else record["compile_s"]


def _owners(schedule: list) -> dict[int, set[int]]:
    """For each lazy node, the kernel outputs (ids) it is computed in: itself, or those it fused into."""
    outputs = {id(item.outputs[0]) for item in schedule}
    owner: dict[int, set[int]] = {}
    for item in schedule:
        root, stack = item.outputs[0], [item.outputs[0]]
        while stack:
            node = stack.pop()
            if id(root) in owner.setdefault(id(node), set()):
                continue
            owner[id(node)].add(id(root))
            stack += [s for s in node.srcs if id(s) not in outputs and s.realized is None]
    return owner


def _kernel_dot(schedule: list, kernel_index: dict[int, int]) -> str:
    """A big graph drawn one box per kernel, an arrow from each kernel to those that read its output."""
    lines = ["digraph kernels {", "  node [shape=box, style=filled, fontname=monospace];"]
    for item in schedule:
        out = item.outputs[0]
        label = f"kernel {kernel_index[id(out)]}" if id(out) in kernel_index else out.op.name.lower()
        lines.append(f'  n{id(out)} [label="{label}\\n{out.shape}", fillcolor="{colour(item.ast.op)}"];')
        lines += [f"  n{id(src)} -> n{id(out)};" for src in item.inputs]
    return "\n".join(lines + ["}"])


def _passes(ast: Any, backend: Any) -> list[dict]:
    """The loop nest after lowering and after each optimization pass, and the linear IR (compiled
    backends; NUMPY runs the AST itself)."""
    if backend.language is None:
        return [{"name": "kernel AST", "text": _ast_text(ast)}]
    from minigrad.codegen.linearize import format_ir, linearize
    from minigrad.codegen.lower import lower
    from minigrad.codegen.opt import pick, rewrites_for

    nest = lower(ast)
    steps = [{"name": "kernel AST", "text": _ast_text(ast)}, {"name": "lower", "text": _nest_text(nest)}]
    if not getenv("NOOPT"):
        nest = pick(ast, copy.deepcopy(nest), backend.target.gpu)
        steps.append({"name": "pick", "text": _nest_text(nest)})
        for rewrite in rewrites_for(nest, backend.target):
            nest = rewrite(ast, copy.deepcopy(nest), backend.target)
            steps.append({"name": rewrite.__name__, "text": _nest_text(nest)})
    for before, after in zip(steps[1:], steps[2:]):
        after["diff"] = "\n".join(
            difflib.unified_diff(before["text"].splitlines(), after["text"].splitlines(), lineterm="", n=99)
        )
    steps.append({"name": "linear IR", "text": format_ir(linearize(ast, nest))})
    return steps


def _nest_text(nest: Any) -> str:
    return "\n".join(f"{f.name}: {getattr(nest, f.name)}" for f in dataclasses.fields(nest))


def _ast_text(ast: Any) -> str:
    lines, names = [], {}
    for i, node in enumerate(ast.toposort()):
        names[id(node)] = f"a{i}"
        srcs = " ".join(names[id(s)] for s in node.srcs)
        arg = (
            ""
            if node.arg is None
            else f" {node.arg[0]}"
            if node.op in (Op.LOAD, Op.STORE, Op.CONST)
            else f" {node.arg}"
        )
        lines.append(f"a{i} = {node.op.name}{arg} {srcs}".rstrip())
    return "\n".join(lines)


# ---- the page ------------------------------------------------------------------------------------------


def _svg(dot: str) -> str:
    result = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, check=True)
    svg = result.stdout
    return svg[svg.index("<svg") :]  # no XML prologue or DOCTYPE inside the page


def build_page(title: str) -> str:
    realizes = [dict(r, svg=_svg(r.pop("dot"))) for r in _realizes]
    data = json.dumps([{k: v for k, v in r.items() if k != "svg"} for r in realizes]).replace("</", "<\\/")
    sections = []
    for i, r in enumerate(realizes):
        items = "".join(
            f'<li tabindex="0" data-realize="{i}" data-kernel="{k["index"]}" class="kernel {k["phase"].split()[0]}">'
            f'<b>{html.escape(str(k["name"]))}</b> <span class="phase">{k["phase"]}</span> '
            f"{html.escape(k['writes'])} <i>{html.escape(k['reason'])}</i></li>"
            for k in r["kernels"]
        )
        drawn = "one box per kernel" if r["size"] > getenv("VIZ_NODES", VIZ_NODES) else "every node"
        sections.append(
            f'<section class="realize" id="realize-{i}" data-realize="{i}"><h2>realize {i + 1} of {len(realizes)}: '
            f"{r['size']} nodes ({drawn}), {len(r['kernels'])} kernels, compiled in {r['compile_s']:.3f} s</h2>"
            f'<div class="graph">{r["svg"]}</div><h3>schedule</h3><ol class="kernels">{items}</ol></section>'
        )
    return PAGE.format(
        title=html.escape(title), sections="".join(sections), data=data, style=STYLE, script=SCRIPT
    )


STYLE = """
body { font-family: sans-serif; margin: 0; display: flex; height: 100vh; }
#main { flex: 3; overflow: auto; padding: 0 1em; } #side { flex: 2; overflow: auto; padding: 0 1em; background: #f8f9fa; }
.graph { overflow: auto; max-height: 60vh; border: 1px solid #ccc; } .graph svg { width: 100%; height: auto; }
g.node { cursor: pointer; } g.node.selected polygon { stroke: #e03131; stroke-width: 4; }
li.kernel { cursor: pointer; padding: 2px; } li.kernel.selected, li.kernel:focus { background: #ffec99; }
.phase { font-size: 80%; padding: 0 4px; border-radius: 3px; background: #d0ebff; }
li.backward .phase { background: #ffd8a8; } li.optimizer .phase { background: #d3f9d8; }
pre { background: white; border: 1px solid #ddd; padding: 4px; overflow: auto; font-size: 12px; }
.add { color: #2b8a3e; } .del { color: #c92a2a; } button.page { margin: 2px; }
"""

SCRIPT = """
const DATA = JSON.parse(document.getElementById('viz-data').textContent);
const side = document.getElementById('side');
const esc = s => String(s).replace(/[&<>]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;'}[c]));
function diff(text) {
  return text.split('\\n').map(l => l.startsWith('+') ? `<span class="add">${esc(l)}</span>` :
    l.startsWith('-') ? `<span class="del">${esc(l)}</span>` : esc(l)).join('\\n');
}
function kernelHtml(r, k) {
  const K = DATA[r].kernels[k];
  let h = `<h2 id="kernel-title">kernel ${k}: ${esc(K.name)}</h2><p>${esc(K.phase)}; writes ${esc(K.writes)}<br>` +
    `buffer because: ${esc(K.reason)}<br>reads: ${esc(K.reads.join(', ') || 'nothing')}<br>` +
    `compile ${(K.compile_s * 1e3).toFixed(1)} ms, run ${K.run_s === null ? '-' : (K.run_s * 1e6).toFixed(1) + ' us'}</p>` +
    `<h3>source</h3><pre id="kernel-source">${esc(K.source)}</pre>`;
  for (const p of K.passes) {
    h += `<h3>${esc(p.name)}</h3><pre>${p.diff !== undefined ? diff(p.diff || '(unchanged)') : esc(p.text)}</pre>`;
  }
  return h;
}
function showKernel(r, k) {
  document.querySelectorAll('li.kernel.selected').forEach(e => e.classList.remove('selected'));
  const li = document.querySelector(`li.kernel[data-realize="${r}"][data-kernel="${k}"]`);
  if (li) { li.classList.add('selected'); li.scrollIntoView({block: 'nearest'}); }
  cursor = [r, k];
  side.innerHTML = kernelHtml(r, k);
}
function showNode(r, name, g) {
  document.querySelectorAll('g.node.selected').forEach(e => e.classList.remove('selected'));
  g.classList.add('selected');
  const N = DATA[r].nodes[name];
  if (!N) return;
  side.innerHTML = `<h2>${esc(N.op)}</h2><p>shape ${esc(N.shape)} ${esc(N.dtype)} on ${esc(N.device)}<br>` +
    `fused into kernel ${N.kernels.join(', ') || '(none: a leaf or a constant)'}</p>` +
    (N.kernels.length ? kernelHtml(r, N.kernels[0]) : '');
}
let cursor = [0, -1];
document.querySelectorAll('section.realize').forEach(sec => {
  const r = +sec.dataset.realize;
  sec.querySelectorAll('g.node').forEach(g => {
    const name = g.querySelector('title').textContent;
    g.setAttribute('tabindex', '0');
    g.addEventListener('click', () => showNode(r, name, g));
    g.addEventListener('keydown', e => { if (e.key === 'Enter') showNode(r, name, g); });
  });
  sec.querySelectorAll('li.kernel').forEach(li => {
    li.addEventListener('click', () => showKernel(r, +li.dataset.kernel));
    li.addEventListener('keydown', e => { if (e.key === 'Enter') showKernel(r, +li.dataset.kernel); });
  });
});
const PAGE = 100;
document.querySelectorAll('ol.kernels').forEach(ol => {
  const items = [...ol.children];
  if (items.length <= PAGE) return;
  const nav = document.createElement('div');
  const show = p => items.forEach((li, i) => li.style.display = Math.floor(i / PAGE) === p ? '' : 'none');
  for (let p = 0; p * PAGE < items.length; p++) {
    const b = document.createElement('button'); b.className = 'page'; b.textContent = p + 1;
    b.onclick = () => show(p); nav.appendChild(b);
  }
  ol.before(nav); show(0);
});
document.addEventListener('keydown', e => {
  if (e.target.tagName === 'INPUT') return;
  const [r, k] = cursor, n = DATA.length ? DATA[r].kernels.length : 0;
  if ((e.key === 'j' || e.key === 'ArrowDown') && k + 1 < n) cursor = [r, k + 1];
  else if ((e.key === 'k' || e.key === 'ArrowUp') && k > 0) cursor = [r, k - 1];
  else if (e.key === 'n' && r + 1 < DATA.length) cursor = [r + 1, 0];
  else if (e.key === 'p' && r > 0) cursor = [r - 1, 0];
  else return;
  e.preventDefault();
  document.getElementById('realize-' + cursor[0]).scrollIntoView();
  if (DATA[cursor[0]].kernels.length) showKernel(cursor[0], cursor[1]);
});
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>minigrad viz: {title}</title><style>{style}</style></head>
<body><div id="main"><h1>minigrad viz: {title}</h1>
<p>Click a graph node or a kernel (or Tab to it and press Enter); j / k move through the kernels, n / p through
the realizes. Kernels are marked forward, backward or optimizer step.</p>{sections}</div>
<div id="side"><p>Select a node or a kernel.</p></div>
<script type="application/json" id="viz-data">{data}</script><script>{script}</script></body></html>
"""


# ---- the command ---------------------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m minigrad viz",
        description=__doc__.splitlines()[0],
        usage="%(prog)s SCRIPT.py [-o OUT.html] [-- ARGS]",
    )
    parser.add_argument("script", help="a Python script to run")
    parser.add_argument("-o", "--output", default=None, help="the HTML file (default: SCRIPT.html here)")
    parser.add_argument("args", nargs="*", help="the script's arguments, after --")
    options = parser.parse_args(argv)
    if shutil.which("dot") is None:
        raise SystemExit("minigrad viz: graphviz's `dot` is missing (Debian: apt-get install graphviz)")
    output = pathlib.Path(options.output or pathlib.Path(options.script).with_suffix(".html").name)
    sys.argv = [options.script, *options.args]
    start = time.perf_counter()
    try:
        with Context(VIZ=1):
            runpy.run_path(options.script, run_name="__main__")
    finally:  # a script that fails still gets the page of what it computed until then
        output.write_text(build_page(pathlib.Path(options.script).name))
    kernels = sum(len(r["kernels"]) for r in _realizes)
    print(
        f"viz: {len(_realizes)} realizes, {kernels} kernels -> {output} ({time.perf_counter() - start:.1f} s)"
    )
