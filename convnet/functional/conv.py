"""Convolution as Tensor ops: thin Functions over ``convnet.ops.conv``."""

from __future__ import annotations

from ..ops import conv as conv_ops
from ..ops import fused as fused_ops
from ..ops.shape import as_tuple, check_positive, conv_output_shape, resolve_padding
from ..tensor import Function, Tensor
from ._checks import check_ndim, float_input

__all__ = ["conv2d", "conv2d_relu", "conv2d_relu_max_pool2d"]


class Conv2dFn(Function):
    def forward(self, x, w, b, stride, pads, dilation, groups):
        out, self.cache = conv_ops.conv2d_forward(x, w, b, stride, pads, dilation, groups)
        return out

    def backward(self, dout):
        dx, dw, db = conv_ops.conv2d_backward(dout, self.cache, self.needs_input_grad)
        return dx, dw, db


class Conv2dReLUFn(Function):
    """relu(conv2d(x) + b) as one op: the ReLU runs in place on the conv's output."""

    def forward(self, x, w, b, stride, pads, dilation, groups):
        out, self.cache = conv_ops.conv2d_relu_forward(x, w, b, stride, pads, dilation,
                                                       groups)
        return out

    def backward(self, dout):
        return conv_ops.conv2d_relu_backward(dout, self.cache, self.needs_input_grad)


class Conv2dReLUPoolFn(Function):
    """max_pool2d(relu(conv2d(x) + b)) with non-overlapping windows, as one op."""

    def forward(self, x, w, b, stride, pads, dilation, groups, pool):
        out, self.cache = fused_ops.conv2d_relu_pool_forward(x, w, b, stride, pads, dilation,
                                                             groups, pool)
        return out

    def backward(self, dout):
        return fused_ops.conv2d_relu_pool_backward(dout, self.cache, self.needs_input_grad)


def convnd_params(x_shape, w_shape, b_shape, stride, padding, dilation, groups, ndim,
                  op, strict=False):
    """Validate an N-d conv's arguments; return (stride, pads, dilation, out_spatial)."""
    spatial, c = tuple(x_shape[1:-1]), x_shape[-1]
    kernel, cg, f = tuple(w_shape[:ndim]), w_shape[ndim], w_shape[ndim + 1]
    stride = as_tuple(stride, ndim, "stride", op)
    dilation = as_tuple(dilation, ndim, "dilation", op)
    check_positive(stride, "stride", op)
    check_positive(dilation, "dilation", op)
    check_positive(kernel, "kernel size", op)
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    if groups <= 0:
        raise ValueError(f"{op}: groups must be positive, got {groups}")
    if c % groups != 0:
        raise ValueError(f"{op}: groups={groups} does not divide the {c} input channels "
                         f"(weight {tuple(w_shape)} expects {cg * groups} = {cg} per group x "
                         f"{groups} groups)")
    if f % groups != 0:
        raise ValueError(f"{op}: groups={groups} does not divide the {f} output channels "
                         f"of weight {tuple(w_shape)}")
    if cg * groups != c:
        raise ValueError(f"{op}: input has {c} channels but weight {tuple(w_shape)} expects "
                         f"{cg * groups}" + (f" ({cg} per group x {groups} groups)"
                                             if groups > 1 else ""))
    if b_shape is not None and tuple(b_shape) != (f,):
        raise ValueError(f"{op}: bias must have shape ({f},), got {tuple(b_shape)}")
    pads = resolve_padding(padding, spatial, kernel, stride, dilation, op)
    out = conv_output_shape(spatial, kernel, stride, pads, dilation, op, strict)
    return stride, pads, dilation, out


