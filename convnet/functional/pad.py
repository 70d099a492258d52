"""Padding as a Tensor op: a thin Function over ``convnet.ops.pad``."""

from __future__ import annotations

from ..ops import pad as pad_ops
from ..ops.shape import resolve_padding
from ..tensor import Function, Tensor
from ._checks import float_input

__all__ = ["pad"]


class PadFn(Function):
    def forward(self, x, pads, mode, value):
        out, self.cache = pad_ops.pad_forward(x, pads, mode, value)
        return out

    def backward(self, dout):
        return pad_ops.pad_backward(dout, self.cache)


def resolve_pads(pads, spatial, op: str = "pad") -> tuple:
    """Normalise ``pads`` (int, one int per axis, or one (lo, hi) pair per axis)."""
    if isinstance(pads, str):
        raise TypeError(f"{op}: pads must be an int, {len(spatial)} ints or {len(spatial)} "
                        f"(lo, hi) pairs, got the string {pads!r}")
    ones = (1,) * len(spatial)
    return resolve_padding(pads, spatial, ones, ones, ones, op)


def pad(x, pads, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the spatial axes of channels-last input; the batch and channel axes are untouched.

    Args:
        x: (N, L, C), (N, H, W, C) or (N, D, H, W, C).
        pads: an int (every side of every spatial axis), one int per spatial axis
            (both sides), or one (lo, hi) pair per spatial axis in axis order, e.g.
            ((top, bottom), (left, right)).  torch's flat tuple lists the LAST axis first:
            torch's (left, right, top, bottom) is ((top, bottom), (left, right)) here.
        mode: 'constant' (alias 'zeros'), 'reflect' (mirror without repeating the edge;
            pad < size), 'replicate' (repeat the edge) or 'circular' (wrap around;
            pad <= size).
        value: the fill value for 'constant'.

    Returns:
        (N, *(S + lo + hi), C).

    Example:
        >>> pad(np.arange(4.0).reshape(1, 4, 1), ((2, 1),), mode="reflect").shape
        (1, 7, 1)
    """
    op = "pad"
    x = float_input(x, op, (3, 4, 5), layout="(N, *spatial, C)")
    if mode not in pad_ops.MODES:
        raise ValueError(f"{op}: mode must be one of {pad_ops.MODES}, got {mode!r}")
    if mode not in ("zeros", "constant") and value != 0:
        raise ValueError(f"{op}: value is only used by mode='constant', got value={value!r} "
                         f"with mode={mode!r}")
    spatial = x.shape[1:-1]
    pads = resolve_pads(pads, spatial, op)
    pad_ops.check_pads(spatial, pads, mode, op)
    return PadFn.apply(x, pads=pads, mode=mode, value=value)
