"""1-D Winograd F(4, 3) along the rows, direct down the columns (float32, with numba).

Notation as in ``ops.direct``: x (N, H, W, C) unpadded, w (KH, 3, C, F), out (N, OH, OW,
F); stride (s_h, 1), dilation (d_h, 1); T = ceil(OW / 4) tiles of 4 outputs in a row.

A first layer (C = 3: K = 27 taps) is too thin for a GEMM, and the direct kernel
(``ops.direct``) does K multiply-adds per output and channel, at most the core's FMA
rate.  Along the width, Winograd's F(4, 3) makes 4 neighbouring outputs of one kernel
row from 6 products instead of 12 (Lavin & Gray's B, G, A; ``winograd_transforms``):

    out[n, r, 4t:4t+4, f] = b[f] + A^T sum_{i, c} V[r s_h + i d_h, c, :, t] * U[i, c, :, f]
    V[y, c, :, t] = B^T x_pad[n, y, 4t:4t+6, c]          (6 values: the input transform)
    U[i, c, :, f] = G w[i, :, c, f]                       (6 values: the weight transform)

so 4 outputs x 32 channels take KH*C*6 FMAs in 32 lanes instead of KH*C*12.  The rows
(KH of them, any stride and dilation) stay direct, and a thin layer's transforms are
cheap: V has 6/4 values per input value, made once per padded row for the KH output rows
that read it, in a per-thread scratch a band of rows at a time (zeros outside the input:
no padded copy); U is (KH, C, 6, F), made once per call and laid out by chunk
of output channels.

The kernels, their drivers and launchers are in ``ops.winograd_rows_kernels`` (the
forward's and the shared pieces) and ``ops.winograd_rows_grad`` (the weight gradient).

``applies``: float32, groups 1, F a multiple of 16, a 3-wide kernel at width stride and
dilation 1, an output at least 5 wide (two tiles), numba installed and ``ops.jit``
enabled.  ``ops.algo`` chooses it where the direct kernel's thin path would run.
"""

from __future__ import annotations

import functools

import numpy as np

from . import jit
from . import winograd_rows_grad as grad_kernels
from . import winograd_rows_kernels as kernels
from .direct import _row_blocks  # (n0, n1, r0, r1): whole images, or bands of rows
from .im2col import aligned_empty, lane_rows, lane_scratch  # 64-byte aligned
from .shape import conv_output_shape
from .threads import num_threads, run_blocks, run_reduce
from .winograd_transforms import _MATRICES

V_SCRATCH = 48 << 10    # bytes of transformed input rows built per band
PARALLEL_FLOPS = 16 << 20   # smaller convs run on the calling thread (as ops.direct)
STREAM_BYTES = 4 << 20      # a forward output this large is written past the caches
#                             (non-temporal stores: no read of each line before it is
#                             written): VGG's conv1_1 forward 0.65 -> 0.56 ms, CIFAR's
#                             0.86 -> 0.74; W2 and W3, which read it back, level
DW_ACC_BYTES = 4 << 20      # the weight gradient's per-thread (KH*C*6 + 1) x F accumulator
_built: dict = {}


def applies(x_shape, w_shape, stride, pads, dilation, groups, dtype) -> bool:
    """Whether the kernels can run this conv."""
    out_w = conv_output_shape(x_shape[1:3], w_shape[:2], stride, pads, dilation)[1]
    return groups == 1 and _runs(w_shape, stride, dilation, out_w, dtype)


def _runs(w_shape, stride, dilation, out_w, dtype) -> bool:
    """``applies`` for groups 1, given the output's width."""
    return (w_shape[1] == 3 and stride[1] == 1 and dilation[1] == 1 and w_shape[3] % 16 == 0
            and out_w >= 5 and np.dtype(dtype) == np.float32 and jit.enabled())


def weight_grad_pays(w_shape) -> bool:
    """Whether the weight gradient's per-thread accumulator is at most DW_ACC_BYTES."""
    kh, _, c, f = w_shape
    return (kh * c * 6 + 1) * f * 4 <= DW_ACC_BYTES


def _kernels(f: int, part: str):
    """The serial driver of ``part`` ("forward" or "weight_grad") for F output channels,
    as (dispatcher, first-class address): compiled once per set of channel chunks that F
    needs (forward: 32s, a 16; weight gradient: 64s, a 32, a 16) -- each chunk width is
    a kernel of its own -- and only the part that runs (inference compiles no gradient)."""
    need = (f >= 32, f % 32 == 16) if part == "forward" else (f >= 64, f % 64 >= 32,
                                                                 f % 32 == 16)

    def build():
        make = kernels.build_forward if part == "forward" else grad_kernels.build_grad
        kernel = make(_helpers(), *need)
        return kernel, jit.first_class(kernel, getattr(kernels.signatures(), part))
    return jit.built(_built, (part, need), build)


def _helpers():
    """The pieces every build shares, compiled once: the input transform, U, the weight
    gradient's last step, and the two parallel launchers (which take a driver as a
    first-class function, so that no driver is compiled twice)."""
    return jit.built(_built, "helpers", kernels.build_helpers)


def compile_kernels(f: int = 64) -> None:
    """Compile the kernels for F output channels now (numba otherwise compiles each on
    first use, some seconds; ``jit.warm_up`` calls this for F = 64)."""
    _helpers()
    _kernels(f, "forward")
    _kernels(f, "weight_grad")


