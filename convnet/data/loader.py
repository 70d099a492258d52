"""DataLoader: NHWC float32 batches in a (shuffled) order, resumable mid-epoch.

Each ``iter(loader)`` starts a new epoch: the order is ``rng.permutation(N)`` when
shuffling (else ``0..N-1``), cut into batches of ``batch_size``.  The loader remembers
the epoch's order and how many batches it has handed out, and ``state_dict()`` saves
both with the generator's state (and the transform's).  After ``load_state_dict`` the
next ``iter(loader)`` continues that epoch with exactly the batches that were still to
come, then the following epochs draw the same orders as an uninterrupted run would.
"""

from __future__ import annotations

import numbers

import numpy as np

from .dataset import ArrayDataset, Dataset
from .rng_state import get_rng_state, set_rng_state

__all__ = ["DataLoader"]


class DataLoader:
    """Batches of (images, labels) from a dataset.

    Args:
        dataset: a dataset (``len`` and ``[i] -> (image, label)``; a ``get_batch``
            method is used when present), or a pair of arrays ``(images, labels)``.
        batch_size: samples per batch (>= 1).
        shuffle: a new random order every epoch, drawn from ``rng``.
        drop_last: drop the last batch if it is smaller than ``batch_size``.
        rng: the ``numpy.random.Generator`` (or int seed) the order comes from;
            default convnet's generator (see ``convnet.manual_seed``).
        transform: a batch transform (e.g. ``Compose([...])``) applied to the images.

    Yields:
        ``(x, y)``: ``x`` float (B, H, W, C) (float32 for convnet's datasets), ``y``
        int64 (B,).

    Example:
        >>> loader = DataLoader(Digits(), batch_size=64, shuffle=True,
        ...                     rng=np.random.default_rng(0))
        >>> x, y = next(iter(loader))
        >>> x.shape, y.dtype
        ((64, 8, 8, 1), dtype('int64'))
        >>> state = loader.state_dict()      # mid-epoch checkpoint
        >>> loader.load_state_dict(state)    # next iter() resumes after that batch
    """

    def __init__(self, dataset, batch_size: int = 32, shuffle: bool = False,
                 drop_last: bool = False, rng=None, transform=None):
        from ..nn.init import get_rng
        if isinstance(dataset, tuple) and len(dataset) == 2:
            dataset = ArrayDataset(*dataset)
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader: dataset must have __len__ and __getitem__ (or be a "
                            f"pair of arrays), got {type(dataset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be an int >= 1, got {batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got "
                            f"{type(transform).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rng = get_rng(rng) if (shuffle or rng is not None) else None
        self.transform = transform
        self.epoch = 0  # epochs started
        self._perm: np.ndarray | None = None
        self._pos = 0  # batches of the current epoch handed out
        self._resume = False
        self._token = None

    def __len__(self) -> int:
        return self._num_batches(len(self.dataset))

    def _num_batches(self, n: int) -> int:
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def position(self) -> int:
        """Batches of the current epoch already handed out."""
        return self._pos

    def __iter__(self):
        resumable = self._perm is not None and self._pos < self._num_batches(len(self._perm))
        if not (self._resume and resumable):
            n = len(self.dataset)
            self._perm = self.rng.permutation(n) if self.shuffle else np.arange(n)
            self._pos = 0
            self.epoch += 1
        self._resume = False
        self._token = token = object()
        return self._batches(token)

    def _batches(self, token):
        perm, bs = self._perm, self.batch_size
        nb = self._num_batches(len(perm))
        while self._pos < nb and self._token is token:
            i = self._pos
            x, y = self._gather(perm[i * bs:(i + 1) * bs])
            if self.transform is not None:
                x = self.transform(x)
            self._pos = i + 1
            yield x, y

    def _gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        getter = getattr(self.dataset, "get_batch", None)
        x, y = getter(idx) if getter is not None else Dataset.get_batch(self.dataset, idx)
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        return x, np.asarray(y).astype(np.int64, copy=False)

    # ---- state ------------------------------------------------------------
    def state_dict(self) -> dict:
        """The epoch's order and position, the generator's and the transform's state.

        ``permutation`` is an int64 array (empty before the first epoch); every other
        value is JSON-able.
        """
        perm = self._perm if self._perm is not None else np.zeros(0, np.int64)
        t = self.transform
        return {"epoch": self.epoch, "position": self._pos,
                "permutation": np.array(perm, dtype=np.int64, copy=True),
                "num_samples": len(self.dataset), "batch_size": self.batch_size,
                "shuffle": self.shuffle, "drop_last": self.drop_last,
                "rng": get_rng_state(self.rng) if self.rng is not None else None,
                "transform": t.state_dict() if hasattr(t, "state_dict") else None}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``; the next ``iter()`` resumes the saved epoch."""
        need = {"epoch", "position", "permutation", "num_samples", "batch_size", "rng"}
        if not isinstance(state, dict) or not need <= set(state):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"DataLoader.load_state_dict: expected keys {sorted(need)}, got "
                             f"{got}")
        n = len(self.dataset)
        if int(state["num_samples"]) != n:
            raise ValueError(f"DataLoader.load_state_dict: the state is for a dataset of "
                             f"{state['num_samples']} samples, this one has {n}")
        if int(state["batch_size"]) != self.batch_size:
            raise ValueError(f"DataLoader.load_state_dict: the state has batch_size "
                             f"{state['batch_size']}, this loader {self.batch_size}")
        for key in ("shuffle", "drop_last"):
            if key in state and bool(state[key]) != getattr(self, key):
                raise ValueError(f"DataLoader.load_state_dict: the state has {key}="
                                 f"{state[key]}, this loader {getattr(self, key)}")
        perm = np.asarray(state["permutation"], dtype=np.int64).ravel()
        if perm.size and (perm.size != n or not np.array_equal(np.sort(perm), np.arange(n))):
            raise ValueError(f"DataLoader.load_state_dict: the permutation must be an order "
                             f"of 0..{n - 1}, got {perm.size} entries")
        pos = int(state["position"])
        if not 0 <= pos <= self._num_batches(perm.size):
            raise ValueError(f"DataLoader.load_state_dict: position {pos} is outside 0.."
                             f"{self._num_batches(perm.size)}")
        if state["rng"] is not None:
            if self.rng is None:
                self.rng = np.random.default_rng()
            set_rng_state(self.rng, state["rng"])
        if state.get("transform") is not None and hasattr(self.transform, "load_state_dict"):
            self.transform.load_state_dict(state["transform"])
        self.epoch = int(state["epoch"])
        self._perm = perm if perm.size else None
        self._pos = pos
        self._resume = True
        self._token = None

    def __repr__(self) -> str:
        return (f"DataLoader(n={len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, batches={len(self)})")
