"""Who runs convnet's ops on the cores: the BLAS's thread count and one pool of threads.

    owned()          the BLAS on one thread while a convnet op runs (the tape enters it)
    blas_threads()   inside owned(): the BLAS's own threads back, for ops too small for the pool
    run_blocks       independent blocks of an op on the pool, results in block order
    run_reduce       the sum of per-block partials, in a fixed order (bitwise repeatable)
    matmul           one large GEMM cut into bands on the pool
    num_threads / set_num_threads   the pool's size
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import threading

_local = threading.local()


# ---- execution: one owner for the cores ---------------------------------------
#
# NumPy's copies and elementwise ufuncs run on one core, while the BLAS spreads each
# matmul over its own threads.  Two thread pools on two cores fight: after a threaded
# BLAS call OpenBLAS's worker threads spin-wait for their next job for about a tenth
# of a second, and a spinning thread takes half a core from whatever runs next (a
# Winograd forward of VGG's conv1_2 measured 27 ms right after a threaded matmul,
# 15 ms without).  So convnet keeps one owner for the cores: while a convnet op runs
# (``owned()``, entered by the tape around every forward and backward), the BLAS is
# set to one thread and never wakes its own workers, and the parallelism comes from
# one pool of ``num_threads()`` Python threads:
#   ``run_blocks``  independent blocks of a conv (im2col row bands, Winograd tiles);
#   ``matmul``      one large GEMM cut into row (or column) bands.
# The exception is ops too small for the pool (LeNet's banded convs: ``blas_threads``),
# whose blocks run on the calling thread while the BLAS splits each GEMM itself.
# Compiled kernels that need nothing from Python between bands (``ops.narrow``) skip the
# pool: numba's OpenMP launch (``jit.parallel_launch``) costs 1-2 us where the pool's
# round trip costs 70-90 us.
# NumPy releases the GIL inside copies, ufuncs and BLAS calls, so the pool's threads
# run on every core.  Each block is computed whole by one thread and results are
# combined in block order, so outputs do not depend on scheduling.

_exec = {"threads": None, "pool": None, "blas": None, "depth": 0, "saved": None}
_exec_lock = threading.Lock()


def _openblas_handles():
    """ctypes (set, get) pairs for every OpenBLAS loaded in this process (Linux)."""
    handles = []
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower()
                     and line.split()[-1].startswith("/")}
    except OSError:
        return handles
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""),
                               ("openblas", ""), ("openblas", "64_")):
            setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                handles.append((setter, getter))
                break
    return handles


def _blas():
    if _exec["blas"] is None:
        import numpy  # noqa: F401  (loads the BLAS whose threads are controlled)
        _exec["blas"] = _openblas_handles()
    return _exec["blas"]


def num_threads() -> int:
    """Threads the conv algorithms use: ``set_num_threads``, else the BLAS's own count
    (``OPENBLAS_NUM_THREADS``), else ``os.cpu_count()``."""
    if _exec["threads"] is None:
        blas = _blas()
        with _exec_lock:  # inside ``owned()`` the BLAS reads 1: use the count it had
            if _exec["depth"] > 0 and blas:
                n = _exec["saved"][0]
            else:
                n = blas[0][1]() if blas else int(os.environ.get("OMP_NUM_THREADS", 0) or 0)
        _exec["threads"] = max(1, n or os.cpu_count() or 1)
    return _exec["threads"]


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for conv blocks (1: blocks run in turn, each BLAS call threaded)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected an int >= 1, got {n!r}")
    with _exec_lock:
        _exec["threads"] = n
        if _exec["pool"] is not None:
            _exec["pool"].close()
        _exec["pool"] = None


class _Owned:
    """Context manager: the BLAS runs one thread inside the block (re-entrant, cheap)."""

    def __enter__(self):
        blas = _blas()
        with _exec_lock:
            if _exec["depth"] == 0:
                _exec["saved"] = [get() for _, get in blas]
                for set_, _ in blas:
                    set_(1)
            _exec["depth"] += 1
        return self

    def __exit__(self, *exc):
        with _exec_lock:
            _exec["depth"] -= 1
            if _exec["depth"] == 0:
                for (set_, _), n in zip(_blas(), _exec["saved"]):
                    set_(n)
        return False


_OWNED = _Owned()


def owned() -> _Owned:
    """``with owned():`` -- convnet owns the cores: one BLAS thread, parallel work goes
    through ``run_blocks`` and ``matmul``.  Nested uses cost a lock and a counter."""
    return _OWNED


@contextlib.contextmanager
def blas_threads():
    """Inside ``owned()``: the BLAS runs its own threads again for the block (for ops too
    small for the pool, whose GEMMs OpenBLAS's spinning workers split faster than a pool
    round trip).  Outside ``owned()`` it changes nothing."""
    with _exec_lock:
        saved = _exec["saved"] if _exec["depth"] > 0 else None
        if saved is not None:
            for (set_, _), n in zip(_blas(), saved):
                set_(n)
    try:
        yield
    finally:
        if saved is not None:
            with _exec_lock:
                if _exec["depth"] > 0:
                    for set_, _ in _blas():
                        set_(1)


def in_worker() -> bool:
    return getattr(_local, "in_worker", False)


def bands(size: int, k: int) -> list[slice]:
    """``size`` cut into ``k`` contiguous slices of (nearly) equal length, in order."""
    return [slice(i * size // k, (i + 1) * size // k) for i in range(k)]


PARALLEL_FLOPS = 64 << 20  # a GEMM below this many FLOPs runs on one thread (a pool
#                            round trip costs 70-100 us in this VM: see _Pool) ...
PARALLEL_BYTES = 8 << 20   # ... unless its operands are this large: a matrix-vector
#                            product (batch-1 fully connected layers) is bound by memory
#                            bandwidth, which one core cannot use up


def matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)`` on every core of the pool.

    2-D products cut the larger of M and N into ``num_threads()`` bands; stacked ones
    (one batch axis, either operand broadcast) cut the batch, or the rows when the batch
    is short.  Each band is one single-threaded BLAS call writing straight into ``out``.
    Small products, vectors, calls from inside a pool worker, and runs without a
    controllable BLAS are one plain ``np.matmul``."""
    import numpy as np
    t = num_threads()
    if (a.ndim < 2 or b.ndim < 2 or a.ndim > 3 or b.ndim > 3 or t < 2 or in_worker()
            or not _blas()):
        return np.matmul(a, b, out=out)
    m, k = a.shape[-2:]
    n = b.shape[-1]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    count = int(np.prod(batch, dtype=np.int64)) if batch else 1
    if (2 * count * m * k * n < PARALLEL_FLOPS
            and (a.size + b.size) * a.itemsize < PARALLEL_BYTES):
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty(batch + (m, n), np.result_type(a.dtype, b.dtype))
    if batch:
        a = np.broadcast_to(a, batch + (m, k))
        b = np.broadcast_to(b, batch + (k, n))
        if count >= t:
            run_blocks(lambda s: np.matmul(a[s], b[s], out=out[s]), bands(count, t))
            return out
    if max(m, n) < 2 * t:
        return np.matmul(a, b, out=out)
    if m <= 4 and not batch and k >= 2 * t:
        return _gemv(a, b, out, t)
    rows = m >= n
    if rows:
        run_blocks(lambda s: np.matmul(a[..., s, :], b, out=out[..., s, :]), bands(m, t))
    else:
        run_blocks(lambda s: np.matmul(a, b[..., s], out=out[..., s]), bands(n, t))
    return out


