"""Direct convolution in register blocks (float32, with numba).

Notation (NHWC / HWIO, as in ``ops.conv``):
    x_pad (N, Hp, Wp, C)   w (KH, KW, C, F)   out (N, OH, OW, F)
    s, d  stride and dilation;  K = KH*KW*C, the taps of one output pixel

im2col + GEMM writes a (N*OH*OW, K) copy of the input, K times its size, for a GEMM
whose shape often suits the BLAS badly: a first layer (C = 3, 3x3: K = 27) gives each
64-channel output row only 27 multiply-adds (the BLAS reaches about a quarter of its
speed, benchmarks/RESULTS.md, W4), and VGG-16's 14x14x512 layers at batch 1 give it
196 rows for 4608 x 512 weights.  A direct kernel reads the input where it lies and
keeps a block of outputs in vector registers for the whole sum over the taps:

    for each block of 6 output pixels p and each chunk of CH = 64 (or 32, 16) outputs:
        a_p = b[chunk]                                   # 6 accumulators of CH lanes
        for each tap (i, j, c):                          # K times
            wv  = w[i, j, c, chunk]                      # one vector load
            a_p = x_pad[n, r*s_h + i*d_h, (q+p)*s_w + j*d_w, c] * wv + a_p   # 6 FMAs
        out[n, r, q+p, chunk] = relu(a_p)                # stored once, in NHWC

With CH = 64 the 6 accumulators are 24 of the 32 AVX-512 registers; each tap costs one
weight load and six broadcasts for 24 FMAs, so the loop runs near the core's FMA rate
(about 150 of the sgemm's 170 GFLOP/s per core here).  numba has no vector type, so
``ops.simd`` provides one (LLVM ``<CH x float>`` values); written as scalar loops, LLVM
kept the accumulators in memory (benchmarks/RESULTS.md, seventh and eighth passes).
Two kernels run it:

    rows   thin inputs (K <= MAX_TAPS): 6 neighbouring pixels of one output row, the
           weights read in place (all of them fit in L1)
    deep   wider ones: the weights of C_BLOCK input channels are first packed for the
           thread's chunks ([chunk][i][j][c][CH], read from w row by row: w's own
           layout puts a chunk's consecutive taps F floats apart, which maps them onto
           a few cache sets); then every block of 6 pixels (any 6 of the flattened
           N*OH*OW, each with its own input offset; a short last block repeats its
           last pixel) adds those channels' taps to its sum, kept in ``out`` between
           channel blocks.  The pool's threads take the 64-channel chunks when they
           share out evenly (each chunk packed once), else bands of pixels.

The weight gradient of a first layer (dW and db; no dX is needed) is direct too, when
its accumulator is small (``weight_grad_pays``): ``direct_weight_grad`` sums 6 taps x a
chunk of channels in registers (24 accumulators with CH = 64; then 3, then 1 at a time
for the last K mod 6) over blocks of G_BLOCK output pixels, masking dout by the
fused ReLU's output on the way (im2col builds the (N*OH*OW, K) columns and a masked copy
of dout for one GEMM: 2-3x slower on VGG's and CIFAR's conv1_1).  A backward that needs
dX runs im2col's (``ops.conv``), whose cache this forward returns.

``applies``: float32, groups 1, F a multiple of 16, numba installed and ``ops.jit``
enabled; ``applies_well`` (the heuristic, where im2col would otherwise run) adds enough
work to pay for compiling the kernel: PARALLEL_FLOPS (thin), DEEP_FLOPS (deep).
"""

from __future__ import annotations

import numpy as np

from . import jit
from .points import chunks as _chunks  # (first channel, lanes): 64s, then 32, 16
from .shape import conv_output_shape
from .threads import bands, num_threads, run_blocks, run_reduce

MAX_TAPS = 32       # K = KH*KW*C at most this: the "rows" kernel; beyond, "deep"
C_BLOCK = 64        # deep: input channels packed and summed per pass over the pixels
DEEP_FLOPS = 256 << 20      # applies_well: the deep kernel saves 20-30 % of im2col's time;
#                             below this the second or two its compile takes (the digits
#                             model's 19-MFLOP conv3: 9.0 -> 10.0 s in `convnet train`)
#                             pays back only after many thousands of calls
G_BLOCK = 128               # weight gradient: output pixels per block (their masked dout,
#                             128 x 64 lanes, is 32 KB: it stays in L1 while every tap
#                             group sums over it); with 32, four times the passes over the
#                             accumulator made it 1.05-1.4x slower; 256 overflowed L1
DW_ACC_BYTES = 4 << 20      # the direct weight gradient keeps a (K + 1) x F accumulator per
#                             thread, zeroed and summed every call; above this the
#                             BLAS's GEMM wins (VGG's 14x14x512 at batch 1, 9.4 MB:
#                             4.9 ms against im2col's 3.5)
ROW_SCRATCH = 32 << 10      # thin forward: bytes of padded input rows built per band
PARALLEL_FLOPS = 16 << 20   # smaller convs run on the calling thread: a pool round trip
#                             (70-100 us, ops.threads) would cost more than it saves
_built: dict = {}


