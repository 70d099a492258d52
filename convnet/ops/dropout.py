"""Inverted dropout as a forward/backward pair.

Notation:
    x      input, any shape (N, ..., C)
    p      drop probability, 0 <= p <= 1
    mask   keep / (1 - p): 0 for dropped units, 1/(1-p) for kept ones; the kept units
           are scaled up in training so that E[out] = x and evaluation is the identity

``mask_shape`` lets one draw cover several axes: (N, 1, 1, C) drops whole channels of
an NHWC map (``dropout2d``), (N, ..., C) drops single units.  The mask is drawn from
the caller's ``numpy.random.Generator``: a unit is kept when a U[0, 1) draw is >= p,
so the same generator state gives the same mask.
"""

from __future__ import annotations

import numpy as np


def dropout_mask(shape, p: float, rng: np.random.Generator, dtype) -> np.ndarray:
    """The scaled keep mask: (U >= p) / (1 - p); all zeros for p = 1."""
    if p >= 1.0:
        return np.zeros(shape, dtype=dtype)
    keep = rng.random(shape) >= p                                 # (mask_shape) bool
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype=dtype)


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator, mask_shape=None):
    """Returns ``(out, cache)``; ``mask_shape`` (broadcastable to x) defaults to x.shape."""
    mask = dropout_mask(x.shape if mask_shape is None else tuple(mask_shape), p, rng, x.dtype)
    out = x * mask                                                # broadcast to x.shape
    return out, (mask, x.shape)


def dropout_backward(dout: np.ndarray, cache) -> np.ndarray:
    mask, x_shape = cache
    dx = dout * mask                                              # (x_shape)
    if dx.shape != tuple(x_shape):
        raise AssertionError(f"dropout backward: dx {dx.shape} != x {x_shape}")
    return dx
