"""The rank side of test_distributed.py: run under mpiexec, one check per call, each rank printing "ok".

    mpiexec -n 2 python test/mpi_worker.py collectives CPU,NUMPY
    mpiexec -n 3 python test/mpi_worker.py ddp CPU CHECKPOINT_DIR
    mpiexec -n 2 python test/mpi_worker.py raise

A failed check raises, which aborts every rank (minigrad.distributed's excepthook) with a non-zero exit.
"""

import pathlib
import sys

import numpy as np

from minigrad import Device, Tensor, distributed, dtypes, nn
from minigrad.nn import optim
from minigrad.nn.state import get_parameters, get_state_dict, load_state_dict, safe_load, safe_save


def check_collectives(devices: list[str]) -> None:
    """all_reduce (sum, mean, max) and broadcast: values, dtypes, views, empty tensors, and a new tensor."""
    rank, size = distributed.rank(), distributed.world_size()
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    for device in devices:
        x = Tensor(base * (rank + 1), device=device)
        total = size * (size + 1) / 2
        np.testing.assert_allclose(distributed.all_reduce(x).numpy(), base * total)
        np.testing.assert_allclose(distributed.all_reduce(x, "mean").numpy(), base * total / size, rtol=1e-6)
        np.testing.assert_allclose(distributed.all_reduce(x, op="max").numpy(), base * size)
        summed = distributed.all_reduce(x.T)  # a view: realized first
        assert summed.shape == (3, 2) and summed.device == device and summed.dtype == dtypes.float32
        np.testing.assert_allclose(summed.numpy(), base.T * total)

        ints = distributed.all_reduce(Tensor([rank, -rank, 7], dtype=dtypes.int32, device=device))
        assert ints.dtype == dtypes.int32 and ints.tolist() == [total - size, size - total, 7 * size]
        flags = distributed.all_reduce(Tensor([rank == 0, False], device=device), op="max")
        assert flags.dtype == dtypes.bool and flags.tolist() == [True, False]
        for dtype in (dtypes.float16, dtypes.bfloat16):
            if Device[device].supports_dtype(dtype):
                half = distributed.all_reduce(Tensor([0.5, rank], dtype=dtype, device=device))
                assert half.dtype == dtype and half.tolist() == [0.5 * size, total - size]
        assert distributed.all_reduce(Tensor.zeros(0, 3, device=device)).shape == (0, 3)

        source = Tensor(base + rank, device=device)
        got = distributed.broadcast(source, root=size - 1)
        source.assign(source * 0)  # the result is a tensor of its own
        np.testing.assert_array_equal(got.numpy(), base + size - 1)
    print(f"collectives ok rank {rank}", flush=True)


def check_mismatches() -> None:
    """Every rank raises, naming both shapes, when the ranks pass different shapes or gradients."""
    rank = distributed.rank()
    shape = (2, 3) if rank == 0 else (3, 2)
    try:
        distributed.all_reduce(Tensor.ones(*shape))
        raise AssertionError("all_reduce of (2, 3) against (3, 2) did not raise")
    except ValueError as e:
        assert "(2, 3)" in str(e) and "(3, 2)" in str(e), str(e)
    params = [Tensor.ones(2, requires_grad=True), Tensor.ones(3, requires_grad=True)]
    (params[0].sum() + (params[1].sum() if rank == 0 else 0)).backward()
    try:
        distributed.sync_gradients(params)
        raise AssertionError("sync_gradients with a gradient missing on one rank did not raise")
    except ValueError as e:
        assert "parameter 1" in str(e) and "no gradient" in str(e) and "(3,)" in str(e), str(e)
    print(f"mismatches ok rank {rank}", flush=True)


class Model:
    def __init__(self, device: str, seed: int = 0):
        rng = np.random.default_rng(seed)  # the same weights on every rank
        self.layers = [nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 4)]
        for layer in self.layers:
            layer.weight = Tensor(rng.normal(0, 0.3, layer.weight.shape), dtype=dtypes.float32, device=device)
            layer.bias = Tensor(rng.normal(0, 0.1, layer.bias.shape), dtype=dtypes.float32, device=device)

    def __call__(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = layer(x).relu()
        return self.layers[-1](x)


def train(device: str, make_opt, batch: int, steps: int, shard: bool) -> Model:
    """`steps` steps on batches of `batch` examples: this rank's share of each (and sync_gradients), or
    the whole batch in one process. Each rank's loss is its summed loss over the whole batch's size."""
    rank, size = distributed.rank(), distributed.world_size()
    model = Model(device)
    params = get_parameters(model)
    for p in params:  # as a DDP script starts: rank 0's weights everywhere (equal here already)
        p.assign(distributed.broadcast(p))
    opt = make_opt(params)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        x, y = rng.normal(size=(batch, 8)).astype(np.float32), rng.integers(0, 4, batch).astype(np.int32)
        if shard:
            x, y = np.array_split(x, size)[rank], np.array_split(y, size)[rank]
        with Tensor.train():
            opt.zero_grad()
            logits = model(Tensor(x, device=device))
            loss = logits.sparse_categorical_crossentropy(Tensor(y, device=device), reduction="sum") / batch
            loss.backward()
            if shard:
                distributed.sync_gradients(params, op="sum", bucket_mb=0.001)  # several buckets
            opt.step()
    return model


def check_ddp(device: str, checkpoint_dir: str) -> None:
    """5 steps of SGD and Adam over the ranks equal one process's steps on the whole batch (to 1e-5), with
    batches that do not split evenly; then rank 0 saves a checkpoint that every rank loads."""
    rank = distributed.rank()
    optimizers = {
        "SGD": lambda params: optim.SGD(params, lr=0.1, momentum=0.9),
        "Adam": lambda params: optim.Adam(params, lr=0.01),
    }
    for name, make_opt in optimizers.items():
        spread = train(device, make_opt, batch=10, steps=5, shard=True)
        whole = train(device, make_opt, batch=10, steps=5, shard=False)
        for key, value in get_state_dict(whole).items():
            got = get_state_dict(spread)[key].numpy()
            np.testing.assert_allclose(got, value.numpy(), atol=1e-5, err_msg=f"{name} {key}")
            # every rank ends with the same weights
            np.testing.assert_array_equal(distributed.broadcast(Tensor(got)).numpy(), got)
    path = pathlib.Path(checkpoint_dir) / "model.safetensors"
    if rank == 0:
        safe_save(get_state_dict(spread), path)
    distributed.barrier()  # the file is whole before any rank reads it
    fresh = Model(device, seed=5)
    load_state_dict(fresh, safe_load(path, device=device))
    for key, value in get_state_dict(spread).items():
        np.testing.assert_array_equal(get_state_dict(fresh)[key].numpy(), value.numpy())
    print(f"ddp ok rank {rank}", flush=True)


def check_raise() -> None:
    """Rank 1 fails while rank 0 waits in a collective: the job must end (MPI_Abort), not hang."""
    if distributed.rank() == 1:
        raise RuntimeError("rank one fails on purpose")
    distributed.all_reduce(Tensor.ones(3))
    print("rank 0 was not aborted", flush=True)


if __name__ == "__main__":
    distributed.init()
    check = sys.argv[1]
    if check == "collectives":
        check_collectives(sys.argv[2].split(","))
        check_mismatches()
    elif check == "ddp":
        check_ddp(sys.argv[2], sys.argv[3])
    elif check == "raise":
        check_raise()
    else:
        raise SystemExit(f"unknown check {check!r}")
