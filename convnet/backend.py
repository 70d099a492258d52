"""Which array module convnet computes with, and the default float dtype.

NumPy is the array module.  The ops are written and tested for NumPy only; a CuPy
backend would plug in here, but it is not implemented, and ``use("cupy")`` says so
rather than pretending.
"""

from __future__ import annotations

import numpy as np

_default_dtype = np.dtype(np.float32)


def use(name: str) -> None:
    """Select the array module.  Only ``"numpy"`` is implemented."""
    if name == "numpy":
        return
    if name == "cupy":
        raise NotImplementedError("backend 'cupy': convnet's ops are written for NumPy only; "
                                  "a CuPy backend is not implemented")
    raise ValueError(f"backend must be 'numpy', got {name!r}")


def get_default_dtype() -> np.dtype:
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """Set the float dtype for new parameters and converted inputs (float32 or float64)."""
    global _default_dtype
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"default dtype must be float32 or float64, got {dt}")
    _default_dtype = dt
