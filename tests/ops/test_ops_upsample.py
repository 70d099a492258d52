"""interpolate (nearest / linear / bilinear / trilinear), copy-unpooling and max-unpooling,
checked against naive loops written here, torch, and float64 finite differences --
always with random upstream gradients."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from helpers import close_torch, from_torch, grad_check, to_torch, tol

import convnet.functional as F
from convnet import Tensor

DTYPES = [np.float32, np.float64]


# ---- naive references: per output pixel, the formulas of torch's UpSample.h --------------

def naive_nearest_src(n, m, sf):
    src = []
    for t in range(m):
        if m == n:
            src.append(t)
        elif m == 2 * n:
            src.append(t // 2)
        else:
            scale = np.float32(1.0 / sf) if sf else np.float32(n) / np.float32(m)
            src.append(min(int(math.floor(np.float32(t) * scale)), n - 1))
    return src


def naive_linear_taps(n, m, sf, align):
    """[(i0, w0, i1, w1)] per output position."""
    taps = []
    for t in range(m):
        if align:
            pos = t * (n - 1) / (m - 1) if m > 1 else 0.0
        else:
            pos = max(((1.0 / sf) if sf else n / m) * (t + 0.5) - 0.5, 0.0)
        i0 = min(int(math.floor(pos)), n - 1)
        i1 = i0 + 1 if i0 < n - 1 else i0
        lam = min(max(pos - i0, 0.0), 1.0)
        taps.append((i0, 1.0 - lam, i1, lam))
    return taps


def naive_interpolate(x, out_size, mode, align, sfs, dout):
    """Loop over output pixels; each is a sum of weighted input pixels.  Returns out, dx."""
    nd = x.ndim - 2
    sp = x.shape[1:-1]
    if mode == "nearest":
        per_axis = [[[(s, 1.0)] for s in naive_nearest_src(sp[a], out_size[a], sfs[a])]
                    for a in range(nd)]
    else:
        per_axis = [[[(i0, w0), (i1, w1)] for i0, w0, i1, w1 in
                     naive_linear_taps(sp[a], out_size[a], sfs[a], align)] for a in range(nd)]
    out = np.zeros((x.shape[0], *out_size, x.shape[-1]))
    dx = np.zeros(x.shape)
    for o in itertools.product(*[range(m) for m in out_size]):
        for combo in itertools.product(*[per_axis[a][o[a]] for a in range(nd)]):
            src = tuple(c[0] for c in combo)
            wgt = float(np.prod([c[1] for c in combo]))
            out[(slice(None), *o)] += wgt * x[(slice(None), *src)]
            dx[(slice(None), *src)] += wgt * dout[(slice(None), *o)]
    return out, dx


# (input shape, size / scale_factor kwargs)
RESIZES = [
    ((2, 5, 7, 3), dict(scale_factor=2)),
    ((1, 4, 3, 2), dict(scale_factor=3)),
    ((2, 5, 4, 1), dict(scale_factor=1.5)),
    ((1, 6, 7, 2), dict(scale_factor=(2.3, 0.7))),
    ((1, 9, 7, 2), dict(scale_factor=1 / 3)),
    ((2, 3, 4, 2), dict(size=(7, 11))),
    ((1, 8, 6, 1), dict(size=(3, 2))),
    ((1, 1, 1, 2), dict(size=(3, 4))),
    ((1, 5, 5, 2), dict(scale_factor=0.5)),
]
MODES = [("nearest", False), ("bilinear", False), ("bilinear", True)]


def sfs_of(kw, nd):
    sf = kw.get("scale_factor")
    if sf is None:
        return (None,) * nd
    return tuple(sf) if isinstance(sf, tuple) else (sf,) * nd


def torch_interp(torch, tx, kw, mode, align):
    return torch.nn.functional.interpolate(tx, mode=mode, **kw,
                                           align_corners=None if mode == "nearest" else align)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode, align", MODES)
@pytest.mark.parametrize("shape, kw", RESIZES)
def test_interpolate_2d(shape, kw, mode, align, dtype, rng, torch):
    x = rng.standard_normal(shape).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    out = F.interpolate(xt, mode=mode, align_corners=align, **kw)
    assert out.dtype == dtype
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    want, dx = naive_interpolate(x, out.shape[1:-1], mode, align, sfs_of(kw, 2), dout)
    np.testing.assert_allclose(out.data, want, **tol(dtype))
    np.testing.assert_allclose(xt.grad, dx, **tol(dtype))
    tx = to_torch(x, "nhwc", True)
    ref = torch_interp(torch, tx, kw, mode, align)
    ref.backward(to_torch(dout, "nhwc"))
    name = f"interpolate {mode}" + (" align_corners" if align else "")
    close_torch(name, out.data, from_torch(ref, "nhwc"), dtype)
    close_torch(name + " dx", xt.grad, from_torch(tx.grad, "nhwc"), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kw, mode, align", [
    ((2, 7, 3), dict(scale_factor=2.5), "linear", False),
    ((1, 5, 2), dict(size=9), "linear", True),
    ((2, 6, 2), dict(scale_factor=0.6), "nearest", False),
    ((1, 3, 4, 2, 2), dict(scale_factor=(2, 1.5, 3)), "trilinear", False),
    ((1, 3, 2, 4, 1), dict(size=(5, 3, 3)), "trilinear", True),
    ((2, 2, 3, 3, 2), dict(scale_factor=(1.7, 2, 0.7)), "nearest", False),
])
def test_interpolate_1d_3d(shape, kw, mode, align, dtype, rng, torch):
    x = rng.standard_normal(shape).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    out = F.interpolate(xt, mode=mode, align_corners=align, **kw)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    want, dx = naive_interpolate(x, out.shape[1:-1], mode, align,
                                 sfs_of(kw, x.ndim - 2), dout)
    np.testing.assert_allclose(out.data, want, **tol(dtype))
    np.testing.assert_allclose(xt.grad, dx, **tol(dtype))
    tx = to_torch(x, "nhwc", True)
    ref = torch_interp(torch, tx, kw, mode, align)
    ref.backward(to_torch(dout, "nhwc"))
    close_torch(f"interpolate {mode}", out.data, from_torch(ref, "nhwc"), dtype)
    close_torch(f"interpolate {mode} dx", xt.grad, from_torch(tx.grad, "nhwc"), dtype)


@pytest.mark.parametrize("kw, mode, align", [
    (dict(scale_factor=1.5), "bilinear", False), (dict(size=(5, 4)), "bilinear", True),
    (dict(scale_factor=(2.5, 0.8)), "nearest", False)])
def test_interpolate_finite_differences(kw, mode, align, rng):
    x = rng.standard_normal((1, 4, 5, 2))
    grad_check(lambda a: F.interpolate(a, mode=mode, align_corners=align, **kw), [x])


def test_interpolate_errors(rng):
    x = rng.standard_normal((1, 4, 4, 2))
    with pytest.raises(ValueError, match="give exactly one of size and scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="give exactly one of size and scale_factor"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match=r"mode='bilinear' needs 4-D input, got 3-D"):
        F.interpolate(x[0], scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match="mode must be one of .* got 'bicubic'"):
        F.interpolate(x, scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="align_corners only applies to the linear modes"):
        F.interpolate(x, scale_factor=2, mode="nearest", align_corners=True)
    with pytest.raises(ValueError, match=r"scale_factor 0.1 gives an empty output \(0, 0\) "
                                         r"for input size \(4, 4\)"):
        F.interpolate(x, scale_factor=0.1)
    with pytest.raises(TypeError, match=r"scale_factor must be a number or 2 numbers, "
                                        r"got \(2, 2, 2\)"):
        F.interpolate(x, scale_factor=(2, 2, 2))
    with pytest.raises(ValueError, match=r"size must be positive, got \(0, 3\)"):
        F.interpolate(x, size=(0, 3))


# ---- copy-unpooling (seed 002) ----------------------------------------------------------

def test_unpool2d_seed_example():
    """Seed 002: a 2-by-2 unpooling copies each entry into a 2x2 block."""
    x = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    want = np.array([[1, 1, 2, 2],
                     [1, 1, 2, 2],
                     [3, 3, 4, 4],
                     [3, 3, 4, 4]], dtype=np.float64)
    np.testing.assert_array_equal(F.unpool2d(x, 2).data[0, :, :, 0], want)
    single = F.unpool2d(np.full((1, 1, 1, 1), 7.0), 2).data[0, :, :, 0]
    np.testing.assert_array_equal(single, [[7, 7], [7, 7]])      # [x] -> [[x, x], [x, x]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [2, 3, (1, 2), (3, 1)])
def test_unpool2d(size, dtype, rng, torch):
    kh, kw = (size, size) if isinstance(size, int) else size
    x = rng.standard_normal((2, 3, 4, 2)).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    out = F.unpool2d(xt, size)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    want = np.zeros(out.shape)
    dx = np.zeros(x.shape)
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            want[:, i, j] = x[:, i // kh, j // kw]
            dx[:, i // kh, j // kw] += dout[:, i, j]
    np.testing.assert_array_equal(out.data, want)
    np.testing.assert_allclose(xt.grad, dx, **tol(dtype))
    # torch has no copy-unpool layer; nearest up-sampling by an integer factor is one
    tx = to_torch(x, "nhwc", True)
    ref = torch.nn.functional.interpolate(tx, scale_factor=(kh, kw), mode="nearest")
    ref.backward(to_torch(dout, "nhwc"))
    close_torch("unpool2d", out.data, from_torch(ref, "nhwc"), dtype)
    close_torch("unpool2d dx", xt.grad, from_torch(tx.grad, "nhwc"), dtype)


def test_unpool2d_finite_differences_and_errors(rng):
    grad_check(lambda a: F.unpool2d(a, (2, 3)), [rng.standard_normal((1, 2, 3, 2))])
    with pytest.raises(ValueError, match=r"unpool2d: size must be positive, got \(0, 0\)"):
        F.unpool2d(rng.standard_normal((1, 2, 2, 1)), 0)


# ---- max-unpooling ------------------------------------------------------------------------

def torch_pool_indices(torch, x, k, s, p):
    out, idx = torch.nn.functional.max_pool2d(to_torch(x, "nhwc"), k, s, p,
                                              return_indices=True)
    return from_torch(out, "nhwc"), from_torch(idx, "nhwc")


# (input shape, kernel, stride, padding, output_size)
UNPOOLS = [
    ((2, 6, 6, 3), 2, None, 0, None),
    ((1, 7, 5, 2), 3, 2, 1, None),
    ((2, 7, 7, 1), (2, 3), (3, 2), 0, (7, 7)),
    ((1, 5, 6, 2), 2, 2, 0, (5, 6)),            # odd size: output_size recovers it
    ((1, 5, 5, 2), 3, 1, 1, None),              # overlapping windows: repeated indices
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, k, s, p, osize", UNPOOLS)
def test_max_unpool2d(shape, k, s, p, osize, dtype, rng, torch):
    x0 = rng.standard_normal(shape).astype(dtype)
    pooled, idx = torch_pool_indices(torch, x0, k, s, p)
    xt = Tensor(pooled, requires_grad=True)
    out = F.max_unpool2d(xt, idx, k, s, p, osize)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    # naive: write in row-major order (a later duplicate wins), gather for the gradient
    n, h, w, c = pooled.shape
    want = np.zeros(out.shape)
    dx = np.zeros(pooled.shape)
    for ni, i, j, ci in itertools.product(range(n), range(h), range(w), range(c)):
        r, q = divmod(int(idx[ni, i, j, ci]), out.shape[2])
        want[ni, r, q, ci] = pooled[ni, i, j, ci]
        dx[ni, i, j, ci] = dout[ni, r, q, ci]
    np.testing.assert_array_equal(out.data, want)
    np.testing.assert_allclose(xt.grad, dx, **tol(dtype))
    tx = to_torch(pooled, "nhwc", True)
    ref = torch.nn.functional.max_unpool2d(tx, to_torch(idx, "nhwc"), k, s, p,
                                           output_size=osize)
    ref.backward(to_torch(dout, "nhwc"))
    close_torch("max_unpool2d", out.data, from_torch(ref, "nhwc"), dtype)
    close_torch("max_unpool2d dx", xt.grad, from_torch(tx.grad, "nhwc"), dtype)


def test_max_unpool2d_after_our_max_pool2d(rng):
    """Indices from F.max_pool2d(return_indices=True) put every maximum back in place."""
    x = rng.uniform(1.0, 2.0, (2, 6, 8, 3))                     # positive: zeros mark holes
    pooled, idx = F.max_pool2d(x, 2, return_indices=True)
    out = F.max_unpool2d(pooled, idx, 2).data
    mask = out != 0
    np.testing.assert_array_equal(out[mask], x[mask])
    assert mask.sum() == pooled.size
    np.testing.assert_array_equal(
        out.reshape(2, 3, 2, 4, 2, 3).max(axis=(2, 4)), pooled.data)


def test_max_unpool2d_finite_differences(rng):
    x = rng.standard_normal((1, 6, 4, 2))
    pooled, idx = F.max_pool2d(x, 2, return_indices=True)
    grad_check(lambda a: F.max_unpool2d(a, idx, 2), [pooled.data.copy()])


def test_max_unpool2d_errors(rng):
    x = rng.standard_normal((1, 2, 2, 1))
    idx = np.zeros((1, 2, 2, 1), np.int64)
    with pytest.raises(ValueError, match=r"indices must have the input's shape \(1, 2, 2, 1\), "
                                         r"got \(1, 2, 2\)"):
        F.max_unpool2d(x, idx[..., 0], 2)
    with pytest.raises(TypeError, match="indices must be an integer array, got dtype float64"):
        F.max_unpool2d(x, idx.astype(np.float64), 2)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 16\) for a 4 x 4 output, "
                                         r"got values in \[0, 16\]"):
        F.max_unpool2d(x, idx + np.array([0, 0, 0, 16]).reshape(1, 2, 2, 1), 2)
    with pytest.raises(ValueError, match="output_size must be between 3 and 5 on spatial "
                                         "axis 0 .* got 6"):
        F.max_unpool2d(x, idx, 2, output_size=(6, 4))
