"""Nothing silently wrong, nothing crashes: threads, TinyJit aliasing, the kernel cache's safety, index
bounds, integers and bools, special values against torch, autograd pieces, safe_load's validation.

Each test is a regression test for a defect an outside audit found; the crashing ones run in a fresh
process (a fresh, empty kernel cache) so that a crash fails the test instead of the test run.
"""

import json
import math
import os
import pathlib
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from minigrad import Tensor, TinyJit, dtypes
from test.conftest import DEVICES
from test.test_ops import UNARY

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_python(code: str, cache: pathlib.Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


THREADS_PROGRAM = """
    import sys, threading
    import numpy as np
    from minigrad import Tensor, nn

    device, rounds, errors = sys.argv[1] if len(sys.argv) > 1 else None, 12, []
    start = threading.Barrier(6)

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            for r in range(rounds):
                start.wait()  # every thread compiles its new kernels at the same moment
                n = 3 + r  # the same shapes (the same kernels) in every thread, new ones every round
                a = rng.standard_normal((n, n)).astype(np.float32)
                x = Tensor(a, device=device)
                got = ((x @ x).relu() * (seed + 1) + x.exp2().sum(1, keepdim=True)).numpy()
                want = np.maximum(a @ a, 0) * (seed + 1) + np.exp2(a).sum(1, keepdims=True)
                if not np.allclose(got, want, rtol=1e-4, atol=1e-4):
                    errors.append(f"thread {seed} round {r}: wrong values")
                layer = nn.Linear(n, 4)
                layer.weight.to(device).realize()
                loss = layer(Tensor(a)).square().mean()
                loss.backward()
                assert np.isfinite(layer.weight.grad.numpy()).all()
        except Exception as e:
            errors.append(f"thread {seed}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(errors or f"ok: 6 threads x {rounds} rounds")
"""


@pytest.mark.parametrize("device", [d for d in DEVICES if d != "NUMPY"] + ["NUMPY"])
def test_threads_realize_at_once_without_crashing(device, tmp_path):
    program = THREADS_PROGRAM.replace("sys.argv[1] if len(sys.argv) > 1 else None", repr(device))
    result = run_python(program, tmp_path)
    assert result.returncode == 0, f"crashed with code {result.returncode}: {result.stderr[-2000:]}"
    assert result.stdout.strip() == "ok: 6 threads x 12 rounds", result.stdout[-2000:]


# ---- TinyJit: replays give exactly the eager values ------------------------------------------------


def test_jit_output_is_its_input():
    @TinyJit
    def increment(x):
        x.assign(x + 1)
        return x

    x = Tensor([0.0]).realize()
    assert [increment(x).item() for _ in range(5)] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert x.item() == 5.0


def test_jit_output_fed_back_as_input():
    double = TinyJit(lambda a: a * 2)
    y, seen = Tensor([1.0]).realize(), []
    for _ in range(5):
        y = double(y)
        seen.append(y.item())
    assert seen == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_jit_same_tensor_as_two_arguments_then_distinct_ones():
    add = TinyJit(lambda a, b: a + b)
    a = Tensor([1.0, 1.0]).realize()
    assert [add(a, a).tolist() for _ in range(3)] == [[2.0, 2.0]] * 3
    for _ in range(3):  # recorded with one buffer read twice: must not be replayed for two buffers
        assert add(Tensor([10.0, 10.0]), Tensor([100.0, 100.0])).tolist() == [110.0, 110.0]
    assert add(a, a).tolist() == [2.0, 2.0]


def test_jit_kept_outputs_keep_their_values():
    plus_one = TinyJit(lambda a: a + 1)
    outs = [plus_one(Tensor([float(i)])) for i in range(6)]
    assert [o.item() for o in outs] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_jit_in_place_update_of_two_aliased_arguments():
    @TinyJit
    def step(x, y):
        x.assign(x + y)
        return x * 1

    eager_x, jit_x = Tensor([1.0]).realize(), Tensor([1.0]).realize()
    for _ in range(4):
        eager = step.fn(eager_x, eager_x).item()
        assert step(jit_x, jit_x).item() == eager


# ---- the kernel cache ------------------------------------------------------------------------------

CACHE_PROGRAM = """
    from minigrad import Tensor
    print((Tensor([1.0, 2.0], device="CPU") * 3 - 1).tolist())
"""


@pytest.mark.skipif("CPU" not in DEVICES, reason="the CPU device (a C compiler) is not available")
def test_cache_directory_is_private(tmp_path):
    assert run_python(CACHE_PROGRAM, tmp_path).stdout.strip() == "[2.0, 5.0]"
    directory = tmp_path / "minigrad"
    assert directory.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o077 == 0 for p in directory.iterdir())
    assert not list(directory.glob("*.tmp")), "temporary files were left behind"


