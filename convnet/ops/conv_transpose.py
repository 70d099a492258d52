"""2-D transposed convolution ("deconvolution") on NHWC data.

Seed 002: "a deconvolutional layer is the transpose of a convolutional layer ... a
multiplication with the transpose of that matrix".  Write conv2d with weight w,
stride s, padding p and dilation d as y = A_w z, mapping z (N, OH, OW, C_out) to
y (N, H, W, C_in).  Then conv_transpose2d(x, w) = A_w^T x: exactly the gradient of
that conv2d with respect to its input, applied to x.

Notation:
    x     input,  (N, H, W, C_in)
    w     weight, (KH, KW, C_out/G, C_in)  -- HWIO of the conv whose input gradient
          this is (that conv reads C_out/G channels per group and writes C_in);
          torch stores the same numbers as (C_in, C_out/G, KH, KW)
    b     bias,   (C_out,)
    out   output, (N, OH, OW, C_out)
    op    output_padding: extra rows/columns at the bottom/right (< max(s, d))

    OH = (H - 1) s_h - p_top - p_bottom + d_h (KH - 1) + op_h + 1

Algorithm: the forward is conv2d's input-gradient path -- one matmul from x to
window columns (N, H, W, KH, KW, C_out), then ``col2im2d`` scatters them onto the
padded output (a loop over kernel taps only) and the padding is cropped.  The backward
is a plain conv2d: im2col of the padded dout, one matmul for dx, one for dw.
"""

from __future__ import annotations

import numpy as np

from .conv import col2im2d, pad_nhwc, unpad_nhwc, windows2d
from .threads import matmul


def conv_transpose_output_size(n: int, k: int, s: int, p, d: int, op: int) -> int:
    """(n - 1) s - p_lo - p_hi + d (k - 1) + output_padding + 1."""
    p_lo, p_hi = (p, p) if isinstance(p, int) else p
    return (n - 1) * s - p_lo - p_hi + d * (k - 1) + op + 1


def _group_weight(w, g):
    """(KH, KW, F/G, C) -> (G, KH*KW*F/G, C/G): one block per group."""
    kh, kw, fg, c = w.shape
    return w.reshape(kh, kw, fg, g, c // g).transpose(3, 0, 1, 2, 4).reshape(g, -1, c // g)


def conv_transpose2d_forward(x, w, b, stride, pads, output_padding, dilation, groups=1):
    """Returns ``(out, cache)``; ``out`` is (N, OH, OW, C_out)."""
    n, h, wd, c = x.shape
    kh, kw, fg, _ = w.shape
    sh, sw = stride
    dh, dw = dilation
    g = groups
    f = fg * g
    out_h, out_w = (conv_transpose_output_size(m, k, s, p, d, o) for m, k, s, p, d, o in
                    zip((h, wd), (kh, kw), stride, pads, dilation, output_padding))
    padded_shape = (n, out_h + sum(pads[0]), out_w + sum(pads[1]), f)
    m = n * h * wd
    x_g = x.reshape(m, g, c // g).transpose(1, 0, 2)               # (G, M, C/G)
    dcols = matmul(x_g, _group_weight(w, g).transpose(0, 2, 1))    # gmc,gck -> gmk
    dcols = (dcols.reshape(g, n, h, wd, kh, kw, fg)
             .transpose(1, 2, 3, 4, 5, 0, 6)
             .reshape(n, h, wd, kh, kw, f))                        # (N, H, W, KH, KW, C_out)
    out_pad = col2im2d(dcols, padded_shape, sh, sw, dh, dw)        # (N, OH+p, OW+p, C_out)
    out = unpad_nhwc(out_pad, pads)                                # (N, OH, OW, C_out)
    if not out.flags.c_contiguous:
        out = np.ascontiguousarray(out)
    if b is not None:
        out += b
    cache = (x, w, stride, pads, dilation, g, b is not None)
    return out, cache


def conv_transpose2d_backward(dout, cache, need=(True, True, True)):
    """Returns ``(dx, dw, db)``; entries not in ``need`` are None."""
    x, w, (sh, sw), pads, (dh, dw_), g, has_bias = cache
    n, h, wd, c = x.shape
    kh, kw, fg, _ = w.shape
    m = n * h * wd
    dx = dw = db = None
    if has_bias and need[2]:
        db = dout.sum(axis=(0, 1, 2))                              # (C_out,)
    if not (need[0] or need[1]):
        return dx, dw, db
    # The conv2d that this op transposes, run forward on dout: windows of the padded
    # dout, cropped so that exactly H x W windows fit (output_padding may add a row).
    len_h = (h - 1) * sh + dh * (kh - 1) + 1
    len_w = (wd - 1) * sw + dw_ * (kw - 1) + 1
    d_pad = pad_nhwc(dout, pads)[:, :len_h, :len_w]                # (N, Lh, Lw, C_out)
    win = windows2d(d_pad, kh, kw, sh, sw, dh, dw_, h, wd)         # (N, H, W, KH, KW, C_out)
    cols = (win.reshape(n, h, wd, kh, kw, g, fg)
            .transpose(5, 0, 1, 2, 3, 4, 6)
            .reshape(g, m, kh * kw * fg))                          # (G, M, K)
    if need[0]:
        dx_g = matmul(cols, _group_weight(w, g))                   # gmk,gkc -> gmc
        dx = dx_g.transpose(1, 0, 2).reshape(n, h, wd, c)          # (N, H, W, C_in)
    if need[1]:
        x_g = x.reshape(m, g, c // g).transpose(1, 0, 2)           # (G, M, C/G)
        dw_g = matmul(cols.transpose(0, 2, 1), x_g)                # gkm,gmc -> gkc
        dw = (dw_g.reshape(g, kh, kw, fg, c // g)
              .transpose(1, 2, 3, 0, 4).reshape(w.shape))          # (KH, KW, C_out/G, C_in)
    return dx, dw, db
