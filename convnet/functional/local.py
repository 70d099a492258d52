"""Locally connected 2-D layer as a Tensor op: a thin Function over ``convnet.ops.local``."""

from __future__ import annotations

from ..ops import local as local_ops
from ..ops.shape import as_tuple, check_positive, conv_output_shape, resolve_padding
from ..tensor import Function, Tensor
from ._checks import check_ndim, float_input

__all__ = ["local2d"]


class Local2dFn(Function):
    def forward(self, x, w, b, stride, pads):
        out, self.cache = local_ops.local2d_forward(x, w, b, stride, pads)
        return out

    def backward(self, dout):
        return local_ops.local2d_backward(dout, self.cache, self.needs_input_grad)


def local2d_params(input_hw, kernel_size, stride, padding, op="local2d", strict=False):
    """Validate and return (kernel, stride, pads, (OH, OW)) for an (H, W) input;
    ``strict`` also raises when the windows do not tile the padded input."""
    kernel = as_tuple(kernel_size, 2, "kernel_size", op)
    stride = as_tuple(stride, 2, "stride", op)
    check_positive(kernel, "kernel_size", op)
    check_positive(stride, "stride", op)
    pads = resolve_padding(padding, tuple(input_hw), kernel, stride, (1, 1), op)
    out = conv_output_shape(tuple(input_hw), kernel, stride, pads, (1, 1), op, strict)
    return kernel, stride, pads, out


def local2d(x, weight, bias=None, stride=1, padding=0) -> Tensor:
    """Locally connected 2-D op: a convolution whose filters are not shared across
    positions (one filter bank per output pixel).

    Args:
        x: (N, H, W, C_in).
        weight: (OH, OW, KH, KW, C_in, C_out); OH x OW must be the output size that
            the kernel, stride and padding give for H x W.
        bias: (OH, OW, C_out) or None.
        stride: int or pair.
        padding: int, pair, ((top, bottom), (left, right)), 'valid' or 'same'.

    Returns:
        (N, OH, OW, C_out).
    """
    op = "local2d"
    x = float_input(x, op, 4, layout="(N, H, W, C)")
    weight = float_input(weight, op, name="weight")
    check_ndim(weight, 6, op, "weight", "(OH, OW, KH, KW, C_in, C_out)")
    oh, ow, kh, kw, c, f = weight.shape
    if x.shape[-1] != c:
        raise ValueError(f"{op}: input has {x.shape[-1]} channels but weight "
                         f"{weight.shape} expects {c}")
    _, stride, pads, out = local2d_params(x.shape[1:3], (kh, kw), stride, padding, op)
    if out != (oh, ow):
        raise ValueError(f"{op}: input {x.shape[1:3]} gives {out[0]} x {out[1]} output "
                         f"positions but weight {weight.shape} has {oh} x {ow}")
    if bias is not None:
        bias = float_input(bias, op, name="bias")
        if bias.shape != (oh, ow, f):
            raise ValueError(f"{op}: bias must have shape {(oh, ow, f)}, got {bias.shape}")
    return Local2dFn.apply(x, weight, bias, stride=stride, pads=pads)
