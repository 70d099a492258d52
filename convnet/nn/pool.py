"""Pooling layers: MaxPool2d, AvgPool2d, GlobalMaxPool2d and GlobalAvgPool2d (NHWC)."""

from __future__ import annotations

from .. import functional as F
from ..functional.pool import pool2d_params
from ..ops.shape import as_tuple, check_positive, effective_kernel, resolve_padding
from .module import Module, is_strict_tiling

__all__ = ["MaxPool2d", "AvgPool2d", "GlobalMaxPool2d", "GlobalAvgPool2d"]


def _check_bool(value, name, layer):
    if not isinstance(value, bool):
        raise TypeError(f"{layer}: {name} must be True or False, got {value!r}")


def _check_shape(input_shape, layer):
    if len(input_shape) != 3:
        raise ValueError(f"{layer}: input shape must be (H, W, C), got {tuple(input_shape)}")


class _Pool2d(Module):
    """Hyperparameter handling shared by MaxPool2d and AvgPool2d."""

    def _setup(self, kernel_size, stride, padding, dilation, ceil_mode):
        name = type(self).__name__
        self.kernel_size = as_tuple(kernel_size, 2, "kernel_size", name)
        check_positive(self.kernel_size, "kernel_size", name)
        self.stride = (self.kernel_size if stride is None
                       else as_tuple(stride, 2, "stride", name))
        check_positive(self.stride, "stride", name)
        self.dilation = as_tuple(dilation, 2, "dilation", name)
        check_positive(self.dilation, "dilation", name)
        _check_bool(ceil_mode, "ceil_mode", name)
        # Check the padding's spelling and size now, on a dummy input, so errors come early.
        pads = resolve_padding(padding, (1 << 20,) * 2, self.kernel_size, self.stride,
                               self.dilation, name)
        for axis, ((lo, hi), k, d) in enumerate(zip(pads, self.kernel_size, self.dilation)):
            if max(lo, hi) > effective_kernel(k, d) // 2:
                raise ValueError(f"{name}: padding must be at most half the (effective) kernel "
                                 f"size, i.e. <= {effective_kernel(k, d) // 2}, got {(lo, hi)} "
                                 f"on spatial axis {axis}")
        self.padding, self.ceil_mode = padding, ceil_mode

    def _params(self, input_shape):
        name = type(self).__name__
        _check_shape(input_shape, name)
        h, w, c = input_shape
        return pool2d_params((1, h, w, c), self.kernel_size, self.stride, self.padding,
                             self.dilation, self.ceil_mode, f"{name}({self.extra_repr()})",
                             strict=is_strict_tiling())

    def output_shape(self, input_shape):
        *_, (oh, ow) = self._params(input_shape)
        return (oh, ow, input_shape[2])

    def rf_params(self, input_shape):
        """Per spatial axis: (effective kernel, stride, leading padding) for the
        receptive-field recurrence."""
        _, stride, pads, dilation, _ = self._params(input_shape)
        return tuple((effective_kernel(k, d), s, p[0]) for k, d, s, p in
                     zip(self.kernel_size, dilation, stride, pads))

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in (0, (0, 0)):
            s += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.ceil_mode:
            s += ", ceil_mode=True"
        return s


