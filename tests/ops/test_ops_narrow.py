"""The narrow kernels (ops.narrow): conv + ReLU + max pool with strides, dilations and
floor-mode crops against the three ops run in turn under im2col; bands of images on one
and two threads; the heuristic's choice and its fallback; what the forward refuses; and
the masked vector loads and the pool's scan step they are built from (ops.simd).  The
oracle tests against the loop reference and torch run in test_ops_conv_algos.py and
test_ops_fused.py, where "narrow" is one of the forced algorithms."""

from __future__ import annotations

import numpy as np
import pytest

from convnet.ops import algo, jit, narrow, pool
from convnet.ops import threads as ops_threads
from convnet.ops.conv import (
    algorithm_of,
    conv2d_backward,
    conv2d_forward,
    conv2d_relu_backward,
    conv2d_relu_forward,
)
from convnet.ops.fused import conv2d_relu_pool_backward, conv2d_relu_pool_forward

pytestmark = pytest.mark.skipif(not jit.available(), reason="numba is not installed")


def data(xs, ws, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[:3]))).astype(np.float32)
    b = (0.3 * rng.standard_normal(ws[3])).astype(np.float32)
    return x, w, b, rng


def close(got, want, label):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=label)


# ---- ops.simd: masked loads and stores, the pool's step ---------------------------

@pytest.mark.parametrize("lanes", [8, 16])
def test_masked_loads_and_stores_touch_only_their_lanes(lanes):
    from numba import njit

    from convnet.ops.simd import vload, vload_n, vstore, vstore_n

    @njit
    def kernel(a, out, i, n):
        vstore(out[0], 0, vload_n(a, i, lanes, n))
        vstore_n(out[1], 1, vload(a, 0, lanes), n)

    a = np.arange(1, 3 * lanes + 1, dtype=np.float32)
    for n in (0, 1, lanes - 3, lanes):
        out = np.full((2, 2 * lanes), -7.0, np.float32)
        kernel(a, out, lanes + 2, n)
        want = np.full(2 * lanes, -7.0, np.float32)
        want[:lanes] = np.where(np.arange(lanes) < n, a[lanes + 2:2 * lanes + 2], 0)
        np.testing.assert_array_equal(out[0], want)
        want = np.full(2 * lanes, -7.0, np.float32)
        want[1:1 + n] = a[:n]
        np.testing.assert_array_equal(out[1], want)
    # The lanes past n are not read: a load that ends at the array's last element.
    out = np.zeros((2, 2 * lanes), np.float32)
    kernel(a[:lanes + 3], out, lanes + 2, 1)
    assert out[0][0] == a[lanes + 2] and not out[0][1:].any()


def test_pick_is_torchs_max_pool_step():
    from numba import njit

    from convnet.ops.simd import vload, vpick, vstore

    @njit
    def kernel(u, v, a, b, out):
        vstore(out, 0, vpick(vload(u, 0, 8), vload(v, 0, 8), vload(a, 0, 8), vload(b, 0, 8)))

    nan, inf = np.float32(np.nan), np.float32(np.inf)
    u = np.array([1, nan, 2, 2, nan, -inf, 0, -0.0], np.float32)
    v = np.array([0, 1, 2, 3, nan, -inf, -0.0, nan], np.float32)
    out = np.empty(8, np.float32)
    kernel(u, v, np.ones(8, np.float32), np.zeros(8, np.float32), out)
    # u > v, or u NaN (a NaN wins and the last NaN stays); ties and a NaN v keep b.
    np.testing.assert_array_equal(out, [1, 1, 0, 0, 1, 0, 0, 0])


# ---- the narrow kernels -------------------------------------------------------------

