"""Locally connected layer: LocallyConnected2d (unshared weights)."""

from __future__ import annotations

import math

from .. import functional as F
from ..functional.local import local2d_params
from ..ops.shape import as_tuple, check_positive, resolve_padding
from . import init
from ._checks import check_int
from .module import Module, Parameter, is_strict_tiling

__all__ = ["LocallyConnected2d"]


class LocallyConnected2d(Module):
    """A convolution whose filters are NOT shared: every output position has its own
    KH x KW x C_in x C_out filter bank and its own bias (seed 002's "locally connected
    layer", for inputs with a fixed, centred structure such as aligned faces).

    The input size is fixed at construction, since it sets the number of positions.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: int or (KH, KW).
        stride: int or pair. Default 1.
        padding: int, pair, ((top, bottom), (left, right)), ``'valid'`` or ``'same'``.
        input_size: (H, W) of the inputs this layer accepts (required).
        bias: learn a bias per output position and channel.
        rng: ``numpy.random.Generator`` for the initial weights: U(+-1/sqrt(fan_in)) with
            fan_in = KH*KW*C_in, torch's default for a conv of the same filter size.
        dtype: parameter dtype (default float32).

    Weight shape (OH, OW, KH, KW, C_in, C_out); bias shape (OH, OW, C_out).

    Input shape:
        (N, H, W, C_in) with (H, W) == input_size
    Output shape:
        (N, OH, OW, C_out), OH = floor((H + p_t + p_b - KH)/stride) + 1

    Example:
        >>> layer = LocallyConnected2d(3, 8, 3, input_size=(6, 6))
        >>> layer.output_shape((6, 6, 3))
        (4, 4, 8)
        >>> layer.weight.shape
        (4, 4, 3, 3, 3, 8)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 input_size=None, bias=True, rng=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        check_int(in_channels, "in_channels", name)
        check_int(out_channels, "out_channels", name)
        if input_size is None:
            raise ValueError(f"{name}: input_size=(H, W) is required (it sets the number of "
                             f"output positions), got None")
        self.input_size = as_tuple(input_size, 2, "input_size", name)
        check_positive(self.input_size, "input_size", name)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, _, out_hw = local2d_params(
            self.input_size, kernel_size, stride, padding, name)
        self.padding = padding
        self.out_size = out_hw
        kh, kw = self.kernel_size
        shape = (*out_hw, kh, kw, in_channels, out_channels)
        bound = 1.0 / math.sqrt(kh * kw * in_channels)
        rng = init.get_rng(rng)
        self.weight = Parameter(init.uniform(shape, -bound, bound, rng=rng, dtype=dtype))
        self.bias = Parameter(init.uniform((*out_hw, out_channels), -bound, bound, rng=rng,
                                           dtype=dtype)) if bias else None

    def _check_input(self, input_shape):
        name = type(self).__name__
        if len(input_shape) != 3:
            raise ValueError(f"{name}: input shape must be (H, W, C), got {tuple(input_shape)}")
        h, w, c = input_shape
        if (h, w) != self.input_size:
            raise ValueError(f"{name}: built for input size {self.input_size}, got ({h}, {w})")
        if c != self.in_channels:
            raise ValueError(f"{name}: expected {self.in_channels} input channels, got {c}")
        if is_strict_tiling():
            local2d_params(self.input_size, self.kernel_size, self.stride, self.padding,
                           f"{name}({self.extra_repr()})", strict=True)

    def forward(self, x):
        self._check_input(x.shape[1:])
        return F.local2d(x, self.weight, self.bias, self.stride, self.padding)

    def output_shape(self, input_shape):
        self._check_input(input_shape)
        return (*self.out_size, self.out_channels)

    def rf_params(self, input_shape):
        """Per spatial axis: (kernel, stride, leading padding), as a conv."""
        pads = resolve_padding(self.padding, self.input_size, self.kernel_size, self.stride,
                               (1, 1), type(self).__name__)
        return tuple((k, s, p[0]) for k, s, p in zip(self.kernel_size, self.stride, pads))

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"input_size={self.input_size}")
        if self.stride != (1, 1):
            s += f", stride={self.stride}"
        if self.padding not in (0, (0, 0)):
            s += f", padding={self.padding!r}"
        if self.bias is None:
            s += ", bias=False"
        return s
