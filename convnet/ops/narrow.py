"""Direct convolution for narrow layers (few channels, as LeNet's), with the ReLU and a
max pool fused, forward and backward (float32, with numba).

Notation (NHWC / HWIO, as in ``ops.conv``):
    x_pad (N, Hp, Wp, C)   w (KH, KW, C, F)   out (N, OH, OW, F)
    s, d  stride and dilation;  pool (PH, PW): non-overlapping windows, floor mode;
          y (N, QH, QW, F) = max_pool(relu(conv(x) + b)), QH = OH // PH, QW = OW // PW
          (no pool: PH = PW = 1, y = relu(conv(x) + b) or the plain conv)

LeNet's layers (1 -> 6 and 6 -> 16 channels, 5x5) are too narrow for the GEMMs every
other algorithm is built on: a K = 25 im2col GEMM runs far below the BLAS's speed, and
the banded GEMM (``ops.toeplitz``) does Wp / KW times the multiplies; either way the
pool, its argmax and the ReLU are short NumPy passes, and the backward scatters a
mostly-zero gradient through dense GEMMs.  Here every pass is one compiled kernel per
band of whole images:

    forward   per image, ``ops.direct``'s row kernel (6 output pixels x 8 or 16 channels
              in vector registers across the taps; F padded to Fp, a multiple of 8, with
              zero weights) writes the conv + bias into a scratch of one image, still in
              L1 or L2; then each pool window's max and torch's argmax tap (``simd.vpick``:
              a NaN wins, the first of equal maxima stays) are found lane-wise, clamped
              at 0 and stored, F of the Fp lanes (``simd.vstore_n``).  The cache keeps y
              and the argmax taps -- no (N, OH, OW, F) array is kept.
    backward  the conv's gradient is y's gradient placed at each window's argmax, where
              y != 0 (the ReLU's rule: NaN passes), and zero everywhere else: at most one
              pixel in PH * PW per channel.  So the backward walks y's gradient and adds
              only those: for each (window, channel f) that passes, with g its gradient
              and (r, q) its argmax pixel, each kernel row i is one contiguous run of
              KW * C values (d_w = 1; else KW runs of C),

                  dW[f, i, :]            += g * x_pad[n, r s_h + i d_h, q s_w + ..., :]
                  dx_pad[n, r s_h + i d_h, q s_w + ..., :] += g * w[i, :, :, f]
                  db[f]                  += g

              in 16-lane vectors (the last one masked: ``simd.vload_n``/``vstore_n``, so
              nothing outside the run is read or written).  Without a pool every pixel
              is its own window; without the ReLU nothing is masked.  The patch's
              vectors ("slots": KH x runs x 16-lane pieces) go 8 at a time through a
              channel's list: dW's 8 sums stay in registers over the whole list, and
              for dx the 8 weight vectors do, each entry adding its 8 pieces.  (With
              the rows as the outer loop, as first written, every load and store went
              round the list once per row: LeNet's backward took 0.28 and 0.32 ms,
              now 0.19 and 0.25 ms.)

The gradients skip what is structurally zero (off the argmax, or where the ReLU is
closed), so where the input holds an inf under such a zero, dW stays finite; the dense
GEMMs of the other algorithms (and torch) make 0 * inf = NaN there.

Threads: bands of whole images (``threads.bands``), launched through numba's OpenMP (or
TBB) layer where it has one (``jit.parallel_launch``: 1-2 us, against 70-90 us for a
round trip through ``ops.threads``' pool, whose parked workers the VM wakes slowly --
on LeNet's 0.1-0.3 ms ops the pool's round trip ate the second core's gain), else on the
pool.  dx of a band is its own; dW and db are summed per band and added in band order
(as ``threads.run_reduce``): the same bits on every run for a given thread count, and
the same bits either way.

``applies``: float32, groups 1, numba installed and ``ops.jit`` enabled.  The heuristic
(``ops.algo``) gives it the thin, narrow layers the banded GEMM would otherwise run.
"""

from __future__ import annotations

import numpy as np

from . import jit
from .threads import bands, num_threads, run_blocks, run_reduce

LANES = 8                   # forward chunks: 16 channels, then 8 (F padded to Fp)
PARALLEL_FLOPS = 4 << 20    # direct-conv FLOPs from which the images are cut among threads
FIXED_TAPS = 160            # K = KH*KW*C up to this: the row kernel is compiled for the
#                             shape (its tap loops unrolled: LeNet's conv1 rows 0.48 ->
#                             0.13 ms); wider ones run the general kernel (the unrolled
#                             code of K = 630 took 3-4 s to compile)
_built: dict = {}


def applies(groups, dtype) -> bool:
    """Whether the narrow kernels can run this conv."""
    return groups == 1 and np.dtype(dtype) == np.float32 and jit.enabled()


