"""Per-layer figures the summary needs beyond ``output_shape``: MACs and receptive fields.

Both are computed from a layer's hyperparameters and shapes, never from data.

MACs (multiply-accumulates) count the weight products of conv-like and linear layers,
the convention of torchinfo and fvcore (so VGG-16 at 224x224 is 15.47 G):

    conv (any rank, any groups)   out positions x weight.size    (weight = HWIO)
    transposed conv               in positions x weight.size     (each input scatters)
    locally connected             weight.size                    (one filter per position)
    linear                        leading positions x in x out
    anything else                 0 (pooling, activations, normalisation, merges)

A layer may define ``macs(input_shape)`` itself; that wins.
"""

from __future__ import annotations

import math

from ..ops.shape import as_tuple, effective_kernel, resolve_padding
from . import receptive as rfm

__all__ = ["layer_macs", "layer_rf"]


def _prod(xs) -> int:
    return int(math.prod(int(x) for x in xs))


def _weights(module):
    """Every weight array (ndim >= 2) in the module's subtree, as (owner, array)."""
    out = []
    for _, m in module.named_modules():
        w = m._parameters.get("weight")
        if w is not None and w.data.ndim >= 2:
            out.append((m, w.data))
    return out


def _is_transposed(module) -> bool:
    return type(module).__name__.startswith("ConvTranspose")


def _is_local(module) -> bool:
    return type(module).__name__.startswith("LocallyConnected")


def layer_macs(module, in_shape, out_shape) -> int:
    """Multiply-accumulates of one layer for one sample."""
    own = getattr(module, "macs", None)
    if callable(own):
        return int(own(tuple(in_shape)))
    total = 0
    for owner, w in _weights(module):
        if _is_local(owner):
            total += w.size
        elif _is_transposed(owner):
            total += _prod(in_shape[:-1]) * w.size
        elif hasattr(owner, "kernel_size"):  # conv: every output position applies all filters
            total += _prod(out_shape[:-1]) * w.size
        elif hasattr(owner, "in_features") and w.ndim == 2:  # linear on the last axis
            total += _prod(out_shape[:-1]) * w.size
    return int(total)


def _axis_tuple(value, ndim, name, op):
    return as_tuple(value, ndim, name, op)


def _transposed_params(module, in_shape):
    op = type(module).__name__
    nd = len(in_shape) - 1
    kernel = _axis_tuple(module.kernel_size, nd, "kernel_size", op)
    stride = _axis_tuple(getattr(module, "stride", 1), nd, "stride", op)
    dilation = _axis_tuple(getattr(module, "dilation", 1), nd, "dilation", op)
    pads = resolve_padding(getattr(module, "padding", 0), tuple(in_shape[:-1]), kernel,
                           stride, dilation, op)
    return tuple((effective_kernel(k, d), s, p[0], rfm.upsample_taps(k, s, d))
                 for k, s, d, p in zip(kernel, stride, dilation, pads))


def _scale_params(module, in_shape, out_shape):
    """Nearest / bilinear upsampling and unpooling, from the shapes: factor f = out/in."""
    linear = "linear" in str(getattr(module, "mode", "nearest"))
    params = []
    for n, m in zip(in_shape[:-1], out_shape[:-1]):
        f = m / n
        taps = 2 if linear and f != 1 else 1
        params.append((f, f, 0, taps))  # k_eff = f: each input spreads over f outputs
    return tuple(params)


def layer_rf(module, in_shape, out_shape, rf, input_spatial):
    """The receptive field after ``module``, or None when it cannot be said."""
    if rf is None:
        return None
    nd_in, nd_out = len(in_shape) - 1, len(out_shape) - 1
    if nd_in == 0:
        return rf  # already one unit that sees everything
    if nd_out <= 0 or nd_out != nd_in:
        return rfm.whole_input(rf, in_shape[:-1], input_spatial)
    if _is_transposed(module):
        # Exact count: an output reads only the taps that land on real input pixels
        # (one for a 2x2/2 up-conv), where fractional window parameters would add j/2.
        return rfm.through_upsample(rf, _transposed_params(module, in_shape))
    rf_params = getattr(module, "rf_params", None)
    if callable(rf_params):
        return rfm.through_window(rf, rf_params(tuple(in_shape)))
    if type(module).__name__.startswith(("Upsample", "Unpool", "MaxUnpool")):
        return rfm.through_upsample(rf, _scale_params(module, in_shape, out_shape))
    if any(True for _ in module.children()):
        return None  # a composite layer that does not say: its convs may widen the field
    if tuple(in_shape[:-1]) == tuple(out_shape[:-1]):
        return rf  # elementwise over space
    if all(m % n == 0 and m > n for n, m in zip(in_shape[:-1], out_shape[:-1])):
        return rfm.through_upsample(rf, _scale_params(module, in_shape, out_shape))
    return None