POOLED = [  # x shape, w shape, stride, pads, dilation, pool: crops, F chunks 16 + 8
    ((3, 17, 19, 2), (3, 5, 2, 4), (1, 1), ((1, 2), (2, 0)), (1, 1), (2, 3)),
    ((2, 16, 15, 3), (5, 4, 3, 20), (2, 1), ((1, 2), (0, 3)), (1, 2), (2, 2)),
    ((2, 19, 14, 1), (3, 3, 1, 6), (1, 2), ((0, 1), (1, 1)), (2, 1), (3, 3)),
    ((4, 12, 12, 6), (5, 5, 6, 16), (1, 1), ((0, 0), (0, 0)), (1, 1), (2, 2)),  # LeNet conv2
]


# The backward sums 8 slots (16-lane pieces of a kernel row) at a time: KH rows of one
# slot each give every group size, 1-8, and a 9th slot starts a second group.
SLOTS = [((2, 13, 9, 2), (kh, 3, 2, 5), (1, 1), ((1, 1), (0, 1)), (1, 1), (2, 2))
         for kh in (1, 5, 6, 7, 9)]


@pytest.mark.parametrize("cfg", POOLED + SLOTS,
                         ids=["crops", "stride-dilation-F20", "F6", "lenet2",
                              *(f"slots{c[1][0]}" for c in SLOTS)])
def test_pooled_equals_im2col_conv_relu_and_pool_in_turn(cfg):
    xs, ws, stride, pads, dil, pk = cfg
    x, w, b, rng = data(xs, ws, 1)
    with algo.force("narrow"):
        out, cache = conv2d_relu_pool_forward(x, w, b, stride, pads, dil, 1, pk)
    assert cache[0] == "blocked" and cache[1][0] == "narrow"
    dout = rng.standard_normal(out.shape).astype(np.float32)
    got = (out, *conv2d_relu_pool_backward(dout, cache))
    with algo.force("im2col"):
        act, c_cache = conv2d_relu_forward(x, w, b, stride, pads, dil, 1)
    ref, p_cache = pool.max_pool2d_forward(act, pk, pk, ((0, 0), (0, 0)))
    want = (ref, *conv2d_relu_backward(pool.max_pool2d_backward(dout, p_cache), c_cache))
    assert (out == 0).any() and (out > 0).any()               # closed and open windows
    for label, g, e in zip(("out", "dx", "dw", "db"), got, want):
        assert g.dtype == np.float32 and g.shape == e.shape, label
        close(g, e, label)


@pytest.mark.parametrize("relu", [False, True])
def test_unpooled_conv_and_relu_equal_im2col(relu):
    xs, ws, stride, pads, dil = (2, 11, 13, 3), (4, 3, 3, 10), (2, 1), ((2, 1), (0, 1)), (1, 2)
    x, w, b, rng = data(xs, ws, 2)
    fwd = conv2d_relu_forward if relu else conv2d_forward
    bwd = conv2d_relu_backward if relu else conv2d_backward
    results = []
    for name in ("narrow", "im2col"):
        with algo.force(name):
            out, cache = fwd(x, w, b, stride, pads, dil, 1)
            dout = np.random.default_rng(3).standard_normal(out.shape).astype(np.float32)
            results.append((out, *bwd(dout, cache)))
    for label, g, e in zip(("out", "dx", "dw", "db"), *results):
        close(g, e, label)


def _bands_run(threads, launch):
    """conv + ReLU + pool forward and backward with the images cut in ``threads`` bands,
    through numba's parallel launch or (``launch=False``) the pool."""
    x, w, b, rng = data((5, 14, 13, 3), (5, 5, 3, 12), 4)
    prev = ops_threads.num_threads()
    try:
        ops_threads.set_num_threads(threads)
        jit.set_parallel(launch)
        with algo.force("narrow"):
            out, cache = conv2d_relu_pool_forward(x, w, b, (1, 1), ((1, 1), (2, 0)),
                                                  (1, 1), 1, (2, 2))
        dout = rng.standard_normal(out.shape).astype(np.float32)
        return (out, *conv2d_relu_pool_backward(dout, cache))
    finally:
        ops_threads.set_num_threads(prev)
        jit.set_parallel(True)


