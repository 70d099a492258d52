"""2-D max and average pooling on NHWC data, as forward/backward pairs.

Notation:
    x     input,  (N, H, W, C)          pooled per channel, as in seed 000
    out   output, (N, OH, OW, C)
    k, s, d, p    kernel (KH, KW), stride, dilation, padding ((top, bottom), (left, right))

    OH = floor((H + p_top + p_bottom - d_h (KH - 1) - 1) / s_h) + 1       (ops.shape)

ceil_mode rounds up instead, PyTorch's way: one more window is added only if it starts
inside the input or the leading padding; the part of it past the padding reads an
implicit extension that counts for nothing (-inf for max, excluded from averages).

Max pooling pads with -inf.  Ties send the whole gradient to ONE input: the first
maximum in row-major window order, skipping padding -- what PyTorch's CPU kernel
does (it scans the window keeping ``val > best or isnan(val)``).  So a NaN wins and,
among several NaNs, the last one is the argmax.

Algorithm: windows come from an ``as_strided`` view (``conv.windows2d``); reductions
and the backward scatter loop over the KH x KW kernel taps only, each tap being one
vectorised pass over (N, OH, OW, C).  When the windows tile the input without overlap
(stride == kernel, no padding, dilation 1) both passes work on the reshape view
(N, OH, KH, OW, KW, C) instead: the max forward also finds each window's argmax tap
(uint8) and keeps only that, and the backward writes dout times a one-hot of it into
each tap's slice of dx -- no strided scatter, no ``np.add.at``, no accumulation.
"""

from __future__ import annotations

import numpy as np

from .conv import unpad_nhwc, windows2d
from .shape import conv_output_shape, effective_kernel


def pool_output_shape(spatial, kernel, stride, pads, dilation, ceil_mode=False, op="",
                      strict=False) -> tuple[int, ...]:
    """Output spatial shape of a pooling window, any number of spatial axes.

    floor mode is ``shape.conv_output_shape``; ceil mode adds one window per axis when
    the floor leaves input uncovered and that window starts before n + p_lo (torch's rule).
    """
    out = list(conv_output_shape(spatial, kernel, stride, pads, dilation, op, strict))
    if ceil_mode:
        for axis, (n, f, s, (lo, hi), d) in enumerate(zip(spatial, kernel, stride, pads,
                                                          dilation)):
            if (n + lo + hi - effective_kernel(f, d)) % s and out[axis] * s < n + lo:
                out[axis] += 1
    return tuple(out)


def _tap_positions(f, s, lo, d, out):
    """(OUT, F) input index read by each tap of each window, in unpadded coordinates."""
    return (np.arange(out) * s - lo)[:, None] + np.arange(f)[None, :] * d


def check_pool_windows(spatial, kernel, stride, pads, dilation, out_shape, op=""):
    """Raise if padding exceeds half the kernel or some window reads only padding."""
    where = f"{op}: " if op else ""
    for axis, (n, f, s, (lo, hi), d, o) in enumerate(zip(spatial, kernel, stride, pads,
                                                         dilation, out_shape)):
        fe = effective_kernel(f, d)
        if max(lo, hi) > fe // 2:
            raise ValueError(
                f"{where}padding must be at most half the (effective) kernel size, i.e. "
                f"<= {fe // 2} for kernel {f} with dilation {d}, got {(lo, hi)} on spatial "
                f"axis {axis}")
        pos = _tap_positions(f, s, lo, d, o)
        inside = ((pos >= 0) & (pos < n)).any(axis=1)
        if not inside.all():
            raise ValueError(
                f"{where}pooling window {int(np.argmin(inside))} on spatial axis {axis} lies "
                f"entirely in the padding (input {n}, kernel {f}, stride {s}, dilation {d}, "
                f"padding {(lo, hi)})")


