"""The weight gradient of ``ops.winograd_rows`` (numba; float32; notation as there): a
first layer's, which needs no dX.  The forward's transforms, transposed:

    dW[i, :, c, f] = G^T sum_{n, r, t} V[r s_h + i d_h, c, :, t] * Z[n, r, t, :, f]
    Z[.., t, :, f] = A dy,   dy = dout[n, r, 4t:4t+4, f] (0 past OW)

summed in registers, 6 sums x 64 lanes at a time -- 6 (i, c) pairs of a point, then 3
pairs x 2 points, then 1 pair x 6 points (C = 3: 6 + 3 rounds of 6 sums; with the last
pairs as 3 and then 1 it had rounds of 12 and 4 FMAs per tile, 2-4 % slower) -- over
TILE_BLOCK tiles whose Z sits in L1.  Each round starts from acc's sums and stores them
back (starting from 0 and adding them to acc after cost 6 adds a round on the FMA ports:
4-5 % slower).  G^T is applied once, to the sum (``winograd_rows_kernels``' ``finish``).
dy is read once, from memory: the next block's lines are prefetched during the FMA
rounds.  Where the time goes: benchmarks/RESULTS.md, seventeenth and eighteenth passes.
"""

from __future__ import annotations

import numpy as np

from .winograd_rows_kernels import signatures

TILE_BLOCK = 8      # tiles whose Z (8 x 6 x 64 lanes: 12 KB) stays in L1 beside the
#                     transformed rows (12, 16, 32 and a whole row: level or slower)


