"""`python -m minigrad`: what this machine offers minigrad; `python -m minigrad cache`: the kernel cache.

In: nothing, or `cache --info` / `cache --clear` (`--clear-cache` is the old spelling of the latter), or
`viz SCRIPT.py [-o OUT.html]` (minigrad/viz.py: a page that shows the graph, schedule and kernels of a run).
Out: a report on stdout: the version, each device with its compiler or the reason it does not open here
(no compiler, no OpenCL platform, no GPU), the default device, and where the kernel cache is and how big.
"""

import argparse
import sys

import minigrad
from minigrad import diskcache
from minigrad.device import Device
from minigrad.helpers import getenv


def cache_report(clear: bool) -> str:
    files = diskcache.entries()
    size, count = sum(p.stat().st_size for p in files), f"{len(files)} file{'' if len(files) == 1 else 's'}"
    if clear:
        for p in files:
            p.unlink(missing_ok=True)
        return f"kernel cache: {diskcache.cache_dir()} cleared ({count}, {size / 2**20:.1f} MiB removed)"
    limit = getenv("CACHE_MB", 1024)
    return f"kernel cache: {diskcache.cache_dir()} ({count}, {size / 2**20:.1f} MiB of at most {limit} MiB)"


def devices_report() -> None:
    print(f"minigrad {minigrad.__version__}, Python {sys.version.split()[0]}")
    for name in Device.known:
        reason = Device.unavailable_reason(name)
        compiler = (
            "" if reason else Device[name].compiler.cache_key or "no compiler: runs kernel ASTs in numpy"
        )
        compiler = compiler if len(compiler) < 100 else compiler[:96] + " ..."  # (gcc's key lists CPU flags)
        print(f"  {name:7s} {'unavailable: ' + reason if reason else 'available, compiler: ' + compiler}")
        for line in [] if reason else Device[name].report():
            print(f"          {line}")
    try:
        print(f"default device: {Device.DEFAULT}")
    except Exception as e:  # DEVICE names an unknown device, or none opens
        print(f"default device: none ({type(e).__name__}: {e})")


def main(argv: list[str]) -> None:
    if argv[:1] == ["viz"]:
        from minigrad import viz

        viz.main(argv[1:])
        return
    if argv[:1] == ["cache"]:
        parser = argparse.ArgumentParser(prog="python -m minigrad cache", description="the kernel cache")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--info", action="store_true", help="where it is and how big (the default)")
        action.add_argument("--clear", action="store_true", help="delete every cached kernel")
        print(cache_report(parser.parse_args(argv[1:]).clear))
        return
    parser = argparse.ArgumentParser(prog="python -m minigrad", description=__doc__.splitlines()[0])
    parser.add_argument("--clear-cache", action="store_true", help="delete the compiled kernels on disk")
    args = parser.parse_args(argv)
    devices_report()
    print(cache_report(args.clear_cache))


if __name__ == "__main__":
    main(sys.argv[1:])
