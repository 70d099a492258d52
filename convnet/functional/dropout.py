"""Dropout as Tensor ops: thin Functions over ``convnet.ops.dropout``.

``dropout`` drops single units; ``dropout1d/2d/3d`` drop whole channels of an
(N, L, C), (N, H, W, C) or (N, D, H, W, C) map (one draw per sample and channel).
The mask comes from the ``numpy.random.Generator`` passed as ``rng``; ``rng=None``
uses convnet's default generator (reseeded by ``convnet.manual_seed``).
"""

from __future__ import annotations

import numpy as np

from ..ops import dropout as dropout_ops
from ..rng import default_rng
from ..tensor import Function, Tensor
from ._checks import float_input

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d"]


class DropoutFn(Function):
    def forward(self, x, p, rng, mask_shape):
        out, self.cache = dropout_ops.dropout_forward(x, p, rng, mask_shape)
        return out

    def backward(self, dout):
        return dropout_ops.dropout_backward(dout, self.cache)


def _check_p(p, op):
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
        raise TypeError(f"{op}: p must be a number in [0, 1], got {p!r}")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{op}: p must be in [0, 1], got {p}")
    return float(p)


def _rng(rng, op):
    if rng is None:
        return default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: rng must be a numpy.random.Generator or None, "
                        f"got {type(rng).__name__}")
    return rng


def _dropout(x, p, training, rng, op, ndim=None, layout=""):
    p = _check_p(p, op)
    x = float_input(x, op, ndim, layout=layout)
    rng = _rng(rng, op)
    if not training or p == 0.0:
        return x
    mask_shape = None if ndim is None else (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    return DropoutFn.apply(x, p=p, rng=rng, mask_shape=mask_shape)


def dropout(x, p: float = 0.5, training: bool = True, rng=None) -> Tensor:
    """Inverted dropout: zero each element with probability ``p`` and scale the rest by
    1/(1-p) in training; the identity when ``training`` is False.

    Args:
        x: any float tensor.
        p: drop probability in [0, 1] (p = 1 zeroes everything).
        training: apply dropout (True) or pass ``x`` through (False).
        rng: ``numpy.random.Generator`` for the mask.
    """
    return _dropout(x, p, training, rng, "dropout")


def dropout1d(x, p: float = 0.5, training: bool = True, rng=None) -> Tensor:
    """Channel dropout on (N, L, C): each (sample, channel) is kept or zeroed whole."""
    return _dropout(x, p, training, rng, "dropout1d", 3, "(N, L, C)")


def dropout2d(x, p: float = 0.5, training: bool = True, rng=None) -> Tensor:
    """Channel dropout on (N, H, W, C): each (sample, channel) map is kept or zeroed whole."""
    return _dropout(x, p, training, rng, "dropout2d", 4, "(N, H, W, C)")


def dropout3d(x, p: float = 0.5, training: bool = True, rng=None) -> Tensor:
    """Channel dropout on (N, D, H, W, C)."""
    return _dropout(x, p, training, rng, "dropout3d", 5, "(N, D, H, W, C)")
