"""Argument checks and initialisation shared by the zoo's builders."""

from __future__ import annotations

import math

import numpy as np

from ..nn import init

__all__ = ["check_count", "size_pair", "torchvision_init"]


def check_count(value, name: str, model: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{model}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def size_pair(size, name: str, model: str) -> tuple[int, int]:
    """An int or an (H, W) pair of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                       and v >= 1 for v in size)):
        raise ValueError(f"{model}: {name} must be an int or an (H, W) pair of ints >= 1, "
                         f"got {size!r}")
    return int(size[0]), int(size[1])


def _draw_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    return dt if dt in (np.float32, np.float64) else np.dtype(np.float64)


def _uniform(shape, bound, rng, dtype) -> np.ndarray:
    """U(-bound, bound), drawn directly in float32 when that is the parameter dtype:
    no float64 temporary, which is what makes VGG's 120M classifier weights cheap."""
    a = rng.random(shape, dtype=_draw_dtype(dtype))
    a *= 2 * bound
    a -= bound
    return a.astype(dtype, copy=False)


def _normal(shape, std, rng, dtype) -> np.ndarray:
    a = rng.standard_normal(shape, dtype=_draw_dtype(dtype))
    a *= std
    return a.astype(dtype, copy=False)


def torchvision_init(module, rng, convs: str = "he") -> None:
    """(Re)draw every conv and linear parameter of ``module`` the way torchvision does.

    convs ``"he"``: N(0, 2/fan_out) weights (He et al., fan-out mode) and zero biases,
    torchvision's VGG and ResNet; ``"default"``: PyTorch's layer default, U(+-1/sqrt(fan_in))
    for weight and bias, torchvision's AlexNet.  Linear layers always get PyTorch's
    default.  BatchNorm keeps (1, 0).  Nothing is drawn inside ``init.skip_init()``.

    Builders construct their layers inside ``skip_init`` (zeros, lazily allocated) and
    call this once, so every weight is drawn once, vectorised, in its own dtype.
    """
    if convs not in ("he", "default"):
        raise ValueError(f"torchvision_init: convs must be 'he' or 'default', got {convs!r}")
    if init.is_init_skipped():
        return
    for m in module.modules():
        weight, bias = m._parameters.get("weight"), m._parameters.get("bias")
        if weight is None or weight.data.ndim < 2:
            continue
        w = weight.data
        fan_in, fan_out = init.calculate_fan(w.shape)  # HWIO or (in, out)
        is_conv = hasattr(m, "kernel_size") and "Transpose" not in type(m).__name__
        if not is_conv and not hasattr(m, "in_features"):
            raise TypeError(f"torchvision_init: no rule for {type(m).__name__}")
        if is_conv and convs == "he":
            weight.data = _normal(w.shape, math.sqrt(2.0 / fan_out), rng, w.dtype)
            if bias is not None:
                bias.data = np.zeros(bias.data.shape, bias.data.dtype)
            continue
        bound = 1.0 / math.sqrt(fan_in)
        weight.data = _uniform(w.shape, bound, rng, w.dtype)
        if bias is not None:
            bias.data = _uniform(bias.data.shape, bound, rng, bias.data.dtype)