def applies(w_shape, groups, dtype) -> bool:
    """Whether the direct kernels can run this conv."""
    return (groups == 1 and w_shape[3] % 16 == 0 and np.dtype(dtype) == np.float32
            and jit.enabled())


def applies_well(x_shape, w_shape, stride, pads, dilation, groups, dtype) -> bool:
    """Whether the direct kernels can run this conv and it has enough work to pay for
    compiling them (0.5-2 s per kernel and channel width, once per process): at least
    PARALLEL_FLOPS for the thin kernel, DEEP_FLOPS for the deep one."""
    if not applies(w_shape, groups, dtype):
        return False
    kh, kw, c, f = w_shape
    out_h, out_w = conv_output_shape(x_shape[1:3], w_shape[:2], stride, pads, dilation)
    least = PARALLEL_FLOPS if kh * kw * c <= MAX_TAPS else DEEP_FLOPS
    return 2 * x_shape[0] * out_h * out_w * kh * kw * c * f >= least


def weight_grad_pays(w_shape) -> bool:
    """Whether ``direct_weight_grad`` beats im2col's GEMM: its per-thread accumulator,
    (K + 1) x F floats, at most DW_ACC_BYTES."""
    kh, kw, c, f = w_shape
    return (kh * kw * c + 1) * f * 4 <= DW_ACC_BYTES


def _kernel(lanes: int, fixed: tuple | None = None):
    """The compiled kernels for chunks of ``lanes`` output channels (built once).

    ``fixed`` = (C, F, KH, KW, s_h, s_w, d_h, d_w) compiles the row kernel for that one
    shape: with the tap loops' bounds and strides known, LLVM unrolls them and folds the
    addresses, which made LeNet's rows 2.4-3.7x faster (benchmarks/RESULTS.md, eleventh
    pass) for about half a second of compiling per shape."""
    return jit.built(_built, (lanes, fixed), lambda: _build(lanes, fixed or (0,) * 8))


def _helpers():
    """The band scratch's two helpers, compiled once for every kernel that uses them."""
    return jit.built(_built, "helpers", _build_helpers)


def _build_helpers():
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


def _build(lanes, fixed):
    from numba import njit

    from .simd import empty64, vadd, vbcast, vfma, vkeep, vload, vrelu, vsplat, vstore

    fill, scratch = _helpers()

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


def _geometry(x_pad, w_shape, out_h, out_w, stride, dilation):
    """The kernels' int64 shape vector: Hp, Wp, C, OH, OW, F, KH, KW, s_h, s_w, d_h, d_w."""
    _, hp, wp, c = x_pad.shape
    kh, kw, _, f = w_shape
    return np.array([hp, wp, c, out_h, out_w, f, kh, kw, *stride, *dilation], np.int64)


def direct_forward(x, w, b, stride, pads, dilation, relu=False):
    """out (N, OH, OW, F) of the input (N, H, W, C) zero-padded by ``pads`` ((top,
    bottom), (left, right)), clamped at 0 with ``relu``."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    if not applies(w.shape, 1, np.result_type(x.dtype, w.dtype)):
        raise ValueError(f"direct_forward: needs float32, F a multiple of 16 and numba; got "
                         f"{x.dtype} x {w.dtype}, F = {f}, jit enabled: {jit.enabled()}")
    out_h, out_w = conv_output_shape((h, wd), (kh, kw), stride, pads, dilation)
    wf = np.ascontiguousarray(w).reshape(-1)
    bias = np.zeros(f, np.float32) if b is None else np.ascontiguousarray(b, np.float32)
    out = np.empty((n, out_h, out_w, f), np.float32)
    of = out.reshape(-1)
    flops = 2 * out.size * kh * kw * c
    if kh * kw * c > MAX_TAPS:
        from .conv import pad_nhwc  # (ops.conv imports this module)

        x_pad = pad_nhwc(x, pads)                  # x itself where nothing is padded
        geo = _geometry(x_pad, w.shape, out_h, out_w, stride, dilation)
        _deep(x_pad.reshape(-1), wf, bias, of, bool(relu), geo, w.shape, n * out_h * out_w,
              flops)
        return out
    # The thin kernel pads in its own scratch, a band of rows at a time (no padded copy
    # of the whole input, written by one thread and read again from memory).
    xf = np.ascontiguousarray(x).reshape(-1)
    geo, band = _banded(x.shape, w.shape, pads, out_h, out_w, stride, dilation)
    fixed = (c, f, kh, kw, *stride, *dilation)
    kernels = [(f0, _kernel(lanes, fixed)[3]) for f0, lanes in _chunks(f)]

    def run(blk):
        for f0, k in kernels:
            k(xf, wf, bias, of, bool(relu), geo, *blk, f0, band)

    run_blocks(run, _row_blocks(n, out_h, num_threads()), parallel=flops >= PARALLEL_FLOPS)
    return out


def _banded(x_shape, w_shape, pads, out_h, out_w, stride, dilation):
    """The geometry of the kernels that pad a band of rows at a time (``_geometry``'s
    twelve, then H, W, pad_top, pad_left) and the band: the output rows whose padded
    input rows fit in ROW_SCRATCH bytes."""
    _, h, wd, c = x_shape
    kh, kw, _, f = w_shape
    (pt, pb), (pl, pr) = pads
    hp, wp = h + pt + pb, wd + pl + pr
    geo = np.array([hp, wp, c, out_h, out_w, f, kh, kw, *stride, *dilation, h, wd, pt, pl],
                   np.int64)
    fit = ROW_SCRATCH // (wp * c * 4) - (kh - 1) * dilation[0] - 1
    return geo, max(1, min(out_h, fit // stride[0] + 1))


def _row_blocks(n, out_h, t):
    """(n0, n1, r0, r1) blocks for t threads: whole images each, or with fewer images
    than threads, bands of each image's rows."""
    if n >= t:
        return [(s.start, s.stop, 0, out_h) for s in bands(n, t)]
    return [(i, i + 1, s.start, s.stop) for i in range(n) for s in bands(out_h, min(out_h, t))]


