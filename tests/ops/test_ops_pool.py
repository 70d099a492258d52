"""Pooling, checked three ways: naive loops written here, torch, and float64 finite
differences, always with random upstream gradients."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import close_torch, from_torch, grad_check, to_torch, tol

import convnet.functional as F
from convnet import Tensor
from convnet.functional.pool import pool2d_params
from convnet.ops import pool as pool_ops

DTYPES = [np.float32, np.float64]


# ---- naive references: loops over output pixels and taps, vectorised only over (N, C) --

def naive_out_size(size, k, s, lo, hi, d, ceil):
    fe = d * (k - 1) + 1
    span = size + lo + hi
    if not ceil:
        return (span - fe) // s + 1
    o = -(-(span - fe) // s) + 1
    if (o - 1) * s >= size + lo:
        o -= 1
    return o


def naive_max_pool(x, dout, k, s, pads, d, ceil):
    """torch's CPU rule written out: best starts at -inf with the first real tap's
    index and moves on ``v > best or isnan(v)``.  Returns (out, indices, dx)."""
    n, h, w, c = x.shape
    (pt, pb), (pl, pr) = pads
    oh = naive_out_size(h, k[0], s[0], pt, pb, d[0], ceil)
    ow = naive_out_size(w, k[1], s[1], pl, pr, d[1], ceil)
    out = np.zeros((n, oh, ow, c), x.dtype)
    idx = np.zeros((n, oh, ow, c), np.int64)
    dx = np.zeros(x.shape, np.float64)
    for a in range(oh):
        for b in range(ow):
            best = np.full((n, c), -np.inf)
            arg = None
            for i in range(k[0]):
                for j in range(k[1]):
                    r, q = a * s[0] - pt + i * d[0], b * s[1] - pl + j * d[1]
                    if not (0 <= r < h and 0 <= q < w):
                        continue
                    v = x[:, r, q, :].astype(np.float64)
                    if arg is None:
                        arg = np.full((n, c), r * w + q)
                    upd = (v > best) | np.isnan(v)
                    best = np.where(upd, v, best)
                    arg = np.where(upd, r * w + q, arg)
            out[:, a, b, :] = best
            idx[:, a, b, :] = arg
            if dout is not None:
                for ni in range(n):
                    for ci in range(c):
                        r, q = divmod(int(arg[ni, ci]), w)
                        dx[ni, r, q, ci] += dout[ni, a, b, ci]
    return out, idx, dx


def naive_avg_pool(x, dout, k, s, pads, ceil, count_include_pad):
    n, h, w, c = x.shape
    (pt, pb), (pl, pr) = pads
    oh = naive_out_size(h, k[0], s[0], pt, pb, 1, ceil)
    ow = naive_out_size(w, k[1], s[1], pl, pr, 1, ceil)
    out = np.zeros((n, oh, ow, c))
    dx = np.zeros(x.shape)
    for a in range(oh):
        for b in range(ow):
            total, count, real = np.zeros((n, c)), 0, []
            for i in range(k[0]):
                for j in range(k[1]):
                    r, q = a * s[0] - pt + i, b * s[1] - pl + j
                    if -pt <= r < h + pb and -pl <= q < w + pr:
                        count += 1          # padding counts, the ceil extension does not
                    if 0 <= r < h and 0 <= q < w:
                        total += x[:, r, q, :]
                        real.append((r, q))
            div = count if count_include_pad else len(real)
            out[:, a, b, :] = total / div
            if dout is not None:
                for r, q in real:
                    dx[:, r, q, :] += dout[:, a, b, :] / div
    return out, dx


# ---- randomised configurations ------------------------------------------------

def _configs(seed, count, with_dilation):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        k = tuple(int(v) for v in rng.integers(1, 6, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 4, 2)) if with_dilation else (1, 1)
        fe = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
        sym = rng.random() < 0.6
        pads = []
        for f in fe:
            lo = int(rng.integers(0, f // 2 + 1))
            pads.append((lo, lo) if sym else (lo, int(rng.integers(0, f // 2 + 1))))
        n = int(rng.choice([1, 2]))
        h, w = (int(v) for v in rng.integers(1, 10, 2))
        ceil = bool(rng.random() < 0.4)
        try:   # keep only configs the op accepts (the error cases are tested separately)
            pool2d_params((n, h, w, 3), k, s, tuple(pads), d, ceil)
        except ValueError:
            continue
        out.append(dict(k=k, s=s, d=d, pads=tuple(pads), n=n, h=h, w=w, ceil=ceil))
    return out


MAX_CONFIGS = _configs(0, 36, with_dilation=True)
AVG_CONFIGS = _configs(1, 30, with_dilation=False)


def _cfg_id(cfg):
    return (f"k{cfg['k']}s{cfg['s']}d{cfg['d']}p{cfg['pads']}n{cfg['n']}"
            f"{cfg['h']}x{cfg['w']}{'ceil' if cfg['ceil'] else ''}").replace(" ", "")


def _torch_accepts(cfg):
    """torch pads symmetrically, and at most half the undilated kernel."""
    return all(lo == hi and lo <= k // 2 for (lo, hi), k in zip(cfg["pads"], cfg["k"]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", MAX_CONFIGS, ids=_cfg_id)
def test_max_pool2d_vs_naive_and_torch(cfg, dtype, rng, torch):
    shape = (cfg["n"], cfg["h"], cfg["w"], 3)
    x = rng.standard_normal(shape).astype(dtype)
    xt = Tensor(x.copy(), requires_grad=True)
    out, idx = F.max_pool2d(xt, cfg["k"], cfg["s"], cfg["pads"], cfg["d"], return_indices=True,
                            ceil_mode=cfg["ceil"])
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    assert out.dtype == dtype and xt.grad.dtype == dtype
    assert idx.dtype == np.int64 and idx.shape == out.shape

    ref, ref_idx, ref_dx = naive_max_pool(x, dout, cfg["k"], cfg["s"], cfg["pads"], cfg["d"],
                                          cfg["ceil"])
    np.testing.assert_array_equal(out.data, ref)
    np.testing.assert_array_equal(idx.data, ref_idx)
    np.testing.assert_allclose(xt.grad, ref_dx, **tol(dtype))

    if _torch_accepts(cfg):
        tx = to_torch(x, "nhwc", requires_grad=True)
        tout, tidx = torch.nn.functional.max_pool2d(
            tx, cfg["k"], cfg["s"], [p[0] for p in cfg["pads"]], cfg["d"],
            ceil_mode=cfg["ceil"], return_indices=True)
        tout.backward(to_torch(dout, "nhwc"))
        close_torch("max_pool2d", out.data, from_torch(tout, "nhwc"), dtype)
        np.testing.assert_array_equal(idx.data, from_torch(tidx, "nhwc"))
        close_torch("max_pool2d grad", xt.grad, from_torch(tx.grad, "nhwc"), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", AVG_CONFIGS, ids=_cfg_id)
def test_avg_pool2d_vs_naive_and_torch(cfg, dtype, rng, torch):
    shape = (cfg["n"], cfg["h"], cfg["w"], 3)
    x = rng.standard_normal(shape).astype(dtype)
    for include in (True, False):
        xt = Tensor(x.copy(), requires_grad=True)
        out = F.avg_pool2d(xt, cfg["k"], cfg["s"], cfg["pads"], count_include_pad=include,
                           ceil_mode=cfg["ceil"])
        dout = rng.standard_normal(out.shape).astype(dtype)
        out.backward(dout)
        ref, ref_dx = naive_avg_pool(x.astype(np.float64), dout.astype(np.float64), cfg["k"],
                                     cfg["s"], cfg["pads"], cfg["ceil"], include)
        np.testing.assert_allclose(out.data, ref, **tol(dtype))
        np.testing.assert_allclose(xt.grad, ref_dx, **tol(dtype))
        if _torch_accepts(cfg):
            tx = to_torch(x, "nhwc", requires_grad=True)
            tout = torch.nn.functional.avg_pool2d(tx, cfg["k"], cfg["s"],
                                                  [p[0] for p in cfg["pads"]],
                                                  ceil_mode=cfg["ceil"],
                                                  count_include_pad=include)
            tout.backward(to_torch(dout, "nhwc"))
            close_torch("avg_pool2d", out.data, from_torch(tout, "nhwc"), dtype)
            close_torch("avg_pool2d grad", xt.grad, from_torch(tx.grad, "nhwc"), dtype)


# ---- ties, NaN and -inf: the gradient goes where torch sends it --------------------

TIE_CASES = [  # (kernel, stride, padding, dilation, ceil_mode)
    (2, 2, 0, 1, False), (3, 1, 1, 1, False), (3, 2, 1, 1, True), (2, 1, 0, 1, False),
    ((3, 2), (1, 2), (1, 0), (2, 1), False), (4, 3, 2, 1, True), (5, 1, 2, 1, False),
]


@pytest.mark.parametrize("case", TIE_CASES, ids=str)
@pytest.mark.parametrize("kind", ["integers", "constant", "relu_zeros"])
def test_max_pool2d_ties_match_torch(case, kind, rng, torch):
    k, s, p, d, ceil = case
    shape = (2, 7, 8, 3)
    if kind == "integers":
        x = rng.integers(-1, 2, shape).astype(np.float64)
    elif kind == "constant":
        x = np.full(shape, 0.5)
    else:
        x = np.maximum(rng.standard_normal(shape), 0)
    xt = Tensor(x, requires_grad=True)
    out, idx = F.max_pool2d(xt, k, s, p, d, return_indices=True, ceil_mode=ceil)
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    tx = to_torch(x, "nhwc", requires_grad=True)
    tout, tidx = torch.nn.functional.max_pool2d(tx, k, s, p, d, ceil_mode=ceil,
                                                return_indices=True)
    tout.backward(to_torch(dout, "nhwc"))
    np.testing.assert_array_equal(idx.data, from_torch(tidx, "nhwc"))
    np.testing.assert_allclose(xt.grad, from_torch(tx.grad, "nhwc"), rtol=1e-12, atol=1e-12)
    _, ref_idx, ref_dx = naive_max_pool(x, dout, *_tuples(k, s, p, d), ceil)
    np.testing.assert_array_equal(idx.data, ref_idx)


def _tuples(k, s, p, d):
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)
    return pair(k), pair(s), tuple((q, q) for q in pair(p)), pair(d)


@pytest.mark.parametrize("case", TIE_CASES[:4], ids=str)
def test_max_pool2d_nan_and_neg_inf_like_torch(case, rng, torch):
    k, s, p, d, ceil = case
    x = rng.standard_normal((2, 6, 7, 2))
    x[rng.random(x.shape) < 0.25] = np.nan
    x[rng.random(x.shape) < 0.15] = -np.inf
    x[1, :3, :3, :] = -np.inf                          # windows with nothing but -inf
    xt = Tensor(x, requires_grad=True)
    out, idx = F.max_pool2d(xt, k, s, p, d, return_indices=True, ceil_mode=ceil)
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    tx = to_torch(x, "nhwc", requires_grad=True)
    tout, tidx = torch.nn.functional.max_pool2d(tx, k, s, p, d, ceil_mode=ceil,
                                                return_indices=True)
    tout.backward(to_torch(dout, "nhwc"))
    np.testing.assert_array_equal(out.data, from_torch(tout, "nhwc"))   # NaN == NaN here
    np.testing.assert_array_equal(idx.data, from_torch(tidx, "nhwc"))
    # overlapping windows may add in another order: equal to rounding, not bitwise
    np.testing.assert_allclose(xt.grad, from_torch(tx.grad, "nhwc"), rtol=1e-12, atol=1e-12)
    assert np.isnan(out.data).any()


# ---- the reshape fast path and the strided path agree ----------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,h,w", [(2, 8, 6), (3, 9, 9), ((2, 3), 6, 9), (2, 7, 5),
                                   (1, 3, 4), (4, 4, 4)])
def test_tiling_reshape_path_matches_strided_path(k, h, w, dtype, rng):
    kk = (k, k) if isinstance(k, int) else k
    x = rng.integers(-3, 4, (2, h, w, 3)).astype(dtype)     # integer values: many ties
    g = pool_ops._Geometry(x.shape, kk, kk, ((0, 0), (0, 0)), (1, 1), False)
    assert g.tiles
    pads = ((0, 0), (0, 0))
    for op in ("max", "avg"):
        results = []
        for allow in (True, False):
            if op == "max":
                out, cache = pool_ops.max_pool2d_forward(x, kk, kk, pads, allow_reshape=allow)
                dout = np.random.default_rng(5).standard_normal(out.shape).astype(dtype)
                dx = pool_ops.max_pool2d_backward(dout, cache)
                extra = pool_ops.max_pool2d_indices(cache)
                fast = cache[-1].path == "reshape"
            else:
                out, cache = pool_ops.avg_pool2d_forward(x, kk, kk, pads, allow_reshape=allow)
                dout = np.random.default_rng(5).standard_normal(out.shape).astype(dtype)
                dx = pool_ops.avg_pool2d_backward(dout, cache)
                extra = None
                fast = cache[0].path == "reshape"
            assert fast == allow, "the path taken is not the one asked for"
            results.append((out, dx, extra))
        np.testing.assert_array_equal(results[0][0], results[1][0])
        np.testing.assert_allclose(results[0][1], results[1][1], **tol(dtype))
        if op == "max":
            np.testing.assert_array_equal(results[0][2], results[1][2])
            ref, ref_idx, ref_dx = naive_max_pool(x, dout, kk, kk, pads, (1, 1), False)
            np.testing.assert_array_equal(results[0][2], ref_idx)
        else:
            ref, ref_dx = naive_avg_pool(x.astype(np.float64), dout.astype(np.float64), kk, kk,
                                         pads, False, True)
        np.testing.assert_allclose(results[0][0], ref, **tol(dtype))
        np.testing.assert_allclose(results[0][1], ref_dx, **tol(dtype))


def test_overlap_or_padding_does_not_take_the_reshape_path():
    for k, s, p, d in [(2, 1, 0, 1), (2, 2, 1, 1), (2, 2, 0, 2), (3, 2, 0, 1)]:
        g = pool_ops._Geometry((1, 8, 8, 1), (k, k), (s, s), ((p, p), (p, p)), (d, d), False)
        assert not g.tiles
    g = pool_ops._Geometry((1, 7, 7, 1), (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), True)
    assert not g.tiles      # ceil_mode needs an extension past the input


# ---- finite differences (float64) -----------------------------------------------

def _distinct(rng, shape):
    """Values at least 0.05 apart, so an eps nudge never changes an argmax."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.05 + 0.01


