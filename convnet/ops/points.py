"""Winograd's point GEMMs in register blocks (float32, with numba).

Notation as in ``ops.winograd``: T = a*a transform points, P tiles, C input and F output
channels.  Each point t is one small GEMM:

    forward     M[t]  (P, F) = V[t] (P, C) @ U[t] (C, F)
    dx          dV[t] (P, C) = dM[t] (P, F) @ U[t]^T (F, C)
    dW          dU[t] (C, F) = V[t]^T (C, P) @ dM[t] (P, F),  then dg = kron(G, G)^T dU

With few tiles -- VGG-16's 14x14 and 28x28 layers at batch 1: 49 or 196 tiles of
F(2x2), 16 or 49 of F(4x4) -- the BLAS does these badly: for each of the T GEMMs it
packs all of U[t] (C x F, a megabyte at 512 x 512) to use it for only P rows.  On 2
cores, 16 x (49 x 512 @ 512 x 512) ran at 138-146 GFLOP/s in OpenBLAS and 190-200
here; 36 x (16 x 512 @ 512 x 512) at 94-107 against 140-150 (benchmarks/RESULTS.md,
thirteenth pass).  Here U is packed once, when it is made (and kept with the weights,
``winograd_transforms``), into panels of ``lanes`` output channels ([t][chunk][k][lanes]:
one panel's rows lie next to each other, where U's own layout puts them F floats apart),
and ``nn`` keeps a block of 6 rows x ``lanes`` outputs in vector registers (24 of the 32
AVX-512 registers at 64 lanes) for the whole sum over k, as ``ops.direct``'s deep kernel
does:

    for each point t and each chunk of ``lanes`` columns:
        for each block of 6 rows p (a short last block repeats its last row):
            acc_i = 0
            for k:  w = panel[k];  acc_i += A[t, p_i, k] * w      # 1 load, 6 FMAs
            out[t, p_i, chunk] = acc_i

``grad`` makes dW: each dU[t] has only P terms per output, so its (T, C, F) products --
16 MB at 512 x 512 -- cost more to write and read back for the fold into 9 taps than to
compute (the BLAS's dU and the fold took 4.9 ms).  So per chunk of F and block of
K_BLOCK rows of C, ``rows`` sums every point's 6 x ``lanes`` register blocks over the
tiles (dM's panel for one point and chunk, P x lanes floats, stays in L1) into a
T x K_BLOCK x lanes buffer (in L1/L2), and ``fold`` adds that into the 9 taps through
kron(G, G)^T's nonzeros (64 of 144 for F(2x2), 196 of 324 for F(4x4)) before moving on;
only dW itself (9 x C x F) is written.

The threads take the points (nn: T is 16 or 36) or the chunks of F (grad); a backward
hands dW's and dx's tasks to the pool together (``run``).  In blocks of many tiles
(``ops.winograd``'s other path) the forward's and dx's GEMMs use ``nn`` too when C and F
are at most ``winograd.PANEL_CHANNELS``, one block per pool thread.
"""

from __future__ import annotations

import numpy as np

from . import jit
from .im2col import aligned_empty, scratch
from .threads import bands, num_threads, run_blocks

PACK_T_SIZE = 1 << 16  # pack(): a transposed U of at least this many values is packed
#                        by the compiled kernel
K_BLOCK = 24  # weight_grad: rows of every point's product kept at once (T x 24 x lanes)
STREAM_BYTES = 4 << 20  # weight_grad: a dW of this size is stored past the caches (VGG's
#                         512 x 512: 9.4 MB; 64-byte aligned, with 16 % less time than
#                         unaligned, cached stores)
_built: dict = {}


def applies(c: int, f: int, dtype) -> bool:
    """Whether the kernels can run GEMMs over ``c`` and ``f`` channels in ``dtype``."""
    return (np.dtype(dtype) == np.float32 and c % 16 == 0 and f % 16 == 0
            and jit.enabled())


def chunks(n: int) -> list[tuple[int, int]]:
    """(first column, lanes) chunks of n (a multiple of 16): 64 wide, then 32, then 16."""
    out, n0 = [], 0
    for lanes in (64, 32, 16):
        while n - n0 >= lanes:
            out.append((n0, lanes))
            n0 += lanes
            if lanes < 64:
                break
    return out


