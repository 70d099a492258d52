"""Datasets by name, for the command line's ``--data``.

    digits                 scikit-learn's 8x8 digits (the default; no download)
    mnist                  MNIST (IDX files, downloaded and verified)
    fashion-mnist          Fashion-MNIST (likewise)
    cifar10                CIFAR-10, binary distribution (likewise)
    folder:PATH            an image folder; PATH/train and PATH/test are the splits when
                           both exist, else PATH is used for both
    npz:PATH               an .npz file (x_train/y_train + x_test/y_test, or one pair of
                           images/labels or x/y used for both splits)
"""

from __future__ import annotations

from pathlib import Path

from .cifar import CIFAR10
from .dataset import ArrayDataset, Dataset
from .digits import Digits
from .folder import ImageFolder
from .mnist import MNIST, FashionMNIST

__all__ = ["DATASETS", "get_dataset"]

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "folder:PATH", "npz:PATH")
_DOWNLOADED = {"mnist": MNIST, "fashion-mnist": FashionMNIST, "fashion_mnist": FashionMNIST,
               "fashionmnist": FashionMNIST, "cifar10": CIFAR10, "cifar-10": CIFAR10}


def get_dataset(name: str, root=None, train: bool = True, download: bool = True,
                **kwargs) -> Dataset:
    """The dataset called ``name`` (see the module docstring), split by ``train``.

    Args:
        name: ``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``, ``folder:PATH`` or
            ``npz:PATH``.
        root: where downloaded datasets live (default ``$CONVNET_HOME/data/<name>``).
        train: the training split, else the test split.
        download: allow downloading missing files.
        **kwargs: passed to the dataset, e.g. ``size=28`` (every dataset), ``mirrors=``
            (downloaded ones), ``channels=`` / ``skip_bad=`` (folders).

    Example:
        >>> train = get_dataset("digits", size=16)
        >>> test = get_dataset("mnist", train=False, root="/data/mnist")
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
    key = name.strip()
    low = key.lower()
    if low == "digits":
        return Digits(train=train, **kwargs)
    if low in _DOWNLOADED:
        return _DOWNLOADED[low](root=root, train=train, download=download, **kwargs)
    kind, sep, path = key.partition(":")
    if sep and kind.lower() in ("folder", "npz"):
        if not path:
            raise ValueError(f"dataset {name!r}: expected {kind.lower()}:PATH with a path")
        path = Path(path).expanduser()
        if kind.lower() == "npz":
            return ArrayDataset.from_npz(path, train=train, **kwargs)
        split = path / ("train" if train else "test")
        if (path / "train").is_dir() and (path / "test").is_dir():
            return ImageFolder(split, **kwargs)
        return ImageFolder(path, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
