"""The compiled kernels of ``ops.direct`` (numba; float32; notation and the method as
there): the thin layers' row kernel and its weight gradient, the deep kernel, and the
band scratch they fill with padded input rows.  ``ops.direct`` holds what is compiled
(per chunk width, and per shape for the row kernel) and runs it."""

from __future__ import annotations

import numpy as np


def build_helpers():
    """The band scratch's two helpers: ``fill`` (a band's padded input rows) and
    ``scratch`` (a buffer for them)."""
    from numba import njit

    def fill(xf, xs, geo, n, ra, rb):
        """xs = the padded rows that output rows ra..rb of image n read (zeros outside
        the unpadded input xf), from padded row ra * s_h on."""
        wp, c, kh, sh, dh = geo[1], geo[2], geo[6], geo[8], geo[10]
        h, w, pt, pl = geo[12], geo[13], geo[14], geo[15]
        line = wp * c                                   # one padded row
        lo, hi = pl * c, (pl + w) * c                   # its columns from the input
        for k in range((rb - ra - 1) * sh + (kh - 1) * dh + 1):
            y, d = ra * sh + k - pt, k * line
            # (plain loops: numba's slice assignment compiled to 20 MB of code)
            if y < 0 or y >= h:
                for i in range(d, d + line):
                    xs[i] = 0.0
            else:
                src = (n * h + y) * w * c - lo
                for i in range(d, d + lo):
                    xs[i] = 0.0
                for i in range(lo, hi):
                    xs[d + i] = xf[src + i]
                for i in range(d + hi, d + line):
                    xs[i] = 0.0

    def scratch(geo, band):
        """A band's padded rows: ((band - 1) s_h + (KH - 1) d_h + 1) x Wp x C floats."""
        return np.empty(((band - 1) * geo[8] + (geo[6] - 1) * geo[10] + 1) * geo[1] * geo[2],
                        np.float32)

    return njit(nogil=True, cache=False)(fill), njit(nogil=True, cache=False)(scratch)


