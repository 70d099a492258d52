"""1-D Winograd F(4, 3) along the rows (ops.winograd_rows): the forward and the first
layer's weight gradient against float64 loop references and torch, on awkward shapes
(partial and odd tile counts, strides and dilations down the columns, pads wider than
the kernel, 32- and 16-lane channel chunks), every band height, one and two threads,
numba's parallel launch and the pool; the same bits whichever way the blocks run.  The
oracle tests through conv2d (loop reference, torch, finite differences) run in
tests/ops/test_ops_conv_algos.py, where "winograd_rows" is one of the forced algorithms."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import conv_loops as loops
from helpers import conv_weight_grad_loops as loop_weight_grad
from helpers import torch_conv_weight_grad

from convnet.ops import algo, jit, winograd_rows
from convnet.ops import threads as ops_threads
from convnet.ops.conv import algorithm_of, conv2d_forward

pytestmark = pytest.mark.skipif(not jit.available(), reason="numba is not installed")


# (x shape, w shape, stride, pads, dilation): 3 wide, width stride and dilation 1
CONFIGS = [
    ((2, 9, 11, 3), (3, 3, 3, 16), (1, 1), ((1, 1), (1, 1)), (1, 1)),   # 3 tiles, the last 3 wide
    ((1, 12, 16, 3), (3, 3, 3, 64), (1, 1), ((1, 1), (1, 1)), (1, 1)),  # whole tiles, 2 chunks
    ((3, 8, 22, 1), (5, 3, 1, 112), (1, 1), ((2, 2), (1, 1)), (1, 1)),  # 32 x 3 + 16 lanes
    ((1, 11, 7, 2), (2, 3, 2, 48), (2, 1), ((0, 2), (3, 0)), (2, 1)),   # stride, dilation
    ((2, 6, 5, 4), (1, 3, 4, 32), (3, 1), ((4, 3), (0, 2)), (1, 1)),    # pads > the kernel
    ((1, 7, 9, 5), (3, 3, 5, 16), (1, 1), ((0, 0), (0, 0)), (1, 1)),    # no padding
    ((1, 4, 70, 3), (3, 3, 3, 16), (1, 1), ((1, 1), (1, 1)), (1, 1)),   # gathers: 16 + 3 tiles
    ((1, 3, 38, 2), (2, 3, 2, 16), (1, 1), ((0, 1), (2, 0)), (1, 1)),   # gathers: 11 tiles
    ((1, 3, 150, 3), (3, 3, 3, 16), (1, 1), ((1, 1), (2, 1)), (1, 1)),  # 16 + 16 + 7, pad 2
]
IDS = ["odd-tiles", "whole-tiles", "chunks", "strided-dilated", "wide-pads", "valid",
       "gather16", "gather11", "gather39"]


def _bands(cfg):
    """V_SCRATCH values giving bands of one output row, two, and the whole output."""
    (n, h, wd, c), (kh, _, _, _), stride, pads, dil = cfg
    out_w = wd + sum(pads[1]) - 2
    row = 6 * c * (-(-out_w // 4) + 1) * 4            # bytes of one transformed input row
    halo = (kh - 1) * dil[0] + 1
    return [halo * row, (halo + stride[0]) * row, 1 << 24]


def _run(fn, threads, launch):
    """fn() on ``threads`` threads, through numba's parallel launch or the pool."""
    prev, prev_launch = ops_threads.num_threads(), jit._state["parallel"]
    ops_threads.set_num_threads(threads)
    jit.set_parallel(launch)
    try:
        return fn()
    finally:
        ops_threads.set_num_threads(prev)
        jit.set_parallel(prev_launch)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_forward_matches_the_loop_reference_in_every_band_and_launch(cfg, relu, monkeypatch):
    monkeypatch.setattr(winograd_rows, "PARALLEL_FLOPS", 1)       # blocks in parallel
    xs, ws, stride, pads, dil = cfg
    rng = np.random.default_rng(1)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[3]).astype(np.float32)
    want = loops(x, w, b, stride, pads, dil)
    if relu:
        want = np.maximum(want, 0)
    got = []
    for scratch in _bands(cfg):
        monkeypatch.setattr(winograd_rows, "V_SCRATCH", scratch)
        for threads, launch in ((1, False), (2, False), (2, True)):
            for streams in (1 << 40, 0):         # stores through the caches, or past them
                monkeypatch.setattr(winograd_rows, "STREAM_BYTES", streams)
                got.append(_run(lambda: winograd_rows.forward(x, w, b, stride, pads, dil,
                                                              relu), threads, launch))
    assert got[0].shape == want.shape and got[0].dtype == np.float32
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    for other in got[1:]:              # bands, threads, launches, stores: the same bits
        np.testing.assert_array_equal(other, got[0])
    assert got[0].ctypes.data % 64 == 0                     # whole vectors on cache lines


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_weight_grad_matches_the_loop_reference_and_torch(cfg, relu, torch, monkeypatch):
    monkeypatch.setattr(winograd_rows, "PARALLEL_FLOPS", 1)
    xs, ws, stride, pads, dil = cfg
    rng = np.random.default_rng(2)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[3]).astype(np.float32)
    out = winograd_rows.forward(x, w, b, stride, pads, dil, relu=True)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    mask = out if relu else None
    want_dw, want_db = loop_weight_grad(x, dout * (out > 0) if relu else dout, ws, stride,
                                        pads, dil)
    got = []
    for scratch in _bands(cfg):
        monkeypatch.setattr(winograd_rows, "V_SCRATCH", scratch)
        for threads, launch in ((1, False), (2, False), (2, True)):
            got.append(_run(lambda: winograd_rows.weight_grad(x, dout, ws, stride, pads, dil,
                                                              mask), threads, launch))
    dw, db = got[0]
    assert dw.shape == ws and db.shape == (ws[3],) and dw.dtype == db.dtype == np.float32
    np.testing.assert_allclose(dw, want_dw, rtol=1e-4, atol=1e-5 * np.abs(want_dw).max())
    np.testing.assert_allclose(db, want_db, rtol=1e-4, atol=1e-5 * np.abs(want_db).max())
    # got: per band height, (1 thread, 2 threads on the pool, 2 in numba's launch).  For a
    # thread count the sums run in one order whatever the band (bands only change how
    # often the input rows are transformed), and two threads' partials are added in order
    # either way: the same bits.
    for k in range(3):
        for want_bits, other in ((got[0], got[3 * k]), (got[1], got[3 * k + 1]),
                                 (got[1], got[3 * k + 2])):
            np.testing.assert_array_equal(other[0], want_bits[0])
            np.testing.assert_array_equal(other[1], want_bits[1])
    np.testing.assert_allclose(got[1][0], want_dw, rtol=1e-4, atol=1e-5 * np.abs(want_dw).max())
    torch_dw, torch_db = torch_conv_weight_grad(torch, x, w, b, stride, pads, dil, dout, relu)
    for label, g, t in (("dw", dw, torch_dw), ("db", db, torch_db)):
        np.testing.assert_allclose(g, t, rtol=1e-4, atol=1e-5 * np.abs(t).max(), err_msg=label)


