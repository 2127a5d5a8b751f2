"""The CPU backend: its on-disk kernel cache, its errors, and optimizations that do not change results."""

import ctypes
import dataclasses
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from minigrad import Context, Device, Tensor, dtypes
from minigrad.helpers import prod
from test.conftest import DEVICES

pytestmark = pytest.mark.skipif("CPU" not in DEVICES, reason="the CPU device needs a C compiler")

PROGRAM = (
    "from minigrad import Tensor\n"
    "print((Tensor([[1.0, 2.0], [3.0, 4.0]], device='CPU') @ Tensor([1.0, -1.0], device='CPU')).tolist())"
)


def run(env: dict, code: str = PROGRAM) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
        cwd=pathlib.Path(__file__).parent.parent,
    )


def test_cache_lives_under_xdg_cache_home(tmp_path):
    result = run({"XDG_CACHE_HOME": str(tmp_path)})
    assert result.stdout.strip() == "[-1.0, -1.0]", result.stderr
    entries = list((tmp_path / "minigrad").glob("*.bin"))
    assert entries, "compiled kernels are cached on disk"


def test_corrupted_cache_entries_are_rebuilt(tmp_path):
    assert run({"XDG_CACHE_HOME": str(tmp_path)}).returncode == 0
    for entry in (tmp_path / "minigrad").glob("*.bin"):
        entry.write_bytes(b"not a shared library")
    result = run({"XDG_CACHE_HOME": str(tmp_path)})
    assert result.stdout.strip() == "[-1.0, -1.0]", result.stderr
    for entry in (tmp_path / "minigrad").glob("*.bin"):
        assert entry.read_bytes() != b"not a shared library"


def test_concurrent_processes_share_an_empty_cache(tmp_path):
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PROGRAM],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
        )
        for _ in range(4)
    ]
    assert all(p.communicate(timeout=300)[0].strip() == "[-1.0, -1.0]" for p in processes)


def test_whole_vector_width_flag_changes_no_value(tmp_path):
    """x86: -mprefer-vector-width= the target's vector register (ops_cpu.py); CC's own arguments come last, so
    CC="<cc> -mprefer-vector-width=128" turns it off. Elementwise chains and row reductions: the same bits."""
    compiler = Device["CPU"].compiler
    if not any(flag.startswith("-mprefer-vector-width=") for flag in compiler.flags):
        pytest.skip("not an x86 compiler target")
    code = (
        "import hashlib, numpy as np\nfrom minigrad import Tensor\n"
        "x = Tensor(np.random.default_rng(0).standard_normal((67, 1000)).astype(np.float32))\n"
        "outs = [x.softmax(1), (x * 1.5 + 1).relu().exp2().sqrt(), x.sin().sum(1), x.max(0), x.exp().mean()]\n"
        "print(hashlib.sha256(b''.join(t.numpy().tobytes() for t in outs)).hexdigest())"
    )
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    base = os.environ.get("CC", "").strip() or compiler.cc
    default = run({**env, "CC": base}, code)
    narrow = run({**env, "CC": f"{base} -mprefer-vector-width=128"}, code)
    assert default.returncode == 0 and narrow.returncode == 0, default.stderr + narrow.stderr
    assert default.stdout.strip() == narrow.stdout.strip() != ""


def test_missing_compiler_is_a_clear_error(tmp_path):
    code = (
        "from minigrad import Device\n"
        "try:\n    Device['CPU']\nexcept RuntimeError as e:\n    print(e)\n"
        "print(Device.DEFAULT)"
    )
    result = run({"CC": "", "PATH": str(tmp_path)}, code)
    assert (
        "needs a C compiler and none was found" in result.stdout and "apt-get install gcc" in result.stdout
    ), result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] in ("CUDA", "OPENCL", "NUMPY"), (
        "without a compiler the default falls back to another device"
    )


@pytest.mark.parametrize(
    "name",
    ["matmul", "matmul_dot_form", "matmul_a_transposed", "ten_classes", "max_rows", "softmax", "conv"]
    + ["sum_axis0", "transposed"],
)
def test_noopt_gives_the_same_results(name):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 96)).astype(np.float32), rng.standard_normal((96, 48)).astype(np.float32)
    image = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    kernel = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    fns = {
        "matmul": lambda: Tensor(a, device="CPU") @ Tensor(b, device="CPU"),
        # loads contiguous along the reduce: split into lane accumulators (opt.upcast), 96 = 12 x 8 lanes
        "matmul_dot_form": lambda: Tensor(a, device="CPU") @ Tensor(b.T.copy(), device="CPU").T,
        # the broadcast input is read consecutively along the rows (x.T @ g)
        "matmul_a_transposed": lambda: Tensor(a.T.copy(), device="CPU").T @ Tensor(b, device="CPU"),
        # a dot-form reduce of 10: too short to split into lanes
        "ten_classes": lambda: Tensor(a[:, :10].copy(), device="CPU") @ Tensor(b[:10].copy(), device="CPU"),
        "max_rows": lambda: (Tensor(a, device="CPU") * -1).max(1),
        "softmax": lambda: Tensor(a, device="CPU").softmax(-1),
        "conv": lambda: Tensor(image, device="CPU").conv2d(Tensor(kernel, device="CPU"), padding=1),
        "sum_axis0": lambda: Tensor(np.tile(a, (600, 1)), device="CPU").sum(0),
        "transposed": lambda: Tensor(a, device="CPU").T * 2 + Tensor(a, device="CPU").T,
    }
    optimized = fns[name]().numpy()
    with Context(NOOPT=1):
        plain = fns[name]().numpy()
    np.testing.assert_allclose(optimized, plain, rtol=1e-5, atol=1e-5)


def test_compile_error_names_the_compiler_and_shows_the_source():
    from minigrad.device import Device

    with pytest.raises(RuntimeError, match="could not compile a kernel(.|\n)*--- source"):
        Device["CPU"].compiler.compile("this is not C")


def test_freed_buffers_are_reused_and_lru_0_turns_it_off():
    from minigrad.device import Device

    x = Tensor(np.arange(1000, dtype=np.float32), device="CPU").realize()
    first = (x * 2).realize()
    address = first.lazydata.realized._buf.value
    del first
    second = (x * 3).realize()
    assert second.lazydata.realized._buf.value == address, "a freed buffer is reused"
    with Context(LRU=0):
        del second
        assert Device["CPU"].allocator._cache.get(4000, []) == []
        np.testing.assert_equal((x * 3).numpy(), np.arange(1000) * 3)


