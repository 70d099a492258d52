"""ops.jit: the compiled Winograd F(4x4) tile transforms and ops.transforms2's F(2x2)
ones, each against the Kronecker matrices of ops.winograd_transforms applied in NumPy
(their definition), on random data with partial tiles and offsets; the switch; and that
ops.winograd really uses them.  (The conv-level oracle tests run "winograd2" and
"winograd4" compiled and "winograd2-numpy" and "winograd4-numpy" both.)"""

from __future__ import annotations

import os
import subprocess
import sys
import types

import numpy as np
import pytest

from convnet.ops import algo, jit, transforms2, winograd, winograd_rows
from convnet.ops import threads as ops_threads
from convnet.ops.conv import conv2d_backward, conv2d_forward
from convnet.ops.winograd_backward import winograd_backward
from convnet.ops.winograd_transforms import kron_matrices

pytest.importorskip("numba", reason="numba (convnet[fast]) is not installed")

DTYPES = [np.float32, np.float64]


def tiles(grid, tb, tw, m=4):
    """(a*a, Nb*TB*TW, C): the overlapping a x a tiles of grid at stride m, tile-major."""
    nb, c, a = grid.shape[0], grid.shape[3], m + 2
    out = np.empty((a, a, nb, tb, tw, c), grid.dtype)
    for ty in range(tb):
        for tx in range(tw):
            tile = grid[:, m * ty:m * ty + a, m * tx:m * tx + a]            # (Nb, a, a, C)
            out[:, :, :, ty, tx] = tile.transpose(1, 2, 0, 3)
    return out.reshape(a * a, nb * tb * tw, c)


def kernels(m):
    return jit.kernels() if m == 4 else transforms2.kernels()


M = pytest.mark.parametrize("m", [2, 4])


def untile(y, nb, tb, tw):
    """(m*m, P, F) -> (Nb, TB*m, TW*m, F): each tile's m x m values in place."""
    m = int(round(np.sqrt(y.shape[0])))
    f = y.shape[2]
    return (y.reshape(m, m, nb, tb, tw, f).transpose(2, 3, 0, 4, 1, 5)
            .reshape(nb, tb * m, tw * m, f))