class _Geometry:
    """Everything a 2-D pooling pass needs, derived once from the arguments."""

    def __init__(self, x_shape, kernel, stride, pads, dilation, ceil_mode):
        n, h, w, c = x_shape
        self.x_shape = tuple(x_shape)
        self.kernel, self.stride, self.dilation = tuple(kernel), tuple(stride), tuple(dilation)
        self.out_hw = pool_output_shape((h, w), kernel, stride, pads, dilation, ceil_mode)
        # Padding actually allocated: the user's, plus the ceil_mode extension (hi side).
        eff = []
        for size, f, s, d, (lo, hi), o in zip((h, w), kernel, stride, dilation, pads,
                                              self.out_hw):
            need = (o - 1) * s + effective_kernel(f, d) - size - lo
            eff.append((lo, max(hi, need)))
        self.user_pads, self.pads = tuple(tuple(p) for p in pads), tuple(eff)
        self.padded = any(v for pair in self.pads for v in pair)
        self.tiles = (not self.padded and self.kernel == self.stride
                      and self.dilation == (1, 1))
        self.path = "strided"                             # or "reshape", set by the forward
        # Per axis, (OUT, K) masks of the taps that read the real input.
        self.inside = []
        for axis, size in enumerate((h, w)):
            pos = _tap_positions(kernel[axis], stride[axis], pads[axis][0], dilation[axis],
                                 self.out_hw[axis])
            self.inside.append((pos >= 0) & (pos < size))

    def padded_shape(self):
        n, h, w, c = self.x_shape
        (pt, pb), (pl, pr) = self.pads
        return (n, h + pt + pb, w + pl + pr, c)

    def taps(self):
        kh, kw = self.kernel
        for i in range(kh):
            for j in range(kw):
                yield i, j


def _pad_value(x, pads, value):
    """Pad the spatial axes of NHWC ``x`` with a constant (-inf for max pooling)."""
    if not any(v for pair in pads for v in pair):
        return x
    (pt, pb), (pl, pr) = pads
    n, h, w, c = x.shape
    x_pad = np.full((n, h + pt + pb, w + pl + pr, c), value, dtype=x.dtype)
    x_pad[:, pt:pt + h, pl:pl + w, :] = x
    return x_pad                                          # (N, Hp, Wp, C)


def _tile_view(x, g):
    """(N, OH, KH, OW, KW, C) view of non-overlapping windows (floor mode crops)."""
    n, _, _, c = x.shape
    (oh, ow), (kh, kw) = g.out_hw, g.kernel
    return x[:, :oh * kh, :ow * kw, :].reshape(n, oh, kh, ow, kw, c)


# ---- max pooling --------------------------------------------------------------

def max_pool2d_forward(x, kernel_size, stride, pads, dilation=(1, 1), ceil_mode=False,
                       allow_reshape=True, argmax=True):
    """Returns ``(out, cache)``; ``out`` is (N, OH, OW, C).

    ``allow_reshape=False`` forces the strided path even where windows tile exactly
    (the tests run both paths).  The reshape path finds each window's argmax here and
    keeps only that -- one uint8 tap index per output -- instead of the input;
    ``argmax=False`` skips it (inference: the cache then serves no backward).
    """
    g = _Geometry(x.shape, kernel_size, stride, pads, dilation, ceil_mode)
    if g.tiles and allow_reshape:
        g.path = "reshape"
        out, arg = tile_max_argmax(_tile_view(x, g), argmax)   # (N, OH, OW, C) twice
        return out, (None, arg, g)
    x_pad = _pad_value(x, g.pads, -np.inf)                # (N, Hp, Wp, C)
    win = windows2d(x_pad, *g.kernel, *g.stride, *g.dilation, *g.out_hw)
    out = None                                            # win: (N, OH, OW, KH, KW, C)
    for i, j in g.taps():
        if out is None:
            out = win[:, :, :, i, j, :].copy()            # (N, OH, OW, C)
        else:
            np.maximum(out, win[:, :, :, i, j, :], out=out)  # NaN propagates
    return out, (x_pad, out, g)


def _tap_dtype(taps):
    return np.uint8 if taps <= 256 else np.int16 if taps < 2 ** 15 else np.int64


