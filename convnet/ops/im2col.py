"""Convolution by im2col + GEMM, blocked so the column matrix never exists in full.

Notation (NHWC / HWIO, as in ``ops.conv``):
    x (N, H, W, C)   w (KH, KW, C, F)   out (N, OH, OW, F)   K = KH*KW*C,  M = N*OH*OW

Forward: a strided view lists each output pixel's KH x KW x C window; block by block
(a few images, or a few output rows of one large image, about ``BLOCK_BYTES`` of
columns) one copy turns the view into a (M_b, K) matrix in a reused scratch buffer and
one BLAS matmul writes (M_b, F) straight into the output:

    out[m, f] = sum_k cols[m, k] w[k, f]                            # mk,kf -> mf

The blocks stay in cache and the full (M, K) matrix -- KH*KW times the input -- is
never allocated, which also keeps training memory at the input's size: backward
recomputes the columns block by block from the saved padded input.

Backward:
    dW = sum over blocks of cols_b^T @ dout_b                       # km,mf -> kf
    dX, stride 1: a full correlation of the zero-padded dout with the kernel flipped
         in space and transposed in channels -- the forward algorithm again, with no
         col2im scatter:  dx[y, x, c] = sum_{i,j,f} dpad[y+i d, x+j d, f] w[KH-1-i, KW-1-j, c, f]
    dX, stride > 1: dcols = dout @ w^T, then the col2im scatter over the KH*KW taps.
    1x1 convolutions without padding are a plain GEMM on the (M, C) pixel matrix.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .activation import relu_mask
from .threads import bands, matmul, num_threads, run_blocks, run_reduce

BLOCK_BYTES = 2 << 20     # target size of one block of columns

_local = threading.local()


def aligned_empty(shape, dtype=np.float32, align: int = 64) -> np.ndarray:
    """An uninitialised array whose data starts on an ``align``-byte boundary.  NumPy's
    start 16 bytes past one, so every other 64-byte vector load of a compiled kernel
    (``ops.points``, ``ops.winograd_rows``) split across two cache lines: Winograd's
    point GEMMs on VGG's 14x14x512 layers ran 15-18 % slower on such panels."""
    dtype = np.dtype(dtype)
    size = shape if isinstance(shape, int) else math.prod(shape)
    buf = np.empty(size + align // dtype.itemsize, dtype)
    start = (-buf.ctypes.data % align) // dtype.itemsize
    return buf[start:start + size].reshape(shape)


PAGE = 4096     # bytes


def lane_rows(k: int, size: int, dtype=np.float32) -> np.ndarray:
    """k uninitialised rows of at least ``size`` values, one per thread's partial sums:
    a (k, stride) array whose rows each start a page and end a page before the next
    starts.  Packed end to end, two threads' rows made the first layers' weight
    gradient 5-10 % slower on 2 threads (64 or 128 bytes apart: as slow; 256: part of
    the gain; page-aligned: all of it).  Each thread there rewrites its row thousands of
    times a call, and most likely a core's prefetchers, which stop at a page's end,
    took lines of the other core's row.  (The kernels that sum in registers and write
    their partials once, ``ops.direct``'s and im2col's, ran level either way.)"""
    dtype = np.dtype(dtype)
    return aligned_empty((k, _lane_stride(size, dtype.itemsize)), dtype, PAGE)


def _lane_stride(size: int, itemsize: int) -> int:
    per = PAGE // itemsize
    return -(-size // per) * per + per


def _pool() -> dict:
    """This thread's reused buffers (``scratch``, ``lane_scratch``)."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    return pool


def scratch(tag: str, shape, dtype) -> np.ndarray:
    """A reused, uninitialised buffer of ``shape`` (one per tag, dtype and thread),
    64-byte aligned."""
    pool = _pool()
    size = math.prod(shape)                   # (np.prod costs ~20 us a call)
    key = (tag, np.dtype(dtype).str)
    buf = pool.get(key)
    if buf is None or buf.size < size:
        buf = pool[key] = aligned_empty(max(size, 1), dtype)
    return buf[:size].reshape(shape)


def lane_scratch(tag: str, k: int, size: int) -> np.ndarray:
    """``lane_rows(k, size)`` (float32) reused: one per tag and calling thread, kept
    while k and the row stride stay the same (a fresh one cost 10-12 us a call, beside
    a 0.5 ms kernel that had just pushed NumPy's allocator out of the caches)."""
    pool = _pool()
    key = (tag, "lanes")
    rows = pool.get(key)
    if rows is None or rows.shape != (k, _lane_stride(size, 4)):
        rows = pool[key] = lane_rows(k, size)
    return rows


def release_scratch() -> None:
    """Free this thread's scratch buffers."""
    _local.pool = {}


def windows(x_pad, kh, kw, sh, sw, dh, dw, out_h, out_w) -> np.ndarray:
    """Read-only strided view of every KH x KW window: (N, OH, OW, KH, KW, C)."""
    n, _, _, c = x_pad.shape
    s_n, s_h, s_w, s_c = x_pad.strides
    return as_strided(x_pad, shape=(n, out_h, out_w, kh, kw, c),
                      strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c),
                      writeable=False)


def blocks(n: int, out_h: int, row_bytes: int, weight_bytes: int = 0):
    """Yield (image slice, output-row slice) blocks of about ``BLOCK_BYTES`` of columns.

    Whole images are grouped while one image fits in a block; a larger image is split
    into bands of output rows (the loop then runs over images, each a large block).
    Every block's GEMM re-reads the weights, so a block holds at least four times the
    weights' bytes of columns (wide layers at small spatial size stay one block, whose
    GEMM the BLAS threads share).
    """
    target = max(BLOCK_BYTES, 4 * weight_bytes)
    img_bytes = row_bytes * out_h
    if img_bytes <= target:
        step = max(1, target // max(img_bytes, 1))
        for i in range(0, n, step):
            yield slice(i, min(n, i + step)), slice(0, out_h)
        return
    rows = max(1, target // max(row_bytes, 1))
    for i in range(n):
        for r in range(0, out_h, rows):
            yield slice(i, i + 1), slice(r, min(out_h, r + rows))


THIN_CHANNELS = 4   # inputs with at most this many channels use K-major columns


def kmajor(c: int) -> bool:
    """Whether a conv on ``c`` input channels builds K-major columns (see ``_fill_kmajor``)."""
    return c <= THIN_CHANNELS


def _parallel(col_bytes: int) -> bool:
    """Whether the blocks of a conv go to the thread pool: not for small convs (under
    four blocks), where running the blocks in turn, each GEMM cut over the pool
    (``threads.matmul``), measured faster."""
    return col_bytes >= 4 * BLOCK_BYTES


def _row_bytes(c: int, out_w: int, kx: int, f: int, itemsize: int) -> int:
    """Bytes of one output row's block data: its columns, and for thin inputs also its
    output (K-major blocks are sized so that the (M_b, F) output, F times wider than the
    K of 25-28, stays in cache for the fused ReLU and masks)."""
    return out_w * (kx + (f if kmajor(c) else 0)) * itemsize


def _fill_kmajor(dst, x_pad, b, kh, kw, sh, sw, dh, dw, out_w):
    """dst (KH, KW, C, Nb, Rb, OW) <- the block's windows, in one strided copy.

    With few channels the (M, K) column matrix has rows of K = KH*KW*C (25 or 27) values
    that a strided copy fills a few bytes at a time; stored K-major (K, M) every tap
    and channel is instead a run of OW pixels.  The GEMMs then read it as the
    transposed operand (out = cols^T w) or as is (dW = cols dout), without a copy."""
    bi, br = b
    src = x_pad[bi, br.start * sh:]
    s_n, s_h, s_w, s_c = src.strides
    view = as_strided(src, shape=dst.shape,
                      strides=(dh * s_h, dw * s_w, s_c, s_n, sh * s_h, sw * s_w),
                      writeable=False)                                    # (KH, KW, C, Nb, Rb, OW)
    np.copyto(dst, view)


def _columns(x_pad, win, b, w_shape, stride, dilation, out_w, dtype, ones):
    """The block's column matrix in a scratch buffer: (K(+1), M_b) K-major for thin inputs,
    else (M_b, K(+1)).  With ``ones`` an extra row (column) of ones is appended, so the
    same GEMM that multiplies by [w; b] adds the bias, and the one that makes dW makes db."""
    kh, kw, c, _ = w_shape
    k = kh * kw * c
    nb, rb = b[0].stop - b[0].start, b[1].stop - b[1].start
    rows = nb * rb * out_w
    kx = k + 1 if ones else k
    if kmajor(c):
        cols = scratch("cols", (kx, rows), dtype)                          # (K(+1), M_b)
        _fill_kmajor(cols[:k].reshape(kh, kw, c, nb, rb, out_w), x_pad, b, kh, kw,
                     *stride, *dilation, out_w)
        if ones:
            cols[k] = 1
        return cols, cols.T                                              # (K, M), (M, K) views
    cols = scratch("cols", (rows, kx), dtype)                              # (M_b, K(+1))
    dst = as_strided(cols, shape=(nb, rb, out_w, kh, kw, c),
                     strides=(rb * out_w * kx * cols.itemsize, out_w * kx * cols.itemsize,
                              kx * cols.itemsize, kw * c * cols.itemsize,
                              c * cols.itemsize, cols.itemsize))
    np.copyto(dst, win[b])                                               # the one copy
    if ones:
        cols[:, k] = 1
    return cols.T, cols


def _weight_matrix(w) -> np.ndarray:
    """w (KH, KW, C, F) as the GEMM's (K, F) matrix, C- or F-contiguous.

    The dX pass hands in w[::-1, ::-1] with its channel axes swapped, whose F axis has
    the largest stride: a (K, F) copy of that transposes element by element (2.9 ms for
    VGG's 3x3x512x512, 0.65 ms for a plain copy).  Copied as (F, K) instead, it moves
    runs of C contiguous values, and its transpose is the (K, F) matrix the BLAS reads
    as a transposed operand."""
    kh, kw, c, f = w.shape
    if w.strides[3] > w.strides[2] and abs(w.strides[2]) == w.itemsize:
        return np.ascontiguousarray(w.transpose(3, 0, 1, 2)).reshape(f, kh * kw * c).T
    return w.reshape(kh * kw * c, f)


def gemm_conv(x_pad, w, stride, dilation, out_h, out_w, out=None, b=None,
              relu=False) -> np.ndarray:
    """(N, OH, OW, F) = windows of ``x_pad`` (no further padding) times ``w`` (+ ``b``),
    blocked; ``relu`` clamps each block at 0 while it is still in cache."""
    n = x_pad.shape[0]
    kh, kw, c, f = w.shape
    dtype = np.result_type(x_pad.dtype, w.dtype)
    w2 = _weight_matrix(w)                                               # (K, F)
    # Thin inputs (K of 25-28): the bias rides in the GEMM as one more row of weights,
    # saving a pass over an output F times wider than K.  Wider ones add it to each block
    # in cache: appending a row would copy all K x F weights on every call (9.4 MB, 15 %
    # of a 14x14x512 VGG layer), for a pass over an output block that is tiny next to K.
    ones = b is not None and kmajor(c)
    if ones:
        w2 = np.concatenate([w2, b.reshape(1, f)])
    if w2.dtype != dtype or not (w2.flags.c_contiguous or w2.flags.f_contiguous):
        w2 = np.ascontiguousarray(w2, dtype=dtype)                       # (K(+1), F)
    if out is None:
        out = np.empty((n, out_h, out_w, f), dtype)                      # (N, OH, OW, F)
    win = windows(x_pad, kh, kw, *stride, *dilation, out_h, out_w)       # (N, OH, OW, KH, KW, C)

    def block(blk):
        _, cols_mk = _columns(x_pad, win, blk, w.shape, stride, dilation, out_w, dtype, ones)
        rows = cols_mk.shape[0]
        o = out[blk].reshape(rows, f)
        matmul(cols_mk, w2, out=o)                                       # mk,kf -> mf
        if b is not None and not ones:
            np.add(o, b, out=o)
        if relu:
            np.maximum(o, 0, out=o)                                      # NaN stays NaN

    row_bytes = _row_bytes(c, out_w, w2.shape[0], f, dtype.itemsize)
    run_blocks(block, blocks(n, out_h, row_bytes, w2.nbytes),
               parallel=_parallel(n * out_h * row_bytes))
    return out


def weight_grad(x_pad, dout, w_shape, stride, dilation, with_bias=False, relu_out=None):
    """dW = sum over blocks of cols_b^T @ dout_b, columns recomputed from ``x_pad``.

    Returns dW (KH, KW, C, F), or (dW, db) when ``with_bias``: db comes from the same GEMM
    through a row of ones appended to the columns.  ``relu_out`` (a ReLU's output, shaped
    like dout) masks each block of dout first, in cache: the gradient through the ReLU."""
    n, out_h, out_w, f = dout.shape
    kh, kw, c, _ = w_shape
    k = kh * kw * c
    kx = k + 1 if with_bias else k
    dtype = np.result_type(x_pad.dtype, dout.dtype)
    win = windows(x_pad, kh, kw, *stride, *dilation, out_h, out_w)       # (N, OH, OW, KH, KW, C)

    def block(blk, part):
        cols_km, _ = _columns(x_pad, win, blk, w_shape, stride, dilation, out_w, dtype,
                              with_bias)
        rows = cols_km.shape[1]
        if part is None:
            part = scratch("dw", (kx, f), dtype)
        d = dout[blk].reshape(rows, f)
        if relu_out is not None:
            d = relu_mask(d, relu_out[blk].reshape(rows, f), scratch("dmask", (rows, f), d.dtype),
                          scratch("dmask_w", (rows, f), d.dtype))
        return matmul(cols_km, d, out=part)                              # km,mf -> kf

    row_bytes = _row_bytes(c, out_w, kx, f, dtype.itemsize)
    dw = run_reduce(block, blocks(n, out_h, row_bytes, kx * f * dtype.itemsize), (kx, f), dtype,
                    parallel=_parallel(n * out_h * row_bytes))
    if with_bias:
        return dw[:k].reshape(w_shape), dw[k].copy()                     # (KH, KW, C, F), (F,)
    return dw.reshape(w_shape)                                           # (KH, KW, C, F)


def bias_grad(dout, parallel=True) -> np.ndarray:
    """db = dout summed over every axis but the last, as BLAS matrix-vector products
    (ones @ dout: one pass at memory speed, 2-3x faster than ``sum(axis=0)``), one row
    band per thread of the pool (``parallel=False``: one thread, e.g. inside a block)."""
    f = dout.shape[-1]
    d2 = dout.reshape(-1, f)                                             # (M, F)
    t = num_threads() if parallel and d2.nbytes >= (8 << 20) else 1
    return run_reduce(lambda s, out: np.matmul(np.ones(s.stop - s.start, d2.dtype), d2[s],
                                               out=out),
                      bands(d2.shape[0], t), (f,), d2.dtype, parallel=t > 1)  # m,mf -> f


def pad_or_crop(a, pads):
    """Zero-pad (positive) or crop (negative) the two spatial axes of an NHWC array."""
    crop = tuple(slice(max(-lo, 0), a.shape[i + 1] - max(-hi, 0))
                 for i, (lo, hi) in enumerate(pads))
    a = a[(slice(None), *crop)]
    grow = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads)
    if any(lo or hi for lo, hi in grow):
        a = np.pad(a, ((0, 0), *grow, (0, 0)))
    return a


def input_grad_stride1(dout, w, x_hw, pads, dilation) -> np.ndarray:
    """dX of a stride-1 conv as a full correlation with the flipped, transposed kernel."""
    kh, kw, _, _ = w.shape
    (dh, dw_), (h, wd) = dilation, x_hw
    (pt, pb), (pl, pr) = pads
    eh, ew = dh * (kh - 1), dw_ * (kw - 1)
    # dx[y] = dx_pad[y + pt]; dx_pad needs dout padded by (KH-1)*d on both sides.
    dpad = pad_or_crop(dout, ((eh - pt, eh - pb), (ew - pl, ew - pr)))  # (N, H+eh, W+ew, F)
    w_flip = w[::-1, ::-1].transpose(0, 1, 3, 2)                         # (KH, KW, F, C)
    return gemm_conv(dpad, w_flip, (1, 1), dilation, h, wd)              # (N, H, W, C)


def col2im(dcols, padded_shape, sh, sw, dh, dw) -> np.ndarray:
    """Scatter-add window gradients (N, OH, OW, KH, KW, C) onto the padded input."""
    n, out_h, out_w, kh, kw, c = dcols.shape
    dx_pad = np.zeros(padded_shape, dtype=dcols.dtype)                   # (N, Hp, Wp, C)
    for i in range(kh):
        for j in range(kw):
            # Tap (i, j) of output pixel (oh, ow) reads input (oh*sh + i*dh, ow*sw + j*dw).
            dx_pad[:, i * dh:i * dh + sh * (out_h - 1) + 1:sh,
                   j * dw:j * dw + sw * (out_w - 1) + 1:sw, :] += dcols[:, :, :, i, j, :]
    return dx_pad


def input_grad_strided(dout, w, padded_shape, stride, dilation) -> np.ndarray:
    """dX (padded) of a strided conv: per-tap dcols = dout @ w_tap^T, scattered back.

    One batched GEMM makes the window gradients tap-major, (KH*KW, M, C), so each tap's
    scatter-add reads one contiguous (N, OH, OW, C) block and writes rows of OW*C values
    (a (M, KH*KW*C) layout would add C values at a time)."""
    n, out_h, out_w, f = dout.shape
    kh, kw, c, _ = w.shape
    sh, sw = stride
    dh, dw = dilation
    w_taps = w.reshape(kh * kw, c, f).transpose(0, 2, 1)                 # (KH*KW, F, C)
    dcols = matmul(dout.reshape(n * out_h * out_w, f), w_taps)           # mf,tfc -> tmc
    dcols = dcols.reshape(kh, kw, n, out_h, out_w, c)                    # (KH, KW, N, OH, OW, C)
    dx_pad = np.zeros(padded_shape, dtype=dcols.dtype)                   # (N, Hp, Wp, C)
    for i in range(kh):
        for j in range(kw):
            # Tap (i, j) of output pixel (oh, ow) reads input (oh*sh + i*dh, ow*sw + j*dw).
            dst = dx_pad[:, i * dh:i * dh + sh * (out_h - 1) + 1:sh,
                         j * dw:j * dw + sw * (out_w - 1) + 1:sw, :]
            np.add(dst, dcols[i, j], out=dst)
    return dx_pad


# ---- 1x1 convolutions: a plain GEMM ---------------------------------------

def conv1x1_forward(x, w, stride):
    """1x1 kernel, no padding: (N*OH*OW, C) @ (C, F).  Returns (out, x_sub)."""
    sh, sw = stride
    x_sub = x if (sh, sw) == (1, 1) else x[:, ::sh, ::sw]                # (N, OH, OW, C)
    n, out_h, out_w, c = x_sub.shape
    f = w.shape[3]
    out = matmul(x_sub.reshape(-1, c), w.reshape(c, f))                  # mc,cf -> mf
    return out.reshape(n, out_h, out_w, f), x_sub


def conv1x1_backward(dout, x_sub, w, x_shape, stride, need):
    n, out_h, out_w, f = dout.shape
    c = w.shape[2]
    dout2 = dout.reshape(-1, f)                                          # (M, F)
    dx = dw = None
    if need[1]:
        dw = matmul(x_sub.reshape(-1, c).T, dout2).reshape(w.shape)      # cm,mf -> cf
    if need[0]:
        dx_sub = matmul(dout2, w.reshape(c, f).T).reshape(n, out_h, out_w, c)  # mf,fc -> mc
        if tuple(stride) == (1, 1):
            dx = dx_sub
        else:
            dx = np.zeros(x_shape, dx_sub.dtype)                         # (N, H, W, C)
            dx[:, ::stride[0], ::stride[1]] = dx_sub
    return dx, dw
