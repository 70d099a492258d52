"""The direct conv kernels (ops.direct) and the vector type they are written in
(ops.simd): lane semantics against NumPy, blocks and threads (bitwise the same on one or
two threads, batch-1 row bands and image bands), NaN through the fused ReLU, the
fallback when the kernels are off, and the heuristic's choice.  The oracle tests
against the loop reference and torch run in tests/ops/test_ops_conv_algos.py, where
"direct" is one of the forced algorithms."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import conv_loops, conv_weight_grad_loops, torch_conv_weight_grad

from convnet.ops import algo, direct, jit
from convnet.ops import threads as ops_threads
from convnet.ops.conv import algorithm_of, conv2d_forward

pytestmark = pytest.mark.skipif(not jit.available(), reason="numba is not installed")


def loops(x, w, b, stride, pads, dil, relu):
    """float64 conv (``helpers.conv_loops``), clamped at 0 with ``relu``."""
    out = conv_loops(x, w, b, stride, pads, dil)
    return np.maximum(out, 0) if relu else out


# ---- ops.simd -------------------------------------------------------------------------

@pytest.mark.parametrize("lanes", [8, 16, 32, 64])
def test_vector_ops_match_numpy_lane_by_lane(lanes):
    from numba import njit

    from convnet.ops.im2col import aligned_empty
    from convnet.ops.simd import (
        store_fence,
        vadd,
        vbcast,
        vfma,
        vload,
        vrelu,
        vsplat,
        vstore,
        vstream,
        vsub,
    )

    @njit
    def streamed(a, out):
        for i in range(0, a.shape[0], lanes):
            vstream(out, i, vload(a, i, lanes))
        store_fence()

    @njit
    def kernel(a, b, c, s, out):
        for i in range(0, a.shape[0], lanes):
            fma = vfma(vload(a, i, lanes), vload(b, i, lanes), vload(c, i, lanes))
            vstore(out[0], i, fma)
            vstore(out[1], i, vrelu(vload(a, i, lanes)))
            vstore(out[2], i, vadd(vload(a, i, lanes), vsplat(s, lanes)))
            vstore(out[3], i, vbcast(b, i // lanes + 1, lanes))
            vstore(out[4], i, vsub(vload(a, i, lanes), vload(b, i, lanes)))

    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(3 * lanes).astype(np.float32) for _ in range(3))
    a[:6] = [np.nan, -0.0, 0.0, np.inf, -np.inf, -1e-30]
    out = np.empty((5, 3 * lanes), np.float32)
    kernel(a, b, c, 1.5, out)
    want = (a.astype(np.float64) * b + c).astype(np.float32)             # one rounding
    np.testing.assert_array_equal(out[0], want)
    np.testing.assert_array_equal(out[1], np.where(a < 0, np.float32(0), a))  # NaN stays
    assert np.isnan(out[1][0]) and np.signbit(out[1][1]) and out[1][5] == 0
    np.testing.assert_array_equal(out[2], a + np.float32(1.5))
    np.testing.assert_array_equal(out[3], np.repeat(b[1:4], lanes))    # b[1], b[2], b[3]
    np.testing.assert_array_equal(out[4], a - b)
    past = aligned_empty(3 * lanes)                 # non-temporal stores: the same values
    streamed(a, past)
    np.testing.assert_array_equal(past.view(np.uint32), a.view(np.uint32))


def test_vector_width_must_be_a_supported_constant():
    from numba import njit
    from numba.core.errors import TypingError

    from convnet.ops.simd import vload, vstore

    @njit
    def twelve(a):
        vstore(a, 0, vload(a, 0, 12))

    with pytest.raises(TypingError, match="lanes must be 8, 16, 32 or 64, got 12"):
        twelve(np.zeros(12, np.float32))

    @njit
    def wrong_dtype(a):
        vstore(a, 0, vload(a, 0, 16))

    with pytest.raises(TypingError, match="expected a 1-D float32 array"):
        wrong_dtype(np.zeros(16, np.float64))


# ---- ops.direct -----------------------------------------------------------------------

@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(1, 23, 17, 3, 48), (5, 9, 14, 2, 64), (3, 6, 5, 1, 96),
                                   (1, 10, 9, 70, 128), (2, 7, 6, 40, 112)],
                         ids=["row-bands", "image-bands", "fewer-images-than-threads",
                              "deep-chunks", "deep-pixel-bands"])
def test_blocks_on_one_or_two_threads_are_bitwise_the_same(shape, threads, monkeypatch):
    monkeypatch.setattr(direct, "PARALLEL_FLOPS", 1)              # blocks on the pool
    n, h, wd, c, f = shape
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, h, wd, c)).astype(np.float32)
    w = rng.standard_normal((3, 3, c, f)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    pads = ((1, 0), (2, 1))
    prev = ops_threads.num_threads()
    try:
        ops_threads.set_num_threads(1)
        with algo.force("direct"):
            one, cache = conv2d_forward(x, w, b, (1, 1), pads, (1, 1), 1, relu=True)
        ops_threads.set_num_threads(threads)
        with algo.force("direct"):
            got, _ = conv2d_forward(x, w, b, (1, 1), pads, (1, 1), 1, relu=True)
    finally:
        ops_threads.set_num_threads(prev)
    assert algorithm_of(cache) == "direct" and got.dtype == np.float32
    np.testing.assert_array_equal(got, one)
    want = loops(x, w, b, (1, 1), pads, (1, 1), relu=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cfg", [
    ((2, 9, 8, 3), (3, 3, 3, 32), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    ((1, 11, 13, 2), (3, 2, 2, 48), (2, 3), ((4, 0), (0, 5)), (2, 1)),   # pads > the kernel
    ((3, 5, 7, 1), (5, 3, 1, 16), (1, 2), ((3, 3), (2, 4)), (1, 2)),     # rows of padding only
], ids=["same", "strided-dilated", "wide-pads"])
def test_thin_kernels_pad_in_bands_of_rows(cfg, threads, monkeypatch):
    """The thin forward and the weight gradient build each band's padded rows
    themselves: any band height (one row; two; the whole output) gives the loop
    reference's values, and the forward the same bits."""
    monkeypatch.setattr(direct, "PARALLEL_FLOPS", 1)              # blocks on the pool
    xs, ws, stride, pads, dil = cfg
    rng = np.random.default_rng(11)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[3]).astype(np.float32)
    want = loops(x, w, b, stride, pads, dil, relu=False)
    dout = rng.standard_normal(want.shape).astype(np.float32)
    want_dw, want_db = conv_weight_grad_loops(x, dout, ws, stride, pads, dil)
    line = (xs[2] + sum(pads[1])) * xs[3] * 4
    prev = ops_threads.num_threads()
    ops_threads.set_num_threads(threads)
    got = []
    try:
        for rows in (1, (ws[0] - 1) * dil[0] + 1 + stride[0], 1 << 20):
            monkeypatch.setattr(direct, "ROW_SCRATCH", rows * line)
            out = direct.direct_forward(x, w, b, stride, pads, dil, relu=False)
            dw, db = direct.direct_weight_grad(x, dout, ws, stride, pads, dil)
            got.append(out)
            np.testing.assert_allclose(dw, want_dw, rtol=1e-4, atol=1e-5 * np.abs(want_dw).max())
            np.testing.assert_allclose(db, want_db, rtol=1e-4, atol=1e-5 * np.abs(want_db).max())
    finally:
        ops_threads.set_num_threads(prev)
    assert got[0].shape == want.shape
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    for other in got[1:]:
        np.testing.assert_array_equal(other, got[0])


