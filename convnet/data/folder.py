"""Image folders: one subfolder per class, PNG/JPEG files read through Pillow.

    root/cat/001.png
    root/cat/002.jpg
    root/dog/001.png

Classes are the subfolder names in sorted order (label = position); files are read
in sorted order too, so the dataset is the same on every machine.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .dataset import ArrayDataset, DatasetFormatError
from .transforms import _pair

__all__ = ["ImageFolder", "load_image", "IMG_EXTENSIONS"]

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def _open(path: Path):
    """The decoded Pillow image, or DatasetFormatError naming ``path``."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file fails here, not later
            return im.copy()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetFormatError(f"{path}: cannot read image ({type(exc).__name__}: "
                                 f"{exc})") from exc


def _to_array(im, size, channels: int) -> np.ndarray:
    from PIL import Image
    if channels == 1:
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            arr = np.asarray(im, dtype=np.float64)
            top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
            im = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8))
        im = im.convert("L")
    else:
        im = im.convert("RGB")
    if size is not None and im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.BILINEAR)  # Pillow takes (W, H)
    arr = np.asarray(im, dtype=np.uint8)
    arr = arr[..., None] if arr.ndim == 2 else arr  # (H, W, C)
    return arr


def load_image(path, size=None, channels: int | None = None) -> np.ndarray:
    """One image file as float32 (H, W, C) in [0, 1].

    Args:
        path: a PNG or JPEG (any format Pillow reads).
        size: optional ``(H, W)`` or int to resize to (bilinear).
        channels: 1 (grey) or 3 (RGB); default: 1 for grey images, else 3.

    Raises:
        DatasetFormatError naming the path when the file cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    size = None if size is None else _pair("load_image", "size", size, 1)
    im = _open(path)
    if channels is None:
        channels = 1 if im.mode in _GREY_MODES else 3
    if channels not in (1, 3):
        raise ValueError(f"load_image: channels must be 1 or 3, got {channels!r}")
    return _to_array(im, size, channels).astype(np.float32) / np.float32(255)


class ImageFolder(ArrayDataset):
    """A labelled image folder (one subfolder per class), loaded into memory.

    Args:
        root: the folder whose subfolders are the classes.
        size: ``(H, W)`` or int every image is resized to (bilinear).  Without it all
            images must already have the same size.
        channels: 1 (grey) or 3 (RGB); default: 1 if every image is grey, else 3.
        skip_bad: warn about and skip unreadable files instead of raising.
        extensions: file suffixes read (case-insensitive); others are ignored.

    Attributes: ``paths`` (the file of each item), ``images``, ``labels``, ``classes``.

    Example:
        >>> ds = ImageFolder("photos/", size=32)
        >>> ds.images.shape, ds.classes
        ((120, 32, 32, 3), ['cat', 'dog'])
    """

    def __init__(self, root, size=None, channels: int | None = None, skip_bad: bool = False,
                 extensions=IMG_EXTENSIONS):
        root = Path(os.fspath(root)).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist or is not a folder")
        size = None if size is None else _pair("ImageFolder", "size", size, 1)
        if channels not in (None, 1, 3):
            raise ValueError(f"ImageFolder: channels must be 1, 3 or None, got {channels!r}")
        exts = tuple(e.lower() for e in extensions)
        classes = sorted(d.name for d in root.iterdir()
                         if d.is_dir() and not d.name.startswith("."))
        if not classes:
            raise ValueError(f"ImageFolder: {root} has no class subfolders; expected "
                             f"root/<class>/<image>")
        loaded, paths, labels = [], [], []
        for label, cls in enumerate(classes):
            files = sorted(p for p in (root / cls).rglob("*")
                           if p.is_file() and p.suffix.lower() in exts
                           and not p.name.startswith("."))
            for path in files:
                try:
                    loaded.append(_open(path))
                except DatasetFormatError as exc:
                    if not skip_bad:
                        raise
                    warnings.warn(f"ImageFolder: skipping {exc}", stacklevel=2)
                    continue
                paths.append(path)
                labels.append(label)
        if not loaded:
            raise ValueError(f"ImageFolder: no readable {'/'.join(exts)} images under {root}")
        if channels is None:
            channels = 1 if all(im.mode in _GREY_MODES for im in loaded) else 3
        if size is None:
            first = loaded[0].size
            for im, path in zip(loaded, paths):
                if im.size != first:
                    raise ValueError(
                        f"ImageFolder: {path} is {im.size[1]}x{im.size[0]} but {paths[0]} is "
                        f"{first[1]}x{first[0]}; pass size=(H, W) to resize them")
        images = np.stack([_to_array(im, size, channels)
                           for im in loaded])  # (N, H, W, C) uint8
        self.root, self.paths = root, paths
        super().__init__(images, np.asarray(labels, np.int64), classes=classes)
