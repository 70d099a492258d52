"""Which array module convnet computes with, and the default float dtype.

NumPy is the array module.  The ops are written and tested for NumPy only; a CuPy
backend would plug in here, but it is not implemented, and ``use("cupy")`` says so
rather than pretending.
"""

from __future__ import annotations

import ctypes
import threading

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


# ---- the C allocator's policy for large blocks --------------------------------------------
#
# glibc's malloc hands blocks above a (self-adjusting, at most 32 MiB) threshold to mmap and
# gives them back to the OS when freed, and trims the heap's free top above twice that.  A
# training step frees and re-makes the same large arrays every step (activations, their
# gradients), so each is faulted in again page by page: on this project's VM about 2,000
# faults per CIFAR-VGG step, 4 ms for one 16 MiB conv output.  Keeping freed memory in the
# process turns those into plain reuses, as PyTorch's CPU tuning guide gets by swapping in
# jemalloc or tcmalloc.  It is the process's policy, not convnet's alone, so it is opt-in:
# the command line turns it on for its own process; a program that embeds convnet decides.

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3      # mallopt's parameters (malloc.h)
_retained: dict = {"limit": None}
_retain_lock = threading.Lock()


def retain_freed_memory(limit: int = 1 << 30) -> bool:
    """Keep freed memory in the process for reuse instead of returning it to the OS.

    Blocks up to ``limit`` bytes come from malloc's heap rather than their own mappings,
    and up to ``limit`` bytes of free heap are kept rather than trimmed.  The peak
    footprint is unchanged; the resident size stays near it after a peak.  Returns True
    when the C library is glibc and took the settings, False elsewhere (nothing changes).
    Process-wide and not undone: glibc stops adjusting its thresholds once they are set."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 << 20 <= limit < 1 << 31:
        raise ValueError(f"retain_freed_memory: limit must be an int of bytes between 1 MiB "
                         f"and 2 GiB, got {limit!r}")
    with _retain_lock:
        if _retained["limit"] is not None and _retained["limit"] >= limit:
            return True
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError, TypeError):       # not glibc (musl, macOS, Windows)
            return False
        mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        if not (mallopt(_M_MMAP_THRESHOLD, limit) and mallopt(_M_TRIM_THRESHOLD, limit)):
            return False
        _retained["limit"] = limit
        return True
