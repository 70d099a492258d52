"""Dataset base classes: in-memory arrays (and .npz files), subsets and random splits.

Every dataset here is map-style: ``len(ds)`` and ``ds[i] -> (image, label)``, with
images NHWC float32 (one image is (H, W, C)) and labels int64.  Datasets that hold
their data in memory also expose ``.images`` (N, H, W, C) and ``.labels`` (N,), and
``get_batch(indices)`` gathers a whole batch with one fancy-indexing operation, which
is what ``DataLoader`` uses.
"""

from __future__ import annotations

import numbers
import os
import zipfile
from pathlib import Path

import numpy as np

from .transforms import resize_images

__all__ = ["DatasetFormatError", "Dataset", "ArrayDataset", "Subset", "random_split"]


class DatasetFormatError(ValueError):
    """A dataset file is malformed (bad header, truncated, wrong sizes...); the message
    names the file."""


class Dataset:
    """Base class: subclasses define ``__len__`` and ``__getitem__(i) -> (image, label)``
    and set ``classes`` (the class names, index = label)."""

    classes: list[str] = []

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index):
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample image shape (H, W, C), without the batch axis."""
        return tuple(np.shape(self[0][0]))

    def get_batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Images (B, H, W, C) and labels (B,) for an array of indices."""
        items = [self[int(i)] for i in np.asarray(indices).ravel()]
        if not items:
            return (np.zeros((0, *self.input_shape), np.float32), np.zeros(0, np.int64))
        return (np.stack([np.asarray(x) for x, _ in items]),
                np.asarray([y for _, y in items], dtype=np.int64))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n={len(self)}, input_shape={self.input_shape}, "
                f"num_classes={self.num_classes})")


