"""Winograd's transform matrices, and the weight transform remembered between calls.

Notation as in ``ops.winograd``: F(m x m, 3x3), a = m + 2; B, G, A are Lavin & Gray's
matrices, applied in 2-D as Kronecker products (a*a by a*a, a*a by 9, m*m by a*a).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import numpy as np

from .im2col import scratch
from .threads import bands, matmul, num_threads, run_blocks

# 1-D transforms, exact rationals (Lavin & Gray): interpolation points 0, +-1 (F2);
# 0, +-1, +-2 and infinity (F4).
_MATRICES = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]),
        np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]])),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]])),
}
_KRON: dict = {}
_ucache_lock = threading.RLock()


def kron_matrices(m: int, dtype):
    """(kron(B^T,B^T), kron(G,G), kron(A^T,A^T)) for F(m x m, 3x3), in ``dtype``."""
    key = (m, np.dtype(dtype).str)
    if key not in _KRON:
        bt, g, at = (np.asarray(t, np.float64) for t in _MATRICES[m])
        _KRON[key] = tuple(np.ascontiguousarray(np.kron(t, t), dtype=dtype)
                           for t in (bt, g, at))
    return _KRON[key]


# ---- the weight transform, remembered while the weights stay the same ------------------
#
# U = kron(G, G) @ g is (a*a) / 9 times the weights and, for wide layers at small spatial
# size (VGG's 512-channel convs at batch 1), costs as much as the tile GEMMs.  Inference
# calls a layer again and again with the same weights, so U is kept -- but only once a
# second forward pass has shown the weights unchanged: the first keeps a copy of the
# weights, each later call compares them exactly with it (a mismatch is found in the first
# few values when an optimizer has stepped).  A backward pass may use a kept U but never
# promotes weights (its forward, moments earlier, saw the same weights), so training keeps
# small copies only, never U, and a changed array can never be paired with a stale U.
# U is kept in the layouts asked for: plain for the BLAS, packed into ``ops.points``'
# panels (U, and U^T for the dx pass) for its kernels; a backward pass adds its layout to
# weights a forward pass has promoted.

UCACHE_MIN_BYTES = 1 << 20       # smaller transforms are cheaper than the bookkeeping
UCACHE_MAX_BYTES = 1 << 30       # total U kept, least recently used dropped first
_ucache: OrderedDict = OrderedDict()   # key -> [weakref to w, copy of w, {layout: U}]
LAYOUTS = ("plain", "panels", "panels_t")
_UNSEEN = object()      # weight_transform's ``seen`` not given


SAME_SPLIT = 1 << 20      # arrays of this many bytes are compared in bands on the pool


def _memcmp():
    import ctypes
    try:
        fn = ctypes.CDLL(None).memcmp
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t], ctypes.c_int
    return fn


_MEMCMP = _memcmp()


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise-equal arrays (a stepped optimizer shows in the first few values).

    Contiguous arrays are compared with the C library's memcmp, band by band on the
    pool: the comparison is bound by memory bandwidth, which one core cannot use up,
    and memcmp makes no temporary (np.array_equal writes a boolean array as large as
    its inputs, then reads it back: VGG's 512-channel weights took 0.7-1.0 ms that way,
    0.45-0.5 ms with memcmp on 2 threads)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if _MEMCMP is None or not (a.flags.c_contiguous and b.flags.c_contiguous):
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        return bool(np.array_equal(a.view(np.uint8), b.view(np.uint8)))
    pa, pb, size = a.ctypes.data, b.ctypes.data, a.nbytes
    head = min(size, 1024)
    if _MEMCMP(pa, pb, head) != 0:
        return False
    if size < SAME_SPLIT:
        return _MEMCMP(pa + head, pb + head, size - head) == 0
    return all(run_blocks(lambda s: _MEMCMP(pa + s.start, pb + s.start, s.stop - s.start) == 0,
                          bands(size, num_threads())))


def weight_transform(w: np.ndarray, m: int, dtype, promote: bool = True,
                     tag: str | None = None, layout: str = "plain", seen=_UNSEEN,
                     with_entry: bool = False):
    """U = kron(G, G) @ g: (a*a, C, F) for F(m x m, 3x3), cached as described above
    (``promote=False``: a backward pass, which never promotes weights to the cache but
    keeps another layout of weights a forward pass has promoted).

    ``layout``: "plain" (a*a, C, F); "panels", U packed for ``ops.points`` (flat);
    "panels_t", U^T (a*a, F, C) packed (the dx pass's).  With ``tag`` a plain U that is
    not kept goes into that scratch buffer (valid until the calling thread's next use of
    the tag) instead of fresh memory.

    ``seen``: the entry the forward pass of this backward one got (``with_entry``).  The
    weights are then not compared again: a kept U is the forward's, and a missing layout
    is made from the forward's copy of the weights -- the gradient belongs to the
    weights the forward used, even if they were changed in place since.  A forward pass
    asks ``with_entry`` for ``(U, entry)``: the entry to hand on (None when not cached)."""
    u, entry = _weight_transform(w, m, dtype, promote, tag, layout, seen)
    return (u, entry) if with_entry else u


def _weight_transform(w, m, dtype, promote, tag, layout, seen):
    if layout not in LAYOUTS:
        raise ValueError(f"weight_transform: layout must be one of {LAYOUTS}, got {layout!r}")
    _, _, c, f = w.shape
    a2 = (m + 2) ** 2
    kg = kron_matrices(m, dtype)[1]

    def transform(keep=False, g=w):
        out = None if keep or tag is None or layout != "plain" else scratch(
            tag, (a2, c * f), dtype)
        u = matmul(kg, g.reshape(9, c * f).astype(dtype, copy=False),
                   out=out).reshape(a2, c, f)
        if layout == "plain":
            return u
        from .points import pack
        return pack(u if layout == "panels" else u.transpose(0, 2, 1))

    if seen is not _UNSEEN:                                # the forward's entry (or None)
        if seen is None:
            return transform(), None
        if not seen[2]:                                    # not kept: made from its copy
            return transform(g=seen[1]), seen
        u = seen[2].get(layout)
        if u is None:
            u = transform(keep=True, g=seen[1])
            u.flags.writeable = False
            with _ucache_lock:
                seen[2][layout] = u
                _trim_ucache()
        return u, seen
    if a2 * c * f * np.dtype(dtype).itemsize < UCACHE_MIN_BYTES:
        return transform(), None
    key = (id(w), w.shape, w.dtype.str, m, np.dtype(dtype).str)
    entry = weight_entry(w, m, dtype, key)
    if entry is not None:
        kept = entry[2]
        if layout in kept:
            u = kept[layout]
        elif kept or promote:            # a second sighting, or another layout promoted
            u = kept[layout] = transform(keep=True)
            u.flags.writeable = False
        else:
            return transform(), entry
        with _ucache_lock:
            _ucache.move_to_end(key)
            _trim_ucache()
        return u, entry
    u = transform()
    if not promote:
        return u, None
    try:  # the entry dies with the weight array
        ref = weakref.ref(w, lambda _, key=key: _drop(key))
    except TypeError:
        return u, None
    entry = [ref, w.copy(), {}]
    with _ucache_lock:
        _ucache[key] = entry
        _trim_ucache()
    return u, entry


def weight_entry(w: np.ndarray, m: int, dtype, key=None):
    """The cache entry of ``w`` when its values are those the entry was made from, else
    None."""
    if key is None:
        key = (id(w), w.shape, w.dtype.str, m, np.dtype(dtype).str)
    with _ucache_lock:
        entry = _ucache.get(key)
    if entry is not None and entry[0]() is w and _same(entry[1], w):
        return entry
    return None


def _drop(key) -> None:
    with _ucache_lock:
        _ucache.pop(key, None)


def _entry_bytes(entry) -> int:
    return entry[1].nbytes + sum(u.nbytes for u in entry[2].values())


def _trim_ucache():
    total = sum(_entry_bytes(e) for e in _ucache.values())
    while total > UCACHE_MAX_BYTES and len(_ucache) > 1:
        _, entry = _ucache.popitem(last=False)
        total -= _entry_bytes(entry)


def clear_weight_cache() -> None:
    with _ucache_lock:
        _ucache.clear()