def _deep(xf, wf, bias, of, relu, geo, w_shape, m, flops):
    """The wide-input forward on the pool: the 64-channel chunks cut among the threads
    when they share out evenly (each chunk's weights are then packed once), else the
    output pixels cut into bands (each thread packs every chunk)."""
    kh, kw, c, f = w_shape
    chunks = _chunks(f)
    t = num_threads() if flops >= PARALLEL_FLOPS else 1
    wide = sum(1 for _, lanes in chunks if lanes == 64)
    # (first channel, end, lanes) runs of equal-width chunks
    runs = [(0, 64 * wide, 64)] if wide else []
    runs += [(f0, f0 + lanes, lanes) for f0, lanes in chunks if lanes < 64]
    if wide >= t and wide % t == 0:
        blocks = [(64 * s.start, 64 * s.stop, 64, 0, m) for s in bands(wide, t)]
        blocks += [(lo, hi, lanes, 0, m) for lo, hi, lanes in runs if lanes < 64]
    else:
        blocks = [(lo, hi, lanes, s.start, s.stop) for s in bands(m, min(m, t))
                  for lo, hi, lanes in runs]

    def run(blk):
        lo, hi, lanes, m0, m1 = blk
        pk = np.empty(kh * kw * min(c, C_BLOCK) * (hi - lo), np.float32)
        _kernel(lanes)[2](xf, wf, bias, of, relu, geo, lo, hi, m0, m1, pk)

    run_blocks(run, blocks, parallel=t > 1)


def direct_weight_grad(x, dout, w_shape, stride, pads, dilation, relu_out=None):
    """(dW (KH, KW, C, F), db (F,)) of the conv ``direct_forward`` ran, from its input
    (N, H, W, C) and ``pads`` and dout (N, OH, OW, F), masked where ``relu_out`` is 0 (the
    fused ReLU).

    Per band of output rows, their padded input rows are built in a scratch, and 6 taps
    x a chunk of channels are summed in registers over G_BLOCK pixels at a time; each
    pool thread takes whole images (or, with fewer images than threads, a band of each
    image's rows) and the partial sums are added in order (``run_reduce``: the same bits
    on every run)."""
    n, out_h, out_w, f = dout.shape
    kh, kw, c, _ = w_shape
    xf = np.ascontiguousarray(x, np.float32).reshape(-1)
    df = np.ascontiguousarray(dout, np.float32).reshape(-1)
    kf = df if relu_out is None else np.ascontiguousarray(relu_out, np.float32).reshape(-1)
    geo, band = _banded(x.shape, w_shape, pads, out_h, out_w, stride, dilation)
    kernels = [(f0, _kernel(lanes)[4]) for f0, lanes in _chunks(f)]
    taps = kh * kw * c

    def block(blk, part):
        if part is None:
            part = np.empty((taps + 1) * f, np.float32)
        part[...] = 0                                     # the kernels add into it
        for f0, k in kernels:
            k(xf, df, kf, part, geo, *blk, f0, relu_out is not None, band)
        return part

    parallel = 2 * n * out_h * out_w * taps * f >= PARALLEL_FLOPS
    acc = run_reduce(block, _row_blocks(n, out_h, num_threads() if parallel else 1),
                     ((taps + 1) * f,), np.float32, parallel=parallel)
    acc = acc.reshape(taps + 1, f)
    return acc[:taps].reshape(w_shape), acc[taps].copy()
