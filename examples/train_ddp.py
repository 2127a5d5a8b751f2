"""Data-parallel training of the digits MLP over MPI processes, with minigrad.distributed.

    python examples/train_ddp.py                      # one process
    mpiexec -n 2 python examples/train_ddp.py         # two ranks, each taking half of every batch

Every rank builds the same model (rank 0's weights are broadcast), draws the same batch indices and takes
its share of them; after backward, sync_gradients sums the gradients over the ranks (each rank's loss is its
summed loss over the whole batch's size), so every rank takes the step one process takes on the whole
batch and they end with the same weights and accuracy. Only rank 0 shows a progress bar, prints and saves
(`--save PATH`): the other ranks load the checkpoint after a barrier. Prints the test accuracy and steps/s.
"""

import argparse
import time

import numpy as np
from tqdm import trange

from minigrad import Context, Device, Tensor, distributed
from minigrad.nn import optim
from minigrad.nn.state import get_parameters, get_state_dict, load_state_dict, safe_load, safe_save

from mlp_digits import MLP, load_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="default: minigrad's default device")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=64, help="examples per step, over all ranks")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--save", default=None, help="a checkpoint path, written by rank 0")
    args = parser.parse_args()

    distributed.init()  # first: ranks on one machine split its cores before the CPU device opens
    rank, size = distributed.rank(), distributed.world_size()
    device = args.device or Device.DEFAULT
    Tensor.manual_seed(0)
    x_train, y_train, x_test, y_test = load_data()
    with Context(DEVICE=device):
        model = MLP(args.hidden)
    params = get_parameters(model)
    for p in params:
        p.assign(distributed.broadcast(p))  # every rank starts from rank 0's weights
    opt = optim.Adam(params, lr=args.lr)

    rng = np.random.default_rng(0)  # the same batches on every rank
    bar = trange(1, args.steps + 1, desc=f"train_ddp x{size}", mininterval=0.5, disable=rank != 0)
    for step in bar:
        batch = np.array_split(rng.integers(0, len(x_train), args.batch), size)[rank]
        with Tensor.train():
            opt.zero_grad()
            logits = model(Tensor(x_train[batch], device=device))
            loss = logits.sparse_categorical_crossentropy(
                Tensor(y_train[batch], device=device), reduction="sum"
            )
            (loss / args.batch).backward()
            distributed.sync_gradients(params, op="sum")
            opt.step()
        if step == 1:  # the first step compiles the kernels: the rate counts the steps after it
            Tensor.realize(*params)
            compiled = time.perf_counter()
        elif step % 50 == 0 or step == args.steps:
            rate = (step - 1) / (time.perf_counter() - compiled)
            bar.set_postfix(
                loss=f"{distributed.all_reduce(loss).item() / args.batch:.4f}", steps_per_s=f"{rate:.1f}"
            )
    Tensor.realize(*params)
    rate = (args.steps - 1) / (time.perf_counter() - compiled) if args.steps > 1 else 0.0

    if args.save:
        if rank == 0:
            safe_save(get_state_dict(model), args.save)
        distributed.barrier()  # the file is whole before any rank reads it
        load_state_dict(model, safe_load(args.save, device=device))
    if rank == 0:
        accuracy = (model(Tensor(x_test, device=device)).argmax(-1).numpy() == y_test).mean()
        print(
            f"test accuracy {accuracy * 100:.2f}% on {len(y_test)} held-out digits "
            f"({size} rank{'s' if size > 1 else ''} on {device}, {rate:.1f} steps/s after the first)"
        )


if __name__ == "__main__":
    main()
