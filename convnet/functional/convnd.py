"""1-D and 3-D convolution and pooling as Tensor ops: thin Functions over ``ops.convnd``.

The 1-D pools reshape (N, L, C) to (N, 1, L, C) and call the 2-D pools of ``pool.py``.
"""

from __future__ import annotations

from ..ops import convnd as nd_ops
from ..ops.pool import check_pool_windows, pool_output_shape
from ..ops.shape import as_tuple, check_positive
from ..tensor import Function, Tensor
from ._checks import check_ndim, float_input
from .conv import convnd_params
from .pool import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d

__all__ = ["conv1d", "conv3d", "max_pool3d", "max_pool1d", "avg_pool1d", "global_avg_pool1d",
           "global_max_pool1d"]

_LAYOUT = {1: "(N, L, C)", 3: "(N, D, H, W, C)"}
_WLAYOUT = {1: "(K, C_in/groups, C_out)", 3: "(KD, KH, KW, C_in/groups, C_out)"}


class Conv1dFn(Function):
    def forward(self, x, w, b, stride, pads, dilation, groups):
        out, self.cache = nd_ops.conv1d_forward(x, w, b, stride, pads, dilation, groups)
        return out

    def backward(self, dout):
        return nd_ops.conv1d_backward(dout, self.cache, self.needs_input_grad)


class Conv3dFn(Function):
    def forward(self, x, w, b, stride, pads, dilation, groups):
        out, self.cache = nd_ops.conv3d_forward(x, w, b, stride, pads, dilation, groups)
        return out

    def backward(self, dout):
        return nd_ops.conv3d_backward(dout, self.cache, self.needs_input_grad)


class MaxPool3dFn(Function):
    def forward(self, x, kernel, stride, pads, dilation, out_size):
        out, self.cache = nd_ops.max_pool3d_forward(x, kernel, stride, pads, dilation,
                                                    out_size)
        return out

    def backward(self, dout):
        return nd_ops.max_pool3d_backward(dout, self.cache)


