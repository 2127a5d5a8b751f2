"""minigrad.distributed: a one-process world here, and several ranks under mpiexec (test/mpi_worker.py).

The mpiexec runs need mpi4py and an MPI with its launcher (the test extras bring mpi4py and MPICH's
wheel, whose mpiexec lands beside this Python); Open MPI works too (it is told it may run as root and
oversubscribe the cores).
"""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import mpi4py  # noqa: F401 (the test extras install it: a missing MPI fails here rather than skipping)
import numpy as np
import pytest

from minigrad import Tensor, distributed, dtypes
from test import conftest

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKER = ROOT / "test" / "mpi_worker.py"
EXAMPLE = ROOT / "examples" / "train_ddp.py"


def mpiexec(n: int, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python args...` as `n` ranks; the launcher is the one beside this Python, else on PATH."""
    beside = pathlib.Path(sys.executable).parent / "mpiexec"
    launcher = str(beside) if beside.exists() else shutil.which("mpiexec")
    assert launcher, "no mpiexec: pip install mpich (or install an MPI)"
    version = subprocess.run([launcher, "--version"], check=False, capture_output=True, text=True).stdout
    extra = ["--oversubscribe"] if "Open MPI" in version else []
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command = [launcher, "-n", str(n), *extra, sys.executable, *args]
    return subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def assert_every_rank(result: subprocess.CompletedProcess, n: int, word: str) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    for rank in range(n):
        assert f"{word} ok rank {rank}" in result.stdout, result.stdout + result.stderr


# ---- one process: what a script sees without mpiexec -------------------------------------------------


def test_without_mpiexec_the_world_is_one_process():
    assert distributed.init() is distributed.init()  # idempotent
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    distributed.barrier()


def test_one_process_collectives_return_new_equal_tensors(device):
    x = Tensor([[1.0, -2.0], [3.0, 4.0]], device=device)
    for op in ("sum", "mean", "max"):
        out = distributed.all_reduce(x, op)
        assert out is not x and out.shape == x.shape and out.device == device
        np.testing.assert_array_equal(out.numpy(), x.numpy())
    copied = distributed.broadcast(x)
    x.assign(x * 0)  # the result does not share x's memory
    assert copied.tolist() == [[1.0, -2.0], [3.0, 4.0]]


def test_one_process_sync_gradients_leaves_them_as_they_are(device):
    w = Tensor([1.0, 2.0], device=device, requires_grad=True)
    (w * w).sum().backward()
    distributed.sync_gradients([w, Tensor([3.0], requires_grad=True)])  # one without a gradient
    assert w.grad.tolist() == [2.0, 4.0]


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown reduction op 'avg'"):
        distributed.all_reduce(Tensor([1.0]), op="avg")
    with pytest.raises(TypeError, match="op='mean' needs floating-point tensors, got int32"):
        distributed.all_reduce(Tensor([1], dtype=dtypes.int32), op="mean")
    with pytest.raises(ValueError, match="root 1 is not a rank of a world of 1"):
        distributed.broadcast(Tensor([1.0]), root=1)
    with pytest.raises(ValueError, match="bucket_mb must be positive"):
        distributed.sync_gradients([], bucket_mb=0)


def test_bucketing_groups_by_device_and_dtype_up_to_the_size():
    grads = [Tensor.ones(256), Tensor.ones(256), Tensor.ones(64, dtype=dtypes.float16), Tensor.ones(512)]
    sizes = [[g.numel() for g in bucket] for bucket in distributed._buckets(grads, 2048)]
    assert sizes == [[256, 256], [64], [512]]  # float16 travels as float32: its own kind, not a new dtype


# ---- several ranks under mpiexec --------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_collectives_values_and_mismatches_under_mpiexec(n):
    result = mpiexec(n, str(WORKER), "collectives", ",".join(conftest.DEVICES))
    assert_every_rank(result, n, "collectives")
    assert_every_rank(result, n, "mismatches")


@pytest.mark.parametrize("n", [2, 3])
def test_data_parallel_sgd_and_adam_equal_whole_batch_training(n, tmp_path):
    result = mpiexec(n, str(WORKER), "ddp", "CPU", str(tmp_path))
    assert_every_rank(result, n, "ddp")


def test_a_rank_that_raises_aborts_every_rank_with_its_error():
    start = time.perf_counter()
    result = mpiexec(2, str(WORKER), "raise", timeout=120)
    assert result.returncode != 0 and time.perf_counter() - start < 120
    assert "rank 1 of 2 raised RuntimeError: rank one fails on purpose" in result.stderr, result.stderr
    assert "rank 0 was not aborted" not in result.stdout


def test_train_ddp_example_reaches_one_process_accuracy():
    args = [str(EXAMPLE), "--steps", "150"]
    one = subprocess.run(
        [sys.executable, *args], check=False, capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    two = mpiexec(2, *args)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    accuracy = [float(r.stdout.split("test accuracy ")[1].split("%")[0]) for r in (one, two)]
    assert accuracy[0] > 85 and abs(accuracy[0] - accuracy[1]) <= 0.6, accuracy  # one digit in 360 may differ
    assert two.stdout.count("test accuracy") == 1  # printed by rank 0 only


def test_host_buffers_go_to_mpi_without_a_copy():
    """CPU and NUMPY buffers are host memory: MPI reads the tensor's own buffer and writes the new one's."""
    for device in ("CPU", "NUMPY"):
        t = Tensor([1.0, 2.0, 3.0], device=device).realize()
        own = t.lazydata.realized.host_view()
        assert np.shares_memory(distributed._host_values(t), own)
        landing = distributed._Landing(3, dtypes.float32, device)
        assert np.shares_memory(landing.array, landing.tensor().lazydata.realized.host_view())
    landing = distributed._Landing(3, dtypes.float32, "NUMPY")
    landing.array[:] = [4.0, 5.0, 6.0]  # what MPI would write lands in the result tensor
    assert landing.tensor().tolist() == [4.0, 5.0, 6.0]
