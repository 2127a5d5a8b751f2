"""Codegen, its stages in order, from this one place. Each stage is its own module with one type in and out:

    lower      codegen/lower.py       kernel AST          -> LoopNest (the plain loop nest)
    optimize   codegen/opt.py         LoopNest + Target   -> LoopNest (named rewrites; NOOPT=1: none)
    linearize  codegen/linearize.py   AST + LoopNest      -> LinearKernel (the instructions)
    render     codegen/cstyle.py      LinearKernel        -> source, in the backend's Language

In: a kernel AST from the scheduler (engine/schedule.py), the backend's `Language` and `Target`. Out: the
kernel's name, its source and its launch sizes, which the backend compiles and runs (device.py).
"""

from __future__ import annotations

import copy

from minigrad.codegen.cstyle import Language, render
from minigrad.codegen.linearize import linearize
from minigrad.codegen.lower import LoopNest, lower
from minigrad.codegen.opt import optimize
from minigrad.codegen.target import Target
from minigrad.helpers import getenv
from minigrad.ops import AstNode


def plan(ast: AstNode, target: Target) -> LoopNest:
    """Lower and optimize: the loop nest the optimizer chooses for this kernel on `target`."""
    nest = lower(ast)
    return nest if getenv("NOOPT") else optimize(ast, nest, target)


def generate(ast: AstNode, language: Language, target: Target, nest: LoopNest | None = None) -> tuple:
    """(name, source, (global size, local size)) of a kernel. `nest`: a loop nest chosen elsewhere (a
    BEAM search, engine/search.py) instead of `plan`'s."""
    chosen = copy.deepcopy(nest) if nest is not None else plan(ast, target)
    return render(linearize(ast, chosen), language)
