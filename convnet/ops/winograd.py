"""Winograd F(2x2,3x3) and F(4x4,3x3) convolution (3x3 kernel, stride 1, dilation 1).

Notation:
    x (N, H, W, C)   g (3, 3, C, F)   out (N, OH, OW, F),  OH = H + p_top + p_bottom - 2
    m     output tile size (2 or 4);  a = m + 2, the input tile size
    P     number of tiles, N * TH * TW with TH = ceil(OH / m), TW = ceil(OW / m)
    B, G, A   Lavin & Gray's transform matrices:  Y = A^T [ (G g G^T) . (B^T d B) ] A

Algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015).
The input is cut into overlapping a x a tiles with stride m.  Each 2-D transform is one
BLAS matmul over all tiles at once, with the Kronecker product of the 1-D matrices
(kron(B^T, B^T) is a x a by a x a), applied to the tile-major layout (a*a, P*C):

    V = kron(B^T, B^T) @ d          (a*a, P, C)      input transform
    U = kron(G, G)     @ g          (a*a, C, F)      weight transform
    M = V @ U                       (a*a, P, F)      a*a independent GEMMs (pc,cf -> pf)
    Y = kron(A^T, A^T) @ M          (m*m, P, F)      output transform

so the 3x3 conv costs a*a/(m*m*9) of the direct multiplies: 1/2.25 for F(2x2),
1/4 for F(4x4).  The backward passes are the exact adjoints of these linear maps:

    dM = kron(A, A) @ dY            (a*a, P, F)
    dU = V^T @ dM  -> dg = kron(G^T, G^T) @ dU       (3, 3, C, F)
    dV = dM @ U^T  -> dd = kron(B, B) @ dV, then the overlapping tiles are added back
         onto the padded input (tiles overlap by 2 rows and 2 columns).

The backward is ``ops.winograd_backward``; it shares this module's plan, blocks, tile
loads and kernel choice.

Everything runs in blocks of images (or of tile rows of one large image) so the
transformed tiles stay in cache; buffers are reused between calls.  The rounding
error of F(4x4) in float32 is about 1e-6 of the output's scale (checked by the tests
against a float64 direct conv).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import points, transforms2
from .im2col import scratch
from .jit import kernels as _jit_kernels
from .threads import bands, matmul, num_threads, run_blocks
from .winograd_transforms import kron_matrices, weight_transform

BLOCK_BYTES = 2 << 20     # target size of one block of transformed input tiles

def applies(w_shape, stride, dilation, groups) -> bool:
    return (tuple(w_shape[:2]) == (3, 3) and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and groups == 1)


def _plan(x_shape, w_shape, pads, m):
    n, h, wd, c = x_shape
    f = w_shape[3]
    (pt, pb), (pl, pr) = pads
    out_h, out_w = h + pt + pb - 2, wd + pl + pr - 2
    th, tw = -(-out_h // m), -(-out_w // m)
    return n, h, wd, c, f, pt, pl, out_h, out_w, th, tw


SPLIT_TILES = 64   # a lone image is cut into one band per thread only when each band
#                    keeps at least this many tiles (M of its GEMMs): 56x56 and wider


def _blocks(n, th, tw, tile_row_bytes, min_tile_rows, rounds=1):
    """(image slice, tile-row slice) blocks of about BLOCK_BYTES of transformed tiles.

    Whole images are grouped while one fits; a larger image is cut into bands of tile
    rows.  ``min_tile_rows`` keeps blocks big enough that re-reading U stays cheap.  The
    count of a few blocks (under four per thread and round) is rounded up to a multiple of
    ``rounds`` x threads (the backward adds neighbouring bands in two rounds), so no
    thread idles while another runs a last odd block -- with more blocks that costs at
    most a small fraction, less than the smaller blocks rounding up would make; a lone
    image that fits one block is still cut into one band per thread (forward) when the
    bands stay wide enough (``SPLIT_TILES``) -- a single block would leave the copies
    and transforms between its GEMMs on one core."""
    per_img = tile_row_bytes * th
    target = max(BLOCK_BYTES, min_tile_rows * tile_row_bytes)
    t = num_threads()
    if per_img <= target and (n > 1 or rounds > 1 or t < 2 or th * tw < t * SPLIT_TILES):
        step = max(1, target // max(per_img, 1))
        k = _balanced(-(-n // step), t)                 # at least one block per thread
        for s in bands(n, min(k, n)):
            yield s, slice(0, th)
        return
    k = _balanced(-(-th // max(1, target // max(tile_row_bytes, 1))), rounds * t)
    for i in range(n):
        for r in bands(th, min(k, th)):
            yield slice(i, i + 1), r


def _balanced(k, multiple):
    """``k`` blocks, rounded up to a multiple of ``multiple`` when there are few."""
    return -(-k // multiple) * multiple if k < 4 * multiple else k


def _min_rows(c, f, tw):
    # Each block re-reads U (a*a*C*F); keep that below a quarter of the block's own traffic.
    return -(-4 * c * f // ((c + f) * tw))


def _load(dst, src, r0, c0):
    """dst (Nb, R, W, K) <- src[:, r0:r0+R, c0:c0+W] with zeros where that leaves src."""
    _, rows, cols, _ = dst.shape
    rs, re = max(r0, 0), min(r0 + rows, src.shape[1])
    cs, ce = max(c0, 0), min(c0 + cols, src.shape[2])
    if rs >= re or cs >= ce:
        dst[...] = 0
        return
    dst[:, :rs - r0] = 0                                                 # the zero border
    dst[:, re - r0:] = 0
    dst[:, :, :cs - c0] = 0
    dst[:, :, ce - c0:] = 0
    np.copyto(dst[:, rs - r0:re - r0, cs - c0:ce - c0], src[:, rs:re, cs:ce])


def _input_tiles(x, bi, bt, tw, m, pt, pl, kb, dtype):
    """V for one block: (a*a, Pb, C), the transformed a x a input tiles.

    The block's zero-padded rows of x are copied into a small grid first, then the
    overlapping tiles are gathered from it with one strided copy (tile-major)."""
    a = m + 2
    c = x.shape[3]
    nb, tb = bi.stop - bi.start, bt.stop - bt.start
    grid = scratch("wino_a", (nb, tb * m + 2, tw * m + 2, c), dtype)     # padded rows of x
    _load(grid, x[bi], bt.start * m - pt, -pl)
    k = _kernels(m, dtype)
    if k is not None:                                                    # compiled B^T d B
        v = scratch("wino_c", (a * a, nb * tb * tw, c), dtype)
        k.input_tiles(grid, tb, tw, v)
        return v
    s_n, s_h, s_w, s_c = grid.strides
    view = as_strided(grid, shape=(a, a, nb, tb, tw, c),
                      strides=(s_h, s_w, s_n, m * s_h, m * s_w, s_c), writeable=False)
    d = scratch("wino_b", (a * a, nb * tb * tw * c), dtype)
    np.copyto(d.reshape(a, a, nb, tb, tw, c), view)                      # (a, a, Nb, TB, TW, C)
    v = scratch("wino_c", (a * a, nb * tb * tw, c), dtype)
    matmul(kb, d, out=v.reshape(a * a, -1))                           # (a*a, Pb, C)
    return v


def _kernels(m, dtype):
    """The compiled tile transforms for F(m x m) in float32/64 (``ops.transforms4``' for
    F(4x4), through ``ops.jit.kernels()``; ``ops.transforms2``' for F(2x2)), else None
    (the NumPy path)."""
    if np.dtype(dtype) not in (np.float32, np.float64):
        return None
    return _jit_kernels() if m == 4 else transforms2.kernels()


POINT_TILES = 128  # at most this many tiles in all: one block, its GEMMs ops.points'


def _regs(n, th, tw, c, f, dtype) -> bool:
    """Whether the point GEMMs run in ``ops.points``' register kernels: few tiles (VGG's
    14x14 and 28x28 layers at batch 1), where the BLAS repacks each point's U for a
    handful of rows.  All the tiles then form one block, and the kernels cut the points
    among the threads.  (At 196-256 tiles -- VGG's 56x56 layers at batch 1, CIFAR's 8x8
    at batch 64 -- the BLAS measured as fast or faster: benchmarks/RESULTS.md.)"""
    return n * th * tw <= POINT_TILES and points.applies(c, f, dtype)


PANEL_CHANNELS = 128  # in blocks of many tiles, the forward's and dx's GEMMs in ops.points'
#                      kernels too when C and F are at most this: measured 0-16 % faster
#                      forward, 3-9 % backward on VGG's and CIFAR's 64- and 128-channel
#                      layers, even at 256 (interleaved in one process; benchmarks/
#                      RESULTS.md, thirteenth pass).  dW stays the BLAS's (+ the fold)


def _panels(regs, c, f, dtype) -> bool:
    """Whether the forward's and dx's point GEMMs run in ``ops.points``' kernels."""
    return regs or (max(c, f) <= PANEL_CHANNELS and points.applies(c, f, dtype))


