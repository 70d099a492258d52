"""What ``fit`` and ``evaluate`` accept as data and loss, turned into a loader and a
callable."""

from __future__ import annotations

import numpy as np

from ..data import DataLoader

__all__ = ["resolve_loss", "as_loader", "batch_arrays", "is_classification"]


def resolve_loss(loss):
    """``None``/"cross_entropy" -> F.cross_entropy; a Module or callable is used as is."""
    from .. import functional as F

    if loss is None:
        return F.cross_entropy
    if isinstance(loss, str):
        table = {"cross_entropy": F.cross_entropy, "nll": F.nll_loss,
                 "multi_margin": F.multi_margin_loss}
        if loss not in table:
            raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(table)} or a "
                             f"callable (logits, targets) -> Tensor")
        return table[loss]
    if not callable(loss):
        raise TypeError(f"loss must be a callable (logits, targets) -> Tensor, got "
                        f"{type(loss).__name__}")
    return loss


def as_loader(data, batch_size: int, shuffle: bool, rng=None, drop_last: bool = False):
    """A DataLoader for ``data``: a DataLoader (used as is), a dataset, or ``(x, y)``."""
    from .. import data as cdata

    if hasattr(data, "__iter__") and hasattr(data, "batch_size") and hasattr(data, "dataset"):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        x = np.asarray(getattr(data[0], "data", data[0]))
        y = np.asarray(getattr(data[1], "data", data[1]))
        # Labelled images (N, H, W[, C]) go through the data package (uint8 -> [0, 1]);
        # other arrays (features, sequences, reconstruction targets) are batched as is.
        labels = y.ndim == 1 and y.dtype.kind in "iu"
        data = cdata.ArrayDataset(x, y) if x.ndim in (3, 4) and labels else _ArrayPair(x, y)
    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise TypeError(f"training data must be a DataLoader, a dataset or an (x, y) tuple, "
                        f"got {type(data).__name__}")
    cls = _PairLoader if isinstance(data, _ArrayPair) else cdata.DataLoader
    return cls(data, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, rng=rng)


class _ArrayPair:
    """``(x, y)`` arrays of any per-sample shape as a dataset for the DataLoader."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        if len(x) != len(y):
            raise ValueError(f"fit: x has {len(x)} samples but y has {len(y)}")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def get_batch(self, idx):
        return self.x[idx], self.y[idx]


class _PairLoader(DataLoader):
    """The DataLoader (same order, same resumable state) for ``_ArrayPair``: targets keep
    their dtype instead of becoming int64 labels."""

    def _gather(self, idx):
        return self.dataset.get_batch(idx)


def batch_arrays(batch):
    if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
        raise TypeError(f"a batch must be an (x, y) pair, got {type(batch).__name__}")
    x, y = batch[0], batch[1]
    return np.asarray(getattr(x, "data", x)), np.asarray(getattr(y, "data", y))


def is_classification(scores: np.ndarray, y: np.ndarray) -> bool:
    return scores.ndim == 2 and y.ndim == 1 and y.dtype.kind in "iu"
