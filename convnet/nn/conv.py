"""Convolution layers: Conv2d and DepthwiseSeparableConv2d."""

from __future__ import annotations

from .. import functional as F
from ..functional.conv import convnd_params
from ..ops.pad import check_pads
from ..ops.shape import as_tuple, check_positive, effective_kernel, resolve_padding
from . import init
from ._checks import check_channels
from .module import Module, Parameter, Sequential, is_strict_tiling

__all__ = ["Conv2d", "DepthwiseSeparableConv2d"]


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """Shared body of Conv1d, Conv2d and Conv3d (channels-last data, HWIO-style weights).

    Subclasses set ``_ndim`` (spatial axes), ``_fn`` (the functional op) and ``_axes``
    (the per-sample layout, for messages).
    """

    _ndim = 2
    _axes = "(H, W, C)"

    @staticmethod
    def _fn(x, weight, bias, stride, padding, dilation, groups):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", rng=None, dtype=None):
        super().__init__()
        name, nd = type(self).__name__, self._ndim
        check_channels(name, in_channels, out_channels, groups)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {PADDING_MODES}, "
                             f"got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = as_tuple(kernel_size, nd, "kernel_size", name)
        self.stride = as_tuple(stride, nd, "stride", name)
        self.dilation = as_tuple(dilation, nd, "dilation", name)
        check_positive(self.kernel_size, "kernel_size", name)
        check_positive(self.stride, "stride", name)
        check_positive(self.dilation, "dilation", name)
        # Validate the padding spelling now (with a dummy size) so errors come early.
        resolve_padding(padding, (1 << 20,) * nd, self.kernel_size, self.stride,
                        self.dilation, name)
        self.padding = padding
        self.padding_mode = padding_mode
        shape = (*self.kernel_size, in_channels // groups, out_channels)
        rng = init.get_rng(rng)
        self.weight = Parameter(init.torch_default_weight(shape, rng=rng, dtype=dtype))
        fan_in = init.calculate_fan(shape)[0]
        self.bias = Parameter(init.torch_default_bias((out_channels,), fan_in, rng=rng,
                                                      dtype=dtype)) if bias else None

    def _pads(self, spatial):
        return resolve_padding(self.padding, tuple(spatial), self.kernel_size, self.stride,
                               self.dilation, type(self).__name__)

    def forward(self, x):
        if is_strict_tiling():
            self.output_shape(x.shape[1:])
        if self.padding_mode == "zeros":
            return self._fn(x, self.weight, self.bias, self.stride, self.padding,
                            self.dilation, self.groups)
        # torch's order: pad explicitly in the chosen mode, then convolve with no padding.
        x = F.pad(x, self._pads(x.shape[1:-1]), mode=self.padding_mode)
        return self._fn(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def output_shape(self, input_shape):
        name = type(self).__name__
        if len(input_shape) != self._ndim + 1:
            raise ValueError(f"{name}: input shape must be {self._axes}, "
                             f"got {tuple(input_shape)}")
        spatial, c = tuple(input_shape[:-1]), input_shape[-1]
        if self.padding_mode != "zeros":
            check_pads(spatial, self._pads(spatial), self.padding_mode, name)
        wshape = (*self.kernel_size, self.in_channels // self.groups, self.out_channels)
        _, _, _, out = convnd_params(
            (1, *spatial, c), wshape, None, self.stride, self.padding, self.dilation,
            self.groups, self._ndim, op=f"{name}({self.extra_repr()})",
            strict=is_strict_tiling())
        return (*out, self.out_channels)

    def rf_params(self, input_shape):
        """Per spatial axis: (effective kernel, stride, leading padding) for the
        receptive-field recurrence."""
        pads = self._pads(tuple(input_shape[:self._ndim]))
        return tuple((effective_kernel(k, d), s, p[0]) for k, d, s, p in
                     zip(self.kernel_size, self.dilation, self.stride, pads))

    def extra_repr(self) -> str:
        one = (1,) * self._ndim
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != one:
            s += f", stride={self.stride}"
        if self.padding not in (0, (0,) * self._ndim):
            s += f", padding={self.padding!r}"
        if self.dilation != one:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s


class Conv2d(_ConvNd):
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
        padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'`` or
            ``'circular'``: how the padding is filled (torch's modes; the input is
            padded with ``F.pad`` and then convolved without padding).
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

    def fuses_relu(self) -> bool:
        """Whether ``Sequential`` may run this layer and a plain ``ReLU`` after it as one
        fused op (``forward_relu``): zero padding, and ``forward`` not overridden."""
        return (self.padding_mode == "zeros" and type(self).forward is Conv2d.forward
                and "forward" not in self.__dict__)

    def forward_relu(self, x):
        """``relu(self(x))`` through ``F.conv2d_relu``."""
        if is_strict_tiling():
            self.output_shape(x.shape[1:])
        return F.conv2d_relu(x, self.weight, self.bias, self.stride, self.padding,
                             self.dilation, self.groups)

    def forward_relu_pool(self, x, pool):
        """``max_pool2d(relu(self(x)), pool)`` through ``F.conv2d_relu_max_pool2d``."""
        if is_strict_tiling():
            self.output_shape(x.shape[1:])
        return F.conv2d_relu_max_pool2d(x, self.weight, self.bias, self.stride, self.padding,
                                        self.dilation, self.groups, pool)


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
