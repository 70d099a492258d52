"""The compiled kernels of ``ops.narrow`` (numba; float32; notation and the method as
there): the forward (``ops.direct``'s row kernel into one image's scratch, then the max
pool, its argmax taps and the ReLU), the backward (the windows that pass listed per
channel, then the patch's 16-lane slots 8 at a time through each list), and the
launchers that run either over bands of images in one parallel launch.  Each kernel is
compiled for exactly its signature (``signatures``), so that one launcher serves every
shape's kernel as a first-class function."""

from __future__ import annotations

import numpy as np


def types():
    """numba's types module and the kernels' argument types: 1-D float32 and int64 arrays
    (contiguous), and bool."""
    from numba import types as t
    return t, t.float32[::1], t.int64[::1], t.boolean


def signatures():
    """The kernels' numba signatures (forward, backward).  Each kernel is compiled for
    exactly its signature, so the band launchers below take any of them as a first-class
    function: one launcher per signature, compiled once (about 0.4 s), instead of one
    per kernel with the kernel linked in and optimised again (1.3-1.6 s per shape)."""
    t, f32, i64, b1 = types()
    forward = t.void(f32, f32, f32, f32, f32, f32, i64, i64, t.int64, t.int64, b1, b1)
    backward = t.void(f32, f32, f32, f32, f32, f32, f32, i64, t.int64, t.int64, b1, b1, b1,
                      b1, i64, f32, i64)
    return forward, backward


def build_forward_bands():
    """The forward's band launcher (numba's parallel launch), taking the forward kernel
    as a first-class function."""
    from numba import njit, prange
    t, f32, i64, b1 = types()
    sig = signatures()[0]

    @njit(t.void(t.FunctionType(sig), f32, f32, f32, f32, f32, t.float32[:, ::1], i64,
                 i64, i64, i64, b1, b1), nogil=True, parallel=True, cache=False)
    def bands_(forward, xf, wf, bp, yf, af, s, dgeo, geo, starts, stops, relu, pooled):
        for i in prange(starts.size):
            forward(xf, wf, bp, yf, af, s[i], dgeo, geo, starts[i], stops[i], relu,
                    pooled)
    return bands_


def build_backward_bands():
    """The backward's band launcher, taking the backward kernel as a first-class
    function; it zeroes each band's accumulator row first."""
    from numba import njit, prange
    t, f32, i64, b1 = types()
    sig = signatures()[1]
    f32_2, i64_2 = t.float32[:, ::1], t.int64[:, ::1]

    @njit(t.void(t.FunctionType(sig), f32, f32, f32, f32, f32, f32, f32_2, i64, i64,
                 i64, b1, b1, b1, b1, i64_2, f32_2, i64_2),
          nogil=True, parallel=True, cache=False)
    def bands_(backward, xf, wt, gf, yf, af, dxf, acc, geo, starts, stops, relu, pooled,
               want_dx, want_dw, base, gs, cnt):
        for i in prange(starts.size):
            acc[i, :] = 0
            backward(xf, wt, gf, yf, af, dxf, acc[i], geo, starts[i], stops[i], relu,
                     pooled, want_dx, want_dw, base[i], gs[i], cnt[i])
    return bands_


def build_forward(fixed, widths):
    """The forward kernel: its row kernels (``ops.direct._kernel``) compiled for ``fixed``
    = (C, Fp, KH, KW, s_h, s_w, d_h, d_w) or every shape (None), in the 16- and 8-lane
    widths that ``widths`` asks for."""
    from numba import njit

    from . import direct
    from .simd import vload, vpick, vrelu, vsplat, vstore_n

    # Only the widths Fp needs are compiled (the other name is never called).
    rows16 = rows8 = None
    if widths[0]:
        rows16 = rows8 = direct._kernel(16, fixed)[0]
    if widths[1]:
        rows8 = direct._kernel(8, fixed)[0]
        rows16 = rows16 or rows8

    @njit(signatures()[0], nogil=True, cache=False)
    def forward(xf, wf, bp, yf, af, s, dgeo, geo, n0, n1, relu, pooled):
        """y (and the argmax taps, when ``pooled``) of images n0..n1; ``s`` is one
        image's conv output, (OH, OW, Fp).  A tap is kept as the offset of its pixel's
        input from its window's first pixel's, (a s_h Wp + b s_w) C for tap (a, b)."""
        hp, wp, c, ow, f = geo[0], geo[1], geo[2], geo[4], geo[5]
        sh, sw = geo[8], geo[9]
        fp, ph, pw, qh, qw = geo[12], geo[13], geo[14], geo[15], geo[16]
        size = hp * wp * c
        for n in range(n0, n1):
            xn = xf[n * size:(n + 1) * size]
            f0 = 0
            while f0 + 16 <= fp:
                rows16(xn, wf, bp, s, False, dgeo, 0, 1, 0, ph * qh, f0)
                f0 += 16
            if f0 < fp:
                rows8(xn, wf, bp, s, False, dgeo, 0, 1, 0, ph * qh, f0)
            for qr in range(qh):
                for qc in range(qw):
                    o = ((n * qh + qr) * qw + qc) * f
                    for f0 in range(0, fp, 8):
                        p0 = ((qr * ph) * ow + qc * pw) * fp + f0
                        best = vload(s, p0, 8)
                        arg = vsplat(0.0, 8)
                        for a in range(ph):
                            for b in range(pw):
                                if a + b > 0:
                                    u = vload(s, p0 + (a * ow + b) * fp, 8)
                                    at = float((a * sh * wp + b * sw) * c)
                                    arg = vpick(u, best, vsplat(at, 8), arg)
                                    best = vpick(u, best, u, best)
                        if relu:
                            best = vrelu(best)
                        m = min(8, f - f0)
                        vstore_n(yf, o + f0, best, m)
                        if pooled:
                            vstore_n(af, o + f0, arg, m)

    return forward


