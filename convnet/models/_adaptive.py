"""AdaptiveAvgPool2d: torchvision's ``avgpool`` in VGG and AlexNet, on NHWC data.

Output cell i along an axis of size n averages the inputs [floor(i*n/o), ceil((i+1)*n/o)),
PyTorch's rule.  Those windows form an (o, n) averaging matrix P per axis, so the whole
op is two contractions, out = P_h . x . P_w^T, and its gradient is the transposed pair:
no loop over output cells.  When o divides n this is AvgPool2d(n/o); when o = n it is
the identity; when o > n cells repeat inputs (VGG's 7x7 pool on a 1x1 map copies it).
"""

from __future__ import annotations

import numpy as np

from ..functional._checks import float_input
from ..nn.module import Module
from ..tensor import Function

__all__ = ["AdaptiveAvgPool2d", "adaptive_avg_pool2d", "adaptive_windows"]


def adaptive_windows(n: int, o: int) -> list[tuple[int, int]]:
    """PyTorch's windows: cell i covers [floor(i*n/o), ceil((i+1)*n/o))."""
    return [((i * n) // o, -(-((i + 1) * n) // o)) for i in range(o)]


def _pool_matrix(n: int, o: int, dtype) -> np.ndarray:
    mat = np.zeros((o, n), dtype=dtype)  # (O, N)
    for i, (lo, hi) in enumerate(adaptive_windows(n, o)):
        mat[i, lo:hi] = 1.0 / (hi - lo)
    return mat


class AdaptiveAvgPool2dFn(Function):
    def forward(self, x, output_size):
        n, h, w, c = x.shape
        oh, ow = output_size
        self.ph = _pool_matrix(h, oh, x.dtype)  # (OH, H)
        self.pw = _pool_matrix(w, ow, x.dtype)  # (OW, W)
        # nhwc,ih,jw -> nijc
        t = np.matmul(self.ph, x.reshape(n, h, w * c))  # (N, OH, W*C)
        t = t.reshape(n, oh, w, c)
        out = np.einsum("jw,niwc->nijc", self.pw, t, optimize=True)  # (N, OH, OW, C)
        return np.ascontiguousarray(out)

    def backward(self, dout):
        n, oh, ow, c = dout.shape
        w = self.pw.shape[1]
        # nijc,ih,jw -> nhwc
        t = np.einsum("jw,nijc->niwc", self.pw, dout, optimize=True)  # (N, OH, W, C)
        dx = np.matmul(self.ph.T, t.reshape(n, oh, w * c))  # (N, H, W*C)
        return dx.reshape(n, self.ph.shape[1], w, c)


def _output_size(output_size, input_hw=None):
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool):
        size = (int(output_size),) * 2
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        size = tuple(output_size)
    else:
        raise TypeError(f"AdaptiveAvgPool2d: output_size must be an int or a pair, "
                        f"got {output_size!r}")
    if input_hw is not None:
        size = tuple(n if o is None else o for o, n in zip(size, input_hw))
    for o in size:
        if o is not None and (isinstance(o, bool) or not isinstance(o, (int, np.integer))
                              or o < 1):
            raise ValueError(f"AdaptiveAvgPool2d: output_size entries must be ints >= 1 or "
                             f"None, got {output_size!r}")
    return tuple(None if o is None else int(o) for o in size)


def adaptive_avg_pool2d(x, output_size):
    """(N, H, W, C) -> (N, OH, OW, C); ``None`` in ``output_size`` keeps that axis."""
    x = float_input(x, "adaptive_avg_pool2d", 4, layout="(N, H, W, C)")
    size = _output_size(output_size, x.shape[1:3])
    return AdaptiveAvgPool2dFn.apply(x, output_size=size)


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size, whatever the input size (PyTorch's rule).

    Args:
        output_size: int or (OH, OW); ``None`` keeps that input axis.

    Input shape:
        (N, H, W, C)
    Output shape:
        (N, OH, OW, C)

    Example:
        >>> AdaptiveAvgPool2d((7, 7)).output_shape((14, 14, 512))
        (7, 7, 512)
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = _output_size(output_size)

    def forward(self, x):
        return adaptive_avg_pool2d(x, self.output_size)

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"AdaptiveAvgPool2d: input shape must be (H, W, C), "
                             f"got {tuple(input_shape)}")
        oh, ow = _output_size(self.output_size, input_shape[:2])
        return (oh, ow, input_shape[2])

    def rf_params(self, input_shape):
        """(window, stride, 0) per axis: exact when o divides n, otherwise the widest
        window and the mean stride n/o."""
        out = []
        for n, o in zip(input_shape[:2], _output_size(self.output_size, input_shape[:2])):
            if n % o == 0:
                out.append((n // o, n // o, 0))
            else:
                widest = max(hi - lo for lo, hi in adaptive_windows(n, o))
                out.append((widest, n / o, 0))
        return tuple(out)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
