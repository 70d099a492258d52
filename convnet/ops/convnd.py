"""1-D and 3-D convolution, and 3-D max pooling, on channels-last data.

Notation:
    1-D   x (N, L, C),       w (K, C/G, F),           out (N, OL, F)
    3-D   x (N, D, H, W, C), w (KD, KH, KW, C/G, F),  out (N, OD, OH, OW, F)
    s, p, d   stride, padding ((lo, hi) per spatial axis) and dilation; G groups

    O = floor((n + p_lo + p_hi - d (k - 1) - 1) / s) + 1 on every spatial axis (ops.shape)

1-D reuses the 2-D im2col conv on an (N, 1, L, C) view with a (1, K, C/G, F) kernel.
3-D has its own im2col: a strided view (N, OD, OH, OW, KD, KH, KW, C), one copy into a
(N*OD*OH*OW, KD*KH*KW*C/G) matrix per group and one matmul; the backward scatters the
window gradients with ``col2im3d``, a loop over the KD*KH*KW kernel taps.

Max pooling 3-D reads the same windows (padding with -inf) and keeps the first maximum
in (kd, kh, kw) scan order, as torch does; NaN wins, as in torch.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .conv import conv2d_backward, conv2d_forward, pad_nhwc, unpad_nhwc
from .threads import matmul

# ---- 1-D: the 2-D op on a height-1 view ------------------------------------


def conv1d_forward(x, w, b, stride, pads, dilation, groups=1):
    """Returns ``(out, cache)``; ``out`` is (N, OL, F).  ``stride``/``dilation`` are 1-tuples
    and ``pads`` is ((lo, hi),)."""
    out, cache = conv2d_forward(x[:, None], w[None], b, (1, stride[0]),
                                ((0, 0), pads[0]), (1, dilation[0]), groups)
    return out[:, 0], cache                                        # (N, 1, OL, F) -> (N, OL, F)


def conv1d_backward(dout, cache, need=(True, True, True)):
    dx, dw, db = conv2d_backward(dout[:, None], cache, need)
    return (None if dx is None else dx[:, 0],                      # (N, L, C)
            None if dw is None else dw[0], db)                     # (K, C/G, F)


# ---- 3-D im2col ------------------------------------------------------------


def windows3d(x_pad, kernel, stride, dilation, out_size):
    """Read-only strided view of every window: (N, OD, OH, OW, KD, KH, KW, C)."""
    n, _, _, _, c = x_pad.shape
    s_n, s_d, s_h, s_w, s_c = x_pad.strides
    (sd, sh, sw), (dd, dh, dw) = stride, dilation
    return as_strided(x_pad, shape=(n, *out_size, *kernel, c),
                      strides=(s_n, s_d * sd, s_h * sh, s_w * sw,
                               s_d * dd, s_h * dh, s_w * dw, s_c),
                      writeable=False)


def col2im3d(dcols, padded_shape, stride, dilation):
    """Scatter-add window gradients (N, OD, OH, OW, KD, KH, KW, C) onto the padded input."""
    n, od, oh, ow, kd, kh, kw, c = dcols.shape
    (sd, sh, sw), (dd, dh, dw) = stride, dilation
    dx_pad = np.zeros(padded_shape, dtype=dcols.dtype)
    for a in range(kd):
        for i in range(kh):
            for j in range(kw):
                # Tap (a, i, j) of output (z, y, x) reads input (z sd + a dd, y sh + i dh, ...).
                dx_pad[:, a * dd:a * dd + sd * (od - 1) + 1:sd,
                       i * dh:i * dh + sh * (oh - 1) + 1:sh,
                       j * dw:j * dw + sw * (ow - 1) + 1:sw, :] += dcols[:, :, :, :, a, i, j, :]
    return dx_pad


def _out_size(padded_spatial, kernel, stride, dilation):
    return tuple((n - d * (k - 1) - 1) // s + 1
                 for n, k, s, d in zip(padded_spatial, kernel, stride, dilation))


def conv3d_forward(x, w, b, stride, pads, dilation, groups=1):
    """Returns ``(out, cache)``; ``out`` is (N, OD, OH, OW, F)."""
    n, _, _, _, c = x.shape
    kd, kh, kw, cg, f = w.shape
    g = groups
    x_pad = pad_nhwc(x, pads)                                      # (N, Dp, Hp, Wp, C)
    osz = _out_size(x_pad.shape[1:4], (kd, kh, kw), stride, dilation)
    win = windows3d(x_pad, (kd, kh, kw), stride, dilation, osz)    # (N, OD, OH, OW, KD, KH, KW, C)
    m, k = n * int(np.prod(osz)), kd * kh * kw * cg
    if g == 1:
        cols = win.reshape(1, m, k)                                # (1, M, K) one copy
    else:
        cols = (win.reshape(n, *osz, kd, kh, kw, g, cg)
                .transpose(7, 0, 1, 2, 3, 4, 5, 6, 8).reshape(g, m, k))  # (G, M, K)
    wg = w.reshape(kd * kh * kw, cg, g, f // g).transpose(2, 0, 1, 3).reshape(g, k, f // g)
    out = matmul(cols, wg).transpose(1, 0, 2).reshape(m, f)        # gmk,gkf -> m(gf)
    if b is not None:
        out += b
    out = out.reshape(n, *osz, f)                                  # (N, OD, OH, OW, F)
    cache = (cols, wg, w.shape, x_pad.shape, osz, stride, pads, dilation, g, b is not None)
    return out, cache


def conv3d_backward(dout, cache, need=(True, True, True)):
    """Returns ``(dx, dw, db)``; entries not in ``need`` are None."""
    cols, wg, w_shape, padded_shape, osz, stride, pads, dilation, g, has_bias = cache
    kd, kh, kw, cg, f = w_shape
    n = dout.shape[0]
    m = n * int(np.prod(osz))
    dout_g = dout.reshape(m, g, f // g).transpose(1, 0, 2)         # (G, M, F/G)
    dx = dw = db = None
    if has_bias and need[2]:
        db = dout.reshape(m, f).sum(axis=0)                        # (F,)
    if need[1]:
        dwg = matmul(cols.transpose(0, 2, 1), dout_g)              # gkm,gmf -> gkf
        dw = (dwg.reshape(g, kd * kh * kw, cg, f // g)
              .transpose(1, 2, 0, 3).reshape(w_shape))             # (KD, KH, KW, C/G, F)
    if need[0]:
        dcols = matmul(dout_g, wg.transpose(0, 2, 1))              # gmf,gfk -> gmk
        dcols = (dcols.reshape(g, n, *osz, kd, kh, kw, cg)
                 .transpose(1, 2, 3, 4, 5, 6, 7, 0, 8)
                 .reshape(n, *osz, kd, kh, kw, g * cg))            # (N, OD, OH, OW, KD, KH, KW, C)
        dx = unpad_nhwc(col2im3d(dcols, padded_shape, stride, dilation), pads)
    return dx, dw, db


# ---- 3-D max pooling -------------------------------------------------------


def _inside(spatial, kernel, stride, pads, dilation, osz):
    """(OD, OH, OW, KD*KH*KW) mask of the window taps that read the unpadded input."""
    masks = []
    for n, k, s, (lo, _), d, o in zip(spatial, kernel, stride, pads, dilation, osz):
        pos = (np.arange(o) * s - lo)[:, None] + np.arange(k)[None, :] * d  # (O, K)
        masks.append((pos >= 0) & (pos < n))
    m = (masks[0][:, None, None, :, None, None] & masks[1][None, :, None, None, :, None]
         & masks[2][None, None, :, None, None, :])                 # (OD, OH, OW, KD, KH, KW)
    return m.reshape(*osz, -1)


def max_pool3d_forward(x, kernel, stride, pads, dilation, out_size):
    """Returns ``(out, cache)``; ``out`` is (N, OD, OH, OW, C).

    ``out_size`` comes from the caller (floor or ceil mode); windows that run past the
    padding (ceil mode) read -inf from an implicit extension.
    """
    n, _, _, _, c = x.shape
    kt = int(np.prod(kernel))
    # Pad with -inf, plus whatever extra the last (ceil-mode) window needs on the high side.
    ext = tuple((lo, max(hi, (o - 1) * s + d * (k - 1) + 1 - m - lo)) for m, k, s, (lo, hi), d, o
                in zip(x.shape[1:4], kernel, stride, pads, dilation, out_size))
    x_pad = np.pad(x, ((0, 0), *ext, (0, 0)), constant_values=-np.inf)
    win = windows3d(x_pad, kernel, stride, dilation, out_size)     # (N, OD, OH, OW, KD, KH, KW, C)
    win = win.reshape(n, *out_size, kt, c)                         # (N, OD, OH, OW, KT, C)
    arg = np.argmax(win, axis=4)                                   # first max, (N, OD, OH, OW, C)
    out = np.take_along_axis(win, arg[:, :, :, :, None], axis=4)[:, :, :, :, 0]
    nan = np.isnan(out)
    if nan.any():                                                  # torch: the LAST NaN wins
        last = kt - 1 - np.argmax(np.isnan(win[:, :, :, :, ::-1]), axis=4)
        arg = np.where(nan, last, arg)
    low = out == -np.inf
    if low.any():                                                  # -inf inputs: padding never wins
        inside = _inside(x.shape[1:4], kernel, stride, pads, dilation, out_size)
        hit = (win == -np.inf) & inside[None, :, :, :, :, None]
        arg = np.where(low, np.argmax(hit, axis=4), arg)
    cache = (arg, x_pad.shape, out_size, kernel, stride, ext, dilation)
    return out, cache


def max_pool3d_backward(dout, cache):
    """Returns ``dx`` (N, D, H, W, C): each window's gradient goes to its argmax."""
    arg, padded_shape, osz, kernel, stride, ext, dilation = cache
    n, c = dout.shape[0], dout.shape[-1]
    kt = int(np.prod(kernel))
    dcols = np.zeros((n, *osz, kt, c), dtype=dout.dtype)           # (N, OD, OH, OW, KT, C)
    np.put_along_axis(dcols, arg[:, :, :, :, None], dout[:, :, :, :, None], axis=4)
    dcols = dcols.reshape(n, *osz, *kernel, c)                     # (N, OD, OH, OW, KD, KH, KW, C)
    dx_pad = col2im3d(dcols, padded_shape, stride, dilation)
    return unpad_nhwc(dx_pad, ext)                                 # (N, D, H, W, C)