@pytest.mark.skipif("CPU" not in DEVICES, reason="the CPU device (a C compiler) is not available")
def test_tampered_or_foreign_cache_entries_are_never_loaded(tmp_path):
    run_python(CACHE_PROGRAM, tmp_path)
    entries = list((tmp_path / "minigrad").glob("*.bin"))
    assert entries
    for entry in entries:  # loading these as a library would crash the process
        entry.write_bytes(entry.read_bytes()[:32] + b"\x7fELF planted" + bytes(100))
    result = run_python(CACHE_PROGRAM, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "[2.0, 5.0]", result.stderr[-2000:]


def test_an_entry_stored_under_another_key_does_not_verify(tmp_path, monkeypatch):
    from minigrad import diskcache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    diskcache.store("kernel a", b"binary a")
    diskcache.store("kernel b", b"binary b")
    path_a, path_b = diskcache._entry("kernel a")[0], diskcache._entry("kernel b")[0]
    path_b.write_bytes(path_a.read_bytes())
    assert diskcache.load("kernel a") == b"binary a" and diskcache.load("kernel b") is None


@pytest.mark.skipif("CPU" not in DEVICES, reason="the CPU device (a C compiler) is not available")
def test_a_cache_directory_others_can_write_is_not_used(tmp_path):
    run_python(CACHE_PROGRAM, tmp_path)
    directory = tmp_path / "minigrad"
    for entry in directory.glob("*.bin"):
        entry.write_bytes(b"planted")
    directory.chmod(0o777)
    result = run_python(CACHE_PROGRAM, tmp_path)
    assert result.stdout.strip() == "[2.0, 5.0]", result.stderr[-2000:]
    assert "can be written by other users" in result.stderr
    assert all(p.read_bytes() == b"planted" for p in directory.glob("*.bin")), "it wrote into it"


def test_cache_is_capped_least_recently_used_first(tmp_path, monkeypatch):
    from minigrad import diskcache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for i in range(5):
        diskcache.store(f"key {i}", bytes(300_000))
        os.utime(diskcache._entry(f"key {i}")[0], (1000 + i, 1000 + i))
    assert diskcache.load("key 0") is not None  # used now: the newest
    assert diskcache.evict(1_000_000) == 2
    assert [diskcache.load(f"key {i}") is not None for i in range(5)] == [True, False, False, True, True]


def test_cache_command_reports_and_clears(tmp_path):
    result = run_python(CACHE_PROGRAM, tmp_path)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    info = subprocess.run(
        [sys.executable, "-m", "minigrad", "cache", "--info"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "kernel cache:" in info.stdout and "MiB of at most 1024 MiB" in info.stdout, result.stderr
    clear = subprocess.run(
        [sys.executable, "-m", "minigrad", "cache", "--clear"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "cleared" in clear.stdout
    assert not list((tmp_path / "minigrad").glob("*.bin"))


# ---- special values match torch --------------------------------------------------------------------

SPECIAL = [0.0, -0.0, math.inf, -math.inf, math.nan, 1.0, -1.0, 2.5, -2.5, 1e-40, -1e-40, 3e38, -3e38]


def _both(values: list[float], device: str) -> tuple[Tensor, torch.Tensor]:
    return Tensor(values, device=device), torch.tensor(values, dtype=torch.float32)


def _assert_matches(got: np.ndarray, want: np.ndarray, what: str) -> None:
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-30, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_on_special_values_match_torch(name, device):
    torch_fn, minigrad_fn, _, _ = UNARY[name]
    minigrad_fn = minigrad_fn or torch_fn
    x, tx = _both(SPECIAL, device)
    got, want = minigrad_fn(x).numpy(), torch_fn(tx).numpy()
    if name in ("sin", "cos", "tan"):  # argument reduction of 3e38 differs between libms: finite values agree
        got, want = got[:-2], want[:-2]
    if name.startswith("gelu"):  # torch's gelu overflows: inf for 3e38 and NaN for inf; ours gives x there
        keep = [i for i, v in enumerate(SPECIAL) if not abs(v) > 1e30]
        got, want = got[keep], want[keep]
        np.testing.assert_array_equal(minigrad_fn(x).numpy()[[2, 11]], np.float32([math.inf, 3e38]))
    _assert_matches(got, want, f"{name}({SPECIAL})")


BINARY_SPECIAL = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "maximum": lambda a, b: a.maximum(b),
    "minimum": lambda a, b: a.minimum(b),
    "lt": lambda a, b: a < b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
}


@pytest.mark.parametrize("name", sorted(BINARY_SPECIAL))
def test_binary_ops_on_special_values_match_torch(name, device):
    pairs = [(a, b) for a in SPECIAL for b in SPECIAL]
    a, ta = _both([p[0] for p in pairs], device)
    b, tb = _both([p[1] for p in pairs], device)
    fn = BINARY_SPECIAL[name]
    got, want = fn(a, b).numpy(), fn(ta, tb).numpy()
    if name == "maximum":  # and where(), which picks like maximum
        np.testing.assert_array_equal((a > b).where(a, b).numpy(), torch.where(ta > tb, ta, tb).numpy())
    bad = [
        (pairs[i], got[i], want[i])
        for i in range(len(pairs))
        if not (
            got[i] == want[i]
            or (np.isnan(got[i]) and np.isnan(want[i]))
            or np.isclose(got[i], want[i], rtol=2e-5, atol=1e-30)
        )
    ]
    assert not bad, f"{name}: (a, b), minigrad, torch: {bad[:8]}"


def test_scalar_powers_of_special_values_match_torch(device):
    x, tx = _both(SPECIAL, device)
    for exponent in (0, 1, 2, 3, -1, -2, 0.5, 2.5, -0.5):
        _assert_matches((x**exponent).numpy(), (tx**exponent).numpy(), f"x ** {exponent}")
    _assert_matches((2.0**x).numpy(), (2.0**tx).numpy(), "2 ** x")
    _assert_matches((x.sum() * 0).numpy(), (tx.sum() * 0).numpy(), "sum")


# ---- index bounds, integers, bools, Python interop, autograd pieces, devices ----------------------


def test_out_of_range_indices_raise(device):
    t = Tensor([1.0, 2.0, 3.0], device=device)
    for index in (5, -4, [0, 5], [[0], [-4]], np.array([3])):
        with pytest.raises(IndexError):
            t[index]
    with pytest.raises(IndexError, match="7 is out of range"):
        t[Tensor([0, 7], device=device)].numpy()
    with pytest.raises(IndexError):
        t.reshape(3, 1).gather(0, Tensor([[3]], device=device)).numpy()
    with pytest.raises(IndexError):
        Tensor([0, 3], device=device).one_hot(3)
    assert t[[-3, 2]].tolist() == [1.0, 3.0]


def test_bool_lists_and_arrays_index_by_mask(device):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = Tensor(x, device=device)
    mask = [True, False, True]
    np.testing.assert_equal(t[mask].numpy(), x[mask])
    np.testing.assert_equal(t[np.array(mask)].numpy(), x[np.array(mask)])
    np.testing.assert_equal(t[Tensor(mask, device=device)].numpy(), x[np.array(mask)])
    np.testing.assert_equal(t[:, [False, True, True, False]].numpy(), x[:, [False, True, True, False]])
    np.testing.assert_equal(t[x > 4].numpy(), x[x > 4])


def test_python_ints_are_int64_and_never_wrap(device):
    assert Tensor([2**40], device=device).tolist() == [2**40]
    assert Tensor([1, 2], device=device).dtype == dtypes.int64 and Tensor(3).dtype == dtypes.int64
    assert Tensor([1, 2], device=device, dtype=dtypes.int32).sum().dtype == dtypes.int64
    assert (Tensor([2**40], device=device) * 3).tolist() == [3 * 2**40]
    for value, dtype in ((2**40, dtypes.int32), (-256, dtypes.uint8), (256, dtypes.uint8), (2**70, None)):
        with pytest.raises(OverflowError, match="does not fit"):
            Tensor([value], device=device, dtype=dtype)


def test_bools_from_arbitrary_bytes_are_true(device):
    raw = np.array([0, 1, 2, 255], dtype=np.uint8).view(np.bool_)
    t = Tensor(raw, device=device)
    assert t.logical_not().tolist() == [True, False, False, False]
    assert t.cast(dtypes.int32).tolist() == [0, 1, 1, 1]
    assert (t == Tensor([False, True, True, True], device=device)).all().item()
    assert t.sum().item() == 3 and t.where(1, 0).tolist() == [0, 1, 1, 1]


def test_numpy_scalars_and_bad_inputs(device):
    t = Tensor([1.0, 2.0], device=device)
    for result in (np.float32(2) * t, np.float64(2) * t, np.int64(2) * t, t * np.float32(2)):
        assert isinstance(result, Tensor) and result.tolist() == [2.0, 4.0]
    with pytest.raises(ValueError, match="non-empty"):
        Tensor.stack()
    with pytest.raises(ValueError, match="non-empty"):
        Tensor.stack([])
    with pytest.raises(TypeError, match="expected Tensors"):
        t.cat(3)
    with pytest.raises(TypeError, match="expected Tensors"):
        Tensor.stack([t, [1.0, 2.0]])


def test_autograd_pieces_match_torch(device):
    x = Tensor([2.0, math.nan], device=device, requires_grad=True)
    y = x**0
    assert y.requires_grad and y.tolist() == [1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]
    z = Tensor([3.0], device=device, requires_grad=True)
    loss = (z * z).sum()
    loss.backward()
    loss.backward(retain_graph=True)  # accumulates again, as torch with retain_graph=True
    assert z.grad.tolist() == [12.0]
    w = Tensor([1.0, 2.0], device=device, requires_grad=True)
    tw = torch.tensor([1.0, 2.0], requires_grad=True)
    a, ta = Tensor([0.0, 0.0], device=device).realize(), torch.zeros(2)
    a.assign(w * 3)
    ta.copy_(tw * 3)
    (a * a).sum().backward()
    (ta * ta).sum().backward()
    assert w.grad.tolist() == tw.grad.tolist() == [18.0, 36.0]
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        Tensor([1.0], device=device, requires_grad=True).assign(w[:1] * 2)


def test_reads_before_an_assign_keep_the_old_value(device):
    a = Tensor([1.0], device=device).realize()
    b = a + 1
    a.assign(Tensor([10.0], device=device))
    assert b.tolist() == [2.0] and a.tolist() == [10.0]


def test_two_devices_in_one_op_name_both(device):
    other = "NUMPY" if device != "NUMPY" else next((d for d in DEVICES if d != "NUMPY"), None)
    if other is None:
        pytest.skip("only one device here")
    with pytest.raises(RuntimeError, match=f"{device}.*{other}|{other}.*{device}"):
        Tensor([1.0], device=device) + Tensor([1.0], device=other)


# ---- safe_load validates like the safetensors package ----------------------------------------------


def _safetensors_file(path: pathlib.Path, header, body: bytes = b"", length: int | None = None):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + body)
    return path


F32 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
BAD_FILES = {
    "header longer than the file": ({}, b"", 2**63),
    "negative offset": ({"x": {**F32, "data_offsets": [-4, 0]}}, bytes(4), None),
    "offset past the data": ({"x": {**F32, "shape": [2], "data_offsets": [0, 8]}}, bytes(4), None),
    "overlapping tensors": ({"x": F32, "y": F32}, bytes(4), None),
    "unknown dtype": ({"x": {**F32, "dtype": "Q7"}}, bytes(4), None),
    "shape and bytes disagree": ({"x": {**F32, "shape": [3]}}, bytes(4), None),
    "huge shape": ({"x": {**F32, "shape": [2**62, 2**62]}}, bytes(4), None),
    "nested too deep": (b"[" * 100_000 + b"]" * 100_000, b"", None),
    "missing field": ({"x": {"dtype": "F32", "shape": [1]}}, bytes(4), None),
    "not an object": (b"[1, 2]", b"", None),
    "not JSON": (b"{nope", b"", None),
    "unused bytes": ({"x": F32}, bytes(8), None),
}


@pytest.mark.parametrize("problem", sorted(BAD_FILES))
def test_safe_load_rejects_bad_files_with_a_clear_error(problem, tmp_path):
    from minigrad.nn.state import safe_load

    header, body, length = BAD_FILES[problem]
    path = _safetensors_file(tmp_path / "bad.safetensors", header, body, length)
    with pytest.raises(ValueError, match="bad.safetensors is not a valid safetensors file"):
        safe_load(path)


def test_safe_load_reads_half_precision_and_metadata_from_the_safetensors_package(tmp_path):
    from safetensors.torch import save_file

    from minigrad.nn.state import safe_load, safe_load_metadata, safe_save

    path = tmp_path / "model.safetensors"
    tensors = {
        "h": torch.tensor([0.5, -2.0], dtype=torch.float16),
        "b": torch.tensor([1.5, -2.25], dtype=torch.bfloat16),
        "i": torch.tensor([2**40]),
    }
    save_file(tensors, str(path), metadata={"format": "pt"})
    state = safe_load(path)
    assert state["h"].tolist() == [0.5, -2.0] and state["b"].tolist() == [1.5, -2.25]
    assert state["b"].dtype == dtypes.bfloat16 and state["i"].tolist() == [2**40]
    assert safe_load_metadata(path) == {"format": "pt"}
    safe_save({"w": state["b"]}, path, metadata={"step": "3"})
    assert safe_load_metadata(path) == {"step": "3"} and safe_load(path)["w"].tolist() == [1.5, -2.25]


# ---- every in-process cache is bounded ----------------------------------------------------------------

MEMORY_PROGRAM = """
    import numpy as np
    from minigrad import Device, Tensor, TinyJit
    from minigrad.engine import schedule

    def rss_mb():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    double = TinyJit(lambda x: x * 2)
    for n in range(1, 121):  # a new shape every step: new kernels, plans, buffers and recordings
        x = Tensor(np.ones((n, 64), np.float32), device="CPU")
        ((x * 3 + 1).relu().sum(1) / n).numpy()
        for _ in range(3):
            double(x)
        if n == 40:
            start = rss_mb()
    backend = Device["CPU"]
    loaded = sum(1 for line in open("/proc/self/maps") if "minigrad-kernels" in line)
    print(len(backend._programs), backend.allocator._cached_bytes, len(schedule._SCHEDULES),
          len(double.recordings), loaded, round(rss_mb() - start))
"""


@pytest.mark.skipif("CPU" not in DEVICES, reason="the CPU device (a C compiler) is not available")
def test_caches_are_bounded(tmp_path):
    result = run_python(
        MEMORY_PROGRAM,
        tmp_path,
        PROGRAM_CACHE_SIZE="32",
        ALLOC_CACHE_MB="1",
        SCHEDULE_CACHE_SIZE="8",
        JIT_CACHE_SIZE="4",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    programs, cached_bytes, plans, recordings, mapped, growth = map(int, result.stdout.split())
    assert programs <= 32 and cached_bytes <= 1 << 20 and plans <= 8 and recordings <= 4
    assert mapped <= 8 * (32 + 4 * 2), f"{mapped} mappings of kernel libraries: evicted ones stay loaded"
    assert growth < 30, f"grew {growth} MB over 80 new shapes"


LEAK_PROGRAM = """
    import subprocess
    from minigrad import Tensor
    print((Tensor([1.0, 2.0], device="CPU") * 5).tolist())
    real_run = subprocess.run

    def interrupted(*args, **kwargs):  # Ctrl-C while the C compiler runs
        real_run(*args, **kwargs)
        raise KeyboardInterrupt

    subprocess.run = interrupted
    try:
        (Tensor([1.0, 2.0], device="CPU") * 7 - 3).tolist()
    except KeyboardInterrupt:
        print("interrupted")
"""


@pytest.mark.skipif("CPU" not in DEVICES, reason="the CPU device (a C compiler) is not available")
def test_no_temporary_files_leak_also_on_ctrl_c(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = run_python(LEAK_PROGRAM, tmp_path / "cache", TMPDIR=str(scratch))
    assert result.stdout.split() == ["[5.0,", "10.0]", "interrupted"], result.stderr[-2000:]
    assert list(scratch.iterdir()) == [], "temporary files were left behind"
    assert not list((tmp_path / "cache").rglob("*.tmp"))