def test_nan_input_reaches_the_outputs_that_read_it_through_the_relu():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 8, 9, 3)).astype(np.float32)
    x[0, 3, 4, 1] = np.nan
    w = rng.standard_normal((3, 3, 3, 16)).astype(np.float32)
    b = np.full(16, -50.0, np.float32)                  # every finite output clamps to 0
    with algo.force("direct"):
        out, _ = conv2d_forward(x, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1), 1, relu=True)
    nan = np.isnan(out)
    assert nan[0, 2:5, 3:6].all() and nan.sum() == 9 * 16      # the 3x3 pixels that read it
    assert (out[~nan] == 0).all()


def test_falls_back_to_im2col_when_the_kernels_are_turned_off():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 32, 32, 3)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 32)).astype(np.float32)      # 2 wide: not F(4, 3) rows
    args = (x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    algo.clear_cache()
    try:
        out, cache = conv2d_forward(*args)
        assert algorithm_of(cache) == "direct"                  # the heuristic's choice
        with jit.use(False):
            assert not direct.applies(w.shape, 1, np.float32)
            off, cache_off = conv2d_forward(*args)              # cached "direct" not reused
            assert algorithm_of(cache_off) == "im2col"
            with pytest.raises(ValueError, match="needs float32, F a multiple of 16 and numba"):
                direct.direct_forward(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1))
    finally:
        algo.clear_cache()
    np.testing.assert_allclose(off, out, rtol=1e-5, atol=1e-5)


