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
work to pay for compiling the kernel: PARALLEL_FLOPS (thin), DEEP_FLOPS (deep).  The
compiled kernels are in ``ops.direct_kernels``.
"""

from __future__ import annotations

import numpy as np

from . import direct_kernels as kernels
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
    return jit.built(_built, (lanes, fixed),
                     lambda: kernels.build(lanes, fixed or (0,) * 8, _helpers()))


def _helpers():
    """The band scratch's two helpers, compiled once for every kernel that uses them."""
    return jit.built(_built, "helpers", kernels.build_helpers)


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
    per_chunk = [(f0, _kernel(lanes, fixed)[3]) for f0, lanes in _chunks(f)]

    def run(blk):
        for f0, k in per_chunk:
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
    per_chunk = [(f0, _kernel(lanes)[4]) for f0, lanes in _chunks(f)]
    taps = kh * kw * c

    def block(blk, part):
        if part is None:
            part = np.empty((taps + 1) * f, np.float32)
        part[...] = 0                                     # the kernels add into it
        for f0, k in per_chunk:
            k(xf, df, kf, part, geo, *blk, f0, relu_out is not None, band)
        return part

    parallel = 2 * n * out_h * out_w * taps * f >= PARALLEL_FLOPS
    acc = run_reduce(block, _row_blocks(n, out_h, num_threads() if parallel else 1),
                     ((taps + 1) * f,), np.float32, parallel=parallel)
    acc = acc.reshape(taps + 1, f)
    return acc[:taps].reshape(w_shape), acc[taps].copy()