def test_buffers_start_at_a_multiple_of_the_vector_size_with_an_off_switch():
    """CPU buffers start at a multiple of the vector registers' size (numpy's large arrays start 16 bytes
    into a page); MINIGRAD_ALIGN=0, numpy's own placement, gives the same bits."""
    vector_bytes = Device["CPU"].target.vector_bytes
    for n, dtype in ((1, np.float32), (1000, np.float32), (3, np.float16), (1 << 20, np.float32)):
        t = (Tensor(np.ones(n, dtype=dtype), device="CPU") + 1).realize()
        assert t.lazydata.realized._buf.value % vector_bytes == 0, (n, dtype)
        np.testing.assert_equal(t.numpy(), np.full(n, 2, dtype=dtype))
    code = (
        "import hashlib, numpy as np\nfrom minigrad import Tensor\n"
        "a = np.random.default_rng(0).standard_normal((2, 8, 40, 40), dtype=np.float32)\n"
        "x, w = Tensor(a), Tensor(a[0, :, :3, :3].reshape(8, 1, 3, 3).repeat(8, 1))\n"
        "outs = [x.conv2d(w, padding=1).relu(), x.softmax(-1), x.exp2().sum(0), x[0, 0] @ x[1, 1].T]\n"
        "print(hashlib.sha256(b''.join(o.numpy().tobytes() for o in outs)).hexdigest())\n"
    )
    digests = []
    for align in ("1", "0"):
        result = run({"MINIGRAD_ALIGN": align}, code)
        assert result.returncode == 0, result.stderr[-2000:]
        digests.append(result.stdout.split()[-1])
    assert digests[0] == digests[1]
    result = run({"MINIGRAD_ALIGN": "yes"}, "from minigrad import Device\nDevice['CPU']")
    assert result.returncode != 0 and "MINIGRAD_ALIGN='yes'" in result.stderr, result.stderr[-2000:]


def test_kernels_past_2_to_the_31_elements_index_with_64_bits():
    """A loop or an index that reaches 2^31 gets 64-bit variables (before, `int gidx0 < 2147483712` did not
    compile); smaller kernels keep int, which vectorizes better."""
    from minigrad.codegen.cstyle import C_LANGUAGE
    from minigrad.codegen.pipeline import generate
    from minigrad.engine.schedule import create_schedule

    def source(t: Tensor) -> str:
        (item,) = [i for i in create_schedule([t.lazydata]) if i.ast.op.name == "STORE"]
        return generate(item.ast, C_LANGUAGE, Device["CPU"].target)[1]

    big = Tensor.ones(2**31 + 64, dtype=dtypes.uint8, device="CPU").contiguous()  # 2 GiB: rendered only
    assert "long long gidx0" in source(big) and "int gidx0" not in source(big)
    assert "for (int gidx0" in source(Tensor.ones(1000, device="CPU").contiguous())
    assert Tensor.ones(2**31 + 64, dtype=dtypes.int64, device="CPU").sum().item() == 2**31 + 64


def test_a_short_reduce_tiles_8x4_outputs_and_matches_the_untiled_kernel():
    """A reduce of at most 16 elements (`g @ W3.T` over 10 classes) is not split into lanes: one operand is
    packed transposed (PACKED_MIN_TERMS) and the outputs are an outer product's vector columns, the relu
    mask fused; with PACK=0, 8x4 outputs run at once, the 8 for the vectorizer. The same values."""
    from minigrad.codegen.pipeline import plan
    from minigrad.engine.schedule import create_schedule

    rng = np.random.default_rng(4)
    g, w, h = (rng.standard_normal(s).astype(np.float32) for s in ((64, 10), (96, 10), (64, 96)))
    cpu = lambda v: Tensor(v, device="CPU")  # noqa: E731
    run = lambda: (cpu(g) @ cpu(w).T) * (cpu(h) > 0)  # noqa: E731
    results = []
    for flag in (1, 0):
        with Context(PACK=flag):
            (item,) = [i for i in create_schedule([run().lazydata]) if i.ast.op.name == "STORE"]
            nest = plan(item.ast, Device["CPU"].target)
            if flag:
                assert nest.packed and nest.simd > 1, nest
            else:
                assert sorted(nest.upcast.values()) == [4, 8] and not nest.packed, nest
            results.append(run().numpy())
    with Context(UPCAST=0):
        results.append(run().numpy())
    for result in results:  # (fused multiply-adds differ)
        np.testing.assert_allclose(result, results[-1], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(result, (g @ w.T) * (h > 0), rtol=1e-4, atol=1e-4)


SPECIALS = np.array(
    [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-30, -126.5, -149.0, -149.5, -150.5, 128.5], np.float32
)


def test_fast_math_c_exp2_is_within_two_ulp_of_libm():
    """FAST_MATH_C: exp2 as vectorizable arithmetic; FAST_MATH_C=0 is libm's exp2f (the reference here)."""
    x = np.concatenate([np.linspace(-160, 140, 200_001, dtype=np.float32), SPECIALS])
    fast = Tensor(x, device="CPU").exp2().numpy()
    with Context(FAST_MATH_C=0):
        libm = Tensor(x, device="CPU").exp2().numpy()
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(libm))
    np.testing.assert_array_equal(np.isinf(fast), np.isinf(libm))
    np.testing.assert_array_equal(fast[-len(SPECIALS) :], libm[-len(SPECIALS) :])
    normal = np.isfinite(libm) & (libm > 1e-37)
    ulp = np.spacing(libm[normal])
    assert np.abs(fast[normal] - libm[normal]).max() <= 2 * ulp.max()
    assert (np.abs(fast[normal] - libm[normal]) <= 2 * ulp).all()


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_fast_math_c_sin_is_within_one_ulp_of_libm_with_an_exact_rerun_for_large_arguments(name):
    """FAST_MATH_C: sin and cos in float arithmetic for |x| <= 16384; a kernel that meets a larger argument
    runs again with libm's (the reference here, FAST_MATH_C=0), so sin(1e30) is libm's exactly."""
    small = np.concatenate([np.linspace(-16384, 16384, 200_001, dtype=np.float32), SPECIALS])
    large = np.concatenate([small[:1000], np.array([16385.0, 1e7, 1e15, 1e30, -3e38], np.float32)])
    for x in (small, large):
        fast = getattr(Tensor(x, device="CPU"), name)().numpy()
        with Context(FAST_MATH_C=0):
            libm = getattr(Tensor(x, device="CPU"), name)().numpy()
        np.testing.assert_array_equal(np.isnan(fast), np.isnan(libm))
        finite = np.isfinite(libm)
        assert (np.abs(fast[finite] - libm[finite]) <= np.spacing(np.abs(libm[finite]))).all()
    np.testing.assert_array_equal(fast, libm)  # the large ones: the rerun is libm's
    assert "mg_wide" in render_source(lambda t: getattr(t, name)(), small[:64])
    with Context(FAST_MATH_C=0):
        assert "mg_wide" not in render_source(lambda t: getattr(t, name)(), small[:64])