def test_forward_rejects_what_it_cannot_run():
    x = np.zeros((1, 6, 6, 3))
    with pytest.raises(ValueError, match=r"got float64 x float64, F = 16"):
        direct.direct_forward(x, np.zeros((3, 3, 3, 16)), None, (1, 1), ((0, 0), (0, 0)),
                              (1, 1))
    with pytest.raises(ValueError, match=r"F = 24"):
        direct.direct_forward(x.astype(np.float32), np.zeros((3, 3, 3, 24), np.float32),
                              None, (1, 1), ((0, 0), (0, 0)), (1, 1))


@pytest.mark.parametrize("x_shape, w_shape, dtype, expected", [
    ((1, 224, 224, 3), (3, 3, 3, 64), np.float32, True),   # VGG's conv1_1: K = 27
    ((64, 32, 32, 3), (3, 3, 3, 64), np.float32, True),    # CIFAR's conv1_1
    ((64, 32, 32, 1), (3, 3, 1, 32), np.float32, True),    # K = 9
    ((32, 8, 8, 1), (3, 3, 1, 32), np.float32, False),     # the digits model's conv1: 1.2
    #                                                        MFLOP, less than it costs to compile
    ((64, 32, 32, 3), (3, 3, 3, 64), np.float64, False),   # float32 kernels only
    ((64, 32, 32, 3), (3, 3, 3, 24), np.float32, False),   # F not a multiple of 16
    ((64, 32, 32, 4), (3, 3, 4, 64), np.float32, True),    # K = 36, the deep kernel: 302
    #                                                        MFLOP (DEEP_FLOPS is 268)
    ((8, 32, 32, 3), (7, 7, 3, 64), np.float32, False),    # K = 147: 124 MFLOP
    ((1, 14, 14, 512), (3, 3, 512, 512), np.float32, True),  # VGG's conv5 at batch 1
    ((32, 4, 4, 32), (3, 3, 32, 64), np.float32, False),   # the digits model's conv3: 19
])
def test_applies_well_to_large_enough_float32_convs(x_shape, w_shape, dtype, expected):
    args = (x_shape, w_shape, (1, 1), ((1, 1), (1, 1)), (1, 1), 1, dtype)
    assert direct.applies_well(*args) is expected


@pytest.mark.parametrize("x_shape, w_shape, stride, expected", [
    ((1, 224, 224, 3), (3, 3, 3, 64), 1, "winograd_rows"),  # thin, 3 wide: F(4, 3) rows
    ((1, 224, 224, 3), (3, 3, 3, 64), 2, "direct"),        # thin, strided: im2col's place
    ((64, 32, 32, 3), (3, 2, 3, 64), 1, "direct"),         # thin, 2 wide
    ((1, 14, 14, 512), (3, 3, 512, 512), 1, "winograd2"),  # 0.4 pixels per channel:
    #                                                        F(2x2) in ops.points' kernels
    ((1, 14, 14, 520), (3, 3, 520, 512), 1, "direct"),     # ... which need C in sixteens
    ((1, 27, 27, 96), (5, 5, 96, 256), 1, "direct"),       # AlexNet's conv2: no Winograd
    ((8, 28, 28, 128), (3, 3, 128, 256), 2, "direct"),     # strided
    ((1, 28, 28, 256), (3, 3, 256, 512), 1, "winograd4"),  # Winograd's place stays its own
    ((1, 14, 14, 512), (1, 1, 512, 512), 1, "gemm1x1"),
])
def test_heuristic_gives_direct_im2col_s_place(x_shape, w_shape, stride, expected):
    args = (x_shape, w_shape, (stride, stride), ((1, 1), (1, 1)), (1, 1), 1, np.float32)
    if w_shape[0] == 1:
        args = args[:3] + (((0, 0), (0, 0)),) + args[4:]
    want = (expected if expected not in ("direct", "winograd2", "winograd_rows") or jit.enabled()
            else "im2col")
    assert algo.heuristic(*args) == want


# ---- the weight gradient (a first layer: no dx) ------------------------------------

