"""Winograd F(4x4,3x3)'s tile transforms, compiled (numba; ``ops.jit.kernels()`` holds
them, ``ops.transforms2`` has F(2x2)'s).

NumPy runs the 2-D tile transforms of ``ops.winograd`` as dense Kronecker GEMMs
(36 x 36 for the input, 16 x 36 for the output) after a strided gather copy.  The 1-D
matrices are mostly zeros and small integers, so the transforms are a few adds per
value; written as loops over the channel axis (contiguous, vectorised by LLVM) they
read the padded input once and write each transformed tile once, instead of gathering
every overlapping 6 x 6 tile into memory and multiplying it by 36 x 36 mostly-zero
matrices.  On VGG's 64-channel layers that is most of the conv's time
(benchmarks/RESULTS.md, "Seventh pass").  They compile in about a second each.

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


def build():
    """The five kernels, compiled (a namespace)."""
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
