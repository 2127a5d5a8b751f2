"""Data parallelism over processes: MPI (through mpi4py) moves the bytes, minigrad the tensors.

In: a tensor on each rank (or each rank's gradients). Out: a tensor equal on every rank.

    mpiexec -n 2 python examples/train_ddp.py        # two processes, each a rank of one MPI world

Data-parallel training: every rank holds the same model and takes its share of each batch; after the
backward pass `sync_gradients` sums (or averages) the gradients over the ranks, so every rank's optimizer
takes the step one process would take on the whole batch.

How the bytes move: a tensor is realized on its device. Where the device's memory is this process's memory
(CPU, NUMPY: `Buffer.host_view`), MPI reads that buffer itself and writes the result straight into a new
device buffer; elsewhere (OPENCL, CUDA) the values go through a host array. float16 and bfloat16 travel as
float32 (MPI has no sum for them). `sync_gradients` packs the gradients into buckets of about `bucket_mb`
megabytes and starts a non-blocking all-reduce for a bucket as soon as its gradients are realized, so MPI
can move one bucket while the kernels of the next one run; afterwards each gradient is a view of its bucket.

Faults: before each collective the ranks exchange the shapes and dtypes they pass, and a mismatch raises
ValueError on every rank, naming both (MPI on buffers of different sizes would hang or corrupt memory).
After `init()` in a world of several ranks, an uncaught exception on any rank prints its traceback and
aborts the whole job (MPI_Abort): no rank waits forever for one that died.

Ranks on one machine split its cores: `init()` sets MINIGRAD_THREADS to cores // ranks there, unless it
is set. Without mpiexec (or without mpi4py) the world is one process: rank 0 of 1, and a collective is a
copy. GPUs (NCCL, CUDA-aware MPI) and launching on several machines: docs/distributed.md.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from minigrad.device import Buffer, host_cores
from minigrad.dtype import DType, dtypes
from minigrad.lazy import LazyNode
from minigrad.tensor import Tensor

OPS = ("sum", "mean", "max")
# set in each process by an MPI launcher (MPICH's Hydra, Open MPI, PMIx): mpiexec started this one
LAUNCHER_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


@dataclass(frozen=True)
class World:
    comm: Any  # mpi4py's COMM_WORLD, or None for a one-process world without mpi4py
    mpi: Any  # the mpi4py.MPI module, or None
    rank: int
    size: int


_world: World | None = None


def init() -> World:
    """Join the MPI world started by mpiexec (the first call; later calls return the same world)."""
    global _world
    if _world is not None:
        return _world
    try:
        from mpi4py import MPI
    except ImportError:
        launcher = [name for name in LAUNCHER_VARIABLES if name in os.environ]
        if launcher:
            raise RuntimeError(
                f"minigrad.distributed: started by an MPI launcher ({launcher[0]} is set) but mpi4py is not "
                "installed: pip install mpi4py (and an MPI, e.g. pip install mpich)"
            ) from None
        _world = World(None, None, 0, 1)
        return _world
    comm = MPI.COMM_WORLD
    _world = World(comm, MPI, comm.Get_rank(), comm.Get_size())
    if _world.size > 1:
        _share_cores(_world)
        _abort_on_uncaught_exception(_world)
    return _world


def rank() -> int:
    """This process's index in the world, 0 .. world_size() - 1."""
    return init().rank


def world_size() -> int:
    """How many processes take part."""
    return init().size


def barrier() -> None:
    """Wait until every rank has called barrier()."""
    world = init()
    if world.size > 1:
        world.comm.Barrier()


def all_reduce(t: Tensor, op: str = "sum") -> Tensor:
    """A new tensor holding `op` ("sum", "mean" or "max") of `t` over all ranks, equal on every rank; the
    same shape, dtype and device as `t`. Every rank must pass the same shape and dtype."""
    world = init()
    mpi_op = _reduction(op, t.dtype, world)
    _check_agree("all_reduce", {"the tensor": _describe(t)}, world)
    wire = _wire_dtype(t.dtype)
    landing = _Landing(t.numel(), wire, t.device)
    send = _host_values(_contiguous(t, wire).realize())
    if world.size == 1:
        np.copyto(landing.array, send)
    else:
        world.comm.Allreduce(send, landing.array, mpi_op)
    return _finish(landing.tensor().reshape(t.shape), op, world).cast(t.dtype)


