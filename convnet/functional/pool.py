"""Pooling as Tensor ops: thin Functions over ``convnet.ops.pool``."""

from __future__ import annotations

import numpy as np

from ..ops import pool as pool_ops
from ..ops.shape import as_tuple, check_positive, resolve_padding
from ..tensor import Function, Tensor, is_grad_enabled
from ._checks import float_input

__all__ = ["max_pool2d", "avg_pool2d", "global_max_pool2d", "global_avg_pool2d"]


class MaxPool2dFn(Function):
    def forward(self, x, kernel_size, stride, pads, dilation, ceil_mode, return_indices):
        argmax = return_indices or (self.needs_input_grad[0] and is_grad_enabled())
        out, self.cache = pool_ops.max_pool2d_forward(x, kernel_size, stride, pads, dilation,
                                                      ceil_mode, argmax=argmax)
        self.indices = pool_ops.max_pool2d_indices(self.cache) if return_indices else None
        return out

    def backward(self, dout):
        return pool_ops.max_pool2d_backward(dout, self.cache)


class AvgPool2dFn(Function):
    def forward(self, x, kernel_size, stride, pads, ceil_mode, count_include_pad):
        out, self.cache = pool_ops.avg_pool2d_forward(x, kernel_size, stride, pads, ceil_mode,
                                                      count_include_pad)
        return out

    def backward(self, dout):
        return pool_ops.avg_pool2d_backward(dout, self.cache)


class GlobalMaxPool2dFn(Function):
    def forward(self, x):
        out, self.cache = pool_ops.global_max_pool2d_forward(x)
        return out

    def backward(self, dout):
        return pool_ops.global_max_pool2d_backward(dout, self.cache)


class GlobalAvgPool2dFn(Function):
    def forward(self, x):
        out, self.cache = pool_ops.global_avg_pool2d_forward(x)
        return out

    def backward(self, dout):
        return pool_ops.global_avg_pool2d_backward(dout, self.cache)


def _check_flag(value, name, op):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be True or False, got {value!r}")
    return bool(value)


def pool2d_params(x_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                  op="max_pool2d", strict=False):
    """Validate 2-D pooling arguments for an (N, H, W, C) input.

    Returns ``(kernel, stride, pads, dilation, out_hw)``; ``stride=None`` means the
    kernel size, ``pads`` is ((top, bottom), (left, right)).
    """
    _, h, w, _ = x_shape
    kernel = as_tuple(kernel_size, 2, "kernel_size", op)
    check_positive(kernel, "kernel_size", op)
    stride = kernel if stride is None else as_tuple(stride, 2, "stride", op)
    check_positive(stride, "stride", op)
    dilation = as_tuple(dilation, 2, "dilation", op)
    check_positive(dilation, "dilation", op)
    pads = resolve_padding(padding, (h, w), kernel, stride, dilation, op)
    out_hw = pool_ops.pool_output_shape((h, w), kernel, stride, pads, dilation,
                                        _check_flag(ceil_mode, "ceil_mode", op), op, strict)
    pool_ops.check_pool_windows((h, w), kernel, stride, pads, dilation, out_hw, op)
    return kernel, stride, pads, dilation, out_hw


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling on NHWC input, per channel.

    Args:
        x: (N, H, W, C) float.
        kernel_size: int or (KH, KW).
        stride: int or pair; ``None`` (default) means ``kernel_size``, as in the seeds.
        padding: int, pair, ((top, bottom), (left, right)), 'valid' or 'same'; padded
            cells hold -inf, so they never win.  At most half the effective kernel.
        dilation: int or pair; 1 means none.
        ceil_mode: round the output size up (PyTorch's rule: the last window must start
            inside the input or the leading padding).
        return_indices: also return the argmax positions (for ``max_unpool2d``).

    Returns:
        (N, OH, OW, C), or ``(out, indices)`` with ``indices`` an int64 Tensor
        (N, OH, OW, C) of PyTorch's flat positions h * W + w in the unpadded input plane.

    Ties send the gradient to the first maximum in row-major window order (what
    PyTorch's CPU kernel picks); NaN propagates and the last NaN is the argmax.
    """
    op = "max_pool2d"
    x = float_input(x, op, 4, layout="(N, H, W, C)")
    return_indices = _check_flag(return_indices, "return_indices", op)
    kernel, stride, pads, dilation, _ = pool2d_params(x.shape, kernel_size, stride, padding,
                                                      dilation, ceil_mode, op)
    out, ctx = MaxPool2dFn.apply_with_ctx(x, kernel_size=kernel, stride=stride, pads=pads,
                                          dilation=dilation, ceil_mode=bool(ceil_mode),
                                          return_indices=return_indices)
    if return_indices:
        return out, Tensor(ctx.indices)
    return out


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True,
               ceil_mode=False):
    """2-D average pooling on NHWC input, per channel.

    Args:
        x: (N, H, W, C) float.
        kernel_size: int or (KH, KW).
        stride: int or pair; ``None`` (default) means ``kernel_size``.
        padding: int, pair, ((top, bottom), (left, right)), 'valid' or 'same'; zeros,
            at most half the kernel.
        count_include_pad: divide by the full window including padded cells (PyTorch's
            default); False divides by the number of real inputs in the window.
        ceil_mode: round the output size up; the extension past the padding is never
            counted.

    Returns:
        (N, OH, OW, C).
    """
    op = "avg_pool2d"
    x = float_input(x, op, 4, layout="(N, H, W, C)")
    count_include_pad = _check_flag(count_include_pad, "count_include_pad", op)
    kernel, stride, pads, _, _ = pool2d_params(x.shape, kernel_size, stride, padding, 1,
                                               ceil_mode, op)
    return AvgPool2dFn.apply(x, kernel_size=kernel, stride=stride, pads=pads,
                             ceil_mode=bool(ceil_mode), count_include_pad=count_include_pad)


def global_max_pool2d(x) -> Tensor:
    """Max over all of H and W: (N, H, W, C) -> (N, C).  Ties as in ``max_pool2d``."""
    x = float_input(x, "global_max_pool2d", 4, layout="(N, H, W, C)")
    if x.shape[1] * x.shape[2] == 0:
        raise ValueError(f"global_max_pool2d: input has an empty spatial plane, shape {x.shape}")
    return GlobalMaxPool2dFn.apply(x)


def global_avg_pool2d(x) -> Tensor:
    """Mean over all of H and W: (N, H, W, C) -> (N, C)."""
    x = float_input(x, "global_avg_pool2d", 4, layout="(N, H, W, C)")
    if x.shape[1] * x.shape[2] == 0:
        raise ValueError(f"global_avg_pool2d: input has an empty spatial plane, shape {x.shape}")
    return GlobalAvgPool2dFn.apply(x)
