"""Image files in, class probabilities out: what ``convnet predict`` does.

Images are read with Pillow, converted to grey ("L") or RGB to match the model's input
channels, resized to its input size (area averaging when shrinking, bilinear when
enlarging), and scaled to [0, 1] like convnet's datasets.  A model trained on
light-on-dark digits (its file's metadata says ``"background": "dark"``) gets
dark-on-light drawings inverted when ``invert="auto"`` finds a light border.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["load_image", "predict_files", "softmax"]


def _pil():
    try:
        from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise ImportError("reading images needs Pillow: pip install pillow (or pip install "
                          "'convnet[cli]')") from exc
    return Image, UnidentifiedImageError


def load_image(path, input_shape, invert="no", background=None) -> np.ndarray:
    """One image file as a float32 (H, W, C) array in [0, 1] for a model taking
    ``input_shape`` = (H, W, C) with C = 1 (grey) or 3 (RGB).

    Args:
        invert: ``"yes"``, ``"no"`` or ``"auto"`` (invert when ``background == "dark"``
            and the image's border is lighter than mid-grey).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an image Pillow can read, or the shape is unusable.
    """
    Image, Unidentified = _pil()
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(f"predict: the model must take (H, W, 1) or (H, W, 3) images, its "
                         f"input is {tuple(input_shape)}")
    h, w, c = (int(v) for v in input_shape)
    path = os.fspath(path)
    try:
        with Image.open(path) as img:
            img.load()
            img = img.convert("L" if c == 1 else "RGB")
    except FileNotFoundError:
        raise
    except (Unidentified, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: cannot read the image ({exc})") from None
    if img.size != (w, h):
        shrinking = img.size[0] > w or img.size[1] > h
        resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
        img = img.resize((w, h), resample=resample)
    x = np.asarray(img, dtype=np.float32) / 255.0  # (H, W) or (H, W, 3)
    if x.ndim == 2:
        x = x[:, :, None]  # (H, W, 1)
    if invert == "yes" or (invert == "auto" and background == "dark" and _light_border(x)):
        x = 1.0 - x
    return x


def _light_border(x: np.ndarray) -> bool:
    border = np.concatenate([x[0].ravel(), x[-1].ravel(), x[:, 0].ravel(), x[:, -1].ravel()])
    return float(border.mean()) > 0.5


def softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def predict_files(model, paths, metadata: dict, top_k: int = 3, invert: str = "auto",
                  input_shape=None) -> list:
    """``[(path, [(class name, probability), ...]), ...]``, best class first.

    ``metadata`` is the model file's (``input_shape``, ``class_names``, ``preprocess``);
    ``input_shape`` overrides its input shape.
    """
    from ..tensor import Tensor, no_grad

    shape = input_shape or metadata.get("input_shape")
    if not shape:
        raise ValueError("predict: the model file does not record its input shape")
    pre = metadata.get("preprocess") or {}
    background = pre.get("background") if isinstance(pre, dict) else None
    batch = np.stack([load_image(p, shape, invert, background) for p in paths])  # (N, H, W, C)
    model.eval()
    with no_grad():
        scores = model(Tensor(batch)).data
    if scores.ndim != 2:
        raise ValueError(f"predict: the model outputs shape {scores.shape}, not class scores")
    probs = softmax(scores.astype(np.float64))  # (N, classes)
    names = metadata.get("class_names") or [str(i) for i in range(probs.shape[1])]
    if len(names) != probs.shape[1]:
        names = [str(i) for i in range(probs.shape[1])]
    k = min(int(top_k), probs.shape[1])
    out = []
    for path, p in zip(paths, probs):
        order = np.argsort(-p, kind="stable")[:k]
        out.append((os.fspath(path), [(str(names[i]), float(p[i])) for i in order]))
    return out