def test_a_kernel_writing_its_own_input_is_not_rerun():
    """x.assign(x.sin()) reads the buffer it writes: a second run would give sin(sin(x))."""
    values = np.array([1.0, 2e5, 3.0, -1e30], np.float32)
    for data in (values, values[[0, 2]]):  # with and without an argument beyond the fast range
        x = Tensor(data, device="CPU").realize()
        x.assign(x.sin()).realize()
        np.testing.assert_allclose(x.numpy(), np.sin(data.astype(np.float64)), rtol=1e-6)


def test_kernels_compiled_together_share_one_library_and_keep_their_errors():
    """Compiler.compile_together: one gcc run for several kernels (a repeated name renamed); when the whole
    does not compile, each alone, so the error is the bad kernel's own."""
    from minigrad.runtime.ops_cpu import CpuProgram

    compiler = Device["CPU"].compiler
    source = "void {name}(float* out) {{ out[0] = {value}; }}"
    kernels = [("k", source.format(name="k", value="1.0f")), ("k", source.format(name="k", value="2.0f"))]
    compiled = compiler.compile_together(kernels)
    assert compiled[0][0] == "k" and compiled[1][0] != "k" and compiled[0][1] == compiled[1][1]
    for (name, binary), expected in zip(compiled, (1.0, 2.0)):
        out, program = np.zeros(1, np.float32), CpuProgram(name, binary)  # (its library lives with it)
        program.function.argtypes = [ctypes.c_void_p]
        program.function(out.ctypes.data)
        assert out[0] == expected
    with pytest.raises(RuntimeError, match="could not compile") as error:
        compiler.compile_together([kernels[0], ("bad", "void bad(float* out) { out[0] = nope; }")])
    assert "void bad" in str(error.value)


def test_fast_math_c_max_is_identical_and_rendered_as_a_bit_select():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 40)).astype(np.float32)
    x[3, 7], x[10, :] = np.nan, -np.inf
    results = {}
    for flag in (1, 0):
        with Context(FAST_MATH_C=flag):
            t = Tensor(x, device="CPU")
            results[flag] = [t.max(1).numpy(), t.maximum(t * -1).numpy(), t.softmax(-1).numpy()]
    for fast, plain in zip(results[1][:2], results[0][:2]):
        np.testing.assert_array_equal(fast, plain)  # max: bit for bit, NaN included
    np.testing.assert_allclose(results[1][2], results[0][2], rtol=1e-6, atol=1e-7, equal_nan=True)
    assert "mg_maxf(" in render_source(lambda t: t.max(1), x)
    with Context(FAST_MATH_C=0):
        assert "mg_maxf(" not in render_source(lambda t: t.max(1), x)


def render_source(fn, x: np.ndarray) -> str:
    from minigrad.codegen.cstyle import C_LANGUAGE
    from minigrad.codegen.pipeline import generate
    from minigrad.engine.schedule import create_schedule

    schedule = create_schedule([fn(Tensor(x, device="CPU")).lazydata])
    source = generate(schedule[-1].ast, C_LANGUAGE, Device["CPU"].target)[
        1
    ]  # the last kernel (the first item loads x)
    return source[source.rindex("void ") :]  # the kernel, without the helper functions before it


def test_beam_search_keeps_results_and_remembers_its_choice(tmp_path, monkeypatch):
    from minigrad.engine import search

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 48)).astype(np.float32), rng.standard_normal((48, 32)).astype(np.float32)
    with Context(BEAM=2, BEAM_ROUNDS=1):
        searched = (Tensor(a, device="CPU") @ Tensor(b, device="CPU")).numpy()
    np.testing.assert_allclose(searched, a @ b, rtol=1e-4, atol=1e-4)
    assert any(b'"order"' in p.read_bytes() for p in tmp_path.glob("minigrad/*.bin")), (
        "the winner is stored in the kernel cache"
    )

    def no_search(*args, **kwargs):
        raise AssertionError("a remembered kernel is searched again")

    monkeypatch.setattr(search, "_search", no_search)
    search._chosen.clear()  # forget what this process chose: the choice must come from the disk
    with Context(BEAM=2, BEAM_ROUNDS=1):
        again = (Tensor(a, device="CPU") @ Tensor(b, device="CPU")).numpy()
    np.testing.assert_array_equal(again, searched)


def test_beam_neighbours_change_one_choice():
    from minigrad.codegen.pipeline import plan
    from minigrad.engine.schedule import create_schedule
    from minigrad.engine.search import MAX_TILE, _neighbours

    x = Tensor.zeros(64, 64, device="CPU").realize()
    (item,) = create_schedule([(x @ x).lazydata])
    nest = plan(item.ast, Device["CPU"].target)
    neighbours = _neighbours(nest)
    assert neighbours and all(repr(n) != repr(nest) for n in neighbours)
    for n in neighbours:
        changed = [f for f in ("order", "parallel_dims", "upcast") if getattr(n, f) != getattr(nest, f)]
        assert changed and np.prod(list(n.upcast.values())) <= MAX_TILE
        # a tile need not divide its dim where the last tile overlaps the one before (LoopNest.overlap)
        assert all(n.full_shape[d] % f == 0 or d in n.overlap for d, f in n.upcast.items())


def test_parallel_compile_gives_the_same_results(tmp_path):
    """A cold cache: the kernels of one realize compile on several threads (PARALLEL_COMPILE=0: one)."""
    code = (
        "import numpy as np\nfrom minigrad import Tensor\n"
        "x = Tensor(np.arange(64, dtype=np.float32).reshape(8, 8) / 10, device='CPU')\n"
        "print(((x @ x.T).softmax(-1) + x.sum(0) * x.max(1, keepdim=True)).numpy().round(5).tolist())"
    )
    outputs = [
        run({"XDG_CACHE_HOME": str(tmp_path / f"cache{flag}"), "PARALLEL_COMPILE": flag}, code)
        for flag in ("1", "0")
    ]
    assert outputs[0].returncode == 0, outputs[0].stderr
    assert outputs[0].stdout == outputs[1].stdout
    assert len(list((tmp_path / "cache1" / "minigrad").glob("*.bin"))) >= 3


def _kernel_sources(*tensors: Tensor) -> list[str]:
    from minigrad.engine.schedule import create_schedule

    items = create_schedule([t.lazydata for t in tensors])
    return [Device["CPU"].get_program(i.ast).source for i in items if i.ast.op.name == "STORE"]


