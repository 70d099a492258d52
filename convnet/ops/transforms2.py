"""Winograd F(2x2,3x3)'s tile transforms, compiled (numba): ``ops.transforms4``'s F(4x4)
kernels' counterparts, with the same signatures (``pool_tiles`` is None: F(2x2)'s fused pool takes
the NumPy window scan after ``output_tiles``).

The 1-D matrices (Lavin & Gray; ``winograd_transforms._MATRICES[2]``) are all 0 and +-1,
so every transform is a few adds and exact in any float type:

    B^T d = (d0 - d2, d1 + d2, d2 - d1, d1 - d3)        A^T m = (m0 + m1 + m2, m1 - m2 - m3)
    B v   = (v0, v1 - v2 + v3, v1 + v2 - v0, -v3)       A y   = (y0, y0 + y1, y0 - y1, -y1)

The NumPy path applies them as Kronecker-product GEMMs over gathered copies of the
tiles; with few tiles (VGG's 14x14 layers at batch 1: 49) that cost 0.5-0.6 ms per
transform, as long as a third of the point GEMMs (benchmarks/RESULTS.md, thirteenth
pass).  These read and write each tile once.
"""

from __future__ import annotations

from . import jit

_built: dict = {}


def kernels():
    """The compiled F(2x2) kernels (a namespace), or None when ``ops.jit`` is off."""
    if not jit.enabled():
        return None
    return jit.built(_built, "f2", _build)


