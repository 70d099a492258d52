"""Compiled Winograd F(4x4,3x3) tile transforms, when numba is installed (optional).

NumPy runs the 2-D tile transforms of ``ops.winograd`` as dense Kronecker GEMMs
(36 x 36 for the input, 16 x 36 for the output) after a strided gather copy.  The 1-D
matrices are mostly zeros and small integers, so the transforms are a few adds per
value; written as loops over the channel axis (contiguous, vectorised by LLVM) they
read the padded input once and write each transformed tile once, instead of gathering
every overlapping 6 x 6 tile into memory and multiplying it by 36 x 36 mostly-zero
matrices.  On VGG's 64-channel layers that is most of the conv's time
(benchmarks/RESULTS.md, "Seventh pass").

``pip install convnet[fast]`` adds numba.  Without it, or with ``set_enabled(False)``
(or ``CONVNET_JIT=0`` in the environment), ``kernels()`` is None and ``ops.winograd``
runs the pure-NumPy path; the tests run every Winograd test both ways.  The kernels
release the GIL, so the two threads of ``ops.threads``' pool run them side by side.
They compile on first use (about a second each, once per process: numba's on-disk cache
would load pickled files, which this project never does).

Each kernel applies the same linear map as the Kronecker matrices of
``ops.winograd_transforms`` (Lavin & Gray's B, A; tests compare them), with tile
p = (n * TB + ty) * TW + tx and the 6 x 6 tile points in row-major order:

    input_tiles   grid (Nb, 4TB+2, 4TW+2, C)  ->  V  (36, P, C)   V = B^T d B
    output_tiles  M    (36, P, F)  ->  out rows/cols, + bias, ReLU  Y = A^T M A
    pool_tiles    as output_tiles, then a 2 x 2 max pool and its argmax tap
    grad_tiles    dY (Nb, 4TB, 4TW, F)  ->  dM (36, P, F)         dM = A dY A^T
    add_tiles     dV (36, P, C)  ->  += onto dg (Nb, 4TB+4, 4TW+4, C)   B dV B^T
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

_state = {"enabled": os.environ.get("CONVNET_JIT", "1") != "0", "kernels": None,
          "parallel": os.environ.get("CONVNET_PARALLEL", "1") != "0"}
_lock = threading.RLock()       # kernels() and built(); builds may nest (ops.narrow's)


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
    return built(_state, "kernels", _build)


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
    ``set_parallel(False)``): those callers use the pool instead."""
    if threads < 2 or not enabled() or not _state["parallel"]:
        return False
    ok = _state.get("layer_ok")
    if ok is None:
        ok = _state["layer_ok"] = _safe_layer()
    if not ok:
        return False
    import numba
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
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


