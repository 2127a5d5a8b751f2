"""`python -m minigrad`: what this machine offers minigrad. `--clear-cache` empties the kernel cache.

In: nothing (or --clear-cache). Out: a report on stdout: the version, each device with its compiler or the
reason it does not open here (no compiler, no OpenCL platform, no GPU), the default device, and where the
kernel cache is and how big.
"""

import argparse
import sys

import minigrad
from minigrad.device import Device, cache_dir


def cache_report(clear: bool) -> str:
    files = [p for p in cache_dir().glob("*") if p.is_file()] if cache_dir().is_dir() else []
    size, count = sum(p.stat().st_size for p in files), f"{len(files)} file{'' if len(files) == 1 else 's'}"
    if clear:
        for p in files:
            p.unlink(missing_ok=True)
        return f"kernel cache: {cache_dir()} cleared ({count}, {size / 2**20:.1f} MiB removed)"
    return f"kernel cache: {cache_dir()} ({count}, {size / 2**20:.1f} MiB)"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m minigrad", description=__doc__.splitlines()[0])
    parser.add_argument("--clear-cache", action="store_true", help="delete the compiled kernels on disk")
    args = parser.parse_args(argv)
    print(f"minigrad {minigrad.__version__}, Python {sys.version.split()[0]}")
    for name in Device.known:
        reason = Device.unavailable_reason(name)
        compiler = (
            "" if reason else Device[name].compiler.cache_key or "no compiler: runs kernel ASTs in numpy"
        )
        compiler = compiler if len(compiler) < 100 else compiler[:96] + " ..."  # (gcc's key lists CPU flags)
        print(f"  {name:7s} {'unavailable: ' + reason if reason else 'available, compiler: ' + compiler}")
    try:
        print(f"default device: {Device.DEFAULT}")
    except Exception as e:  # DEVICE names an unknown device, or none opens
        print(f"default device: none ({type(e).__name__}: {e})")
    print(cache_report(args.clear_cache))


if __name__ == "__main__":
    main(sys.argv[1:])
