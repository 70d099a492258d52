"""Batch, layer and group norm, checked three ways: a naive loop reference (the textbook
staged backward, not the compact formula under test), torch, and float64 finite
differences, always with random upstream gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import grad_check, tol

import convnet.functional as F
from convnet import Tensor

DTYPES = [np.float32, np.float64]


def f64(a):
    return None if a is None else a.astype(np.float64)

MAX_ERR: dict = {}  # (op, dtype) -> (largest abs error, largest error / max|torch|)


def close(op, got, want, dtype, vs_torch=True):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{op}: shape {got.shape} != {want.shape}"
    if vs_torch:
        key = (op, np.dtype(dtype).name)
        err = float(np.nanmax(np.abs(got - want))) if np.isfinite(want).any() else 0.0
        scale = max(float(np.nanmax(np.abs(want))) if np.isfinite(want).any() else 0.0, 1e-30)
        a, r = MAX_ERR.get(key, (0.0, 0.0))
        MAX_ERR[key] = (max(a, err), max(r, err / scale))
    np.testing.assert_allclose(got, want, **tol(dtype), err_msg=op)


def nchw(a):
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if a.ndim > 2 else a


def nhwc(a):
    return np.moveaxis(a, 1, -1) if a.ndim > 2 else a


# ---- naive reference: normalize one group of values with loops --------------------

def naive_group(values, dout_hat, eps):
    """Forward and the staged (textbook) backward for one normalization group.

    values, dout_hat: 1-D float64 lists of the group's inputs and dL/dxhat.
    Returns (xhat, dx, mean, biased var)."""
    m = len(values)
    mu = sum(values) / m
    var = sum((v - mu) ** 2 for v in values) / m
    std = math.sqrt(var + eps)
    xhat = [(v - mu) / std for v in values]
    dvar = sum(d * (v - mu) for d, v in zip(dout_hat, values)) * -0.5 * (var + eps) ** -1.5
    dmu = sum(-d / std for d in dout_hat) + dvar * sum(-2 * (v - mu) for v in values) / m
    dx = [d / std + dvar * 2 * (v - mu) / m + dmu / m for d, v in zip(dout_hat, values)]
    return xhat, dx, mu, var


def naive_batch_norm(x, gamma, beta, dout, eps):
    """x (N, ..., C) float64: per channel, loop over every value of the channel."""
    c = x.shape[-1]
    xs = x.reshape(-1, c)
    ds = dout.reshape(-1, c)
    out, dx = np.zeros_like(xs), np.zeros_like(xs)
    dgamma, dbeta, means, vars_ = np.zeros(c), np.zeros(c), np.zeros(c), np.zeros(c)
    for ch in range(c):
        g = 1.0 if gamma is None else gamma[ch]
        b = 0.0 if beta is None else beta[ch]
        vals = list(xs[:, ch])
        dhat = [d * g for d in ds[:, ch]]
        xhat, dxc, means[ch], vars_[ch] = naive_group(vals, dhat, eps)
        for i in range(len(vals)):
            out[i, ch] = g * xhat[i] + b
            dx[i, ch] = dxc[i]
            dgamma[ch] += ds[i, ch] * xhat[i]
            dbeta[ch] += ds[i, ch]
    return out.reshape(x.shape), dx.reshape(x.shape), dgamma, dbeta, means, vars_


def naive_group_norm(x, groups, gamma, beta, dout, eps):
    """x (N, ..., C): for each sample and group, loop over the group's values."""
    n, c = x.shape[0], x.shape[-1]
    cg = c // groups
    xs, ds = x.reshape(n, -1, c), dout.reshape(n, -1, c)
    s = xs.shape[1]
    out, dx = np.zeros_like(xs), np.zeros_like(xs)
    dgamma, dbeta = np.zeros(c), np.zeros(c)
    for i in range(n):
        for gi in range(groups):
            idx = [(p, ch) for p in range(s) for ch in range(gi * cg, (gi + 1) * cg)]
            vals = [xs[i, p, ch] for p, ch in idx]
            dhat = [ds[i, p, ch] * (1.0 if gamma is None else gamma[ch]) for p, ch in idx]
            xhat, dxg, _, _ = naive_group(vals, dhat, eps)
            for k, (p, ch) in enumerate(idx):
                out[i, p, ch] = xhat[k] * (1.0 if gamma is None else gamma[ch]) \
                    + (0.0 if beta is None else beta[ch])
                dx[i, p, ch] = dxg[k]
                dgamma[ch] += ds[i, p, ch] * xhat[k]
                dbeta[ch] += ds[i, p, ch]
    return out.reshape(x.shape), dx.reshape(x.shape), dgamma, dbeta


