"""conv2d + bias + ReLU + max pooling as one op (ops.fused), under every conv algorithm:
against a loop reference written here, torch, the three ops run in turn, and float64
finite differences -- with random upstream gradients, partial tiles, odd sizes that the
pool's floor mode crops, tiny blocks and row bands on one and two threads, and
non-finite gradients.  Plus the bitwise masks it is built from (relu_mask, tile_scatter)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ALGO_VARIANTS, base_algo, force_algo, from_torch, grad_check, to_torch, tol

import convnet.functional as F
from convnet.ops import activation, algo, im2col, jit, pool, toeplitz, winograd
from convnet.ops import threads as ops_threads
from convnet.ops.conv import (
    conv2d_backward,
    conv2d_forward,
    conv2d_relu_backward,
    conv2d_relu_forward,
)
from convnet.ops.fused import conv2d_relu_pool_backward, conv2d_relu_pool_forward

ALGOS = ALGO_VARIANTS       # every algorithm, and F(4x4) with NumPy transforms

# (x shape, w shape, pads, pool): 3x3 stride-1 convs (Winograd's), odd outputs that the
# pool crops, pools that do and do not divide the Winograd tile, a 5x5 (LeNet).
CASES = [
    ((2, 9, 10, 5), (3, 3, 5, 6), ((1, 1), (1, 1)), (2, 2)),    # 9x10 out: the last row cropped
    ((3, 8, 8, 4), (3, 3, 4, 3), ((1, 1), (1, 1)), (2, 2)),     # exact tiles
    ((1, 13, 11, 3), (3, 3, 3, 4), ((0, 2), (1, 0)), (2, 3)),   # asymmetric pads, 2x3 windows
    ((2, 12, 12, 2), (3, 3, 2, 5), ((1, 1), (1, 1)), (4, 4)),   # pool = F(4x4)'s tile
    ((2, 10, 9, 3), (3, 3, 3, 4), ((1, 1), (1, 1)), (3, 3)),    # 3 does not divide the tile
    ((2, 14, 14, 1), (5, 5, 1, 6), ((0, 0), (0, 0)), (2, 2)),   # LeNet's conv1 + pool
    ((2, 9, 10, 3), (3, 3, 3, 16), ((1, 1), (1, 1)), (2, 2)),   # a first layer (ops.direct)
]


def make(case, dtype, seed):
    xs, ws, pads, pk = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[3]).astype(dtype)
    oh = xs[1] + sum(pads[0]) - ws[0] + 1
    ow = xs[2] + sum(pads[1]) - ws[1] + 1
    dout = rng.standard_normal((xs[0], oh // pk[0], ow // pk[1], ws[3])).astype(dtype)
    return x, w, b, dout


def naive(x, w, b, pads, pk, dout):
    """(out, dx, dw, db) in float64 with loops: conv, ReLU, pool (first max wins)."""
    x, w, dout = x.astype(np.float64), w.astype(np.float64), dout.astype(np.float64)
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    (pt, pb), (pl, pr) = pads
    xp = np.zeros((n, h + pt + pb, wd + pl + pr, c))
    xp[:, pt:pt + h, pl:pl + wd] = x
    oh, ow = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    pre = np.zeros((n, oh, ow, f))
    for i in range(kh):
        for j in range(kw):
            pre += np.einsum("nhwc,cf->nhwf", xp[:, i:i + oh, j:j + ow], w[i, j])
    pre += b
    act = np.maximum(pre, 0)
    ph, pw = pk
    qh, qw = oh // ph, ow // pw
    out = np.zeros((n, qh, qw, f))
    dact = np.zeros_like(act)
    for a in range(n):
        for p in range(qh):
            for q in range(qw):
                for ch in range(f):
                    win = act[a, p * ph:(p + 1) * ph, q * pw:(q + 1) * pw, ch]
                    k = int(np.argmax(win))                 # the first maximum, row-major
                    out[a, p, q, ch] = win.flat[k]
                    dact[a, p * ph + k // pw, q * pw + k % pw, ch] += dout[a, p, q, ch]
    dpre = dact * (pre > 0)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(kh):
        for j in range(kw):
            dxp[:, i:i + oh, j:j + ow] += np.einsum("nhwf,cf->nhwc", dpre, w[i, j])
            dw[i, j] = np.einsum("nhwc,nhwf->cf", xp[:, i:i + oh, j:j + ow], dpre)
    return out, dxp[:, pt:pt + h, pl:pl + wd], dw, dpre.sum(axis=(0, 1, 2))


def run(name, case, x, w, b, dout, need=(True, True, True)):
    _, _, pads, pk = case
    with force_algo(name):
        out, cache = conv2d_relu_pool_forward(x, w, b, (1, 1), pads, (1, 1), 1, pk)
    return (out, *conv2d_relu_pool_backward(dout, cache, need)), cache


def in_turn(name, case, x, w, b, dout):
    """(out, dx, dw, db) of conv + ReLU, then max_pool2d, run as separate ops."""
    _, _, pads, pk = case
    with force_algo(name):
        act, c_cache = conv2d_relu_forward(x, w, b, (1, 1), pads, (1, 1), 1)
    out, p_cache = pool.max_pool2d_forward(act, pk, pk, ((0, 0), (0, 0)))
    return (out, *conv2d_relu_backward(pool.max_pool2d_backward(dout, p_cache), c_cache))


def blocked(name, case, dtype=np.float32):
    """Whether the op pools inside the conv's blocks: the banded GEMM always, the narrow
    kernels in float32 (float64 runs im2col), Winograd when the pool height divides its
    tile."""
    ws, pk = case[1], case[3]
    name = base_algo(name)
    m = {"winograd2": 2, "winograd4": 4}.get(name, 0)
    if name == "narrow":
        return dtype == np.float32 and jit.enabled()
    return name == "toeplitz" or bool(ws[:2] == (3, 3) and m and m % pk[0] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-pool{c[3]}")
@pytest.mark.parametrize("name", ALGOS)
def test_matches_loop_reference(name, case, dtype):
    x, w, b, dout = make(case, dtype, 1)
    got, cache = run(name, case, x, w, b, dout)
    assert cache[0] == ("blocked" if blocked(name, case, dtype) else "in turn")
    want = naive(x, w, b, case[2], case[3], dout)
    for label, g, e in zip(("out", "dx", "dw", "db"), got, want):
        assert g.dtype == dtype and g.shape == e.shape, label
        atol = tol(dtype)["atol"] * max(1.0, float(np.abs(e).max()))
        np.testing.assert_allclose(g, e, rtol=tol(dtype)["rtol"], atol=atol,
                                   err_msg=f"{name} {label}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-pool{c[3]}")
@pytest.mark.parametrize("name", ALGOS)
def test_equals_the_three_ops_in_turn(name, case):
    """Same algorithm, same rounding: the fused op gives the unfused ops' numbers."""
    x, w, b, dout = make(case, np.float32, 2)
    got, _ = run(name, case, x, w, b, dout)
    want = in_turn(name, case, x, w, b, dout)
    for label, g, e in zip(("out", "dx", "dw", "db"), got, want):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5, err_msg=label)
    if name != "toeplitz":  # the fused banded GEMM orders T's columns by pool window, so
        np.testing.assert_array_equal(got[0], want[0])  # its BLAS tiles them differently


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["im2col", "winograd2", "winograd4", "winograd2-numpy",
                                  "winograd4-numpy", "toeplitz", "narrow"])