def test_winograd_error_on_unit_variance_data_is_within_1e_4():
    """The issue's bound for every Winograd path: relative to the float64 direct conv."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 40, 40, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 64)).astype(np.float32)
    b = np.zeros(64, np.float32)
    want = loops(x, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1))
    got = winograd_rows.forward(x, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1))
    assert np.abs(got - want).max() / np.abs(want).max() <= 1e-4
    dout = rng.standard_normal(want.shape).astype(np.float32)
    want_dw, _ = loop_weight_grad(x, dout, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1))
    dw, _ = winograd_rows.weight_grad(x, dout, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1))
    assert np.abs(dw - want_dw).max() / np.abs(want_dw).max() <= 1e-4


def test_nan_reaches_the_outputs_that_read_it_and_only_those():
    """A tile's transforms mix its six inputs: a NaN input makes NaN only in the tiles
    whose windows hold it (4 outputs wide, not 3) -- and the direct kernels' rule for
    the rest: every finite output, here all clamped to 0 by the ReLU, stays finite."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 8, 12, 3)).astype(np.float32)
    x[0, 3, 5, 1] = np.nan                       # padded column 6: tiles 0 (0..5) and 1 (4..9)
    w = rng.standard_normal((3, 3, 3, 16)).astype(np.float32)
    b = np.full(16, -50.0, np.float32)
    out = winograd_rows.forward(x, w, b, (1, 1), ((1, 1), (1, 1)), (1, 1), relu=True)
    nan = np.isnan(out).any(axis=-1)
    assert nan[0, 2:5, 4:7].all()                # the pixels whose windows read it
    assert not nan[0, :2].any() and not nan[0, 5:].any()      # other rows: untouched
    assert (out[~np.isnan(out)] == 0).all()


