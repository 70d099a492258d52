"""Transposed convolution as a Tensor op: a thin Function over ``convnet.ops.conv_transpose``."""

from __future__ import annotations

from ..ops import conv_transpose as ct_ops
from ..ops.shape import as_tuple, check_positive, resolve_padding
from ..tensor import Function, Tensor
from ._checks import check_ndim, float_input

__all__ = ["conv_transpose2d"]


class ConvTranspose2dFn(Function):
    def forward(self, x, w, b, stride, pads, output_padding, dilation, groups):
        out, self.cache = ct_ops.conv_transpose2d_forward(x, w, b, stride, pads,
                                                          output_padding, dilation, groups)
        return out

    def backward(self, dout):
        return ct_ops.conv_transpose2d_backward(dout, self.cache, self.needs_input_grad)


def _check_groups(groups, op):
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    if groups <= 0:
        raise ValueError(f"{op}: groups must be positive, got {groups}")


def conv_transpose2d_params(x_shape, w_shape, b_shape, stride, padding, output_padding,
                            dilation, groups, op="conv_transpose2d"):
    """Validate conv_transpose2d arguments; return (stride, pads, output_padding,
    dilation, (OH, OW))."""
    n, h, w, c = x_shape
    kh, kw, fg, c_w = w_shape
    stride = as_tuple(stride, 2, "stride", op)
    dilation = as_tuple(dilation, 2, "dilation", op)
    output_padding = as_tuple(output_padding, 2, "output_padding", op)
    check_positive(stride, "stride", op)
    check_positive(dilation, "dilation", op)
    check_positive((kh, kw), "kernel size", op)
    _check_groups(groups, op)
    if c % groups != 0:
        raise ValueError(f"{op}: groups={groups} does not divide the {c} input channels")
    if c_w != c:
        raise ValueError(f"{op}: input has {c} channels but weight {tuple(w_shape)} "
                         f"(KH, KW, C_out/groups, C_in) expects {c_w}")
    f = fg * groups
    if b_shape is not None and tuple(b_shape) != (f,):
        raise ValueError(f"{op}: bias must have shape ({f},), got {tuple(b_shape)}")
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be an int, a pair or ((top, bottom), "
                        f"(left, right)), got the string {padding!r}")
    pads = resolve_padding(padding, (h, w), (kh, kw), stride, dilation, op)
    for axis, (o, s, d) in enumerate(zip(output_padding, stride, dilation)):
        if o < 0 or o >= max(s, d):
            raise ValueError(f"{op}: output_padding must be >= 0 and smaller than "
                             f"max(stride, dilation) = {max(s, d)} on spatial axis {axis}, "
                             f"got {o}")
    out = tuple(ct_ops.conv_transpose_output_size(m, k, s, p, d, o) for m, k, s, p, d, o in
                zip((h, w), (kh, kw), stride, pads, dilation, output_padding))
    if min(out) <= 0:
        raise ValueError(f"{op}: output size (H-1)*stride - padding + dilation*(K-1) + "
                         f"output_padding + 1 must be positive, got {out} for input "
                         f"{(h, w)} and padding {pads}")
    return stride, pads, output_padding, dilation, out


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0,
                     dilation=1, groups=1) -> Tensor:
    """2-D transposed convolution on NHWC input: the adjoint of ``conv2d``.

    ``conv_transpose2d(y, w, stride=s, padding=p, dilation=d)`` equals the gradient of
    ``conv2d(z, w, stride=s, padding=p, dilation=d)`` with respect to ``z``, applied to
    the upstream gradient ``y`` (seed 002's "multiplication with the transpose").

    Args:
        x: (N, H, W, C_in).
        weight: (KH, KW, C_out/groups, C_in) -- the HWIO weight of the conv2d whose
            input gradient this is.  torch's ConvTranspose2d weight (C_in, C_out/groups,
            KH, KW) is ``weight.transpose(3, 2, 0, 1)``.
        bias: (C_out,) or None.
        stride, dilation: int or (h, w) pair.
        padding: int, (h, w) pair or ((top, bottom), (left, right)): rows and columns
            cropped from the full output (the padding of the matching conv2d).
        output_padding: int or pair, < max(stride, dilation): extra rows/columns at
            the bottom/right that pick one of the input sizes the conv maps to H.
        groups: split channels into independent groups.

    Returns:
        (N, OH, OW, C_out), OH = (H-1)*s - p_t - p_b + d*(KH-1) + output_padding + 1.
    """
    op = "conv_transpose2d"
    x = float_input(x, op, 4, layout="(N, H, W, C)")
    weight = float_input(weight, op, name="weight")
    check_ndim(weight, 4, op, "weight", "(KH, KW, C_out/groups, C_in)")
    if bias is not None:
        bias = float_input(bias, op, name="bias")
    stride, pads, output_padding, dilation, _ = conv_transpose2d_params(
        x.shape, weight.shape, None if bias is None else bias.shape, stride, padding,
        output_padding, dilation, groups, op)
    return ConvTranspose2dFn.apply(x, weight, bias, stride=stride, pads=pads,
                                   output_padding=output_padding, dilation=dilation,
                                   groups=groups)