def _build():
    import types

    import numpy as np
    from numba import njit

    jit = njit(nogil=True, cache=False)
    # Exact in float32, so float32 data stays float32 and float64 data float64.
    k2, k4, k5, k8 = (np.float32(k) for k in (2, 4, 5, 8))

    # The 1-D transforms, each written once (LLVM inlines them into the channel loops).
    @jit
    def _bt(a0, a1, a2, a3, a4, a5):                       # B^T a
        return (k4 * a0 - k5 * a2 + a4, a3 + a4 - k4 * (a1 + a2), a4 - a3 + k4 * (a1 - a2),
                a4 - a2 + k2 * (a3 - a1), a4 - a2 - k2 * (a3 - a1), k4 * a1 - k5 * a3 + a5)

    @jit
    def _b(a0, a1, a2, a3, a4, a5):                        # B a
        return (k4 * a0, k4 * (a2 - a1 + a5) + k2 * (a4 - a3),
                -k5 * a0 - k4 * (a1 + a2) - a3 - a4, a1 - a2 + k2 * (a3 - a4) - k5 * a5,
                a0 + a1 + a2 + a3 + a4, a5)

    @jit
    def _at(a0, a1, a2, a3, a4, a5):                       # A^T a
        s12, d12, s34, d34 = a1 + a2, a1 - a2, a3 + a4, a3 - a4
        return a0 + s12 + s34, d12 + k2 * d34, s12 + k4 * s34, d12 + k8 * d34 + a5

    @jit
    def _a(y0, y1, y2, y3):                                # A y
        e, o, e4, o8 = y0 + y2, y1 + y3, y0 + k4 * y2, k2 * y1 + k8 * y3
        return y0, e + o, e - o, e4 + o8, e4 - o8, y3

    @jit
    def input_tiles(grid, tb, tw, v):
        nb, c = grid.shape[0], grid.shape[3]
        t = np.empty((6, 6, c), grid.dtype)
        for n in range(nb):
            for ty in range(tb):
                for tx in range(tw):
                    p = (n * tb + ty) * tw + tx
                    r0, c0 = 4 * ty, 4 * tx
                    for j in range(6):                     # columns: t[:, j] = B^T d[:, j]
                        d0, d1 = grid[n, r0, c0 + j], grid[n, r0 + 1, c0 + j]
                        d2, d3 = grid[n, r0 + 2, c0 + j], grid[n, r0 + 3, c0 + j]
                        d4, d5 = grid[n, r0 + 4, c0 + j], grid[n, r0 + 5, c0 + j]
                        for ch in range(c):
                            u = _bt(d0[ch], d1[ch], d2[ch], d3[ch], d4[ch], d5[ch])
                            t[0, j, ch], t[1, j, ch], t[2, j, ch] = u[0], u[1], u[2]
                            t[3, j, ch], t[4, j, ch], t[5, j, ch] = u[3], u[4], u[5]
                    for i in range(6):                     # rows: V[i, :] = t[i, :] B
                        s = t[i]
                        o0, o1, o2 = v[6 * i, p], v[6 * i + 1, p], v[6 * i + 2, p]
                        o3, o4, o5 = v[6 * i + 3, p], v[6 * i + 4, p], v[6 * i + 5, p]
                        for ch in range(c):
                            u = _bt(s[0, ch], s[1, ch], s[2, ch], s[3, ch], s[4, ch], s[5, ch])
                            o0[ch], o1[ch], o2[ch] = u[0], u[1], u[2]
                            o3[ch], o4[ch], o5[ch] = u[3], u[4], u[5]

    @jit
    def _relu(v, zero):
        return zero if v < zero else v                     # NaN < 0 is False: NaN stays

    @jit
    def _columns(mm, p, t):
        """t[i, j] = (A^T M[:, j])_i for tile p: the first half of Y = A^T M A."""
        f = mm.shape[2]
        for j in range(6):
            m0, m1, m2 = mm[j, p], mm[6 + j, p], mm[12 + j, p]
            m3, m4, m5 = mm[18 + j, p], mm[24 + j, p], mm[30 + j, p]
            for ch in range(f):
                u = _at(m0[ch], m1[ch], m2[ch], m3[ch], m4[ch], m5[ch])
                t[0, j, ch], t[1, j, ch], t[2, j, ch], t[3, j, ch] = u

    @jit
    def output_tiles(mm, tb, tw, bias, relu, out, n0, r0, rows, cols):
        """out[n0 + n, r0 + y, x] = (A^T M A)[y, x] + bias (ReLU'd), y < rows, x < cols."""
        nb, f = mm.shape[1] // (tb * tw), mm.shape[2]
        zero = mm.dtype.type(0)
        t = np.empty((4, 6, f), mm.dtype)
        for n in range(nb):
            for ty in range(tb):
                for tx in range(tw):
                    p = (n * tb + ty) * tw + tx
                    _columns(mm, p, t)
                    x0 = 4 * tx
                    w1, w2, w3 = x0 + 1 < cols, x0 + 2 < cols, x0 + 3 < cols
                    for i in range(4):
                        y = 4 * ty + i
                        if y >= rows:
                            break
                        s = t[i]
                        row = out[n0 + n, r0 + y]                 # clipped columns
                        o0, o1 = row[x0], row[min(x0 + 1, cols - 1)]  # alias a valid one
                        o2, o3 = row[min(x0 + 2, cols - 1)], row[min(x0 + 3, cols - 1)]
                        for ch in range(f):
                            u = _at(s[0, ch], s[1, ch], s[2, ch], s[3, ch], s[4, ch], s[5, ch])
                            bb = bias[ch]
                            y0, y1, y2, y3 = u[0] + bb, u[1] + bb, u[2] + bb, u[3] + bb
                            if relu:
                                y0, y1 = _relu(y0, zero), _relu(y1, zero)
                                y2, y3 = _relu(y2, zero), _relu(y3, zero)
                            o0[ch] = y0                    # but are not written
                            if w1:
                                o1[ch] = y1
                            if w2:
                                o2[ch] = y2
                            if w3:
                                o3[ch] = y3

    @jit
    def pool_tiles(mm, tb, tw, bias, pooled, arg, n0, q0, prows, pcols):
        """ReLU(A^T M A + bias), max-pooled 2 x 2 into pooled[n0 + n, q0 + q, x] with the
        window's argmax tap in arg (q < prows, x < pcols): torch's rule, the first tap
        equal to the max, or the last NaN tap when there is one."""
        nb, f = mm.shape[1] // (tb * tw), mm.shape[2]
        zero = mm.dtype.type(0)
        t = np.empty((4, 6, f), mm.dtype)
        y = np.empty((2, 4, f), mm.dtype)
        for n in range(nb):
            for ty in range(tb):
                for tx in range(tw):
                    p = (n * tb + ty) * tw + tx
                    _columns(mm, p, t)
                    x0 = 2 * tx
                    for h in range(2):                     # pool rows 2ty + h
                        q = 2 * ty + h
                        if q >= prows:
                            break
                        for i in range(2):                 # output rows 4ty + 2h + i
                            s, r = t[2 * h + i], y[i]
                            for ch in range(f):
                                u = _at(s[0, ch], s[1, ch], s[2, ch], s[3, ch], s[4, ch],
                                        s[5, ch])
                                bb = bias[ch]
                                r[0, ch], r[1, ch] = _relu(u[0] + bb, zero), _relu(u[1] + bb, zero)
                                r[2, ch], r[3, ch] = _relu(u[2] + bb, zero), _relu(u[3] + bb, zero)
                        for j in range(2):                 # pool columns 2tx + j
                            if x0 + j >= pcols:
                                break
                            o, g = pooled[n0 + n, q0 + q, x0 + j], arg[n0 + n, q0 + q, x0 + j]
                            u0, u1 = y[0, 2 * j], y[0, 2 * j + 1]
                            u2, u3 = y[1, 2 * j], y[1, 2 * j + 1]
                            for ch in range(f):
                                best, tap = u0[ch], 0
                                v = u1[ch]
                                if v > best or v != v:
                                    best, tap = v, 1
                                v = u2[ch]
                                if v > best or v != v:
                                    best, tap = v, 2
                                v = u3[ch]
                                if v > best or v != v:
                                    best, tap = v, 3
                                o[ch] = best
                                g[ch] = tap

    @jit
    def grad_tiles(dy, tb, tw, dm):
        """dM = A dY A^T for each 4 x 4 tile of dy (Nb, 4TB, 4TW, F)."""
        nb, f = dy.shape[0], dy.shape[3]
        t = np.empty((6, 4, f), dy.dtype)
        for n in range(nb):
            for ty in range(tb):
                for tx in range(tw):
                    p = (n * tb + ty) * tw + tx
                    r0, c0 = 4 * ty, 4 * tx
                    for j in range(4):                     # columns: t[:, j] = A dY[:, j]
                        g0, g1 = dy[n, r0, c0 + j], dy[n, r0 + 1, c0 + j]
                        g2, g3 = dy[n, r0 + 2, c0 + j], dy[n, r0 + 3, c0 + j]
                        for ch in range(f):
                            u = _a(g0[ch], g1[ch], g2[ch], g3[ch])
                            t[0, j, ch], t[1, j, ch], t[2, j, ch] = u[0], u[1], u[2]
                            t[3, j, ch], t[4, j, ch], t[5, j, ch] = u[3], u[4], u[5]
                    for i in range(6):                     # rows: dM[i, :] = t[i, :] A^T
                        s = t[i]
                        q0, q1, q2 = dm[6 * i, p], dm[6 * i + 1, p], dm[6 * i + 2, p]
                        q3, q4, q5 = dm[6 * i + 3, p], dm[6 * i + 4, p], dm[6 * i + 5, p]
                        for ch in range(f):
                            u = _a(s[0, ch], s[1, ch], s[2, ch], s[3, ch])
                            q0[ch], q1[ch], q2[ch] = u[0], u[1], u[2]
                            q3[ch], q4[ch], q5[ch] = u[3], u[4], u[5]

    @jit
    def add_tiles(dv, tb, tw, dg):
        """dg[n, 4ty + i, 4tx + j] += (B dV B^T)[i, j]: the input-gradient tiles, whose
        two-row and two-column overlaps add (dg is (Nb, 4TB+4, 4TW+4, C))."""
        c = dv.shape[2]
        nb = dv.shape[1] // (tb * tw)
        t = np.empty((6, 6, c), dv.dtype)
        for n in range(nb):
            for ty in range(tb):
                for tx in range(tw):
                    p = (n * tb + ty) * tw + tx
                    for j in range(6):                     # columns: t[:, j] = B dV[:, j]
                        v0, v1, v2 = dv[j, p], dv[6 + j, p], dv[12 + j, p]
                        v3, v4, v5 = dv[18 + j, p], dv[24 + j, p], dv[30 + j, p]
                        for ch in range(c):
                            u = _b(v0[ch], v1[ch], v2[ch], v3[ch], v4[ch], v5[ch])
                            t[0, j, ch], t[1, j, ch], t[2, j, ch] = u[0], u[1], u[2]
                            t[3, j, ch], t[4, j, ch], t[5, j, ch] = u[3], u[4], u[5]
                    r0, c0 = 4 * ty, 4 * tx
                    for i in range(6):                     # rows: dd[i, :] = t[i, :] B^T
                        s = t[i]
                        row = dg[n, r0 + i]
                        g0, g1, g2 = row[c0], row[c0 + 1], row[c0 + 2]
                        g3, g4, g5 = row[c0 + 3], row[c0 + 4], row[c0 + 5]
                        for ch in range(c):
                            u = _b(s[0, ch], s[1, ch], s[2, ch], s[3, ch], s[4, ch], s[5, ch])
                            g0[ch] += u[0]
                            g1[ch] += u[1]
                            g2[ch] += u[2]
                            g3[ch] += u[3]
                            g4[ch] += u[4]
                            g5[ch] += u[5]

    return types.SimpleNamespace(input_tiles=input_tiles, output_tiles=output_tiles,
                                 pool_tiles=pool_tiles, grad_tiles=grad_tiles,
                                 add_tiles=add_tiles)
