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
The compiled kernels and their launchers are in ``ops.narrow_kernels``; this module
plans a call, holds what is compiled, and runs it.
"""

from __future__ import annotations

import numpy as np

from . import jit
from . import narrow_kernels as kernels
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
    return jit.built(_built, (fixed, widths), lambda: kernels.build_forward(fixed, widths))


def _backward():
    return jit.built(_built, "backward", kernels.build_backward)


def _address(key, kernel, which):
    """``kernel`` (built under ``key``) as the band launchers' first-class argument."""
    return jit.built(_built, ("address", key),
                     lambda: jit.first_class(kernel, kernels.signatures()[which]))


def _forward_bands():
    """A forward kernel over bands of images in one parallel launch
    (``jit.parallel_launch``): band i takes images starts[i]..stops[i] and scratch row i;
    its compiled entry point, looked up once."""
    return jit.built(_built, ("entry", "forward bands"), lambda: jit.entry(
        jit.built(_built, "forward bands", kernels.build_forward_bands)))


def _backward_bands():
    """The backward over bands of images in one parallel launch: band i sums into
    accumulator row i, with list scratch row i; its entry point, looked up once."""
    return jit.built(_built, ("entry", "backward bands"), lambda: jit.entry(
        jit.built(_built, "backward bands", kernels.build_backward_bands)))


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
