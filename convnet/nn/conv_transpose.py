"""Transposed convolution ("deconvolution") layer: ConvTranspose2d."""

from __future__ import annotations

from .. import functional as F
from ..functional.conv_transpose import conv_transpose2d_params
from ..ops.conv_transpose import conv_transpose_output_size
from ..ops.shape import as_tuple, check_positive, resolve_padding
from . import init
from ._checks import check_channels
from .module import Module, Parameter

__all__ = ["ConvTranspose2d"]


class ConvTranspose2d(Module):
    """2-D transposed convolution over NHWC input: the adjoint (matrix transpose) of a
    Conv2d with the same kernel, stride, padding and dilation (seed 002's
    "deconvolutional layer").  It maps an (H, W) map to the size that Conv2d would
    have shrunk to (H, W), so it up-samples by the stride.

    Weight layout: (KH, KW, out_channels/groups, in_channels) -- the HWIO weight of the
    Conv2d(out_channels -> in_channels) whose input gradient this layer computes.
    torch's ConvTranspose2d stores the same numbers as (in_channels,
    out_channels/groups, KH, KW), i.e. ``weight.transpose(3, 2, 0, 1)``.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: int or (KH, KW).
        stride: int or pair; the up-sampling factor. Default 1.
        padding: int, pair or ((top, bottom), (left, right)): rows/columns cropped from
            the full output (the padding of the matching Conv2d).
        output_padding: int or pair, < max(stride, dilation): extra rows/columns at
            the bottom/right, to pick one of the sizes that Conv2d maps onto H.
        groups: channel groups.
        bias: learn a bias per output channel.
        dilation: int or pair.
        rng: ``numpy.random.Generator`` for the initial weights (torch's default:
            U(+-1/sqrt(fan_in)), fan_in = KH*KW*out_channels/groups as torch computes it).
        dtype: parameter dtype (default float32).

    Input shape:
        (N, H, W, C_in)
    Output shape:
        (N, OH, OW, C_out),
        OH = (H - 1)*stride - p_t - p_b + dilation*(KH - 1) + output_padding + 1

    Example:
        >>> up = ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        >>> up.output_shape((16, 16, 64))
        (32, 32, 32)
        >>> up.weight.shape
        (4, 4, 32, 64)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, rng=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        check_channels(name, in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = as_tuple(kernel_size, 2, "kernel_size", name)
        self.stride = as_tuple(stride, 2, "stride", name)
        self.dilation = as_tuple(dilation, 2, "dilation", name)
        self.output_padding = as_tuple(output_padding, 2, "output_padding", name)
        check_positive(self.kernel_size, "kernel_size", name)
        check_positive(self.stride, "stride", name)
        check_positive(self.dilation, "dilation", name)
        if isinstance(padding, str):
            raise TypeError(f"{name}: padding must be an int, a pair or ((top, bottom), "
                            f"(left, right)), got the string {padding!r}")
        resolve_padding(padding, (1 << 20,) * 2, self.kernel_size, self.stride,
                        self.dilation, name)
        self.padding = padding
        for axis, (o, s, d) in enumerate(zip(self.output_padding, self.stride, self.dilation)):
            if o < 0 or o >= max(s, d):
                raise ValueError(f"{name}: output_padding must be >= 0 and smaller than "
                                 f"max(stride, dilation) = {max(s, d)} on spatial axis "
                                 f"{axis}, got {o}")
        shape = (*self.kernel_size, out_channels // groups, in_channels)
        rng = init.get_rng(rng)
        self.weight = Parameter(init.torch_default_weight(shape, rng=rng, dtype=dtype))
        fan_in = init.calculate_fan(shape)[0]
        self.bias = Parameter(init.torch_default_bias((out_channels,), fan_in, rng=rng,
                                                      dtype=dtype)) if bias else None

    def _pads(self):
        return resolve_padding(self.padding, (1 << 20,) * 2, self.kernel_size, self.stride,
                               self.dilation, type(self).__name__)

    def _output_padding_for(self, in_hw, output_size):
        """torch's ``forward(x, output_size)``: the output_padding giving that size."""
        name = type(self).__name__
        size = tuple(output_size)[-3:-1] if len(output_size) in (3, 4) else tuple(output_size)
        size = as_tuple(size, 2, "output_size", name)
        out = []
        for axis, (n, k, s, p, d, o) in enumerate(zip(in_hw, self.kernel_size, self.stride,
                                                      self._pads(), self.dilation, size)):
            base = conv_transpose_output_size(n, k, s, p, d, 0)
            if not base <= o < base + max(s, d):
                raise ValueError(f"{name}: output_size must be in [{base}, "
                                 f"{base + max(s, d) - 1}] on spatial axis {axis} for input "
                                 f"{tuple(in_hw)}, got {o}")
            out.append(o - base)
        return tuple(out)

    def forward(self, x, output_size=None):
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding_for(x.shape[1:3], output_size)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  output_padding, self.dilation, self.groups)

    def output_shape(self, input_shape):
        name = type(self).__name__
        if len(input_shape) != 3:
            raise ValueError(f"{name}: input shape must be (H, W, C), got {tuple(input_shape)}")
        h, w, c = input_shape
        wshape = (*self.kernel_size, self.out_channels // self.groups, self.in_channels)
        *_, (oh, ow) = conv_transpose2d_params(
            (1, h, w, c), wshape, None, self.stride, self.padding, self.output_padding,
            self.dilation, self.groups, op=f"{name}({self.extra_repr()})")
        return (oh, ow, self.out_channels)

    def rf_params(self, input_shape):
        """Per spatial axis, on the input grid: (d(K-1)/s + 1, 1/s, (d(K-1) - p_lo)/s).

        An output pixel reads about d(K-1)/s + 1 input pixels and the output grid is s
        times finer, so the kernel, stride and padding are fractions where s > 1.
        """
        out = []
        for k, s, d, (lo, _) in zip(self.kernel_size, self.stride, self.dilation, self._pads()):
            span = d * (k - 1)
            out.append((_num(span / s + 1), _num(1 / s), _num((span - lo) / s)))
        return tuple(out)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1, 1):
            s += f", stride={self.stride}"
        if self.padding not in (0, (0, 0)):
            s += f", padding={self.padding!r}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


def _num(v: float):
    """An int where the value is whole, else the float."""
    return int(v) if float(v).is_integer() else float(v)