def _padded(f: int) -> int:
    return -(-f // LANES) * LANES


def _forward(fixed, fp):
    """The forward kernel for Fp channels, its row kernels compiled for ``fixed`` = (C,
    Fp, KH, KW, s_h, s_w, d_h, d_w) (``ops.direct._kernel``), or for every shape (None)."""
    widths = (fp >= 16, fp % 16 != 0)                   # 16-lane chunks, an 8-lane one
    return jit.built(_built, (fixed, widths), lambda: _build_forward(fixed, widths))


def _backward():
    return jit.built(_built, "backward", _build_backward)


def _address(key, kernel, which):
    """``kernel`` (built under ``key``) as the band launchers' first-class argument."""
    return jit.built(_built, ("address", key),
                     lambda: jit.first_class(kernel, _signatures()[which]))


def _types():
    """numba's types module and the kernels' argument types: 1-D float32 and int64 arrays
    (contiguous), and bool."""
    from numba import types as t
    return t, t.float32[::1], t.int64[::1], t.boolean


def _signatures():
    """The kernels' numba signatures (forward, backward).  Each kernel is compiled for
    exactly its signature, so the band launchers below take any of them as a first-class
    function: one launcher per signature, compiled once (about 0.4 s), instead of one
    per kernel with the kernel linked in and optimised again (1.3-1.6 s per shape)."""
    t, f32, i64, b1 = _types()
    forward = t.void(f32, f32, f32, f32, f32, f32, i64, i64, t.int64, t.int64, b1, b1)
    backward = t.void(f32, f32, f32, f32, f32, f32, f32, i64, t.int64, t.int64, b1, b1, b1,
                      b1, i64, f32, i64)
    return forward, backward


def _forward_bands():
    """A forward kernel over bands of images in one parallel launch
    (``jit.parallel_launch``): band i takes images starts[i]..stops[i] and scratch row i."""
    def build():
        from numba import njit, prange
        t, f32, i64, b1 = _types()
        sig = _signatures()[0]

        @njit(t.void(t.FunctionType(sig), f32, f32, f32, f32, f32, t.float32[:, ::1], i64,
                     i64, i64, i64, b1, b1), nogil=True, parallel=True, cache=False)
        def bands_(forward, xf, wf, bp, yf, af, s, dgeo, geo, starts, stops, relu, pooled):
            for i in prange(starts.size):
                forward(xf, wf, bp, yf, af, s[i], dgeo, geo, starts[i], stops[i], relu,
                        pooled)
        return bands_
    return jit.built(_built, ("entry", "forward bands"),
                     lambda: jit.entry(jit.built(_built, "forward bands", build)))


def _backward_bands():
    """The backward over bands of images in one parallel launch: band i sums into
    accumulator row i, with list scratch row i."""
    def build():
        from numba import njit, prange
        t, f32, i64, b1 = _types()
        sig = _signatures()[1]
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
    return jit.built(_built, ("entry", "backward bands"),
                     lambda: jit.entry(jit.built(_built, "backward bands", build)))


def _build_forward(fixed, widths):
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

    @njit(_signatures()[0], nogil=True, cache=False)
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


def _build_backward():
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

    @njit(_signatures()[1], nogil=True, cache=False)
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


def _geometry(x_pad, w_shape, out_h, out_w, stride, dilation, pool):
    """The kernels' int64 shape vector: ``ops.direct``'s twelve (Hp, Wp, C, OH, OW, F, KH,
    KW, s_h, s_w, d_h, d_w), then Fp, PH, PW, QH, QW."""
    _, hp, wp, c = x_pad.shape
    kh, kw, _, f = w_shape
    ph, pw = pool or (1, 1)
    return np.array([hp, wp, c, out_h, out_w, f, kh, kw, *stride, *dilation, _padded(f),
                     ph, pw, out_h // ph, out_w // pw], np.int64)


def _flops(n, out_h, out_w, w_shape):
    kh, kw, c, f = w_shape
    return 2 * n * out_h * out_w * kh * kw * c * f


def _image_bands(n, flops):
    t = num_threads() if flops >= PARALLEL_FLOPS else 1
    return bands(n, min(n, t)), t > 1


def _band_ends(blocks):
    return (np.array([b.start for b in blocks], np.int64),
            np.array([b.stop for b in blocks], np.int64))


def narrow_forward(x_pad, w, b, stride, dilation, out_h, out_w, relu=False, pool=None):
    """Returns ``(y, cache)``: y (N, OH, OW, F) from the padded input, clamped at 0 with
    ``relu``; with ``pool=(PH, PW)`` (and ``relu``) the max-pooled (N, QH, QW, F)."""
    if pool is not None and not relu:
        raise ValueError(f"narrow_forward: pool needs relu, got pool {pool}, relu={relu}")
    if not applies(1, np.result_type(x_pad.dtype, w.dtype)):
        raise ValueError(f"narrow_forward: needs float32 and numba; got {x_pad.dtype} x "
                         f"{w.dtype}, jit enabled: {jit.enabled()}")
    n = x_pad.shape[0]
    kh, kw, c, f = w.shape
    geo = _geometry(x_pad, w.shape, out_h, out_w, stride, dilation, pool)
    fp, qh, qw = int(geo[12]), int(geo[15]), int(geo[16])
    # ops.direct's geometry for the row kernel: F = Fp, OH = the rows the pool reads.
    dgeo = geo[:12].copy()
    dgeo[3], dgeo[5] = int(geo[13]) * qh, fp
    xf = np.ascontiguousarray(x_pad, np.float32).reshape(-1)
    wpad = np.zeros((kh * kw * c, fp), np.float32)
    wpad[:, :f] = w.reshape(-1, f)
    bpad = np.zeros(fp, np.float32)
    if b is not None:
        bpad[:f] = b
    y = np.empty((n, qh, qw, f), np.float32)
    arg = np.empty(y.shape, np.float32) if pool is not None else np.empty(1, np.float32)
    fixed = (c, fp, kh, kw, *stride, *dilation) if kh * kw * c <= FIXED_TAPS else None
    forward = _forward(fixed, fp)
    blocks, parallel = _image_bands(n, _flops(n, out_h, out_w, w.shape))
    s_size = int(dgeo[3]) * out_w * fp
    args = (xf, wpad.reshape(-1), bpad, y.reshape(-1), arg.reshape(-1))
    flags = (bool(relu), pool is not None)
    if parallel and jit.parallel_launch(len(blocks)):
        starts, stops = _band_ends(blocks)
        scratch = np.empty((len(blocks), s_size), np.float32)
        _forward_bands()(_address((fixed, fp), forward, 0), *args, scratch, dgeo, geo,
                         starts, stops, *flags)
        jit.launched()
    else:
        def run(blk):
            forward(*args, np.empty(s_size, np.float32), dgeo, geo, blk.start, blk.stop,
                    *flags)

        run_blocks(run, blocks, parallel=parallel)
    fused = None if pool is None else (y, arg)
    return y, (x_pad, w, tuple(stride), tuple(dilation), b is not None,
               None if pool is None else tuple(pool), out_h, out_w, fused)


def narrow_backward(dy, cache, need, relu_out=None):
    """Returns ``(dx_pad, dw, db)`` (dx on the padded input) from y's gradient ``dy``;
    entries not in ``need`` are None.  ``relu_out`` (the forward's clamped output) makes it
    the backward of conv + ReLU; after a fused pool, ``dy`` is the pooled gradient and the
    pooled output masks it."""
    x_pad, w, stride, dilation, has_bias, pool, out_h, out_w, fused = cache
    if fused is None and relu_out is not None:
        fused = (relu_out, np.empty(1, np.float32))
    relu = fused is not None
    if relu and dy.shape != fused[0].shape:
        raise ValueError(f"narrow_backward: dy has shape {dy.shape}, the forward's output "
                         f"{fused[0].shape}")
    n, hp, wp, c = x_pad.shape
    kh, kw, _, f = w.shape
    geo = _geometry(x_pad, w.shape, out_h, out_w, stride, dilation, pool)
    if dy.shape != (n, int(geo[15]), int(geo[16]), f):
        raise ValueError(f"narrow_backward: dy has shape {dy.shape}, expected "
                         f"{(n, int(geo[15]), int(geo[16]), f)}")
    xf = np.ascontiguousarray(x_pad, np.float32).reshape(-1)
    gf = np.ascontiguousarray(dy, np.float32).reshape(-1)
    yf = fused[0].reshape(-1) if relu else gf
    af = fused[1].reshape(-1) if relu else np.empty(1, np.float32)
    wt = np.ascontiguousarray(w.transpose(3, 0, 1, 2), np.float32).reshape(-1)  # (F, KH, KW, C)
    dx = np.zeros(x_pad.shape, np.float32) if need[0] else np.empty(1, np.float32)
    dxf = dx.reshape(-1)
    size = f * kh * kw * c + f
    backward = _backward()
    blocks, parallel = _image_bands(n, _flops(n, out_h, out_w, w.shape))

    per = int(geo[15]) * int(geo[16])
    args = (xf, wt, gf, yf, af, dxf)
    flags = (relu, pool is not None, bool(need[0]), bool(need[1]))
    if parallel and jit.parallel_launch(len(blocks)):
        # The same sums as run_reduce's: one accumulator per band, added in band order.
        k = len(blocks)
        starts, stops = _band_ends(blocks)
        accs = np.empty((k, size), np.float32)
        _backward_bands()(_address("backward", _backward(), 1), *args, accs, geo, starts,
                          stops, *flags, np.empty((k, f * per), np.int64),
                          np.empty((k, f * per), np.float32), np.empty((k, f), np.int64))
        jit.launched()
        acc = accs[0]
        for i in range(1, k):
            acc += accs[i]
    else:
        def block(blk, part):
            if part is None:
                part = np.empty(size, np.float32)
            part[...] = 0
            backward(*args, part, geo, blk.start, blk.stop, *flags,
                     np.empty(f * per, np.int64), np.empty(f * per, np.float32),
                     np.empty(f, np.int64))
            return part

        acc = run_reduce(block, blocks, (size,), np.float32, parallel=parallel)
    dw = acc[:size - f].reshape(f, kh, kw, c).transpose(1, 2, 3, 0).copy() if need[1] else None
    db = acc[size - f:].copy() if need[2] and has_bias else None
    return (dx if need[0] else None), dw, db
