"""BEAM=N: choose a kernel's loop nest by timing candidates on its device, and remember the winner.

In: a kernel (`ScheduleItem`), the `Backend` that runs it, and its real buffers. Out: the `Program` to run,
compiled from the fastest loop nest found (engine/realize.py calls this instead of `get_program` when BEAM
is set).

The search starts from opt.py's heuristic nest. Its neighbours differ in one choice: one dim's upcast
factor (1, 2, 4, 8, 16 or 32), another global dim made outermost (the one a CPU runs on several threads),
or no threads at all. Every candidate is compiled and timed (the best of 3 runs) on copies of the kernel's
buffers, and its results must match the heuristic nest's, or it is dropped. The N fastest form the beam,
whose neighbours are tried next, for up to BEAM_ROUNDS rounds (default 3) or until no round improves. The
winner is then timed again against the heuristic nest, in turns, and kept only if 5% faster.
The winning choices are kept in the kernel cache (diskcache.py) under a key covering the kernel's
unoptimized source, the device and the codegen settings, so later runs and other processes skip the search.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import numpy as np

from minigrad import diskcache
from minigrad.codegen.pipeline import plan
from minigrad.codegen.lower import LoopNest
from minigrad.device import Backend, Buffer, Program
from minigrad.helpers import Context, codegen_settings, getenv, prod
from minigrad.lazy import LazyNode

UPCAST_FACTORS = (1, 2, 4, 8, 16, 32)
MAX_TILE = 256  # the product of all upcast factors: more accumulators than this cannot stay in registers
CONFIRM_MARGIN = 0.05  # a searched nest replaces the heuristic one only when at least 5% faster


_chosen: dict[tuple, Program] = {}  # (device, ast, settings) -> the program of the winning nest


def program_for(ast: Any, backend: Backend, outputs: list[LazyNode], buffers: list[Buffer]) -> Program:
    """The program for `ast`, rendered with the best nest found (or remembered) for it."""
    key = (backend.name, ast, codegen_settings())
    if key in _chosen:
        return _chosen[key]
    plain = backend.get_program(ast)
    if backend.language is None:  # a backend without generated code (NUMPY): nothing to search
        return plain
    nest = _remembered(ast, backend)
    if nest is None:
        nest = _search(ast, backend, plain, buffers, len(outputs), width=getenv("BEAM"))
        _remember(ast, backend, nest)
    _chosen[key] = backend.get_program(ast, nest)
    return _chosen[key]


def _heuristic(ast: Any, backend: Backend) -> LoopNest:
    return plan(ast, backend.target)


def _neighbours(nest: LoopNest) -> list[LoopNest]:
    """Nests that differ from `nest` in one choice (see the module docstring)."""
    found = []
    for d in [] if nest.threads or nest.picks or nest.scatter else nest.order:  # work-groups, picks stay
        size, current = nest.full_shape[d], nest.upcast.get(d, 1)
        for factor in UPCAST_FACTORS:
            if factor == current or size % factor or factor > size:
                continue
            candidate = copy.deepcopy(nest)
            candidate.upcast.pop(d, None)
            if factor > 1:
                candidate.upcast[d] = factor
            if prod(candidate.upcast.values()) <= MAX_TILE:
                found.append(candidate)
    global_dims = [d for d in nest.order if d not in nest.reduce_axes]
    for d in global_dims[1:]:
        if nest.vector_width and d == global_dims[-1]:
            continue  # vector accesses need the contiguous dim innermost
        candidate = copy.deepcopy(nest)
        candidate.order = [d] + [x for x in nest.order if x != d]
        candidate.parallel_dims = {d} if nest.parallel_dims else set()
        found.append(candidate)
    if nest.parallel_dims:
        candidate = copy.deepcopy(nest)
        candidate.parallel_dims = set()
        found.append(candidate)
    for candidate in found:  # a parallel loop needs more than one step to share out
        candidate.parallel_dims = {d for d in candidate.parallel_dims if candidate.steps(d) > 1}
    return found


def _search(
    ast: Any, backend: Backend, plain: Program, buffers: list[Buffer], n_outputs: int, width: int
) -> LoopNest:
    copies = [Buffer(b.device, b.size, b.dtype).copyin(b.numpy()) for b in buffers]
    start = _heuristic(ast, backend)
    reference = _run(backend, ast, start, copies, n_outputs)
    if reference is None:
        return start
    expected, best_time = reference
    beam, seen = [(best_time, start)], {repr(start)}
    for round_number in range(getenv("BEAM_ROUNDS", 3)):
        candidates = [n for _, nest in beam for n in _neighbours(nest) if repr(n) not in seen]
        seen.update(repr(n) for n in candidates)
        timed = []
        for candidate in candidates:
            result = _run(backend, ast, candidate, copies, n_outputs)
            if result is not None and all(_same(a, b) for a, b in zip(result[0], expected)):
                timed.append((result[1], candidate))
        beam_before = beam[0][0]
        beam = sorted(beam + timed, key=lambda pair: pair[0])[:width]
        if getenv("DEBUG") >= 1:
            print(
                f"BEAM {plain.name}: round {round_number + 1}, {len(timed)} candidates, "
                f"best {beam[0][0] * 1e6:.1f} us (heuristic {best_time * 1e6:.1f} us)"
            )
        if beam[0][0] >= beam_before:
            break
    return _confirmed(backend, ast, start, beam[0][1], copies, n_outputs)


def _confirmed(backend: Backend, ast: Any, start: LoopNest, best: LoopNest, buffers: list, n_outputs: int):
    """The winner only if it still beats the heuristic nest by CONFIRM_MARGIN when both are timed again,
    in turns (one noisy measurement must not replace a good heuristic choice)."""
    if best is start:
        return start
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(3):
        for i, nest in enumerate((start, best)):
            times[i].append(_run(backend, ast, nest, buffers, n_outputs)[1])
    return best if min(times[1]) < (1 - CONFIRM_MARGIN) * min(times[0]) else start


def _run(backend: Backend, ast: Any, nest: LoopNest, buffers: list[Buffer], n_outputs: int):
    """(outputs, best of 3 times) of the kernel rendered with `nest`, or None when it does not compile."""
    try:
        program = backend.get_program(ast, nest)
    except Exception as error:  # a candidate the compiler rejects is skipped, not fatal
        if getenv("DEBUG") >= 2:
            print(f"BEAM: skipped a candidate: {error}")
        return None
    times = []
    for _ in range(3):
        start = time.perf_counter()
        program.launch(buffers, wait=True)
        backend.synchronize()
        times.append(time.perf_counter() - start)
    return [b.numpy() for b in buffers[:n_outputs]], min(times)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "f":
        return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True))
    return bool(np.array_equal(a, b))


def _cache_key(ast: Any, backend: Backend) -> str:
    with Context(NOOPT=1):
        plain_source = backend.renderer(ast, None)[1]
    compiler = getattr(backend.compiler, "cache_key", "")
    return f"beam\n{backend.name}\n{compiler}\n{codegen_settings()}\n{plain_source}"


def _remembered(ast: Any, backend: Backend) -> LoopNest | None:
    stored = diskcache.load(_cache_key(ast, backend))
    if stored is None:
        return None
    choices = json.loads(stored)
    nest = _heuristic(ast, backend)
    nest.order, nest.parallel_dims = choices["order"], set(choices["parallel_dims"])
    nest.upcast = {int(d): f for d, f in choices["upcast"].items()}
    return nest


def _remember(ast: Any, backend: Backend, nest: LoopNest) -> None:
    choices = {"order": nest.order, "parallel_dims": sorted(nest.parallel_dims), "upcast": nest.upcast}
    diskcache.store(_cache_key(ast, backend), json.dumps(choices).encode())
