"""The on-disk cache of compiled kernels (and BEAM's choices): private, verified, bounded.

In: a key (a string naming everything the value depends on: source, compiler, flags, CPU features) and,
to store, the value's bytes. Out: the bytes stored under that key, or None when there are none that
verify. It lives in $XDG_CACHE_HOME/minigrad (default ~/.cache/minigrad).

Compiled kernels are code this process will run, so nothing is loaded that another user could have
written or that does not verify:
  - the directory is created 0700; one that another user owns or can write is not used: a warning, then
    a private temporary directory for this process;
  - an entry is loaded only from a regular file (no symlink) of ours that nobody else can write;
  - each entry starts with an HMAC-SHA256 of its key and bytes under a secret kept in the directory
    (`secret`, 0600), so a file planted or copied from another key fails and is compiled again;
  - entries are written to a temporary file in the directory and renamed into place (never seen half
    written; the temporary file is removed on any error, Ctrl-C included);
  - the directory holds at most CACHE_MB megabytes (default 1024): a process's first store, and every
    store after 1/64 of that, removes the least recently used entries beyond it (a load refreshes an
    entry's time).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import pathlib
import secrets
import stat
import tempfile
import warnings

from minigrad.helpers import getenv

SUFFIX = ".bin"
_unchecked = [1 << 62]  # bytes this process stored since it last evicted (the first store evicts)


def cache_dir() -> pathlib.Path:
    """The directory in use: the configured one when it is safe, else a private temporary one."""
    return _checked_dir(str(configured_dir()))


def configured_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "minigrad"


@functools.cache  # once per process and path: tests change XDG_CACHE_HOME
def _checked_dir(path: str) -> pathlib.Path:
    directory = pathlib.Path(path)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(directory)
        problem = _unsafe(info, want_dir=True)
        if problem is None and stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(directory, 0o700)  # ours, readable by others (an older minigrad made it 0755)
    except OSError as e:
        problem = f"cannot be created or read ({e.strerror})"
    if problem is None:
        return directory
    fallback = pathlib.Path(tempfile.mkdtemp(prefix="minigrad-cache-"))  # 0700, removed by nobody: small
    warnings.warn(
        f"minigrad: the kernel cache {directory} {problem}; not using it (this process caches in "
        f"{fallback}). Fix it with: chmod 700 {directory}, or set XDG_CACHE_HOME",
        stacklevel=2,
    )
    return fallback


def _unsafe(info: os.stat_result, want_dir: bool) -> str | None:
    """Why a directory (or a regular file) with this lstat must not be trusted, or None."""
    what = "directory" if want_dir else "regular file"
    if (stat.S_ISDIR if want_dir else stat.S_ISREG)(info.st_mode) is False:
        return f"is not a {what}"
    if info.st_uid != os.getuid():
        return f"is owned by user {info.st_uid}, not by this user ({os.getuid()})"
    if info.st_mode & 0o022:
        return f"can be written by other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None


@functools.cache  # read once per process and directory (a failure is not cached: it raises)
def _secret(directory: pathlib.Path) -> bytes:
    """The key of the entries' HMACs: 32 random bytes made once per directory, readable by this user only.
    Written whole to a temporary file and linked into place, so no process ever reads half of it."""
    path = directory / "secret"
    fd, tmp = tempfile.mkstemp(dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process made it first: use that one
    finally:
        os.unlink(tmp)
    data = _read_private(path)
    if data is None or len(data) != 32:
        raise OSError(f"the cache secret {path} is not a private 32-byte file")
    return data


def _read_private(path: pathlib.Path) -> bytes | None:
    """The bytes of a regular file of ours that nobody else can write, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if _unsafe(os.fstat(f.fileno()), want_dir=False) is not None:
            return None
        return f.read()


def _entry(key: str) -> tuple[pathlib.Path, bytes]:
    directory = cache_dir()
    return directory / f"{hashlib.sha256(key.encode()).hexdigest()}{SUFFIX}", _secret(directory)


def _mac(secret: bytes, key: str, value: bytes) -> bytes:
    return hmac.new(secret, key.encode() + b"\0" + value, hashlib.sha256).digest()


def load(key: str) -> bytes | None:
    """The value stored under `key`, if there is one that verifies."""
    try:
        path, secret = _entry(key)
        stored = _read_private(path)
    except OSError:
        return None
    if stored is None or not hmac.compare_digest(stored[:32], _mac(secret, key, stored[32:])):
        return None
    try:
        os.utime(path)  # recently used: evicted last
    except OSError:
        pass
    return stored[32:]


def store(key: str, value: bytes) -> None:
    """Keep `value` under `key`. Failing to (a read-only or full disk) only costs computing it again."""
    try:
        path, secret = _entry(key)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_mac(secret, key, value) + value)
        os.replace(tmp, path)
    except OSError:
        pass
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    limit = getenv("CACHE_MB", 1024) << 20
    _unchecked[0] += len(value)
    if _unchecked[0] > limit // 64:  # listing the directory on every store would cost more than compiling
        _unchecked[0] = 0
        evict(limit)


def entries() -> list[pathlib.Path]:
    directory = cache_dir()
    return [p for p in directory.glob(f"*{SUFFIX}") if p.is_file()] if directory.is_dir() else []


def evict(limit_bytes: int) -> int:
    """Remove the least recently used entries until the rest fit in `limit_bytes`; returns how many."""
    sized = []
    for path in entries():
        try:
            info = path.stat()
        except OSError:
            continue
        sized.append((info.st_mtime, info.st_size, path))
    total, removed = sum(size for _, size, _ in sized), 0
    for _, size, path in sorted(sized):
        if total <= limit_bytes:
            break
        path.unlink(missing_ok=True)
        total, removed = total - size, removed + 1
    return removed