def broadcast(t: Tensor, root: int = 0) -> Tensor:
    """A new tensor holding rank `root`'s `t` on every rank. The other ranks' `t` give only the shape and
    dtype (which must equal root's); their values are not read."""
    world = init()
    if not isinstance(root, int) or not 0 <= root < world.size:
        raise ValueError(f"broadcast: root {root!r} is not a rank of a world of {world.size}")
    _check_agree("broadcast", {"the tensor": _describe(t)}, world)
    wire = _wire_dtype(t.dtype)
    landing = _Landing(t.numel(), wire, t.device)
    if world.rank == root:
        np.copyto(landing.array, _host_values(_contiguous(t, wire).realize()))
    if world.size > 1:
        world.comm.Bcast(landing.array, root=root)
    return landing.tensor().reshape(t.shape).cast(t.dtype)


def sync_gradients(params: Iterable[Tensor], op: str = "mean", bucket_mb: float = 25.0) -> None:
    """All-reduce the `.grad` of every parameter that has one, in place: afterwards every rank's gradients
    are the `op` ("mean", "sum" or "max") over the ranks. "mean" is the whole batch's gradient when each
    rank's loss is the mean over an equal share of it; with unequal shares, divide each rank's summed loss
    by the whole batch's size and use "sum". Every rank must have gradients for the same parameters."""
    world = init()
    if bucket_mb <= 0:
        raise ValueError(f"sync_gradients: bucket_mb must be positive, got {bucket_mb}")
    params = list(params)
    grads = {i: p.grad for i, p in enumerate(params) if p.grad is not None}
    for g in grads.values():
        _reduction(op, g.dtype, world)
    _check_agree("sync_gradients", {f"parameter {i}": _describe(g) for i, g in grads.items()}, world)
    if world.size == 1:
        return  # the sum, mean or max over one rank is what it has
    # the last parameters' gradients first: the backward pass reaches them first
    buckets = _buckets([grads[i] for i in sorted(grads, reverse=True)], bucket_mb * 2**20)
    requests, landings = [], []
    for bucket in buckets:
        wire = _wire_dtype(bucket[0].dtype)
        values = [_contiguous(g, wire) for g in bucket]
        values[0].realize(*values[1:])  # the kernels these gradients need, and no others
        landing = _Landing(sum(g.numel() for g in bucket), wire, bucket[0].device)
        offset = 0
        for v in values:
            landing.array[offset : offset + v.numel()] = _host_values(v)
            offset += v.numel()
        requests.append(world.comm.Iallreduce(world.mpi.IN_PLACE, landing.array, _reduction(op, wire, world)))
        landings.append(landing)
        world.mpi.Request.Testall(requests)  # lets MPI move the buckets started so far
    world.mpi.Request.Waitall(requests)
    for bucket, landing in zip(buckets, landings):
        flat, offset = landing.tensor(), 0
        for g in bucket:
            reduced = _finish(flat[offset : offset + g.numel()].reshape(g.shape), op, world)
            g._replace_node(reduced.cast(g.dtype).lazydata)
            offset += g.numel()


# ---- helpers ----------------------------------------------------------------------------------------


class _Landing:
    """Where a collective writes `size` elements of `wire` dtype for `device`: a new device buffer's own
    memory where MPI can write it (host devices), else a host array that `tensor()` copies to the device."""

    def __init__(self, size: int, wire: DType, device: str):
        self.wire, self.device, self.buffer = wire, device, Buffer(device, size, wire)
        view = self.buffer.host_view()
        self.array = view if view is not None else np.empty(size, dtype=wire.np)
        if view is None:
            self.buffer = None  # (freed to the allocator's cache: the copy to the device takes it again)

    def tensor(self) -> Tensor:
        """The received elements as a flat tensor on the device."""
        if self.buffer is None:
            return Tensor(self.array, device=self.device, dtype=self.wire)
        size = self.buffer.size
        return Tensor._from_node(LazyNode.from_buffer(self.buffer, (size,), self.wire, self.device))


def _contiguous(t: Tensor, wire: DType) -> Tensor:
    """`t` as `wire` dtype in a buffer of its own, in order (a view, say a transposed gradient, is written
    in order by the kernel that computes it, not copied afterwards)."""
    return t.detach().cast(wire).contiguous()


