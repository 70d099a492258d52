"""Activation layers: ReLU, LeakyReLU, ELU, Sigmoid, Tanh, GELU, Softmax, LogSoftmax.

They hold no parameters and keep the input's shape.  ``inplace`` is accepted where
PyTorch has it, for ported model code, and ignored: convnet never overwrites inputs.
"""

from __future__ import annotations

import numbers

from .. import functional as F
from .module import Module

__all__ = ["ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "GELU", "Softmax", "LogSoftmax"]


def _real(value, name, layer):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{layer}: {name} must be a real number, got {value!r}")
    return float(value)


class _Elementwise(Module):
    def output_shape(self, input_shape):
        return tuple(input_shape)


class ReLU(_Elementwise):
    """Rectified linear unit, max(x, 0) elementwise; the gradient at 0 is 0.

    Input shape:
        any
    Output shape:
        the same

    Example:
        >>> ReLU().output_shape((28, 28, 6))
        (28, 28, 6)
    """

    def __init__(self, inplace=False):
        super().__init__()

    def forward(self, x):
        return F.relu(x)

    def is_plain_relu(self) -> bool:
        """A ReLU whose ``forward`` is not overridden (``Sequential`` may fuse it)."""
        return type(self).forward is ReLU.forward and "forward" not in self.__dict__


class LeakyReLU(_Elementwise):
    """x for x > 0, else ``negative_slope * x``.

    Args:
        negative_slope: slope for x <= 0. Default 0.01.

    Input shape:
        any
    Output shape:
        the same

    Example:
        >>> LeakyReLU(0.2).output_shape((16, 16, 64))
        (16, 16, 64)
    """

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = _real(negative_slope, "negative_slope", type(self).__name__)

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(_Elementwise):
    """Exponential linear unit: x for x > 0, else ``alpha * (exp(x) - 1)``.

    Args:
        alpha: saturation value for large negative x is -alpha. Default 1.0.

    Input shape:
        any
    Output shape:
        the same

    Example:
        >>> ELU(alpha=0.5).output_shape((10,))
        (10,)
    """

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = _real(alpha, "alpha", type(self).__name__)

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Sigmoid(_Elementwise):
    """Logistic function 1 / (1 + exp(-x)), overflow-free for large |x|.

    Input shape:
        any
    Output shape:
        the same

    Example:
        >>> Sigmoid().output_shape((1,))
        (1,)
    """

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(_Elementwise):
    """Hyperbolic tangent, elementwise.

    Input shape:
        any
    Output shape:
        the same

    Example:
        >>> Tanh().output_shape((120,))
        (120,)
    """

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return F.tanh(x)


class GELU(_Elementwise):
    """Gaussian error linear unit, x * Phi(x) with Phi the standard normal CDF.

    Args:
        approximate: ``'none'`` (exact, through erf) or ``'tanh'`` (PyTorch's
            0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))).

    Input shape:
        any
    Output shape:
        the same

    Example:
        >>> GELU(approximate="tanh").output_shape((197, 768))
        (197, 768)
    """

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"{type(self).__name__}: approximate must be 'none' or 'tanh', "
                             f"got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class _AxisActivation(_Elementwise):
    def __init__(self, axis=-1):
        super().__init__()
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"{type(self).__name__}: axis must be an int, got {axis!r}")
        self.axis = axis

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Softmax(_AxisActivation):
    """exp(x) / sum(exp(x)) over one axis (channels, -1, by default), computed stably:
    logits of +-1e4 give finite probabilities.

    Args:
        axis: the axis that sums to 1.  Axes count the batch axis too.

    Input shape:
        any
    Output shape:
        the same

    Example:
        >>> Softmax().output_shape((10,))
        (10,)
    """

    def forward(self, x):
        return F.softmax(x, self.axis)


class LogSoftmax(_AxisActivation):
    """log(softmax(x)) over one axis, as x - logsumexp(x): stable for any finite x.

    Args:
        axis: the normalised axis (-1 by default).

    Input shape:
        any
    Output shape:
        the same

    Example:
        >>> LogSoftmax().output_shape((10,))
        (10,)
    """

    def forward(self, x):
        return F.log_softmax(x, self.axis)
