"""Up-sampling and unpooling as Tensor ops: thin Functions over ``convnet.ops.upsample``."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..ops import upsample as up_ops
from ..ops.shape import as_tuple, check_positive
from ..tensor import Function, Tensor
from ._checks import float_input

__all__ = ["upsample", "interpolate", "unpool2d", "max_unpool2d"]

_MODES = {"nearest": (3, 4, 5), "linear": (3,), "bilinear": (4,), "trilinear": (5,)}


class InterpolateFn(Function):
    def forward(self, x, out_size, mode, align_corners, scale_factors):
        out, self.cache = up_ops.interpolate_forward(x, out_size, mode, align_corners,
                                                     scale_factors)
        return out

    def backward(self, dout):
        return up_ops.interpolate_backward(dout, self.cache)


class Unpool2dFn(Function):
    def forward(self, x, size):
        out, self.cache = up_ops.unpool2d_forward(x, size)
        return out

    def backward(self, dout):
        return up_ops.unpool2d_backward(dout, self.cache)


class MaxUnpool2dFn(Function):
    def forward(self, x, indices, out_hw):
        out, self.cache = up_ops.max_unpool2d_forward(x, indices, out_hw)
        return out

    def backward(self, dout):
        return up_ops.max_unpool2d_backward(dout, self.cache), None


def interpolate_size(in_size, size=None, scale_factor=None, op="interpolate"):
    """Return (output size, scale factors or None) for an input's spatial size."""
    nd = len(in_size)
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor, got "
                         f"size={size!r} and scale_factor={scale_factor!r}")
    if size is not None:
        out = as_tuple(size, nd, "size", op)
        check_positive(out, "size", op)
        return out, None
    if isinstance(scale_factor, numbers.Real) and not isinstance(scale_factor, bool):
        factors = (float(scale_factor),) * nd
    elif (isinstance(scale_factor, (tuple, list)) and len(scale_factor) == nd
          and all(isinstance(f, numbers.Real) and not isinstance(f, bool)
                  for f in scale_factor)):
        factors = tuple(float(f) for f in scale_factor)
    else:
        raise TypeError(f"{op}: scale_factor must be a number or {nd} numbers, "
                        f"got {scale_factor!r}")
    if any(not f > 0 or not math.isfinite(f) for f in factors):
        raise ValueError(f"{op}: scale_factor must be positive and finite, got {scale_factor!r}")
    out = tuple(int(math.floor(n * f)) for n, f in zip(in_size, factors))
    if min(out) <= 0:
        raise ValueError(f"{op}: scale_factor {scale_factor!r} gives an empty output {out} "
                         f"for input size {tuple(in_size)}")
    return out, factors


def check_mode(mode, align_corners, ndim, op="interpolate"):
    if mode not in _MODES:
        raise ValueError(f"{op}: mode must be one of {tuple(_MODES)}, got {mode!r}")
    if ndim not in _MODES[mode]:
        want = " or ".join(f"{d}-D" for d in _MODES[mode])
        raise ValueError(f"{op}: mode={mode!r} needs {want} input, got {ndim}-D")
    if mode == "nearest" and align_corners:
        raise ValueError(f"{op}: align_corners only applies to the linear modes, "
                         f"got align_corners=True with mode='nearest'")


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=False) -> Tensor:
    """Resize the spatial axes of channels-last input, as torch's ``interpolate``.

    Args:
        x: (N, L, C), (N, H, W, C) or (N, D, H, W, C).
        size: output spatial size (int or one int per axis); or
        scale_factor: a number or one per axis; the output is floor(n * scale_factor)
            and the source scale is 1/scale_factor (torch's default).
        mode: 'nearest' (any rank), 'linear' (1-D), 'bilinear' (2-D), 'trilinear' (3-D).
        align_corners: linear modes only; True maps the corner pixel centres onto
            each other, False (default) treats pixels as areas (half-pixel offsets).

    Returns:
        (N, *out_size, C).

    Example:
        >>> interpolate(np.ones((1, 2, 3, 4)), scale_factor=2, mode="bilinear").shape
        (1, 4, 6, 4)
    """
    op = "interpolate"
    x = float_input(x, op, (3, 4, 5), layout="(N, *spatial, C)")
    check_mode(mode, align_corners, x.ndim, op)
    out_size, factors = interpolate_size(x.shape[1:-1], size, scale_factor, op)
    return InterpolateFn.apply(x, out_size=out_size,
                               mode="nearest" if mode == "nearest" else "linear",
                               align_corners=bool(align_corners), scale_factors=factors)


