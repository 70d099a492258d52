"""The kernels of ``ops.winograd_rows`` (numba; float32; notation as there): the
forward, and the pieces both passes share.

    forward kernel: 2 tiles x 6 sums x 32 lanes, 24 AVX-512 registers, for the whole sum
        over (i, c) (the bias starts in the second sum, whose column of A^T is all ones);
        per (i, c) 6 weight loads, 12 broadcasts of V and 24 FMAs; then A^T, the ReLU and
        up to 8 stores.
    weight gradient: its driver is in ``ops.winograd_rows_grad``; the input transform,
        G^T's last step and its launcher are here, shared.

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

from . import jit


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

    from .simd import empty64, vadd, vfma, vgather, vload_n, vsplat, vstore_n, vsub

    sigs = signatures()

    @njit(nogil=True, cache=False)
    def transform(xf, vs, pb, geo, n, ra, rb):
        """vs[((yy 6 + k) C + c) M + t] = (B^T x_pad[n, ra s_h + yy, 4t:4t+6, c])[k], M = T
        + 1 (slot T unused), for the padded rows output rows ra..rb read (zeros outside
        the input).  pb: one padded row (``transform_scratch``: zero where it is not the
        input, and only the input's columns are ever written), from which the six inputs
        of 16 tiles of a channel are six gathers, 4 C apart.  (Splitting the row by
        column mod 4 first, with the padding worked out per split, took 1.4x as long on
        VGG's rows and 2.3x on CIFAR's 32-wide ones.)"""
        h, w, c = geo[0], geo[1], geo[2]
        kh, sh, dh, pt, pl, nt = geo[6], geo[7], geo[8], geo[9], geo[10], geo[11]
        m = nt + 1
        cm = c * m
        wc = w * c
        two, four, minus2 = vsplat(2.0, 16), vsplat(4.0, 16), vsplat(-2.0, 16)
        minus4, minus5, zero = vsplat(-4.0, 16), vsplat(-5.0, 16), vsplat(0.0, 16)
        for yy in range((rb - ra - 1) * sh + (kh - 1) * dh + 1):
            y = ra * sh + yy - pt
            o = yy * 6 * cm
            if y < 0 or y >= h:                             # a row of padding
                for i in range(o, o + 6 * cm, 16):
                    vstore_n(vs, i, zero, min(16, o + 6 * cm - i))
                continue
            src = (n * h + y) * wc
            for i in range(0, wc, 16):                      # the input's columns
                k = min(16, wc - i)
                vstore_n(pb, pl * c + i, vload_n(xf, src + i, 16, k), k)
            for ch in range(c):
                oc = o + ch * m
                for t in range(0, m, 16):
                    cnt = min(16, m - t)
                    b = 4 * t * c + ch
                    d0, d1 = vgather(pb, b, 4 * c, 16), vgather(pb, b + c, 4 * c, 16)
                    d2, d3 = vgather(pb, b + 2 * c, 4 * c, 16), vgather(pb, b + 3 * c, 4 * c, 16)
                    d4, d5 = vgather(pb, b + 4 * c, 4 * c, 16), vgather(pb, b + 5 * c, 4 * c, 16)
                    s12, s34 = vadd(d1, d2), vadd(d3, d4)
                    e31, e42 = vsub(d3, d1), vsub(d4, d2)
                    vstore_n(vs, oc + t, vfma(d0, four, vfma(d2, minus5, d4)), cnt)
                    vstore_n(vs, oc + cm + t, vfma(s12, minus4, s34), cnt)
                    vstore_n(vs, oc + 2 * cm + t, vfma(vsub(d1, d2), four, vsub(d4, d3)), cnt)
                    vstore_n(vs, oc + 3 * cm + t, vfma(e31, two, e42), cnt)
                    vstore_n(vs, oc + 4 * cm + t, vfma(e31, minus2, e42), cnt)
                    vstore_n(vs, oc + 5 * cm + t, vfma(d1, four, vfma(d3, minus5, d5)), cnt)

    @njit(nogil=True, cache=False)
    def transform_scratch(geo, band):
        """(vs, pb) for ``transform`` on a band of ``band`` output rows: the band's
        transformed padded rows, and one padded row, zeroed (the gathers of the last 16
        tiles read up to column 4 (T + 15) + 5)."""
        c, nt = geo[2], geo[11]
        rows = (band - 1) * geo[7] + (geo[6] - 1) * geo[8] + 1
        pb = empty64((4 * (nt + 17) + 8) * c)
        pb[:] = 0.0
        return empty64(rows * 6 * c * (nt + 1)), pb

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
    return SimpleNamespace(transform=transform, transform_scratch=transform_scratch,
                           weights=weights, finish=finish,
                           forward_bands=forward_bands, weight_grad_bands=weight_grad_bands,
                           forward_entry=jit.entry(forward_bands),
                           weight_grad_entry=jit.entry(weight_grad_bands))


def build_forward(helpers, r32, r16):
    """The forward's serial driver (over ``build_helpers``' ``transform`` and its
    scratch), for 32-lane chunks (r32) and a 16-lane one (r16); a width that is not
    needed is never called, so the other stands in for it."""
    from numba import njit

    transform, transform_scratch = helpers.transform, helpers.transform_scratch

    from .simd import (
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
        f = geo[5]
        vs, pb = transform_scratch(geo, band)
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
