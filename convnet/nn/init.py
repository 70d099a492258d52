"""Weight initialisers.  Every draw comes from an explicit ``numpy.random.Generator``.

``rng=None`` uses convnet's default generator, which ``manual_seed`` reseeds, so the
same seed always gives the same weights.  Fan sizes follow the HWIO layout: for a conv
weight (KH, KW, C_in/groups, C_out), fan_in = KH*KW*C_in/groups and
fan_out = KH*KW*C_out; for a linear weight (in, out), fan_in = in and fan_out = out.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from .. import backend
from ..rng import default_rng, get_rng, manual_seed, set_default_rng

__all__ = ["manual_seed", "default_rng", "get_rng", "set_default_rng", "calculate_fan",
           "calculate_gain",
           "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal",
           "glorot_uniform", "glorot_normal", "uniform", "normal", "zeros", "ones",
           "torch_default_weight", "torch_default_bias", "skip_init", "is_init_skipped"]

_default = {"skip": False}


def calculate_fan(shape) -> tuple[int, int]:
    """(fan_in, fan_out) for an HWIO conv weight (any number of spatial axes) or (in, out)."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"fan needs a weight with at least 2 dims, got shape {shape}")
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return receptive * shape[-2], receptive * shape[-1]


def calculate_gain(nonlinearity: str = "relu", param: float | None = None) -> float:
    if nonlinearity in ("linear", "conv", "sigmoid", "identity"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}")


def is_init_skipped() -> bool:
    return _default["skip"]


@contextlib.contextmanager
def skip_init():
    """Inside the block, random initialisers return zeros without drawing (lazily
    allocated, so untouched memory costs nothing and no rng state is consumed).

    For building a model only to inspect its shapes, e.g. ``convnet summary vgg16``,
    where drawing VGG-16's 138M random numbers would dominate; the zoo's builders also
    build inside it and then draw every weight once, in its own dtype.
    """
    prev = _default["skip"]
    _default["skip"] = True
    try:
        yield
    finally:
        _default["skip"] = prev


def _dtype(dtype):
    return np.dtype(dtype) if dtype is not None else backend.get_default_dtype()


def uniform(shape, low, high, rng=None, dtype=None) -> np.ndarray:
    if _default["skip"]:
        return np.zeros(shape, dtype=_dtype(dtype))
    return get_rng(rng).uniform(low, high, size=shape).astype(_dtype(dtype))


def normal(shape, std, rng=None, dtype=None) -> np.ndarray:
    if _default["skip"]:
        return np.zeros(shape, dtype=_dtype(dtype))
    return (get_rng(rng).standard_normal(size=shape) * std).astype(_dtype(dtype))


def zeros(shape, dtype=None) -> np.ndarray:
    return np.zeros(shape, dtype=_dtype(dtype))


def ones(shape, dtype=None) -> np.ndarray:
    return np.ones(shape, dtype=_dtype(dtype))


def kaiming_uniform(shape, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu",
                    rng=None, dtype=None) -> np.ndarray:
    """He et al. (2015): U(-b, b) with b = gain * sqrt(3 / fan)."""
    fan = calculate_fan(shape)[0 if mode == "fan_in" else 1]
    gain = calculate_gain(nonlinearity, a)
    bound = gain * math.sqrt(3.0 / fan)
    return uniform(shape, -bound, bound, rng, dtype)


def kaiming_normal(shape, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu",
                   rng=None, dtype=None) -> np.ndarray:
    """He et al. (2015): N(0, std^2) with std = gain / sqrt(fan)."""
    fan = calculate_fan(shape)[0 if mode == "fan_in" else 1]
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal(shape, std, rng, dtype)


def xavier_uniform(shape, gain: float = 1.0, rng=None, dtype=None) -> np.ndarray:
    """Glorot & Bengio (2010): U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -bound, bound, rng, dtype)


def xavier_normal(shape, gain: float = 1.0, rng=None, dtype=None) -> np.ndarray:
    fan_in, fan_out = calculate_fan(shape)
    return normal(shape, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng, dtype)


glorot_uniform = xavier_uniform
glorot_normal = xavier_normal


def torch_default_weight(shape, rng=None, dtype=None) -> np.ndarray:
    """PyTorch's default for Conv and Linear: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))."""
    return kaiming_uniform(shape, a=math.sqrt(5), nonlinearity="leaky_relu", rng=rng, dtype=dtype)


def torch_default_bias(shape, fan_in: int, rng=None, dtype=None) -> np.ndarray:
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform(shape, -bound, bound, rng, dtype)
