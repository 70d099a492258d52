"""Up-sampling on channels-last data: interpolation (nearest, linear) and unpooling.

Notation:
    x     input, (N, *S, C): S is (L,), (H, W) or (D, H, W)
    out   output, (N, *O, C)
    scale source pixels per output pixel on one axis: n_in / n_out, or 1 / scale_factor
          when a scale factor was given (torch's rule, recompute_scale_factor=None)

Interpolation is separable: one gather per spatial axis.  For output index t on an axis
of n input pixels (torch's formulas, ``aten/src/ATen/native/UpSample.h``):

    nearest         src = min(floor(t * scale), n - 1), in float32 as torch does (the
                    2x and 1x cases are exact shifts)
    linear          align_corners=False: src = max(scale (t + 0.5) - 0.5, 0)
                    align_corners=True:  src = t (n - 1) / (n_out - 1)
                    i0 = floor(src), i1 = min(i0 + 1, n - 1), l1 = src - i0, l0 = 1 - l1
                    out[t] = l0 x[i0] + l1 x[i1]

Every index map is non-decreasing in t, so the backward sums the gradient over runs of
equal indices with ``np.add.reduceat`` -- vectorised, no ``np.add.at``.

Unpooling:
    copy-unpool (seed 002)   every entry copied into a k x k block: [x] -> [[x, x], [x, x]]
    max-unpool               every entry put back at the argmax position that
                             max_pool2d(return_indices=True) recorded (flat h * W + w into
                             the output plane); the rest are zeros
"""

from __future__ import annotations

import numpy as np

# ---- index maps --------------------------------------------------------------


def nearest_index(n_in: int, n_out: int, scale_factor=None) -> np.ndarray:
    """Source index of each output position for mode='nearest' (torch's float32 math)."""
    if n_out == n_in:
        return np.arange(n_out)
    if n_out == 2 * n_in:
        return np.arange(n_out) >> 1
    if scale_factor is not None and scale_factor > 0:
        scale = np.float32(1.0 / scale_factor)
    else:
        scale = np.float32(n_in) / np.float32(n_out)
    src = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(src, n_in - 1)


def linear_weights(n_in: int, n_out: int, align_corners: bool, scale_factor=None):
    """(i0, i1, l0, l1) for linear interpolation along one axis; weights in float64."""
    t = np.arange(n_out, dtype=np.float64)
    if align_corners:
        scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        src = t * scale
    else:
        scale = 1.0 / scale_factor if scale_factor else n_in / n_out
        src = np.maximum(scale * (t + 0.5) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    l1 = np.clip(src - i0, 0.0, 1.0)
    return i0, i1, 1.0 - l1, l1


def _along(weights, axis, ndim):
    """Reshape a per-position weight vector to broadcast along ``axis`` of an ndim array."""
    shape = [1] * ndim
    shape[axis] = weights.size
    return weights.reshape(shape)


def scatter_sorted(g, index, n, axis):
    """Sum ``g`` over runs of equal ``index`` along ``axis``; ``index`` is non-decreasing.
    Returns an array with ``n`` entries on ``axis`` (zeros where no index points)."""
    if np.any(np.diff(index) < 0):
        raise AssertionError("scatter_sorted: the index map must be non-decreasing")
    uniq, starts = np.unique(index, return_index=True)
    sums = np.add.reduceat(g, starts, axis=axis)                   # one sum per run
    shape = list(g.shape)
    shape[axis] = n
    out = np.zeros(shape, dtype=g.dtype)
    out[(slice(None),) * axis + (uniq,)] = sums
    return out


# ---- interpolation -----------------------------------------------------------


def interpolate_forward(x, out_size, mode, align_corners=False, scale_factors=None):
    """Returns ``(out, cache)``; ``out`` is (N, *out_size, C).  ``mode`` is 'nearest' or
    'linear' (the separable core of bilinear and trilinear)."""
    in_size = x.shape[1:-1]
    scale_factors = scale_factors or (None,) * len(in_size)
    maps = []
    out = x
    for axis, (n, m, sf) in enumerate(zip(in_size, out_size, scale_factors)):
        ax = axis + 1
        if mode == "nearest":
            idx = nearest_index(n, m, sf)
            out = np.take(out, idx, axis=ax)                       # (..., m, ...) along ax
            maps.append((idx,))
        else:
            i0, i1, l0, l1 = linear_weights(n, m, align_corners, sf)
            l0 = _along(l0.astype(x.dtype), ax, x.ndim)
            l1 = _along(l1.astype(x.dtype), ax, x.ndim)
            out = np.take(out, i0, axis=ax) * l0 + np.take(out, i1, axis=ax) * l1
            maps.append((i0, i1, l0, l1))
    return out, (x.shape, mode, maps)


def interpolate_backward(dout, cache):
    """Returns ``dx`` (N, *S, C)."""
    x_shape, mode, maps = cache
    g = dout
    for axis in reversed(range(len(maps))):
        ax, n = axis + 1, x_shape[axis + 1]
        if mode == "nearest":
            g = scatter_sorted(g, maps[axis][0], n, ax)
        else:
            i0, i1, l0, l1 = maps[axis]
            g = scatter_sorted(g * l0, i0, n, ax) + scatter_sorted(g * l1, i1, n, ax)
    return g


# ---- unpooling ---------------------------------------------------------------


def unpool2d_forward(x, size):
    """Copy-unpooling: (N, H, W, C) -> (N, H*kh, W*kw, C), each entry a kh x kw block."""
    kh, kw = size
    out = np.repeat(np.repeat(x, kh, axis=1), kw, axis=2)          # (N, H*kh, W*kw, C)
    return out, (x.shape, size)


def unpool2d_backward(dout, cache):
    (n, h, w, c), (kh, kw) = cache
    return dout.reshape(n, h, kh, w, kw, c).sum(axis=(2, 4))       # (N, H, W, C)


def max_unpool2d_forward(x, indices, out_hw):
    """Returns ``(out, cache)``: zeros of (N, OH, OW, C) with ``x`` put at ``indices``.

    ``indices`` (N, H, W, C) hold flat positions h * OW + w in each output plane.  If two
    entries share a position the later one (in row-major order) wins, as in torch.
    """
    n, h, w, c = x.shape
    out_h, out_w = out_hw
    out = np.zeros((n, out_h * out_w, c), dtype=x.dtype)           # (N, OH*OW, C)
    flat_idx = indices.reshape(n, h * w, c)                        # (N, H*W, C)
    np.put_along_axis(out, flat_idx, x.reshape(n, h * w, c), axis=1)
    return out.reshape(n, out_h, out_w, c), (flat_idx, x.shape)


def max_unpool2d_backward(dout, cache):
    """Each input entry receives the gradient at the position it was put (a gather)."""
    flat_idx, x_shape = cache
    n, out_h, out_w, c = dout.shape
    d = dout.reshape(n, out_h * out_w, c)                          # (N, OH*OW, C)
    return np.take_along_axis(d, flat_idx, axis=1).reshape(x_shape)
