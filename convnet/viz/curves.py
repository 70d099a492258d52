"""Training curves and confusion matrices, drawn with matplotlib's Agg backend.

matplotlib is imported lazily and always through the non-interactive Agg backend, so
plotting works on a headless machine and never opens a window.  Files are written
atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import os

import numpy as np

from ..io.atomic import atomic_path

__all__ = ["plot_curves", "plot_confusion_matrix", "pyplot"]


def pyplot():
    """matplotlib.pyplot on the Agg backend, or an ImportError saying how to install it."""
    try:
        import matplotlib  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install matplotlib (or pip install "
                          "'convnet[cli]')") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _save(fig, path) -> None:
    plt = pyplot()
    if path is not None:
        path = os.fspath(path)
        fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
        plt.close(fig)


def _series(history, key):
    hist = history.history if hasattr(history, "history") and not isinstance(
        history, dict) else history.get("history", history)
    vals = hist.get(key)
    if vals is None:
        return None
    return np.array([np.nan if v is None else float(v) for v in vals], dtype=np.float64)


def plot_curves(history, path=None, title: str | None = None):
    """Loss (left) and accuracy (right) per epoch, training and validation.

    Args:
        history: a ``History`` or its ``to_dict()`` (e.g. a parsed ``metrics.json``).
        path: where to write the image (e.g. ``curves.png``); None returns the figure
            without saving it.
        title: an optional title over both panels.

    Returns:
        the matplotlib ``Figure`` (closed once saved).
    """
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    epochs = history.epochs if hasattr(history, "epochs") else history.get("epochs", [])
    epochs = np.asarray(epochs, dtype=np.int64)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        for key, style, name in ((metric, "-o", "train"), (f"val_{metric}", "-s", "validation"),
                                 (f"test_{metric}", "-^", "test")):
            y = _series(history, key)
            if y is not None and len(y) == len(epochs) and np.any(np.isfinite(y)):
                ax.plot(epochs, y, style, markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_confusion_matrix(cm, class_names=None, path=None, normalize: bool = False,
                          title: str = "confusion matrix"):
    """A confusion matrix as a heat map with the count (or row fraction) in each cell.

    Args:
        cm: (C, C) counts, row = true class, column = predicted class.
        class_names: C labels for the axes (default 0..C-1).
        path: where to write the image; None returns the figure unsaved.
        normalize: show each row as fractions of its true class.
    """
    plt = pyplot()
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix: cm must be square (C, C), got {cm.shape}")
    c = cm.shape[0]
    names = [str(n) for n in (class_names if class_names is not None else range(c))]
    if len(names) != c:
        raise ValueError(f"plot_confusion_matrix: {c} classes but {len(names)} names")
    shown = cm.astype(np.float64)
    if normalize:
        with np.errstate(invalid="ignore", divide="ignore"):
            shown = np.nan_to_num(shown / shown.sum(axis=1, keepdims=True))
    size = max(4.0, 0.5 * c + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(shown, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(c), names, rotation=45 if c > 10 else 0)
    ax.set_yticks(range(c), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if c <= 30:
        hi = shown.max() if shown.size else 0
        for i in range(c):
            for j in range(c):
                txt = f"{shown[i, j]:.2f}" if normalize else str(int(cm[i, j]))
                ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > hi / 2 else "black")
    fig.tight_layout()
    _save(fig, path)
    return fig
