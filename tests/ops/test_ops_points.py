"""Winograd's point GEMMs in register blocks (ops.points): each product against a
float64 NumPy one on awkward sizes (rows and channels that leave short 6-row blocks,
64 + 32 + 16-lane chunks, one to three threads), the panel layout, bad arguments; then
the Winograd convs that use them (few tiles, channels a multiple of 16), forward,
backward, with the fused ReLU and pool, against the loop reference, torch and the BLAS
path; and the weight cache's new layouts and bitwise comparison."""

from __future__ import annotations

import numpy as np
import pytest
from test_ops_conv_algos import naive

from convnet.ops import algo, jit, points, winograd, winograd_transforms
from convnet.ops import threads as ops_threads
from convnet.ops.conv import algorithm_of, conv2d_backward, conv2d_forward
from convnet.ops.im2col import aligned_empty
from convnet.ops.winograd_backward import winograd_backward

pytestmark = pytest.mark.skipif(not jit.available(), reason="numba is not installed")

SHAPES = [(1, 1, 16, 16), (3, 7, 48, 112), (16, 13, 112, 48), (4, 49, 64, 128),
          (2, 6, 32, 16), (36, 5, 16, 64)]      # (T, P, K, N)


@pytest.fixture(params=[1, 2, 3], ids=lambda t: f"{t}threads")
def threads(request):
    prev = ops_threads.num_threads()
    ops_threads.set_num_threads(request.param)
    yield request.param
    ops_threads.set_num_threads(prev)


def data(shape, seed):
    t, p, k, n = shape
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((t, p, k), dtype=np.float32),
            rng.standard_normal((t, k, n), dtype=np.float32),
            rng.standard_normal((t, p, n), dtype=np.float32))


def close(got, want):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * scale)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matmul_packed_matches_numpy(shape, threads):
    a, b, _ = data(shape, 1)
    out = np.full((shape[0], shape[1], shape[3]), np.nan, np.float32)
    points.matmul_packed(a, points.pack(b), shape[3], out)
    close(out, np.matmul(a.astype(np.float64), b.astype(np.float64)))