def conv2d_params(x_shape, w_shape, b_shape, stride, padding, dilation, groups,
                  op="conv2d", strict=False):
    """Validate conv2d arguments; return (stride, pads, dilation, (OH, OW))."""
    return convnd_params(x_shape, w_shape, b_shape, stride, padding, dilation, groups, 2,
                         op, strict)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution on NHWC input.

    Args:
        x: (N, H, W, C_in).
        weight: (KH, KW, C_in/groups, C_out) -- the seeds' f x f x n_C[l-1] x n_C[l].
        bias: (C_out,) or None.
        stride, dilation: int or (h, w) pair.
        padding: int, (h, w) pair, ((top, bottom), (left, right)), 'valid' or 'same'
            (TensorFlow's: output ceil(n/s), the odd pixel on the bottom/right).
        groups: split channels into independent groups; groups = C_in is depthwise.

    Returns:
        (N, OH, OW, C_out) with OH = floor((H + p_t + p_b - d(KH-1) - 1)/s) + 1.
    """
    x, weight, bias, kw, _ = _conv2d_args("conv2d", x, weight, bias, stride, padding, dilation,
                                       groups)
    return Conv2dFn.apply(x, weight, bias, **kw)


def _conv2d_args(op, x, weight, bias, stride, padding, dilation, groups):
    """Validated ``x, weight, bias``, the Function's keywords (stride, pads, dilation,
    groups) and the output's (OH, OW) for a 2-D conv."""
    x = float_input(x, op, 4, layout="(N, H, W, C)")
    weight = float_input(weight, op, name="weight")
    check_ndim(weight, 4, op, "weight", "(KH, KW, C_in/groups, C_out)")
    if bias is not None:
        bias = float_input(bias, op, name="bias")
    stride, pads, dilation, out_hw = conv2d_params(
        x.shape, weight.shape, None if bias is None else bias.shape,
        stride, padding, dilation, groups, op)
    return x, weight, bias, {"stride": stride, "pads": pads, "dilation": dilation,
                             "groups": groups}, out_hw


def conv2d_relu(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """``relu(conv2d(x, weight, bias, ...))`` computed as one op (same arguments and
    result as the pair; the gradient is 0 where the output is <= 0, as for ``relu``).

    The ReLU clamps each block of the conv's output while it is in cache, so the pair
    keeps one (N, OH, OW, C_out) array instead of two and makes no pass of its own over
    it; the backward masks the gradient block by block the same way.  ``nn.Sequential``
    uses it for every plain ``Conv2d`` followed by a plain ``ReLU``.
    """
    x, weight, bias, kw, _ = _conv2d_args("conv2d_relu", x, weight, bias, stride, padding,
                                       dilation, groups)
    return Conv2dReLUFn.apply(x, weight, bias, **kw)


def conv2d_relu_max_pool2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                           pool_size=2) -> Tensor:
    """``max_pool2d(relu(conv2d(x, weight, bias, ...)), pool_size)`` as one op: the same
    arguments, result and gradients as the three ops in turn (pool stride = pool_size,
    no padding, floor mode; ties and NaNs go to the input ``max_pool2d`` picks).

    Where the conv runs Winograd, each block of its output is clamped and pooled while in
    cache and the full-size activation is never stored: the op keeps the pooled output
    and one argmax tap per window (``ops.fused``).  ``nn.Sequential`` uses it for every
    plain ``Conv2d -> ReLU -> MaxPool2d`` with non-overlapping windows.

    Args:
        x, weight, bias, stride, padding, dilation, groups: as ``conv2d``.
        pool_size: int or (PH, PW), the pooling window and stride.

    Returns:
        (N, OH // PH, OW // PW, C_out), OH and OW as ``conv2d``'s.
    """
    op = "conv2d_relu_max_pool2d"
    x, weight, bias, kw, out_hw = _conv2d_args(op, x, weight, bias, stride, padding,
                                               dilation, groups)
    pool = as_tuple(pool_size, 2, "pool_size", op)
    check_positive(pool, "pool_size", op)
    if out_hw[0] < pool[0] or out_hw[1] < pool[1]:
        raise ValueError(f"{op}: the conv output {out_hw[0]}x{out_hw[1]} is smaller than "
                         f"the {pool[0]}x{pool[1]} pooling window")
    return Conv2dReLUPoolFn.apply(x, weight, bias, pool=pool, **kw)