def naive_layer_norm(x, k, gamma, beta, dout, eps):
    lead = x.shape[:x.ndim - k]
    tail = x.shape[x.ndim - k:]
    xs, ds = x.reshape(-1, int(np.prod(tail))), dout.reshape(-1, int(np.prod(tail)))
    gs = None if gamma is None else gamma.reshape(-1)
    bs = None if beta is None else beta.reshape(-1)
    out, dx = np.zeros_like(xs), np.zeros_like(xs)
    dgamma, dbeta = np.zeros(xs.shape[1]), np.zeros(xs.shape[1])
    for r in range(xs.shape[0]):
        dhat = [ds[r, j] * (1.0 if gs is None else gs[j]) for j in range(xs.shape[1])]
        xhat, dxr, _, _ = naive_group(list(xs[r]), dhat, eps)
        for j in range(xs.shape[1]):
            out[r, j] = xhat[j] * (1.0 if gs is None else gs[j]) + (0.0 if bs is None else bs[j])
            dx[r, j] = dxr[j]
            dgamma[j] += ds[r, j] * xhat[j]
            dbeta[j] += ds[r, j]
    return (out.reshape(*lead, *tail), dx.reshape(*lead, *tail), dgamma.reshape(tail),
            dbeta.reshape(tail))


# ---- batch norm -----------------------------------------------------------------

BN_SHAPES = {
    "2d": (6, 5),
    "2d-batch2": (2, 3),
    "seq": (3, 7, 4),
    "nhwc": (4, 5, 3, 6),
    "nhwc-batch1": (1, 4, 5, 3),
    "nhwc-1x1": (5, 1, 1, 4),
    "odd": (3, 7, 5, 3),
}


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", list(BN_SHAPES))
def test_batch_norm_training(shape, dtype, affine, rng, torch):
    shape = BN_SHAPES[shape]
    c = shape[-1]
    x = (rng.standard_normal(shape) * 1.7 + 0.6).astype(dtype)
    gamma = (rng.standard_normal(c) + 1).astype(dtype) if affine else None
    beta = rng.standard_normal(c).astype(dtype) if affine else None
    rm, rv = rng.standard_normal(c).astype(dtype), (rng.random(c) + 0.5).astype(dtype)
    rm_t, rv_t = torch.tensor(rm.copy()), torch.tensor(rv.copy())
    dout = rng.standard_normal(shape).astype(dtype)
    momentum, eps = 0.3, 1e-3

    xt = Tensor(x, requires_grad=True)
    gt = Tensor(gamma, requires_grad=True) if affine else None
    bt = Tensor(beta, requires_grad=True) if affine else None
    out = F.batch_norm(xt, rm, rv, gt, bt, training=True, momentum=momentum, eps=eps)
    out.backward(dout)

    n_out, n_dx, n_dg, n_db, n_mu, n_var = naive_batch_norm(f64(x), f64(gamma), f64(beta),
                                                            f64(dout), eps)
    count = x.size // c
    close("batch_norm/naive", out.data, n_out, dtype, False)
    close("batch_norm/naive dx", xt.grad, n_dx, dtype, False)
    close("batch_norm/naive running_mean", rm,
          (1 - momentum) * rm_t.numpy() + momentum * n_mu, dtype, False)
    close("batch_norm/naive running_var", rv,
          (1 - momentum) * rv_t.numpy() + momentum * n_var * count / (count - 1), dtype, False)
    if affine:
        close("batch_norm/naive dgamma", gt.grad, n_dg, dtype, False)
        close("batch_norm/naive dbeta", bt.grad, n_db, dtype, False)

    tx = torch.tensor(nchw(x), requires_grad=True)
    tg = torch.tensor(gamma, requires_grad=True) if affine else None
    tb = torch.tensor(beta, requires_grad=True) if affine else None
    tout = torch.nn.functional.batch_norm(tx, rm_t, rv_t, tg, tb, training=True,
                                          momentum=momentum, eps=eps)
    tout.backward(torch.tensor(nchw(dout)))
    close("batch_norm(train)", out.data, nhwc(tout.detach().numpy()), dtype)
    close("batch_norm(train) dx", xt.grad, nhwc(tx.grad.numpy()), dtype)
    close("batch_norm(train) running stats", rm, rm_t.numpy(), dtype)
    close("batch_norm(train) running stats", rv, rv_t.numpy(), dtype)
    if affine:
        close("batch_norm(train) dgamma/dbeta", gt.grad, tg.grad.numpy(), dtype)
        close("batch_norm(train) dgamma/dbeta", bt.grad, tb.grad.numpy(), dtype)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ["2d", "seq", "nhwc", "nhwc-batch1"])
