"""1-D and 3-D layers: Conv1d (with causal padding), Conv3d, and their pools."""

from __future__ import annotations

from .. import functional as F
from ..functional.convnd import pool_hyper, pool_params
from ..ops.shape import effective_kernel
from .conv import _ConvNd
from .module import Module, is_strict_tiling

__all__ = ["Conv1d", "Conv3d", "MaxPool1d", "AvgPool1d", "GlobalAvgPool1d",
           "GlobalMaxPool1d", "MaxPool3d"]


class Conv1d(_ConvNd):
    """1-D convolution over (N, L, C) sequences (text, audio), with (K, C_in/groups, C_out)
    weights.

    Args:
        in_channels: C_in.
        out_channels: C_out, the number of filters.
        kernel_size: K (int or 1-tuple).
        stride: int. Default 1.
        padding: int, ``((lo, hi),)``, ``'valid'``, ``'same'`` or ``'causal'``: d*(K-1)
            zeros on the left only, so output t sees only inputs <= t (the seeds'
            causal CNN; with stride 1 the length is kept).
        dilation: int; 1 means none.
        groups: channel groups.
        bias: learn a bias per output channel.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
        rng: ``numpy.random.Generator`` for the initial weights (torch's default init).
        dtype: parameter dtype (default float32).

    Input shape:
        (N, L, C_in)
    Output shape:
        (N, OL, C_out), OL = floor((L + p_lo + p_hi - dilation*(K-1) - 1)/stride) + 1

    Example:
        >>> conv = Conv1d(16, 32, 3, dilation=4, padding="causal")
        >>> conv.output_shape((100, 16))
        (100, 32)
        >>> conv.weight.shape
        (3, 16, 32)
    """

    _ndim = 1
    _axes = "(L, C)"
    _fn = staticmethod(F.conv1d)


class Conv3d(_ConvNd):
    """3-D convolution over (N, D, H, W, C) volumes, with (KD, KH, KW, C_in/groups, C_out)
    weights.

    Args:
        in_channels, out_channels, groups, bias, padding_mode, rng, dtype: as Conv2d.
        kernel_size: int or (KD, KH, KW).
        stride, dilation: int or triple.
        padding: int, triple, three (lo, hi) pairs, ``'valid'`` or ``'same'``.

    Input shape:
        (N, D, H, W, C_in)
    Output shape:
        (N, OD, OH, OW, C_out), each O = floor((n + p_lo + p_hi - d*(k-1) - 1)/s) + 1

    Example:
        >>> conv = Conv3d(1, 8, 3, stride=2, padding=1)
        >>> conv.output_shape((16, 32, 32, 1))
        (8, 16, 16, 8)
    """

    _ndim = 3
    _axes = "(D, H, W, C)"
    _fn = staticmethod(F.conv3d)


class _PoolNd(Module):
    _ndim = 1
    _axes = "(L, C)"

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.ceil_mode = bool(ceil_mode)
        self.kernel_size, self.stride, pads, self.dilation = pool_hyper(
            kernel_size, stride, padding, dilation, self._ndim, type(self).__name__)
        self.padding = tuple(lo for lo, _ in pads)

    def output_shape(self, input_shape):
        name = type(self).__name__
        if len(input_shape) != self._ndim + 1:
            raise ValueError(f"{name}: input shape must be {self._axes}, "
                             f"got {tuple(input_shape)}")
        *_, out = pool_params(tuple(input_shape[:-1]), self.kernel_size, self.stride,
                              self.padding, self.dilation, self.ceil_mode, self._ndim,
                              f"{name}({self.extra_repr()})", strict=is_strict_tiling())
        return (*out, input_shape[-1])

    def rf_params(self, input_shape):
        """Per spatial axis: (effective kernel, stride, leading padding)."""
        return tuple((effective_kernel(k, d), s, p) for k, d, s, p in
                     zip(self.kernel_size, self.dilation, self.stride, self.padding))

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}"
        if any(self.padding):
            s += f", padding={self.padding}"
        if any(d != 1 for d in self.dilation):
            s += f", dilation={self.dilation}"
        if self.ceil_mode:
            s += ", ceil_mode=True"
        return s


class MaxPool1d(_PoolNd):
    """1-D max pooling over (N, L, C), per channel (the 2-D op on an (N, 1, L, C) view).

    Args:
        kernel_size: window length.
        stride: default ``kernel_size``.
        padding: -inf padding on both ends, at most half the kernel.
        dilation: spacing of the window taps.
        ceil_mode: round the output length up (torch's rule).

    Input shape:
        (N, L, C)
    Output shape:
        (N, OL, C), OL = floor((L + 2p - d*(k-1) - 1)/stride) + 1

    Example:
        >>> MaxPool1d(2).output_shape((9, 4))
        (4, 4)
    """

    def forward(self, x):
        if is_strict_tiling():
            self.output_shape(x.shape[1:])
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode)


class AvgPool1d(_PoolNd):
    """1-D average pooling over (N, L, C), per channel (the 2-D op on an (N, 1, L, C) view).

    Args:
        kernel_size: window length.
        stride: default ``kernel_size``.
        padding: zero padding on both ends, at most half the kernel.
        ceil_mode: round the output length up (torch's rule).
        count_include_pad: divide by the full kernel size (True) or by the number of
            real inputs in the window (False).

    Input shape:
        (N, L, C)
    Output shape:
        (N, OL, C), OL = floor((L + 2p - k)/stride) + 1

    Example:
        >>> AvgPool1d(3, stride=2, padding=1).output_shape((10, 8))
        (5, 8)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        if is_strict_tiling():
            self.output_shape(x.shape[1:])
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class MaxPool3d(_PoolNd):
    """3-D max pooling over (N, D, H, W, C), per channel; ties go to the first maximum in
    (d, h, w) scan order, as in torch.

    Args:
        kernel_size: int or (KD, KH, KW).
        stride: default ``kernel_size``.
        padding: -inf padding, at most half the kernel.
        dilation: spacing of the window taps.
        ceil_mode: round the output size up (torch's rule).

    Input shape:
        (N, D, H, W, C)
    Output shape:
        (N, OD, OH, OW, C), each O = floor((n + 2p - d*(k-1) - 1)/s) + 1

    Example:
        >>> MaxPool3d(2).output_shape((8, 16, 16, 4))
        (4, 8, 8, 4)
    """

    _ndim = 3
    _axes = "(D, H, W, C)"

    def forward(self, x):
        if is_strict_tiling():
            self.output_shape(x.shape[1:])
        return F.max_pool3d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode)


class _GlobalPool1d(Module):
    _reduce = "mean"

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return F.global_max_pool1d(x) if self._reduce == "max" else F.global_avg_pool1d(x)

    def output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"{type(self).__name__}: input shape must be (L, C), "
                             f"got {tuple(input_shape)}")
        return (input_shape[1],)

    def rf_params(self, input_shape):
        """The window is the whole sequence."""
        return ((input_shape[0], 1, 0),)


class GlobalAvgPool1d(_GlobalPool1d):
    """Average over the whole length, per channel (Keras's GlobalAveragePooling1D).

    Input shape:
        (N, L, C)
    Output shape:
        (N, C)

    Example:
        >>> GlobalAvgPool1d().output_shape((50, 64))
        (64,)
    """


class GlobalMaxPool1d(_GlobalPool1d):
    """Maximum over the whole length, per channel (Keras's GlobalMaxPooling1D).

    Input shape:
        (N, L, C)
    Output shape:
        (N, C)

    Example:
        >>> GlobalMaxPool1d().output_shape((50, 64))
        (64,)
    """

    _reduce = "max"
