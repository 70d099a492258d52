"""Dropout layers: Dropout (units) and Dropout1d/2d/3d (whole channels, channels last)."""

from __future__ import annotations

from .. import functional as F
from . import init
from .module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d"]


class Dropout(Module):
    """Inverted dropout: in training each element is zeroed with probability ``p`` and
    the survivors are scaled by 1/(1-p), so evaluation (``model.eval()``) is the identity.

    Args:
        p: drop probability in [0, 1]. Default 0.5.
        rng: ``numpy.random.Generator`` (or int seed) for the masks; None draws from
            convnet's default generator at call time (reseeded by ``manual_seed``).

    Input shape:
        any
    Output shape:
        same as the input

    Example:
        >>> drop = Dropout(0.25, rng=0)
        >>> drop.output_shape((128,))
        (128,)
    """

    _fn = staticmethod(F.dropout)
    _layout = None                      # per-sample layout the channel variants require

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be a number in [0, 1], got {p!r}")
        self.p = float(p)
        self.rng = None if rng is None else init.get_rng(rng)

    def forward(self, x):
        return type(self)._fn(x, self.p, self.training, init.get_rng(self.rng))

    def output_shape(self, input_shape):
        lay = self._layout
        if lay is not None and len(input_shape) != lay.count(",") + 1:
            raise ValueError(f"{type(self).__name__}: input shape must be {lay}, "
                             f"got {tuple(input_shape)}")
        return tuple(input_shape)

    def rf_params(self, input_shape):
        """Per spatial axis: (1, 1, 0) -- dropout is pointwise."""
        return tuple((1, 1, 0) for _ in tuple(input_shape)[:-1])

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Dropout1d(Dropout):
    """Channel dropout on sequences: each (sample, channel) of an (N, L, C) input is
    zeroed whole with probability ``p``; survivors are scaled by 1/(1-p).

    Args:
        p, rng: as in :class:`Dropout`.

    Input shape:
        (N, L, C)
    Output shape:
        (N, L, C)

    Example:
        >>> Dropout1d(0.1).output_shape((100, 32))
        (100, 32)
    """

    _fn = staticmethod(F.dropout1d)
    _layout = "(L, C)"


class Dropout2d(Dropout):
    """Channel dropout on NHWC maps: each (sample, channel) feature map is zeroed whole
    with probability ``p`` (neighbouring pixels are correlated, so dropping single
    pixels regularizes little); survivors are scaled by 1/(1-p).

    Args:
        p, rng: as in :class:`Dropout`.

    Input shape:
        (N, H, W, C)
    Output shape:
        (N, H, W, C)

    Example:
        >>> Dropout2d(0.2).output_shape((14, 14, 64))
        (14, 14, 64)
    """

    _fn = staticmethod(F.dropout2d)
    _layout = "(H, W, C)"


class Dropout3d(Dropout):
    """Channel dropout on (N, D, H, W, C) volumes.

    Args:
        p, rng: as in :class:`Dropout`.

    Input shape:
        (N, D, H, W, C)
    Output shape:
        (N, D, H, W, C)

    Example:
        >>> Dropout3d(0.2).output_shape((8, 14, 14, 16))
        (8, 14, 14, 16)
    """

    _fn = staticmethod(F.dropout3d)
    _layout = "(D, H, W, C)"