@pytest.mark.parametrize("launch", [True, False], ids=["launch", "pool"])
def test_image_bands_on_one_or_two_threads(launch, monkeypatch):
    """Bands of images: the forward and dx are the same bits on one and two threads; dW
    and db are summed per band (same bits on every run for a given thread count); and
    numba's parallel launch gives the pool's bits exactly."""
    monkeypatch.setattr(narrow, "PARALLEL_FLOPS", 1)
    one = _bands_run(1, launch)
    first, again = _bands_run(2, launch), _bands_run(2, launch)
    for a, b_ in zip(first, again):
        np.testing.assert_array_equal(a, b_)
    np.testing.assert_array_equal(first[0], one[0])
    np.testing.assert_array_equal(first[1], one[1])
    for label, g, e in zip(("dw", "db"), first[2:], one[2:]):
        close(g, e, label)
    for a, b_ in zip(first, _bands_run(2, not launch)):
        np.testing.assert_array_equal(a, b_)


def test_parallel_launch_only_where_it_is_safe(monkeypatch):
    """One thread, launches turned off, and the workqueue layer (not thread-safe) all
    fall back to the pool; OpenMP or TBB launch."""
    import numba
    assert not jit.parallel_launch(1)
    jit.set_parallel(False)
    try:
        assert not jit.parallel_launch(2)
    finally:
        jit.set_parallel(True)
    with pytest.raises(TypeError, match="flag must be a bool, got int"):
        jit.set_parallel(1)
    monkeypatch.setattr(numba.config, "THREADING_LAYER", "workqueue")
    assert not jit._safe_layer()
    monkeypatch.setattr(numba.config, "THREADING_LAYER", "omp")
    try:
        import numba.np.ufunc.omppool  # noqa: F401
    except ImportError:
        assert not jit._safe_layer()
    else:
        assert jit._safe_layer()
    monkeypatch.setitem(jit._state, "layer_ok", False)
    assert not jit.parallel_launch(2)


def test_one_launcher_serves_every_shape(monkeypatch):
    """The band launchers take the kernel as a first-class function: two shapes (two
    kernels, each compiled for its taps) share one launcher, compiled once."""
    monkeypatch.setattr(narrow, "PARALLEL_FLOPS", 1)
    prev = ops_threads.num_threads()
    ops_threads.set_num_threads(2)
    try:
        for ws in ((3, 3, 2, 8), (2, 3, 2, 16)):
            x, w, b, rng = data((4, 9, 10, 2), ws, 6)
            with algo.force("narrow"):
                out, cache = conv2d_relu_pool_forward(x, w, b, (1, 1), ((0, 0), (0, 0)),
                                                      (1, 1), 1, (2, 2))
                conv2d_relu_pool_backward(np.ones_like(out), cache)
    finally:
        ops_threads.set_num_threads(prev)
    if not jit.parallel_launch(2):
        pytest.skip("numba's threading layer here is neither OpenMP nor TBB")
    for name in ("forward bands", "backward bands"):
        assert len(narrow._built[name].signatures) == 1
    assert sum(1 for k in narrow._built if isinstance(k, tuple) and k[0] == "address") >= 3


def test_entry_wants_one_signature():
    from numba import njit

    @njit
    def f(a):
        return a

    f(1)
    f(1.0)
    with pytest.raises(ValueError, match="one signature, got 2"):
        jit.entry(f)


