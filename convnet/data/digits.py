"""scikit-learn's bundled 8x8 handwritten digits: the default dataset, no download.

1,797 grey 8x8 images of the digits 0-9 (pixel counts 0..16, scaled here to [0, 1]).
The train/test split is fixed and stratified: ``sklearn.model_selection.
train_test_split(indices, test_size=0.2, stratify=labels, random_state=0)``, giving
1,437 training and 360 test images with the class proportions of the whole set.
"""

from __future__ import annotations

import functools

import numpy as np

from .dataset import ArrayDataset

__all__ = ["Digits", "DIGITS_TEST_SIZE", "DIGITS_SPLIT_SEED"]

DIGITS_TEST_SIZE = 0.2
DIGITS_SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def _digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - scikit-learn is in the cli extra
        raise ImportError("the digits dataset needs scikit-learn: pip install "
                          "'convnet[cli]'") from exc
    bunch = load_digits()
    images, labels = bunch.images, bunch.target  # (1797, 8, 8) in 0..16, (1797,)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_SIZE, stratify=labels,
        random_state=DIGITS_SPLIT_SEED)
    for a in (images, labels, train_idx, test_idx):
        a.flags.writeable = False  # cached: shared by every Digits instance
    return images, labels, train_idx, test_idx


class Digits(ArrayDataset):
    """The 8x8 digits of scikit-learn, split 80/20 (stratified, fixed seed).

    Args:
        train: the 1,437-image training split, else the 360-image test split.
        size: optional ``(H, W)`` or int to upscale to (bilinear), e.g. 16 or 28 for a
            model that needs a larger input.

    Images are float32 (N, 8, 8, 1) in [0, 1] (pixel counts / 16); labels int64.

    Example:
        >>> train, test = Digits(train=True), Digits(train=False, size=16)
        >>> train.images.shape, test.images.shape
        ((1437, 8, 8, 1), (360, 16, 16, 1))
    """

    def __init__(self, train: bool = True, size=None):
        images, labels, train_idx, test_idx = _digits_split()
        idx = train_idx if train else test_idx
        self.train = bool(train)
        self.indices = idx  # positions in sklearn's load_digits() arrays
        super().__init__((images[idx] / 16.0)[..., None], labels[idx],
                         classes=[str(i) for i in range(10)], size=size)
