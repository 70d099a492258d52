"""2-D convolution (cross-correlation, as in every deep-learning library) on NHWC data.

Notation:
    x     input,  (N, H, W, C)                       the seeds' m x n_H x n_W x n_C[l-1]
    w     weight, (KH, KW, C/G, F)                   the seeds' f x f x n_C[l-1] x n_C[l]
    b     bias,   (F,)
    out   output, (N, OH, OW, F)
    G     groups: input and output channels split into G independent convs
    s, p, d   stride, padding ((top, bottom), (left, right)) and dilation

    OH = floor((H + p_top + p_bottom - d_h (KH - 1) - 1) / s_h) + 1   (ops.shape)

Algorithms.  ``conv2d_forward`` asks ``ops.algo`` which algorithm suits the shape
(cached per shape; ``algo.force`` overrides it) and the cache it returns remembers
the choice, so ``conv2d_backward`` runs the matching backward:
    im2col     blocked im2col + GEMM (``ops.im2col``); the only one for groups > 1
    gemm1x1    1x1 kernels: one GEMM on the (N*H*W, C) pixel matrix
    winograd2  Winograd F(2x2,3x3), winograd4  F(4x4,3x3) (``ops.winograd``)
    toeplitz   row lowering + banded weight GEMM, for thin inputs (``ops.toeplitz``)
    direct     direct conv in vector-register blocks (``ops.direct``), where im2col
               would run; dW direct when no dX is needed, else im2col's backward
    narrow     direct conv + ReLU + max pool for narrow layers, forward and backward
               (``ops.narrow``), where the banded GEMM would run
    winograd_rows  1-D Winograd F(4, 3) along the rows (``ops.winograd_rows``), where
               direct's thin kernel would run; dW the same way when no dX is needed,
               else im2col's backward
Every algorithm computes in the inputs' dtype (float32 stays float32).
"""

from __future__ import annotations

import time

import numpy as np

from . import (
    algo,
    direct,
    jit,
    narrow,
    threads,
    toeplitz,
    winograd,
    winograd_backward,
    winograd_rows,
)
from .activation import relu_backward
from .im2col import (
    bias_grad,
    col2im,
    conv1x1_backward,
    conv1x1_forward,
    gemm_conv,
    input_grad_stride1,
    input_grad_strided,
    weight_grad,
    windows,
)
from .shape import conv_output_shape
from .threads import matmul


