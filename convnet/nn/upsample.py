"""Up-sampling layers: Upsample, Unpool2d (copy-unpooling) and MaxUnpool2d."""

from __future__ import annotations

from .. import functional as F
from ..functional.upsample import check_mode, interpolate_size, max_unpool_output_size
from ..ops.shape import as_tuple, check_positive
from .module import Module

__all__ = ["Upsample", "Unpool2d", "MaxUnpool2d"]


def _num(v: float):
    return int(v) if float(v).is_integer() else float(v)


class Upsample(Module):
    """Resize the spatial axes by nearest or (bi/tri)linear interpolation, as torch's
    ``nn.Upsample``.  Followed by a conv it is the seeds' "upscale-then-convolve"
    alternative to a transposed conv, free of checkerboard artefacts.

    Args:
        size: output spatial size (int or one per axis); or
        scale_factor: a number or one per axis; the output is floor(n * scale_factor).
        mode: ``'nearest'``, ``'linear'`` (1-D), ``'bilinear'`` (2-D) or
            ``'trilinear'`` (3-D).
        align_corners: linear modes only; see ``F.interpolate``.

    Input shape:
        (N, L, C), (N, H, W, C) or (N, D, H, W, C)
    Output shape:
        (N, *size, C) or (N, *floor(n * scale_factor), C)

    Example:
        >>> Upsample(scale_factor=2, mode="bilinear").output_shape((7, 9, 3))
        (14, 18, 3)
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=False):
        super().__init__()
        name = type(self).__name__
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{name}: give exactly one of size and scale_factor, got "
                             f"size={size!r} and scale_factor={scale_factor!r}")
        nd = {"linear": 1, "bilinear": 2, "trilinear": 3}.get(mode, 2)
        check_mode(mode, align_corners, nd + 2, name)
        self.size, self.scale_factor = size, scale_factor
        self.mode, self.align_corners = mode, bool(align_corners)

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def output_shape(self, input_shape):
        name = type(self).__name__
        check_mode(self.mode, self.align_corners, len(input_shape) + 1, name)
        out, _ = interpolate_size(tuple(input_shape[:-1]), self.size, self.scale_factor, name)
        return (*out, input_shape[-1])

    def rf_params(self, input_shape):
        """Per spatial axis, on the input grid: (kernel, stride, leading padding).

        The output grid is finer, so the stride is the source step per output pixel
        (a fraction when up-sampling): nearest reads 1 pixel, linear reads 2.
        """
        out_size = self.output_shape(input_shape)[:-1]
        params = []
        for n, m in zip(input_shape[:-1], out_size):
            if self.mode == "nearest":
                params.append((1, _num(n / m), 0))
            elif self.align_corners:
                params.append((2, _num((n - 1) / (m - 1) if m > 1 else 0), _num(0.5)))
            else:
                step = n / m          # centre of output 0 sits at step/2 - 1/2
                params.append((2, _num(step), _num(1 - step / 2)))
        return tuple(params)

    def extra_repr(self) -> str:
        what = f"size={self.size!r}" if self.size is not None else \
            f"scale_factor={self.scale_factor!r}"
        s = f"{what}, mode={self.mode!r}"
        if self.align_corners:
            s += ", align_corners=True"
        return s


class Unpool2d(Module):
    """Copy-unpooling (seed 002): every entry is copied into a size x size block,

        [x] -> [[x, x],
                [x, x]]      for size 2.

    Args:
        size: int or (kh, kw) block size.

    Input shape:
        (N, H, W, C)
    Output shape:
        (N, H*kh, W*kw, C)

    Example:
        >>> Unpool2d(2).output_shape((3, 5, 8))
        (6, 10, 8)
    """

    def __init__(self, size=2):
        super().__init__()
        name = type(self).__name__
        self.size = as_tuple(size, 2, "size", name)
        check_positive(self.size, "size", name)

    def forward(self, x):
        return F.unpool2d(x, self.size)

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__}: input shape must be (H, W, C), "
                             f"got {tuple(input_shape)}")
        h, w, c = input_shape
        return (h * self.size[0], w * self.size[1], c)

    def rf_params(self, input_shape):
        """Each output pixel copies one input pixel; the grid is ``size`` times finer."""
        return tuple((1, _num(1 / k), 0) for k in self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class MaxUnpool2d(Module):
    """Inverse of ``MaxPool2d(return_indices=True)``: each value goes back to the position
    of its window's maximum, and every other position is zero.

    Args:
        kernel_size: the pool's kernel.
        stride: the pool's stride (default ``kernel_size``).
        padding: the pool's padding.

    ``forward(x, indices, output_size=None)``: ``indices`` are the int64 (N, H, W, C)
    flat positions h * OW + w that the pool returned; ``output_size`` (OH, OW) picks
    among the input sizes the pool maps to H (default (H - 1)*stride - 2*padding + k).

    Input shape:
        (N, H, W, C)
    Output shape:
        (N, OH, OW, C)

    Example:
        >>> MaxUnpool2d(2).output_shape((4, 4, 16))
        (8, 8, 16)
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = as_tuple(kernel_size, 2, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else as_tuple(stride, 2, "stride",
                                                                       name)
        self.padding = as_tuple(padding, 2, "padding", name)
        check_positive(self.kernel_size, "kernel_size", name)
        check_positive(self.stride, "stride", name)

    def forward(self, x, indices, output_size=None):
        return F.max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding,
                              output_size)

    def output_shape(self, input_shape):
        name = type(self).__name__
        if len(input_shape) != 3:
            raise ValueError(f"{name}: input shape must be (H, W, C), got {tuple(input_shape)}")
        out = max_unpool_output_size(input_shape[:2], self.kernel_size, self.stride,
                                     self.padding, op=name)
        return (*out, input_shape[2])

    def rf_params(self, input_shape):
        """Per spatial axis, on the input grid: as the transpose of the pool's window."""
        return tuple((_num((k - 1) / s + 1), _num(1 / s), _num((k - 1 - p) / s))
                     for k, s, p in zip(self.kernel_size, self.stride, self.padding))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
