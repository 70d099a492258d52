"""The backward of ``ops.winograd``'s Winograd F(2x2,3x3) and F(4x4,3x3) convs (notation
as there): the exact adjoints of the forward's linear maps,

    dM = kron(A, A) @ dY            (a*a, P, F)
    dU = V^T @ dM  -> dg = kron(G^T, G^T) @ dU       (3, 3, C, F)
    dV = dM @ U^T  -> dd = kron(B, B) @ dV, then the overlapping tiles are added back
         onto the padded input (tiles overlap by 2 rows and 2 columns),

block by block as the forward runs (``winograd``' plan, blocks and tile loads), with a
fused ReLU's mask (or a fused ReLU + pool's unpooling) applied to each block of dout as
it is loaded.  Few tiles (``winograd._regs``) run dW's and dX's products in one round of
``ops.points``' kernels; otherwise each block's dU is a BLAS GEMM summed over the
blocks in order (``threads.run_reduce``).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import points
from .activation import relu_backward, relu_mask
from .im2col import aligned_empty, bias_grad, scratch
from .threads import matmul, run_blocks, run_reduce
from .winograd import (
    PIECES,
    _blocks,
    _input_tiles,
    _kernels,
    _load,
    _min_rows,
    _panels,
    _plan,
    _regs,
    _row_bytes,
)
from .winograd_transforms import kron_matrices, weight_transform


def winograd_backward(dout, cache, need=(True, True, True), relu_out=None):
    """Returns ``(dx, dw, db)``; entries not in ``need`` are None.

    ``relu_out``, the output of a ReLU applied to this conv's output, makes it the
    backward of the pair: each block of dout is masked as it is loaded (in cache), and
    db is summed from the masked blocks."""
    x, w, pads, m, has_bias, fused, seen = cache
    n, h, wd, c, f, pt, pl, out_h, out_w, th, tw = _plan(x.shape, w.shape, pads, m)
    a = m + 2
    dtype = np.result_type(x.dtype, w.dtype, dout.dtype)
    kb, kg, ka = kron_matrices(m, dtype)
    if fused is not None:                # conv + ReLU + pool: dout is the pooled gradient
        from .pool import tile_scatter
        (ph, pw), pooled, parg = fused
        relu_out = pooled                # a window passes its gradient iff its max is not 0
        if dout.shape != pooled.shape:
            raise ValueError(f"winograd_backward: dout has shape {dout.shape}, the pooled "
                             f"output {pooled.shape}")
    if relu_out is not None and not (need[0] or need[1]):
        dout, relu_out = relu_backward(dout, relu_out), None             # db only
    block_db = relu_out is not None and has_bias and need[2]
    db = bias_grad(dout) if has_bias and need[2] and not block_db else None
    if not (need[0] or need[1]):
        return None, None, db
    regs = _regs(n, th, tw, c, f, dtype)
    panels = _panels(regs, c, f, dtype)
    ut = None
    if need[0] and panels:                                               # U^T's panels
        ut = weight_transform(w, m, dtype, promote=False, layout="panels_t", seen=seen)
    elif need[0]:                                                        # (a*a, F, C)
        ut = weight_transform(w, m, dtype, promote=False, tag="wino_g",
                              seen=seen).transpose(0, 2, 1)
    blks = ([(slice(0, n), slice(0, th))] if regs else
            list(_blocks(n, th, tw, _row_bytes(m, tw, c, f, dtype), _min_rows(c, f, tw),
                         rounds=2)))
    kern = _kernels(m, dtype)
    banded = any(bt.stop - bt.start != th for _, bt in blks)
    dx = None
    if need[0]:  # bands overlap by two rows, so they add into zeros; whole images assign
        dx = (np.zeros if banded else np.empty)(x.shape, dtype)          # (N, H, W, C)

    def block(blk, du):
        bi, bt = blk
        nb, tb = bi.stop - bi.start, bt.stop - bt.start
        pb = nb * tb * tw
        dyb = scratch("wino_a", (nb, tb * m, tw * m, f), dtype)          # dout, zero past OH/OW
        r0 = bt.start * m
        rows = min(bt.stop * m, out_h) - r0
        if fused is not None and relu_out is not None:  # unpool the masked pooled gradient
            pr, pc, q0 = rows // ph, out_w // pw, r0 // ph
            dp = scratch("wino_p", (nb, pr, pc, f), dtype)
            relu_mask(dout[bi, q0:q0 + pr], pooled[bi, q0:q0 + pr], dp,
                      scratch("wino_m", dp.shape, dtype))
            dyb[...] = 0
            tile_scatter(dp, parg[bi, q0:q0 + pr],
                         dyb[:, :pr * ph, :pc * pw].reshape(nb, pr, ph, pc, pw, f))
        elif (rows, out_w) == (tb * m, tw * m) and dout.dtype == dtype:  # whole tiles:
            src = dout[bi, r0:r0 + rows]                   # the block, laid out as dyb
            if relu_out is not None:                       # masked as it is copied
                relu_mask(src, relu_out[bi, r0:r0 + rows], dyb,
                          scratch("wino_m", dyb.shape, dtype))
            elif src.flags.c_contiguous:
                dyb = src                                  # read where it lies: no copy
            else:
                np.copyto(dyb, src)
        else:
            _load(dyb, dout[bi], r0, 0)
            if relu_out is not None:                                     # through the ReLU
                part = dyb[:, :rows, :out_w]
                relu_mask(part, relu_out[bi, r0:r0 + rows], part,
                          scratch("wino_m", part.shape, dtype))
        if block_db:
            db_parts[(bi.start, bt.start)] = bias_grad(dyb, parallel=False)
        dm = scratch("wino_d", (a * a, pb, f), dtype)
        if kern is not None:                                             # compiled A dY A^T
            kern.grad_tiles(dyb, tb, tw, dm)
        else:
            dy = scratch("wino_e", (m, m, nb, tb, tw, f), dtype)
            np.copyto(dy, dyb.reshape(nb, tb, m, tw, m, f).transpose(2, 4, 0, 1, 3, 5))
            matmul(ka.T, dy.reshape(m * m, -1), out=dm.reshape(a * a, -1))  # (a*a, Pb, F)
        tasks = []           # ops.points' products: dW's and dx's in one round
        if need[1]:
            v = _input_tiles(x, bi, bt, tw, m, pt, pl, kb, dtype)        # (a*a, Pb, C)
            if regs:                                   # dW itself, kron(G, G)^T folded in
                tasks += points.weight_grad_tasks(v, dm, kgt, dw.reshape(9, c, f), PIECES)
                du = None
            else:
                if du is None:
                    du = scratch("wino_u", (a * a, c, f), dtype)
                matmul(v.transpose(0, 2, 1), dm, out=du)                 # cp,pf -> cf per point
        else:
            du = None
        if need[0]:
            dv = scratch("wino_b", (a * a, pb, c), dtype)
            if regs:
                tasks += points.matmul_packed_tasks(dm, ut, c, dv, PIECES)
            elif panels:
                points.matmul_packed(dm, ut, c, dv)
            else:
                matmul(dm, ut, out=dv)                                # pf,fc -> pc per point
        if tasks:
            points.run(tasks)
        if need[0]:
            dg = scratch("wino_a", (nb, tb * m + m, tw * m + m, c), dtype)
            dg[...] = 0
            if kern is not None:                                         # compiled B dV B^T
                kern.add_tiles(dv, tb, tw, dg)
            else:
                dd = scratch("wino_c", (a, a, nb, tb, tw, c), dtype)
                matmul(kb.T, dv.reshape(a * a, -1), out=dd.reshape(a * a, -1))
                _add_tiles(dg, dd, m)                                    # (Nb, TB*m+m, TW*m+m, C)
            _store(dx, dg, bi, bt.start * m - pt, -pl, add=banded)
        return du

    db_parts = {}
    def lanes(tag):  # the lanes' dU sums live in reused scratch, not fresh memory
        return lambda i, shape, dt: scratch(f"{tag}{i}", shape, dt)

    dw = None
    if regs:             # one block; ops.points' kernels cut its GEMMs among the threads
        kgt = np.ascontiguousarray(kg.T)
        if need[1]:
            dw = aligned_empty((3, 3, c, f), dtype)   # whole vectors, maybe non-temporal
        block(blks[0], None)
        du = None
    elif not need[1]:    # dx only: no dU lanes to clear (a*a x C x F each)
        for part in ((blks[0::2], blks[1::2]) if banded else (blks,)):
            run_blocks(lambda blk: block(blk, None), part)
        du = None
    elif banded:  # neighbouring bands of one image share two rows of dx: two rounds
        du = run_reduce(block, blks[0::2], (a * a, c, f), dtype, buffers=lanes("wino_du"))
        du += run_reduce(block, blks[1::2], (a * a, c, f), dtype, buffers=lanes("wino_dv"))
    else:
        du = run_reduce(block, blks, (a * a, c, f), dtype, buffers=lanes("wino_du"))
    if block_db:                                                         # in block order
        db = np.sum([db_parts[k] for k in sorted(db_parts)], axis=0, dtype=dtype)
    if du is not None:
        dw = matmul(kg.T, du.reshape(a * a, c * f)).reshape(3, 3, c, f)  # (3, 3, C, F)
    return dx, dw, db


def _store(dx, dg, bi, r0, c0, add):
    """dx[bi, r0 + i, c0 + j] (+)= dg[:, i, j] wherever that lies inside dx."""
    rows, cols = dg.shape[1:3]
    rs, re = max(r0, 0), min(r0 + rows, dx.shape[1])
    cs, ce = max(c0, 0), min(c0 + cols, dx.shape[2])
    if rs >= re or cs >= ce:
        return
    dst = dx[bi, rs:re, cs:ce]
    src = dg[:, rs - r0:re - r0, cs - c0:ce - c0]
    if add:
        np.add(dst, src, out=dst)
    else:
        np.copyto(dst, src)


def _add_tiles(dst, dd, m):
    """Add overlapping a x a tiles dd (a, a, Nb, TB, TW, C) onto dst (Nb, >=TB*m+m, ., C).

    Tile (ty, tx) covers rows ty*m .. ty*m+m+1; rows i < m of each tile are disjoint
    from its neighbours', rows m, m+1 land on the next tile's rows 0, 1.  So four
    strided adds (core, right edge, bottom edge, corner) replace a*a scatter passes."""
    _, _, nb, tb, tw, c = dd.shape
    s_n, s_h, s_w, s_c = dst.strides

    def view(r0, c0, rows, cols):
        return as_strided(dst[:, r0:, c0:], shape=(nb, tb, rows, tw, cols, c),
                          strides=(s_n, m * s_h, s_h, m * s_w, s_w, s_c))

    core = dd[:m, :m].transpose(2, 3, 0, 4, 1, 5)                        # (Nb, TB, m, TW, m, C)
    right = dd[:m, m:].transpose(2, 3, 0, 4, 1, 5)                       # (Nb, TB, m, TW, 2, C)
    bottom = dd[m:, :m].transpose(2, 3, 0, 4, 1, 5)                      # (Nb, TB, 2, TW, m, C)
    corner = dd[m:, m:].transpose(2, 3, 0, 4, 1, 5)                      # (Nb, TB, 2, TW, 2, C)
    for (r0, c0), part in (((0, 0), core), ((0, m), right), ((m, 0), bottom), ((m, m), corner)):
        v = view(r0, c0, part.shape[2], part.shape[4])
        np.add(v, part, out=v)
