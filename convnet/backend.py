"""Which array module convnet computes with, and the default float dtype.

NumPy is the default.  ``use("cupy")`` switches to CuPy where it is installed;
nothing else in the package imports NumPy-versus-CuPy decisions on its own.
"""

from __future__ import annotations

import numpy as np

xp = np
_default_dtype = np.dtype(np.float32)


def use(name: str) -> None:
    """Select the array module: ``"numpy"`` (default) or ``"cupy"``."""
    global xp
    if name == "numpy":
        xp = np
    elif name == "cupy":
        try:
            import cupy  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise RuntimeError("backend 'cupy' asked for, but CuPy is not installed") from exc
        xp = cupy
    else:
        raise ValueError(f"backend must be 'numpy' or 'cupy', got {name!r}")


def get_default_dtype() -> np.dtype:
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """Set the float dtype for new parameters and converted inputs (float32 or float64)."""
    global _default_dtype
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"default dtype must be float32 or float64, got {dt}")
    _default_dtype = dt