def test_batch_norm_eval(shape, dtype, affine, rng, torch):
    shape = BN_SHAPES[shape]
    c = shape[-1]
    x = rng.standard_normal(shape).astype(dtype)
    gamma = (rng.standard_normal(c) + 1).astype(dtype) if affine else None
    beta = rng.standard_normal(c).astype(dtype) if affine else None
    rm, rv = rng.standard_normal(c).astype(dtype), (rng.random(c) + 0.5).astype(dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    dout = rng.standard_normal(shape).astype(dtype)

    xt = Tensor(x, requires_grad=True)
    gt = Tensor(gamma, requires_grad=True) if affine else None
    bt = Tensor(beta, requires_grad=True) if affine else None
    out = F.batch_norm(xt, rm, rv, gt, bt, training=False)
    out.backward(dout)
    np.testing.assert_array_equal(rm, rm0)  # evaluation never touches the running stats
    np.testing.assert_array_equal(rv, rv0)

    # naive: every element with a loop
    g = np.ones(c) if gamma is None else gamma.astype(np.float64)
    b = np.zeros(c) if beta is None else beta.astype(np.float64)
    n_out, n_dx = np.zeros(shape), np.zeros(shape)
    n_dg, n_db = np.zeros(c), np.zeros(c)
    for idx in np.ndindex(shape):
        ch = idx[-1]
        std = math.sqrt(float(rv[ch]) + 1e-5)
        xhat = (float(x[idx]) - float(rm[ch])) / std
        n_out[idx] = g[ch] * xhat + b[ch]
        n_dx[idx] = float(dout[idx]) * g[ch] / std
        n_dg[ch] += float(dout[idx]) * xhat
        n_db[ch] += float(dout[idx])
    close("batch_norm/naive eval", out.data, n_out, dtype, False)
    close("batch_norm/naive eval dx", xt.grad, n_dx, dtype, False)
    if affine:
        close("batch_norm/naive eval dgamma", gt.grad, n_dg, dtype, False)
        close("batch_norm/naive eval dbeta", bt.grad, n_db, dtype, False)

    tx = torch.tensor(nchw(x), requires_grad=True)
    tg = torch.tensor(gamma, requires_grad=True) if affine else None
    tb = torch.tensor(beta, requires_grad=True) if affine else None
    tout = torch.nn.functional.batch_norm(tx, torch.tensor(rm), torch.tensor(rv), tg, tb,
                                          training=False)
    tout.backward(torch.tensor(nchw(dout)))
    close("batch_norm(eval)", out.data, nhwc(tout.detach().numpy()), dtype)
    close("batch_norm(eval) dx", xt.grad, nhwc(tx.grad.numpy()), dtype)
    if affine:
        close("batch_norm(eval) dgamma/dbeta", gt.grad, tg.grad.numpy(), dtype)
        close("batch_norm(eval) dgamma/dbeta", bt.grad, tb.grad.numpy(), dtype)


@pytest.mark.parametrize("shape", ["2d-batch2", "seq", "nhwc", "nhwc-1x1"])
def test_batch_norm_finite_differences(shape, rng):
    shape = BN_SHAPES[shape]
    c = shape[-1]
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = rng.standard_normal(c) + 1, rng.standard_normal(c)
    grad_check(lambda a, g, b: F.batch_norm(a, None, None, g, b, training=True), [x, gamma, beta])
    rm, rv = rng.standard_normal(c), rng.random(c) + 0.5
    grad_check(lambda a, g, b: F.batch_norm(a, rm, rv, g, b, training=False), [x, gamma, beta])


def test_batch_norm_errors():
    x = Tensor(np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"more than 1 value per channel, got input shape "
                                         r"\(1, 3\)"):
        F.batch_norm(Tensor(np.zeros((1, 3))), None, None, training=True)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\), got \(4,\)"):
        F.batch_norm(x, np.zeros(4), np.ones(3), training=False)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\), got \(2,\)"):
        F.batch_norm(x, np.zeros(3), np.ones(3), Tensor(np.ones(2)), training=False)
    with pytest.raises(ValueError, match="needs running_mean and running_var, got None"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"at least 2-D \(N, ..., C\), got 1-D"):
        F.batch_norm(Tensor(np.zeros(3)), None, None, training=True)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.batch_norm(Tensor(np.zeros((4, 3), dtype=np.int32)), None, None, training=True)
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\], got 2"):
        F.batch_norm(x, np.zeros(3), np.ones(3), training=True, momentum=2)