def build_grad(helpers, g64, g32, g16):
    """The weight gradient's serial driver (over ``build_helpers``' ``transform`` and its
    scratch), for 64-, 32- and 16-lane chunks (a width that is not needed is never
    called: another stands in for it)."""
    from numba import njit

    transform, transform_scratch = helpers.transform, helpers.transform_scratch

    from .simd import empty64, prefetch, vadd, vbcast, vfma, vkeep, vload, vsplat, vstore, vsub

    sigs = signatures()

    def make_grads(lanes):
        @njit(nogil=True, cache=False, inline="always")
        def take(acc, o, d):
            """The running sums at acc[o], acc[o + d] and acc[o + 2 d]."""
            return vload(acc, o, lanes), vload(acc, o + d, lanes), vload(acc, o + 2 * d, lanes)

        @njit(nogil=True, cache=False)
        def grads(vs, df, kf, acc, geo, n, ra, rb, f0, relu, zb, poff):
            """acc[(p 6 + k) F + f0 + l] += sum over output rows ra..rb of image n and
            their tiles t of vs[.., pair p = i C + c, k, t] * Z[t, k, f0 + l], and
            acc[KH C 6 F + f0 + l] += the sum of dy (db); dy = dout masked where
            kf == 0 (relu), Z = A dy.  poff[p]: pair p's offset in vs."""
            c, oh, ow, f = geo[2], geo[3], geo[4], geo[5]
            kh, sh, nt = geo[6], geo[7], geo[11]
            pairs = kh * c
            ks = c * (nt + 1)                           # vs: from one k to the next
            row = 6 * ks
            zero = vsplat(0.0, lanes)
            odb = pairs * 6 * f + f0
            for r in range(ra, rb):
                db = zero                   # added per row: the same sums for any band
                vr = (r - ra) * sh * row
                gr = (n * oh + r) * ow * f + f0
                for tb in range(0, nt, TILE_BLOCK):
                    te = min(tb + TILE_BLOCK, nt)
                    for t in range(tb, te):                 # Z = A dy, tile by tile
                        g = gr + 4 * t * f
                        cnt = ow - 4 * t
                        g0 = vload(df, g, lanes)
                        g1 = vload(df, g + f, lanes) if cnt > 1 else zero
                        g2 = vload(df, g + 2 * f, lanes) if cnt > 2 else zero
                        g3 = vload(df, g + 3 * f, lanes) if cnt > 3 else zero
                        if relu:
                            g0 = vkeep(g0, vload(kf, g, lanes))
                            if cnt > 1:
                                g1 = vkeep(g1, vload(kf, g + f, lanes))
                            if cnt > 2:
                                g2 = vkeep(g2, vload(kf, g + 2 * f, lanes))
                            if cnt > 3:
                                g3 = vkeep(g3, vload(kf, g + 3 * f, lanes))
                        s02, s13 = vadd(g0, g2), vadd(g1, g3)
                        db = vadd(db, vadd(s02, s13))
                        q02 = vfma(g2, vsplat(4.0, lanes), g0)
                        q13 = vfma(g3, vsplat(4.0, lanes), g1)
                        z, zs = (t - tb) * lanes, TILE_BLOCK * lanes    # zb[k][t][lane]
                        vstore(zb, z, g0)
                        vstore(zb, z + zs, vadd(s02, s13))
                        vstore(zb, z + 2 * zs, vsub(s02, s13))
                        vstore(zb, z + 3 * zs, vfma(q13, vsplat(2.0, lanes), q02))
                        vstore(zb, z + 4 * zs, vfma(q13, vsplat(-2.0, lanes), q02))
                        vstore(zb, z + 5 * zs, g3)
                    # dy is read once, from memory: the lines after this block's are
                    # asked for ahead, 3 per tile of the 6-pair rounds below (8 % faster
                    # on one core; asked for all at once, they queued behind one another
                    # and it ran 10 % slower).  The 6 x 8 x 3 lines from ``ahead`` on hold
                    # the next block's 4 x 8 pixels when F = lanes (F 64: 128 lines; F 32
                    # and 16, more than the next block); with more channels, part of
                    # them.  No bounds and no index arithmetic: a prefetch never faults,
                    # and the exact per-line count and address of before cost a fifth of
                    # the kernel's time in scalar work.  The ReLU mask's lines are left
                    # to the hardware: asked for too, 3 more a tile, the fused-ReLU case
                    # ran 4-7 % slower (and the test of relu, the plain one 1-5 %)
                    ahead = gr + (4 * te * f if te < nt else ow * f)
                    for k in range(6):
                        vk = vr + k * ks
                        p = 0
                        while p + 6 <= pairs:               # 6 pairs x lanes in registers
                            ob = (p * 6 + k) * f + f0     # the sums go on from acc's
                            a0, a1, a2 = take(acc, ob, 6 * f)
                            a3, a4, a5 = take(acc, ob + 18 * f, 6 * f)
                            o0, o1, o2 = vk + poff[p], vk + poff[p + 1], vk + poff[p + 2]
                            o3, o4, o5 = vk + poff[p + 3], vk + poff[p + 4], vk + poff[p + 5]
                            pq = ahead + (k * TILE_BLOCK - tb) * 48
                            for t in range(tb, te):
                                q = pq + 48 * t
                                prefetch(df, q)
                                prefetch(df, q + 16)
                                prefetch(df, q + 32)
                                zz = vload(zb, (k * TILE_BLOCK + t - tb) * lanes, lanes)
                                a0 = vfma(vbcast(vs, o0 + t, lanes), zz, a0)
                                a1 = vfma(vbcast(vs, o1 + t, lanes), zz, a1)
                                a2 = vfma(vbcast(vs, o2 + t, lanes), zz, a2)
                                a3 = vfma(vbcast(vs, o3 + t, lanes), zz, a3)
                                a4 = vfma(vbcast(vs, o4 + t, lanes), zz, a4)
                                a5 = vfma(vbcast(vs, o5 + t, lanes), zz, a5)
                            for j, a in ((0, a0), (1, a1), (2, a2), (3, a3), (4, a4), (5, a5)):
                                vstore(acc, ((p + j) * 6 + k) * f + f0, a)
                            p += 6
                    p = pairs - pairs % 6                   # the last 1-5 pairs:
                    if pairs - p >= 3:                      # 3 pairs x 2 points (C = 3, 1)
                        o0, o1, o2 = vr + poff[p], vr + poff[p + 1], vr + poff[p + 2]
                        for k in range(0, 6, 2):
                            ob = (p * 6 + k) * f + f0
                            a0, a1, a2 = take(acc, ob, 6 * f)
                            a3, a4, a5 = take(acc, ob + f, 6 * f)
                            for t in range(tb, te):
                                z0 = vload(zb, (k * TILE_BLOCK + t - tb) * lanes, lanes)
                                z1 = vload(zb, ((k + 1) * TILE_BLOCK + t - tb) * lanes, lanes)
                                q0 = k * ks + t
                                q1 = q0 + ks
                                a0 = vfma(vbcast(vs, o0 + q0, lanes), z0, a0)
                                a1 = vfma(vbcast(vs, o1 + q0, lanes), z0, a1)
                                a2 = vfma(vbcast(vs, o2 + q0, lanes), z0, a2)
                                a3 = vfma(vbcast(vs, o0 + q1, lanes), z1, a3)
                                a4 = vfma(vbcast(vs, o1 + q1, lanes), z1, a4)
                                a5 = vfma(vbcast(vs, o2 + q1, lanes), z1, a5)
                            for j, kk, a in ((0, k, a0), (1, k, a1), (2, k, a2), (0, k + 1, a3),
                                             (1, k + 1, a4), (2, k + 1, a5)):
                                vstore(acc, ((p + j) * 6 + kk) * f + f0, a)
                        p += 3
                    for p in range(p, pairs):                # 1 pair x 6 points
                        o0 = vr + poff[p]
                        a0, a1, a2 = take(acc, p * 6 * f + f0, f)
                        a3, a4, a5 = take(acc, (p * 6 + 3) * f + f0, f)
                        for t in range(tb, te):
                            z, zs = (t - tb) * lanes, TILE_BLOCK * lanes
                            a0 = vfma(vbcast(vs, o0 + t, lanes), vload(zb, z, lanes), a0)
                            a1 = vfma(vbcast(vs, o0 + ks + t, lanes), vload(zb, z + zs, lanes),
                                      a1)
                            a2 = vfma(vbcast(vs, o0 + 2 * ks + t, lanes),
                                      vload(zb, z + 2 * zs, lanes), a2)
                            a3 = vfma(vbcast(vs, o0 + 3 * ks + t, lanes),
                                      vload(zb, z + 3 * zs, lanes), a3)
                            a4 = vfma(vbcast(vs, o0 + 4 * ks + t, lanes),
                                      vload(zb, z + 4 * zs, lanes), a4)
                            a5 = vfma(vbcast(vs, o0 + 5 * ks + t, lanes),
                                      vload(zb, z + 5 * zs, lanes), a5)
                        for kk, a in ((0, a0), (1, a1), (2, a2), (3, a3), (4, a4), (5, a5)):
                            vstore(acc, (p * 6 + kk) * f + f0, a)
                vstore(acc, odb, vadd(vload(acc, odb, lanes), db))
        return grads

    grads = {lanes: make_grads(lanes) for lanes, used in ((64, g64), (32, g32), (16, g16))
             if used}
    grads64 = grads.get(64) or next(iter(grads.values()))
    grads32, grads16 = grads.get(32, grads64), grads.get(16, grads64)

    @njit(sigs.weight_grad, nogil=True, cache=False)
    def weight_grad(xf, df, kf, acc, geo, n0, n1, r0, r1, relu, band):
        """The weight-gradient sums of output rows r0..r1 of images n0..n1 added to acc."""
        c, f, kh, dh, nt = geo[2], geo[5], geo[6], geo[8], geo[11]
        vs, pb = transform_scratch(geo, band)
        zb = empty64(TILE_BLOCK * 6 * 64)
        poff = np.empty(kh * c, np.int64)
        for i in range(kh):
            for ch in range(c):
                poff[i * c + ch] = (i * dh * 6 * c + ch) * (nt + 1)
        for n in range(n0, n1):
            for ra in range(r0, r1, band):
                rb = min(ra + band, r1)
                transform(xf, vs, pb, geo, n, ra, rb)
                f0 = 0
                while f0 + 64 <= f:
                    grads64(vs, df, kf, acc, geo, n, ra, rb, f0, relu, zb, poff)
                    f0 += 64
                if f0 + 32 <= f:
                    grads32(vs, df, kf, acc, geo, n, ra, rb, f0, relu, zb, poff)
                    f0 += 32
                if f0 < f:
                    grads16(vs, df, kf, acc, geo, n, ra, rb, f0, relu, zb, poff)

    return weight_grad