def tile_max_argmax(x6, argmax=True, out=None, arg=None):
    """Max and torch's argmax tap of each window of the (N, OH, KH, OW, KW, C) view.

    The max is a chain of ``np.maximum`` over the taps (NaN propagates).  The argmax is
    a reverse scan that moves to tap t wherever tap t equals the max, written branch-free
    as ``arg -= (arg - t) * hit`` on uint8 (``np.where`` or ``copyto(where=)`` on a
    random mask is about 6x slower), so the first tap equal to the max wins.  Windows
    whose max is NaN then take their LAST NaN tap, as PyTorch does.  ``out`` and ``arg``,
    when given, receive the results (e.g. one block's rows of larger arrays).
    """
    kh, kw = x6.shape[2], x6.shape[4]
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    if out is None:
        out = x6[:, :, 0, :, 0, :].copy()                 # (N, OH, OW, C)
    else:
        np.copyto(out, x6[:, :, 0, :, 0, :])
    for i, j in taps[1:]:
        np.maximum(out, x6[:, :, i, :, j, :], out=out)
    if not argmax:
        return out, None
    if arg is None:
        arg = np.empty(out.shape, dtype=_tap_dtype(len(taps)))
    arg[...] = len(taps) - 1
    step = np.empty_like(arg)
    for t in range(len(taps) - 2, -1, -1):
        i, j = taps[t]
        hit = np.equal(x6[:, :, i, :, j, :], out)         # (N, OH, OW, C) bool
        np.subtract(arg, t, out=step)                     # arg >= t throughout the scan
        np.multiply(step, hit, out=step)
        arg -= step
    nan_out = np.isnan(out)
    if nan_out.any():                                     # forward scan: the LAST NaN wins
        for t, (i, j) in enumerate(taps):
            np.copyto(arg, t, where=nan_out & np.isnan(x6[:, :, i, :, j, :]))
    return out, arg


def _argmax_taps(cache):
    """(N, OH, OW, C) index i*KW + j of the tap each output took, by torch's rule."""
    if cache[2].path == "reshape":
        if cache[1] is None:
            raise RuntimeError("max_pool2d: this forward ran with argmax=False, so it kept "
                               "no argmax for a backward pass or for indices")
        return cache[1]                                   # found by the forward
    x_pad, out, g = cache
    win = windows2d(x_pad, *g.kernel, *g.stride, *g.dilation, *g.out_hw)
    kh, kw = g.kernel
    dtype = np.int16 if kh * kw < 2 ** 15 else np.int64
    arg = np.full(out.shape, -1, dtype=dtype)
    taps = list(g.taps())
    # Reverse scan with overwrite: the first (row-major) tap equal to the max wins.
    for i, j in reversed(taps):
        hit = win[:, :, :, i, j, :] == out
        if g.padded:                                      # padding (-inf) never wins
            hit &= (g.inside[0][:, i][:, None] & g.inside[1][:, j][None, :])[None, :, :, None]
        np.copyto(arg, i * kw + j, where=hit)
    nan_out = np.isnan(out)
    if nan_out.any():                                     # forward scan: the LAST NaN wins
        for i, j in taps:
            np.copyto(arg, i * kw + j, where=nan_out & np.isnan(win[:, :, :, i, j, :]))
    return arg