def _build():
    import types

    import numpy as np
    from numba import njit

    compiled = njit(nogil=True, cache=False)

    @compiled
    def input_tiles(grid, tb, tw, v):
        """V = B^T d B for each 4 x 4 tile of grid (Nb, 2TB+2, 2TW+2, C): v (16, P, C)."""
        nb, c = grid.shape[0], grid.shape[3]
        t = np.empty((4, 4, c), grid.dtype)
        for n in range(nb):
            for ty in range(tb):
                for tx in range(tw):
                    p = (n * tb + ty) * tw + tx
                    r0, c0 = 2 * ty, 2 * tx
                    for j in range(4):                     # columns: t[:, j] = B^T d[:, j]
                        d0, d1 = grid[n, r0, c0 + j], grid[n, r0 + 1, c0 + j]
                        d2, d3 = grid[n, r0 + 2, c0 + j], grid[n, r0 + 3, c0 + j]
                        for ch in range(c):
                            t[0, j, ch] = d0[ch] - d2[ch]
                            t[1, j, ch] = d1[ch] + d2[ch]
                            t[2, j, ch] = d2[ch] - d1[ch]
                            t[3, j, ch] = d1[ch] - d3[ch]
                    for i in range(4):                     # rows: V[i, :] = t[i, :] B
                        s = t[i]
                        o0, o1, o2, o3 = v[4 * i, p], v[4 * i + 1, p], v[4 * i + 2, p], v[
                            4 * i + 3, p]
                        for ch in range(c):
                            o0[ch] = s[0, ch] - s[2, ch]
                            o1[ch] = s[1, ch] + s[2, ch]
                            o2[ch] = s[2, ch] - s[1, ch]
                            o3[ch] = s[1, ch] - s[3, ch]

    @compiled
    def output_tiles(mm, tb, tw, bias, relu, out, n0, r0, rows, cols):
        """out[n0 + n, r0 + y, x] = (A^T M A)[y, x] + bias (ReLU'd), y < rows, x < cols."""
        nb, f = mm.shape[1] // (tb * tw), mm.shape[2]
        zero = mm.dtype.type(0)
        t = np.empty((2, 4, f), mm.dtype)
        for n in range(nb):
            for ty in range(tb):
                for tx in range(tw):
                    p = (n * tb + ty) * tw + tx
                    for j in range(4):                     # columns: t[:, j] = A^T M[:, j]
                        m0, m1, m2, m3 = mm[j, p], mm[4 + j, p], mm[8 + j, p], mm[12 + j, p]
                        for ch in range(f):
                            t[0, j, ch] = m0[ch] + m1[ch] + m2[ch]
                            t[1, j, ch] = m1[ch] - m2[ch] - m3[ch]
                    x0 = 2 * tx
                    both = x0 + 1 < cols
                    for i in range(2):
                        y = 2 * ty + i
                        if y >= rows:
                            break
                        s = t[i]
                        row = out[n0 + n, r0 + y]
                        o0, o1 = row[x0], row[min(x0 + 1, cols - 1)]   # alias a valid one
                        for ch in range(f):
                            bb = bias[ch]
                            y0 = s[0, ch] + s[1, ch] + s[2, ch] + bb
                            y1 = s[1, ch] - s[2, ch] - s[3, ch] + bb
                            if relu:                       # NaN < 0 is False: NaN stays
                                y0 = zero if y0 < zero else y0
                                y1 = zero if y1 < zero else y1
                            o0[ch] = y0
                            if both:                       # but it is not written
                                o1[ch] = y1

    @compiled
    def grad_tiles(dy, tb, tw, dm):
        """dM = A dY A^T for each 2 x 2 tile of dy (Nb, 2TB, 2TW, F): dm (16, P, F)."""
        nb, f = dy.shape[0], dy.shape[3]
        t = np.empty((4, 2, f), dy.dtype)
        for n in range(nb):
            for ty in range(tb):
                for tx in range(tw):
                    p = (n * tb + ty) * tw + tx
                    r0, c0 = 2 * ty, 2 * tx
                    for j in range(2):                     # columns: t[:, j] = A dY[:, j]
                        g0, g1 = dy[n, r0, c0 + j], dy[n, r0 + 1, c0 + j]
                        for ch in range(f):
                            t[0, j, ch] = g0[ch]
                            t[1, j, ch] = g0[ch] + g1[ch]
                            t[2, j, ch] = g0[ch] - g1[ch]
                            t[3, j, ch] = -g1[ch]
                    for i in range(4):                     # rows: dM[i, :] = t[i, :] A^T
                        s = t[i]
                        q0, q1, q2, q3 = dm[4 * i, p], dm[4 * i + 1, p], dm[4 * i + 2, p], dm[
                            4 * i + 3, p]
                        for ch in range(f):
                            q0[ch] = s[0, ch]
                            q1[ch] = s[0, ch] + s[1, ch]
                            q2[ch] = s[0, ch] - s[1, ch]
                            q3[ch] = -s[1, ch]

    @compiled
    def add_tiles(dv, tb, tw, dg):
        """dg[n, 2ty + i, 2tx + j] += (B dV B^T)[i, j]: the input-gradient tiles, whose
        two-row and two-column overlaps add (dg is (Nb, 2TB+2, 2TW+2, C))."""
        c = dv.shape[2]
        nb = dv.shape[1] // (tb * tw)
        t = np.empty((4, 4, c), dv.dtype)
        for n in range(nb):
            for ty in range(tb):
                for tx in range(tw):
                    p = (n * tb + ty) * tw + tx
                    for j in range(4):                     # columns: t[:, j] = B dV[:, j]
                        v0, v1, v2, v3 = dv[j, p], dv[4 + j, p], dv[8 + j, p], dv[12 + j, p]
                        for ch in range(c):
                            t[0, j, ch] = v0[ch]
                            t[1, j, ch] = v1[ch] - v2[ch] + v3[ch]
                            t[2, j, ch] = v1[ch] + v2[ch] - v0[ch]
                            t[3, j, ch] = -v3[ch]
                    r0, c0 = 2 * ty, 2 * tx
                    for i in range(4):                     # rows: dd[i, :] = t[i, :] B^T
                        s = t[i]
                        row = dg[n, r0 + i]
                        g0, g1, g2, g3 = row[c0], row[c0 + 1], row[c0 + 2], row[c0 + 3]
                        for ch in range(c):
                            g0[ch] += s[0, ch]
                            g1[ch] += s[1, ch] - s[2, ch] + s[3, ch]
                            g2[ch] += s[1, ch] + s[2, ch] - s[0, ch]
                            g3[ch] += -s[3, ch]

    return types.SimpleNamespace(input_tiles=input_tiles, output_tiles=output_tiles,
                                 pool_tiles=None, grad_tiles=grad_tiles, add_tiles=add_tiles)
