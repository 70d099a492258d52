"""Spatial padding of channels-last arrays in four modes, with the exact backward.

Notation:
    x     input, (N, *S, C): S is (L,), (H, W) or (D, H, W)
    pads  one (lo, hi) pair per spatial axis, e.g. ((top, bottom), (left, right))
    out   (N, *(S_i + lo_i + hi_i), C)

Modes (PyTorch's names; for one axis of size n, output position t in [-lo, n + hi)
reads input position src(t)):
    'zeros' / 'constant'   a constant value outside [0, n) (no source)
    'reflect'              src = |t| mirrored about the edges, edge not repeated:
                           [a b c d] with lo = 2 -> [c b | a b c d]; needs lo, hi <= n - 1
    'replicate'            src = clip(t, 0, n - 1): the edge value repeated
    'circular'             src = t mod n (wraps around); needs lo, hi <= n as in torch

Every mode is a gather along each axis in turn, so the backward scatters the gradient
back through the same index map: the interior block maps one-to-one, and the lo + hi
border positions of each axis are added onto their sources (a loop over border
positions, never over pixels).
"""

from __future__ import annotations

import numpy as np

MODES = ("zeros", "constant", "reflect", "replicate", "circular")


def source_index(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """Input index read by each of the n + lo + hi output positions; -1 means the constant."""
    t = np.arange(-lo, n + hi)                                     # (n + lo + hi,)
    if mode in ("zeros", "constant"):
        return np.where((t >= 0) & (t < n), t, -1)
    if mode == "reflect":
        t = np.abs(t)                                              # mirror the low edge
        return np.where(t > n - 1, 2 * (n - 1) - t, t)             # mirror the high edge
    if mode == "replicate":
        return np.clip(t, 0, n - 1)
    if mode == "circular":
        return np.mod(t, n)
    raise ValueError(f"pad: mode must be one of {MODES}, got {mode!r}")


def check_pads(spatial, pads, mode: str, op: str = "pad") -> None:
    """Raise when a pad is too wide for its mode (the same limits as torch)."""
    for axis, (n, (lo, hi)) in enumerate(zip(spatial, pads)):
        if mode == "reflect" and max(lo, hi) > n - 1:
            raise ValueError(f"{op}: reflect padding must be smaller than the input size, got "
                             f"padding ({lo}, {hi}) for size {n} on spatial axis {axis}")
        if mode == "circular" and max(lo, hi) > n:
            raise ValueError(f"{op}: circular padding must be at most the input size, got "
                             f"padding ({lo}, {hi}) for size {n} on spatial axis {axis}")
        if mode == "replicate" and n == 0 and lo + hi > 0:
            raise ValueError(f"{op}: replicate padding needs a non-empty axis, got size 0 "
                             f"on spatial axis {axis}")


def pad_forward(x, pads, mode: str = "zeros", value: float = 0.0):
    """Returns ``(out, cache)``; ``out`` is (N, *(S + lo + hi), C)."""
    if mode not in MODES:
        raise ValueError(f"pad: mode must be one of {MODES}, got {mode!r}")
    spatial = x.shape[1:-1]
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    check_pads(spatial, pads, mode)
    index = [source_index(n, lo, hi, mode) for n, (lo, hi) in zip(spatial, pads)]
    if mode in ("zeros", "constant"):
        out = np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=value)
    else:
        out = x
        for axis, idx in enumerate(index):
            if pads[axis] != (0, 0):
                out = np.take(out, idx, axis=axis + 1)             # gather along one axis
    return out, (x.shape, pads, index)


def pad_backward(dout, cache):
    """Returns ``dx`` (N, *S, C): each output position's gradient added onto its source."""
    x_shape, pads, index = cache
    dx = dout
    for axis in reversed(range(len(pads))):
        lo, hi = pads[axis]
        if lo == 0 and hi == 0:
            continue
        ax = axis + 1
        n = x_shape[ax]
        # Interior: output positions lo .. lo + n - 1 read inputs 0 .. n - 1 in every mode.
        g = np.take(dx, np.arange(lo, lo + n), axis=ax)            # (N, ..., n, ..., C)
        idx = index[axis]
        for t in [*range(lo), *range(lo + n, lo + n + hi)]:        # border positions only
            src = idx[t]
            if src < 0:
                continue                                           # constant: no source
            dst = (slice(None),) * ax + (src,)
            g[dst] += np.take(dx, t, axis=ax)
        dx = g
    return dx