def _gemv(a, b, out, t):
    """(M <= 4, K) @ (K, N): each thread streams a contiguous band of b's rows (memory-bound)
    into its own partial sum; the partials are added in band order."""
    import numpy as np
    parts = np.empty((t,) + out.shape, out.dtype)
    ks = bands(a.shape[1], t)
    run_blocks(lambda i: np.matmul(a[:, ks[i]], b[ks[i]], out=parts[i]), range(t))
    return np.sum(parts, axis=0, out=out)


class _Worker:
    """One pool thread, parked on a lock between jobs (a futex wait: no spinning)."""

    def __init__(self):
        self.go = threading.Lock()
        self.go.acquire()
        self.done = threading.Lock()
        self.done.acquire()
        self.job = None
        self.thread = threading.Thread(target=self._loop, name="convnet-pool", daemon=True)
        self.thread.start()

    def _loop(self):
        _local.in_worker = True
        while True:
            self.go.acquire()
            job, self.job = self.job, None
            if job is None:                                  # close()
                return
            job()
            del job                                          # hold nothing between jobs
            self.done.release()


class _Pool:
    """``size - 1`` parked workers; the calling thread is the last member.

    ``run`` hands every member the same job, which takes blocks from one shared counter
    until none is left, so a worker that finishes early takes the next block.  Waking a
    parked worker is one lock release, about 10 us -- a ``ThreadPoolExecutor.map``
    round trip (futures, conditions) measured 85 us, too much for the 0.2 ms GEMMs of
    small layers."""

    def __init__(self, size: int):
        self.workers = [_Worker() for _ in range(size - 1)]
        self.busy = threading.Lock()

    def run(self, fn, blocks) -> list:
        results = [None] * len(blocks)
        errors = []
        counter = itertools.count()                          # next() is atomic under the GIL

        def job():
            try:
                for i in iter(counter.__next__, None):
                    if i >= len(blocks):
                        return
                    results[i] = fn(blocks[i])
            except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
                errors.append(exc)

        for w in self.workers:
            w.job = job
            w.go.release()
        was = in_worker()
        _local.in_worker = True
        try:
            job()
        finally:
            _local.in_worker = was
            for w in self.workers:
                w.done.acquire()
        if errors:
            raise errors[0]
        return results

    def close(self) -> None:
        for w in self.workers:
            w.job = None
            w.go.release()