PACK_CASES = {  # name: (operand shapes, the contraction): matmul, transposed, batched, a padded conv
    "matmul": ([(512, 520), (520, 528)], lambda x, w: x @ w),
    "odd sizes": ([(130, 200), (200, 144)], lambda x, w: x @ w),
    "awkward sizes": ([(1025, 67), (67, 1023)], lambda x, w: x @ w),
    "long reduce": ([(40, 40960), (40960, 48)], lambda x, w: x @ w),
    "x.T @ w": ([(200, 130), (200, 144)], lambda x, w: x.T @ w),
    "batched": ([(3, 64, 96), (3, 96, 80)], lambda x, w: x @ w),
    "conv": ([(4, 16, 20, 20), (16, 16, 3, 3)], lambda x, w: x.conv2d(w, padding=1)),
    "x @ w.T, short reduce": ([(96, 40), (136, 40)], lambda x, w: x @ w.T),
    "attention scores": ([(4, 48, 32), (4, 80, 32)], lambda x, w: x @ w.transpose(-1, -2)),
    # the column operand also read after the reduce (the epilogue): not packed (its loads there read the
    # pack at the reduce's index, out of scope: the kernel did not compile)
    "read after the reduce": ([(64, 64), (64,)], lambda x, v: x @ v.unsqueeze(0).expand(64, 64) + v),
}


