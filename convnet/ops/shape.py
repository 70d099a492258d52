"""Output-size and padding math, stated once for every layer in convnet.

Notation (per spatial axis):
    n   input size            f   kernel size
    s   stride                d   dilation (1 means none)
    p   padding, as a (lo, hi) pair; the seeds' symmetric p is (p, p)

Output size (seed 000, with dilation):

    out = floor((n + p_lo + p_hi - d*(f - 1) - 1) / s) + 1

With d = 1 and p_lo = p_hi = p this is the seeds' floor((n + 2p - f)/s) + 1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def as_tuple(value, ndim: int, name: str, op: str = "") -> tuple[int, ...]:
    """Turn an int or a sequence of ``ndim`` ints into a tuple of ints."""
    if type(value) is tuple and len(value) == ndim and all(type(v) is int for v in value):
        return value                                    # the common case, checked fast
    where = f"{op}: " if op else ""
    if isinstance(value, bool):
        raise TypeError(f"{where}{name} must be an int or a tuple of {ndim} ints, got bool")
    if isinstance(value, (int, np.integer)):
        return (int(value),) * ndim
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != ndim or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
        ):
            raise TypeError(
                f"{where}{name} must be an int or a tuple of {ndim} ints, got {value!r}")
        return tuple(int(v) for v in value)
    raise TypeError(f"{where}{name} must be an int or a tuple of {ndim} ints, got {value!r}")


def check_positive(values: tuple[int, ...], name: str, op: str = "") -> None:
    if any(v <= 0 for v in values):
        where = f"{op}: " if op else ""
        got = values if len(values) > 1 else values[0]
        raise ValueError(f"{where}{name} must be positive, got {got}")


def conv_output_size(n: int, f: int, s: int = 1, p=0, d: int = 1) -> int:
    """The seeds' output-size formula; ``p`` is an int (both sides) or a (lo, hi) pair."""
    p_lo, p_hi = (p, p) if isinstance(p, int) else p
    return (n + p_lo + p_hi - d * (f - 1) - 1) // s + 1


def effective_kernel(f: int, d: int) -> int:
    """Extent of a dilated kernel: d*(f-1) + 1."""
    return d * (f - 1) + 1


def same_padding(n: int, f: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's 'same': out = ceil(n/s); the odd extra pixel goes bottom/right."""
    out = -(-n // s)
    total = max((out - 1) * s + effective_kernel(f, d) - n, 0)
    return total // 2, total - total // 2


def resolve_padding(padding, spatial: Sequence[int], kernel: Sequence[int],
                    stride: Sequence[int], dilation: Sequence[int], op: str = "") -> tuple:
    """Normalise every padding spelling to a tuple of (lo, hi) pairs, one per spatial axis.

    Accepted: an int; a tuple of ints (one per axis, symmetric); a tuple of (lo, hi)
    pairs; ``'valid'``; ``'same'`` (TensorFlow semantics, any stride); ``'causal'``
    (1-D only: d*(f-1) on the left, nothing on the right).
    """
    ndim = len(spatial)
    where = f"{op}: " if op else ""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding == "same":
            return tuple(same_padding(n, f, s, d)
                         for n, f, s, d in zip(spatial, kernel, stride, dilation))
        if padding == "causal":
            if ndim != 1:
                raise ValueError(f"{where}padding='causal' needs 1-D input, got {ndim}-D")
            return ((dilation[0] * (kernel[0] - 1), 0),)
        raise ValueError(
            f"{where}padding must be an int, a tuple, 'valid', 'same' or 'causal', got {padding!r}")
    if isinstance(padding, bool):
        raise TypeError(f"{where}padding must be an int or a tuple, got bool")
    if isinstance(padding, int):
        pads = ((padding, padding),) * ndim
    elif isinstance(padding, Sequence) and len(padding) == ndim:
        pads = []
        for p in padding:
            if isinstance(p, int) and not isinstance(p, bool):
                pads.append((p, p))
            elif (isinstance(p, Sequence) and len(p) == 2
                  and all(isinstance(v, int) and not isinstance(v, bool) for v in p)):
                pads.append((int(p[0]), int(p[1])))
            else:
                raise TypeError(f"{where}padding entries must be ints or (lo, hi) pairs, "
                                f"got {padding!r}")
        pads = tuple(pads)
    else:
        raise TypeError(
            f"{where}padding must be an int, {ndim} ints or {ndim} (lo, hi) pairs, got {padding!r}")
    if any(v < 0 for pair in pads for v in pair):
        raise ValueError(f"{where}padding must be non-negative, got {padding!r}")
    return pads


def conv_output_shape(spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                      pads: Sequence[tuple[int, int]], dilation: Sequence[int],
                      op: str = "", strict: bool = False) -> tuple[int, ...]:
    """Output spatial shape of a conv or pool window; raises when the kernel does not fit.

    ``strict=True`` also raises when (n + p_lo + p_hi - d(f-1) - 1)/s is not an integer:
    the seeds' "the strides are incorrect" case, where the windows do not tile the input.
    """
    where = f"{op}: " if op else ""
    out = []
    for axis, (n, f, s, p, d) in enumerate(zip(spatial, kernel, stride, pads, dilation)):
        span = n + p[0] + p[1]
        fe = effective_kernel(f, d)
        if fe > span:
            raise ValueError(
                f"{where}kernel of size {fe} (kernel {f}, dilation {d}) is larger than the padded "
                f"input of size {span} (input {n}, padding {p}) on spatial axis {axis}")
        if strict and (span - fe) % s != 0:
            raise ValueError(
                f"{where}the strides are incorrect on spatial axis {axis}: "
                f"(n + 2p - f)/s = ({n} + {p[0] + p[1]} - {fe})/{s} = {(span - fe) / s:g} "
                f"is not an integer, so the windows do not tile the input")
        out.append((span - fe) // s + 1)
    return tuple(out)


def tiles_exactly(n: int, f: int, s: int, p=0, d: int = 1) -> bool:
    """True when the windows tile the padded input with no leftover (seed 002)."""
    p_lo, p_hi = (p, p) if isinstance(p, int) else p
    return (n + p_lo + p_hi - effective_kernel(f, d)) % s == 0


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


__all__ = [
    "as_tuple", "check_positive", "conv_output_size", "effective_kernel", "same_padding",
    "resolve_padding", "conv_output_shape", "tiles_exactly", "ceil_div",
]
