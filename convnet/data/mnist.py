"""MNIST and Fashion-MNIST from their gzipped IDX files, downloaded and verified.

Each split is a pair of files: images (IDX uint8, N x 28 x 28) and labels (IDX uint8,
N).  They are looked for in ``root`` (default ``$CONVNET_HOME/data/mnist`` or
``.../fashion-mnist``), gzipped or not, and downloaded there when missing.  The
recorded SHA-256 sums are the ones published in TensorFlow Datasets' checksum files
(``tensorflow_datasets/url_checksums/{mnist,fashion_mnist}.txt``); the MD5 sums are
torchvision's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import ArrayDataset, DatasetFormatError, data_root
from .download import fetch_file, resolve_mirrors
from .idx import read_idx

__all__ = ["MNIST", "FashionMNIST"]


class MNIST(ArrayDataset):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28x1.

    Args:
        root: folder holding (or receiving) the four ``*-ubyte.gz`` files.
        train: the training split (else the test split).
        download: download missing files (verified against the recorded SHA-256).
        mirrors: base URLs to download from; default ``$CONVNET_MNIST_MIRROR`` (comma
            separated) or the public mirrors.
        size: optional ``(H, W)`` or int to resize to (bilinear), e.g. 32 for LeNet-5.
        progress: show a download progress bar (default: when stderr is a terminal).

    Images are float32 in [0, 1] (bytes / 255), labels int64.

    Example:
        >>> train = MNIST(train=True)
        >>> train.images.shape, train.num_classes
        ((60000, 28, 28, 1), 10)
    """

    name = "mnist"
    mirror_env = "CONVNET_MNIST_MIRROR"
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/")
    # file name: (sha256, md5, size in bytes)
    resources = {
        "train-images-idx3-ubyte.gz": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
        "train-labels-idx1-ubyte.gz": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "d53e105ee54ea40749a09fcbcd1e9432", 28881),
        "t10k-images-idx3-ubyte.gz": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "9fb629c4189551a2d022fa330f9573f3", 1648877),
        "t10k-labels-idx1-ubyte.gz": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ec29112dd5afa0611ce80d1b7f02629c", 4542),
    }
    class_names = [str(i) for i in range(10)]

    def __init__(self, root=None, train: bool = True, download: bool = True, mirrors=None,
                 size=None, progress: bool | None = None):
        self.root = data_root(root, self.name)
        self.train = bool(train)
        prefix = "train" if self.train else "t10k"
        paths = [self._locate(f"{prefix}-{kind}-ubyte.gz", download, mirrors, progress)
                 for kind in ("images-idx3", "labels-idx1")]
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DatasetFormatError(f"{paths[0]}: expected uint8 images (N, H, W), got "
                                     f"{images.dtype} of shape {images.shape}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise DatasetFormatError(f"{paths[1]}: expected uint8 labels (N,), got "
                                     f"{labels.dtype} of shape {labels.shape}")
        if len(images) != len(labels):
            raise DatasetFormatError(f"{paths[0]} has {len(images)} images but {paths[1]} has "
                                     f"{len(labels)} labels")
        if labels.size and labels.max() >= len(self.class_names):
            raise DatasetFormatError(f"{paths[1]}: label {labels.max()} is out of range for "
                                     f"{len(self.class_names)} classes")
        super().__init__(images, labels, classes=self.class_names, size=size)

    def _locate(self, filename: str, download: bool, mirrors, progress) -> Path:
        for candidate in (self.root / filename, self.root / filename[:-3]):
            if candidate.is_file():
                return candidate
        if not download:
            raise FileNotFoundError(f"{self.root / filename} not found (and download=False); "
                                    f"place the file there or allow downloading")
        sha256, md5, _ = self.resources[filename]
        urls = resolve_mirrors(self.mirrors, self.mirror_env, mirrors)
        return fetch_file(filename, self.root, urls, sha256, md5, progress)


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: 28x28 grey clothing images in 10 classes, MNIST's format.

    Arguments as :class:`MNIST`; the mirror variable is ``CONVNET_FASHION_MNIST_MIRROR``
    and the default root ``$CONVNET_HOME/data/fashion-mnist``.
    """

    name = "fashion-mnist"
    mirror_env = "CONVNET_FASHION_MNIST_MIRROR"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
               "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/")
    resources = {
        "train-images-idx3-ubyte.gz": (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
        "train-labels-idx1-ubyte.gz": (
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "25c81989df183df01b3e8a0aad5dffbe", 29515),
        "t10k-images-idx3-ubyte.gz": (
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "bef4ecab320f06d8554ea6380940ec79", 4422102),
        "t10k-labels-idx1-ubyte.gz": (
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "bb300cfdad3c16e7a12a480ee83cd310", 5148),
    }
    class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