def _convnd(fn, x, weight, bias, stride, padding, dilation, groups, ndim, op):
    x = float_input(x, op, ndim + 2, layout=_LAYOUT[ndim])
    weight = float_input(weight, op, name="weight")
    check_ndim(weight, ndim + 2, op, "weight", _WLAYOUT[ndim])
    if bias is not None:
        bias = float_input(bias, op, name="bias")
    stride, pads, dilation, _ = convnd_params(
        x.shape, weight.shape, None if bias is None else bias.shape, stride, padding,
        dilation, groups, ndim, op)
    return fn.apply(x, weight, bias, stride=stride, pads=pads, dilation=dilation,
                    groups=groups)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """1-D convolution on (N, L, C) input, for text and audio.

    Args:
        x: (N, L, C_in).
        weight: (K, C_in/groups, C_out).
        bias: (C_out,) or None.
        stride, dilation: int or 1-tuple.
        padding: int, (lo, hi) as ``((lo, hi),)``, 'valid', 'same' or 'causal'
            (d*(K-1) on the left only, so output t sees inputs <= t).
        groups: split channels into independent groups.

    Returns:
        (N, OL, C_out), OL = floor((L + p_lo + p_hi - d(K-1) - 1)/s) + 1.
    """
    return _convnd(Conv1dFn, x, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """3-D convolution on (N, D, H, W, C) volumes.

    Args:
        x: (N, D, H, W, C_in).
        weight: (KD, KH, KW, C_in/groups, C_out).
        bias: (C_out,) or None.
        stride, dilation: int or (d, h, w).
        padding: int, (d, h, w), three (lo, hi) pairs, 'valid' or 'same'.
        groups: split channels into independent groups.

    Returns:
        (N, OD, OH, OW, C_out), each O = floor((n + p_lo + p_hi - d(k-1) - 1)/s) + 1.
    """
    return _convnd(Conv3dFn, x, weight, bias, stride, padding, dilation, groups, 3, "conv3d")


def pool_hyper(kernel_size, stride, padding, dilation, ndim, op):
    """Validate pool hyperparameters (torch's rules) without a shape; return
    (kernel, stride, pads, dilation).  ``stride=None`` means the kernel."""
    kernel = as_tuple(kernel_size, ndim, "kernel_size", op)
    check_positive(kernel, "kernel_size", op)
    stride = kernel if stride is None else as_tuple(stride, ndim, "stride", op)
    dilation = as_tuple(dilation, ndim, "dilation", op)
    check_positive(stride, "stride", op)
    check_positive(dilation, "dilation", op)
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be an int or {ndim} ints, got {padding!r}")
    pad = as_tuple(padding, ndim, "padding", op)
    for axis, (p, k) in enumerate(zip(pad, kernel)):
        if p < 0 or 2 * p > k:
            raise ValueError(f"{op}: padding must be between 0 and half the kernel size "
                             f"({k // 2}) on spatial axis {axis}, got {p}")
    return kernel, stride, tuple((p, p) for p in pad), dilation


def pool_params(spatial, kernel_size, stride, padding, dilation, ceil_mode, ndim, op,
                strict=False):
    """Validate max/avg pool arguments for an input's spatial size; return
    (kernel, stride, pads, dilation, out_spatial)."""
    kernel, stride, pads, dilation = pool_hyper(kernel_size, stride, padding, dilation,
                                                ndim, op)
    out = pool_output_shape(spatial, kernel, stride, pads, dilation, ceil_mode, op, strict)
    check_pool_windows(spatial, kernel, stride, pads, dilation, out, op)
    return kernel, stride, pads, dilation, out


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> Tensor:
    """3-D max pooling on (N, D, H, W, C); ties go to the first maximum in (d, h, w) scan
    order, as in torch.  Padding (at most half the kernel) is -inf.

    Args:
        x: (N, D, H, W, C).
        kernel_size: int or (KD, KH, KW).
        stride: int or triple; default the kernel size.
        padding: int or triple, at most half the kernel.
        dilation: int or triple.
        ceil_mode: round the output size up (torch's rule) instead of down.

    Returns:
        (N, OD, OH, OW, C), each O = floor((n + 2p - d(k-1) - 1)/s) + 1.
    """
    op = "max_pool3d"
    x = float_input(x, op, 5, layout=_LAYOUT[3])
    kernel, stride, pads, dilation, out = pool_params(x.shape[1:4], kernel_size, stride,
                                                      padding, dilation, ceil_mode, 3, op)
    return MaxPool3dFn.apply(x, kernel=kernel, stride=stride, pads=pads, dilation=dilation,
                             out_size=out)


def _as_2d(x, op):
    """(N, L, C) -> (N, 1, L, C): the 1-D pools run the 2-D ops on a height-1 view."""
    x = float_input(x, op, 3, layout=_LAYOUT[1])
    n, length, c = x.shape
    return x.reshape(n, 1, length, c)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """1-D max pooling on (N, L, C), per channel, via ``max_pool2d`` on (N, 1, L, C).

    Args:
        x: (N, L, C).
        kernel_size: window length.
        stride: default ``kernel_size``.
        padding: -inf padding on both ends, at most half the kernel.
        dilation: spacing of the window taps.
        ceil_mode: round the output length up (torch's rule).
        return_indices: also return int64 (N, OL, C) argmax positions along L.

    Returns:
        (N, OL, C), OL = floor((L + 2p - d(k-1) - 1)/s) + 1; or ``(out, indices)``.
    """
    op = "max_pool1d"
    x4 = _as_2d(x, op)
    kernel, stride, pads, dilation, _ = pool_params(x4.shape[2:3], kernel_size, stride,
                                                    padding, dilation, ceil_mode, 1, op)
    res = max_pool2d(x4, (1, kernel[0]), (1, stride[0]), ((0, 0), pads[0]),
                     (1, dilation[0]), return_indices=return_indices, ceil_mode=ceil_mode)
    out, idx = res if return_indices else (res, None)
    out = out.reshape(out.shape[0], out.shape[2], out.shape[3])    # (N, OL, C)
    if return_indices:
        return out, Tensor(idx.data[:, 0])                         # h = 0, so h*W + w = w
    return out


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True) -> Tensor:
    """1-D average pooling on (N, L, C), per channel, via ``avg_pool2d`` on (N, 1, L, C).

    Args:
        x: (N, L, C).
        kernel_size: window length.
        stride: default ``kernel_size``.
        padding: zero padding on both ends, at most half the kernel.
        ceil_mode: round the output length up (torch's rule).
        count_include_pad: divide by the kernel size (True) or by the number of real
            inputs in the window (False).

    Returns:
        (N, OL, C), OL = floor((L + 2p - k)/s) + 1.
    """
    op = "avg_pool1d"
    x4 = _as_2d(x, op)
    kernel, stride, pads, _, _ = pool_params(x4.shape[2:3], kernel_size, stride, padding, 1,
                                             ceil_mode, 1, op)
    out = avg_pool2d(x4, (1, kernel[0]), (1, stride[0]), ((0, 0), pads[0]),
                     count_include_pad=count_include_pad, ceil_mode=ceil_mode)
    return out.reshape(out.shape[0], out.shape[2], out.shape[3])   # (N, OL, C)


def global_avg_pool1d(x) -> Tensor:
    """Mean over the whole length: (N, L, C) -> (N, C), via ``global_avg_pool2d``."""
    return global_avg_pool2d(_as_2d(x, "global_avg_pool1d"))


def global_max_pool1d(x) -> Tensor:
    """Max over the whole length: (N, L, C) -> (N, C), via ``global_max_pool2d``; ties
    go to the first maximum."""
    return global_max_pool2d(_as_2d(x, "global_max_pool1d"))
