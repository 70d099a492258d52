"""Input validation shared by the functional ops: errors name what was expected and got."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor


def as_tensor(x, op: str, name: str = "input") -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray) or isinstance(x, (list, tuple, float, int)):
        return Tensor(x)
    raise TypeError(f"{op}: {name} must be a Tensor or an array, got {type(x).__name__}")


def check_float(t: Tensor, op: str, name: str = "input") -> None:
    if t.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a float array (float32 or float64), "
                        f"got dtype {t.dtype}")


def check_ndim(t: Tensor, ndim, op: str, name: str = "input", layout: str = "") -> None:
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if t.ndim not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        lay = f" {layout}" if layout else ""
        raise ValueError(f"{op}: {name} must be {want}{lay}, got {t.ndim}-D with shape {t.shape}")


def float_input(x, op: str, ndim=None, name: str = "input", layout: str = "") -> Tensor:
    """Convert, then check that ``x`` is a float tensor of the given rank."""
    t = as_tensor(x, op, name)
    check_float(t, op, name)
    if ndim is not None:
        check_ndim(t, ndim, op, name, layout)
    return t