def test_conv2d_runs_it_for_a_first_layer_and_falls_back_when_it_cannot():
    from convnet.ops.conv import conv2d_backward

    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 16, 16, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 32)).astype(np.float32)
    args = (x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    with algo.force("winograd_rows"):
        out, cache = conv2d_forward(*args)
        dx, dw, db = conv2d_backward(np.ones_like(out), cache, (True, True, False))
        with jit.use(False):                         # no numba kernels: im2col
            _, off = conv2d_forward(*args)
        _, strided = conv2d_forward(x, w, None, (1, 2), ((1, 1), (1, 1)), (1, 1), 1)
    assert algorithm_of(cache) == "winograd_rows"
    assert algorithm_of(off) == algorithm_of(strided) == "im2col"
    assert dx.shape == x.shape and dw.shape == w.shape and db is None    # dx: im2col's
    with algo.force("im2col"):
        want, cache2 = conv2d_forward(*args)
        wdx, wdw, _ = conv2d_backward(np.ones_like(out), cache2, (True, True, False))
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, wdx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, wdw, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("w_shape, stride, dilation, width, dtype, what", [
    ((3, 3, 3, 16), (1, 1), (1, 1), 9, np.float64, "got float64"),
    ((3, 3, 3, 24), (1, 1), (1, 1), 9, np.float32, r"w \(3, 3, 3, 24\)"),
    ((3, 2, 3, 16), (1, 1), (1, 1), 9, np.float32, r"w \(3, 2, 3, 16\)"),
    ((3, 3, 3, 16), (1, 2), (1, 1), 9, np.float32, r"stride \(1, 2\)"),
    ((3, 3, 3, 16), (1, 1), (1, 2), 9, np.float32, r"dilation \(1, 2\)"),
    ((3, 3, 3, 16), (1, 1), (1, 1), 3, np.float32, "an output 3 wide"),
])
def test_forward_rejects_what_it_cannot_run(w_shape, stride, dilation, width, dtype, what):
    x = np.zeros((1, 6, width, w_shape[2]), dtype)
    w = np.zeros(w_shape, dtype)
    assert not winograd_rows.applies(x.shape, w.shape, stride, ((1, 1), (1, 1)), dilation,
                                     1, dtype)
    with pytest.raises(ValueError, match=what):
        winograd_rows.forward(x, w, None, stride, ((1, 1), (1, 1)), dilation)


def test_kernel_scratch_starts_on_a_64_byte_boundary():
    """simd.empty64: numba's own np.empty starts 32 bytes off a line, which splits every
    64-byte vector load of the kernels' scratch."""
    from numba import njit

    from convnet.ops.simd import empty64

    @njit
    def offsets(sizes):
        out = np.empty((sizes.size, 2), np.int64)
        for i in range(sizes.size):
            a = empty64(sizes[i])
            out[i, 0], out[i, 1] = a.ctypes.data % 64, a.size
        return out

    sizes = np.array([1, 15, 16, 17, 3072, 100003], np.int64)
    got = offsets(sizes)
    np.testing.assert_array_equal(got[:, 0], 0)
    np.testing.assert_array_equal(got[:, 1], sizes)


@pytest.mark.parametrize("k, size, dtype", [(1, 1, np.float32), (2, 3520, np.float32),
                                            (3, 1024, np.float32), (4, 513, np.float64),
                                            (2, 4096, np.int64)])
def test_lane_rows_give_each_thread_pages_of_its_own(k, size, dtype):
    """The per-thread accumulators: every row starts a page, holds ``size`` values, and
    no page holds values of two rows (a spare page lies between them)."""
    from convnet.ops.im2col import PAGE, lane_rows

    rows = lane_rows(k, size, dtype)
    item = np.dtype(dtype).itemsize
    assert rows.dtype == dtype and rows.shape[0] == k and rows.flags.c_contiguous
    assert rows.shape[1] >= size + PAGE // item
    starts = [rows[i].ctypes.data for i in range(k)]
    assert all(s % PAGE == 0 for s in starts)
    last_pages = [(s + size * item - 1) // PAGE for s in starts]
    for i in range(k - 1):
        assert starts[i + 1] // PAGE > last_pages[i] + 1
    rows[:, :size] = 7                        # every row's values are writable memory
    assert np.all(rows[:, :size] == 7)


def test_lane_scratch_is_reused_per_thread_while_its_shape_holds():
    import threading

    from convnet.ops.im2col import PAGE, lane_scratch, release_scratch

    release_scratch()
    a = lane_scratch("t", 2, 3520)
    assert a is lane_scratch("t", 2, 3520) and a is lane_scratch("t", 2, 4000)  # one stride
    assert a.ctypes.data % PAGE == 0 and a.shape == (2, 5120) and a.dtype == np.float32
    b = lane_scratch("t", 2, 5000)                       # a longer row: new rows
    assert b is not a and b.shape == (2, 6144)
    assert lane_scratch("t", 3, 5000) is not b           # another count: new rows
    assert lane_scratch("u", 3, 5000) is not lane_scratch("t", 3, 5000)
    other = []
    worker = threading.Thread(target=lambda: other.append(lane_scratch("u", 3, 5000)))
    worker.start()
    worker.join()
    assert other[0] is not lane_scratch("u", 3, 5000)    # each thread its own
    release_scratch()


@pytest.mark.parametrize("lanes", [8, 16])
@pytest.mark.parametrize("step", [1, 3, 12, 7])
def test_gather_reads_every_step_th_value(lanes, step):
    """simd.vgather, the input transform's split of a row by column mod 4."""
    from numba import njit

    from convnet.ops.simd import vgather, vstore

    @njit
    def gather(a, i, step, out):
        vstore(out, 0, vgather(a, i, step, lanes))

    a = np.arange(200, dtype=np.float32) * np.float32(0.5) - 7
    out = np.full(lanes, np.nan, np.float32)
    for i in (0, 5):
        gather(a, i, step, out)
        np.testing.assert_array_equal(out, a[i:i + lanes * step:step])
