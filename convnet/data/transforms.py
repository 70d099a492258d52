"""Batch transforms on NHWC arrays: resize, normalize, random crop, random flip, compose.

Each transform maps a batch (N, H, W, C) to a batch (a single (H, W, C) image also
works) in one vectorised step.  Random transforms draw from their own explicit
``numpy.random.Generator`` and expose ``state_dict()`` / ``load_state_dict()`` with
its state, so a ``DataLoader`` checkpoint restores the augmentation stream too.

Example:
    >>> rng = np.random.default_rng(0)
    >>> aug = Compose([RandomCrop(28, padding=2, rng=rng), RandomHorizontalFlip(rng=rng),
    ...                Normalize([0.1307], [0.3081])])
    >>> aug(np.zeros((16, 28, 28, 1), np.float32)).shape
    (16, 28, 28, 1)
"""

from __future__ import annotations

import numbers

import numpy as np

from .rng_state import get_rng_state, set_rng_state

__all__ = ["resize_images", "Transform", "Resize", "Normalize", "RandomCrop",
           "RandomHorizontalFlip", "Compose"]


def _pair(owner: str, name: str, value, low: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                 and v >= low for v in pair):
        raise ValueError(f"{owner}: {name} must be an int >= {low} or a pair of them, got "
                         f"{value!r}")
    return int(pair[0]), int(pair[1])


def _as_batch(owner: str, x) -> tuple[np.ndarray, bool]:
    x = np.asarray(x)
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected images (N, H, W, C) or (H, W, C), got shape "
                         f"{x.shape}")
    return x, False


def _axis_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source taps and weights of half-pixel bilinear sampling along one axis."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5  # centre of each output pixel
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def resize_images(images, size) -> np.ndarray:
    """Bilinear resize of (N, H, W, C) or (H, W, C) images to ``size`` = (OH, OW) or int.

    Pixel centres are aligned (``align_corners=False``), as in
    ``torch.nn.functional.interpolate(mode="bilinear")`` and Pillow's upscaling; no
    anti-aliasing filter is applied when shrinking.  Float dtypes are kept; integer
    images become float32.
    """
    oh, ow = _pair("resize_images", "size", size, 1)
    x, single = _as_batch("resize_images", images)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    n, h, w, c = x.shape
    if (h, w) != (oh, ow):
        y0, y1, wy = _axis_taps(h, oh)
        x0, x1, wx = _axis_taps(w, ow)
        wx = wx.astype(x.dtype)[None, None, :, None]
        wy = wy.astype(x.dtype)[None, :, None, None]
        x = x[:, :, x0] * (1 - wx) + x[:, :, x1] * wx  # (N, H, OW, C)
        x = x[:, y0] * (1 - wy) + x[:, y1] * wy  # (N, OH, OW, C)
    return x[0] if single else x


class Transform:
    """Base class: ``__call__(x)`` maps a batch to a batch; stateless by default."""

    def __call__(self, x):
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class _RandomTransform(Transform):
    def __init__(self, rng=None):
        from ..nn.init import get_rng
        self.rng = get_rng(rng)

    def state_dict(self) -> dict:
        return {"rng": get_rng_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        set_rng_state(self.rng, state["rng"])


class Resize(Transform):
    """Bilinear resize to ``size`` (int or (H, W)); see :func:`resize_images`."""

    def __init__(self, size):
        self.size = _pair("Resize", "size", size, 1)

    def __call__(self, x):
        return resize_images(x, self.size)

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class Normalize(Transform):
    """``(x - mean) / std`` per channel (the last axis).

    Args:
        mean: one value per channel (or one for all).
        std: one positive value per channel (or one for all).

    Example:
        >>> Normalize(*Normalize.stats(train.images))  # the training set's own statistics
    """

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError(f"Normalize: mean and std must be numbers or 1-D sequences, got "
                             f"shapes {self.mean.shape} and {self.std.shape}")
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise ValueError(f"Normalize: mean has {len(self.mean)} values but std has "
                             f"{len(self.std)}")
        if not np.all(np.isfinite(self.mean)) or not np.all(self.std > 0):
            raise ValueError(f"Normalize: std must be > 0 and mean finite, got mean "
                             f"{self.mean.tolist()}, std {self.std.tolist()}")

    @staticmethod
    def stats(images) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation of (N, H, W, C) images."""
        x = np.asarray(images, dtype=np.float64)
        axes = tuple(range(x.ndim - 1))
        return x.mean(axis=axes).tolist(), x.std(axis=axes).tolist()

    def __call__(self, x):
        x = np.asarray(x)
        c = x.shape[-1] if x.ndim else 0
        k = max(len(self.mean), len(self.std))
        if k != 1 and c != k:
            raise ValueError(f"Normalize: images have {c} channels but mean/std have {k} "
                             f"values")
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        return ((x - self.mean.astype(dtype)) / self.std.astype(dtype)).astype(dtype,
                                                                                copy=False)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop(_RandomTransform):
    """Zero-pad by ``padding`` then crop a random ``size`` window, independently per image.

    Args:
        size: crop size, int or (H, W).
        padding: pad on each side before cropping, int or (pad_h, pad_w).
        fill: value of the padding.
        rng: the ``numpy.random.Generator`` (or seed) the offsets come from.

    Example:
        >>> RandomCrop(32, padding=4, rng=0)(np.zeros((8, 32, 32, 3))).shape
        (8, 32, 32, 3)
    """

    def __init__(self, size, padding=0, fill: float = 0.0, rng=None):
        super().__init__(rng)
        self.size = _pair("RandomCrop", "size", size, 1)
        self.padding = _pair("RandomCrop", "padding", padding, 0)
        self.fill = float(fill)

    def __call__(self, x):
        x, single = _as_batch("RandomCrop", x)
        ph, pw = self.padding
        if ph or pw:
            x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)),
                       constant_values=self.fill)  # (N, H + 2ph, W + 2pw, C)
        n, h, w, _ = x.shape
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image "
                             f"({h}, {w})")
        oy = self.rng.integers(0, h - ch + 1, size=n)  # top-left corner of each crop
        ox = self.rng.integers(0, w - cw + 1, size=n)
        rows = (oy[:, None] + np.arange(ch))[:, :, None]  # (N, CH, 1)
        cols = (ox[:, None] + np.arange(cw))[:, None, :]  # (N, 1, CW)
        out = x[np.arange(n)[:, None, None], rows, cols]  # (N, CH, CW, C)
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(_RandomTransform):
    """Mirror each image left-right with probability ``p``.

    Example:
        >>> RandomHorizontalFlip(p=1.0)(np.arange(3.0).reshape(1, 1, 3, 1)).ravel()
        array([2., 1., 0.])
    """

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__(rng)
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, x):
        x, single = _as_batch("RandomHorizontalFlip", x)
        flip = self.rng.random(x.shape[0]) < self.p  # (N,)
        out = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose(Transform):
    """Apply transforms in order; its state holds each one's."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for i, t in enumerate(self.transforms):
            if not callable(t):
                raise TypeError(f"Compose: transform {i} is not callable, got "
                                f"{type(t).__name__}")

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def state_dict(self) -> dict:
        return {"transforms": [t.state_dict() if hasattr(t, "state_dict") else {}
                               for t in self.transforms]}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("transforms", [])
        if len(saved) != len(self.transforms):
            raise ValueError(f"Compose.load_state_dict: the state has {len(saved)} "
                             f"transforms but this Compose has {len(self.transforms)}")
        for t, s in zip(self.transforms, saved):
            if hasattr(t, "load_state_dict"):
                t.load_state_dict(s)

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"