def pack(b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(T, K, N) -> its panels, flat: chunk (n0, lanes) of point t at t*K*N + K*n0,
    laid out [k][lanes] (into ``out``, T*K*N values, when given).

    b = u.transpose(0, 2, 1) of a contiguous float32 u (the dx pass's U^T) is packed by
    a compiled kernel, 16 values of a column of u per gather, the threads taking the
    points: NumPy's strided copy took 4.3 ms for a 512 x 512 layer's 16 points."""
    t, k, n = b.shape
    if out is None:
        out = aligned_empty(t * k * n, b.dtype)
    isz = b.itemsize
    if (b.dtype == np.float32 and b.strides == (n * k * isz, isz, k * isz)
            and b.size >= PACK_T_SIZE and n % 16 == 0 and jit.enabled()):
        u = np.lib.stride_tricks.as_strided(b, (t, n, k), (n * k * isz, k * isz, isz))
        starts = np.array([c[0] for c in chunks(n)], np.int64)
        widths = np.array([c[1] for c in chunks(n)], np.int64)
        kernel = jit.built(_built, "pack_t", _build_pack_t)
        uf = u.reshape(-1)                      # a view: u is b's contiguous base
        run_blocks(lambda s: kernel(uf, out, k, n, starts, widths, s.start, s.stop),
                   bands(t, min(t, num_threads())))
        return out
    view = out.reshape(t, k * n)
    for n0, lanes in chunks(n):
        np.copyto(view[:, k * n0:k * (n0 + lanes)].reshape(t, k, lanes),
                  b[:, :, n0:n0 + lanes])
    return out


def _build_pack_t():
    from numba import njit

    from .simd import vgather, vstore

    @njit(nogil=True, cache=False)
    def pack_t(uf, out, k_, n_, starts, widths, t0, t1):
        """pack() of u.transpose(0, 2, 1) for points t0..t1: out[t K N + K n0 + k lanes
        + l] = u[t, n0 + l, k], 16 rows of u at a time (their lines stay in L1 while k
        walks along them)."""
        for t in range(t0, t1):
            for ci in range(starts.size):
                n0, lanes = starts[ci], widths[ci]
                base = t * k_ * n_ + k_ * n0
                for l0 in range(0, lanes, 16):
                    src = (t * n_ + n0 + l0) * k_
                    for kk in range(k_):
                        vstore(out, base + kk * lanes + l0, vgather(uf, src + kk, k_, 16))
    return pack_t


def _kernels(lanes: int):
    return jit.built(_built, lanes, lambda: _build(lanes))


def _build(lanes):
    from numba import njit

    from .simd import store_fence, vbcast, vfma, vload, vsplat, vstore, vstream

    @njit(nogil=True, cache=False)
    def nn(a, panels, out, p_, k_, n_, t0, t1, n0, n1):
        """out[t, :, n0:n1] = a[t] @ B[t][:, n0:n1] for t0 <= t < t1 (chunks of lanes)."""
        zero = vsplat(np.float32(0), lanes)
        for t in range(t0, t1):
            for c0 in range(n0, n1, lanes):
                w0 = t * k_ * n_ + k_ * c0
                for p0 in range(0, p_, 6):
                    last = min(6, p_ - p0) - 1
                    r0 = (t * p_ + p0) * k_
                    r1, r2 = r0 + min(1, last) * k_, r0 + min(2, last) * k_
                    r3, r4 = r0 + min(3, last) * k_, r0 + min(4, last) * k_
                    r5 = r0 + last * k_
                    a0, a1, a2, a3, a4, a5 = zero, zero, zero, zero, zero, zero
                    w = w0
                    for k in range(k_):
                        wv = vload(panels, w, lanes)
                        a0 = vfma(vbcast(a, r0 + k, lanes), wv, a0)
                        a1 = vfma(vbcast(a, r1 + k, lanes), wv, a1)
                        a2 = vfma(vbcast(a, r2 + k, lanes), wv, a2)
                        a3 = vfma(vbcast(a, r3 + k, lanes), wv, a3)
                        a4 = vfma(vbcast(a, r4 + k, lanes), wv, a4)
                        a5 = vfma(vbcast(a, r5 + k, lanes), wv, a5)
                        w += lanes
                    o0 = (t * p_ + p0) * n_ + c0
                    # a short block stores its repeated row last, with its own value
                    vstore(out, o0 + last * n_, a5)
                    vstore(out, o0 + min(4, last) * n_, a4)
                    vstore(out, o0 + min(3, last) * n_, a3)
                    vstore(out, o0 + min(2, last) * n_, a2)
                    vstore(out, o0 + min(1, last) * n_, a1)
                    vstore(out, o0, a0)

    @njit(nogil=True, cache=False)
    def rows(a, bp, buf, p_, k_, n_, t, c0, kb, ke, kblock):
        """buf[t][k - kb] = (A[t]^T @ B[t])[k, c0:c0 + lanes] for kb <= k < ke: A (T, P,
        K), ``bp`` B packed (T, P, N panels), ``buf`` T x kblock x lanes.  (A function
        of its own: inlined into ``grad``'s loops, LLVM kept the accumulators in
        registers less well -- 70 against 110 GFLOP/s per core.)"""
        zero = vsplat(np.float32(0), lanes)
        w0 = t * p_ * n_ + p_ * c0
        for k0 in range(kb, ke, 6):
            last = min(6, ke - k0) - 1
            r = t * p_ * k_ + k0
            a0, a1, a2, a3, a4, a5 = zero, zero, zero, zero, zero, zero
            w = w0
            for _ in range(p_):
                wv = vload(bp, w, lanes)
                a0 = vfma(vbcast(a, r, lanes), wv, a0)
                a1 = vfma(vbcast(a, r + min(1, last), lanes), wv, a1)
                a2 = vfma(vbcast(a, r + min(2, last), lanes), wv, a2)
                a3 = vfma(vbcast(a, r + min(3, last), lanes), wv, a3)
                a4 = vfma(vbcast(a, r + min(4, last), lanes), wv, a4)
                a5 = vfma(vbcast(a, r + last, lanes), wv, a5)
                r += k_
                w += lanes
            o0 = (t * kblock + k0 - kb) * lanes
            vstore(buf, o0 + last * lanes, a5)
            vstore(buf, o0 + min(4, last) * lanes, a4)
            vstore(buf, o0 + min(3, last) * lanes, a3)
            vstore(buf, o0 + min(2, last) * lanes, a2)
            vstore(buf, o0 + min(1, last) * lanes, a1)
            vstore(buf, o0, a0)

    @njit(nogil=True, cache=False)
    def fold(buf, nz_start, nz_t, nz_g, out, k_, n_, c0, kb, ke, kblock, stream):
        """out[q, k, c0:c0 + lanes] = sum over the nonzeros g of gt[q] of g * buf[t][k - kb]
        (in non-temporal stores with ``stream``)."""
        zero = vsplat(np.float32(0), lanes)
        for k in range(kb, ke):
            for q in range(9):
                acc = zero
                for j in range(nz_start[q], nz_start[q + 1]):
                    acc = vfma(vsplat(nz_g[j], lanes),
                               vload(buf, (nz_t[j] * kblock + k - kb) * lanes, lanes), acc)
                if stream:
                    vstream(out, (q * k_ + k) * n_ + c0, acc)
                else:
                    vstore(out, (q * k_ + k) * n_ + c0, acc)

    @njit(nogil=True, cache=False)
    def grad(a, bp, nz_start, nz_t, nz_g, out, p_, k_, n_, t_, n0, n1, buf, kblock, stream):
        """out[q][:, n0:n1] = sum_t gt[q, t] * (A[t]^T @ B[t])[:, n0:n1] for the 9 taps q
        (gt given by its nonzeros, row by row): per chunk and block of ``kblock`` rows,
        every point's product goes to ``buf``, then is folded into the taps."""
        for c0 in range(n0, n1, lanes):
            for kb in range(0, k_, kblock):
                ke = min(kb + kblock, k_)
                for t in range(t_):
                    rows(a, bp, buf, p_, k_, n_, t, c0, kb, ke, kblock)
                fold(buf, nz_start, nz_t, nz_g, out, k_, n_, c0, kb, ke, kblock, stream)
        if stream:
            store_fence()

    return nn, grad


def _check(name, arr, shape):
    if arr.dtype != np.float32 or arr.shape != shape or not arr.flags.c_contiguous:
        raise ValueError(f"points.{name}: expected a C-contiguous float32 array of shape "
                         f"{shape}, got {arr.dtype} {arr.shape}"
                         f"{'' if arr.flags.c_contiguous else ' (not contiguous)'}")


def _runs(n):
    """(first, end, lanes): runs of equal-width chunks of n."""
    runs = []                               # (first, end, lanes): equal-width chunk runs
    for n0, lanes in chunks(n):
        if runs and runs[-1][2] == lanes:
            runs[-1] = (runs[-1][0], n0 + lanes, lanes)
        else:
            runs.append((n0, n0 + lanes, lanes))
    return runs


def matmul_packed_tasks(a: np.ndarray, panels: np.ndarray, n: int, out: np.ndarray,
                        pieces: int | None = None) -> list:
    """``matmul_packed``'s work as ``pieces`` tasks (default: one per thread), each a
    callable computing a band of the points, for ``run``."""
    t, p, k = a.shape
    _check("matmul_packed", a, (t, p, k))
    _check("matmul_packed", panels, (t * k * n,))
    _check("matmul_packed", out, (t, p, n))
    af, bf, of = a.reshape(-1), panels, out.reshape(-1)
    kernels = [(lo, hi, _kernels(lanes)[0]) for lo, hi, lanes in _runs(n)]

    def task(s):
        for lo, hi, kern in kernels:
            kern(af, bf, of, p, k, n, s.start, s.stop, lo, hi)

    return [lambda s=s: task(s) for s in bands(t, min(t, pieces or num_threads()))]


def matmul_packed(a: np.ndarray, panels: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """out[t] = a[t] @ B[t] for every point t: a (T, P, K), ``panels`` = pack(B) with B
    (T, K, N), out (T, P, N); float32, contiguous.  The threads take bands of points."""
    run(matmul_packed_tasks(a, panels, n, out))
    return out


def weight_grad_tasks(a: np.ndarray, b: np.ndarray, gt: np.ndarray, out: np.ndarray,
                      pieces: int | None = None) -> list:
    """``weight_grad``'s work as tasks (``pieces`` shares of the chunks of N, default
    one per thread), for ``run``; b is packed here, before any task runs."""
    t, p, k = a.shape
    n = b.shape[2]
    _check("weight_grad", a, (t, p, k))
    _check("weight_grad", b, (t, p, n))
    _check("weight_grad", gt, (9, t))
    _check("weight_grad", out, (9, k, n))
    bp = pack(b, scratch("points_bp", (t * p * n,), np.float32))      # [t][chunk][p][lanes]
    nz_q, nz_t = np.nonzero(gt)                         # gt's nonzeros, tap by tap
    nz_g = np.ascontiguousarray(gt[nz_q, nz_t])
    nz_start = np.searchsorted(nz_q, np.arange(10)).astype(np.int64)
    nz_t = nz_t.astype(np.int64)
    af, of = a.reshape(-1), out.reshape(-1)
    kblock = K_BLOCK
    # dW is written once: a large one past the caches (no reads for ownership)
    stream = out.nbytes >= STREAM_BYTES and out.ctypes.data % 64 == 0
    runs = _runs(n)
    parts = chunks(n)

    def task(s):
        buf = aligned_empty(t * kblock * 64)
        first, end = parts[s.start][0], parts[s.stop - 1][0] + parts[s.stop - 1][1]
        for lo, hi, lanes in runs:
            lo, hi = max(lo, first), min(hi, end)
            if lo < hi:
                _kernels(lanes)[1](af, bp, nz_start, nz_t, nz_g, of, p, k, n, t, lo, hi,
                                   buf, kblock, stream)

    return [lambda s=s: task(s)
            for s in bands(len(parts), min(len(parts), pieces or num_threads()))]


def weight_grad(a: np.ndarray, b: np.ndarray, gt: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out[q] = sum_t gt[q, t] * a[t]^T @ b[t]: Winograd's dW, kron(G, G)^T applied to the
    points' products as they are made (no (T, K, N) intermediate).  a (T, P, K),
    b (T, P, N), gt (9, T), out (9, K, N); float32, contiguous.  The threads take
    chunks of N (each chunk's 9 x K x lanes outputs are one thread's)."""
    run(weight_grad_tasks(a, b, gt, out))
    return out


def run(tasks: list) -> None:
    """Run independent tasks (callables) on the pool, each thread taking the next one
    left: the backward runs dW's and dx's tasks in one round, so a thread that ends one
    product early goes on with the other."""
    run_blocks(lambda task: task(), tasks)
