"""Atomic file writes: a crash never leaves a half-written file behind.

Every write goes to a temporary file in the destination's own directory (so the final
rename stays on one filesystem), is flushed and fsync'ed, then ``os.replace``d over the
destination, and finally the directory itself is fsync'ed so that the rename is durable.
A reader therefore sees either the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_path",
           "fsync_dir"]


def _default_mode() -> int:
    """The permission bits a plain ``open(path, "w")`` would give (mkstemp uses 0600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _make_temp(path: str) -> tuple[int, str, str]:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    with contextlib.suppress(OSError):
        os.chmod(tmp, _default_mode())
    return fd, tmp, directory


def fsync_dir(directory: str) -> None:
    """fsync a directory so that a rename inside it survives a power cut (POSIX only)."""
    if not hasattr(os, "O_DIRECTORY"):  # pragma: no cover - Windows has no directory fsync
        return
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on a clean exit it becomes ``path``.

    For writers that insist on a file name (e.g. matplotlib's ``savefig``)::

        with atomic_path("curves.png") as tmp:
            fig.savefig(tmp, format="png")

    The temporary file is fsync'ed, renamed over ``path`` and the directory fsync'ed.
    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    fd, tmp, directory = _make_temp(os.fspath(path))
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync dir)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """Serialise ``obj`` as strict JSON (no NaN/Infinity literals) and write it atomically.

    Non-finite floats become ``null``, so any JSON reader can parse the file.
    """
    atomic_write_text(path, json.dumps(_finite(obj), indent=indent, allow_nan=False) + "\n")


def _finite(obj):
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