upsample = interpolate


def unpool2d(x, size=2) -> Tensor:
    """Copy-unpooling (seed 002): every entry is copied into a size x size block,
    [x] -> [[x, x], [x, x]] for size 2.

    Args:
        x: (N, H, W, C).
        size: int or (kh, kw).

    Returns:
        (N, H * kh, W * kw, C).
    """
    op = "unpool2d"
    x = float_input(x, op, 4, layout="(N, H, W, C)")
    size = as_tuple(size, 2, "size", op)
    check_positive(size, "size", op)
    return Unpool2dFn.apply(x, size=size)


def max_unpool_output_size(in_hw, kernel, stride, padding, output_size=None,
                           op="max_unpool2d"):
    """Default (H - 1) s - 2p + k per axis, or a checked ``output_size`` (torch's rule:
    within one stride of the default)."""
    default = tuple((n - 1) * s - 2 * p + k for n, k, s, p in zip(in_hw, kernel, stride, padding))
    if output_size is None:
        if min(default) <= 0:
            raise ValueError(f"{op}: the default output size {default} is empty")
        return default
    size = tuple(output_size)
    if len(size) == 4:
        size = size[1:3]                                           # (N, OH, OW, C) given
    size = as_tuple(size, 2, "output_size", op)
    for axis, (o, d, s) in enumerate(zip(size, default, stride)):
        if not d - s < o < d + s:
            raise ValueError(f"{op}: output_size must be between {d - s + 1} and {d + s - 1} "
                             f"on spatial axis {axis} (default {d}), got {o}")
    return size


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
    """Inverse of ``max_pool2d(..., return_indices=True)``: put each value back at the
    position of its window's maximum; every other position is zero.

    Args:
        x: (N, H, W, C) pooled values.
        indices: int array (N, H, W, C) of flat positions h * OW + w in the unpadded
            output plane, as max_pool2d returns them (torch's convention).
        kernel_size, stride, padding: those of the pool (stride defaults to kernel).
        output_size: (OH, OW) or (N, OH, OW, C); default (H - 1) * s - 2p + k.

    Returns:
        (N, OH, OW, C).
    """
    op = "max_unpool2d"
    x = float_input(x, op, 4, layout="(N, H, W, C)")
    if isinstance(indices, Tensor):
        indices = indices.data
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer array, got dtype {indices.dtype}")
    if indices.shape != x.shape:
        raise ValueError(f"{op}: indices must have the input's shape {x.shape}, "
                         f"got {indices.shape}")
    kernel = as_tuple(kernel_size, 2, "kernel_size", op)
    stride = kernel if stride is None else as_tuple(stride, 2, "stride", op)
    padding = as_tuple(padding, 2, "padding", op)
    check_positive(kernel, "kernel_size", op)
    check_positive(stride, "stride", op)
    out_hw = max_unpool_output_size(x.shape[1:3], kernel, stride, padding, output_size, op)
    plane = out_hw[0] * out_hw[1]
    if indices.size and (indices.min() < 0 or indices.max() >= plane):
        raise ValueError(f"{op}: indices must lie in [0, {plane}) for a {out_hw[0]} x "
                         f"{out_hw[1]} output, got values in [{indices.min()}, {indices.max()}]")
    return MaxUnpool2dFn.apply(x, indices.astype(np.int64, copy=False), out_hw=out_hw)