# ---- layer norm -----------------------------------------------------------------

LN_CASES = [((4, 6), (6,)), ((2, 3, 4, 5), (5,)), ((2, 3, 4, 5), (4, 5)),
            ((2, 3, 4, 5), (3, 4, 5)), ((1, 1, 1, 3), (3,))]


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,normalized", LN_CASES)
def test_layer_norm(shape, normalized, dtype, affine, rng, torch):
    x = (rng.standard_normal(shape) * 2 - 0.5).astype(dtype)
    gamma = (rng.standard_normal(normalized) + 1).astype(dtype) if affine else None
    beta = rng.standard_normal(normalized).astype(dtype) if affine else None
    dout = rng.standard_normal(shape).astype(dtype)
    eps = 1e-4

    xt = Tensor(x, requires_grad=True)
    gt = Tensor(gamma, requires_grad=True) if affine else None
    bt = Tensor(beta, requires_grad=True) if affine else None
    out = F.layer_norm(xt, normalized, gt, bt, eps=eps)
    out.backward(dout)

    n_out, n_dx, n_dg, n_db = naive_layer_norm(f64(x), len(normalized), f64(gamma), f64(beta),
                                               f64(dout), eps)
    close("layer_norm/naive", out.data, n_out, dtype, False)
    close("layer_norm/naive dx", xt.grad, n_dx, dtype, False)

    # layer norm over trailing axes is layout-independent: torch takes the array as is
    tx = torch.tensor(x, requires_grad=True)
    tg = torch.tensor(gamma, requires_grad=True) if affine else None
    tb = torch.tensor(beta, requires_grad=True) if affine else None
    tout = torch.nn.functional.layer_norm(tx, normalized, tg, tb, eps=eps)
    tout.backward(torch.tensor(dout))
    close("layer_norm", out.data, tout.detach().numpy(), dtype)
    close("layer_norm dx", xt.grad, tx.grad.numpy(), dtype)
    if affine:
        close("layer_norm/naive dgamma", gt.grad, n_dg, dtype, False)
        close("layer_norm/naive dbeta", bt.grad, n_db, dtype, False)
        close("layer_norm dgamma/dbeta", gt.grad, tg.grad.numpy(), dtype)
        close("layer_norm dgamma/dbeta", bt.grad, tb.grad.numpy(), dtype)
    if dtype == np.float64 and affine:
        grad_check(lambda a, g, b: F.layer_norm(a, normalized, g, b, eps=eps),
                   [x.copy(), gamma.copy(), beta.copy()])


