"""The kernels of ``ops.winograd_rows`` (numba; float32; notation as there).

    forward kernel: 2 tiles x 6 sums x 32 lanes, 24 AVX-512 registers, for the whole sum
        over (i, c) (the bias starts in the second sum, whose column of A^T is all ones);
        per (i, c) 6 weight loads, 12 broadcasts of V and 24 FMAs; then A^T, the ReLU and
        up to 8 stores.
    weight gradient (a first layer: no dX), the same transforms transposed,
        dW[i, :, c, f] = G^T sum_{n, r, t} V[r s_h + i d_h, c, :, t] * Z[n, r, t, :, f],
        Z[.., t, :, f] = A dy,  dy = dout[n, r, 4t:4t+4, f] (0 past OW)
        summed in registers, 6 sums x 64 lanes at a time -- 6 (i, c) pairs of a point,
        then 3 pairs x 2 points, then 1 pair x 6 points (C = 3: 3 + 3 rounds of 6,
        where 6 of one pair, then 3 and 1 had rounds of 12 and 4 FMAs per tile) -- over
        TILE_BLOCK tiles, whose Z sits in L1; G^T is applied once, to the sum.

The arrays the kernels load whole vectors from (U, the output, the scratch) are 64-byte
aligned: with NumPy's 16-byte alignment every other vector load split across two cache
lines, which cost the forward kernel about a fifth of its speed, and numba's np.empty
starts 32 bytes off (``simd.empty64``): every Z load split, the weight gradient ran
15 % slower on one core (benchmarks/RESULTS.md).

Each kernel width (32 or 16 lanes forward; 64, 32 or 16 for the gradient) is a kernel of
its own; a build holds the widths one F needs.  The serial drivers (``forward``,
``weight_grad``: a block of rows, a band at a time) are compiled for one explicit
signature each and handed to the parallel launchers as first-class functions, so that no
launcher re-optimises a whole driver (compile time: benchmarks/RESULTS.md, sixteenth
pass).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from . import jit

TILE_BLOCK = 8      # weight gradient: tiles whose Z (8 x 6 x 64 lanes: 12 KB) stays in L1
#                     beside the transformed rows (16, 32 and a whole row: level or slower)


def signatures():
    """numba signatures of the serial drivers (``forward``, ``weight_grad``), the launchers
    that take them as first-class functions, and the helpers."""
    from numba import types as t
    f32, f32_2, i64, i64_2 = t.float32[::1], t.float32[:, ::1], t.int64[::1], t.int64[:, ::1]
    f64_2, b1, n = t.float64[:, ::1], t.boolean, t.int64
    fwd = t.void(f32, f32, f32, f32, b1, i64, n, n, n, n, n)
    grad = t.void(f32, f32, f32, f32, i64, n, n, n, n, b1, n)
    return SimpleNamespace(
        forward=fwd, weight_grad=grad,
        forward_bands=t.void(t.FunctionType(fwd), f32, f32, f64_2, f32, f32, b1, i64, i64_2, n),
        weight_grad_bands=t.void(t.FunctionType(grad), f32, f32, f32, f32_2, i64, i64_2, b1, n,
                                 f64_2, f32, f32),
        weights=t.void(f32, f64_2, f32, n, n, n), finish=t.void(f32_2, f64_2, f32, f32, n, n, n))


def build_helpers():
    """The pieces every build shares: the input transform, U, the weight gradient's last
    step, and the two parallel launchers (each takes a serial driver as a first-class
    function)."""
    from numba import njit, prange

    from .simd import empty64, vadd, vfma, vgather, vload, vsplat, vstore, vstore_n, vsub

    sigs = signatures()

    @njit(nogil=True, cache=False)
    def transform(xf, vs, pb, geo, n, ra, rb):
        """vs[((yy 6 + k) C + c) M + t] = (B^T x_pad[n, ra s_h + yy, 4t:4t+6, c])[k], M = T
        + 1 (slot T unused), for the padded rows output rows ra..rb read (zeros outside
        the input).  pb: 4 C M + 16 floats, one padded row split by column mod 4 (pb[j C
        M + c M + t] = column 4t + j), so that the six inputs of 16 (channel, tile) pairs
        are six runs of 16."""
        h, w, c = geo[0], geo[1], geo[2]
        kh, sh, dh, pt, pl, nt = geo[6], geo[7], geo[8], geo[9], geo[10], geo[11]
        m = nt + 1
        cm = c * m
        two, four, minus2 = vsplat(2.0, 16), vsplat(4.0, 16), vsplat(-2.0, 16)
        minus4, minus5 = vsplat(-4.0, 16), vsplat(-5.0, 16)
        for yy in range((rb - ra - 1) * sh + (kh - 1) * dh + 1):
            y = ra * sh + yy - pt
            o = yy * 6 * cm
            if y < 0 or y >= h:
                for i in range(o, o + 6 * cm):
                    vs[i] = 0.0
                continue
            src = (n * h + y) * w * c
            for j in range(4):
                lo = min(m, max(0, (pl - j + 3) // 4))      # columns 4t + j in the input
                hi = max(lo, min(m, (w + pl - j + 3) // 4))
                for ch in range(c):
                    d = j * cm + ch * m
                    for t in range(lo):
                        pb[d + t] = 0.0
                    t = lo                  # 16 or 8 columns at a time: 2.9x faster
                    while t + 16 <= hi:
                        vstore(pb, d + t, vgather(xf, src + (4 * t + j - pl) * c + ch, 4 * c, 16))
                        t += 16
                    if t + 8 <= hi:
                        vstore(pb, d + t, vgather(xf, src + (4 * t + j - pl) * c + ch, 4 * c, 8))
                        t += 8
                    for t in range(t, hi):
                        pb[d + t] = xf[src + (4 * t + j - pl) * c + ch]
                    for t in range(hi, m):
                        pb[d + t] = 0.0
            for u in range(0, cm, 16):
                cnt = min(16, cm - u)
                d0, d1 = vload(pb, u, 16), vload(pb, cm + u, 16)
                d2, d3 = vload(pb, 2 * cm + u, 16), vload(pb, 3 * cm + u, 16)
                d4, d5 = vload(pb, u + 1, 16), vload(pb, cm + u + 1, 16)
                s12, s34 = vadd(d1, d2), vadd(d3, d4)
                e31, e42 = vsub(d3, d1), vsub(d4, d2)
                vstore_n(vs, o + u, vfma(d0, four, vfma(d2, minus5, d4)), cnt)
                vstore_n(vs, o + cm + u, vfma(s12, minus4, s34), cnt)
                vstore_n(vs, o + 2 * cm + u, vfma(vsub(d1, d2), four, vsub(d4, d3)), cnt)
                vstore_n(vs, o + 3 * cm + u, vfma(e31, two, e42), cnt)
                vstore_n(vs, o + 4 * cm + u, vfma(e31, minus2, e42), cnt)
                vstore_n(vs, o + 5 * cm + u, vfma(d1, four, vfma(d3, minus5, d5)), cnt)

    @njit(sigs.weights, nogil=True, cache=False)
    def weights(wf, g, uf, kh, c, f):
        """U[i, c, k, f] = sum_j G[k, j] w[i, j, c, f] in float64, laid out by chunk of
        output channels -- 32s, then 16 -- each [i][c][k][lanes], so that the kernel's
        weight loads are a fixed stride apart whatever the shape."""
        for i in range(kh):
            for ch in range(c):
                for k in range(6):
                    for j in range(f):
                        lanes = 32 if j < f - f % 32 else 16
                        f0 = j - j % lanes
                        s = 0.0
                        for t in range(3):
                            s += g[k, t] * wf[((i * 3 + t) * c + ch) * f + j]
                        uf[f0 * kh * c * 6 + ((i * c + ch) * 6 + k) * lanes + j - f0] = s

    @njit(sigs.finish, nogil=True, cache=False)
    def finish(accs, g, dw, db, kh, c, f):
        """accs[0] += accs[1:] in order; then dw[((i 3 + j) C + c) F + f] = sum_k G[k, j]
        accs[0][((i C + c) 6 + k) F + f] (G^T, in float64) and db = the last F sums."""
        acc = accs[0]
        for i in range(1, accs.shape[0]):
            for e in range(acc.size):
                acc[e] += accs[i, e]
        for i in range(kh):
            for ch in range(c):
                for j in range(3):
                    o = ((i * 3 + j) * c + ch) * f
                    for q in range(f):
                        s = 0.0
                        for k in range(6):
                            s += g[k, j] * acc[((i * c + ch) * 6 + k) * f + q]
                        dw[o + q] = s
        for q in range(f):
            db[q] = acc[kh * c * 6 * f + q]

    @njit(sigs.forward_bands, nogil=True, cache=False, parallel=True)
    def forward_bands(forward, xf, wf, g, b, of, relu, geo, blocks, band):
        """U (64-byte aligned), then the driver ``forward`` on blocks[i] = (n0, n1, r0, r1)
        in one parallel launch."""
        size = geo[6] * geo[2] * 6 * geo[5]
        uf = empty64(size)
        weights(wf, g, uf, geo[6], geo[2], geo[5])
        for i in prange(blocks.shape[0]):
            forward(xf, uf, b, of, relu, geo, blocks[i, 0], blocks[i, 1], blocks[i, 2],
                    blocks[i, 3], band)

    @njit(sigs.weight_grad_bands, nogil=True, cache=False, parallel=True)
    def weight_grad_bands(weight_grad, xf, df, kf, accs, geo, blocks, relu, band, g, dw, db):
        """The driver ``weight_grad`` on blocks[i] into accs[i] (zeroed first), in one
        launch; then ``finish``."""
        for i in prange(blocks.shape[0]):
            acc = accs[i]
            acc[:] = 0.0
            weight_grad(xf, df, kf, acc, geo, blocks[i, 0], blocks[i, 1], blocks[i, 2],
                        blocks[i, 3], relu, band)
        finish(accs, g, dw, db, geo[6], geo[2], geo[5])

    # (the launchers' compiled code, called without numba's per-call type dispatch)
    return SimpleNamespace(transform=transform, weights=weights, finish=finish,
                           forward_bands=forward_bands, weight_grad_bands=weight_grad_bands,
                           forward_entry=jit.entry(forward_bands),
                           weight_grad_entry=jit.entry(weight_grad_bands))


def build_forward(transform, r32, r16):
    """The forward's serial driver (over ``build_helpers``' ``transform``), for 32-lane
    chunks (r32) and a 16-lane one (r16); a width that is not needed is never called, so
    the other stands in for it."""
    from numba import njit

    from .simd import (
        empty64,
        store_fence,
        vadd,
        vbcast,
        vfma,
        vload,
        vrelu,
        vsplat,
        vstore,
        vstream,
        vsub,
    )

    sigs = signatures()

    @njit(nogil=True, cache=False, inline="always")
    def put(of, o, y, stream):
        """of[o:o + lanes] = y, past the caches with ``stream``."""
        if stream:
            vstream(of, o, y)
        else:
            vstore(of, o, y)

    def make_rows(lanes):
        @njit(nogil=True, cache=False, inline="always")
        def out4(of, o, f, m0, m1, m2, m3, m4, m5, relu, stream, cnt):
            """A^T m (clamped with relu): the tile's first cnt outputs at of[o::f], in
            non-temporal stores with ``stream``."""
            s1, d1, s2, d2 = vadd(m1, m2), vsub(m1, m2), vadd(m3, m4), vsub(m3, m4)
            y0 = vadd(m0, vadd(s1, s2))
            y1 = vfma(d2, vsplat(2.0, lanes), d1)
            y2 = vfma(s2, vsplat(4.0, lanes), s1)
            y3 = vfma(d2, vsplat(8.0, lanes), vadd(d1, m5))
            if relu:
                y0, y1, y2, y3 = vrelu(y0), vrelu(y1), vrelu(y2), vrelu(y3)
            put(of, o, y0, stream)
            if cnt > 1:
                put(of, o + f, y1, stream)
            if cnt > 2:
                put(of, o + 2 * f, y2, stream)
            if cnt > 3:
                put(of, o + 3 * f, y3, stream)

        @njit(nogil=True, cache=False)
        def rows(vs, uf, b, of, relu, geo, n, ra, rb, f0):
            """out rows ra..rb of image n, channels f0..f0+lanes, from vs (``transform``
            of the band) and uf (U: ``weights``)."""
            c, oh, ow, f = geo[2], geo[3], geo[4], geo[5]
            kh, sh, dh, nt, stream = geo[6], geo[7], geo[8], geo[11], geo[12] != 0
            ks = c * (nt + 1)                           # vs: from one k to the next
            row = 6 * ks                                # one padded row
            bb = vload(b, f0, lanes)
            for r in range(ra, rb):
                tt = 0
                while tt < nt:
                    t0 = min(tt, nt - 2)    # an odd last tile: the pair before it again
                    # A^T's column for m1 is all ones: the bias starts in m1's sum
                    a0 = vsplat(0.0, lanes)
                    a1, a2, a3, a4, a5 = bb, a0, a0, a0, a0
                    c0, c1, c2, c3, c4, c5 = a0, bb, a0, a0, a0, a0
                    u = f0 * kh * c * 6                 # this chunk's U: [i][c][k][lanes]
                    for i in range(kh):
                        vi = ((r - ra) * sh + i * dh) * row + t0
                        for ch in range(c):
                            v = vi + ch * (nt + 1)
                            wv = vload(uf, u, lanes)
                            a0 = vfma(vbcast(vs, v, lanes), wv, a0)
                            c0 = vfma(vbcast(vs, v + 1, lanes), wv, c0)
                            wv = vload(uf, u + lanes, lanes)
                            a1 = vfma(vbcast(vs, v + ks, lanes), wv, a1)
                            c1 = vfma(vbcast(vs, v + ks + 1, lanes), wv, c1)
                            wv = vload(uf, u + 2 * lanes, lanes)
                            a2 = vfma(vbcast(vs, v + 2 * ks, lanes), wv, a2)
                            c2 = vfma(vbcast(vs, v + 2 * ks + 1, lanes), wv, c2)
                            wv = vload(uf, u + 3 * lanes, lanes)
                            a3 = vfma(vbcast(vs, v + 3 * ks, lanes), wv, a3)
                            c3 = vfma(vbcast(vs, v + 3 * ks + 1, lanes), wv, c3)
                            wv = vload(uf, u + 4 * lanes, lanes)
                            a4 = vfma(vbcast(vs, v + 4 * ks, lanes), wv, a4)
                            c4 = vfma(vbcast(vs, v + 4 * ks + 1, lanes), wv, c4)
                            wv = vload(uf, u + 5 * lanes, lanes)
                            a5 = vfma(vbcast(vs, v + 5 * ks, lanes), wv, a5)
                            c5 = vfma(vbcast(vs, v + 5 * ks + 1, lanes), wv, c5)
                            u += 6 * lanes
                    o = ((n * oh + r) * ow + 4 * t0) * f + f0
                    out4(of, o, f, a0, a1, a2, a3, a4, a5, relu, stream, ow - 4 * t0)
                    out4(of, o + 4 * f, f, c0, c1, c2, c3, c4, c5, relu, stream,
                         ow - 4 * t0 - 4)
                    tt += 2
        return rows

    rows16 = make_rows(16) if r16 else None
    rows32 = make_rows(32) if r32 else rows16
    rows16 = rows16 or rows32

    @njit(sigs.forward, nogil=True, cache=False)
    def forward(xf, uf, b, of, relu, geo, n0, n1, r0, r1, band):
        """Output rows r0..r1 of images n0..n1, every channel, a band of rows at a time."""
        f, nt = geo[5], geo[11]
        vs = empty64(((band - 1) * geo[7] + (geo[6] - 1) * geo[8] + 1) * 6 * geo[2] * (nt + 1))
        pb = empty64(4 * geo[2] * (nt + 1) + 16)
        for n in range(n0, n1):
            for ra in range(r0, r1, band):
                rb = min(ra + band, r1)
                transform(xf, vs, pb, geo, n, ra, rb)
                f0 = 0
                while f0 + 32 <= f:
                    rows32(vs, uf, b, of, relu, geo, n, ra, rb, f0)
                    f0 += 32
                if f0 < f:
                    rows16(vs, uf, b, of, relu, geo, n, ra, rb, f0)
        if geo[12]:
            store_fence()               # the non-temporal stores land before we return

    return forward


def build_grad(transform, g64, g32, g16):
    """The weight gradient's serial driver (over ``build_helpers``' ``transform``), for
    64-, 32- and 16-lane chunks (a width that is not needed is never called: another
    stands in for it)."""
    from numba import njit

    from .simd import empty64, prefetch, vadd, vbcast, vfma, vkeep, vload, vsplat, vstore, vsub

    sigs = signatures()

    def make_grads(lanes):
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
                    # dy is read once, from memory: the next block's lines are asked
                    # for ahead, 3 per tile of the 6-pair rounds below (on one core,
                    # 8 % faster; asked for all at once, they queued behind one another
                    # and it ran 10 % slower)
                    if te < nt:
                        ahead, lines = gr + 4 * te * f, min(4 * TILE_BLOCK, ow - 4 * te)
                    elif r + 1 < rb:
                        ahead, lines = gr + ow * f, min(4 * TILE_BLOCK, ow)
                    else:
                        ahead, lines = gr, 0
                    lines *= lanes // 16
                    for k in range(6):
                        vk = vr + k * ks
                        p = 0
                        while p + 6 <= pairs:               # 6 pairs x lanes in registers
                            a0, a1, a2, a3, a4, a5 = zero, zero, zero, zero, zero, zero
                            o0, o1, o2 = vk + poff[p], vk + poff[p + 1], vk + poff[p + 2]
                            o3, o4, o5 = vk + poff[p + 3], vk + poff[p + 4], vk + poff[p + 5]
                            for t in range(tb, te):
                                l0 = (k * TILE_BLOCK + t - tb) * 3
                                for ln in range(l0, min(l0 + 3, lines)):
                                    q = ahead + ln // (lanes // 16) * f + ln % (lanes // 16) * 16
                                    prefetch(df, q)
                                    if relu:
                                        prefetch(kf, q)
                                zz = vload(zb, (k * TILE_BLOCK + t - tb) * lanes, lanes)
                                a0 = vfma(vbcast(vs, o0 + t, lanes), zz, a0)
                                a1 = vfma(vbcast(vs, o1 + t, lanes), zz, a1)
                                a2 = vfma(vbcast(vs, o2 + t, lanes), zz, a2)
                                a3 = vfma(vbcast(vs, o3 + t, lanes), zz, a3)
                                a4 = vfma(vbcast(vs, o4 + t, lanes), zz, a4)
                                a5 = vfma(vbcast(vs, o5 + t, lanes), zz, a5)
                            for j, a in ((0, a0), (1, a1), (2, a2), (3, a3), (4, a4), (5, a5)):
                                o = ((p + j) * 6 + k) * f + f0
                                vstore(acc, o, vadd(vload(acc, o, lanes), a))
                            p += 6
                    p = pairs - pairs % 6                   # the last 1-5 pairs:
                    if pairs - p >= 3:                      # 3 pairs x 2 points (C = 3, 1)
                        o0, o1, o2 = vr + poff[p], vr + poff[p + 1], vr + poff[p + 2]
                        for k in range(0, 6, 2):
                            a0, a1, a2, a3, a4, a5 = zero, zero, zero, zero, zero, zero
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
                                o = ((p + j) * 6 + kk) * f + f0
                                vstore(acc, o, vadd(vload(acc, o, lanes), a))
                        p += 3
                    for p in range(p, pairs):                # 1 pair x 6 points
                        o0 = vr + poff[p]
                        a0, a1, a2, a3, a4, a5 = zero, zero, zero, zero, zero, zero
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
                            o = (p * 6 + kk) * f + f0
                            vstore(acc, o, vadd(vload(acc, o, lanes), a))
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
        vs = empty64(((band - 1) * geo[7] + (kh - 1) * dh + 1) * 6 * c * (nt + 1))
        pb = empty64(4 * c * (nt + 1) + 16)
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