@pytest.mark.parametrize("store", ["cached", "streamed", "unaligned"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_weight_grad_folds_the_points_into_nine_taps(shape, store, threads, monkeypatch):
    """dW's stores: cached, non-temporal (a large dW, 64-byte aligned), and cached again
    where the output is not aligned (a non-temporal store there would fault)."""
    monkeypatch.setattr(points, "K_BLOCK", 32)        # several row blocks, a short last one
    if store != "cached":
        monkeypatch.setattr(points, "STREAM_BYTES", 0)
    t, p, k, n = shape
    a, _, g = data(shape, 3)
    gt = np.random.default_rng(4).standard_normal((9, t)).astype(np.float32)
    gt[np.random.default_rng(5).random((9, t)) < 0.4] = 0       # zeros are skipped
    size = 9 * k * n
    out = aligned_empty(size + 1)[int(store == "unaligned"):][:size].reshape(9, k, n)
    out[...] = np.nan
    points.weight_grad(a, g, gt, out)
    du = np.matmul(a.transpose(0, 2, 1).astype(np.float64), g.astype(np.float64))
    close(out, np.tensordot(gt.astype(np.float64), du, axes=1))


def test_one_to_three_threads_give_the_same_bits():
    a, b, g = data((16, 11, 48, 112), 6)
    panels = points.pack(b)
    gt = np.random.default_rng(7).standard_normal((9, 16)).astype(np.float32)
    runs = []
    prev = ops_threads.num_threads()
    try:
        for t in (1, 2, 3):
            ops_threads.set_num_threads(t)
            runs.append((points.matmul_packed(a, panels, 112, np.empty((16, 11, 112),
                                                                       np.float32)),
                         points.weight_grad(a, g, gt, np.empty((9, 48, 112), np.float32))))
    finally:
        ops_threads.set_num_threads(prev)
    for other in runs[1:]:
        for x, y in zip(runs[0], other):
            assert np.array_equal(x, y)


@pytest.mark.parametrize("shape", [(16, 112, 48), (3, 16, 5), (36, 64, 64)])
def test_pack_of_a_transposed_u_matches_the_strided_copy(shape, threads, monkeypatch):
    """The dx pass's U^T: the compiled gathers give the strided copy's panels exactly."""
    u = np.random.default_rng(8).standard_normal(shape).astype(np.float32)
    monkeypatch.setattr(points, "PACK_T_SIZE", 1 << 40)
    want = points.pack(u.transpose(0, 2, 1))
    monkeypatch.setattr(points, "PACK_T_SIZE", 1)
    got = points.pack(u.transpose(0, 2, 1))
    np.testing.assert_array_equal(got, want)
    t, n, k = shape                             # spot check: u[t, n0 + l, k] per chunk
    n0, lanes = points.chunks(n)[-1]
    assert got[(t - 1) * k * n + k * n0 + (k - 1) * lanes + lanes - 1] == u[-1, -1, -1]


def test_pack_lays_each_chunk_out_row_by_row():
    b = np.arange(2 * 3 * 112, dtype=np.float32).reshape(2, 3, 112)
    flat = points.pack(b)
    assert points.chunks(112) == [(0, 64), (64, 32), (96, 16)]
    for t in range(2):
        for n0, lanes in points.chunks(112):
            base = t * 3 * 112 + 3 * n0
            for k in range(3):
                np.testing.assert_array_equal(flat[base + k * lanes:base + (k + 1) * lanes],
                                              b[t, k, n0:n0 + lanes])


def test_bad_arguments_name_what_was_expected():
    a, b, g = data((2, 3, 16, 32), 8)
    out = np.empty((2, 3, 32), np.float32)
    with pytest.raises(ValueError, match=r"expected a C-contiguous float32 array of shape "
                                         r"\(2, 3, 32\), got float64"):
        points.matmul_packed(a, points.pack(b), 32, out.astype(np.float64))
    with pytest.raises(ValueError, match=r"shape \(1024,\), got float32 \(512,\)"):
        points.matmul_packed(a, points.pack(b)[:512], 32, out)
    with pytest.raises(ValueError, match="not contiguous"):
        points.weight_grad(a, np.asfortranarray(g), np.zeros((9, 2), np.float32),
                           np.empty((9, 16, 32), np.float32))
    with pytest.raises(ValueError, match=r"shape \(9, 2\)"):
        points.weight_grad(a, g, np.zeros((9, 3), np.float32),
                           np.empty((9, 16, 32), np.float32))


def test_applies_only_to_float32_channels_in_sixteens():
    assert points.applies(512, 512, np.float32) == jit.enabled()
    assert not points.applies(512, 512, np.float64)
    assert not points.applies(24, 512, np.float32)
    assert not points.applies(512, 40, np.float32)
    with jit.use(False):
        assert not points.applies(512, 512, np.float32)


# ---- the Winograd convs that use them -----------------------------------------------

# (x shape, w shape, pads): few tiles, channels a multiple of 16; partial tiles, two
# images, asymmetric pads, 64 + 32 + 16 chunks on both sides
CONVS = [((1, 7, 9, 32), (3, 3, 32, 48), ((1, 1), (1, 1))),
         ((2, 6, 5, 48), (3, 3, 48, 112), ((0, 2), (1, 0))),
         ((1, 14, 14, 64), (3, 3, 64, 64), ((1, 1), (1, 1)))]


def make(cfg, seed):
    xs, ws, pads = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal(ws) / np.sqrt(9 * ws[2])).astype(np.float32)
    b = rng.standard_normal(ws[3]).astype(np.float32)
    oh, ow = xs[1] + sum(pads[0]) - 2, xs[2] + sum(pads[1]) - 2
    dout = rng.standard_normal((xs[0], oh, ow, ws[3])).astype(np.float32)
    return x, w, b, dout


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("cfg", CONVS, ids=lambda c: "x".join(map(str, c[0])))
def test_winograd_with_point_kernels_matches_reference_and_torch(cfg, m, threads, torch):
    xs, ws, pads = cfg
    x, w, b, dout = make(cfg, 9)
    n, h, wd, c = xs
    assert winograd.point_gemms(n, h + sum(pads[0]) - 2, wd + sum(pads[1]) - 2, c, ws[3],
                                np.float32, m)
    with algo.force(f"winograd{m}"):
        out, cache = conv2d_forward(x, w, b, (1, 1), pads, (1, 1), 1)
    assert algorithm_of(cache) == f"winograd{m}"
    dx, dw, db = conv2d_backward(dout, cache, (True, True, True))
    pdx, pdw, _ = conv2d_backward(dout, cache, (True, False, False))    # dx alone
    qdx, qdw, _ = conv2d_backward(dout, cache, (False, True, False))    # dW alone
    assert pdw is None and qdx is None
    np.testing.assert_array_equal(pdx, dx)
    np.testing.assert_array_equal(qdw, dw)
    want = naive(x, w, b, (1, 1), pads, (1, 1), 1, dout)
    for got, e in zip((out, dx, dw, db), want):
        close(got, e)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).requires_grad_(True)
    (pt, pb), (pl, pr) = pads
    o = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (pl, pr, pt, pb)), wt,
                                   torch.from_numpy(b))
    o.backward(torch.from_numpy(dout.transpose(0, 3, 1, 2).copy()))
    close(out, o.detach().numpy().transpose(0, 2, 3, 1))
    close(dx, xt.grad.numpy().transpose(0, 2, 3, 1))
    close(dw, wt.grad.numpy().transpose(2, 3, 1, 0))