@pytest.mark.parametrize("case", PACK_CASES)
def test_packed_contractions_match_unpacked_and_unoptimized_ones(case):
    """opt.pack: the operand read along the columns of an outer-product tile is copied into a contiguous
    array first (PACK=0: read in place), a long reduce in chunks (CHUNK=0: not packed); a tile that does
    not divide its dim overlaps its last block (OVERLAP=0: a smaller tile); NOOPT=1: no rewrite at all.
    Same values forward and backward."""
    shapes, fn = PACK_CASES[case]
    rng = np.random.default_rng(0)
    values = [(rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32) for s in shapes]  # sums near 1
    results = {}
    for flags in ({}, {"PACK": 0}, {"OVERLAP": 0}, {"CHUNK": 0}, {"NOOPT": 1}):
        with Context(**flags):
            x, w = (Tensor(v, device="CPU", requires_grad=True) for v in values)
            out = fn(x, w)
            (out * out).mean().backward()
            if case == "conv":  # its weight gradient packs the upstream gradient, transposed: wide columns
                from minigrad.codegen.pipeline import plan
                from minigrad.engine.schedule import create_schedule

                item = [i for i in create_schedule([w.grad.lazydata]) if i.ast.op.name == "STORE"][-1]
                nest = plan(item.ast, Device["CPU"].target)
                wide = bool(nest.packed) and nest.upcast.get(nest.columns, 1) >= 8
                assert wide == (flags in ({}, {"OVERLAP": 0})), flags
            results[str(flags)] = [out.numpy(), x.grad.numpy(), w.grad.numpy()]
            source = _kernel_sources(fn(Tensor(values[0]), Tensor(values[1])))[-1]
            if case == "matmul":  # the forward kernel packs w's columns, unless PACK=0 or NOOPT=1
                assert ("pack2[" in source) == ("PACK" not in flags and "NOOPT" not in flags), flags
            if case == "long reduce":  # 40960 x 8 floats or more: over 1 MiB, packed in chunks (any L2)
                assert ("partial[" in source) == (flags in ({}, {"OVERLAP": 0})), flags
    for other in ("{'PACK': 0}", "{'OVERLAP': 0}", "{'CHUNK': 0}", "{'NOOPT': 1}"):
        for packed, plain in zip(results["{}"], results[other]):
            np.testing.assert_allclose(packed, plain, rtol=1e-4, atol=1e-4)
    torch_fn = (lambda x, w: torch.nn.functional.conv2d(x, w, padding=1)) if case == "conv" else fn
    torch_out = torch_fn(*(torch.tensor(v) for v in values)).numpy()
    np.testing.assert_allclose(results["{}"][0], torch_out, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("rows, columns", [(96, 136), (136, 96), (24, 520)])
def test_a_transposed_tile_takes_its_columns_along_the_outputs_rows(rows, columns):
    """x @ w.T with a short reduce (40 terms, both operands contiguous along it) is an outer product made by
    packing (opt._transposed_tile): its columns run along the output's rows, whichever operand is longer,
    so the tile stores whole vectors (columns down the output: 3x slower at 1024x64 by 1024x64)."""
    from minigrad.codegen.pipeline import plan
    from minigrad.engine.schedule import create_schedule

    x, w = Tensor.rand(rows, 40, device="CPU"), Tensor.rand(columns, 40, device="CPU")
    item = [i for i in create_schedule([(x @ w.T).lazydata]) if i.ast.op.name == "STORE"][-1]
    nest = plan(item.ast, Device["CPU"].target)
    assert nest.packed and nest.columns == len(nest.full_shape) - 2, nest  # (the reduce dim is last)
    np.testing.assert_allclose((x @ w.T).numpy(), x.numpy() @ w.numpy().T, rtol=1e-5, atol=1e-5)


def test_a_strided_conv_takes_its_columns_along_the_output_rows():
    """A stride-2 conv's input is contiguous along no output dim: its tile is made by packing, the columns
    along the output's rows (its contiguous dim, 16 pixels: a vector on any CPU here), not the batch."""
    from minigrad.codegen.pipeline import plan
    from minigrad.engine.schedule import create_schedule

    x, w = Tensor.rand(4, 16, 32, 32, device="CPU"), Tensor.rand(32, 16, 3, 3, device="CPU")
    out = x.conv2d(w, stride=2, padding=1)
    item = [i for i in create_schedule([out.lazydata]) if i.ast.op.name == "STORE"][-1]
    nest = plan(item.ast, Device["CPU"].target)
    assert nest.packed and nest.columns == 5, nest  # (N, 1, Cout, Cin, OH, OW, kh, kw)
    expected = torch.nn.functional.conv2d(
        torch.tensor(x.numpy()), torch.tensor(w.numpy()), stride=2, padding=1
    )
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_a_chunk_copied_outside_the_parallel_loop_is_copied_by_every_thread():
    """conv's weight gradient sums over batch and pixels in chunks, each copied (packed) once for the
    threads that sum it: the copy runs in a parallel loop of its own (or inside the parallel loop), not on
    one thread. THREADS=0 (no
    parallel loops at all) gives the same values, bit for bit."""
    from minigrad.engine.schedule import create_schedule

    rng = np.random.default_rng(0)
    # 40 x 32 x 32 terms: at least 8 columns (SSE) of them pack to over 1 MiB, the most a pack takes
    # (PACK_MAX_BYTES), on any CPU: chunked
    values = [
        rng.standard_normal(s).astype(np.float32)
        for s in ((40, 32, 32, 32), (32, 32, 3, 3), (40, 32, 32, 32))
    ]
    results = []
    for flags in ({}, {"THREADS": 0}):
        with Context(**flags):
            x, w, g = (Tensor(v, device="CPU", requires_grad=i == 1) for i, v in enumerate(values))
            (x.conv2d(w, padding=1) * g).sum().backward()
            item = [i for i in create_schedule([w.grad.lazydata]) if i.ast.op.name == "STORE"][-1]
            source = Device["CPU"].get_program(item.ast).source
            # copied in a parallel loop of its own, or by each thread inside the parallel loop (where the
            # parallel loop is over the column tiles: AVX2's 16 columns of 32)
            copied_together = re.search(r"float pack\d+\[\d+\];\s*#pragma omp parallel for", source)
            pragma, pack = (
                source.find("#pragma omp parallel for"),
                re.search(r"float pack\d+\[", source).start(),
            )
            assert "partial[" in source and bool(copied_together or 0 <= pragma < pack) == (not flags), flags
            results.append(w.grad.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    torch_w = torch.tensor(values[1], requires_grad=True)
    (
        torch.nn.functional.conv2d(torch.tensor(values[0]), torch_w, padding=1) * torch.tensor(values[2])
    ).sum().backward()
    np.testing.assert_allclose(results[0], torch_w.grad.numpy(), rtol=1e-4, atol=1e-2)


def test_matmul_is_plain_composition_in_the_graph():
    """The front end lays out nothing: x @ w is a MUL and a SUM of views, on every device (no copy, no
    custom rule); the optimizer finds the contraction in the kernel (codegen/opt.py)."""
    import minigrad

    x, w = Tensor(np.ones((512, 512), np.float32)), Tensor(np.ones((512, 512), np.float32))
    ops = {n.op.name for n in minigrad.lazy.toposort([(x @ w).lazydata])}
    assert ops <= {"MUL", "REDUCE_SUM", "RESHAPE", "PERMUTE", "EXPAND", "BUFFER", "LOAD"}, ops


def test_conv_backward_tiles_match_untiled_kernels():
    """GATHER_TILE (div/mod gathers share their index over 8 loads) and SECOND_TILE (a second tiled dim when
    only one is broadcast): a conv's backward kernels take them, and the results are the same without."""
    from minigrad.codegen.pipeline import plan
    from minigrad.engine.schedule import create_schedule

    rng = np.random.default_rng(0)
    xv, wv = rng.standard_normal((2, 16, 12, 12)).astype(np.float32), rng.standard_normal((16, 16, 3, 3))
    results = {}
    for flags in ({}, {"GATHER_TILE": 0, "SECOND_TILE": 0}):
        with Context(**flags):
            x = Tensor(xv, device="CPU", requires_grad=True)
            w = Tensor(wv.astype(np.float32), device="CPU", requires_grad=True)
            x.conv2d(w, padding=1).sum().backward()
            nests = [
                plan(i.ast, Device["CPU"].target)
                for i in create_schedule([x.grad.lazydata, w.grad.lazydata])
                if i.ast.op.name == "STORE"
            ]
            results[str(flags)] = [x.grad.numpy(), w.grad.numpy()], [len(n.upcast) for n in nests]
    (tiled, tiled_counts), (plain, plain_counts) = results.values()
    assert sum(tiled_counts) > sum(plain_counts), (tiled_counts, plain_counts)
    for a, b in zip(tiled, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_a_reduce_over_a_transposed_view_walks_memory_in_order():
    """REORDER in a reduce kernel: `x.T.sum()` puts the reduce dim the load walks with stride 1 innermost
    (then splits it into lanes); REORDER=0 keeps the transposed order, and both give numpy's sum."""
    from minigrad.codegen.pipeline import plan
    from minigrad.engine.schedule import create_schedule

    x = np.random.default_rng(0).random((160, 384), dtype=np.float32)  # under 2^16: one kernel (_split_sum)
    for reorder, innermost in ((1, 0), (0, 1)):  # dims of x.T: 0 walks a row of x (stride 1), 1 a column
        with Context(REORDER=reorder):
            t = Tensor(x, device="CPU").T.sum()
            (item,) = [i for i in create_schedule([t.lazydata]) if i.ast.op.name == "STORE"]
            assert plan(item.ast, Device["CPU"].target).order[-1] == innermost
            np.testing.assert_allclose(t.item(), x.sum(dtype=np.float64), rtol=1e-6)


def test_transposed_copies_take_8_rows_a_step():
    """TRANSPOSE: a copy of 2^16 floats or more whose load is strided along the innermost dim tiles the dim
    that load walks by 8 (x.T, 512x128 of it, flipped x.T, NCHW -> NHWC); TRANSPOSE=0: not; same values."""
    from minigrad.codegen.pipeline import plan
    from minigrad.engine.schedule import create_schedule

    x = np.random.default_rng(0).standard_normal((1024, 1040)).astype(np.float32)
    nchw = x.reshape(4, 256, 26, 40)
    cases = {
        lambda t: t.T: x.T,
        lambda t: t[:128, :512].T: x[:128, :512].T,
        lambda t: t.flip(1).T: x[:, ::-1].T,
        lambda t: t.reshape(nchw.shape).permute(0, 2, 3, 1): nchw.transpose(0, 2, 3, 1),
    }
    for view, expected in cases.items():
        results = []
        for flag in (1, 0):
            with Context(TRANSPOSE=flag):
                t = view(Tensor(x, device="CPU")).contiguous()
                (item,) = [i for i in create_schedule([t.lazydata]) if i.ast.op.name == "STORE"]
                results.append((plan(item.ast, Device["CPU"].target).upcast, t.numpy()))
        assert 8 in results[0][0].values() and 8 not in results[1][0].values(), results[0][0]
        np.testing.assert_array_equal(results[0][1], results[1][1])
        np.testing.assert_array_equal(results[0][1], expected)


def test_epilogue_loop_matches_the_unrolled_epilogue():
    """EPILOGUE_LOOP: what follows a register-tiled reduce (bias, relu) runs in a loop over the tile's rows
    (linearize._epilogue_loop); off, unrolled per output. Same values, overlapping last tiles included."""
    from minigrad.codegen.cstyle import C_LANGUAGE
    from minigrad.codegen.linearize import EPILOGUE_LOOP_COPIES
    from minigrad.codegen.pipeline import generate, plan
    from minigrad.engine.schedule import create_schedule

    rng = np.random.default_rng(0)
    a, b, bias = rng.standard_normal((100, 70)), rng.standard_normal((70, 90)), rng.standard_normal(90)
    results = []
    for flag in (1, 0):
        with Context(EPILOGUE_LOOP=flag):
            x, w, c = (Tensor(v.astype(np.float32), device="CPU") for v in (a, b, bias))
            out = (x @ w + c).relu()
            (item,) = create_schedule([out.lazydata])[-1:]
            source = generate(item.ast, C_LANGUAGE, Device["CPU"].target)[1]
            tile = prod(plan(item.ast, Device["CPU"].target).upcast.values())  # (SSE's 8 x 6 is too few)
            assert ("for (int row = 0;" in source) == (bool(flag) and tile >= EPILOGUE_LOOP_COPIES), source
            results.append(out.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], np.maximum(a @ b + bias, 0), rtol=1e-4, atol=1e-4)


def test_vector_columns_match_scalar_columns():
    """SIMD: an outer-product tile's columns are computed as C vector values (opt.simd, linearize's vector
    columns); off, one scalar each. The same values for a matmul with a fused epilogue (bias, relu;
    overlapping last tiles), a weight-gradient-like a.T @ b (chunked, packed), a conv, sums down columns, row maxes and sums (NaN, inf), a padded operand
    (masked vector loads), float64, 10 columns (too few for a vector: the rows take the vectors, packed
    transposed), exp/sqrt/sin/log2 inside row sums (one element at a time, in a loop), relu and masks of
    the columns' operand inside the reduce (vector comparisons: relu(nan) stays nan); a float16 matmul, and
    a float64 comparison picking float32 values, keep scalar columns (linearize falls back)."""
    from minigrad.codegen.cstyle import C_LANGUAGE
    from minigrad.codegen.pipeline import generate
    from minigrad.engine.schedule import create_schedule

    rng = np.random.default_rng(0)
    a, b, bias = rng.standard_normal((100, 70)), rng.standard_normal((70, 90)), rng.standard_normal(90)
    long_a, long_b = rng.standard_normal((4096, 40)), rng.standard_normal((4096, 64))
    image, kernel = rng.standard_normal((2, 16, 16, 16)), rng.standard_normal((32, 16, 3, 3))
    rows = rng.standard_normal((8, 1024))
    rows[1, 5], rows[2, 700], rows[3, 9] = np.nan, np.inf, -np.inf
    holes = b.copy()
    holes[3, 4], holes[5, 80], holes[7, 7] = np.nan, 0.0, -0.0
    relu = lambda v: np.where(v > 0, v, np.maximum(v, 0))  # noqa: E731  (nan stays nan)
    cases = {
        "epilogue": (lambda t: (t(a) @ t(b) + t(bias)).relu(), np.maximum(a @ b + bias, 0), np.float32),
        "chunked": (lambda t: t(long_a).T @ t(long_b), long_a.T @ long_b, np.float32),
        "conv": (lambda t: t(image).conv2d(t(kernel), padding=1), None, np.float32),
        "padded": (lambda t: t(a) @ t(b[:68]).pad(((1, 1), (0, 0))), a[:, 1:69] @ b[:68], np.float32),
        "float64": (lambda t: t(a) @ t(b), a @ b, np.float64),
        "column sums": (lambda t: t(long_b).sum(0) * 0.5, long_b.sum(0) * 0.5, np.float32),
        "row maxes": (lambda t: t(rows).max(1), rows.max(1), np.float32),
        "row sums": (lambda t: t(rows).sum(1), rows.sum(1), np.float32),
        "ten columns": (lambda t: t(long_a[:128]) @ t(b[:40, :10]), long_a[:128] @ b[:40, :10], np.float32),
        "exp sums": (lambda t: (t(rows) - 3).exp().sum(1), np.exp(rows - 3).sum(1), np.float32),
        "lanewise": (lambda t: ((t(rows) * t(rows)).sqrt() + t(rows).sin()).log2().sum(1), None, np.float32),
        "float64 exp": (lambda t: t(rows).exp2().sum(1), np.exp2(rows).sum(1), np.float64),
        "relu columns": (lambda t: t(a) @ t(holes).relu(), a @ relu(holes), np.float32),
        "mask as float": (lambda t: t(a) @ ((t(holes) > 0).float() * t(holes)), a @ relu(holes), np.float32),
        "equal mask": (lambda t: t(a) @ (t(holes) == 0).where(1.0, t(holes)), None, np.float32),
        "float64 relu": (lambda t: t(a) @ t(holes).relu(), a @ relu(holes), np.float64),
        "mixed mask": (
            lambda t: t(a) @ (t(holes).cast(dtypes.float64) > 0).where(t(holes), 0),
            None,
            np.float32,
        ),
        "ten classes relu": (lambda t: t(long_a[:128]).relu() @ t(b[:40, :10]), None, np.float32),
        "float16": (lambda t: t(a) @ t(b), a @ b, np.float16),
    }
    scalar = {"float16", "mixed mask"}  # what vectors cannot hold
    for name, (compute, expected, dtype) in cases.items():
        results = []
        for flag in (1, 0):
            with Context(SIMD=flag):
                out = compute(lambda v: Tensor(v.astype(dtype), device="CPU"))
                (item,) = create_schedule([out.lazydata])[-1:]
                source = generate(item.ast, C_LANGUAGE, Device["CPU"].target)[1]
                vectors = f"mg_{np.dtype(dtype).name}x" in source
                assert vectors == (flag == 1 and name not in scalar), (name, source)
                results.append(out.numpy())
        np.testing.assert_array_equal(results[0], results[1], err_msg=name)
        if expected is not None:
            tolerance = 1e-2 if dtype == np.float16 else 1e-4
            np.testing.assert_allclose(results[0], expected, rtol=tolerance, atol=tolerance, err_msg=name)


def test_what_follows_a_vector_reduce_computes_on_vectors():
    """Vector columns: what follows the reduce (a bias and relu, an SGD update) runs on the vectors, stored a
    vector at a time; in an epilogue loop whose columns are not the vectors' dim (the update of a 512x10
    weight from relu(h).T @ g), each row reads its columns from the vectors' array in place, not through a
    scalar read of each lane first. What vectors cannot compute (a cast to int) falls back to scalars. The
    same values as with scalar columns (SIMD=0)."""
    from minigrad.codegen.cstyle import C_LANGUAGE
    from minigrad.codegen.pipeline import generate
    from minigrad.engine.schedule import create_schedule

    rng = np.random.default_rng(1)
    h, g, w = rng.standard_normal((128, 512)), rng.standard_normal((128, 10)), rng.standard_normal((512, 10))
    a, b, bias = rng.standard_normal((64, 48)), rng.standard_normal((48, 256)), rng.standard_normal(256)
    vector = f"mg_float32x{Device['CPU'].target.lanes(4)}"
    cases = {  # name: (compute, expected, what the source shows)
        "bias, relu": (
            lambda t: (t(a) @ t(b) + t(bias)).relu(),
            np.maximum(a @ b + bias, 0),
            lambda src: f"*({vector}*)(data0+" in src,
        ),
        "bias update": (
            lambda t: t(bias) - 0.01 * t(b).sum(0),
            bias - 0.01 * b.sum(0),
            lambda src: f"*({vector}*)(data0+" in src,
        ),
        "weight update": (
            lambda t: t(w) - 0.01 * (t(h).relu().T @ t(g)),
            w - 0.01 * (np.maximum(h, 0).T @ g),
            lambda src: not re.search(r"= (columns|sums)\d+\[\d+\];", src),  # no lane read one at a time
        ),
        "cast to int": (lambda t: (t(a) @ t(b) * 100).cast(dtypes.int32), None, lambda src: True),
    }
    for name, (compute, expected, shows) in cases.items():
        results = []
        for flag in (1, 0):
            with Context(SIMD=flag):
                out = compute(lambda v: Tensor(v.astype(np.float32), device="CPU"))
                (item,) = create_schedule([out.lazydata])[-1:]
                source = generate(item.ast, C_LANGUAGE, Device["CPU"].target)[1]
                assert not flag or shows(source), (name, source)
                results.append(out.numpy())
        np.testing.assert_array_equal(results[0], results[1], err_msg=name)
        if expected is not None:
            np.testing.assert_allclose(results[0], expected, rtol=1e-4, atol=1e-4, err_msg=name)


def test_lane_loop_matches_the_unrolled_lanes():
    """LANE_LOOP: a row sum's lanes run as a loop over an array of running values (linearize._lane_loop);
    off, unrolled. Sums, maxes, softmax and a sum of exp2 (the kernel it is for) agree, NaN and inf too."""
    from minigrad.codegen.cstyle import C_LANGUAGE
    from minigrad.codegen.pipeline import generate
    from minigrad.engine.schedule import create_schedule

    x = np.random.default_rng(0).standard_normal((33, 1000)).astype(np.float32)
    x[3, 7], x[5, 2] = np.nan, np.inf
    results = []
    for flag in (1, 0):
        with Context(LANE_LOOP=flag):
            t = Tensor(x, device="CPU")
            (item,) = create_schedule([t.exp2().sum(1).lazydata])[-1:]
            source = generate(item.ast, C_LANGUAGE, Device["CPU"].target)[1]
            lanes = "for (int lane = 0;" in source or "mg_float32x" in source  # (vector lanes: SIMD)
            assert lanes == bool(flag), source
            results.append(
                [t.sum(1).numpy(), t.max(1).numpy(), t.softmax(-1).numpy(), t.exp2().sum(1).numpy()]
            )
    for a, b, want in zip(results[0], results[1], [x.sum(1), x.max(1), None, np.exp2(x).sum(1)]):
        np.testing.assert_array_equal(a, b)  # (the lanes combine in the same pairwise order)
        if want is not None:
            np.testing.assert_allclose(a, want, rtol=1e-4, atol=1e-3)


def test_stream_lanes_match_the_row_tiled_reduce():
    """STREAM_LANES: a reduce with nothing to reuse takes 2 vector registers of lanes on one row; off, one
    register of lanes on 2 rows (the CPU target's vector width: 8 floats with AVX2, 16 with AVX-512)."""
    from minigrad.codegen.pipeline import plan
    from minigrad.engine.schedule import create_schedule

    x = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    results = []
    for flag in (1, 0):
        with Context(STREAM_LANES=flag):
            t = Tensor(x, device="CPU")
            (item,) = create_schedule([t.sum(1).lazydata])[-1:]
            results.append(
                (plan(item.ast, Device["CPU"].target).upcast, t.sum(1).numpy(), t.softmax(-1).numpy())
            )
    lanes = Device["CPU"].target.lanes(4)
    assert results[0][0] == {1: 2 * lanes} and results[1][0] == {1: lanes, 0: 2}
    for a, b in zip(results[0][1:], results[1][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[0][1], x.sum(1), rtol=1e-5, atol=1e-4)


def test_every_codegen_switch_is_part_of_the_program_cache_key():
    """A switch read in codegen/ changes the generated source, so compiled programs must be cached per
    value (helpers.CODEGEN_SETTINGS): otherwise turning it off in a running process changes nothing."""
    from minigrad.helpers import CODEGEN_SETTINGS

    code = "".join(
        p.read_text() for p in (pathlib.Path(__file__).parent.parent / "minigrad" / "codegen").glob("*.py")
    )
    read = set(re.findall(r'getenv\("([A-Z_0-9]+)"', code)) - {"DEBUG"}
    assert read <= set(CODEGEN_SETTINGS), sorted(read - set(CODEGEN_SETTINGS))


THREADED_PROGRAM = (
    "import numpy as np\n"
    "from minigrad import Tensor\n"
    "a = np.random.default_rng(0).standard_normal((256, 256), dtype=np.float32)\n"
    "assert np.allclose((Tensor(a, device='CPU') @ Tensor(a, device='CPU')).numpy(), a @ a, atol=1e-3)\n"
)


def test_spinning_openmp_threads_do_not_crash_the_exit():
    """With OMP_WAIT_POLICY=ACTIVE the idle threads spin in libgomp; unloading the kernel libraries at exit
    once unloaded libgomp under them (a segfault every time)."""
    result = run({"OMP_WAIT_POLICY": "ACTIVE"}, THREADED_PROGRAM)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])


def test_minigrad_threads_goes_into_every_parallel_loop():
    from minigrad.runtime.ops_cpu import CpuDevice

    os.environ["MINIGRAD_THREADS"] = "3"
    try:
        language = CpuDevice().language
    finally:
        del os.environ["MINIGRAD_THREADS"]
    assert language.parallel_for == "#pragma omp parallel for schedule(guided) num_threads(3)"
    result = run({"MINIGRAD_THREADS": "1"}, THREADED_PROGRAM)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_static_schedule_gives_the_same_values():
    """MINIGRAD_SCHEDULE: parallel loops hand out blocks guided by default; static (OpenMP's default), the
    off switch, gives the same bits (each block writes its own outputs); a bad name is a clear error."""
    code = (
        "import hashlib, numpy as np\nfrom minigrad import Tensor\n"
        "a = np.random.default_rng(0).standard_normal((300, 200), dtype=np.float32)\n"
        "x, w = Tensor(a), Tensor(a[:, :120])\n"
        "outs = [(x.T @ w).relu(), x.softmax(-1), x.exp2().sum(0), (x @ x.T).max(1)]\n"
        "print(hashlib.sha256(b''.join(o.numpy().tobytes() for o in outs)).hexdigest())\n"
    )
    digests = []
    for schedule in ("guided", "static", "dynamic"):
        result = run({"MINIGRAD_SCHEDULE": schedule, "DISABLE_COMPILER_CACHE": "1"}, code)
        assert result.returncode == 0, result.stderr[-2000:]
        digests.append(result.stdout.split()[-1])
    assert len(set(digests)) == 1, digests
    result = run({"MINIGRAD_SCHEDULE": "fastest"}, "from minigrad import Device\nDevice['CPU']")
    assert result.returncode != 0 and "MINIGRAD_SCHEDULE='fastest'" in result.stderr, result.stderr[-2000:]


def test_only_big_kernels_open_a_parallel_region():
    pragma = "#pragma omp parallel for"
    assert pragma not in render_source(lambda t: t * 2, np.ones((8, 8), np.float32))
    assert pragma in render_source(lambda t: t * 2, np.ones((512, 512), np.float32))
    with Context(THREADS=0):
        assert pragma not in render_source(lambda t: t * 2, np.ones((512, 512), np.float32))


def test_bad_minigrad_threads_is_a_clear_error():
    code = "from minigrad import Device\nDevice['CPU']"
    result = run({"MINIGRAD_THREADS": "two"}, code)
    assert result.returncode != 0 and "MINIGRAD_THREADS='two'" in result.stderr, result.stderr[-2000:]


def test_openmp_started_by_torch_first_is_named_in_a_warning():
    """torch loads its own libgomp.so.1, spin-waiting; minigrad's kernels share it, so say so."""
    code = "import torch\nfrom minigrad import Device\nDevice['CPU']"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "OpenMP was started by another library" in result.stderr
        and "OMP_WAIT_POLICY=PASSIVE" in result.stderr
    )
    quiet = run({"OMP_WAIT_POLICY": "PASSIVE"}, code)
    assert "OpenMP was started" not in quiet.stderr, quiet.stderr