def test_matches_torch(name, dtype, torch):
    case = CASES[2]
    x, w, b, dout = make(case, dtype, 3)
    got, _ = run(name, case, x, w, b, dout)
    (pt, pb), (pl, pr) = case[2]
    xt, wt = to_torch(x, "nhwc", True), to_torch(w, "hwio", True)
    bt = to_torch(b, requires_grad=True)
    y = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (pl, pr, pt, pb)), wt, bt)
    o = torch.nn.functional.max_pool2d(torch.relu(y), case[3])
    o.backward(to_torch(dout, "nhwc"))
    want = (from_torch(o, "nhwc"), from_torch(xt.grad, "nhwc"), from_torch(wt.grad, "hwio"),
            bt.grad.numpy())
    for label, g, e in zip(("out", "dx", "dw", "db"), got, want):
        atol = tol(dtype)["atol"] * max(1.0, float(np.abs(e).max()))
        np.testing.assert_allclose(g, e, rtol=tol(dtype)["rtol"], atol=atol, err_msg=label)


@pytest.mark.parametrize("name", ["winograd2", "winograd4", "winograd2-numpy",
                                  "winograd4-numpy", "im2col", "toeplitz"])
def test_finite_differences(name):
    case = ((2, 6, 7, 2), (3, 3, 2, 3), ((1, 1), (1, 0)), (2, 2))
    x, w, b, _ = make(case, np.float64, 4)
    with force_algo(name):
        pre = F.conv2d(x, w, b, padding=((1, 1), (1, 0))).data
        assert np.abs(pre).min() > 1e-4                       # nothing sits on the kink
        grad_check(lambda a, c, d: F.conv2d_relu_max_pool2d(a, c, d, padding=((1, 1), (1, 0)),
                                                            pool_size=2), [x, w, b])


@pytest.mark.parametrize("need", [(False, True, True), (True, False, False),
                                  (False, False, True), (True, True, False)])
@pytest.mark.parametrize("name", ["winograd4", "winograd4-numpy", "im2col", "toeplitz",
                                  "narrow"])