class MaxPool2d(_Pool2d):
    """2-D max pooling over NHWC input, each channel on its own (seed 000).

    Args:
        kernel_size: int or (KH, KW), the window f.
        stride: int or pair; ``None`` (default) means ``kernel_size``.
        padding: int, pair, ((top, bottom), (left, right)), ``'valid'`` or ``'same'``;
            padded cells hold -inf.  At most half the effective kernel.
        dilation: int or pair; 1 means none.
        return_indices: ``forward`` also returns int64 (N, OH, OW, C) argmax indices,
            PyTorch's flat h * W + w positions in the unpadded input (for MaxUnpool2d).
        ceil_mode: round the output size up, PyTorch's way.

    Ties send the gradient to the first maximum in row-major window order, the input
    PyTorch's CPU kernel picks.  The layer has no parameters.

    Input shape:
        (N, H, W, C)
    Output shape:
        (N, OH, OW, C), OH = floor((H + p_t + p_b - dilation*(KH-1) - 1)/stride) + 1

    Example:
        >>> pool = MaxPool2d(2)
        >>> pool.output_shape((28, 28, 6))
        (14, 14, 6)
        >>> MaxPool2d(3, stride=2, ceil_mode=True).output_shape((112, 112, 64))
        (56, 56, 64)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self._setup(kernel_size, stride, padding, dilation, ceil_mode)
        _check_bool(return_indices, "return_indices", type(self).__name__)
        self.return_indices = return_indices

    def forward(self, x):
        if is_strict_tiling():
            self.output_shape(x.shape[1:])
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def plain_tiles(self):
        """(KH, KW) when this layer pools non-overlapping windows with nothing else to it
        (stride = kernel, no padding, dilation 1, floor mode, no indices, ``forward`` not
        overridden) -- what ``Sequential`` may fuse into a preceding conv + ReLU -- else
        None."""
        plain = (self.stride == self.kernel_size and self.dilation == (1, 1)
                 and self.padding in (0, (0, 0), ((0, 0), (0, 0)), "valid")
                 and not self.ceil_mode and not self.return_indices
                 and type(self).forward is MaxPool2d.forward and "forward" not in self.__dict__)
        return self.kernel_size if plain else None


class AvgPool2d(_Pool2d):
    """2-D average pooling over NHWC input, each channel on its own.

    Args:
        kernel_size: int or (KH, KW).
        stride: int or pair; ``None`` (default) means ``kernel_size``.
        padding: int, pair, ((top, bottom), (left, right)), ``'valid'`` or ``'same'``
            (zeros; at most half the kernel).
        count_include_pad: divide by the whole window, padding included (PyTorch's
            default), or only by the real inputs it covers.
        ceil_mode: round the output size up, PyTorch's way; the extension is never
            counted in the divisor.

    Input shape:
        (N, H, W, C)
    Output shape:
        (N, OH, OW, C), OH = floor((H + p_t + p_b - KH)/stride) + 1

    Example:
        >>> AvgPool2d(2).output_shape((32, 32, 16))
        (16, 16, 16)
        >>> AvgPool2d(3, stride=1, padding=1, count_include_pad=False).output_shape((7, 7, 8))
        (7, 7, 8)
    """

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True,
                 ceil_mode=False):
        super().__init__()
        self._setup(kernel_size, stride, padding, 1, ceil_mode)
        _check_bool(count_include_pad, "count_include_pad", type(self).__name__)
        self.count_include_pad = count_include_pad

    def forward(self, x):
        if is_strict_tiling():
            self.output_shape(x.shape[1:])
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                            self.count_include_pad, self.ceil_mode)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if not self.count_include_pad:
            s += ", count_include_pad=False"
        return s


class _GlobalPool2d(Module):
    def output_shape(self, input_shape):
        _check_shape(input_shape, type(self).__name__)
        h, w, c = input_shape
        if h <= 0 or w <= 0:
            raise ValueError(f"{type(self).__name__}: input shape must have H, W >= 1, got "
                             f"{tuple(input_shape)}")
        return (c,)

    def rf_params(self, input_shape):
        """One window spanning the whole plane: (H, H, 0) and (W, W, 0)."""
        h, w, _ = input_shape
        return ((h, h, 0), (w, w, 0))


class GlobalMaxPool2d(_GlobalPool2d):
    """Max over the whole spatial plane, per channel; ties as in MaxPool2d.

    Input shape:
        (N, H, W, C)
    Output shape:
        (N, C)

    Example:
        >>> GlobalMaxPool2d().output_shape((7, 7, 512))
        (512,)
    """

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return F.global_max_pool2d(x)


class GlobalAvgPool2d(_GlobalPool2d):
    """Mean over the whole spatial plane, per channel (the head of ResNet or
    Network-in-Network in place of flatten + large fully connected layers).

    Input shape:
        (N, H, W, C)
    Output shape:
        (N, C)

    Example:
        >>> GlobalAvgPool2d().output_shape((7, 7, 2048))
        (2048,)
    """

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return F.global_avg_pool2d(x)