def _as_images(images, dtype, owner: str) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype.kind not in "uifb":
        raise TypeError(f"{owner}: images must be a numeric array, got dtype {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]  # (N, H, W) -> (N, H, W, 1)
    if images.ndim != 4:
        raise ValueError(f"{owner}: images must have shape (N, H, W, C) or (N, H, W), got "
                         f"shape {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(dtype) / dtype.type(255)  # bytes 0..255 -> [0, 1]
    return images.astype(dtype, copy=False)


def _as_labels(labels, n: int, owner: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{owner}: labels must have shape ({n},) to match the images, got "
                         f"shape {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise ValueError(f"{owner}: labels must be whole numbers, got dtype "
                             f"{labels.dtype} with non-integer values")
    elif labels.dtype.kind not in "ui" and n:
        raise TypeError(f"{owner}: labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if n and labels.min() < 0:
        raise ValueError(f"{owner}: labels must be >= 0, got {labels.min()}")
    return labels


class ArrayDataset(Dataset):
    """A dataset held in two arrays.

    Args:
        images: (N, H, W, C) or (N, H, W) array.  uint8 images are scaled to [0, 1]
            (divided by 255); float images are kept as they are.
        labels: (N,) integer class indices.
        classes: class names, or their number; default ``"0" .. str(max label)``.
        size: optional ``(H, W)`` or int to resize every image to (bilinear).
        dtype: image dtype (float32 by default).

    Example:
        >>> ds = ArrayDataset(np.zeros((10, 8, 8)), np.arange(10) % 2)
        >>> ds.input_shape, ds.num_classes
        ((8, 8, 1), 2)
    """

    def __init__(self, images, labels, classes=None, size=None, dtype=np.float32):
        owner = type(self).__name__
        dtype = np.dtype(dtype)
        images = _as_images(images, dtype, owner)
        labels = _as_labels(labels, images.shape[0], owner)
        if size is not None:
            images = resize_images(images, size)
        if classes is None:
            classes = int(labels.max()) + 1 if labels.size else 0
        if isinstance(classes, numbers.Integral):
            classes = [str(i) for i in range(int(classes))]
        classes = [str(c) for c in classes]
        if labels.size and labels.max() >= len(classes):
            raise ValueError(f"{owner}: label {labels.max()} is out of range for "
                             f"{len(classes)} classes")
        self.images, self.labels, self.classes = images, labels, classes

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def get_batch(self, indices):
        return self.images[indices], self.labels[indices]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    @classmethod
    def from_npz(cls, path, train: bool = True, images_key: str | None = None,
                 labels_key: str | None = None, classes=None, size=None) -> ArrayDataset:
        """Load an ``.npz`` file (``np.load(..., allow_pickle=False)``).

        Keys: ``x_train``/``y_train`` and ``x_test``/``y_test`` pick the split by
        ``train``; otherwise ``images``/``labels`` or ``x``/``y`` are the whole dataset
        (the same for both splits).  An optional ``classes`` array holds the names.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"npz dataset {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as f:
                keys = set(f.files)
                split = "train" if train else "test"
                if images_key is None or labels_key is None:
                    for xk, yk in ((f"x_{split}", f"y_{split}"), ("images", "labels"),
                                   ("x", "y")):
                        if xk in keys and yk in keys:
                            images_key, labels_key = images_key or xk, labels_key or yk
                            break
                    else:
                        raise DatasetFormatError(
                            f"{path}: expected arrays x_{split}/y_{split}, images/labels or "
                            f"x/y, got keys {sorted(keys)}")
                for k in (images_key, labels_key):
                    if k not in keys:
                        raise DatasetFormatError(f"{path}: no array {k!r}; the file has "
                                                 f"{sorted(keys)}")
                images, labels = f[images_key], f[labels_key]
                if classes is None and "classes" in keys:
                    classes = [str(c) for c in f["classes"].tolist()]
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DatasetFormatError(f"{path}: not a readable .npz file ({exc})") from exc
        except ValueError as exc:
            if isinstance(exc, DatasetFormatError):
                raise
            raise DatasetFormatError(f"{path}: cannot load without pickle ({exc})") from exc
        try:
            return cls(images, labels, classes=classes, size=size)
        except (ValueError, TypeError) as exc:
            raise DatasetFormatError(f"{path}: {exc}") from exc


class Subset(Dataset):
    """The items of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices):
        indices = np.asarray(indices, dtype=np.int64).ravel()
        n = len(dataset)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"Subset: indices must lie in [0, {n}), got "
                             f"[{indices.min()}, {indices.max()}]")
        self.dataset, self.indices = dataset, indices % max(n, 1)
        self.classes = dataset.classes

    def __len__(self) -> int:
        return self.indices.shape[0]

    def __getitem__(self, index):
        if isinstance(index, (numbers.Integral, np.integer)):
            return self.dataset[int(self.indices[index])]
        return self.get_batch(np.arange(len(self))[index])

    def get_batch(self, indices):
        base = self.indices[np.asarray(indices, dtype=np.int64)]
        getter = getattr(self.dataset, "get_batch", None)
        return getter(base) if getter is not None else Dataset.get_batch(self.dataset, base)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.dataset.input_shape

    @property
    def images(self) -> np.ndarray:
        return self.get_batch(np.arange(len(self)))[0]

    @property
    def labels(self) -> np.ndarray:
        return self.get_batch(np.arange(len(self)))[1]


def random_split(dataset: Dataset, lengths, rng=None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths (which
    must sum to ``len(dataset)``; fractions summing to 1 are also accepted)."""
    from ..nn.init import get_rng
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1) < 1e-9:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n or any(x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be >= 0 and sum to {n}, got {lengths}")
    perm = get_rng(rng).permutation(n)
    out, start = [], 0
    for k in lengths:
        out.append(Subset(dataset, perm[start:start + k]))
        start += k
    return out


def data_root(root, name: str) -> Path:
    """``root`` if given, else ``$CONVNET_HOME/data/<name>``."""
    from .download import convnet_home
    return Path(os.fspath(root)).expanduser() if root is not None else \
        convnet_home() / "data" / name
