"""2-D convolution (cross-correlation, as in every deep-learning library) on NHWC data.

Notation:
    x     input,  (N, H, W, C)                       the seeds' m x n_H x n_W x n_C[l-1]
    w     weight, (KH, KW, C/G, F)                   the seeds' f x f x n_C[l-1] x n_C[l]
    b     bias,   (F,)
    out   output, (N, OH, OW, F)
    G     groups: input and output channels split into G independent convs
    s, p, d   stride, padding ((top, bottom), (left, right)) and dilation

    OH = floor((H + p_top + p_bottom - d_h (KH - 1) - 1) / s_h) + 1   (ops.shape)

Algorithm: im2col.  A strided view lists, for every output pixel, the KH x KW x C
window it reads; one copy makes that a (N*OH*OW, KH*KW*C) matrix and one BLAS matmul
with the (KH*KW*C, F) weight gives the output.  Backward is two more matmuls plus a
col2im scatter that loops over the KH*KW kernel taps (never over pixels or images).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def pad_nhwc(x: np.ndarray, pads) -> np.ndarray:
    """Zero-pad the spatial axes of an (N, *spatial, C) array; ``pads`` is ((lo, hi), ...)."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    return np.pad(x, ((0, 0), *pads, (0, 0)))


def unpad_nhwc(dx_pad: np.ndarray, pads) -> np.ndarray:
    """Crop what ``pad_nhwc`` added (the gradient of zero padding)."""
    index = (slice(None),) + tuple(slice(lo, dx_pad.shape[i + 1] - hi)
                                   for i, (lo, hi) in enumerate(pads)) + (slice(None),)
    return dx_pad[index]


def windows2d(x_pad: np.ndarray, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
              out_h: int, out_w: int) -> np.ndarray:
    """Read-only strided view of every KH x KW window: (N, OH, OW, KH, KW, C)."""
    n, _, _, c = x_pad.shape
    s_n, s_h, s_w, s_c = x_pad.strides
    return as_strided(x_pad, shape=(n, out_h, out_w, kh, kw, c),
                      strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c),
                      writeable=False)


def col2im2d(dcols: np.ndarray, padded_shape, sh: int, sw: int, dh: int, dw: int) -> np.ndarray:
    """Scatter-add window gradients (N, OH, OW, KH, KW, C) back onto the padded input."""
    n, out_h, out_w, kh, kw, c = dcols.shape
    dx_pad = np.zeros(padded_shape, dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            # Tap (i, j) of output pixel (oh, ow) reads input (oh*sh + i*dh, ow*sw + j*dw).
            dx_pad[:, i * dh:i * dh + sh * (out_h - 1) + 1:sh,
                   j * dw:j * dw + sw * (out_w - 1) + 1:sw, :] += dcols[:, :, :, i, j, :]
    return dx_pad


def conv2d_forward(x, w, b, stride, pads, dilation, groups=1):
    """Returns ``(out, cache)``; ``out`` is (N, OH, OW, F)."""
    n, h, wd, c = x.shape
    kh, kw, cg, f = w.shape
    sh, sw = stride
    dh, dw = dilation
    g = groups
    x_pad = pad_nhwc(x, pads)                                      # (N, Hp, Wp, C)
    out_h = (x_pad.shape[1] - dh * (kh - 1) - 1) // sh + 1
    out_w = (x_pad.shape[2] - dw * (kw - 1) - 1) // sw + 1
    win = windows2d(x_pad, kh, kw, sh, sw, dh, dw, out_h, out_w)   # (N, OH, OW, KH, KW, C)
    m, k = n * out_h * out_w, kh * kw * cg
    if g == 1:
        cols = win.reshape(m, k)                                   # (M, K) one copy
        out = cols @ w.reshape(k, f)                               # mk,kf -> mf
    else:
        fg = f // g
        cols = (win.reshape(n, out_h, out_w, kh, kw, g, cg)
                .transpose(5, 0, 1, 2, 3, 4, 6).reshape(g, m, k))  # (G, M, K)
        wg = (w.reshape(kh, kw, cg, g, fg)
              .transpose(3, 0, 1, 2, 4).reshape(g, k, fg))         # (G, K, F/G)
        out = (cols @ wg).transpose(1, 0, 2).reshape(m, f)         # gmk,gkf -> m(gf)
    if b is not None:
        out += b
    out = out.reshape(n, out_h, out_w, f)                          # (N, OH, OW, F)
    cache = (cols, w, x_pad.shape, x.shape, stride, pads, dilation, g, b is not None)
    return out, cache


def conv2d_backward(dout, cache, need=(True, True, True)):
    """Returns ``(dx, dw, db)``; entries not in ``need`` are None."""
    cols, w, padded_shape, x_shape, (sh, sw), pads, (dh, dw_), g, has_bias = cache
    kh, kw, cg, f = w.shape
    n, out_h, out_w, _ = dout.shape
    m, k = n * out_h * out_w, kh * kw * cg
    dout2 = dout.reshape(m, f)                                     # (M, F)
    dx = dw = db = None
    if has_bias and need[2]:
        db = dout2.sum(axis=0)                                     # (F,)
    if g == 1:
        if need[1]:
            dw = (cols.T @ dout2).reshape(w.shape)                 # km,mf -> kf
        if need[0]:
            dcols = dout2 @ w.reshape(k, f).T                      # mf,fk -> mk
            dcols = dcols.reshape(n, out_h, out_w, kh, kw, cg)
    else:
        fg = f // g
        dout_g = dout2.reshape(m, g, fg).transpose(1, 0, 2)        # (G, M, F/G)
        if need[1]:
            dwg = cols.transpose(0, 2, 1) @ dout_g                 # gkm,gmf -> gkf
            dw = (dwg.reshape(g, kh, kw, cg, fg)
                  .transpose(1, 2, 3, 0, 4).reshape(w.shape))      # (KH, KW, C/G, F)
        if need[0]:
            wg = w.reshape(kh, kw, cg, g, fg).transpose(3, 0, 1, 2, 4).reshape(g, k, fg)
            dcols = dout_g @ wg.transpose(0, 2, 1)                 # gmf,gfk -> gmk
            dcols = (dcols.reshape(g, n, out_h, out_w, kh, kw, cg)
                     .transpose(1, 2, 3, 4, 5, 0, 6)
                     .reshape(n, out_h, out_w, kh, kw, g * cg))    # (N, OH, OW, KH, KW, C)
    if need[0]:
        dx_pad = col2im2d(dcols, padded_shape, sh, sw, dh, dw_)    # (N, Hp, Wp, C)
        dx = unpad_nhwc(dx_pad, pads)                              # (N, H, W, C)
        if dx.shape != tuple(x_shape):
            raise AssertionError(f"conv2d backward: dx {dx.shape} != x {x_shape}")
    return dx, dw, db