def test_passive_waiting_spins_a_little_first_whoever_chose_it():
    """minigrad's own PASSIVE and a user's (as the warning advises) both get a GOMP_SPINCOUNT unless it is
    set: PASSIVE alone sleeps at once, and a kernel with a parallel loop per chunk waits for a wake-up each
    time. The count is SPIN_SECONDS of this CPU's pause instructions (runtime/ops_cpu.py), a positive
    integer. ACTIVE and a user's GOMP_SPINCOUNT are left alone."""
    code = "import os\nfrom minigrad import Device\nDevice['CPU']\nprint(os.environ.get('GOMP_SPINCOUNT'))"
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    counted = "a count"
    cases = [
        ({}, counted),
        ({"OMP_WAIT_POLICY": "PASSIVE"}, counted),
        ({"OMP_WAIT_POLICY": "passive"}, counted),
    ]
    cases += [
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "None"),
        ({"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"}, "0"),
    ]
    for env, expected in cases:
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**base, **env}
        )
        assert result.returncode == 0, result.stderr[-2000:]
        value = result.stdout.split()[-1]
        if expected is counted:
            assert value.isdigit() and int(value) >= 1, (env, result.stdout)
        else:
            assert value == expected, (env, result.stdout)


def test_the_spin_count_is_the_spin_seconds_over_one_pause(monkeypatch):
    """spin_count divides SPIN_SECONDS by the time of one pause, timed with a library built without
    OpenMP: with the clock stubbed to say 10,000 pauses took 10 ms (1 us each), 50 us is 50 spins."""
    from minigrad.runtime import ops_cpu

    compiled = []
    ticks = iter([0.0, 0.01] * 3)
    monkeypatch.setattr(ops_cpu.time, "perf_counter", lambda: next(ticks))
    monkeypatch.setattr(ops_cpu, "SPIN_SECONDS", 50e-6)
    compiler = Device["CPU"].compiler
    flags = list(compiler.flags)
    count = ops_cpu.spin_count(lambda source: compiled.append(source) or compiler.compile_plain(source))
    assert count == "50" and compiled == [ops_cpu.PAUSE_PROBE]
    assert compiler.flags == flags  # (compile_plain drops -fopenmp for its build only)


