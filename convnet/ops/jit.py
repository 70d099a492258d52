"""numba, when it is installed (optional): whether compiled kernels run, and the pieces
every compiled op shares.

``pip install convnet[fast]`` adds numba.  Without it, or with ``set_enabled(False)``
(or ``CONVNET_JIT=0`` in the environment), ``enabled()`` is False, ``kernels()`` is None
and every op runs its pure-NumPy path; the tests run each compiled op both ways.  The
kernels release the GIL, so the two threads of ``ops.threads``' pool run them side by
side.  They compile on first use, once per process (numba's on-disk cache would load
pickled files, which this project never does); ``warm_up`` compiles the common ones up
front.

    kernels()          Winograd F(4x4)'s tile transforms (``ops.transforms4``)
    built(store, key, build)  a kernel compiled once per process, under a lock
    parallel_launch(n) whether a band-parallel kernel may start its threads through
                       numba's OpenMP or TBB layer (1-2 us) instead of the pool
    first_class, entry a compiled kernel as another's first-class argument, and a
                       dispatcher's compiled code without numba's per-call dispatch
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

_state = {"enabled": os.environ.get("CONVNET_JIT", "1") != "0", "kernels": None,
          "parallel": os.environ.get("CONVNET_PARALLEL", "1") != "0"}
_lock = threading.RLock()       # kernels() and built(); builds may nest (ops.narrow's)
_local = threading.local()      # per calling thread: the count parallel_launch last set


def available() -> bool:
    """Whether numba can be imported."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def enabled() -> bool:
    """Whether the Winograd transforms run compiled (numba installed and not turned off)."""
    return _state["enabled"] and available()


def set_enabled(flag: bool) -> None:
    """Turn the compiled transforms on or off (off: the pure-NumPy path)."""
    if not isinstance(flag, bool):
        raise TypeError(f"set_enabled: flag must be a bool, got {type(flag).__name__}")
    _state["enabled"] = flag


@contextmanager
def use(flag: bool):
    """``set_enabled(flag)`` inside the block, restored after."""
    prev = _state["enabled"]
    set_enabled(flag)
    try:
        yield
    finally:
        _state["enabled"] = prev


def kernels():
    """The compiled kernels (a namespace), or None when they are off or unavailable."""
    if not enabled():
        return None
    return built(_state, "kernels", _build_transforms4)


def parallel_launch(threads: int) -> bool:
    """Whether compiled kernels may run ``threads`` bands through numba's own parallel
    launch (``prange``), and if so, that many threads set for this thread's next launch.

    A round trip through ``ops.threads``' pool costs 70-90 us in this VM (two futex
    wakes of a parked thread, and the GIL); an OpenMP launch, whose threads spin-wait
    between regions as torch's do, costs 1-2 us.  So band-parallel kernels that are
    compiled anyway (``ops.narrow``) launch through numba when its threading layer is
    OpenMP or TBB.  Not with the workqueue layer (not thread-safe, and it costs more than
    the pool), not in a forked child (GNU OpenMP is not fork-safe once a launch has
    run: numba aborts the child), and not when turned off (``CONVNET_PARALLEL=0``, or
    ``set_parallel(False)``): those callers use the pool instead.

    numba's thread count belongs to the calling thread, and this sets it only when the
    count asked for changes: code that sets numba's count itself, between convnet's
    calls, changes the count that convnet's next launches from that thread use."""
    if threads < 2 or not enabled() or not _state["parallel"]:
        return False
    ok = _state.get("layer_ok")
    if ok is None:
        ok = _state["layer_ok"] = _safe_layer()
    if not ok:
        return False
    if getattr(_local, "threads", 0) != threads:    # numba's count is per calling thread
        import numba  # (setting it cost 1-8 us a call)

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        _local.threads = threads
    return True


def set_parallel(flag: bool) -> None:
    """Turn numba's parallel launches on or off (off: band-parallel kernels use the pool)."""
    if not isinstance(flag, bool):
        raise TypeError(f"set_parallel: flag must be a bool, got {type(flag).__name__}")
    _state["parallel"] = flag


def launched() -> None:
    """After a kernel's first parallel launch: check the layer numba chose (it picks one
    for the process at its first launch); anything but OpenMP or TBB turns launches off."""
    import numba
    if _state.get("checked"):
        return
    _state["checked"] = True
    if numba.threading_layer() not in ("omp", "tbb"):
        _state["layer_ok"] = False