def build_backward():
    """The backward kernel (one for every shape) and its two slot loops."""
    from numba import njit

    from .simd import vadd, vfma, vload_n, vsplat, vstore_n

    @njit(nogil=True, cache=False)
    def _eight(a, s0):
        return a[s0], a[s0 + 1], a[s0 + 2], a[s0 + 3], a[s0 + 4], a[s0 + 5], a[s0 + 6], \
            a[s0 + 7]

    @njit(nogil=True, cache=False)
    def dw_slots(xf, acc, base, gs, e0, e1, xo, wo, ms, s0, k, wb):
        """acc[wb + wo[s]] += sum over entries e of gs[e] * xf[base[e] + xo[s]] for the
        ``k`` <= 8 slots s0.. (16 lanes, ms[s] of them real), summed in registers.  The
        offset arrays run 7 slots past the last (``_eight`` reads 8)."""
        x0, x1, x2, x3, x4, x5, x6, x7 = _eight(xo, s0)
        m0, m1, m2, m3, m4, m5, m6, m7 = _eight(ms, s0)
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = vsplat(0.0, 16)
        for e in range(e0, e1):
            g, p = vsplat(gs[e], 16), base[e]
            a0 = vfma(g, vload_n(xf, p + x0, 16, m0), a0)
            if k > 1:
                a1 = vfma(g, vload_n(xf, p + x1, 16, m1), a1)
            if k > 2:
                a2 = vfma(g, vload_n(xf, p + x2, 16, m2), a2)
            if k > 3:
                a3 = vfma(g, vload_n(xf, p + x3, 16, m3), a3)
            if k > 4:
                a4 = vfma(g, vload_n(xf, p + x4, 16, m4), a4)
            if k > 5:
                a5 = vfma(g, vload_n(xf, p + x5, 16, m5), a5)
            if k > 6:
                a6 = vfma(g, vload_n(xf, p + x6, 16, m6), a6)
            if k > 7:
                a7 = vfma(g, vload_n(xf, p + x7, 16, m7), a7)
        for s, a in ((0, a0), (1, a1), (2, a2), (3, a3), (4, a4), (5, a5), (6, a6), (7, a7)):
            if s < k:
                o, m = wb + wo[s0 + s], ms[s0 + s]
                vstore_n(acc, o, vadd(vload_n(acc, o, 16, m), a), m)

    @njit(nogil=True, cache=False)
    def dx_slots(wt, dxf, base, gs, e0, e1, xo, wo, ms, s0, k, wb):
        """dxf[base[e] + xo[s]] += gs[e] * wt[wb + wo[s]] for every entry e and the ``k``
        <= 8 slots s0.. (their weights held in registers)."""
        x0, x1, x2, x3, x4, x5, x6, x7 = _eight(xo, s0)
        m0, m1, m2, m3, m4, m5, m6, m7 = _eight(ms, s0)
        o0, o1, o2, o3, o4, o5, o6, o7 = _eight(wo, s0)
        w0, w1 = vload_n(wt, wb + o0, 16, m0), vload_n(wt, wb + o1, 16, m1)
        w2, w3 = vload_n(wt, wb + o2, 16, m2), vload_n(wt, wb + o3, 16, m3)
        w4, w5 = vload_n(wt, wb + o4, 16, m4), vload_n(wt, wb + o5, 16, m5)
        w6, w7 = vload_n(wt, wb + o6, 16, m6), vload_n(wt, wb + o7, 16, m7)
        for e in range(e0, e1):
            g, p = vsplat(gs[e], 16), base[e]
            vstore_n(dxf, p + x0, vfma(g, w0, vload_n(dxf, p + x0, 16, m0)), m0)
            if k > 1:
                vstore_n(dxf, p + x1, vfma(g, w1, vload_n(dxf, p + x1, 16, m1)), m1)
            if k > 2:
                vstore_n(dxf, p + x2, vfma(g, w2, vload_n(dxf, p + x2, 16, m2)), m2)
            if k > 3:
                vstore_n(dxf, p + x3, vfma(g, w3, vload_n(dxf, p + x3, 16, m3)), m3)
            if k > 4:
                vstore_n(dxf, p + x4, vfma(g, w4, vload_n(dxf, p + x4, 16, m4)), m4)
            if k > 5:
                vstore_n(dxf, p + x5, vfma(g, w5, vload_n(dxf, p + x5, 16, m5)), m5)
            if k > 6:
                vstore_n(dxf, p + x6, vfma(g, w6, vload_n(dxf, p + x6, 16, m6)), m6)
            if k > 7:
                vstore_n(dxf, p + x7, vfma(g, w7, vload_n(dxf, p + x7, 16, m7)), m7)

    @njit(signatures()[1], nogil=True, cache=False)
    def backward(xf, wt, gf, yf, af, dxf, acc, geo, n0, n1, relu, pooled, want_dx, want_dw,
                 base, gs, cnt):
        """acc[:F*KH*KW*C] += dW (as (F, KH, KW, C)), acc[F*KH*KW*C:] += db, and dx_pad of
        images n0..n1 += their part, from y's gradient ``gf``.  Per image, the windows
        that pass are first listed per channel (``base``: the argmax pixel's first
        input, ``gs``: its gradient; ``cnt`` entries each); then per channel, a patch's
        runs are cut into 16-lane slots, and 8 slots at a time are summed over the list
        in registers (dW) or added to each entry's patch with their weights held in
        registers (dx)."""
        hp, wp, c, f = geo[0], geo[1], geo[2], geo[5]
        kh, kw, sh, sw, dh, dw = geo[6], geo[7], geo[8], geo[9], geo[10], geo[11]
        ph, pw, qh, qw = geo[13], geo[14], geo[15], geo[16]
        run, runs = (kw * c, 1) if dw == 1 else (c, kw)      # contiguous runs per row
        row_len = kw * c
        dbo = f * kh * row_len
        per = qh * qw                                        # list length per channel
        nv = (run + 15) // 16
        slots = kh * runs * nv
        xo = np.zeros(slots + 7, np.int64)                   # a slot's input offset,
        wo = np.zeros(slots + 7, np.int64)                   # its offset in a dW row,
        ms = np.zeros(slots + 7, np.int64)                   # its real lanes (7 more
        #                                                      slots after: no lanes)
        s = 0
        for i in range(kh):
            for sg in range(runs):
                for v in range(0, run, 16):
                    xo[s] = (i * dh * wp + sg * dw) * c + v
                    wo[s] = i * row_len + sg * c + v
                    ms[s] = min(16, run - v)
                    s += 1
        keep_all = 0 if relu else 1
        for n in range(n0, n1):
            for ch in range(f):
                e = ch * per
                for qr in range(qh):
                    first = ((n * hp + qr * ph * sh) * wp) * c
                    for qc in range(qw):
                        o = ((n * qh + qr) * qw + qc) * f + ch
                        base[e] = first + qc * pw * sw * c + (int(af[o]) if pooled else 0)
                        gs[e] = gf[o]
                        # closed ReLUs (y == 0; NaN passes) are overwritten by the next
                        # (no branch: half the windows are closed, in no order)
                        e += max(int(yf[o] != 0.0), keep_all)
                cnt[ch] = e - ch * per
            for ch in range(f):
                e0, e1 = ch * per, ch * per + cnt[ch]
                t = np.float32(0.0)
                for e in range(e0, e1):
                    t += gs[e]
                acc[dbo + ch] += t
                wb = ch * kh * row_len
                for s0 in range(0, slots, 8):
                    k = min(8, slots - s0)
                    if want_dw:
                        dw_slots(xf, acc, base, gs, e0, e1, xo, wo, ms, s0, k, wb)
                    if want_dx:
                        dx_slots(wt, dxf, base, gs, e0, e1, xo, wo, ms, s0, k, wb)
    return backward