def max_pool2d_indices(cache):
    """PyTorch's indices: int64 (N, OH, OW, C), flat h * W + w into the unpadded plane."""
    _, _, g = cache
    arg = _argmax_taps(cache).astype(np.int64)
    kh, kw = g.kernel
    (sh, sw), (dh, dw) = g.stride, g.dilation
    (pt, _), (pl, _) = g.pads
    oh, ow = g.out_hw
    width = g.x_shape[2]
    rows = (np.arange(oh) * sh - pt)[None, :, None, None] + (arg // kw) * dh  # (N, OH, OW, C)
    cols = (np.arange(ow) * sw - pl)[None, None, :, None] + (arg % kw) * dw
    return rows * width + cols


def max_pool2d_backward(dout, cache):
    """Returns ``dx`` (N, H, W, C): each dout goes to its window's argmax."""
    _, _, g = cache
    if g.path == "reshape":
        return _tile_max_backward(dout, cache)
    arg = _argmax_taps(cache)
    (sh, sw), (dh, dw) = g.stride, g.dilation
    oh, ow = g.out_hw
    kw = g.kernel[1]
    dx_pad = np.zeros(g.padded_shape(), dtype=dout.dtype)  # (N, Hp, Wp, C)
    zero = dout.dtype.type(0)
    for i, j in g.taps():
        # Tap (i, j) of output (oh, ow) read padded input (oh*sh + i*dh, ow*sw + j*dw).
        dx_pad[:, i * dh:i * dh + sh * (oh - 1) + 1:sh,
               j * dw:j * dw + sw * (ow - 1) + 1:sw, :] += np.where(arg == i * kw + j, dout, zero)
    return unpad_nhwc(dx_pad, g.pads)                     # (N, H, W, C)


def _tile_max_backward(dout, cache):
    """Non-overlapping windows: every input cell of dx is written once (``tile_scatter``)."""
    arg, g = _argmax_taps(cache), cache[2]
    n, h, w, c = g.x_shape
    (oh, ow), (kh, kw) = g.out_hw, g.kernel
    full = (oh * kh, ow * kw) == (h, w)
    dx = (np.empty if full else np.zeros)(g.x_shape, dtype=dout.dtype)   # (N, H, W, C)
    dx6 = dx[:, :oh * kh, :ow * kw, :].reshape(n, oh, kh, ow, kw, c)     # a view of dx
    tile_scatter(dout, arg, dx6)
    return dx


def tile_scatter(dout, arg, dx6):
    """dx6 (N, OH, KH, OW, KW, C) <- each dout at its window's argmax tap, +0 elsewhere.

    Tap (i, j)'s slice is dout's bits ANDed with all ones where arg == i*KW + j and with
    zeros elsewhere: exact, and +0 off the argmax even for an infinite or NaN dout (as in
    torch; ``dout * (arg == t)`` would make NaN of those)."""
    kw = dx6.shape[4]
    itype = np.dtype(f"i{dout.dtype.itemsize}")
    bits = dout.view(itype)                                              # same width: a view
    word = np.empty(arg.shape, itype)
    for i in range(dx6.shape[2]):
        for j in range(kw):
            np.equal(arg, i * kw + j, out=word)                          # 1 or 0
            np.negative(word, out=word)                                  # all ones or 0
            np.bitwise_and(bits, word, out=dx6[:, :, i, :, j, :].view(itype))


# ---- average pooling ----------------------------------------------------------

def _divisor(g, count_include_pad):
    """(OH, OW) number of elements each window averages over, as torch counts them."""
    counts = []
    for axis, size in enumerate(g.x_shape[1:3]):
        f, s, d = g.kernel[axis], g.stride[axis], g.dilation[axis]
        lo, hi = g.user_pads[axis]
        pos = _tap_positions(f, s, lo, d, g.out_hw[axis])
        if count_include_pad:   # user padding counts, the ceil_mode extension does not
            counts.append(((pos >= -lo) & (pos < size + hi)).sum(axis=1))
        else:
            counts.append(g.inside[axis].sum(axis=1))
    return np.outer(counts[0], counts[1])                 # (OH, OW)


def avg_pool2d_forward(x, kernel_size, stride, pads, ceil_mode=False, count_include_pad=True,
                       allow_reshape=True, dilation=(1, 1)):
    """Returns ``(out, cache)``; ``out`` is (N, OH, OW, C)."""
    g = _Geometry(x.shape, kernel_size, stride, pads, dilation, ceil_mode)
    if g.tiles and allow_reshape:
        g.path = "reshape"
        out = _tile_view(x, g).mean(axis=(2, 4))          # (N, OH, OW, C)
        return out, (g, None)
    x_pad = _pad_value(x, g.pads, 0)                      # (N, Hp, Wp, C)
    win = windows2d(x_pad, *g.kernel, *g.stride, *g.dilation, *g.out_hw)
    total = None
    for i, j in g.taps():
        if total is None:
            total = win[:, :, :, i, j, :].copy()          # (N, OH, OW, C)
        else:
            total += win[:, :, :, i, j, :]
    div = _divisor(g, count_include_pad).astype(x.dtype)
    out = total / div[None, :, :, None]
    return out, (g, div)


def avg_pool2d_backward(dout, cache):
    """Returns ``dx`` (N, H, W, C): dout / divisor spread evenly over each window."""
    g, div = cache
    n, h, w, c = g.x_shape
    (oh, ow), (kh, kw) = g.out_hw, g.kernel
    if g.path == "reshape":
        share = dout / dout.dtype.type(kh * kw)           # (N, OH, OW, C)
        tiled = np.broadcast_to(share[:, :, None, :, None, :], (n, oh, kh, ow, kw, c))
        tiled = tiled.reshape(n, oh * kh, ow * kw, c)
        if (oh * kh, ow * kw) == (h, w):
            return tiled
        dx = np.zeros(g.x_shape, dtype=dout.dtype)
        dx[:, :oh * kh, :ow * kw, :] = tiled
        return dx
    share = dout / div[None, :, :, None]
    (sh, sw), (dh, dw) = g.stride, g.dilation
    dx_pad = np.zeros(g.padded_shape(), dtype=dout.dtype)
    for i, j in g.taps():
        dx_pad[:, i * dh:i * dh + sh * (oh - 1) + 1:sh,
               j * dw:j * dw + sw * (ow - 1) + 1:sw, :] += share
    return unpad_nhwc(dx_pad, g.pads)                     # (N, H, W, C)


# ---- global pooling: (N, H, W, C) -> (N, C) -----------------------------------

def global_avg_pool2d_forward(x):
    return x.mean(axis=(1, 2)), x.shape                   # (N, C)


def global_avg_pool2d_backward(dout, cache):
    n, h, w, c = cache
    share = dout / dout.dtype.type(h * w)
    return np.broadcast_to(share[:, None, None, :], cache).copy()  # (N, H, W, C)


def global_max_pool2d_forward(x):
    """Returns ``(out, cache)``; ties and NaNs resolve as in ``max_pool2d``."""
    n, h, w, c = x.shape
    flat = x.reshape(n, h * w, c)                         # (N, HW, C)
    out = flat.max(axis=1)                                # (N, C)
    return out, (flat, out, x.shape)


def global_max_pool2d_argmax(cache):
    """(N, C) flat index h * W + w of each channel's maximum (first max, last NaN)."""
    flat, out, _ = cache
    arg = np.argmax(flat == out[:, None, :], axis=1)      # first True in row-major order
    nan_out = np.isnan(out)
    if nan_out.any():
        last_nan = flat.shape[1] - 1 - np.argmax(np.isnan(flat[:, ::-1, :]), axis=1)
        arg = np.where(nan_out, last_nan, arg)
    return arg.astype(np.int64)


def global_max_pool2d_backward(dout, cache):
    flat, _, shape = cache
    n, hw, c = flat.shape
    arg = global_max_pool2d_argmax(cache)                 # (N, C)
    dx = np.zeros((n, hw, c), dtype=dout.dtype)
    np.put_along_axis(dx, arg[:, None, :], dout[:, None, :], axis=1)
    return dx.reshape(shape)                              # (N, H, W, C)


__all__ = [
    "pool_output_shape", "check_pool_windows", "max_pool2d_forward", "max_pool2d_backward",
    "max_pool2d_indices", "avg_pool2d_forward", "avg_pool2d_backward",
    "global_avg_pool2d_forward", "global_avg_pool2d_backward", "global_max_pool2d_forward",
    "global_max_pool2d_argmax", "global_max_pool2d_backward",
]