def test_gradient_subsets(name, need):
    case = CASES[0]
    x, w, b, dout = make(case, np.float32 if name == "narrow" else np.float64, 5)
    full, _ = run(name, case, x, w, b, dout)
    part, _ = run(name, case, x, w, b, dout, need)
    for asked, g, e in zip(need, part[1:], full[1:]):
        if asked:
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
        else:
            assert g is None


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(5, 10, 9, 3, 4), (1, 23, 17, 4, 3)],
                         ids=["image-blocks", "row-bands"])
@pytest.mark.parametrize("name", ["winograd2", "winograd4", "winograd2-numpy", "winograd4-numpy"])
def test_blocked_threaded_paths(name, shape, threads, monkeypatch):
    """Tiny blocks force many image blocks or row bands of one image (whose dx rows
    overlap): the result equals the reference and repeats bit for bit."""
    monkeypatch.setattr(winograd, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(im2col, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(ops_threads, "PARALLEL_FLOPS", 1)
    prev = ops_threads.num_threads()
    ops_threads.set_num_threads(threads)
    try:
        n, h, wd, c, f = shape
        case = ((n, h, wd, c), (3, 3, c, f), ((1, 0), (2, 1)), (2, 2))
        x, w, b, dout = make(case, np.float64, 6)
        got, cache = run(name, case, x, w, b, dout)
        again, _ = run(name, case, x, w, b, dout)
        assert cache[0] == "blocked"
        for g, g2, e in zip(got, again, naive(x, w, b, case[2], case[3], dout)):
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-9)
            assert np.array_equal(g, g2)
        # The pair alone (conv + ReLU, each block of dout masked as it is loaded).
        with force_algo(name):
            act, cache = conv2d_relu_forward(x, w, b, (1, 1), case[2], (1, 1), 1)
        d_act = np.random.default_rng(8).standard_normal(act.shape)
        pair = (act, *conv2d_relu_backward(d_act, cache))
        with algo.force("im2col"):
            ref = conv2d_forward(x, w, b, (1, 1), case[2], (1, 1), 1)
        want = (np.maximum(ref[0], 0),
                *conv2d_backward(np.where(ref[0] > 0, d_act, 0.0), ref[1]))
        for g, e in zip(pair, want):
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-9)
    finally:
        ops_threads.set_num_threads(prev)


@pytest.mark.parametrize("block_bytes", [1 << 9, 1 << 13, 1 << 30],
                         ids=["row-bands", "image-groups", "one-block"])
@pytest.mark.parametrize("stride, dilation, pk", [((1, 1), (1, 1), (2, 3)),
                                                  ((2, 1), (1, 2), (2, 2)),
                                                  ((1, 2), (2, 1), (3, 3))])
def test_banded_gemm_pools_in_blocks_with_stride_and_dilation(stride, dilation, pk, block_bytes,
                                                               monkeypatch):
    """The banded GEMM's fused pool in blocks (bands of one image's rows, groups of
    images, one block), strided and dilated, with floor-mode crops: equal to im2col's
    conv, then ReLU, then the pool, and repeatable bit for bit."""
    monkeypatch.setattr(toeplitz, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 17, 19, 2))
    w = rng.standard_normal((3, 5, 2, 4))
    b = rng.standard_normal(4)
    pads = ((1, 2), (2, 0))
    with algo.force("toeplitz"):
        out, cache = conv2d_relu_pool_forward(x, w, b, stride, pads, dilation, 1, pk)
        again, _ = conv2d_relu_pool_forward(x, w, b, stride, pads, dilation, 1, pk)
    assert cache[0] == "blocked" and cache[1][0] == "toeplitz"
    dout = rng.standard_normal(out.shape)
    got = (out, *conv2d_relu_pool_backward(dout, cache))
    with algo.force("im2col"):
        act, c_cache = conv2d_relu_forward(x, w, b, stride, pads, dilation, 1)
    ref, p_cache = pool.max_pool2d_forward(act, pk, pk, ((0, 0), (0, 0)))
    want = (ref, *conv2d_relu_backward(pool.max_pool2d_backward(dout, p_cache), c_cache))
    for label, g, e in zip(("out", "dx", "dw", "db"), got, want):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10, err_msg=label)
    np.testing.assert_array_equal(out, again)


@pytest.mark.parametrize("name", ["winograd2", "winograd4", "winograd2-numpy",
                                  "winograd4-numpy", "im2col", "toeplitz", "narrow"])