def test_a_transposed_left_operand_is_copied_first_with_an_off_switch():
    """matmul copies a transposed left operand (its rows strided in memory) before the product, unless
    MATMUL_COPY=0; the values are the same either way, forward and backward."""
    from minigrad.engine.schedule import create_schedule

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((64, 48)).astype(np.float32) for _ in range(2))
    results = {}
    for flag in (1, 0):
        with Context(MATMUL_COPY=flag):
            x, w = Tensor(a, requires_grad=True), Tensor(b.T.copy(), requires_grad=True)
            out = x.T @ w.T
            kernels = [i for i in create_schedule([out.lazydata]) if i.ast.op.name == "STORE"]
            assert len(kernels) == (2 if flag else 1)
            (out * out).sum().backward()
            results[flag] = [out.numpy(), x.grad.numpy(), w.grad.numpy()]
    for copied, strided in zip(results[1], results[0]):
        np.testing.assert_allclose(copied, strided, rtol=1e-4, atol=1e-4)  # sums in other orders
    np.testing.assert_allclose(results[1][0], a.T @ b, rtol=1e-5, atol=1e-5)


def test_threads_share_the_loop_with_steps_enough_for_them():
    """4097x64 @ 64x64: the outermost loop walks the column tiles (2 to 8 of them, AVX-512 to SSE), the next
    one the hundreds of row tiles. With fewer than 4 steps a core, the threads share the rows (on 2 cores,
    one column tile a thread idled the one that woke late); SHARE_INNER=0 shares the outermost loop. The
    values are the same bit for bit, and numpy's."""
    from minigrad.codegen.pipeline import plan
    from minigrad.engine.schedule import create_schedule

    rng = np.random.default_rng(0)
    a, b = (
        rng.standard_normal((4097, 64)).astype(np.float32),
        rng.standard_normal((64, 64)).astype(np.float32),
    )
    target = dataclasses.replace(Device["CPU"].target, cores=4)  # fewer than 16 column tiles on any CPU
    results = []
    for flags in ({}, {"SHARE_INNER": 0}):
        with Context(**flags):
            x, w = Tensor(a, device="CPU"), Tensor(b, device="CPU")
            (item,) = [i for i in create_schedule([(x @ w).lazydata]) if i.ast.op.name == "STORE"]
            nest = plan(item.ast, target)
            loops = [d for d in nest.order if d not in nest.reduce_axes and nest.steps(d) > 1]
            assert len(loops) == 2 and nest.steps(loops[0]) < 16 <= nest.steps(loops[1]), nest
            assert nest.parallel_dims == {loops[1] if not flags else loops[0]}, (flags, nest)
            results.append((x @ w).numpy())
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], a @ b, rtol=1e-4, atol=1e-4)