@pytest.mark.parametrize("path", ["one-block", "blocks", "blas"])
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("fused", ["", "relu", "relu+pool"])
def test_every_gemm_path_matches_the_reference(m, fused, path, monkeypatch):
    """Few tiles in one block (the point kernels cut among the threads), many blocks
    whose forward and dx GEMMs run in the point kernels (C and F <= PANEL_CHANNELS), or
    the BLAS: the same numbers, with the fused ReLU and 2 x 2 pool too."""
    x, w, b, _ = make(((2, 8, 8, 32), (3, 3, 32, 64), ((1, 1), (1, 1))), 10)
    pool = (2, 2) if fused == "relu+pool" else None
    relu = bool(fused)
    pads = ((1, 1), (1, 1))
    assert winograd.point_gemms(2, 8, 8, 32, 64, np.float32, m)
    if path != "one-block":
        monkeypatch.setattr(winograd, "POINT_TILES", 0)
        monkeypatch.setattr(winograd, "BLOCK_BYTES", 4096)          # several blocks
    if path == "blas":
        monkeypatch.setattr(winograd, "PANEL_CHANNELS", 0)
    assert winograd._panels(winograd.point_gemms(2, 8, 8, 32, 64, np.float32, m), 32, 64,
                            np.float32) == (path != "blas")
    out, cache = winograd.winograd_forward(x, w, b, pads, m=m, relu=relu, pool=pool)
    dout = np.random.default_rng(11).standard_normal(out.shape).astype(np.float32)
    dx, dw, db = winograd_backward(dout, cache,
                                            relu_out=out if relu and not pool else None)
    pre = naive(x, w, b, (1, 1), pads, (1, 1), 1, np.zeros((2, 8, 8, 64)))[0]
    y = np.maximum(pre, 0) if relu else pre
    g = dout.astype(np.float64)
    if pool:
        win = y.reshape(2, 4, 2, 4, 2, 64).transpose(0, 1, 3, 5, 2, 4).reshape(2, 4, 4, 64, 4)
        first = win.argmax(axis=-1)                  # the first of equal maxima (torch's)
        close(out, win.max(axis=-1))
        up = np.zeros(win.shape)
        np.put_along_axis(up, first[..., None], g[..., None], axis=-1)
        g = up.reshape(2, 4, 4, 64, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(2, 8, 8, 64)
    else:
        close(out, y)
    if relu:
        g = g * (pre > 0)
    want = naive(x, w, b, (1, 1), pads, (1, 1), 1, g)
    close(dx, want[1])
    close(dw, want[2])
    close(db, want[3])


@pytest.mark.parametrize("layout", ["strided", "read-only", "broadcast"])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("path", ["one-block", "blocks"])
def test_backward_reads_dout_in_any_layout(layout, relu, path, monkeypatch):
    """Blocks of whole tiles read dout where it lies (or mask it through the ReLU as
    they copy it): a strided, read-only or broadcast dout gives the dx and dW bits a
    C-contiguous one gives, and the loop reference's gradients."""
    if path == "blocks":
        monkeypatch.setattr(winograd, "POINT_TILES", 0)
        monkeypatch.setattr(winograd, "BLOCK_BYTES", 4096)
    pads = ((1, 1), (1, 1))
    x, w, b, _ = make(((2, 8, 8, 16), (3, 3, 16, 32), pads), 16)
    for m in (2, 4):
        out, cache = winograd.winograd_forward(x, w, b, pads, m=m, relu=relu)
        rng = np.random.default_rng(17)
        if layout == "strided":
            dout = rng.standard_normal(out.shape[:3] + (64,), dtype=np.float32)[..., ::2]
        elif layout == "read-only":
            dout = rng.standard_normal(out.shape, dtype=np.float32)
            dout.flags.writeable = False
        else:
            dout = np.broadcast_to(rng.standard_normal(32, dtype=np.float32), out.shape)
        relu_out = out if relu else None
        got = winograd_backward(dout, cache, relu_out=relu_out)
        want = winograd_backward(np.ascontiguousarray(dout), cache,
                                          relu_out=relu_out)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        close(got[2], want[2])         # db sums the whole dout: NumPy's order by layout
        g = dout.astype(np.float64)
        if relu:
            pre = naive(x, w, b, (1, 1), pads, (1, 1), 1, np.zeros(out.shape))[0]
            g = g * (pre > 0)
        ref = naive(x, w, b, (1, 1), pads, (1, 1), 1, g)
        for g, r in zip(got, ref[1:]):
            close(g, r)


def test_dx_alone_in_bands_adds_the_overlapping_rows(monkeypatch):
    """A dx-only backward cut into row bands (the BLAS path) runs its bands in two
    rounds, as the full backward does: the same dx."""
    monkeypatch.setattr(winograd, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(winograd, "POINT_TILES", 0)
    x, w, b, dout = make(((1, 23, 17, 16), (3, 3, 16, 16), ((1, 0), (2, 1))), 12)
    out, cache = winograd.winograd_forward(x, w, b, ((1, 0), (2, 1)), m=4)
    full = winograd_backward(dout, cache)
    alone = winograd_backward(dout, cache, need=(True, False, False))
    np.testing.assert_array_equal(alone[0], full[0])
    close(full[0], naive(x, w, b, (1, 1), ((1, 0), (2, 1)), (1, 1), 1, dout)[1])


def test_heuristic_sends_vggs_14x14_layers_to_point_kernels():
    conv5 = ((1, 14, 14, 512), (3, 3, 512, 512), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert algo.heuristic(*conv5, np.float32) == "winograd2"
    with jit.use(False):
        assert algo.heuristic(*conv5, np.float32) == "im2col"


# ---- the weight cache: layouts, bitwise comparison ------------------------------------

def test_cache_keeps_each_layout_only_for_promoted_weights(monkeypatch):
    monkeypatch.setattr(winograd_transforms, "UCACHE_MIN_BYTES", 0)
    winograd_transforms.clear_weight_cache()
    x, w, b, dout = make(((1, 6, 6, 16), (3, 3, 16, 32), ((1, 1), (1, 1))), 13)
    pads = ((1, 1), (1, 1))

    def step():
        out, cache = winograd.winograd_forward(x, w, b, pads, m=2)
        return out, winograd_backward(dout, cache)

    def kept():
        return [sorted(e[2]) for e in winograd_transforms._ucache.values()]

    first = step()                       # training: a first sighting keeps no U ...
    assert kept() == [[]]
    second = step()                      # ... a second forward keeps its panels, and
    assert kept() == [["panels", "panels_t"]]   # the backward then keeps U^T's
    third = step()
    for r in (second, third):
        np.testing.assert_array_equal(r[0], first[0])
        for g, g1 in zip(r[1], first[1]):
            np.testing.assert_array_equal(g, g1)
    w[0, 0, 3, 5] += 1.0                 # an optimizer step, in place: never stale
    out, grads = step()
    want = naive(x, w, b, (1, 1), pads, (1, 1), 1, dout)
    close(out, want[0])
    close(grads[0], want[1])
    winograd_transforms.clear_weight_cache()


def test_weight_transform_rejects_unknown_layouts():
    with pytest.raises(ValueError, match="layout must be one of"):
        winograd_transforms.weight_transform(np.zeros((3, 3, 2, 2), np.float32), 2,
                                             np.float32, layout="packed")


@pytest.mark.parametrize("size", [10, 5000, 600_000])
def test_same_compares_bits(size, monkeypatch):
    monkeypatch.setattr(winograd_transforms, "SAME_SPLIT", 4096)   # bands on the pool
    same = winograd_transforms._same
    a = np.random.default_rng(14).standard_normal(size).astype(np.float32)
    a[0] = np.nan
    b = a.copy()
    assert same(a, b)                                    # NaN bits equal themselves
    b[-1] = np.nextafter(b[-1], np.float32(np.inf))
    assert not same(a, b)
    z, nz = np.zeros(size, np.float32), np.zeros(size, np.float32)
    nz[size - 1] = -0.0
    assert not same(z, nz)                               # -0.0 is another weight's bits
    assert not same(a, a[:-1]) and not same(a, a.astype(np.float64))
    two = np.stack([a, a])
    assert same(two[:, ::2], np.ascontiguousarray(two[:, ::2]))      # strided: NumPy
    assert not same(two[:, ::2], np.ascontiguousarray(two[:, 1::2]))


@pytest.mark.parametrize("sightings", [1, 3])     # a first sighting; weights kept
def test_backward_takes_the_forwards_entry_without_comparing_again(sightings, monkeypatch):
    """The backward uses the cache entry its forward checked: no second comparison of
    the weights, and the weights the forward used even when changed in place since."""
    monkeypatch.setattr(winograd_transforms, "UCACHE_MIN_BYTES", 0)
    winograd_transforms.clear_weight_cache()
    x, w, b, dout = make(((1, 6, 6, 16), (3, 3, 16, 32), ((1, 1), (1, 1))), 15)
    pads = ((1, 1), (1, 1))
    for _ in range(sightings):
        out, cache = winograd.winograd_forward(x, w, b, pads, m=2)
    assert bool(cache[-1][2]) == (sightings > 1)         # U kept from the second on
    want = naive(x, w, b, (1, 1), pads, (1, 1), 1, dout)
    compared = []
    real = winograd_transforms._same
    monkeypatch.setattr(winograd_transforms, "_same",
                        lambda a, c: compared.append(1) or real(a, c))
    w += 1.0                                             # changed after the forward
    dx, dw, db = winograd_backward(dout, cache)
    assert compared == []
    close(dx, want[1])
    close(dw, want[2])
    winograd_transforms.clear_weight_cache()
