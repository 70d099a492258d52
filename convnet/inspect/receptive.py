"""Receptive-field arithmetic, one spatial axis at a time.

Each axis carries a triple (r, j, start), in input-pixel units:

    r      receptive-field size: how many input pixels one unit sees
    j      jump: the distance in input pixels between neighbouring units (cumulative stride)
    start  the centre of unit 0's field (pixel 0 is centred at 0)

The input has (1, 1, 0).  A window layer with effective kernel k = d(f-1)+1, stride s
and leading padding p_lo maps (the standard recurrence, e.g. Araujo et al., Distill 2019):

    r_out     = r_in + (k - 1) * j_in
    j_out     = j_in * s
    start_out = start_in + ((k - 1)/2 - p_lo) * j_in

Elementwise layers leave the triple unchanged.  Flatten, Linear and global pooling see
the whole input: the union of every unit's field, clipped to the image (their jump is
None).  Two branches that merge (residual add, concatenation) see the union of their
fields.

Upsampling layers (transposed convs, nearest/bilinear upsampling) refine the grid: the
jump is divided by the factor and may be fractional, r grows by the most input units one
output reads, and start is the linear fit of the output centres.  Those centres are not
evenly spaced (two outputs of a 2x2/2 up-conv share one input), so downstream of an
upsampling layer the figures are the linear model's, not exact: for the valid-conv U-Net
at 572x572 it reports 200 where the exact field varies from 188 to 204 pixels.
"""

from __future__ import annotations

import math

__all__ = ["input_field", "through_window", "whole_input", "through_upsample", "crop",
           "merge", "tidy"]


def tidy(v):
    """Show 3.0 as 3 and keep 3.5; leave None alone."""
    if v is None:
        return None
    v = float(v)
    return int(v) if v.is_integer() else round(v, 6)


def input_field(ndim: int) -> tuple:
    return tuple((1, 1, 0.0) for _ in range(ndim))


def through_window(rf, params) -> tuple:
    """Apply (k_eff, stride, pad_lo) per axis."""
    if len(params) != len(rf):
        raise ValueError(f"receptive field: layer gave {len(params)} axes of window "
                         f"parameters for a {len(rf)}-axis input")
    out = []
    for (r, j, start), (k, s, p) in zip(rf, params):
        out.append((r + (k - 1) * j, j * s, start + ((k - 1) / 2 - p) * j))
    return tuple(out)


def whole_input(rf, spatial_now, input_spatial) -> tuple:
    """The union of the fields of all ``spatial_now`` units, clipped to the input."""
    out = []
    for (r, j, start), m, n in zip(rf, spatial_now, input_spatial):
        lo = start - (r - 1) / 2
        hi = start + (m - 1) * j + (r - 1) / 2
        lo, hi = max(lo, 0.0), min(hi, float(n - 1))
        out.append((hi - lo + 1, None, (lo + hi) / 2))
    return tuple(out)


def upsample_taps(kernel: int, stride: int, dilation: int = 1) -> int:
    """Most input units one output of a transposed conv reads: the taps t*d that land
    on a real (not inserted) position, maximised over the output phase."""
    counts = [0] * stride
    for t in range(kernel):
        counts[(t * dilation) % stride] += 1
    return max(counts)


def through_upsample(rf, params) -> tuple:
    """Apply (k_eff, factor, pad, taps) per axis for a transposed conv or an upsample.

    The output grid is the input grid refined by ``factor`` (jump j/factor); an output
    reads at most ``taps`` neighbouring input units, so r grows by (taps-1)*j; the
    centre follows output o = i*factor - pad + (k_eff-1)/2, fitted linearly.
    """
    out = []
    for (r, j, start), (k, f, p, taps) in zip(rf, params):
        jn = j / f
        out.append((r + (taps - 1) * j, jn, start + (p - (k - 1) / 2) * jn))
    return tuple(out)


def crop(rf, offsets) -> tuple:
    return tuple((r, j, start + o * j) for (r, j, start), o in zip(rf, offsets))


def merge(rfs) -> tuple | None:
    """Union of the fields of branches that meet elementwise (add, concat)."""
    rfs = [rf for rf in rfs if rf is not None]
    if not rfs:
        return None
    out = []
    for axis in zip(*rfs):
        jumps = [j for _, j, _ in axis if j is not None]
        j = max(jumps) if jumps else None
        lo = min(start - (r - 1) / 2 for r, _, start in axis)
        hi = max(start + (r - 1) / 2 for r, _, start in axis)
        out.append((hi - lo + 1, j, (lo + hi) / 2))
    return tuple(out)


def is_finite(rf) -> bool:
    return rf is not None and all(math.isfinite(r) for r, _, _ in rf)