# ---- group norm -----------------------------------------------------------------

GN_CASES = [((3, 4, 5, 6), 3), ((2, 3, 3, 4), 1), ((2, 3, 3, 4), 4), ((1, 5, 2, 6), 2),
            ((4, 8), 2), ((2, 7, 6), 3), ((3, 1, 1, 4), 2)]


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,groups", GN_CASES)
def test_group_norm(shape, groups, dtype, affine, rng, torch):
    c = shape[-1]
    x = (rng.standard_normal(shape) * 1.5 + 0.3).astype(dtype)
    gamma = (rng.standard_normal(c) + 1).astype(dtype) if affine else None
    beta = rng.standard_normal(c).astype(dtype) if affine else None
    dout = rng.standard_normal(shape).astype(dtype)
    eps = 1e-4

    xt = Tensor(x, requires_grad=True)
    gt = Tensor(gamma, requires_grad=True) if affine else None
    bt = Tensor(beta, requires_grad=True) if affine else None
    out = F.group_norm(xt, groups, gt, bt, eps=eps)
    out.backward(dout)

    n_out, n_dx, n_dg, n_db = naive_group_norm(f64(x), groups, f64(gamma), f64(beta),
                                               f64(dout), eps)
    close("group_norm/naive", out.data, n_out, dtype, False)
    close("group_norm/naive dx", xt.grad, n_dx, dtype, False)

    tx = torch.tensor(nchw(x), requires_grad=True)
    tg = torch.tensor(gamma, requires_grad=True) if affine else None
    tb = torch.tensor(beta, requires_grad=True) if affine else None
    tout = torch.nn.functional.group_norm(tx, groups, tg, tb, eps=eps)
    tout.backward(torch.tensor(nchw(dout)))
    close("group_norm", out.data, nhwc(tout.detach().numpy()), dtype)
    close("group_norm dx", xt.grad, nhwc(tx.grad.numpy()), dtype)
    if affine:
        close("group_norm/naive dgamma", gt.grad, n_dg, dtype, False)
        close("group_norm/naive dbeta", bt.grad, n_db, dtype, False)
        close("group_norm dgamma/dbeta", gt.grad, tg.grad.numpy(), dtype)
        close("group_norm dgamma/dbeta", bt.grad, tb.grad.numpy(), dtype)
    if dtype == np.float64 and affine:
        grad_check(lambda a, g, b: F.group_norm(a, groups, g, b, eps=eps),
                   [x.copy(), gamma.copy(), beta.copy()])


def test_layer_and_group_norm_errors():
    x = Tensor(np.zeros((2, 3, 4, 6)))
    with pytest.raises(ValueError, match=r"input of shape \(2, 3, 4, 6\) does not end with "
                                         r"normalized_shape \(5,\)"):
        F.layer_norm(x, 5)
    with pytest.raises(ValueError, match=r"weight must have shape \(4, 6\), got \(6,\)"):
        F.layer_norm(x, (4, 6), Tensor(np.ones(6)))
    with pytest.raises(ValueError, match="num_groups=4 does not divide the 6 channels"):
        F.group_norm(x, 4)
    with pytest.raises(ValueError, match="num_groups must be a positive int, got 0"):
        F.group_norm(x, 0)
    with pytest.raises(ValueError, match=r"must be 2-D or .* got 1-D"):
        F.group_norm(Tensor(np.zeros(6)), 2)
