"""Locally connected 2-D layer: a convolution with unshared weights (seed 002).

Every output position has its own filter bank, so the layer suits inputs with a fixed,
centred structure (aligned faces) where "completely different features are learned in
different parts of the image".

Notation:
    x     input,  (N, H, W, C)
    w     weight, (OH, OW, KH, KW, C, F)   one KH x KW x C x F filter bank per position
    b     bias,   (OH, OW, F)
    out   output, (N, OH, OW, F)
    P     OH * OW positions, K = KH * KW * C

    out[n, i, j, f] = b[i, j, f]
                     + sum_{u, v, c} x_pad[n, i s_h + u, j s_w + v, c] w[i, j, u, v, c, f]

Algorithm: the im2col view of conv2d, copied position-major into (P, N, K), then one
batched matmul with positions as the batch: pnk,pkf -> pnf.  Backward is two more batched
matmuls and the ``col2im2d`` scatter (a loop over kernel taps only).
"""

from __future__ import annotations

from .conv import col2im2d, pad_nhwc, unpad_nhwc, windows2d
from .threads import matmul


def local2d_forward(x, w, b, stride, pads):
    """Returns ``(out, cache)``; ``out`` is (N, OH, OW, F)."""
    n, _, _, c = x.shape
    out_h, out_w, kh, kw, _, f = w.shape
    sh, sw = stride
    p, k = out_h * out_w, kh * kw * c
    x_pad = pad_nhwc(x, pads)                                      # (N, Hp, Wp, C)
    win = windows2d(x_pad, kh, kw, sh, sw, 1, 1, out_h, out_w)     # (N, OH, OW, KH, KW, C)
    cols = win.reshape(n, p, k).transpose(1, 0, 2).copy()          # (P, N, K)
    out = matmul(cols, w.reshape(p, k, f))                         # pnk,pkf -> pnf
    out = out.transpose(1, 0, 2).reshape(n, out_h, out_w, f)       # (N, OH, OW, F)
    if b is not None:
        out = out + b
    cache = (cols, w, x_pad.shape, stride, pads, b is not None)
    return out, cache


def local2d_backward(dout, cache, need=(True, True, True)):
    """Returns ``(dx, dw, db)``; entries not in ``need`` are None."""
    cols, w, padded_shape, (sh, sw), pads, has_bias = cache
    out_h, out_w, kh, kw, c, f = w.shape
    n = dout.shape[0]
    p, k = out_h * out_w, kh * kw * c
    dx = dw = db = None
    if has_bias and need[2]:
        db = dout.sum(axis=0)                                      # (OH, OW, F)
    dout_p = dout.reshape(n, p, f).transpose(1, 0, 2)              # (P, N, F)
    if need[1]:
        dw = matmul(cols.transpose(0, 2, 1), dout_p).reshape(w.shape)  # pkn,pnf -> pkf
    if need[0]:
        dcols = matmul(dout_p, w.reshape(p, k, f).transpose(0, 2, 1))  # pnf,pfk -> pnk
        dcols = dcols.transpose(1, 0, 2).reshape(n, out_h, out_w, kh, kw, c)
        dx = unpad_nhwc(col2im2d(dcols, padded_shape, sh, sw, 1, 1), pads)  # (N, H, W, C)
    return dx, dw, db
