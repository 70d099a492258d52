"""Convolution layers: Conv2d and DepthwiseSeparableConv2d."""

from __future__ import annotations

from .. import functional as F
from ..functional.conv import conv2d_params
from ..ops.shape import as_tuple, check_positive, effective_kernel, resolve_padding
from . import init
from .module import Module, Parameter, Sequential, is_strict_tiling

__all__ = ["Conv2d", "DepthwiseSeparableConv2d"]


def _check_int(value, name, layer, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{layer}: {name} must be an int >= {minimum}, got {value!r}")


class Conv2d(Module):
    """2-D convolution over NHWC input, with HWIO weights.

    Applies ``out_channels`` filters of size KH x KW x (in_channels/groups) -- the
    seeds' f x f x n_C[l-1] -- with the given stride, padding and dilation.

    Args:
        in_channels: C_in.
        out_channels: C_out, the number of filters.
        kernel_size: int or (KH, KW).
        stride: int or pair. Default 1.
        padding: int, pair, ((top, bottom), (left, right)), ``'valid'`` or ``'same'``.
        dilation: int or pair; 1 means none.
        groups: channel groups; ``groups == in_channels`` is a depthwise conv.
        bias: learn a bias per output channel.
        rng: ``numpy.random.Generator`` for the initial weights (PyTorch's default
            init: U(+-1/sqrt(fan_in)) for weight and bias).
        dtype: parameter dtype (default float32).

    Input shape:
        (N, H, W, C_in)
    Output shape:
        (N, OH, OW, C_out), OH = floor((H + p_t + p_b - dilation*(KH-1) - 1)/stride) + 1

    Example:
        >>> conv = Conv2d(3, 64, 3, padding="same")
        >>> conv.output_shape((224, 224, 3))
        (224, 224, 64)
        >>> conv.weight.shape
        (3, 3, 3, 64)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, rng=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        _check_int(in_channels, "in_channels", name)
        _check_int(out_channels, "out_channels", name)
        _check_int(groups, "groups", name)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = as_tuple(kernel_size, 2, "kernel_size", name)
        self.stride = as_tuple(stride, 2, "stride", name)
        self.dilation = as_tuple(dilation, 2, "dilation", name)
        check_positive(self.kernel_size, "kernel_size", name)
        check_positive(self.stride, "stride", name)
        check_positive(self.dilation, "dilation", name)
        # Validate the padding spelling now (with a dummy size) so errors come early.
        resolve_padding(padding, (1 << 20,) * 2, self.kernel_size, self.stride,
                        self.dilation, name)
        self.padding = padding
        shape = (*self.kernel_size, in_channels // groups, out_channels)
        rng = init.get_rng(rng)
        self.weight = Parameter(init.torch_default_weight(shape, rng=rng, dtype=dtype))
        fan_in = init.calculate_fan(shape)[0]
        self.bias = Parameter(init.torch_default_bias((out_channels,), fan_in, rng=rng,
                                                      dtype=dtype)) if bias else None

    def _pads(self, spatial):
        return resolve_padding(self.padding, spatial, self.kernel_size, self.stride,
                               self.dilation, type(self).__name__)

    def forward(self, x):
        if is_strict_tiling():
            self.output_shape(x.shape[1:])
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__}: input shape must be (H, W, C), "
                             f"got {tuple(input_shape)}")
        h, w, c = input_shape
        wshape = (*self.kernel_size, self.in_channels // self.groups, self.out_channels)
        _, _, _, (oh, ow) = conv2d_params(
            (1, h, w, c), wshape, None, self.stride, self.padding, self.dilation, self.groups,
            op=f"{type(self).__name__}({self.extra_repr()})", strict=is_strict_tiling())
        return (oh, ow, self.out_channels)

    def rf_params(self, input_shape):
        """Per spatial axis: (effective kernel, stride, leading padding) for the
        receptive-field recurrence."""
        pads = self._pads(tuple(input_shape[:2]))
        return tuple((effective_kernel(k, d), s, p[0]) for k, d, s, p in
                     zip(self.kernel_size, self.dilation, self.stride, pads))

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1, 1):
            s += f", stride={self.stride}"
        if self.padding not in (0, (0, 0)):
            s += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class DepthwiseSeparableConv2d(Sequential):
    """A depthwise conv (one KxK filter per input channel, ``groups=in_channels``)
    followed by a 1x1 pointwise conv that mixes channels -- seed 002's cheaper stand-in
    for a full conv.  Children are named ``depthwise`` and ``pointwise``.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation: as Conv2d
            (stride, padding and dilation apply to the depthwise step).
        depth_multiplier: filters per input channel in the depthwise step.
        bias: bias on both steps.

    Input shape:
        (N, H, W, C_in)
    Output shape:
        (N, OH, OW, C_out)

    Example:
        >>> layer = DepthwiseSeparableConv2d(32, 64, 3, padding=1)
        >>> layer.num_parameters()  # 3*3*32 + 32  +  32*64 + 64
        2432
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, depth_multiplier=1, bias=True, rng=None, dtype=None):
        rng = init.get_rng(rng)
        mid = in_channels * depth_multiplier
        super().__init__({
            "depthwise": Conv2d(in_channels, mid, kernel_size, stride, padding, dilation,
                                groups=in_channels, bias=bias, rng=rng, dtype=dtype),
            "pointwise": Conv2d(mid, out_channels, 1, bias=bias, rng=rng, dtype=dtype),
        })