@M
@pytest.mark.parametrize("dtype", DTYPES)
def test_input_tiles_is_kron_bt_on_the_gathered_tiles(dtype, m, rng):
    k = kernels(m)
    kb = kron_matrices(m, dtype)[0]
    nb, tb, tw, c = 2, 3, 5, 7
    grid = rng.standard_normal((nb, m * tb + 2, m * tw + 2, c)).astype(dtype)
    v = np.full(((m + 2) ** 2, nb * tb * tw, c), np.nan, dtype)
    k.input_tiles(grid, tb, tw, v)
    want = np.einsum("ij,jpc->ipc", kb.astype(np.float64), tiles(grid, tb, tw, m))
    np.testing.assert_allclose(v, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


@M
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_output_tiles_is_kron_at_plus_bias_clipped_at_offsets(dtype, relu, m, rng):
    """Rows and columns past (rows, cols) are not written; n0, r0 place the block."""
    k = kernels(m)
    ka = kron_matrices(m, dtype)[2]
    nb, tb, tw, f = 2, 3, 4, 5
    rows, cols = (10, 14) if m == 4 else (5, 7)          # the last tile row and column clipped
    n0, r0 = 1, 3
    mm = rng.standard_normal(((m + 2) ** 2, nb * tb * tw, f)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    out = np.full((4, 16, 15, f), 7.0, dtype)
    k.output_tiles(mm, tb, tw, bias, relu, out, n0, r0, rows, cols)
    y = untile(np.einsum("ij,jpf->ipf", ka.astype(np.float64), mm), nb, tb, tw)[:, :rows, :cols]
    y = y + bias
    if relu:
        y = np.maximum(y, 0)
    want = np.full(out.shape, 7.0)
    want[n0:n0 + nb, r0:r0 + rows, :cols] = y
    np.testing.assert_allclose(out, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


@M
def test_output_tiles_relu_keeps_nan_and_zeroes_negatives(m):
    k = kernels(m)
    mm = np.zeros(((m + 2) ** 2, 1, 3), np.float32)
    mm[0, 0] = [np.nan, -2.0, 3.0]                       # point (0, 0) feeds output (0, 0)
    out = np.empty((1, m, m, 3), np.float32)
    k.output_tiles(mm, 1, 1, np.zeros(3, np.float32), True, out, 0, 0, m, m)
    assert np.isnan(out[0, 0, 0, 0]) and out[0, 0, 0, 1] == 0 and out[0, 0, 0, 2] == 3


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_tiles_is_relu_then_max_pool_with_torchs_argmax(dtype, rng):
    """Ties (ReLU's zeros) go to the first tap, NaN windows to their last NaN tap; pooled
    rows and columns past (prows, pcols) are not written."""
    from convnet.ops.pool import tile_max_argmax
    k = jit.kernels()
    ka = kron_matrices(4, dtype)[2]
    nb, tb, tw, f = 2, 2, 3, 6
    mm = rng.standard_normal((36, nb * tb * tw, f)).astype(dtype)
    mm[:, 3, 0] = np.nan                                  # a whole tile of NaN in channel 0
    mm[:, 5, 1] = -50.0                                   # a tile where the ReLU closes all
    bias = rng.standard_normal(f).astype(dtype)
    prows, pcols, n0, q0 = 3, 5, 1, 2
    pooled = np.full((3, 6, 6, f), 7.0, dtype)
    arg = np.full(pooled.shape, 9, np.uint8)
    k.pool_tiles(mm, tb, tw, bias, pooled, arg, n0, q0, prows, pcols)
    y = untile(np.einsum("ij,jpf->ipf", ka, mm), nb, tb, tw) + bias
    y = np.maximum(y, 0, where=~np.isnan(y), out=y.copy())
    want, want_arg = tile_max_argmax(y[:, :2 * prows, :2 * pcols]
                                     .reshape(nb, prows, 2, pcols, 2, f))
    assert np.isnan(want).any() and (want_arg[~np.isnan(want)] == 0).any()
    expect = np.full(pooled.shape, 7.0, dtype)
    expect_arg = np.full(pooled.shape, 9, np.uint8)
    expect[n0:n0 + nb, q0:q0 + prows, :pcols] = want
    expect_arg[n0:n0 + nb, q0:q0 + prows, :pcols] = want_arg
    np.testing.assert_allclose(pooled, expect, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(arg, expect_arg)


@M
@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_tiles_is_kron_a_on_each_output_tile(dtype, m, rng):
    k = kernels(m)
    ka = kron_matrices(m, dtype)[2]
    nb, tb, tw, f = 2, 3, 2, 9
    dy = rng.standard_normal((nb, m * tb, m * tw, f)).astype(dtype)
    dm = np.full(((m + 2) ** 2, nb * tb * tw, f), np.nan, dtype)
    k.grad_tiles(dy, tb, tw, dm)
    dyt = dy.reshape(nb, tb, m, tw, m, f).transpose(2, 4, 0, 1, 3, 5).reshape(m * m, -1, f)
    want = np.einsum("ji,jpf->ipf", ka.astype(np.float64), dyt)
    np.testing.assert_allclose(dm, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


@M
@pytest.mark.parametrize("dtype", DTYPES)
def test_add_tiles_adds_kron_b_tiles_with_their_overlaps(dtype, m, rng):
    k = kernels(m)
    kb = kron_matrices(m, dtype)[0]
    a = m + 2
    nb, tb, tw, c = 2, 3, 4, 5
    dv = rng.standard_normal((a * a, nb * tb * tw, c)).astype(dtype)
    start = rng.standard_normal((nb, m * tb + m, m * tw + m, c)).astype(dtype)
    dg = start.copy()
    k.add_tiles(dv, tb, tw, dg)
    dd = np.einsum("ji,jpc->ipc", kb.astype(np.float64), dv).reshape(a, a, nb, tb, tw, c)
    want = start.astype(np.float64)
    for ty in range(tb):                                  # one tile at a time, by definition
        for tx in range(tw):
            tile = dd[:, :, :, ty, tx].transpose(2, 0, 1, 3)              # (Nb, a, a, C)
            want[:, m * ty:m * ty + a, m * tx:m * tx + a] += tile
    np.testing.assert_allclose(dg, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def test_winograd_runs_the_kernels_when_enabled_and_numpy_when_not(monkeypatch, rng):
    """Every kernel is called by a forward (plain and pooled) and a backward; with the
    switch off none is, and both give the same numbers."""
    real = jit.kernels()
    calls = []

    def spy(name):
        def call(*args):
            calls.append(name)
            return getattr(real, name)(*args)
        return call

    names = ("input_tiles", "output_tiles", "pool_tiles", "grad_tiles", "add_tiles")
    monkeypatch.setitem(jit._state, "kernels", types.SimpleNamespace(**{n: spy(n) for n in names}))
    x = rng.standard_normal((2, 9, 10, 6)).astype(np.float32)
    w = rng.standard_normal((3, 3, 6, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    pads = ((1, 1), (1, 1))

    def run():
        out, cache = winograd.winograd_forward(x, w, b, pads, 4)
        grads = winograd_backward(np.ones_like(out), cache)
        pooled, _ = winograd.winograd_forward(x, w, b, pads, 4, relu=True, pool=(2, 2))
        return (out, pooled, *grads)

    compiled = run()
    assert set(calls) == set(names)
    calls.clear()
    with jit.use(False):
        plain = run()
    assert calls == []
    for g, e in zip(compiled, plain):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_float16_stays_in_numpy_and_each_tile_size_has_its_kernels(monkeypatch, rng):
    assert winograd._kernels(4, np.float16) is None
    assert winograd._kernels(2, np.float16) is None
    assert winograd._kernels(2, np.float32) is transforms2.kernels() is not None
    assert winograd._kernels(4, np.float32) is jit.kernels()
    assert transforms2.kernels().pool_tiles is None      # F(2x2)'s pool: NumPy's scan
    with jit.use(False):
        assert winograd._kernels(4, np.float32) is None
        assert winograd._kernels(2, np.float32) is None


def test_without_numba_the_numpy_path_runs(monkeypatch, rng):
    monkeypatch.setattr(jit, "available", lambda: False)
    assert not jit.enabled() and jit.kernels() is None
    x = rng.standard_normal((1, 6, 7, 3))
    w = rng.standard_normal((3, 3, 3, 2))
    with algo.force("winograd4"):
        out, cache = conv2d_forward(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    with algo.force("im2col"):
        ref, _ = conv2d_forward(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    np.testing.assert_allclose(out, ref, rtol=1e-9, atol=1e-9)
    assert conv2d_backward(np.ones_like(out), cache)[0].shape == x.shape


def test_switch_validates_restores_and_reads_the_environment():
    with pytest.raises(TypeError, match="flag must be a bool, got int"):
        jit.set_enabled(1)
    before = jit.enabled()
    with jit.use(False):
        assert not jit.enabled()
        with jit.use(True):
            assert jit.enabled()
        assert not jit.enabled()
    assert jit.enabled() == before
    code = "from convnet.ops import jit; print(jit.enabled(), jit.kernels())"
    env = dict(os.environ, CONVNET_JIT="0")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert res.stdout.split() == ["False", "None"]


@pytest.mark.parametrize("launch", [True, False])
def test_compile_kernels_names_the_types_the_winograd_rows_calls_pass(launch, monkeypatch):
    """After compile_kernels (which jit.warm_up runs for 64 channels), a forward and a
    weight gradient through numba's parallel launch, or through the pool where launches
    are off, compile nothing more: every kernel has its one explicit signature."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 9, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 64)).astype(np.float32)
    monkeypatch.setattr(winograd_rows, "PARALLEL_FLOPS", 1)
    prev, prev_launch = ops_threads.num_threads(), jit._state["parallel"]
    ops_threads.set_num_threads(2)
    jit.set_parallel(launch)
    try:
        if launch:
            assert jit.warm_up(("float32",)) is True
        else:
            winograd_rows.compile_kernels(64)
        helpers = winograd_rows._helpers()
        kernels = [winograd_rows._kernels(64, part)[0] for part in ("forward", "weight_grad")]
        kernels += [getattr(helpers, name) for name in ("forward_bands", "weight_grad_bands",
                                                        "weights", "finish")]
        compiled = [set(k.signatures) for k in kernels]
        assert all(len(sigs) == 1 for sigs in compiled)
        out = winograd_rows.forward(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), True)
        winograd_rows.weight_grad(x, out, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1), out)
        assert [set(k.signatures) for k in kernels] == compiled
    finally:
        ops_threads.set_num_threads(prev)
        jit.set_parallel(prev_launch)


def test_warm_up_compiles_each_kernel_for_the_asked_dtypes():
    k = jit.kernels()
    assert jit.warm_up(("float32", np.float64)) is True
    for name in ("input_tiles", "output_tiles", "pool_tiles", "grad_tiles", "add_tiles"):
        dtypes = {str(sig[0].dtype) for sig in getattr(k, name).signatures}
        assert {"float32", "float64"} <= dtypes, name
        if name != "pool_tiles":                        # F(2x2)'s: NumPy's window scan
            dtypes = {str(sig[0].dtype) for sig in getattr(transforms2.kernels(), name)
                      .signatures}
            assert {"float32", "float64"} <= dtypes, f"F(2x2) {name}"
    with pytest.raises(ValueError, match="dtypes must be float32 or float64, got float16"):
        jit.warm_up(("float16",))
    with jit.use(False):
        assert jit.warm_up() is False


def test_parallel_launch_sets_numbas_count_once_per_thread_and_count(monkeypatch):
    """numba's thread count is per calling thread: set on a thread's first launch and
    when the count asked for changes, not on every launch (1-8 us each)."""
    import threading

    import numba
    if not jit.parallel_launch(2):
        pytest.skip("numba's threading layer here is neither OpenMP nor TBB")
    calls = []
    monkeypatch.setattr(numba, "set_num_threads", lambda n: calls.append(n))
    monkeypatch.setattr(jit._local, "threads", 0)
    assert jit.parallel_launch(2) and jit.parallel_launch(2)
    assert jit.parallel_launch(3) and jit.parallel_launch(2)
    top = min(3, numba.config.NUMBA_NUM_THREADS)
    assert calls == [2, top, 2]
    got = []
    worker = threading.Thread(target=lambda: got.append(jit.parallel_launch(2)))
    worker.start()
    worker.join()
    assert got == [True] and calls == [2, top, 2, 2]      # another thread: its own count
    assert not jit.parallel_launch(1) and calls == [2, top, 2, 2]
