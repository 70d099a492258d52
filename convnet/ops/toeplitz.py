"""Convolution by row lowering and a banded weight matrix, for thin layers.

Notation (NHWC / HWIO, as in ``ops.conv``):
    x_pad (N, Hp, Wp, C)   w (KH, KW, C, F)   out (N, OH, OW, F)
    s, d  stride and dilation;  output pixel (oh, ow), tap (i, j) reads input
          (oh*s_h + i*d_h, ow*s_w + j*d_w)

im2col copies KH*KW*C values per output pixel and then runs a GEMM whose inner size is
that short K (25 for LeNet's first layer) -- for thin inputs the copy and the narrow
GEMM both run far below the BLAS's speed.  Lowering only along the height (as in Cho
and Brand's MEC, 2017) copies whole input rows instead: output row (n, oh) needs the
KH input rows (n, oh*s_h + i*d_h), each Wp*C values long and contiguous,

    rows[(n, oh), (i, x, c)] = x_pad[n, oh*s_h + i*d_h, x, c]       (N*OH, KH*Wp*C)

and the sum over the kernel's width moves into a banded ("Toeplitz") weight matrix

    T[(i, x, c), (ow, f)] = w[i, j, c, f]  where x = ow*s_w + j*d_w, else 0
                                                                     (KH*Wp*C, OW*F)
so that one GEMM gives the output rows in NHWC order:

    out[(n, oh), (ow, f)] = sum rows[(n, oh), k] T[k, (ow, f)]       # mk,kf -> mf

The GEMM does Wp/KW times the direct multiplies (the band's zeros), so ``applies_well``
keeps it to layers where that factor is small; in exchange the copy is only KH times
the input and the GEMM is wide.  Backward uses the same two matrices:

    dT   = rows^T dout_rows; dW[i, j, c, f] = sum over ow of dT on the band
    drows = dout_rows T^T;  dX: KH shifted row adds (the only scatter)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .algo import matmul
from .im2col import bias_grad, scratch

MAX_BLOWUP = 6.0          # Wp / KW: the band's extra multiplies, at most
MAX_BAND_BYTES = 4 << 20  # size of T


def blowup(x_shape, w_shape, pads) -> float:
    """Multiplies done per direct-conv multiply: Wp / KW."""
    wp = x_shape[2] + sum(pads[1])
    return wp / w_shape[1]


def applies_well(x_shape, w_shape, stride, pads, dilation, groups) -> bool:
    """Whether this conv is thin and narrow enough for the banded GEMM to win."""
    _, _, wd, c = x_shape
    kh, kw, _, f = w_shape
    if groups != 1 or c > 16 or kw < 4:   # 3x3: the band is mostly zeros; im2col wins
        return False
    wp = wd + sum(pads[1])
    out_w = (wp - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    band = kh * wp * c * out_w * f * 4
    return blowup(x_shape, w_shape, pads) <= MAX_BLOWUP and band <= MAX_BAND_BYTES


def _band_view(t, kw, stride_w, dil_w):
    """The (KH, KW, C, OW, F) view of T's non-zero band: tap j of output column ow sits
    at input column x = ow*s_w + j*d_w."""
    s_i, s_x, s_c, s_ow, s_f = t.strides
    kh, _, c, out_w, f = t.shape
    return as_strided(t, shape=(kh, kw, c, out_w, f),
                      strides=(s_i, dil_w * s_x, s_c, stride_w * s_x + s_ow, s_f))


def band_matrix(w, wp, out_w, stride_w, dil_w, dtype) -> np.ndarray:
    """T (KH*Wp*C, OW*F) from w (KH, KW, C, F)."""
    kh, kw, c, f = w.shape
    t = np.zeros((kh, wp, c, out_w, f), dtype)
    _band_view(t, kw, stride_w, dil_w)[...] = w[:, :, :, None, :]        # one write per tap
    return t.reshape(kh * wp * c, out_w * f)


def _rows(x_pad, kh, sh, dh, out_h, dtype) -> np.ndarray:
    """rows (N*OH, KH*Wp*C) in a scratch buffer: KH input rows per output row."""
    n, _, wp, c = x_pad.shape
    s_n, s_h = x_pad.strides[:2]
    view = as_strided(x_pad, shape=(n, out_h, kh, wp * c),
                      strides=(s_n, sh * s_h, dh * s_h, x_pad.itemsize), writeable=False)
    rows = scratch("rows", (n, out_h, kh, wp * c), dtype)
    np.copyto(rows, view)
    return rows.reshape(n * out_h, kh * wp * c)


def toeplitz_forward(x_pad, w, b, stride, dilation, out_h, out_w):
    """Returns ``(out, cache)``: out (N, OH, OW, F) from the padded input."""
    n, _, wp, _ = x_pad.shape
    kh, kw, c, f = w.shape
    dtype = np.result_type(x_pad.dtype, w.dtype)
    x_pad = np.ascontiguousarray(x_pad, dtype=dtype)
    t = band_matrix(w, wp, out_w, stride[1], dilation[1], dtype)         # (KH*Wp*C, OW*F)
    rows = _rows(x_pad, kh, stride[0], dilation[0], out_h, dtype)        # (N*OH, KH*Wp*C)
    out = matmul(rows, t).reshape(n, out_h, out_w, f)                    # mk,kf -> mf
    if b is not None:
        out += b
    return out, (x_pad, w, stride, dilation, b is not None)


def toeplitz_backward(dout, cache, need):
    """Returns ``(dx_pad, dw, db)`` (dx on the padded input); entries not in ``need``
    are None."""
    x_pad, w, stride, dilation, has_bias = cache
    n, out_h, out_w, f = dout.shape
    kh, kw, c, _ = w.shape
    _, hp, wp, _ = x_pad.shape
    dtype = np.result_type(x_pad.dtype, dout.dtype)
    d2 = np.ascontiguousarray(dout, dtype=dtype).reshape(n * out_h, out_w * f)  # (N*OH, OW*F)
    dx = dw = db = None
    if has_bias and need[2]:
        db = bias_grad(dout)
    if need[1]:
        rows = _rows(x_pad, kh, stride[0], dilation[0], out_h, dtype)
        dt = matmul(rows.T, d2).reshape(kh, wp, c, out_w, f)             # km,mf -> kf
        dw = _band_view(dt, kw, stride[1], dilation[1]).sum(axis=3)      # (KH, KW, C, F)
    if need[0]:
        t = band_matrix(w, wp, out_w, stride[1], dilation[1], dtype)
        drows = matmul(d2, t.T).reshape(n, out_h, kh, wp * c)            # mf,fk -> mk
        dx = np.zeros((n, hp, wp * c), dtype)                            # (N, Hp, Wp*C)
        sh, dh = stride[0], dilation[0]
        for i in range(kh):
            dst = dx[:, i * dh:i * dh + sh * (out_h - 1) + 1:sh]
            np.add(dst, drows[:, :, i], out=dst)
        dx = dx.reshape(n, hp, wp, c)
    return dx, dw, db