def _after_fork() -> None:
    """In a forked child the pool's worker threads do not exist (fork copies only the
    calling thread): drop the pool, so the child's first parallel op makes its own
    instead of waiting forever on workers that never answer."""
    global _exec_lock
    _exec_lock = threading.Lock()
    _exec["pool"] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def run_blocks(fn, blocks, parallel: bool = True) -> list:
    """``[fn(b) for b in blocks]``, spread over ``num_threads()`` threads when that helps.

    Blocks must be independent (disjoint outputs).  With ``parallel=False``, one thread,
    one block, no controllable BLAS, when called from inside a worker, or while another
    thread is using the pool, they run in turn on the calling thread."""
    blocks = list(blocks)
    n = num_threads()
    if not parallel or n < 2 or len(blocks) < 2 or not _blas() or in_worker():
        return [fn(b) for b in blocks]
    with _exec_lock:
        if _exec["pool"] is None:
            _exec["pool"] = _Pool(n)
        pool = _exec["pool"]
    if not pool.busy.acquire(blocking=False):
        return [fn(b) for b in blocks]
    try:
        with _OWNED:
            return pool.run(fn, blocks)
    finally:
        pool.busy.release()


def run_reduce(fn, blocks, shape, dtype, parallel: bool = True, buffers=None):
    """The sum of ``fn(b, out)`` over ``blocks``, in parallel.

    ``fn(b, out)`` returns block b's partial sum, or None for nothing.  When ``out`` is an
    array the partial is written there (and ``out`` returned); when it is None, ``fn`` may
    return a scratch array, which is added at once.

    The blocks are dealt in order into one contiguous lane per thread.  A lane's first
    block writes straight into the lane's accumulator (made here, on the calling thread),
    so a lane of one block needs no scratch at all; later blocks are added into it, and
    the lanes are added in order.  So no partial outlives its block, worker threads
    allocate nothing, and for a given thread count the rounding -- the result, bit for bit
    -- never changes.

    ``buffers(i, shape, dtype)``, when given, supplies lane i's accumulator (reused
    scratch instead of fresh memory; the result is then lane 0's buffer)."""
    import numpy as np
    blocks = list(blocks)
    k = max(1, min(num_threads() if parallel else 1, len(blocks)))
    lanes = [blocks[s] for s in bands(len(blocks), k)]
    make = buffers or (lambda i, shape, dtype: np.empty(shape, dtype))
    accs = [make(i, shape, dtype) for i in range(len(lanes))]

    def lane(i):
        acc, first = accs[i], True
        for b in lanes[i]:
            part = fn(b, acc if first else None)
            if first:
                if part is None:
                    acc[...] = 0
                elif part is not acc:
                    np.copyto(acc, part)
                first = False
            elif part is not None:
                acc += part
        if first:                                           # a lane with no blocks
            acc[...] = 0

    run_blocks(lane, range(k), parallel)
    total = accs[0]
    for acc in accs[1:]:
        total += acc
    return total
