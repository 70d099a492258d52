"""Which algorithm runs a 2-D convolution: chosen per shape and cached, like cuDNN's.

Algorithms (see ``ops.im2col`` and ``ops.winograd``):
    "im2col"     blocked im2col + GEMM; runs every conv (groups, stride, dilation, padding)
    "gemm1x1"    1x1 kernel without padding: one GEMM on the pixel matrix
    "winograd2"  Winograd F(2x2,3x3): 3x3, stride 1, dilation 1, groups 1
    "winograd4"  Winograd F(4x4,3x3): same shapes, 4x fewer multiplies than direct
    "toeplitz"   row lowering + banded weight GEMM (``ops.toeplitz``): groups 1; chosen
                 for thin, narrow inputs (LeNet's layers)

``choose`` looks the shape up in a cache; on a miss it asks ``heuristic`` (rules
fitted to measurements on a 2-core AVX-512 Xeon, see benchmarks/RESULTS.md) or, under
``benchmark(True)``, times every applicable algorithm once on the real arguments, as
``torch.backends.cudnn.benchmark`` does.  ``force(name)`` overrides the choice inside a
block -- the tests use it to run every oracle test through every algorithm.  A forced
algorithm that cannot run a shape falls back to "im2col".
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import threading

ALGORITHMS = ("im2col", "gemm1x1", "winograd2", "winograd4", "toeplitz")

_local = threading.local()
_cache: dict = {}
_settings = {"benchmark": False}


@contextlib.contextmanager
def force(name: str | None):
    """Run every conv2d inside the block with algorithm ``name`` (None or "auto": choose)."""
    if name == "auto":
        name = None
    if name is not None and name not in ALGORITHMS:
        raise ValueError(f"conv algorithm must be one of {ALGORITHMS} or 'auto', got {name!r}")
    prev = getattr(_local, "forced", None)
    _local.forced = name
    try:
        yield
    finally:
        _local.forced = prev


def forced() -> str | None:
    return getattr(_local, "forced", None)


@contextlib.contextmanager
def benchmark(enabled: bool = True):
    """Inside the block, a new shape times every applicable algorithm once and caches
    the fastest (the choice outlives the block)."""
    prev = _settings["benchmark"]
    _settings["benchmark"] = bool(enabled)
    try:
        yield
    finally:
        _settings["benchmark"] = prev


def benchmarking() -> bool:
    return _settings["benchmark"]


def clear_cache() -> None:
    _cache.clear()


def cache_info() -> dict:
    """A copy of the per-shape choices: {shape key: algorithm}."""
    return dict(_cache)


def shape_key(x_shape, w_shape, stride, pads, dilation, groups, dtype) -> tuple:
    return (tuple(x_shape), tuple(w_shape), tuple(stride),
            tuple(tuple(p) for p in pads), tuple(dilation), int(groups), str(dtype))


def applicable(name, x_shape, w_shape, stride, pads, dilation, groups) -> bool:
    """Whether ``name`` can run this conv (any conv can run as "im2col")."""
    kh, kw = w_shape[:2]
    if name == "im2col":
        return True
    if name == "gemm1x1":
        return (kh, kw) == (1, 1) and groups == 1 and all(p == (0, 0) for p in
                                                          (tuple(q) for q in pads))
    if name in ("winograd2", "winograd4"):
        return ((kh, kw) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
                and groups == 1)
    if name == "toeplitz":
        return groups == 1
    raise ValueError(f"unknown conv algorithm {name!r}")


def candidates(x_shape, w_shape, stride, pads, dilation, groups) -> list[str]:
    return [a for a in ALGORITHMS
            if applicable(a, x_shape, w_shape, stride, pads, dilation, groups)]


def heuristic(x_shape, w_shape, stride, pads, dilation, groups) -> str:
    """The default choice, from measured crossovers (no timing at run time)."""
    if applicable("gemm1x1", x_shape, w_shape, stride, pads, dilation, groups):
        return "gemm1x1"
    if groups == 1:
        from .toeplitz import applies_well
        if applies_well(x_shape, w_shape, stride, pads, dilation, groups):
            return "toeplitz"
    if not applicable("winograd4", x_shape, w_shape, stride, pads, dilation, groups):
        return "im2col"
    n, h, w, c = x_shape
    f = w_shape[3]
    (pt, pb), (pl, pr) = pads
    out_h, out_w = h + pt + pb - 2, w + pl + pr - 2
    pixels = n * out_h * out_w
    if c < 16 or f < 16 or pixels < 64:
        return "im2col"            # transforms cost more than they save on thin layers
    # Winograd's weight transform and its a*a GEMMs re-read (a*a) x C x F weights; with
    # few output pixels per weight, im2col's single GEMM over 9 C F weights wins.
    # Crossovers measured (forward + backward, float32, with every core on the pool) on
    # VGG/CIFAR layer shapes: 14x14x512 at batch 1 (0.4 pixels per channel) im2col;
    # 28x28x256..512 (1.5-3) and everything wider in pixels F(4x4), which beat F(2x2)
    # on every such layer.
    per_channel = pixels / min(c, f)
    if per_channel < 0.75:
        return "im2col"
    if per_channel < 1.0:
        return "winograd2"
    return "winograd4"


def choose(x_shape, w_shape, stride, pads, dilation, groups, dtype, timer=None) -> str:
    """The algorithm for this conv: forced, cached, timed (``benchmark``) or heuristic.

    ``timer(name) -> seconds`` runs one candidate; it is used only in benchmark mode."""
    name = forced()
    if name is not None:
        return name if applicable(name, x_shape, w_shape, stride, pads, dilation,
                                  groups) else "im2col"
    key = shape_key(x_shape, w_shape, stride, pads, dilation, groups, dtype)
    name = _cache.get(key)
    if name is None:
        cands = candidates(x_shape, w_shape, stride, pads, dilation, groups)
        if _settings["benchmark"] and timer is not None and len(cands) > 1:
            name = min(cands, key=timer)
        else:
            name = heuristic(x_shape, w_shape, stride, pads, dilation, groups)
        _cache[key] = name
    return name


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
#                            round trip costs 70-100 us in this VM: see _Pool)


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
    if 2 * count * m * k * n < PARALLEL_FLOPS:
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
    rows = m >= n
    if rows:
        run_blocks(lambda s: np.matmul(a[..., s, :], b, out=out[..., s, :]), bands(m, t))
    else:
        run_blocks(lambda s: np.matmul(a, b[..., s], out=out[..., s]), bands(n, t))
    return out


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