WGRAD = [
    ((2, 9, 11, 3), (3, 3, 3, 16), (1, 1), ((1, 1), (1, 1)), (1, 1)),      # a first layer
    ((1, 10, 13, 2), (3, 2, 2, 48), (2, 1), ((1, 2), (0, 3)), (1, 2)),     # stride, dilation
    ((3, 7, 8, 1), (3, 3, 1, 112), (1, 1), ((0, 0), (2, 1)), (2, 1)),      # 64 + 32 + 16
    ((2, 12, 11, 3), (5, 5, 3, 80), (2, 1), ((2, 2), (1, 2)), (1, 1)),     # K = 75: after
    #                                                                     the deep forward
    ((3, 9, 8, 1), (5, 5, 1, 16), (1, 2), ((2, 2), (1, 3)), (1, 1)),       # K = 25: 6 x 4 + 1
    ((1, 5, 7, 2), (2, 2, 2, 32), (1, 1), ((0, 1), (1, 0)), (2, 1)),       # K = 8: 6 + 1 + 1
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("cfg", WGRAD, ids=lambda c: f"{c[0]}-{c[1]}-s{c[2]}")
def test_weight_grad_matches_torch_with_and_without_the_relu(cfg, relu, threads, torch,
                                                             monkeypatch):
    from convnet.ops.conv import conv2d_backward, conv2d_relu_backward, conv2d_relu_forward

    monkeypatch.setattr(direct, "PARALLEL_FLOPS", 1)              # blocks on the pool
    xs, ws, stride, pads, dil = cfg
    rng = np.random.default_rng(6)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[3]).astype(np.float32)
    prev = ops_threads.num_threads()
    ops_threads.set_num_threads(threads)
    try:
        with algo.force("direct"):
            if relu:
                out, cache = conv2d_relu_forward(x, w, b, stride, pads, dil, 1)
            else:
                out, cache = conv2d_forward(x, w, b, stride, pads, dil, 1)
        dout = rng.standard_normal(out.shape).astype(np.float32)
        back = conv2d_relu_backward if relu else conv2d_backward
        dx, dw, db = back(dout, cache, (False, True, True))
        again = back(dout, cache, (False, True, True))
    finally:
        ops_threads.set_num_threads(prev)
    assert (cache[0] if relu else cache)[0] == "direct"
    assert dx is None and dw.dtype == db.dtype == np.float32
    np.testing.assert_array_equal(again[1], dw)                   # the same bits again
    np.testing.assert_array_equal(again[2], db)
    torch_dw, torch_db = torch_conv_weight_grad(torch, x, w, b, stride, pads, dil, dout, relu)
    for label, got, want in (("dw", dw, torch_dw), ("db", db, torch_db)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max(),
                                   err_msg=label)


@pytest.mark.parametrize("budget, direct_runs", [(1 << 30, True), (1000, False)])
def test_weight_grad_goes_to_im2col_above_its_accumulator_budget(budget, direct_runs,
                                                                 monkeypatch):
    from convnet.ops.conv import conv2d_relu_backward, conv2d_relu_forward

    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 16)).astype(np.float32)          # 28 x 16 x 4 bytes
    b = rng.standard_normal(16).astype(np.float32)
    args = (x, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    with algo.force("im2col"):
        out, cache = conv2d_relu_forward(*args)
        dout = rng.standard_normal(out.shape).astype(np.float32)
        _, want_w, want_b = conv2d_relu_backward(dout, cache, (False, True, True))
    calls = []
    real = direct.direct_weight_grad
    monkeypatch.setattr(direct, "DW_ACC_BYTES", budget)
    monkeypatch.setattr(direct, "direct_weight_grad",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    with algo.force("direct"):
        out, cache = conv2d_relu_forward(*args)
    _, dw, db = conv2d_relu_backward(dout, cache, (False, True, True))
    assert bool(calls) is direct_runs
    np.testing.assert_allclose(dw, want_w, rtol=1e-5, atol=1e-5 * np.abs(want_w).max())
    np.testing.assert_allclose(db, want_b, rtol=1e-5, atol=1e-5 * np.abs(want_b).max())


def test_weight_grad_passes_nan_gradients_of_open_relus_only():
    """The fused ReLU's mask is bit-exact: a closed output's inf or NaN gradient is
    dropped (torch's rule), an open one's reaches dW and db."""
    from convnet.ops.conv import conv2d_relu_backward, conv2d_relu_forward

    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 6, 7, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 16)).astype(np.float32)
    with algo.force("direct"):
        out, cache = conv2d_relu_forward(x, w, np.zeros(16, np.float32), (1, 1),
                                         ((1, 1), (1, 1)), (1, 1), 1)
    closed = out == 0
    assert closed.any() and (~closed).any()
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dirty = dout.copy()
    dirty[closed] = np.inf
    _, dw, db = conv2d_relu_backward(dirty, cache, (False, True, True))
    _, dw0, db0 = conv2d_relu_backward(np.where(closed, 0, dout).astype(np.float32), cache,
                                       (False, True, True))
    np.testing.assert_array_equal(dw, dw0)
    np.testing.assert_array_equal(db, db0)
    f = np.argmax((~closed).reshape(-1, 16).any(axis=0))            # a channel with an open output
    dirty[~closed & (np.arange(16) == f)] = np.nan
    _, dw, db = conv2d_relu_backward(dirty, cache, (False, True, True))
    assert np.isnan(db[f]) and np.isnan(dw[..., f]).any() and np.isfinite(np.delete(db, f)).all()
