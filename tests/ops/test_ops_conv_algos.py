"""Every conv2d algorithm (im2col, gemm1x1, winograd2, winograd4, toeplitz, direct, narrow,
winograd_rows), forced
in turn through the same oracle tests: a loop reference written here, torch, and float64
finite differences, always with random upstream gradients.  Plus Winograd's float32 error
against a float64 direct conv, the blocked/threaded paths, and the algorithm cache."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ALGO_VARIANTS, base_algo, force_algo, from_torch, numerical_grad, to_torch, tol

import convnet.functional as F
from convnet import Tensor
from convnet.ops import algo, im2col, jit, toeplitz, winograd, winograd_transforms
from convnet.ops import threads as ops_threads
from convnet.ops.conv import algorithm_of, conv2d_backward, conv2d_forward
from convnet.ops.winograd_backward import winograd_backward

ALGOS = ALGO_VARIANTS       # every algorithm, and F(4x4) with NumPy transforms
DTYPES = [np.float32, np.float64]

# (x shape, w shape, stride, pads, dilation, groups): the awkward cases, each run under
# every algorithm (an algorithm that cannot run a shape must fall back to im2col).
CONFIGS = [
    ((2, 7, 9, 4), (3, 3, 4, 5), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),     # odd, partial tiles
    ((1, 10, 10, 3), (3, 3, 3, 6), (1, 1), ((0, 2), (1, 0)), (1, 1), 1),   # asymmetric pads
    ((3, 5, 6, 8), (3, 3, 8, 4), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),     # valid
    ((1, 1, 1, 4), (3, 3, 4, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),     # 1x1 spatial
    ((2, 8, 8, 6), (3, 3, 6, 7), (1, 1), ((2, 2), (3, 1)), (1, 1), 1),     # pad > 1
    ((2, 9, 9, 4), (3, 3, 2, 6), (2, 2), ((1, 1), (1, 1)), (1, 1), 2),     # groups, stride 2
    ((2, 9, 11, 4), (1, 1, 4, 6), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),    # 1x1
    ((2, 9, 11, 4), (1, 1, 4, 6), (2, 3), ((0, 0), (0, 0)), (1, 1), 1),    # 1x1 strided
    ((1, 6, 7, 4), (1, 1, 4, 3), (1, 1), ((1, 0), (0, 1)), (1, 1), 1),     # 1x1 padded
    ((2, 9, 11, 4), (3, 2, 4, 6), (1, 1), ((2, 1), (0, 3)), (2, 1), 1),    # dilation, stride 1
    ((2, 9, 11, 4), (3, 3, 4, 6), (3, 2), ((2, 1), (0, 3)), (1, 2), 1),    # stride 3, dilation
    ((1, 8, 8, 4), (3, 3, 1, 4), (1, 1), ((1, 1), (1, 1)), (1, 1), 4),     # depthwise
    ((1, 7, 7, 3), (5, 5, 3, 2), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),     # 5x5
    ((2, 9, 11, 6), (3, 2, 6, 4), (1, 1), ((2, 1), (0, 3)), (2, 1), 1),    # dilation, F < C
    ((1, 5, 6, 5), (3, 3, 5, 3), (1, 1), ((3, 0), (0, 4)), (1, 1), 1),     # pad > kernel
    ((2, 11, 10, 1), (5, 5, 1, 6), (2, 1), ((1, 2), (0, 1)), (1, 2), 1),   # 1 channel (K-major)
    ((3, 12, 12, 6), (5, 5, 6, 16), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),  # LeNet conv2, F > C
    # F a multiple of 16 (the direct kernels' 64-, 32- and 16-channel chunks), rows of
    # 6-pixel blocks plus 1-5 left over:
    ((2, 9, 11, 3), (3, 3, 3, 16), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),    # a first layer
    ((1, 10, 13, 2), (3, 2, 2, 48), (2, 1), ((1, 2), (0, 3)), (1, 2), 1),   # stride, dilation
    ((2, 7, 8, 1), (3, 3, 1, 112), (1, 1), ((0, 0), (2, 1)), (2, 1), 1),    # 64 + 32 + 16
    # K > 32 (the "deep" direct kernel): 64 + 6 input channels (the sum kept in out
    # between channel blocks), 64 + 32 + 16 chunks, blocks of 6 across rows and images;
    # stride, dilation and asymmetric pads with two 64-channel chunks
    ((2, 6, 7, 70), (3, 3, 70, 112), (1, 1), ((1, 1), (0, 2)), (1, 1), 1),
    ((1, 9, 8, 20), (2, 3, 20, 128), (2, 1), ((1, 0), (1, 2)), (2, 1), 1),
]


def winograd_runs(xs, ws, stride, dil, groups):
    return ws[:2] == (3, 3) and stride == (1, 1) and dil == (1, 1) and groups == 1


def expected_algo(name, xs, ws, stride, pads, dil, groups, dtype=np.float32):
    name = base_algo(name)
    if name == "direct":           # float32, F a multiple of 16, numba (ops.direct)
        ok = groups == 1 and ws[3] % 16 == 0 and dtype == np.float32 and jit.enabled()
        return name if ok else "im2col"
    if name == "winograd_rows":    # 3-wide, width stride and dilation 1 (ops.winograd_rows)
        out_w = (xs[2] + sum(pads[1]) - 2 * dil[1] - 1) // stride[1] + 1
        ok = (groups == 1 and ws[1] == 3 and stride[1] == dil[1] == 1 and ws[3] % 16 == 0
              and out_w >= 5 and dtype == np.float32 and jit.enabled())
        return name if ok else "im2col"
    if name == "narrow":           # float32, groups 1, numba (ops.narrow)
        ok = groups == 1 and dtype == np.float32 and jit.enabled()
        return name if ok else "im2col"
    if name in ("winograd2", "winograd4"):
        return name if winograd_runs(xs, ws, stride, dil, groups) else "im2col"
    if name == "gemm1x1":
        ok = ws[:2] == (1, 1) and groups == 1 and pads == ((0, 0), (0, 0))
        return name if ok else "im2col"
    if name == "toeplitz":
        return name if groups == 1 else "im2col"
    return name


def naive(x, w, b, stride, pads, dil, groups, dout):
    """(out, dx, dw, db) in float64, one output pixel and one tap at a time."""
    x, w, dout = x.astype(np.float64), w.astype(np.float64), dout.astype(np.float64)
    n, h, wd, c = x.shape
    kh, kw, cg, f = w.shape
    fg = f // groups
    (pt, pb), (pl, pr) = pads
    xp = np.zeros((n, h + pt + pb, wd + pl + pr, c))
    xp[:, pt:pt + h, pl:pl + wd] = x
    oh, ow = dout.shape[1:3]
    out = np.zeros((n, oh, ow, f))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for a in range(oh):
        for q in range(ow):
            for i in range(kh):
                for j in range(kw):
                    r, s = a * stride[0] + i * dil[0], q * stride[1] + j * dil[1]
                    for g in range(groups):
                        xs = xp[:, r, s, g * cg:(g + 1) * cg]                  # (N, Cg)
                        wg = w[i, j, :, g * fg:(g + 1) * fg]                   # (Cg, Fg)
                        go = dout[:, a, q, g * fg:(g + 1) * fg]                # (N, Fg)
                        out[:, a, q, g * fg:(g + 1) * fg] += xs @ wg
                        dxp[:, r, s, g * cg:(g + 1) * cg] += go @ wg.T
                        dw[i, j, :, g * fg:(g + 1) * fg] += xs.T @ go
    out += b
    return out, dxp[:, pt:pt + h, pl:pl + wd], dw, dout.sum(axis=(0, 1, 2))


def out_shape(xs, ws, stride, pads, dil):
    return tuple((n + p[0] + p[1] - d * (k - 1) - 1) // s + 1
                 for n, k, s, p, d in zip(xs[1:3], ws[:2], stride, pads, dil))


def make(cfg, dtype, seed):
    xs, ws, stride, pads, dil, groups = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[3]).astype(dtype)
    dout = rng.standard_normal((xs[0], *out_shape(xs, ws, stride, pads, dil), ws[3])).astype(dtype)
    return x, w, b, dout


def run_algo(name, cfg, x, w, b, dout):
    xs, ws, stride, pads, dil, groups = cfg
    with force_algo(name):
        out, cache = conv2d_forward(x, w, b, stride, pads, dil, groups)
    assert algorithm_of(cache) == expected_algo(name, xs, ws, stride, pads, dil, groups, x.dtype)
    dx, dw, db = conv2d_backward(dout, cache, (True, True, True))
    return out, dx, dw, db


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c[0]}-{c[1]}-s{c[2]}-g{c[5]}")
@pytest.mark.parametrize("name", ALGOS)
def test_matches_naive_reference(name, cfg, dtype):
    x, w, b, dout = make(cfg, dtype, 1)
    got = run_algo(name, cfg, x, w, b, dout)
    want = naive(x, w, b, *cfg[2:], dout)
    for label, g, e in zip(("out", "dx", "dw", "db"), got, want):
        assert g.dtype == dtype, f"{label}: {g.dtype} (no up-cast of {dtype} allowed)"
        assert g.shape == e.shape, f"{label}: {g.shape} != {e.shape}"
        # Sums of up to K products: scale the absolute tolerance with the sum's size.
        atol = tol(dtype)["atol"] * max(1.0, float(np.abs(e).max()))
        np.testing.assert_allclose(g, e, rtol=tol(dtype)["rtol"], atol=atol,
                                   err_msg=f"{name} {label}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONFIGS[:2] + CONFIGS[4:12:2] + CONFIGS[9:11] + CONFIGS[13:],
                         ids=lambda c: f"{c[0]}-{c[1]}-s{c[2]}-g{c[5]}")
@pytest.mark.parametrize("name", ALGOS)
def test_matches_torch(name, cfg, dtype, torch):
    x, w, b, dout = make(cfg, dtype, 2)
    xs, ws, stride, pads, dil, groups = cfg
    got = run_algo(name, cfg, x, w, b, dout)
    xt, wt = to_torch(x, "nhwc", True), to_torch(w, "hwio", True)
    bt = to_torch(b, requires_grad=True)
    (pt, pb), (pl, pr) = pads
    o = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (pl, pr, pt, pb)), wt, bt,
                                   stride, 0, dil, groups)
    o.backward(to_torch(dout, "nhwc"))
    want = (from_torch(o, "nhwc"), from_torch(xt.grad, "nhwc"), from_torch(wt.grad, "hwio"),
            from_torch(bt.grad))
    for label, g, e in zip(("out", "dx", "dw", "db"), got, want):
        atol = tol(dtype)["atol"] * max(1.0, float(np.abs(e).max()))
        np.testing.assert_allclose(g, e, rtol=tol(dtype)["rtol"], atol=atol,
                                   err_msg=f"{name} {label}")


# (Not the last three configs: they are for the float32 direct kernels, which float64
# runs as im2col; their larger sums need a larger finite-difference step.)
@pytest.mark.parametrize("cfg", CONFIGS[:3] + CONFIGS[5:10] + CONFIGS[11:12] + CONFIGS[13:-5],
                         ids=lambda c: f"{c[0]}-{c[1]}-s{c[2]}-g{c[5]}")
@pytest.mark.parametrize("name", ALGOS)
def test_finite_differences(name, cfg):
    xs, ws, stride, pads, dil, groups = cfg
    x, w, b, dout = make(cfg, np.float64, 3)
    x, w = x[:1].copy(), w.copy()                 # batch 1 keeps the check quick
    dout = dout[:1]
    _, dx, dw, db = run_algo(name, cfg, x, w, b, dout)

    def f():
        with force_algo(name):
            return conv2d_forward(x, w, b, stride, pads, dil, groups)[0]
    np.testing.assert_allclose(dx, numerical_grad(f, x, dout), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, numerical_grad(f, w, dout), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, numerical_grad(f, b, dout), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ALGOS)
def test_functional_autograd_each_algorithm(name, rng):
    """Through F.conv2d and the tape: only the asked-for gradients, float32 kept."""
    x = Tensor(rng.standard_normal((2, 6, 6, 3)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 3, 3, 4)).astype(np.float32), requires_grad=True)
    k1 = Tensor(rng.standard_normal((1, 1, 4, 2)).astype(np.float32), requires_grad=True)
    with force_algo(name):
        out = F.conv2d(F.conv2d(x, w, padding=1), k1)
    out.backward(rng.standard_normal(out.shape).astype(np.float32))
    assert x.grad.dtype == w.grad.dtype == k1.grad.dtype == np.float32
    assert x.grad.shape == x.shape and w.grad.shape == w.shape


# ---- Winograd accuracy ---------------------------------------------------------------

@pytest.mark.parametrize("m, compiled", [(2, True), (2, False), (4, True), (4, False)])
@pytest.mark.parametrize("shape", [(2, 16, 16, 64, 64), (1, 13, 11, 128, 96)])
def test_winograd_float32_error_vs_float64_direct(m, compiled, shape):
    """Relative error (max |err| / max |exact|) <= 1e-4 for out, dx and dw, unit-variance
    data; F(4x4) with its tile transforms compiled (ops.jit, when numba is installed) and
    in NumPy."""
    n, h, wd, c, f = shape
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, h, wd, c))
    w = rng.standard_normal((3, 3, c, f))
    dout = rng.standard_normal((n, h, wd, f))
    pads = ((1, 1), (1, 1))
    with algo.force("im2col"):
        exact, cache = conv2d_forward(x, w, None, (1, 1), pads, (1, 1), 1)   # float64 direct
        exact_dx, exact_dw, _ = conv2d_backward(dout, cache)
    with jit.use(compiled):
        out, cache = winograd.winograd_forward(x.astype(np.float32), w.astype(np.float32),
                                               None, pads, m)
        dx, dw, _ = winograd_backward(dout.astype(np.float32), cache)
    for label, got, want in (("out", out, exact), ("dx", dx, exact_dx), ("dw", dw, exact_dw)):
        assert got.dtype == np.float32
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err <= 1e-4, f"F({m}x{m},3x3) {label}: relative error {err:.2e}"


def test_winograd_transforms_are_exact_in_float64(rng):
    """A*A^T-style identities: F(m,3) on one tile equals the direct 1-D correlation."""
    for m in (2, 4):
        bt, g, at = (np.asarray(t, np.float64) for t in winograd_transforms._MATRICES[m])
        d, k = rng.standard_normal(m + 2), rng.standard_normal(3)
        direct = np.array([d[i:i + 3] @ k for i in range(m)])
        np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), direct, rtol=1e-12, atol=1e-12)


# ---- blocks and threads ----------------------------------------------------------------

@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["im2col", "winograd2", "winograd4", "winograd2-numpy",
                                  "winograd4-numpy", "toeplitz"])
@pytest.mark.parametrize("shape", [(5, 10, 9, 3, 4), (1, 23, 17, 2, 3), (5, 10, 9, 6, 4),
                                   (1, 23, 17, 5, 3)],
                         ids=["image-blocks-thin", "row-bands-thin", "image-blocks",
                              "row-bands"])
def test_blocked_threaded_paths(name, shape, threads, monkeypatch):
    """Tiny blocks force many image blocks or row bands (whose dx rows overlap); the
    threaded result must equal the reference and be bitwise repeatable."""
    monkeypatch.setattr(im2col, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(winograd, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(toeplitz, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(ops_threads, "PARALLEL_FLOPS", 1)            # cut every GEMM
    prev = ops_threads.num_threads()
    ops_threads.set_num_threads(threads)
    try:
        n, h, wd, c, f = shape
        cfg = ((n, h, wd, c), (3, 3, c, f), (1, 1), ((1, 0), (2, 1)), (1, 1), 1)
        x, w, b, dout = make(cfg, np.float64, 5)
        got = run_algo(name, cfg, x, w, b, dout)
        again = run_algo(name, cfg, x, w, b, dout)
        want = naive(x, w, b, *cfg[2:], dout)
        for g, g2, e in zip(got, again, want):
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-9)
            assert np.array_equal(g, g2)
    finally:
        ops_threads.set_num_threads(prev)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("rounds", [1, 2])
@pytest.mark.parametrize("n, th, tw, row_bytes, min_rows, block_bytes", [
    (1, 14, 14, 1000, 1, 1 << 20),     # a lone image in one block: split per thread
    (1, 14, 2, 1000, 1, 1 << 20),      # too few tiles to split
    (1, 28, 28, 1000, 1, 3000),        # row bands: 10 -> a multiple of the threads
    (1, 56, 3, 1000, 1, 3000),         # row bands: 19, enough not to round
    (1, 3, 28, 1000, 1, 1000),         # fewer tile rows than the rounded count
    (64, 4, 4, 1000, 1, 30000),        # image groups: 9 -> a multiple of the threads
    (3, 4, 4, 1000, 1, 1 << 20),       # fewer images than threads
    (2, 30, 4, 1000, 20, 1000),        # min_rows raises the target above BLOCK_BYTES
])
def test_winograd_blocks_cover_each_tile_row_once_in_balanced_counts(
        n, th, tw, row_bytes, min_rows, block_bytes, rounds, threads, monkeypatch):
    monkeypatch.setattr(winograd, "BLOCK_BYTES", block_bytes)
    prev = ops_threads.num_threads()
    ops_threads.set_num_threads(threads)
    try:
        blocks = list(winograd._blocks(n, th, tw, row_bytes, min_rows, rounds))
    finally:
        ops_threads.set_num_threads(prev)
    seen = np.zeros((n, th), int)
    for bi, bt in blocks:
        assert bi.stop > bi.start and bt.stop > bt.start
        assert bi.stop - bi.start == 1 or (bt.start, bt.stop) == (0, th)  # bands: one image
        seen[bi, bt] += 1
    assert (seen == 1).all()
    target = max(block_bytes, min_rows * row_bytes)
    sizes = [(bi.stop - bi.start) * (bt.stop - bt.start) for bi, bt in blocks]
    assert max(sizes) - min(sizes) <= max(1, max(sizes) // 2)           # no stray small block
    fits = th * row_bytes <= target
    if fits and n > 1:                           # whole images, as many per block as fit
        few = -(-n // max(1, target // (th * row_bytes))) < 4 * threads
        assert len(blocks) % threads == 0 or len(blocks) == n or not few
        assert max(sizes) <= max(th, target // row_bytes)
    elif not fits:                               # bands of rows within the target
        per = len(blocks) // n
        few = -(-th // max(1, target // row_bytes)) < 4 * rounds * threads
        assert per % (rounds * threads) == 0 or per == th or not few
        assert max(bt.stop - bt.start for _, bt in blocks) * row_bytes <= target
    else:                                        # one image that fits one block
        split = rounds == 1 and threads > 1 and th * tw >= threads * winograd.SPLIT_TILES
        assert len(blocks) == (min(threads, th) if split else 1)


@pytest.mark.parametrize("name", ["winograd2", "winograd4", "winograd2-numpy", "winograd4-numpy"])
def test_winograd_splits_a_lone_image_into_one_band_per_thread(name, monkeypatch):
    """A lone image that fits one block runs as bands (forward) but one block (backward,
    whose bands add in two rounds): both equal the reference, bitwise repeatably."""
    monkeypatch.setattr(winograd, "SPLIT_TILES", 1)
    monkeypatch.setattr(ops_threads, "PARALLEL_FLOPS", 1)
    prev = ops_threads.num_threads()
    ops_threads.set_num_threads(2)
    try:
        cfg = ((1, 23, 17, 5), (3, 3, 5, 4), (1, 1), ((1, 0), (2, 1)), (1, 1), 1)
        x, w, b, dout = make(cfg, np.float64, 6)
        m = int(base_algo(name)[-1])
        _, _, _, _, _, _, _, out_h, out_w, th, tw = winograd._plan(x.shape, w.shape,
                                                                   cfg[3], m)
        rb = winograd._row_bytes(m, tw, 5, 4, np.float64)
        assert len(list(winograd._blocks(1, th, tw, rb, 1))) == 2
        got = run_algo(name, cfg, x, w, b, dout)
        again = run_algo(name, cfg, x, w, b, dout)
        for g, g2, e in zip(got, again, naive(x, w, b, *cfg[2:], dout)):
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-9)
            assert np.array_equal(g, g2)
    finally:
        ops_threads.set_num_threads(prev)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_matrix_of_the_dx_pass_is_a_transposed_copy_of_rows(dtype, rng):
    """The dX pass's flipped, channel-swapped kernel becomes (K, F) as the transpose of a
    row copy (F-contiguous, read by the BLAS as a transposed operand); other kernels stay
    (K, F) C-contiguous.  Values equal the plain reshape either way."""
    w = rng.standard_normal((3, 2, 5, 7)).astype(dtype)
    flip = w[::-1, ::-1].transpose(0, 1, 3, 2)                           # (KH, KW, F, C)
    got = im2col._weight_matrix(flip)
    assert got.shape == (3 * 2 * 7, 5) and got.flags.f_contiguous and got.dtype == dtype
    np.testing.assert_array_equal(got, np.ascontiguousarray(flip).reshape(42, 5))
    plain = im2col._weight_matrix(w)
    assert plain.flags.c_contiguous and np.shares_memory(plain, w)
    np.testing.assert_array_equal(plain, w.reshape(30, 7))
    x = rng.standard_normal((2, 6, 5, 7)).astype(dtype)
    out = im2col.gemm_conv(x, flip, (1, 1), (1, 1), 4, 4)
    ref = im2col.gemm_conv(x, np.ascontiguousarray(flip), (1, 1), (1, 1), 4, 4)
    np.testing.assert_allclose(out, ref, **tol(dtype))


def test_noncontiguous_and_broadcast_arguments(rng):
    x = rng.standard_normal((2, 9, 9, 6)).transpose(0, 2, 1, 3)[:, :, :, ::2]  # a view
    w = rng.standard_normal((3, 3, 3, 4))
    for name in ALGOS:
        with force_algo(name):
            out, cache = conv2d_forward(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
        dout = np.broadcast_to(np.float64(0.5), out.shape)                 # read-only, strides 0
        dx, dw, db = conv2d_backward(dout, cache, (True, True, False))
        with algo.force("im2col"):
            ref_out, ref_cache = conv2d_forward(np.ascontiguousarray(x), w, None, (1, 1),
                                                ((1, 1), (1, 1)), (1, 1), 1)
        rdx, rdw, _ = conv2d_backward(np.full(out.shape, 0.5), ref_cache, (True, True, False))
        np.testing.assert_allclose(out, ref_out, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(dx, rdx, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(dw, rdw, rtol=1e-9, atol=1e-12)
        assert db is None


@pytest.mark.parametrize("need", [(False, True, True), (False, True, False),
                                  (False, False, True), (True, False, True)])
@pytest.mark.parametrize("c", [1, 3, 6])
@pytest.mark.parametrize("name", ALGOS)
def test_gradient_subsets_match_full_backward(name, c, need, rng):
    """dW and db fused in one GEMM (both asked) or computed apart must agree, for thin
    (K-major columns) and wider inputs alike; dX skipped when not asked."""
    x, w = rng.standard_normal((3, 7, 8, c)), rng.standard_normal((3, 3, c, 5))
    b = rng.standard_normal(5)
    with force_algo(name):
        out, cache = conv2d_forward(x, w, b, (1, 1), ((1, 1), (0, 1)), (1, 1), 1)
    dout = rng.standard_normal(out.shape)
    full = conv2d_backward(dout, cache, (True, True, True))
    _, rdx, rdw, rdb = naive(x, w, b, (1, 1), ((1, 1), (0, 1)), (1, 1), 1, dout)
    for g, e in zip(full, (rdx, rdw, rdb)):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-9)
    part = conv2d_backward(dout, cache, need)
    for asked, g, e in zip(need, part, full):
        if asked:
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
        else:
            assert g is None


def test_only_requested_gradients(rng):
    x, w = rng.standard_normal((1, 6, 6, 2)), rng.standard_normal((3, 3, 2, 3))
    for name in ALGOS:
        with force_algo(name):
            out, cache = conv2d_forward(x, w, np.zeros(3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
        dout = rng.standard_normal(out.shape)
        assert conv2d_backward(dout, cache, (False, False, False)) == (None, None, None)
        dx, dw, db = conv2d_backward(dout, cache, (True, False, False))
        assert dx is not None and dw is None and db is None


# ---- algorithm choice --------------------------------------------------------------

def test_force_rejects_unknown_names():
    with pytest.raises(ValueError, match="conv algorithm must be one of"):
        with algo.force("fft"):
            pass


def test_force_restores_and_auto_means_choose():
    with algo.force("winograd2"):
        assert algo.forced() == "winograd2"
        with algo.force("auto"):
            assert algo.forced() is None
        assert algo.forced() == "winograd2"
    assert algo.forced() is None


def test_heuristic_choices_are_cached_per_shape():
    algo.clear_cache()
    thin = "narrow" if jit.enabled() else "toeplitz"        # LeNet's layers (ops.narrow)
    args = ((1, 56, 56, 128), (3, 3, 128, 128), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert algo.choose(*args, np.float32) in ("winograd2", "winograd4")
    assert algo.choose((4, 9, 9, 8), (1, 1, 8, 8), (1, 1), ((0, 0), (0, 0)), (1, 1), 1,
                       np.float32) == "gemm1x1"
    assert algo.choose((4, 9, 9, 8), (3, 3, 8, 8), (2, 2), ((1, 1), (1, 1)), (1, 1), 1,
                       np.float32) == "im2col"
    assert algo.choose((4, 9, 9, 3), (3, 3, 3, 8), (1, 1), ((1, 1), (1, 1)), (1, 1), 1,
                       np.float32) == "im2col"                               # thin input
    assert algo.choose((64, 28, 28, 1), (5, 5, 1, 6), (1, 1), ((0, 0), (0, 0)), (1, 1), 1,
                       np.float32) == thin                                   # LeNet's conv1
    assert algo.choose((64, 12, 12, 6), (5, 5, 6, 16), (1, 1), ((0, 0), (0, 0)), (1, 1), 1,
                       np.float32) == thin                                   # LeNet's conv2
    assert algo.choose((64, 12, 12, 6), (5, 5, 6, 16), (1, 1), ((0, 0), (0, 0)), (1, 1), 1,
                       np.float64) == "toeplitz"                             # float32 only
    assert algo.choose((1, 224, 224, 3), (5, 5, 3, 8), (1, 1), ((2, 2), (2, 2)), (1, 1), 1,
                       np.float32) == "im2col"                               # band too wide
    first = ((64, 32, 32, 3), (3, 3, 3, 64), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)  # conv1_1
    assert algo.choose(*first, np.float32) == ("winograd_rows" if jit.enabled() else "im2col")
    assert algo.choose(*first, np.float64) == "im2col"                     # float32 only
    conv5 = ((1, 14, 14, 512), (3, 3, 512, 512), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    # F(2x2) with ops.points' kernels (float32, numba); else im2col's one GEMM
    assert algo.choose(*conv5, np.float32) == ("winograd2" if jit.enabled() else "im2col")
    assert algo.choose(*conv5, np.float64) == "im2col"
    assert len(algo.cache_info()) == 12
    algo.clear_cache()
    assert algo.cache_info() == {}


@pytest.mark.parametrize("x_shape, w_shape, expected", [
    ((32, 4, 4, 32), (3, 3, 32, 64), "im2col"),         # digits conv3: 32 tiles
    ((32, 8, 8, 32), (3, 3, 32, 32), "winograd4"),      # digits conv2: 128 tiles
    ((16, 4, 4, 128), (3, 3, 128, 128), "im2col"),      # 16 tiles, 128 x 128 channels
    ((64, 4, 4, 64), (3, 3, 64, 64), "winograd4"),      # 64 tiles: enough rows
    ((1, 28, 28, 256), (3, 3, 256, 512), "winograd4"),  # 49 tiles, but wide channels
])
def test_heuristic_sends_few_small_tiles_to_im2col(x_shape, w_shape, expected):
    args = (x_shape, w_shape, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert algo.heuristic(*args) == expected


def test_benchmark_mode_times_candidates_once(rng):
    algo.clear_cache()
    x, w = rng.standard_normal((2, 12, 12, 16)), rng.standard_normal((3, 3, 16, 16))
    with algo.benchmark():
        out, cache = conv2d_forward(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    chosen = algorithm_of(cache)
    assert chosen in ("im2col", "winograd2", "winograd4")
    assert list(algo.cache_info().values()) == [chosen]
    out2, cache2 = conv2d_forward(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert algorithm_of(cache2) == chosen
    np.testing.assert_allclose(out2, out, rtol=1e-9, atol=1e-9)
    algo.clear_cache()


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="expected an int >= 1"):
        ops_threads.set_num_threads(0)


# ---- the Winograd weight-transform cache -------------------------------------------

@pytest.mark.parametrize("name", ["winograd2", "winograd4", "winograd2-numpy", "winograd4-numpy"])
def test_weight_transform_cache_never_serves_stale_weights(name, monkeypatch, rng):
    monkeypatch.setattr(winograd_transforms, "UCACHE_MIN_BYTES", 0)
    winograd_transforms.clear_weight_cache()
    x = rng.standard_normal((1, 6, 6, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    pads = ((1, 1), (1, 1))

    def conv(w, name=name):
        with force_algo(name):
            return conv2d_forward(x, w, None, (1, 1), pads, (1, 1), 1)[0]

    first, second = conv(w), conv(w)           # the second call stores U, a third uses it
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(conv(w), second)
    assert any(e[2] for e in winograd_transforms._ucache.values())
    w[1, 2, 0, 3] += 1.0                       # an optimizer step, in place
    np.testing.assert_allclose(conv(w), conv(w, "im2col"), rtol=1e-4, atol=1e-5)
    w *= 0.5
    np.testing.assert_allclose(conv(w), conv(w, "im2col"), rtol=1e-4, atol=1e-5)
    del w                                      # the entry goes with the weight array
    import gc
    gc.collect()
    assert len(winograd_transforms._ucache) == 0


# ---- fused conv + bias + ReLU --------------------------------------------------------

@pytest.mark.parametrize("name", ALGOS)
@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[5], CONFIGS[6]],
                         ids=lambda c: f"{c[0]}-{c[1]}-s{c[2]}-g{c[5]}")
def test_fused_conv_relu_matches_reference_and_torch(name, cfg, torch):
    from convnet.ops.conv import conv2d_relu_backward, conv2d_relu_forward
    xs, ws, stride, pads, dil, groups = cfg
    x, w, b, dout = make(cfg, np.float64, 11)
    with force_algo(name):
        out, cache = conv2d_relu_forward(x, w, b, stride, pads, dil, groups)
    dx, dw, db = conv2d_relu_backward(dout, cache)
    pre, *_ = naive(x, w, b, stride, pads, dil, groups, dout)
    mask = pre > 0
    _, rdx, rdw, rdb = naive(x, w, b, stride, pads, dil, groups, dout * mask)
    np.testing.assert_allclose(out, np.maximum(pre, 0), rtol=1e-9, atol=1e-12)
    for g, e in ((dx, rdx), (dw, rdw), (db, rdb)):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)
    xt, wt = to_torch(x, "nhwc", True), to_torch(w, "hwio", True)
    bt = to_torch(b, requires_grad=True)
    (pt, pb), (pl, pr) = pads
    o = torch.relu(torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (pl, pr, pt, pb)),
                                              wt, bt, stride, 0, dil, groups))
    o.backward(to_torch(dout, "nhwc"))
    np.testing.assert_allclose(dx, from_torch(xt.grad, "nhwc"), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dw, from_torch(wt.grad, "hwio"), rtol=1e-9, atol=1e-12)


# ---- the banded (Toeplitz) weight matrix ----------------------------------------------

@pytest.mark.parametrize("sw, dw", [(1, 1), (2, 1), (1, 2), (3, 2)])
def test_band_matrix_matches_its_definition(sw, dw, rng):
    from convnet.ops.toeplitz import band_matrix
    kh, kw, c, f = 2, 3, 2, 4
    wp = 13
    out_w = (wp - dw * (kw - 1) - 1) // sw + 1
    w = rng.standard_normal((kh, kw, c, f))
    t = band_matrix(w, wp, out_w, sw, dw, np.float64).reshape(kh, wp, c, out_w, f)
    want = np.zeros_like(t)
    for i in range(kh):
        for j in range(kw):
            for ow in range(out_w):
                want[i, ow * sw + j * dw, :, ow, :] = w[i, j]
    assert np.array_equal(t, want)
    # Pool-ordered columns (j, ow', f) for ow = ow'*PW + j, and a bias row.
    for pw in (2, 3):
        cols = out_w // pw * pw
        b = rng.standard_normal(f)
        tp = band_matrix(w, wp, cols, sw, dw, np.float64, pw, b)
        assert tp.shape == (kh * wp * c + 1, cols * f)
        got = tp[:-1].reshape(kh, wp, c, pw, cols // pw, f)
        for ow in range(cols):
            assert np.array_equal(got[:, :, :, ow % pw, ow // pw], want[:, :, :, ow])
        np.testing.assert_array_equal(tp[-1].reshape(pw, cols // pw, f),
                                      np.broadcast_to(b, (pw, cols // pw, f)))
