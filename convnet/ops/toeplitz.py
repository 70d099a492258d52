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

Blocks.  Both passes run in blocks of a few whole images (or bands of one large image's
output rows), one after another: each block copies its rows into a scratch buffer,
runs its GEMMs there and finishes its output while it is in cache.  The bias rides in
the GEMM (a column of ones after the rows, the bias tiled over OW as one more row of
T), which also makes db the last row of the dT GEMM.  These layers are small (LeNet's
GEMMs take 0.1-0.4 ms): the GEMMs run on the BLAS's own threads (``threads.blas_threads``),
whose spinning workers split them far faster than a round trip through ``algo``'s
pool, where every short NumPy call between two threads also waits for the GIL.

Fused max pooling.  With ``pool=(PH, PW)`` (non-overlapping windows, floor mode) the
columns of T are ordered (j, ow', f) for ow = ow'*PW + j, so each pool window's PW
columns are PW contiguous slices OW'*F long and its PH rows are neighbouring rows of
the block: the block is max-pooled in cache with a few long vector ops, the output
rows and columns that floor mode would crop are never computed, and the cache keeps
only the pooled output and one uint8 argmax tap per window (``pool.tile_max_argmax``).
ReLU comes after the pool (relu(max(a)) = max(relu(a)), one quarter of the work); a
window passes its gradient iff its pooled output is not 0, so the backward rebuilds
each block's gradient from the pooled gradient, the pooled output and the taps
(``pool.tile_scatter``), and no full-size activation is stored or read in either pass.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .activation import relu_mask
from .im2col import scratch
from .threads import bands, blas_threads

MAX_BLOWUP = 6.0          # Wp / KW: the band's extra multiplies, at most
MAX_BAND_BYTES = 4 << 20  # size of T
BLOCK_BYTES = 8 << 20     # target size of one block's rows and output


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


def band_matrix(w, wp, out_w, stride_w, dil_w, dtype, pw=1, b=None) -> np.ndarray:
    """T (KH*Wp*C, OW*F) from w (KH, KW, C, F), for the first ``out_w`` output columns.

    ``pw > 1`` (``out_w`` a multiple of it) orders T's columns (j, ow', f) for output
    column ow = ow'*PW + j: pool window column j of every window in one slice.  A bias
    ``b`` adds one more row, b tiled over the columns."""
    kh, kw, c, f = w.shape
    k, qw = kh * wp * c, out_w // pw
    t = np.zeros((k + (b is not None), out_w * f), dtype)
    cols = t[:k].reshape(kh, wp, c, pw, qw, f)
    for j in range(pw):                  # output columns ow'*PW + j, one write per tap
        part = cols[:, j * stride_w:, :, j]                              # (KH, Wp', C, QW, F)
        _band_view(part, kw, pw * stride_w, dil_w)[...] = w[:, :, :, None, :]
    if b is not None:
        t[k] = np.tile(np.asarray(b, dtype), out_w)
    return t


def _rows(x_pad, kh, sh, dh, out_h, out) -> np.ndarray:
    """rows (N*OH, KH*Wp*C): KH input rows per output row, copied into the first
    KH*Wp*C columns of ``out`` (N*OH, >= KH*Wp*C); returns ``out``."""
    n, _, wp, c = x_pad.shape
    s_n, s_h = x_pad.strides[:2]
    view = as_strided(x_pad, shape=(n, out_h, kh, wp * c),
                      strides=(s_n, sh * s_h, dh * s_h, x_pad.itemsize), writeable=False)
    np.copyto(out[:, :kh * wp * c].reshape(n, out_h, kh, wp * c), view)
    return out


class _Plan:
    """Shapes of one banded conv, with an optional pool fused after it."""

    def __init__(self, x_pad, w, stride, dilation, out_h, out_w, pool):
        self.n, self.hp, self.wp, self.c = x_pad.shape
        self.kh, self.kw, _, self.f = w.shape
        self.stride, self.dilation = tuple(stride), tuple(dilation)
        self.pool = None if pool is None else tuple(pool)
        self.ph, self.pw = self.pool or (1, 1)
        self.qh, self.qw = out_h // self.ph, out_w // self.pw    # pooled (or plain) size
        self.k = self.kh * self.wp * self.c                       # GEMM inner size
        self.width = self.pw * self.qw * self.f                   # GEMM output columns

    def band(self, w, dtype, b=None):
        """T (K, PW*QW*F); with a bias ``b``, one more row: b tiled over the columns."""
        return band_matrix(w, self.wp, self.qw * self.pw, self.stride[1], self.dilation[1],
                           dtype, self.pw, b)

    def band_sum(self, dt):
        """dW (KH, KW, C, F) from dT (K, PW*QW*F): the sum of T's band positions."""
        cols = dt.reshape(self.kh, self.wp, self.c, self.pw, self.qw, self.f)
        sw = self.stride[1]
        dw = None
        for j in range(self.pw):
            part = _band_view(cols[:, j * sw:, :, j], self.kw, self.pw * sw,
                              self.dilation[1]).sum(axis=3)
            dw = part if dw is None else dw + part
        return dw

    def rows(self, x_pad, blk, dtype, ones=False):
        """Block ``blk``'s rows (Mb, K) in scratch; with ``ones`` a column of ones after
        them (Mb, K+1), which multiplies T's bias row (and sums dout into db)."""
        bi, bq = blk
        nb, nq = bi.stop - bi.start, bq.stop - bq.start
        sh = self.stride[0]
        src = x_pad[bi, bq.start * self.ph * sh:]
        buf = scratch("tz_rows", (nb * nq * self.ph, self.k + ones), dtype)
        if ones:
            buf[:, self.k] = 1
        return _rows(src, self.kh, sh, self.dilation[0], nq * self.ph, buf)

    def blocks(self, itemsize):
        """(image slice, pooled-row slice) blocks of about BLOCK_BYTES of rows and output:
        groups of whole images, or bands of the rows of an image larger than that."""
        per_row = self.ph * (self.k + 1 + self.width) * itemsize
        per_image = self.qh * per_row
        if per_image <= BLOCK_BYTES:
            k = -(-self.n * per_image // BLOCK_BYTES)
            return [(s, slice(0, self.qh)) for s in bands(self.n, k)]
        k = min(self.qh, -(-per_image // BLOCK_BYTES))
        return [(slice(i, i + 1), s) for i in range(self.n) for s in bands(self.qh, k)]


def _flat(a, blk):
    """The (Nb*Q, rest) rows of block ``blk`` of an (N, Q, ...) array (a view: a block
    is whole images or a band of one image)."""
    part = a[blk]
    return part.reshape(part.shape[0] * part.shape[1], -1)


def toeplitz_forward(x_pad, w, b, stride, dilation, out_h, out_w, relu=False, pool=None):
    """Returns ``(out, cache)``: out (N, OH, OW, F) from the padded input, clamped at 0
    with ``relu``; with ``pool=(PH, PW)`` (and ``relu``) the max-pooled
    (N, OH // PH, OW // PW, F)."""
    if pool is not None and not relu:
        raise ValueError(f"toeplitz_forward: pool needs relu, got pool {pool}, relu={relu}")
    dtype = np.result_type(x_pad.dtype, w.dtype)
    x_pad = np.ascontiguousarray(x_pad, dtype=dtype)
    p = _Plan(x_pad, w, stride, dilation, out_h, out_w, pool)
    t = p.band(w, dtype, b)                                              # (K(+1), PW*QW*F)
    out = np.empty((p.n, p.qh, p.qw, p.f), dtype)                        # (N, QH, QW, F)
    arg = None if pool is None else np.empty(out.shape, np.uint8)
    if pool is not None:
        from .pool import tile_max_argmax  # ops.pool imports ops.conv, which imports this
    with blas_threads():
        for blk in p.blocks(np.dtype(dtype).itemsize):
            rows = p.rows(x_pad, blk, dtype, ones=b is not None)         # (Mb, K(+1))
            dst = _flat(out, blk)                                        # (Mb / PH, QW*F)
            if pool is None:
                np.matmul(rows, t, out=dst)                              # mk,kf -> mf
            else:
                y = np.matmul(rows, t, out=scratch("tz_y", (rows.shape[0], p.width), dtype))
                mq, width = dst.shape
                tile_max_argmax(y.reshape(mq, 1, p.ph, 1, p.pw, width),
                                out=dst.reshape(mq, 1, 1, width),
                                arg=_flat(arg, blk).reshape(mq, 1, 1, width))
            if relu:
                np.maximum(dst, 0, out=dst)                              # NaN stays NaN
    fused = None if pool is None else (out, arg)
    # T (without its bias row) is kept for dx: a few hundred KB at most (MAX_BAND_BYTES).
    return out, (x_pad, w, t[:p.k], p.stride, p.dilation, b is not None, p.pool, fused)


def toeplitz_backward(dout, cache, need, relu_out=None):
    """Returns ``(dx_pad, dw, db)`` (dx on the padded input); entries not in ``need``
    are None.  ``relu_out`` (the forward's clamped output) makes it the backward of
    conv + ReLU; after a fused pool, ``dout`` is the pooled gradient."""
    x_pad, w, t, stride, dilation, has_bias, pool, fused = cache
    if fused is not None:
        relu_out, arg = fused                     # a window passes iff its max is not 0
    if relu_out is not None and dout.shape != relu_out.shape:
        raise ValueError(f"toeplitz_backward: dout has shape {dout.shape}, the forward's "
                         f"output {relu_out.shape}")
    n, hp, wp, c = x_pad.shape
    kh, kw, _, f = w.shape
    ph, pw = pool or (1, 1)
    p = _Plan(x_pad, w, stride, dilation, dout.shape[1] * ph, dout.shape[2] * pw, pool)
    dtype = np.result_type(x_pad.dtype, dout.dtype)
    dout = np.ascontiguousarray(dout, dtype=dtype)
    if relu_out is not None:
        relu_out = np.ascontiguousarray(relu_out)
    want_db = need[2] and has_bias
    dx = np.zeros((n, hp, wp * c), dtype) if need[0] else None           # (N, Hp, Wp*C)
    acc = np.zeros((p.k + 1, p.width), dtype)                            # [dT; db row]
    sh, dh = p.stride[0], p.dilation[0]
    from .pool import tile_scatter

    def grad_rows(blk):
        """This block's gradient of the conv output (Mb, PW*QW*F), masked and unpooled."""
        g = _flat(dout, blk)
        if relu_out is None:
            return g
        masked = relu_mask(g, _flat(relu_out, blk), scratch("tz_g", g.shape, dtype),
                           scratch("tz_m", g.shape, dtype))
        if pool is None:
            return masked
        mq, width = masked.shape
        dy = scratch("tz_dy", (mq * ph, p.width), dtype)
        tile_scatter(masked.reshape(mq, 1, 1, width), _flat(arg, blk).reshape(mq, 1, 1, width),
                     dy.reshape(mq, 1, ph, 1, pw, width))
        return dy

    with blas_threads():
        for blk in p.blocks(np.dtype(dtype).itemsize):
            dy = grad_rows(blk)                                          # (Mb, PW*QW*F)
            if need[1]:        # [rows, 1]^T dy: dT and, in its last row, db
                rows = p.rows(x_pad, blk, dtype, ones=want_db)
                acc[:rows.shape[1]] += np.matmul(rows.T, dy)             # km,mf -> kf
            elif want_db:
                acc[p.k] += np.matmul(np.ones(dy.shape[0], dtype), dy)  # m,mf -> f
            if need[0]:
                bi, bq = blk
                drows = np.matmul(dy, t.T, out=scratch("tz_dr", (dy.shape[0], p.k), dtype))
                drows = drows.reshape(bi.stop - bi.start, -1, kh, wp * c)  # mf,fk -> mk
                h0 = bq.start * ph * sh
                for i in range(kh):
                    dst = dx[bi, h0 + i * dh:h0 + i * dh + sh * (drows.shape[1] - 1) + 1:sh]
                    np.add(dst, drows[:, :, i], out=dst)
    dw_ = db = None
    if need[1]:
        dw_ = p.band_sum(acc[:p.k])                                      # (KH, KW, C, F)
    if want_db:
        db = acc[p.k].reshape(-1, f).sum(axis=0)
    if dx is not None:
        dx = dx.reshape(n, hp, wp, c)
    return dx, dw_, db