def pad_nhwc(x: np.ndarray, pads) -> np.ndarray:
    """Zero-pad the spatial axes of an (N, *spatial, C) array; ``pads`` is ((lo, hi), ...)."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    return np.pad(x, ((0, 0), *pads, (0, 0)))


def unpad_nhwc(dx_pad: np.ndarray, pads) -> np.ndarray:
    """Crop what ``pad_nhwc`` added (the gradient of zero padding)."""
    index = (slice(None),) + tuple(slice(lo, dx_pad.shape[i + 1] - hi)
                                   for i, (lo, hi) in enumerate(pads)) + (slice(None),)
    return dx_pad[index]


def windows2d(x_pad: np.ndarray, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
              out_h: int, out_w: int) -> np.ndarray:
    """Read-only strided view of every KH x KW window: (N, OH, OW, KH, KW, C)."""
    return windows(x_pad, kh, kw, sh, sw, dh, dw, out_h, out_w)


def col2im2d(dcols: np.ndarray, padded_shape, sh: int, sw: int, dh: int, dw: int) -> np.ndarray:
    """Scatter-add window gradients (N, OH, OW, KH, KW, C) back onto the padded input."""
    return col2im(dcols, padded_shape, sh, sw, dh, dw)


def _padded_out_hw(x_pad, w, stride, dilation) -> tuple[int, int]:
    """(OH, OW) of a conv over an already padded input (``ops.shape``'s formula)."""
    return conv_output_shape(x_pad.shape[1:3], w.shape[:2], stride, ((0, 0), (0, 0)),
                             dilation)


def algorithm_of(cache) -> str:
    """The algorithm that ran the forward pass which produced ``cache``."""
    return cache[0]


# ---- im2col (every conv) ---------------------------------------------------

def _relu_(out, relu):
    """The fused ReLU of an algorithm that has no blocked epilogue: one in-place pass."""
    if relu:
        np.maximum(out, 0, out=out)                                # NaN stays NaN
    return out


def _im2col_forward(x, w, b, stride, pads, dilation, groups, relu=False):
    n, h, wd, c = x.shape
    kh, kw, cg, f = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    x_pad = pad_nhwc(x, pads)                                      # (N, Hp, Wp, C)
    out_h, out_w = _padded_out_hw(x_pad, w, stride, dilation)
    if groups == 1:
        out = gemm_conv(x_pad, w, stride, dilation, out_h, out_w, b=b, relu=relu)  # (N, OH, OW, F)
        cols = None
    else:
        g, fg = groups, f // groups
        win = windows(x_pad, kh, kw, sh, sw, dh, dw, out_h, out_w)  # (N, OH, OW, KH, KW, C)
        m, k = n * out_h * out_w, kh * kw * cg
        cols = (win.reshape(n, out_h, out_w, kh, kw, g, cg)
                .transpose(5, 0, 1, 2, 3, 4, 6).reshape(g, m, k))  # (G, M, K)
        wg = (w.reshape(kh, kw, cg, g, fg)
              .transpose(3, 0, 1, 2, 4).reshape(g, k, fg))         # (G, K, F/G)
        out = matmul(cols, wg).transpose(1, 0, 2).reshape(n, out_h, out_w, f)  # gmk,gkf -> m(gf)
        if b is not None:
            out += b
        _relu_(out, relu)
    # groups == 1 keeps the input, not the columns: backward rebuilds them block by block.
    return out, (x, cols, w, stride, pads, dilation, groups, b is not None)


def _im2col_backward(dout, cache, need, relu_out=None):
    x, cols, w, stride, pads, dilation, g, has_bias = cache
    kh, kw, cg, f = w.shape
    n, out_h, out_w, _ = dout.shape
    dout = np.asarray(dout)
    if relu_out is not None and (g != 1 or need[0] or not need[1]):
        dout, relu_out = relu_backward(dout, relu_out), None       # one masked copy
    dx = dw = db = None
    fuse_db = g == 1 and has_bias and need[1] and need[2]
    if has_bias and need[2] and not fuse_db:
        db = bias_grad(dout)                                       # (F,)
    if g == 1:
        if fuse_db:  # db as one more row of the dW GEMM (a row of ones in the columns)
            dw, db = weight_grad(pad_nhwc(x, pads), dout, w.shape, stride, dilation, True,
                                 relu_out)
        elif need[1]:
            dw = weight_grad(pad_nhwc(x, pads), dout, w.shape, stride, dilation,
                             relu_out=relu_out)
        if need[0]:
            if tuple(stride) == (1, 1) and f <= cg:
                # The full correlation copies (N*H*W, KH*KW*F) windows of dout; the col2im
                # route makes (N*OH*OW, KH*KW*C) columns: take the smaller.
                dx = input_grad_stride1(dout, w, x.shape[1:3], pads, dilation)  # (N, H, W, C)
            else:
                padded = (n, x.shape[1] + sum(pads[0]), x.shape[2] + sum(pads[1]), x.shape[3])
                dx = unpad_nhwc(input_grad_strided(dout, w, padded, stride, dilation), pads)
        return dx, dw, db
    m, k, fg = n * out_h * out_w, kh * kw * cg, f // g
    dout_g = dout.reshape(m, g, fg).transpose(1, 0, 2)             # (G, M, F/G)
    if need[1]:
        dwg = matmul(cols.transpose(0, 2, 1), dout_g)              # gkm,gmf -> gkf
        dw = (dwg.reshape(g, kh, kw, cg, fg)
              .transpose(1, 2, 3, 0, 4).reshape(w.shape))          # (KH, KW, C/G, F)
    if need[0]:
        wg = w.reshape(kh, kw, cg, g, fg).transpose(3, 0, 1, 2, 4).reshape(g, k, fg)
        dcols = matmul(dout_g, wg.transpose(0, 2, 1))              # gmf,gfk -> gmk
        dcols = (dcols.reshape(g, n, out_h, out_w, kh, kw, cg)
                 .transpose(1, 2, 3, 4, 5, 0, 6)
                 .reshape(n, out_h, out_w, kh, kw, g * cg))        # (N, OH, OW, KH, KW, C)
        padded = (n, x.shape[1] + sum(pads[0]), x.shape[2] + sum(pads[1]), x.shape[3])
        dx = unpad_nhwc(col2im(dcols, padded, *stride, *dilation), pads)  # (N, H, W, C)
    return dx, dw, db


# ---- 1x1 and Winograd --------------------------------------------------------

def _gemm1x1_forward(x, w, b, stride, pads, dilation, groups, relu=False):
    out, x_sub = conv1x1_forward(x, w, stride)                     # (N, OH, OW, F)
    if b is not None:
        out += b
    return _relu_(out, relu), (x_sub, w, x.shape, stride, b is not None)


def _gemm1x1_backward(dout, cache, need, relu_out=None):
    if relu_out is not None:
        dout = relu_backward(dout, relu_out)
    x_sub, w, x_shape, stride, has_bias = cache
    db = bias_grad(dout) if has_bias and need[2] else None
    dx, dw = conv1x1_backward(dout, x_sub, w, x_shape, stride, need)
    return dx, dw, db


def _winograd_forward(m):
    def forward(x, w, b, stride, pads, dilation, groups, relu=False, pool=None):
        return winograd.winograd_forward(x, w, b, pads, m, relu, pool)
    return forward


def _on_padded(forward):
    """An algorithm's forward from one over the padded input (``toeplitz``, ``narrow``)."""
    def run(x, w, b, stride, pads, dilation, groups, relu=False, pool=None):
        x_pad = pad_nhwc(x, pads)                                  # (N, Hp, Wp, C)
        out_h, out_w = _padded_out_hw(x_pad, w, stride, dilation)
        out, inner = forward(x_pad, w, b, stride, dilation, out_h, out_w, relu, pool)
        return out, (inner, pads)
    return run


def _unpadding(backward):
    """The matching backward: its gradient on the padded input cropped to the input's."""
    def run(dout, cache, need, relu_out=None):
        inner, pads = cache
        dx_pad, dw, db = backward(dout, inner, need, relu_out)
        return (None if dx_pad is None else unpad_nhwc(dx_pad, pads)), dw, db
    return run


def _direct_forward(x, w, b, stride, pads, dilation, groups, relu=False):
    out = direct.direct_forward(x, w, b, stride, pads, dilation, relu)
    # im2col's cache (groups 1 keeps no columns): a backward with dx runs im2col's.
    return out, (x, None, w, stride, pads, dilation, groups, b is not None)


def _direct_backward(dout, cache, need, relu_out=None):
    x, _, w, stride, pads, dilation, groups, has_bias = cache
    if (need[0] or not need[1] or not direct.weight_grad_pays(w.shape)
            or not direct.applies(w.shape, groups, np.result_type(x.dtype, dout.dtype))):
        return _im2col_backward(dout, cache, need, relu_out)
    dw, db = direct.direct_weight_grad(x, dout, w.shape, stride, pads, dilation,
                                       relu_out)                   # a first layer: no dx
    return None, dw, db if has_bias and need[2] else None


def _wrows_forward(x, w, b, stride, pads, dilation, groups, relu=False):
    out = winograd_rows.forward(x, w, b, stride, pads, dilation, relu)
    return out, (x, None, w, stride, pads, dilation, groups, b is not None)  # im2col's


def _wrows_backward(dout, cache, need, relu_out=None):
    x, _, w, stride, pads, dilation, groups, has_bias = cache
    # (the forward ran these kernels on this x and w: only numba may have been turned off)
    if (need[0] or not need[1] or not winograd_rows.weight_grad_pays(w.shape)
            or np.result_type(x.dtype, dout.dtype) != np.float32 or not jit.enabled()):
        return _im2col_backward(dout, cache, need, relu_out)
    dw, db = winograd_rows.weight_grad(x, dout, w.shape, stride, pads, dilation,
                                       relu_out)                   # a first layer: no dx
    return None, dw, db if has_bias and need[2] else None


_FORWARD = {"im2col": _im2col_forward, "gemm1x1": _gemm1x1_forward,
            "winograd2": _winograd_forward(2), "winograd4": _winograd_forward(4),
            "toeplitz": _on_padded(toeplitz.toeplitz_forward), "direct": _direct_forward,
            "narrow": _on_padded(narrow.narrow_forward), "winograd_rows": _wrows_forward}
_BACKWARD = {"im2col": _im2col_backward, "gemm1x1": _gemm1x1_backward,
             "winograd2": winograd_backward.winograd_backward,
             "winograd4": winograd_backward.winograd_backward,
             "toeplitz": _unpadding(toeplitz.toeplitz_backward), "direct": _direct_backward,
             "narrow": _unpadding(narrow.narrow_backward), "winograd_rows": _wrows_backward}


def choose_algorithm(x, w, b, stride, pads, dilation, groups=1) -> str:
    """The algorithm ``conv2d_forward`` runs for these arguments (``algo.choose``: cached
    per shape; in benchmark mode each candidate's forward is timed once)."""
    args = (x, w, b, tuple(stride), tuple(tuple(p) for p in pads), tuple(dilation), groups)

    def timer(name):
        t0 = time.perf_counter()
        _FORWARD[name](*args)
        return time.perf_counter() - t0

    with threads.owned():  # one BLAS thread, the pool has the cores (see ops.threads)
        return algo.choose(x.shape, w.shape, args[3], args[4], args[5], groups,
                           np.result_type(x.dtype, w.dtype), timer)


def pools_in_blocks(name: str, pool) -> bool:
    """Whether algorithm ``name`` can max-pool its blocks of conv + ReLU output in cache
    in non-overlapping ``pool`` = (PH, PW) windows (``conv2d_forward(pool=)``): the
    banded GEMM and the narrow kernels always, Winograd when PH divides its tile."""
    m = {"winograd2": 2, "winograd4": 4}.get(name)
    return name in ("toeplitz", "narrow") or (m is not None and m % pool[0] == 0)


def conv2d_forward(x, w, b, stride, pads, dilation, groups=1, relu=False, pool=None,
                   algorithm=None):
    """Returns ``(out, cache)``; ``out`` is (N, OH, OW, F), clamped at 0 with ``relu``
    (``conv2d_relu_forward``).  ``pool=(PH, PW)`` (with ``relu``, for an algorithm where
    ``pools_in_blocks``) max-pools each block in cache: ``out`` is then the pooled
    (N, OH // PH, OW // PW, F) and ``conv2d_backward`` takes the pooled gradient.
    ``algorithm``: ``choose_algorithm``'s answer for these arguments, when the caller
    already has it."""
    stride, dilation = tuple(stride), tuple(dilation)
    pads = tuple(tuple(p) for p in pads)
    with threads.owned():  # one BLAS thread, the pool has the cores (see ops.threads)
        name = algorithm or choose_algorithm(x, w, b, stride, pads, dilation, groups)
        if pool is None:
            out, inner = _FORWARD[name](x, w, b, stride, pads, dilation, groups, relu=relu)
        elif pools_in_blocks(name, pool):
            out, inner = _FORWARD[name](x, w, b, stride, pads, dilation, groups, relu=relu,
                                        pool=tuple(pool))
        else:
            raise ValueError(f"conv2d_forward: algorithm {name!r} cannot pool {tuple(pool)} "
                             f"windows in its blocks")
    return out, (name, inner)


def conv2d_backward(dout, cache, need=(True, True, True), relu_out=None):
    """Returns ``(dx, dw, db)``; entries not in ``need`` are None.  With ``relu_out`` (the
    output of ``conv2d_relu_forward``) it is the backward of conv + ReLU: the algorithms
    that run in blocks mask dout block by block, the others mask one copy first."""
    name, inner = cache
    with threads.owned():
        return _BACKWARD[name](dout, inner, tuple(need), relu_out=relu_out)


# ---- fused conv + bias + ReLU ------------------------------------------------

def conv2d_relu_forward(x, w, b, stride, pads, dilation, groups=1):
    """relu(conv2d(x, w) + b) as one op: the ReLU clamps each block of the conv's output
    while it is in cache, so a Conv2d -> ReLU pair keeps one (N, OH, OW, F) array instead
    of two and makes no pass of its own over it.  Returns ``(out, cache)``; the cache
    keeps ``out``, which the next layer keeps as its input anyway."""
    out, cache = conv2d_forward(x, w, b, stride, pads, dilation, groups, relu=True)
    return out, (cache, out)


def conv2d_relu_backward(dout, cache, need=(True, True, True)):
    """Returns ``(dx, dw, db)``: the conv's backward of ``dout`` masked where out <= 0
    (torch's rule; ``activation.relu_mask``), the mask applied block by block."""
    conv_cache, out = cache
    if dout.shape != out.shape:
        raise ValueError(f"conv2d_relu_backward: dout has shape {dout.shape}, the output "
                         f"{out.shape}")
    return conv2d_backward(dout, conv_cache, need, relu_out=out)