def test_non_finite_gradients_of_closed_windows_are_dropped(name):
    """torch's rule: a window whose max is 0 (its ReLU closed) passes nothing, even an
    inf or NaN gradient (``dout * 0`` would have made NaN of it)."""
    case = CASES[1]
    x, w, b, dout = make(case, np.float32 if name == "narrow" else np.float64, 7)
    b[:] = -1.0                                                   # many closed windows
    out, *_ = run(name, case, x, w, b, dout)[0]
    closed = out == 0
    assert closed.any() and (~closed).any()
    clean = np.where(closed, 0.0, dout)
    dirty = clean.copy()
    dirty[closed] = np.where(np.arange(closed.sum()) % 2, np.inf, np.nan)
    got, _ = run(name, case, x, w, b, dirty)
    want, _ = run(name, case, x, w, b, clean)
    for label, g, e in zip(("out", "dx", "dw", "db"), got, want):
        assert np.isfinite(g).all(), label
        np.testing.assert_array_equal(g, e, err_msg=label)


@pytest.mark.parametrize("case", [CASES[0], CASES[2]], ids=["pool2x2", "pool2x3"])
@pytest.mark.parametrize("name", ALGOS)
def test_nan_inputs_pool_by_torchs_rule_as_the_ops_in_turn(name, case):
    """NaN in x: each window whose conv output holds a NaN pools to NaN, with its last NaN
    tap as the argmax (torch's rule), as max_pool2d gives after the conv and ReLU run in
    turn; dx follows those argmax taps."""
    x, w, b, dout = make(case, np.float32, 12)
    x[0, 2, 3, 1] = x[-1, 6, 8, 2] = np.nan
    got, _ = run(name, case, x, w, b, dout)
    want = in_turn(name, case, x, w, b, dout)
    assert np.isnan(got[0]).any() and not np.isnan(got[0]).all()
    assert np.isfinite(got[1]).all()
    # (dw is left out: which of its entries the NaN reaches depends on whether a GEMM
    # forms the NaN x 0 products of closed windows, which the banded GEMM's does not.)
    for label, g, e in zip(("out", "dx", "db"), got[:2] + got[3:], want[:2] + want[3:]):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5, err_msg=label)


def test_functional_validates_its_arguments(rng):
    x, w = rng.standard_normal((1, 6, 6, 3)), rng.standard_normal((3, 3, 3, 4))
    with pytest.raises(ValueError, match="pool_size"):
        F.conv2d_relu_max_pool2d(x, w, pool_size=0)
    with pytest.raises(ValueError, match=r"conv output 4x4 is smaller than the 5x5"):
        F.conv2d_relu_max_pool2d(x, w, pool_size=5)
    with pytest.raises(ValueError, match="input has 3 channels"):
        F.conv2d_relu_max_pool2d(x, rng.standard_normal((3, 3, 2, 4)))


# ---- the bitwise masks -------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_relu_mask_is_torchs_rule_bit_for_bit(dtype):
    g = np.array([1.5, -2.0, np.inf, np.nan, -np.inf, 5.0, -0.0, 3.0], dtype)
    kept = np.array([1.0, 0.0, 0.0, 0.0, np.nan, 2.0, 3.0, -0.0], dtype)
    got = activation.relu_mask(g, kept, np.empty_like(g))
    want = np.array([1.5, 0.0, 0.0, 0.0, -np.inf, 5.0, -0.0, 0.0], dtype)
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got[[1, 2, 3, 7]]).any()            # blocked cells are +0
    assert np.signbit(got[6])                                  # a passed -0 stays -0


def test_relu_backward_chunks_in_place_and_checks(monkeypatch, rng):
    monkeypatch.setattr(activation, "CHUNK", 7)                # chunks that split rows
    out = np.maximum(rng.standard_normal((3, 5, 4)), 0)
    dout = rng.standard_normal(out.shape)
    want = np.where(out > 0, dout, 0.0)
    np.testing.assert_array_equal(activation.relu_backward(dout, out), want)
    same = dout.copy()
    assert activation.relu_backward(same, out, out=same) is same
    np.testing.assert_array_equal(same, want)
    with pytest.raises(ValueError, match=r"has shape \(5, 4\), the forward.s output \(3, 5, 4\)"):
        activation.relu_backward(dout[0], out)
    with pytest.raises(ValueError, match="out= must be a C-contiguous array"):
        activation.relu_backward(dout, out, out=np.empty((3, 4, 5)))


def test_tile_scatter_puts_each_gradient_at_its_argmax_only():
    dout = np.array([[[[np.inf], [2.0]]]])                    # (1, 1, 2, 1)
    arg = np.array([[[[3], [0]]]], np.uint8)
    dx = np.full((1, 2, 4, 1), 7.0)                            # (1, 2, 4, 1): overwritten
    pool.tile_scatter(dout, arg, dx.reshape(1, 1, 2, 2, 2, 1))
    want = np.zeros((1, 2, 4, 1))
    want[0, 1, 1, 0], want[0, 0, 2, 0] = np.inf, 2.0
    np.testing.assert_array_equal(dx, want)
    assert not np.signbit(dx).any()
