"""Downloading dataset files: urllib, a tqdm progress bar, SHA-256 checks, atomic writes.

Files are cached under ``$CONVNET_HOME`` (default ``~/.cache/convnet``).  A download
streams into a temporary file in the destination folder while hashing it; only when
the byte count and the SHA-256 (and MD5, if given) match is it fsynced and renamed
into place, so a half-downloaded or corrupted file is never seen under its real name.
A failed download leaves nothing behind.

Mirrors are base URLs (``https://``, ``http://``, ``file://``, or a local folder
path); a file's URL is the base joined with its name.  Each dataset has an environment
variable, e.g. ``CONVNET_MNIST_MIRROR``, holding a comma-separated list of mirrors that
replaces its defaults; a ``mirrors=`` argument overrides both.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

__all__ = ["DownloadError", "ChecksumError", "convnet_home", "file_sha256", "download_url",
           "fetch_file", "resolve_mirrors"]

_CHUNK = 1 << 16


class DownloadError(OSError):
    """A file could not be downloaded (network error, HTTP error, short read...)."""


class ChecksumError(DownloadError):
    """A downloaded file's SHA-256 (or MD5) differs from the recorded one."""


def convnet_home() -> Path:
    """``$CONVNET_HOME``, or ``~/.cache/convnet``."""
    return Path(os.environ.get("CONVNET_HOME") or "~/.cache/convnet").expanduser()


def file_sha256(path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _to_url(base: str) -> str:
    if urllib.parse.urlsplit(base).scheme in ("http", "https", "file", "ftp"):
        return base
    return Path(base).expanduser().resolve().as_uri()  # a local folder


def resolve_mirrors(defaults, env_var: str | None = None, mirrors=None) -> list[str]:
    """``mirrors`` if given, else the comma-separated ``$env_var`` if set, else defaults."""
    if mirrors is None and env_var and os.environ.get(env_var, "").strip():
        mirrors = os.environ[env_var]
    if mirrors is None:
        mirrors = defaults
    if isinstance(mirrors, (str, os.PathLike)):
        mirrors = [m for m in str(mirrors).split(",") if m.strip()]
    out = [_to_url(str(m).strip()) for m in mirrors]
    if not out:
        raise ValueError("no download mirrors given")
    return out


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _progress_bar(total, desc: str, enabled: bool):
    if enabled:
        try:
            from tqdm import tqdm
            return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=desc, leave=False, file=sys.stderr)
        except ImportError:  # tqdm is an optional dependency
            pass
    return contextlib.nullcontext(None)


def download_url(url: str, dest, sha256: str | None = None, md5: str | None = None,
                 progress: bool | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its SHA-256 (and MD5) if given.

    Args:
        url: http(s):// or file:// URL.
        dest: the final path; its folder is created.
        sha256: expected hex digest; a mismatch raises :class:`ChecksumError`.
        md5: optional expected MD5 hex digest, checked as well.
        progress: show a tqdm bar on stderr; default: when stderr is a terminal.
        timeout: socket timeout in seconds.

    Returns:
        ``dest``.  On any failure nothing is left at ``dest`` or in its folder.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if progress is None:
        progress = sys.stderr.isatty()
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            h256 = hashlib.sha256()
            hmd5 = hashlib.md5(usedforsecurity=False) if md5 else None
            request = urllib.request.Request(url, headers={"User-Agent": "convnet"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    received = 0
                    with _progress_bar(total, dest.name, progress) as bar:
                        while chunk := resp.read(_CHUNK):
                            out.write(chunk)
                            h256.update(chunk)
                            if hmd5 is not None:
                                hmd5.update(chunk)
                            received += len(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
            except urllib.error.HTTPError as exc:
                raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") \
                    from exc
            except (urllib.error.URLError, http.client.HTTPException, OSError,
                    ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise DownloadError(f"cannot download {url}: {reason!s} "
                                    f"({type(exc).__name__})") from exc
            if total is not None and received != total:
                raise DownloadError(f"cannot download {url}: got {received} of {total} "
                                    f"bytes")
            out.flush()
            os.fsync(out.fileno())
        got = h256.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise ChecksumError(f"{url}: SHA-256 mismatch: expected {sha256.lower()}, got "
                                f"{got}; the download was discarded")
        if md5 is not None and hmd5.hexdigest() != md5.lower():
            raise ChecksumError(f"{url}: MD5 mismatch: expected {md5.lower()}, got "
                                f"{hmd5.hexdigest()}; the download was discarded")
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return dest


def fetch_file(filename: str, folder, mirrors, sha256: str | None, md5: str | None = None,
               progress: bool | None = None) -> Path:
    """``folder/filename``, downloading it from the first mirror that works if absent.

    A mirror that fails or serves a file with the wrong checksum is skipped; if every
    mirror fails, the error names each attempt (a :class:`ChecksumError` if any mirror
    served a wrong file).
    """
    dest = Path(folder) / filename
    if dest.is_file():
        return dest
    errors, bad_sum = [], False
    for base in mirrors:
        url = base.rstrip("/") + "/" + urllib.parse.quote(filename)
        try:
            return download_url(url, dest, sha256=sha256, md5=md5, progress=progress)
        except ChecksumError as exc:
            bad_sum = True
            errors.append(str(exc))
        except DownloadError as exc:
            errors.append(str(exc))
    cls = ChecksumError if bad_sum else DownloadError
    raise cls(f"could not download {filename} into {dest.parent}:\n  " + "\n  ".join(errors))