def build(lanes, fixed, helpers):
    """The kernels for chunks of ``lanes`` output channels: rows, grads, deep, padded,
    pgrads (``ops.direct._kernel``; ``fixed``: the shape the rows kernel is compiled for,
    zeros for every shape; ``helpers``: ``build_helpers()``)."""
    from numba import njit

    from .direct import C_BLOCK, G_BLOCK
    from .simd import empty64, vadd, vbcast, vfma, vkeep, vload, vrelu, vsplat, vstore

    fill, scratch = helpers

    # Compile-time constants where ``fixed`` gives them (0: read from geo at run time).
    C_, F_, KH_, KW_, SH_, SW_, DH_, DW_ = fixed

    @njit(nogil=True, cache=False)
    def rows(xf, wf, b, of, relu, geo, n0, n1, r0, r1, f0):
        """out rows r0..r1 of images n0..n1, channels f0..f0+lanes (flat arrays)."""
        hp, wp, oh, ow = geo[0], geo[1], geo[3], geo[4]
        c, f = (C_, F_) if C_ else (geo[2], geo[5])
        kh, kw = (KH_, KW_) if C_ else (geo[6], geo[7])
        sh, sw, dh, dw = (SH_, SW_, DH_, DW_) if C_ else (geo[8], geo[9], geo[10], geo[11])
        step = sw * c                                   # next output pixel's input
        for n in range(n0, n1):
            for r in range(r0, r1):
                q = 0
                while q + 6 <= ow or (q < ow and ow >= 6):
                    q = min(q, ow - 6)      # the last block may overlap the one before
                    a0 = vload(b, f0, lanes)
                    a1, a2, a3, a4, a5 = a0, a0, a0, a0, a0
                    t = f0
                    for i in range(kh):
                        row = ((n * hp + r * sh + i * dh) * wp + q * sw) * c
                        for j in range(kw):
                            base = row + j * dw * c
                            for ch in range(c):
                                wv = vload(wf, t, lanes)
                                p = base + ch
                                a0 = vfma(vbcast(xf, p, lanes), wv, a0)
                                a1 = vfma(vbcast(xf, p + step, lanes), wv, a1)
                                a2 = vfma(vbcast(xf, p + 2 * step, lanes), wv, a2)
                                a3 = vfma(vbcast(xf, p + 3 * step, lanes), wv, a3)
                                a4 = vfma(vbcast(xf, p + 4 * step, lanes), wv, a4)
                                a5 = vfma(vbcast(xf, p + 5 * step, lanes), wv, a5)
                                t += f
                    if relu:
                        a0, a1, a2 = vrelu(a0), vrelu(a1), vrelu(a2)
                        a3, a4, a5 = vrelu(a3), vrelu(a4), vrelu(a5)
                    o = ((n * oh + r) * ow + q) * f + f0
                    vstore(of, o, a0)
                    vstore(of, o + f, a1)
                    vstore(of, o + 2 * f, a2)
                    vstore(of, o + 3 * f, a3)
                    vstore(of, o + 4 * f, a4)
                    vstore(of, o + 5 * f, a5)
                    q += 6
                while q < ow:                           # rows under 6 pixels wide
                    a0 = vload(b, f0, lanes)
                    t = f0
                    for i in range(kh):
                        row = ((n * hp + r * sh + i * dh) * wp + q * sw) * c
                        for j in range(kw):
                            base = row + j * dw * c
                            for ch in range(c):
                                a0 = vfma(vbcast(xf, base + ch, lanes), vload(wf, t, lanes), a0)
                                t += f
                    if relu:
                        a0 = vrelu(a0)
                    vstore(of, ((n * oh + r) * ow + q) * f + f0, a0)
                    q += 1

    @njit(nogil=True, cache=False)
    def grads(xf, df, kf, acc, geo, m0, m1, f0, relu):
        """acc[t*F + f0 + l] += sum over output pixels m0..m1 of x(m, tap t) * g[m, f0 + l]
        and acc[K*F + f0 + l] += sum of g (db), g = dout masked where kf == 0 (relu).  The
        pixels are whole output rows of one image, m0 the first of its row; xf holds
        the padded input rows they read (``fill``), from that row's first on."""
        wp, c, ow, f = geo[1], geo[2], geo[4], geo[5]
        kh, kw, sh, sw, dh, dw = geo[6], geo[7], geo[8], geo[9], geo[10], geo[11]
        taps = kh * kw * c
        toff = np.empty(taps, np.int64)
        t = 0
        for i in range(kh):
            for j in range(kw):
                for ch in range(c):
                    toff[t] = (i * dh * wp + j * dw) * c + ch
                    t += 1
        gbuf = empty64(G_BLOCK * lanes)
        base = np.empty(G_BLOCK, np.int64)
        db = vsplat(0.0, lanes)
        y, q = 0, 0                                     # the pixel's row and column
        for s in range(m0, m1, G_BLOCK):
            e = min(s + G_BLOCK, m1)
            for p in range(e - s):                      # the chunk's masked gradient
                base[p] = (y * sh * wp + q * sw) * c
                q += 1
                if q == ow:
                    q, y = 0, y + 1
                g = vload(df, (s + p) * f + f0, lanes)
                if relu:
                    g = vkeep(g, vload(kf, (s + p) * f + f0, lanes))
                db = vadd(db, g)
                vstore(gbuf, p * lanes, g)
            t = 0
            while t + 6 <= taps:                        # 6 taps x lanes in registers
                a0 = vsplat(0.0, lanes)
                a1, a2, a3, a4, a5 = a0, a0, a0, a0, a0
                o0, o1, o2, o3 = toff[t], toff[t + 1], toff[t + 2], toff[t + 3]
                o4, o5 = toff[t + 4], toff[t + 5]
                for p in range(e - s):
                    g = vload(gbuf, p * lanes, lanes)
                    b = base[p]
                    a0 = vfma(vbcast(xf, b + o0, lanes), g, a0)
                    a1 = vfma(vbcast(xf, b + o1, lanes), g, a1)
                    a2 = vfma(vbcast(xf, b + o2, lanes), g, a2)
                    a3 = vfma(vbcast(xf, b + o3, lanes), g, a3)
                    a4 = vfma(vbcast(xf, b + o4, lanes), g, a4)
                    a5 = vfma(vbcast(xf, b + o5, lanes), g, a5)
                for k, a in ((0, a0), (1, a1), (2, a2), (3, a3), (4, a4), (5, a5)):
                    o = (t + k) * f + f0
                    vstore(acc, o, vadd(vload(acc, o, lanes), a))
                t += 6
            if t + 3 <= taps:                           # 3 of the last 5 (K = 27, 75)
                a0 = vsplat(0.0, lanes)
                a1, a2 = a0, a0
                o0, o1, o2 = toff[t], toff[t + 1], toff[t + 2]
                for p in range(e - s):
                    g = vload(gbuf, p * lanes, lanes)
                    b = base[p]
                    a0 = vfma(vbcast(xf, b + o0, lanes), g, a0)
                    a1 = vfma(vbcast(xf, b + o1, lanes), g, a1)
                    a2 = vfma(vbcast(xf, b + o2, lanes), g, a2)
                for k, a in ((0, a0), (1, a1), (2, a2)):
                    o = (t + k) * f + f0
                    vstore(acc, o, vadd(vload(acc, o, lanes), a))
                t += 3
            while t < taps:
                a0 = vsplat(0.0, lanes)
                for p in range(e - s):
                    a0 = vfma(vbcast(xf, base[p] + toff[t], lanes),
                              vload(gbuf, p * lanes, lanes), a0)
                o = t * f + f0
                vstore(acc, o, vadd(vload(acc, o, lanes), a0))
                t += 1
        o = taps * f + f0
        vstore(acc, o, vadd(vload(acc, o, lanes), db))

    @njit(nogil=True, cache=False)
    def padded(xf, wf, b, of, relu, geo, n0, n1, r0, r1, f0, band):
        """``rows`` on the unpadded input: per band of ``band`` output rows, the padded
        input rows it reads are built in a scratch (``fill``), in cache."""
        oh, ow, f = geo[3], geo[4], geo[5]
        sgeo = geo.copy()
        sgeo[3] = band                                  # (rows' output index: band rows)
        xs = scratch(geo, band)
        for n in range(n0, n1):
            for ra in range(r0, r1, band):
                rb = min(ra + band, r1)
                fill(xf, xs, geo, n, ra, rb)
                rows(xs, wf, b, of[((n * oh + ra) * ow) * f:], relu, sgeo, 0, 1, 0, rb - ra, f0)

    @njit(nogil=True, cache=False)
    def pgrads(xf, df, kf, acc, geo, n0, n1, r0, r1, f0, relu, band):
        """``grads`` on the unpadded input, a band of output rows at a time (``fill``)."""
        oh, ow = geo[3], geo[4]
        xs = scratch(geo, band)
        for n in range(n0, n1):
            for ra in range(r0, r1, band):
                rb = min(ra + band, r1)
                fill(xf, xs, geo, n, ra, rb)
                grads(xs, df, kf, acc, geo, (n * oh + ra) * ow, (n * oh + rb) * ow, f0, relu)

    @njit(nogil=True, cache=False)
    def deep(xf, wf, b, of, relu, geo, f_lo, f_hi, m0, m1, pk):
        """out pixels m0..m1 (flat over N, OH, OW), channels f_lo..f_hi (chunks of
        lanes): per block of C_BLOCK input channels, their weights packed into ``pk``,
        then added to every block of 6 pixels, held in registers."""
        hp, wp, c, oh, ow, f = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
        kh, kw, sh, sw, dh, dw = geo[6], geo[7], geo[8], geo[9], geo[10], geo[11]
        base = np.empty(m1 - m0, np.int64)             # each pixel's first input
        for m in range(m0, m1):
            n, r = m // (oh * ow), m % (oh * ow)
            base[m - m0] = ((n * hp + (r // ow) * sh) * wp + (r % ow) * sw) * c
        for c0 in range(0, c, C_BLOCK):
            cc = min(C_BLOCK, c - c0)
            size = kh * kw * cc * lanes                 # pk: [chunk][i][j][c][lanes]
            for i in range(kh):                         # (reading w's rows in order)
                for j in range(kw):
                    for ch in range(cc):
                        src = ((i * kw + j) * c + c0 + ch) * f
                        t = ((i * kw + j) * cc + ch) * lanes
                        for f0 in range(f_lo, f_hi, lanes):
                            vstore(pk, t, vload(wf, src + f0, lanes))
                            t += size
            for f0 in range(f_lo, f_hi, lanes):
                wbase = (f0 - f_lo) // lanes * size
                for p0 in range(m0, m1, 6):
                    cnt = min(6, m1 - p0)
                    q = p0 - m0                     # a short block repeats its last
                    b0, b1 = base[q] + c0, base[q + min(1, cnt - 1)] + c0
                    b2, b3 = base[q + min(2, cnt - 1)] + c0, base[q + min(3, cnt - 1)] + c0
                    b4, b5 = base[q + min(4, cnt - 1)] + c0, base[q + min(5, cnt - 1)] + c0
                    o0 = p0 * f + f0
                    o1, o2 = o0 + min(1, cnt - 1) * f, o0 + min(2, cnt - 1) * f
                    o3, o4 = o0 + min(3, cnt - 1) * f, o0 + min(4, cnt - 1) * f
                    o5 = o0 + min(5, cnt - 1) * f
                    if c0 == 0:
                        a0 = vload(b, f0, lanes)
                        a1, a2, a3, a4, a5 = a0, a0, a0, a0, a0
                    else:                           # the sum so far, kept in out
                        a0, a1 = vload(of, o0, lanes), vload(of, o1, lanes)
                        a2, a3 = vload(of, o2, lanes), vload(of, o3, lanes)
                        a4, a5 = vload(of, o4, lanes), vload(of, o5, lanes)
                    t = wbase
                    for i in range(kh):
                        for j in range(kw):
                            off = (i * dh * wp + j * dw) * c
                            for ch in range(off, off + cc):
                                wv = vload(pk, t, lanes)
                                a0 = vfma(vbcast(xf, b0 + ch, lanes), wv, a0)
                                a1 = vfma(vbcast(xf, b1 + ch, lanes), wv, a1)
                                a2 = vfma(vbcast(xf, b2 + ch, lanes), wv, a2)
                                a3 = vfma(vbcast(xf, b3 + ch, lanes), wv, a3)
                                a4 = vfma(vbcast(xf, b4 + ch, lanes), wv, a4)
                                a5 = vfma(vbcast(xf, b5 + ch, lanes), wv, a5)
                                t += lanes
                    if relu and c0 + cc >= c:
                        a0, a1, a2 = vrelu(a0), vrelu(a1), vrelu(a2)
                        a3, a4, a5 = vrelu(a3), vrelu(a4), vrelu(a5)
                    # a short block stores its repeated pixel last, with its own value
                    vstore(of, o5, a5)
                    vstore(of, o4, a4)
                    vstore(of, o3, a3)
                    vstore(of, o2, a2)
                    vstore(of, o1, a1)
                    vstore(of, o0, a0)

    return rows, grads, deep, padded, pgrads