def _host_values(t: Tensor) -> np.ndarray:
    """A realized contiguous `t`'s elements, flat: its device buffer itself where MPI can read it, else a
    host copy."""
    node = t.lazydata
    view = None if node.is_view or node.realized is None else node.realized.host_view()
    return view if view is not None else t.numpy().reshape(-1)


def _finish(total: Tensor, op: str, world: World) -> Tensor:
    """The result of `op` from what MPI computed: a mean divides the sum (lazily: the division fuses into
    the kernel that reads it)."""
    return total / world.size if op == "mean" else total


def _wire_dtype(dtype: DType) -> DType:
    """The dtype the bytes travel as: MPI has no sum for float16 or bfloat16, so those go as float32."""
    return dtypes.float32 if dtype in (dtypes.float16, dtypes.bfloat16) else dtype


def _reduction(op: str, dtype: DType, world: World) -> Any:
    """MPI's operation for `op` on `dtype` (None in a world without MPI); unknown ops and means of
    integers are errors (as torch.distributed: average integers yourself)."""
    if op not in OPS:
        raise ValueError(f"unknown reduction op {op!r}; expected one of {OPS}")
    if op == "mean" and not dtypes.is_float(dtype):
        raise TypeError(f"op='mean' needs floating-point tensors, got {dtype.name}")
    if world.mpi is None:
        return None
    if dtype == dtypes.bool:
        return world.mpi.LOR  # a sum or max of bools: True where any rank has True
    return world.mpi.MAX if op == "max" else world.mpi.SUM


def _describe(t: Tensor) -> str:
    return f"shape {tuple(t.shape)} {t.dtype.name}"


def _check_agree(what: str, mine: dict[str, str], world: World) -> None:
    """Raise on every rank when the ranks pass different things ({label: description}) to a collective."""
    if world.size == 1:
        return
    everyone = world.comm.allgather(mine)
    for other, theirs in enumerate(everyone):
        for label in sorted(everyone[0].keys() | theirs.keys()):
            ours, their = everyone[0].get(label, "no gradient"), theirs.get(label, "no gradient")
            if ours != their:
                raise ValueError(
                    f"{what}: the ranks disagree on {label}: rank 0 passes {ours}, rank {other} passes {their}"
                )


def _buckets(grads: list[Tensor], bucket_bytes: float) -> list[list[Tensor]]:
    """Consecutive gradients of one device and wire dtype, up to `bucket_bytes` a bucket (a larger one
    alone)."""
    buckets: list[list[Tensor]] = []
    size = 0
    for g in grads:
        nbytes = g.numel() * _wire_dtype(g.dtype).itemsize
        same_kind = buckets and (g.device, _wire_dtype(g.dtype)) == (
            buckets[-1][0].device,
            _wire_dtype(buckets[-1][0].dtype),
        )
        if same_kind and size + nbytes <= bucket_bytes:
            buckets[-1].append(g)
            size += nbytes
        else:
            buckets.append([g])
            size = nbytes
    return buckets


def _share_cores(world: World) -> None:
    """Ranks on one machine split its cores (MINIGRAD_THREADS per rank), unless the user chose a number."""
    local = world.comm.Split_type(world.mpi.COMM_TYPE_SHARED)
    here = local.Get_size()
    local.Free()
    if here > 1 and "MINIGRAD_THREADS" not in os.environ:
        os.environ["MINIGRAD_THREADS"] = str(max(1, host_cores() // here))
        if "minigrad.runtime.ops_cpu" in sys.modules:
            warnings.warn(
                "minigrad.distributed.init() ran after the CPU device opened: its kernels keep every core, "
                f"shared by {here} ranks here. Call init() first, or set MINIGRAD_THREADS.",
                stacklevel=3,
            )


def _abort_on_uncaught_exception(world: World) -> None:
    """An uncaught exception prints its traceback, then aborts every rank (MPI_Abort), instead of leaving
    the other ranks waiting in a collective for this one."""
    previous = sys.excepthook

    def abort(kind, value, traceback) -> None:
        sys.stderr.write(
            f"minigrad.distributed: rank {world.rank} of {world.size} raised {kind.__name__}: {value}; "
            "aborting every rank\n"
        )
        previous(kind, value, traceback)
        sys.stderr.flush()
        world.comm.Abort(1)

    sys.excepthook = abort