PIECES = 8        # tasks per product in the backward's one round of ops.points' kernels
#                   (a thread that ends dW's share early takes dx's tasks, and back)


def point_gemms(n, out_h, out_w, c, f, dtype, m) -> bool:
    """Whether F(m x m)'s point GEMMs of this conv run in ``ops.points``' kernels."""
    return _regs(n, -(-out_h // m), -(-out_w // m), c, f, dtype)


def _row_bytes(m, tw, c, f, dtype):
    return (m + 2) ** 2 * tw * max(c, f) * np.dtype(dtype).itemsize


def winograd_forward(x, w, b, pads, m=4, relu=False, pool=None):
    """Returns ``(out, cache)``: out (N, OH, OW, F).

    ``relu`` clamps each block at 0 while it is in cache (conv + bias + ReLU in one
    pass).  ``pool=(PH, PW)`` (with ``relu``; PH divides m) also max-pools each block in
    non-overlapping PH x PW windows (floor mode) before it leaves the cache: ``out`` is
    then the pooled (N, OH // PH, OW // PW, F), and the full-size output is never
    stored -- the cache keeps the pooled output and each window's argmax tap, which is
    all the backward needs (a window's ReLU passes its gradient iff its max is not 0)."""
    n, h, wd, c, f, pt, pl, out_h, out_w, th, tw = _plan(x.shape, w.shape, pads, m)
    a = m + 2
    dtype = np.result_type(x.dtype, w.dtype)
    kb, kg, ka = kron_matrices(m, dtype)
    if pool is not None:
        from .pool import tile_max_argmax  # ops.pool imports ops.conv, which imports this
        ph, pw = pool
        if not relu or m % ph:
            raise ValueError(f"winograd_forward: pool needs relu and a pool height dividing "
                             f"{m}, got pool {pool}, relu={relu}")
        pooled = np.empty((n, out_h // ph, out_w // pw, f), dtype)       # (N, PH', PW', F)
        parg = np.empty(pooled.shape, np.uint8)
    regs = _regs(n, th, tw, c, f, dtype)
    panels = _panels(regs, c, f, dtype)
    u, seen = weight_transform(w, m, dtype, tag="wino_g",               # (a*a, C, F)
                               layout="panels" if panels else "plain",  # (or its panels)
                               with_entry=True)
    out = np.empty((n, out_h, out_w, f), dtype) if pool is None else None  # (N, OH, OW, F)
    kern = _kernels(m, dtype)
    if kern is not None:
        bias = np.zeros(f, dtype) if b is None else np.ascontiguousarray(b, dtype)

    def block(blk):
        bi, bt = blk
        nb, tb = bi.stop - bi.start, bt.stop - bt.start
        v = _input_tiles(x, bi, bt, tw, m, pt, pl, kb, dtype)            # (a*a, Pb, C)
        mm = scratch("wino_d", (a * a, nb * tb * tw, f), dtype)
        if panels:
            points.matmul_packed(v, u, f, mm)
        else:
            matmul(v, u, out=mm)                                      # pc,cf -> pf per point
        r0 = bt.start * m
        rows = min(bt.stop * m, out_h) - r0
        if kern is not None:                        # compiled A^T M A + bias (+ ReLU)
            if pool is None:
                kern.output_tiles(mm, tb, tw, bias, relu, out, bi.start, r0, rows, out_w)
                return
            pr, pc, q0 = rows // ph, out_w // pw, r0 // ph
            if (ph, pw) == (2, 2) and kern.pool_tiles is not None:  # pool in registers
                kern.pool_tiles(mm, tb, tw, bias, pooled, parg, bi.start, q0, pr, pc)
                return
            dst = scratch("wino_o", (nb, rows, out_w, f), dtype)
            kern.output_tiles(mm, tb, tw, bias, relu, dst, 0, 0, rows, out_w)
            tile_max_argmax(dst[:, :pr * ph, :pc * pw].reshape(nb, pr, ph, pc, pw, f),
                            out=pooled[bi, q0:q0 + pr], arg=parg[bi, q0:q0 + pr])
            return
        y = scratch("wino_b", (m, m, nb, tb, tw, f), dtype)
        matmul(ka, mm.reshape(a * a, -1), out=y.reshape(m * m, -1))   # (m*m, Pb*F)
        y6 = y.transpose(2, 3, 0, 4, 1, 5)                               # (Nb, TB, m, TW, m, F)
        dst = (out[bi, r0:r0 + rows] if pool is None
               else scratch("wino_o", (nb, rows, out_w, f), dtype))      # (Nb, rows, OW, F)
        if (rows, out_w) == (tb * m, tw * m):                            # whole tiles: no copy
            src, dstv = y6, dst.reshape(nb, tb, m, tw, m, f)
        else:
            src, dstv = y6.reshape(nb, tb * m, tw * m, f)[:, :rows, :out_w], dst
        if b is None:
            np.copyto(dstv, src)
        else:
            np.add(src, b, out=dstv)                                     # bias fused in the copy
        if relu:
            np.maximum(dst, 0, out=dst)                                  # NaN stays NaN
        if pool is not None:
            pr, pc, q0 = rows // ph, out_w // pw, r0 // ph
            tile_max_argmax(dst[:, :pr * ph, :pc * pw].reshape(nb, pr, ph, pc, pw, f),
                            out=pooled[bi, q0:q0 + pr], arg=parg[bi, q0:q0 + pr])

    run_blocks(block, [(slice(0, n), slice(0, th))] if regs else
               _blocks(n, th, tw, _row_bytes(m, tw, c, f, dtype), _min_rows(c, f, tw)))
    # Keep x and g, not U: training memory stays at the input's size, and backward
    # rebuilds U (or finds it in the cache, through the entry this forward checked).
    if pool is not None:
        return pooled, (x, w, pads, m, b is not None, (tuple(pool), pooled, parg), seen)
    return out, (x, w, pads, m, b is not None, None, seen)