@pytest.mark.parametrize("k,s,p,d,ceil", [(2, 2, 0, 1, False), (3, 2, 1, 1, True),
                                          ((3, 2), (1, 3), ((1, 0), (0, 1)), (2, 1), False),
                                          (3, 3, "same", 1, False)])
def test_max_pool2d_gradcheck(k, s, p, d, ceil, rng):
    x = _distinct(rng, (2, 7, 6, 2))
    grad_check(lambda t: F.max_pool2d(t, k, s, p, d, ceil_mode=ceil), [x])


@pytest.mark.parametrize("k,s,p,include,ceil", [(2, 2, 0, True, False), (3, 2, 1, True, True),
                                                (3, 2, 1, False, True),
                                                ((2, 3), (1, 2), ((1, 0), (0, 1)), False, False)])
def test_avg_pool2d_gradcheck(k, s, p, include, ceil, rng):
    x = rng.standard_normal((2, 7, 6, 2))
    grad_check(lambda t: F.avg_pool2d(t, k, s, p, include, ceil), [x])


# ---- output sizes and errors ------------------------------------------------------

def test_ceil_mode_output_sizes_match_torch(torch):
    for n in range(1, 12):
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(0, k // 2 + 1):
                    if k > n + 2 * p:
                        continue
                    t = torch.nn.functional.max_pool2d(torch.zeros(1, 1, n, n), k, s, p,
                                                       ceil_mode=True)
                    ours = pool_ops.pool_output_shape((n, n), (k, k), (s, s),
                                                      ((p, p), (p, p)), (1, 1), True)
                    assert ours == tuple(t.shape[2:]), (n, k, s, p)


def test_same_padding_gives_ceil_n_over_s(rng):
    x = rng.standard_normal((1, 7, 10, 2))
    out = F.max_pool2d(Tensor(x), 3, 2, "same")
    assert out.shape == (1, 4, 5, 2)
    ref, _, _ = naive_max_pool(x, None, (3, 3), (2, 2), ((1, 1), (0, 1)), (1, 1), False)
    np.testing.assert_array_equal(out.data, ref)


@pytest.mark.parametrize("call,exc,match", [
    (lambda x: F.max_pool2d(x, 2, stride=0), ValueError, r"stride must be positive, got \(0, 0"),
    (lambda x: F.avg_pool2d(x, 2, stride=-1), ValueError, "stride must be positive"),
    (lambda x: F.max_pool2d(x, 0), ValueError, "kernel_size must be positive"),
    (lambda x: F.max_pool2d(x, 3, padding=-1), ValueError, "non-negative"),
    (lambda x: F.max_pool2d(x, 3, padding=2), ValueError, r"at most half.*<= 1.*\(2, 2\)"),
    (lambda x: F.avg_pool2d(x, 9), ValueError, "larger than the padded input of size 6"),
    (lambda x: F.max_pool2d(x, 2, dilation=0), ValueError, "dilation must be positive"),
    (lambda x: F.max_pool2d(x[:, :2, :2], 2, 2, 1, dilation=3), ValueError,
     "window 0 on spatial axis 0 lies entirely in the padding"),
    (lambda x: F.max_pool2d(x[0], 2), ValueError, r"must be 4-D \(N, H, W, C\), got 3-D"),
    (lambda x: F.max_pool2d(x, 2, ceil_mode="yes"), TypeError, "ceil_mode must be True"),
    (lambda x: F.max_pool2d(x, 2.5), TypeError, "kernel_size must be an int"),
])
def test_pool_errors_name_expected_and_got(call, exc, match):
    x = Tensor(np.zeros((1, 6, 6, 2)))
    with pytest.raises(exc, match=match):
        call(x)


def test_pool_rejects_integer_input():
    for fn in (F.max_pool2d, F.avg_pool2d):
        with pytest.raises(TypeError, match="float.*got dtype int64"):
            fn(Tensor(np.zeros((1, 4, 4, 1), np.int64)), 2)


def test_return_indices_are_positions_in_the_unpadded_plane(rng):
    x = _distinct(rng, (2, 5, 7, 3))
    out, idx = F.max_pool2d(Tensor(x), 3, 2, 1, return_indices=True, ceil_mode=True)
    flat = x.reshape(2, 35, 3)
    assert idx.data.min() >= 0 and idx.data.max() < 35
    picked = np.take_along_axis(flat, idx.data.reshape(2, -1, 3), axis=1).reshape(out.shape)
    np.testing.assert_array_equal(picked, out.data)
    assert not idx.requires_grad


# ---- the reshape path keeps a compact argmax, and non-finite douts -----------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,h,w", [(2, 8, 6), (3, 7, 10), ((2, 3), 6, 9), (17, 17, 18)])
def test_reshape_path_non_finite_dout_and_compact_argmax(k, h, w, dtype, rng, torch):
    """dout with NaN/inf (the fast path's product would leak NaN into cells torch leaves
    at 0), NaN and -inf inputs; both paths against torch.  17x17 windows (289 taps)
    need an int16 argmax; small windows keep uint8 and no copy of the input."""
    kk = (k, k) if isinstance(k, int) else k
    pads = ((0, 0), (0, 0))
    x = rng.integers(-2, 3, (2, h, w, 3)).astype(dtype)            # many ties
    x[0, 0, :, 0] = np.nan
    x[1, :, 0, 1] = -np.inf
    taps = kk[0] * kk[1]
    tx = to_torch(x, "nhwc", requires_grad=True)
    tout, tidx = torch.nn.functional.max_pool2d(tx, kk, kk, return_indices=True)
    dout = rng.standard_normal(from_torch(tout, "nhwc").shape).astype(dtype)
    d = dout.reshape(-1)
    d[:: max(d.size // 5, 1)] = np.nan
    d[1] = np.inf
    tout.backward(to_torch(dout, "nhwc"))
    for allow in (True, False):
        out, cache = pool_ops.max_pool2d_forward(x, kk, kk, pads, allow_reshape=allow)
        assert (cache[-1].path == "reshape") == allow
        if allow:
            assert cache[0] is None, "the reshape path must not keep the input"
            assert cache[1].dtype == (np.uint8 if taps <= 256 else np.int16)
        dx = pool_ops.max_pool2d_backward(dout, cache)
        np.testing.assert_array_equal(out, from_torch(tout, "nhwc"))
        np.testing.assert_array_equal(pool_ops.max_pool2d_indices(cache),
                                      from_torch(tidx, "nhwc"))
        np.testing.assert_array_equal(dx, from_torch(tx.grad, "nhwc"))   # NaN == NaN
        assert dx.dtype == dtype


def test_reshape_path_dx_of_a_cropped_input_is_zero_outside_the_windows(rng):
    x = rng.standard_normal((1, 5, 7, 2))
    out, cache = pool_ops.max_pool2d_forward(x, (2, 3), (2, 3), ((0, 0), (0, 0)))
    assert cache[-1].path == "reshape"
    dx = pool_ops.max_pool2d_backward(np.ones_like(out), cache)
    assert not dx[:, 4:].any() and not dx[:, :, 6:].any()
    assert (dx[:, :4, :6] != 0).sum() == out.size


def test_inference_skips_the_argmax(rng):
    from convnet import no_grad
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    with no_grad():
        out = F.max_pool2d(Tensor(x, requires_grad=True), 2)
    ref, cache = pool_ops.max_pool2d_forward(x, (2, 2), (2, 2), ((0, 0), (0, 0)), argmax=False)
    assert cache[1] is None
    np.testing.assert_array_equal(out.data, ref)
    with pytest.raises(RuntimeError, match="argmax=False"):
        pool_ops.max_pool2d_backward(np.ones_like(ref), cache)
