"""Data-parallel scaling: steps/s of examples/train_ddp.py at 1 and N ranks, with the cores split.

    python extra/bench_ddp.py [--ranks 2] [--repeats 3] [--hidden 2048] [--batch 512]

Runs, interleaved `--repeats` times: one rank with one thread per kernel, one rank with every core, and
N ranks (minigrad.distributed.init gives each cores // N threads). The whole batch is the same in every
run, so N ranks each compute 1/N of it. Prints the median steps/s of each and two ratios:
  scaling efficiency = (N ranks / one single-threaded rank) / N   (each rank has the same cores)
  versus one process = N ranks / one rank on every core             (the same machine, used two ways)
"""

import argparse
import os
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def steps_per_s(ranks: int, threads: int | None, args) -> float:
    launcher = pathlib.Path(sys.executable).parent / "mpiexec"
    env = dict(os.environ)
    env.pop("MINIGRAD_THREADS", None)
    if threads:
        env["MINIGRAD_THREADS"] = str(threads)
    command = [str(launcher) if launcher.exists() else "mpiexec", "-n", str(ranks), sys.executable]
    command += [str(ROOT / "examples" / "train_ddp.py"), "--steps", str(args.steps)]
    command += ["--hidden", str(args.hidden), "--batch", str(args.batch)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return float(out.split("steps/s")[0].rsplit(",", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    runs = {
        "1 rank, 1 thread": (1, 1),
        "1 rank, every core": (1, None),
        f"{args.ranks} ranks": (args.ranks, None),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, (ranks, threads) in runs.items():
            rates[name].append(steps_per_s(ranks, threads, args))
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"MLP 64-{args.hidden}-{args.hidden}-10, batch {args.batch}, Adam; median of {args.repeats} runs")
    for name, value in median.items():
        print(f"  {name:<20} {value:6.2f} steps/s   (runs: {', '.join(f'{v:.2f}' for v in rates[name])})")
    single, whole, spread = median.values()
    print(
        f"scaling efficiency {spread / single / args.ranks:.2f}; {args.ranks} ranks / one process {spread / whole:.2f}"
    )


if __name__ == "__main__":
    main()
