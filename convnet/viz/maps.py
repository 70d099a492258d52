"""What a CNN has learned: its filters, and the activation maps one input produces."""

from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor, no_grad
from .curves import _save, pyplot

__all__ = ["plot_filters", "plot_activations", "capture_activation"]


def _grid(n: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _unit(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def plot_filters(conv_layer, path=None, max_filters: int = 64, channel: int | None = None):
    """Each filter of a 2-D conv layer as a small image.

    Weights are HWIO (KH, KW, C_in/groups, C_out).  With three input channels a filter
    is drawn in colour; otherwise input channel ``channel`` (default: the mean over the
    input channels) in grey.  Each filter is scaled to its own [min, max].

    Args:
        conv_layer: a ``Conv2d`` (anything with a 4-D ``weight``).
        path: where to write the image; None returns the figure unsaved.
        max_filters: draw at most this many output filters.
        channel: which input channel to draw for non-RGB filters.
    """
    w = getattr(getattr(conv_layer, "weight", None), "data", None)
    if not isinstance(w, np.ndarray) or w.ndim != 4:
        raise ValueError(f"plot_filters: expected a 2-D conv layer with an HWIO weight, got "
                         f"{type(conv_layer).__name__}"
                         f"{'' if w is None else ' with weight shape ' + str(w.shape)}")
    kh, kw, cin, cout = w.shape
    if channel is not None and not 0 <= channel < cin:
        raise ValueError(f"plot_filters: channel must be in [0, {cin}), got {channel}")
    n = min(cout, int(max_filters))
    rows, cols = _grid(n)
    plt = pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.2), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= n:
            continue
        f = w[:, :, :, k]  # (KH, KW, C_in)
        if cin == 3 and channel is None:
            ax.imshow(_unit(f), interpolation="nearest")
        else:
            img = f[:, :, channel] if channel is not None else f.mean(axis=2)  # (KH, KW)
            ax.imshow(_unit(img), cmap="gray", interpolation="nearest")
        ax.set_title(str(k), fontsize=7)
    fig.suptitle(f"{type(conv_layer).__name__} filters ({kh}x{kw}x{cin}, {cout} total)")
    fig.tight_layout()
    _save(fig, path)
    return fig


def capture_activation(model, x, layer_name: str) -> np.ndarray:
    """The output of submodule ``layer_name`` (a dotted name from ``named_modules``)
    when ``model`` runs on ``x`` in eval mode, without gradients."""
    modules = dict(model.named_modules())
    if layer_name not in modules or layer_name == "":
        names = [n for n in modules if n]
        raise ValueError(f"capture_activation: no layer named {layer_name!r}; layers are "
                         f"{names[:20]}{'...' if len(names) > 20 else ''}")
    target = modules[layer_name]
    seen = {}
    original = target.forward

    def recording_forward(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.setdefault("out", out)
        return out

    object.__setattr__(target, "forward", recording_forward)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(x if isinstance(x, Tensor) else Tensor(np.asarray(x)))
    finally:
        object.__delattr__(target, "forward")
        model.train(was_training)
    if "out" not in seen:
        raise ValueError(f"capture_activation: layer {layer_name!r} did not run")
    out = seen["out"]
    return np.asarray(out.data if isinstance(out, Tensor) else out)


def plot_activations(model, x, layer_name: str, path=None, max_maps: int = 64):
    """The feature maps of layer ``layer_name`` for one input image.

    Args:
        model: the network.
        x: one image (H, W, C) or a batch whose first image is used (1, H, W, C).
        layer_name: a dotted submodule name, e.g. ``"conv1"`` or ``"features.3"``.
        path: where to write the image; None returns the figure unsaved.
        max_maps: draw at most this many channels.
    """
    x = np.asarray(getattr(x, "data", x))
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"plot_activations: x must be an image (H, W, C) or a batch "
                         f"(N, H, W, C), got shape {x.shape}")
    act = capture_activation(model, x[:1], layer_name)
    if act.ndim != 4:
        raise ValueError(f"plot_activations: layer {layer_name!r} outputs shape {act.shape}; "
                         f"only (N, H, W, C) feature maps can be drawn")
    maps = act[0]  # (OH, OW, C)
    n = min(maps.shape[-1], int(max_maps))
    rows, cols = _grid(n)
    plt = pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.3), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < n:
            ax.imshow(maps[:, :, k], cmap="viridis", interpolation="nearest")
            ax.set_title(str(k), fontsize=7)
    fig.suptitle(f"{layer_name}: {maps.shape[0]}x{maps.shape[1]}x{maps.shape[2]}")
    fig.tight_layout()
    _save(fig, path)
    return fig
