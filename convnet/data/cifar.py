"""CIFAR-10 from its *binary* distribution (never the pickled Python batches).

``cifar-10-binary.tar.gz`` holds ``cifar-10-batches-bin/data_batch_{1..5}.bin`` and
``test_batch.bin``: records of 1 label byte followed by 3,072 pixel bytes, the red,
green and blue 32x32 planes in turn (CHW), converted here to HWC.  The archive's
SHA-256 is the one in TensorFlow Datasets' ``url_checksums/cifar10.txt``; the MD5 is
the one torchvision and the dataset's page give.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np

from .dataset import ArrayDataset, DatasetFormatError, data_root
from .download import fetch_file, resolve_mirrors

__all__ = ["CIFAR10", "read_cifar_binary"]

RECORD = 1 + 3 * 32 * 32


def read_cifar_binary(path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 and labels (N,) uint8 from one ``.bin`` batch file."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise DatasetFormatError(f"{path}: {raw.size} bytes is not a whole, non-zero number "
                                 f"of {RECORD}-byte CIFAR-10 records")
    records = raw.reshape(-1, RECORD)  # (N, 3073)
    labels = records[:, 0]
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DatasetFormatError(f"{path}: record {bad} has label {labels[bad]}, expected 0..9")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 32, 32, 3)
    return np.ascontiguousarray(images), labels.copy()


class CIFAR10(ArrayDataset):
    """CIFAR-10: 50,000 training and 10,000 test colour images, 32x32x3, 10 classes.

    Args:
        root: folder holding ``cifar-10-batches-bin/`` or the archive (default
            ``$CONVNET_HOME/data/cifar10``).  The archive is downloaded there if
            needed and the batch files extracted next to it.
        train: the training split (batches 1-5) or the test batch.
        download: download the archive when neither it nor the batches are present.
        mirrors: base URLs; default ``$CONVNET_CIFAR10_MIRROR`` or the Toronto server.
        size: optional ``(H, W)`` or int to resize to (bilinear).
        progress: show a download progress bar (default: when stderr is a terminal).

    Example:
        >>> test = CIFAR10(train=False)
        >>> test.images.shape, test.classes[3]
        ((10000, 32, 32, 3), 'cat')
    """

    name = "cifar10"
    mirror_env = "CONVNET_CIFAR10_MIRROR"
    mirrors = ("https://www.cs.toronto.edu/~kriz/",)
    archive = "cifar-10-binary.tar.gz"
    folder = "cifar-10-batches-bin"
    # file name: (sha256, md5, size in bytes)
    resources = {archive: ("c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                           "c32a1d4ab5d03f1284b67883e8d87530", 170052171)}
    train_files = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
    test_files = ("test_batch.bin",)
    class_names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]

    def __init__(self, root=None, train: bool = True, download: bool = True, mirrors=None,
                 size=None, progress: bool | None = None):
        self.root = data_root(root, self.name)
        self.train = bool(train)
        folder = self.root / self.folder
        wanted = self.train_files if self.train else self.test_files
        if not all((folder / f).is_file() for f in wanted):
            archive = self.root / self.archive
            if not archive.is_file():
                if not download:
                    raise FileNotFoundError(f"neither {folder} nor {archive} exists (and "
                                            f"download=False)")
                sha256, md5, _ = self.resources[self.archive]
                urls = resolve_mirrors(self.mirrors, self.mirror_env, mirrors)
                fetch_file(self.archive, self.root, urls, sha256, md5, progress)
            self._extract(archive, folder)
        parts = [read_cifar_binary(folder / f) for f in wanted]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        super().__init__(images, labels, classes=self._class_names(folder), size=size)

    def _class_names(self, folder: Path) -> list[str]:
        meta = folder / "batches.meta.txt"
        if meta.is_file():
            names = [ln.strip() for ln in meta.read_text(errors="replace").splitlines()]
            names = [n for n in names if n]
            if len(names) == 10:
                return names
        return list(self.class_names)

    def _extract(self, archive: Path, folder: Path) -> None:
        """Copy the batch files out of the archive, each written atomically.  Only the
        known member names are read, so the archive cannot write anywhere else."""
        names = (*self.train_files, *self.test_files, "batches.meta.txt")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = {m.name.lstrip("./"): m for m in tar.getmembers()}
                for name in names:
                    member = members.get(f"{self.folder}/{name}")
                    if member is None or not member.isfile():
                        if name.endswith(".txt"):
                            continue
                        raise DatasetFormatError(f"{archive}: no file {self.folder}/{name} in "
                                                 f"the archive")
                    src = tar.extractfile(member)
                    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
                    try:
                        with os.fdopen(fd, "wb") as out:
                            while chunk := src.read(1 << 20):
                                out.write(chunk)
                        os.replace(tmp, folder / name)
                    except BaseException:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(tmp)
                        raise
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise DatasetFormatError(f"{archive}: not a readable tar.gz archive ({exc})") \
                from exc
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) or exc.filename:
                raise
            raise DatasetFormatError(f"{archive}: not a readable tar.gz archive ({exc})") \
                from exc