def first_class(kernel, sig):
    """``kernel``, compiled for exactly ``sig``, as a first-class function argument of
    another compiled function (a launcher taking ``numba.types.FunctionType(sig)``): an
    object that hands numba the kernel's address, looked up once.  Passing the dispatcher
    itself works too, but numba looks the address up on every call (about 35 us)."""
    try:
        from numba.core.types import WrapperAddressProtocol
        from numba.experimental.function_type import _get_wrapper_address
    except ImportError:                                # another numba: the slower way
        return kernel

    class Address(WrapperAddressProtocol):
        def __init__(self):
            self.kernel = kernel                       # keeps the compiled code alive
            self.address = _get_wrapper_address(kernel, sig)

        def __wrapper_address__(self):
            return self.address

        def signature(self):
            return sig

    return Address()


def entry(dispatcher):
    """The compiled code of a dispatcher built for one explicit signature, called without
    numba's per-call dispatch (type inference of every argument: 10+ us for a launcher
    of a dozen arrays).  The caller passes exactly the signature's types, and keeps
    what this returns: the lookup itself hashes numba's types (10-20 us)."""
    sigs = dispatcher.signatures
    if len(sigs) != 1:
        raise ValueError(f"entry: expected a kernel compiled for one signature, got "
                         f"{len(sigs)}")
    return dispatcher.overloads[sigs[0]].entry_point


def _safe_layer() -> bool:
    """Whether the threading layer numba will choose is OpenMP or TBB (thread-safe)."""
    import importlib

    import numba
    want = numba.config.THREADING_LAYER
    order = {"default": list(numba.config.THREADING_LAYER_PRIORITY), "safe": ["tbb"],
             "threadsafe": ["tbb", "omp"], "tbb": ["tbb"], "omp": ["omp"]}.get(want, [])
    for layer in order:                  # numba takes the first of these that imports
        try:
            importlib.import_module(f"numba.np.ufunc.{layer}pool")
        except ImportError:
            continue
        return layer in ("tbb", "omp")
    return False


def _after_fork() -> None:
    _state["parallel"] = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def built(store: dict, key, build):
    """``store[key]``, made by ``build()`` the first time: compiled kernels are built
    once per process, under a lock, since two threads may ask for them at once."""
    k = store.get(key)
    if k is None:
        with _lock:
            k = store.get(key)
            if k is None:
                k = store[key] = build()
    return k


def warm_up(dtypes=("float32",)) -> bool:
    """Compile every Winograd tile transform now, F(4x4)'s and F(2x2)'s
    (``ops.transforms2``), for ``dtypes``, and with float32 the 1-D Winograd rows'
    kernels for 64 output channels (``ops.winograd_rows``, float32 only): else each
    compiles on first use, about 5 s for the transforms and 5 s for the rows' kernels;
    e.g. before a server takes requests.  (The direct kernels compile per shape, on
    first use.)  False when the kernels are off or numba is missing."""
    import numpy as np

    from .transforms2 import kernels as kernels2
    k, k2 = kernels(), kernels2()
    if k is None or k2 is None:
        return False
    for dt in dtypes:
        dt = np.dtype(dt)
        if dt not in (np.float32, np.float64):
            raise ValueError(f"warm_up: dtypes must be float32 or float64, got {dt}")
        v = np.zeros((36, 1, 1), dt)
        y = np.zeros((1, 4, 4, 1), dt)
        k.input_tiles(np.zeros((1, 6, 6, 1), dt), 1, 1, v)
        k.output_tiles(v, 1, 1, np.zeros(1, dt), True, y, 0, 0, 4, 4)
        k.pool_tiles(v, 1, 1, np.zeros(1, dt), np.zeros((1, 2, 2, 1), dt),
                     np.zeros((1, 2, 2, 1), np.uint8), 0, 0, 2, 2)
        k.grad_tiles(y, 1, 1, v)
        k.add_tiles(v, 1, 1, np.zeros((1, 8, 8, 1), dt))
        v2, y2 = np.zeros((16, 1, 1), dt), np.zeros((1, 2, 2, 1), dt)
        k2.input_tiles(np.zeros((1, 4, 4, 1), dt), 1, 1, v2)
        k2.output_tiles(v2, 1, 1, np.zeros(1, dt), True, y2, 0, 0, 2, 2)
        k2.grad_tiles(y2, 1, 1, v2)
        k2.add_tiles(v2, 1, 1, np.zeros((1, 4, 4, 1), dt))
        if dt == np.float32:
            from .winograd_rows import compile_kernels
            compile_kernels(64)                         # a first layer's 64 channels
    return True


def _build_transforms4():
    from .transforms4 import build
    return build()