@functools.lru_cache(maxsize=256)
def _plan(x_shape, w_shape, stride, pads, dilation, threads, scratch, least, streams):
    """(geo, band, blocks, parallel, out_w) of a conv, cached per shape, thread count,
    V_SCRATCH, PARALLEL_FLOPS and STREAM_BYTES (the arrays are the kernels' read-only
    arguments).

    geo: the kernels' int64 shape vector -- H, W, C, OH, OW, F, KH, s_h, d_h, pad_top,
    pad_left, T, and 1 where the forward's stores are non-temporal (an output of at
    least ``streams`` bytes); band: the output rows whose transformed input rows fit in
    ``scratch`` bytes; blocks: (n0, n1, r0, r1) rows, whole images or bands of rows, one
    per thread when ``parallel`` (at least ``least`` FLOPs)."""
    n, h, wd, c = x_shape
    kh, kw, _, f = w_shape
    out_h, out_w = conv_output_shape((h, wd), (kh, kw), stride, pads, dilation)
    nt = -(-out_w // 4)
    stream = n * out_h * out_w * f * 4 >= streams
    geo = np.array([h, wd, c, out_h, out_w, f, kh, stride[0], dilation[0], pads[0][0],
                    pads[1][0], nt, stream], np.int64)
    fit = scratch // (6 * c * (nt + 1) * 4) - (kh - 1) * dilation[0] - 1
    band = max(1, min(out_h, fit // stride[0] + 1))
    parallel = 2 * n * out_h * out_w * kh * kw * c * f >= least
    blocks = np.array(_row_blocks(n, out_h, threads if parallel else 1), np.int64)
    return geo, band, blocks, parallel, out_w


_G = np.asarray(_MATRICES[4][1], np.float64)                  # G, 6 x 3 (F(4, 3))


def forward(x, w, b, stride, pads, dilation, relu=False):
    """out (N, OH, OW, F) of the input (N, H, W, C) zero-padded by ``pads`` ((top,
    bottom), (left, right)), clamped at 0 with ``relu``.  The blocks (whole images, or
    bands of rows) run in one parallel launch of numba's where ``jit.parallel_launch``
    allows, else on the pool."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    dtype = np.result_type(x.dtype, w.dtype)
    geo, band, blocks, parallel, out_w = _plan(
        x.shape, w.shape, tuple(stride), tuple(map(tuple, pads)), tuple(dilation),
        num_threads(), V_SCRATCH, PARALLEL_FLOPS, STREAM_BYTES)
    if not _runs(w.shape, stride, dilation, out_w, dtype):
        raise ValueError(f"winograd_rows.forward: needs float32, a 3-wide kernel at width "
                         f"stride and dilation 1, F a multiple of 16, an output at least 5 "
                         f"wide and numba; got {dtype}, w {w.shape}, stride {tuple(stride)}, "
                         f"dilation {tuple(dilation)}, an output {out_w} wide, jit enabled: "
                         f"{jit.enabled()}")
    out = aligned_empty((n, int(geo[3]), out_w, f))
    of = out.reshape(-1)
    xf = np.ascontiguousarray(x).reshape(-1)
    wf = np.ascontiguousarray(w, np.float32).reshape(-1)
    bias = np.zeros(f, np.float32) if b is None else np.ascontiguousarray(b, np.float32)
    helpers, (kernel, address) = _helpers(), _kernels(f, "forward")
    if parallel and jit.parallel_launch(len(blocks)):
        helpers.forward_entry(address, xf, wf, _G, bias, of, bool(relu), geo, blocks, band)
        jit.launched()
        return out
    uf = aligned_empty(kh * c * 6 * f)
    helpers.weights(wf, _G, uf, kh, c, f)

    def run(blk):
        kernel(xf, uf, bias, of, bool(relu), geo, *blk, band)

    run_blocks(run, blocks, parallel=parallel)
    return out


def weight_grad(x, dout, w_shape, stride, pads, dilation, relu_out=None):
    """(dW (KH, 3, C, F), db (F,)) of the conv ``forward`` ran, from its input (N, H, W,
    C) and ``pads`` and dout (N, OH, OW, F), masked where ``relu_out`` is 0 (the fused
    ReLU).  Each thread takes whole images (or, with fewer images than threads, a band
    of each image's rows) into its own accumulator (on pages of its own: ``lane_rows``),
    and they are added in order: the same bits on every run."""
    n, out_h, out_w, f = dout.shape
    kh, kw, c, _ = w_shape
    xf = np.ascontiguousarray(x, np.float32).reshape(-1)
    df = np.ascontiguousarray(dout, np.float32).reshape(-1)
    kf = df if relu_out is None else np.ascontiguousarray(relu_out, np.float32).reshape(-1)
    geo, band, blocks, parallel, _ = _plan(x.shape, tuple(w_shape), tuple(stride),
                                           tuple(map(tuple, pads)), tuple(dilation),
                                           num_threads(), V_SCRATCH, PARALLEL_FLOPS, STREAM_BYTES)
    helpers, (kernel, address) = _helpers(), _kernels(f, "weight_grad")
    size = (kh * c * 6 + 1) * f
    relu = relu_out is not None
    dw, db = np.empty(w_shape, np.float32), np.empty(f, np.float32)
    if parallel and jit.parallel_launch(len(blocks)):
        accs = lane_scratch("wrows_dw", len(blocks), size)   # zeroed by the launcher
        helpers.weight_grad_entry(address, xf, df, kf, accs, geo, blocks, relu, band, _G,
                                  dw.reshape(-1), db)
        jit.launched()
        return dw, db

    def block(blk, part):
        if part is None:
            part = aligned_empty(size)
        part[...] = 0                                     # the kernels add into it
        kernel(xf, df, kf, part, geo, *blk, relu, band)
        return part

    acc = run_reduce(block, blocks, (size,), np.float32, parallel=parallel,
                     buffers=lambda i, shape, dtype: lane_rows(1, size)[0, :size])
    helpers.finish(acc.reshape(1, -1), _G, dw.reshape(-1), db, kh, c, f)
    return dw, db