FORK_CHILD = """
import os, sys
import numpy as np
from convnet.ops import narrow, threads
narrow.PARALLEL_FLOPS = 1
threads.set_num_threads(2)
rng = np.random.default_rng(0)
x = rng.standard_normal((6, 12, 12, 2), dtype=np.float32)
w = rng.standard_normal((3, 3, 2, 8), dtype=np.float32)
y, _ = narrow.narrow_forward(x, w, None, (1, 1), (1, 1), 10, 10, True, (2, 2))
assert threads.run_blocks(lambda b: b, range(4)) == [0, 1, 2, 3]
r, wfd = os.pipe()
pid = os.fork()
if pid == 0:
    y2, _ = narrow.narrow_forward(x, w, None, (1, 1), (1, 1), 10, 10, True, (2, 2))
    ok = threads.run_blocks(lambda b: 2 * b, range(4)) == [0, 2, 4, 6]
    os.write(wfd, b"ok" if ok and np.array_equal(y, y2) else b"differ")
    os._exit(0)
os.close(wfd)
got = os.read(r, 16)
_, status = os.waitpid(pid, 0)
print(got.decode(), os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_runs_parallel_ops():
    """A child forked after a parallel launch and a pool round trip runs both again: GNU
    OpenMP is not fork-safe (numba aborts the child) and the pool's workers are not
    copied (the child would wait for them forever), so the child uses a fresh pool."""
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-c", FORK_CHILD], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["ok", "0"], (res.stdout, res.stderr)


def test_an_inf_input_under_a_closed_window_leaves_dw_finite():
    """Only the gradient's non-zero entries are added, so an input value that only
    closed windows read never meets a 0 (a dense GEMM makes 0 * inf = NaN there)."""
    x, w, b, rng = data((1, 8, 8, 1), (3, 3, 1, 8), 5)
    w[:] = np.abs(w)
    b[:] = -100.0                                         # every window closed ...
    x[0, 0, 0, 0] = np.inf                                # ... except those reading inf
    with algo.force("narrow"):
        out, cache = conv2d_relu_pool_forward(x, w, b, (1, 1), ((0, 0), (0, 0)), (1, 1), 1,
                                              (2, 2))
    assert np.isinf(out[0, 0, 0]).all() and (out.reshape(-1, 8)[1:] == 0).all()
    dout = np.ones_like(out)
    dx, dw, db = conv2d_relu_pool_backward(dout, cache)
    assert np.isinf(dw[0, 0]).all() and np.isfinite(dw.reshape(9, 8)[1:]).all()
    np.testing.assert_array_equal(db, np.ones(8, np.float32))


def test_heuristic_gives_narrow_the_banded_gemms_layers_and_falls_back():
    algo.clear_cache()
    args = ((64, 28, 28, 1), (5, 5, 1, 6), (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
    try:
        assert algo.choose(*args, np.float32) == "narrow"
        assert algo.choose(*args, np.float64) == "toeplitz"
        assert algo.choose((4, 9, 9, 3), (3, 3, 3, 8), (1, 1), ((1, 1), (1, 1)), (1, 1), 1,
                           np.float32) == "im2col"          # 3x3: not the banded GEMM's
        with jit.use(False):                                # cached, then turned off
            assert algo.choose(*args, np.float32) == "toeplitz"
    finally:
        algo.clear_cache()


def test_forward_rejects_what_it_cannot_run():
    x = np.zeros((1, 6, 6, 1))
    w = np.zeros((3, 3, 1, 4))
    with pytest.raises(ValueError, match="needs float32 and numba; got float64"):
        narrow.narrow_forward(x, w, None, (1, 1), (1, 1), 4, 4)
    with pytest.raises(ValueError, match=r"pool needs relu, got pool \(2, 2\), relu=False"):
        narrow.narrow_forward(x.astype(np.float32), w.astype(np.float32), None, (1, 1),
                              (1, 1), 4, 4, pool=(2, 2))
    with algo.force("narrow"):
        out, cache = conv2d_forward(x.astype(np.float32), w.astype(np.float32), None, (1, 1),
                                    ((0, 0), (0, 0)), (1, 1))
    assert algorithm_of(cache) == "narrow"
    with pytest.raises(ValueError, match=r"dy has shape \(1, 3, 4, 4\), expected \(1, 4, 4, 4\)"):
        conv2d_backward(np.zeros((1, 3, 4, 4), np.float32), cache)
