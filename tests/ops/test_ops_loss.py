"""Losses, checked three ways: a naive loop reference, torch, and float64 finite
differences, always with a random upstream gradient."""

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

REDUCTIONS = ["mean", "sum", "none"]
MAX_ERR: dict = {}  # (op, dtype) -> (largest abs error, largest error / max|torch|)


def close(op, got, want, dtype, vs_torch=True):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{op}: shape {got.shape} != {want.shape}"
    if vs_torch and got.size:
        key = (op, np.dtype(dtype).name)
        err = float(np.nanmax(np.abs(got - want))) if np.isfinite(want).any() else 0.0
        scale = max(float(np.nanmax(np.abs(want))) if np.isfinite(want).any() else 0.0, 1e-30)
        a, r = MAX_ERR.get(key, (0.0, 0.0))
        MAX_ERR[key] = (max(a, err), max(r, err / scale))
    np.testing.assert_allclose(got, want, **tol(dtype), err_msg=op)


def upstream(rng, reduction, shape, dtype):
    return (rng.standard_normal(() if reduction != "none" else shape)).astype(dtype)


def to_cl(a):
    """Our (N, ..., C) scores -> torch's (N, C, ...)."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if a.ndim > 2 else a


def from_cl(a):
    return np.moveaxis(a, 1, -1) if a.ndim > 2 else a


# ---- naive references (loops, float64, never calling convnet) -------------------

def naive_log_softmax_row(row):
    mx = max(row)
    lse = mx + math.log(sum(math.exp(v - mx) for v in row))
    return [v - lse for v in row]


def naive_ce_index(z, y, w, ignore_index, eps, reduction, g):
    """Returns (loss, dz) for logits z (M, C) and labels y (M,), torch's definition."""
    m, c = z.shape
    w = np.ones(c) if w is None else w
    losses, dz, denom = np.zeros(m), np.zeros((m, c)), 0.0
    for n in range(m):
        if y[n] == ignore_index:
            continue
        logp = naive_log_softmax_row(z[n])
        p = [math.exp(v) for v in logp]
        t = y[n]
        nll = -w[t] * logp[t]
        smooth = -sum(w[k] * logp[k] for k in range(c)) / c
        losses[n] = (1 - eps) * nll + eps * smooth
        denom += w[t]
        for k in range(c):
            d_nll = w[t] * (p[k] - (1.0 if k == t else 0.0))
            d_smooth = sum(w[j] * (p[k] - (1.0 if j == k else 0.0)) for j in range(c)) / c
            dz[n, k] = (1 - eps) * d_nll + eps * d_smooth
    return _naive_reduce(losses, dz, reduction, denom, g)


def naive_ce_prob(z, q, w, eps, reduction, g):
    """Returns (loss, dz, dq) for probability targets q (M, C)."""
    m, c = z.shape
    w = np.ones(c) if w is None else w
    losses, dz, dq = np.zeros(m), np.zeros((m, c)), np.zeros((m, c))
    for n in range(m):
        logp = naive_log_softmax_row(z[n])
        p = [math.exp(v) for v in logp]
        qs = [(1 - eps) * q[n, k] + eps / c for k in range(c)]
        losses[n] = -sum(w[k] * qs[k] * logp[k] for k in range(c))
        for k in range(c):
            dz[n, k] = sum(w[j] * qs[j] * (p[k] - (1.0 if j == k else 0.0)) for j in range(c))
            dq[n, k] = -(1 - eps) * w[k] * logp[k]
    loss, dz = _naive_reduce(losses, dz, reduction, m, g)
    _, dq = _naive_reduce(losses, dq, reduction, m, g)
    return loss, dz, dq


def _naive_reduce(losses, d, reduction, denom, g):
    if reduction == "none":
        return losses, d * np.asarray(g).reshape(-1, *([1] * (d.ndim - 1)))
    if reduction == "sum":
        return losses.sum(), d * g
    return losses.sum() / denom, d * g / denom


def naive_nll(x, y, w, ignore_index, reduction, g):
    m, c = x.shape
    w = np.ones(c) if w is None else w
    losses, dx, denom = np.zeros(m), np.zeros((m, c)), 0.0
    for n in range(m):
        if y[n] == ignore_index:
            continue
        losses[n] = -w[y[n]] * x[n, y[n]]
        dx[n, y[n]] = -w[y[n]]
        denom += w[y[n]]
    return _naive_reduce(losses, dx, reduction, denom, g)


def naive_multi_margin(x, y, p, margin, w, reduction, g):
    m, c = x.shape
    w = np.ones(c) if w is None else w
    losses, dx = np.zeros(m), np.zeros((m, c))
    for n in range(m):
        t = y[n]
        for j in range(c):
            if j == t:
                continue
            z = margin - x[n, t] + x[n, j]
            if z > 0:
                losses[n] += w[t] * z ** p / c
                slope = w[t] * (1.0 if p == 1 else 2 * z) / c
                dx[n, j] += slope
                dx[n, t] -= slope
    return _naive_reduce(losses, dx, reduction, m, g)


def naive_mse(x, t, reduction, g):
    flat_x, flat_t = x.ravel(), t.ravel()
    losses, dx = np.zeros(flat_x.size), np.zeros(flat_x.size)
    for i in range(flat_x.size):
        losses[i] = (flat_x[i] - flat_t[i]) ** 2
        dx[i] = 2 * (flat_x[i] - flat_t[i])
    loss, dx = _naive_reduce(losses, dx, reduction, flat_x.size,
                             np.ravel(g) if reduction == "none" else g)
    if reduction == "none":
        loss = loss.reshape(x.shape)
    return loss, dx.reshape(x.shape)


def naive_bce(x, t, w, pw, reduction, g):
    """-w [pw t log s + (1 - t) log(1 - s)], s = sigmoid(x), element by element."""
    shape = x.shape
    w = np.broadcast_to(1.0 if w is None else w, shape)
    pw = np.broadcast_to(1.0 if pw is None else pw, shape)
    losses, dx, dt = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for i in np.ndindex(shape):
        s = 1 / (1 + math.exp(-x[i]))
        losses[i] = -w[i] * (pw[i] * t[i] * math.log(s) + (1 - t[i]) * math.log(1 - s))
        dx[i] = w[i] * ((1 - t[i]) * s - pw[i] * t[i] * (1 - s))
        dt[i] = -w[i] * (pw[i] * math.log(s) - math.log(1 - s))
    size = losses.size
    if reduction == "none":
        return losses, dx * g, dt * g
    scale = g if reduction == "sum" else g / size
    return losses.sum() / (1 if reduction == "sum" else size), dx * scale, dt * scale


# ---- cross-entropy --------------------------------------------------------------

CE_CONFIGS = {
    # name: (logits shape, weighted, ignore_index or None, label_smoothing)
    "plain": ((5, 7), False, None, 0.0),
    "batch1": ((1, 3), False, None, 0.0),
    "weighted": ((6, 4), True, None, 0.0),
    "ignore": ((8, 5), True, -100, 0.0),
    "ignore-class": ((8, 5), False, 2, 0.0),
    "smooth": ((5, 6), False, None, 0.2),
    "smooth-weighted-ignore": ((9, 4), True, -100, 0.3),
    "nhwc": ((2, 3, 4, 5), True, -100, 0.1),
    "single": ((6,), False, None, 0.0),
}


def _labels(rng, shape, c, ignore_index):
    y = rng.integers(0, c, size=shape)
    if ignore_index is not None and y.size > 1:
        y.flat[:: 3] = ignore_index
    return y


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", list(CE_CONFIGS))
def test_cross_entropy_index(config, dtype, reduction, rng, torch):
    shape, weighted, ignore_index, eps = CE_CONFIGS[config]
    c = shape[-1]
    z = (rng.standard_normal(shape) * 2).astype(dtype)
    y = _labels(rng, shape[:-1], c, ignore_index)
    w = (rng.random(c) + 0.5).astype(dtype) if weighted else None
    ii = -100 if ignore_index is None else ignore_index
    g = upstream(rng, reduction, shape[:-1], dtype)

    zt = Tensor(z, requires_grad=True)
    out = F.cross_entropy(zt, y, weight=w, ignore_index=ii, reduction=reduction,
                          label_smoothing=eps)
    out.backward(g)

    # naive loops on (M, C) rows
    z2, y2 = z.astype(np.float64).reshape(-1, c), y.reshape(-1)
    g2 = g.reshape(-1) if reduction == "none" else g
    loss, dz = naive_ce_index(z2, y2, None if w is None else w.astype(np.float64), ii, eps,
                              reduction, g2)
    close("cross_entropy/naive", out.data, np.reshape(loss, out.shape), dtype, False)
    close("cross_entropy/naive grad", zt.grad, dz.reshape(shape), dtype, False)

    # torch, classes on axis 1
    tz = torch.tensor(to_cl(z), requires_grad=True)
    tout = torch.nn.functional.cross_entropy(
        tz, torch.tensor(y), weight=None if w is None else torch.tensor(w), ignore_index=ii,
        reduction=reduction, label_smoothing=eps)
    tout.backward(torch.tensor(g))
    close("cross_entropy", out.data, tout.detach().numpy(), dtype)
    close("cross_entropy grad", zt.grad, from_cl(tz.grad.numpy()), dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,weighted,eps", [((5, 7), False, 0.0), ((4, 3), True, 0.25),
                                                ((1, 4), False, 0.1), ((2, 3, 2, 4), True, 0.0)])
def test_cross_entropy_probabilities(shape, weighted, eps, dtype, reduction, rng, torch):
    c = shape[-1]
    z = (rng.standard_normal(shape) * 2).astype(dtype)
    q = rng.random(shape)
    q = (q / q.sum(axis=-1, keepdims=True)).astype(dtype)
    w = (rng.random(c) + 0.5).astype(dtype) if weighted else None
    g = upstream(rng, reduction, shape[:-1], dtype)

    zt, qt = Tensor(z, requires_grad=True), Tensor(q, requires_grad=True)
    out = F.cross_entropy(zt, qt, weight=w, reduction=reduction, label_smoothing=eps)
    out.backward(g)

    g2 = g.reshape(-1) if reduction == "none" else g
    loss, dz, dq = naive_ce_prob(z.astype(np.float64).reshape(-1, c),
                                 q.astype(np.float64).reshape(-1, c),
                                 None if w is None else w.astype(np.float64), eps, reduction, g2)
    close("cross_entropy(probs)/naive", out.data, np.reshape(loss, out.shape), dtype, False)
    close("cross_entropy(probs)/naive grad", zt.grad, dz.reshape(shape), dtype, False)
    close("cross_entropy(probs)/naive dq", qt.grad, dq.reshape(shape), dtype, False)

    tz = torch.tensor(to_cl(z), requires_grad=True)
    tq = torch.tensor(to_cl(q), requires_grad=True)
    tout = torch.nn.functional.cross_entropy(tz, tq, weight=None if w is None else torch.tensor(w),
                                             reduction=reduction, label_smoothing=eps)
    tout.backward(torch.tensor(g))
    close("cross_entropy(probs)", out.data, tout.detach().numpy(), dtype)
    close("cross_entropy(probs) grad", zt.grad, from_cl(tz.grad.numpy()), dtype)
    close("cross_entropy(probs) grad", qt.grad, from_cl(tq.grad.numpy()), dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("config", ["weighted", "smooth-weighted-ignore", "nhwc", "single"])
def test_cross_entropy_finite_differences(config, reduction, rng):
    shape, weighted, ignore_index, eps = CE_CONFIGS[config]
    c = shape[-1]
    z = rng.standard_normal(shape)
    y = _labels(rng, shape[:-1], c, ignore_index)
    w = rng.random(c) + 0.5 if weighted else None
    grad_check(lambda t: F.cross_entropy(t, y, weight=w, reduction=reduction,
                                         label_smoothing=eps), [z])
    q = rng.random(shape)
    q /= q.sum(axis=-1, keepdims=True)
    grad_check(lambda t, s: F.cross_entropy(t, s, weight=w, reduction=reduction,
                                            label_smoothing=eps), [z, q])


def test_cross_entropy_stable_for_huge_logits(torch):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
    y = np.array([1, 2])
    zt = Tensor(z, requires_grad=True)
    out = F.cross_entropy(zt, y, reduction="none")
    out.backward(np.array([0.7, -1.3]))
    np.testing.assert_allclose(out.data, [2e4, 0.0])
    assert np.isfinite(zt.grad).all()
    np.testing.assert_allclose(zt.grad, [[0.7, -0.7, 0.0], [0.0, 0.0, 0.0]], atol=1e-12)
    for dtype in DTYPES:
        o = F.cross_entropy(Tensor(z.astype(dtype)), np.array([0, 0]), label_smoothing=0.1)
        t = torch.nn.functional.cross_entropy(torch.tensor(z.astype(dtype)),
                                              torch.tensor([0, 0]), label_smoothing=0.1)
        assert np.isfinite(o.data)
        close("cross_entropy", o.data, t.numpy(), dtype)


def test_cross_entropy_all_ignored_is_nan_like_torch(torch):
    z = np.zeros((3, 4))
    y = np.full(3, -100)
    out = F.cross_entropy(Tensor(z), y)
    assert np.isnan(out.data)
    assert torch.isnan(torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(y)))


# ---- nll ------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,weighted,ignore_index", [
    ((5, 7), False, None), ((1, 3), True, None), ((8, 4), True, -100), ((7, 4), False, 0),
    ((2, 3, 3, 5), True, -100), ((4,), False, None)])
def test_nll_loss(shape, weighted, ignore_index, dtype, reduction, rng, torch):
    c = shape[-1]
    x = rng.standard_normal(shape).astype(dtype)
    y = _labels(rng, shape[:-1], c, ignore_index)
    w = (rng.random(c) + 0.5).astype(dtype) if weighted else None
    ii = -100 if ignore_index is None else ignore_index
    g = upstream(rng, reduction, shape[:-1], dtype)

    xt = Tensor(x, requires_grad=True)
    out = F.nll_loss(xt, y, weight=w, ignore_index=ii, reduction=reduction)
    out.backward(g)

    loss, dx = naive_nll(x.astype(np.float64).reshape(-1, c), y.reshape(-1),
                         None if w is None else w.astype(np.float64), ii, reduction,
                         g.reshape(-1) if reduction == "none" else g)
    close("nll_loss/naive", out.data, np.reshape(loss, out.shape), dtype, False)
    close("nll_loss/naive grad", xt.grad, dx.reshape(shape), dtype, False)

    tx = torch.tensor(to_cl(x), requires_grad=True)
    tout = torch.nn.functional.nll_loss(tx, torch.tensor(y),
                                        weight=None if w is None else torch.tensor(w),
                                        ignore_index=ii, reduction=reduction)
    tout.backward(torch.tensor(g))
    close("nll_loss", out.data, tout.detach().numpy(), dtype)
    close("nll_loss grad", xt.grad, from_cl(tx.grad.numpy()), dtype)

    if dtype == np.float64:
        grad_check(lambda t: F.nll_loss(t, y, weight=w, ignore_index=ii, reduction=reduction),
                   [x.copy()])


# ---- multi-margin (SVM) ------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,p,margin,weighted", [
    ((6, 5), 1, 1.0, False), ((6, 5), 2, 1.0, False), ((1, 3), 1, 0.5, True),
    ((7, 4), 2, 2.0, True), ((5,), 1, 1.0, False)])
def test_multi_margin_loss(shape, p, margin, weighted, dtype, reduction, rng, torch):
    c = shape[-1]
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.integers(0, c, size=shape[:-1])
    w = (rng.random(c) + 0.5).astype(dtype) if weighted else None
    g = upstream(rng, reduction, shape[:-1], dtype)

    xt = Tensor(x, requires_grad=True)
    out = F.multi_margin_loss(xt, y, p=p, margin=margin, weight=w, reduction=reduction)
    out.backward(g)

    loss, dx = naive_multi_margin(x.astype(np.float64).reshape(-1, c), y.reshape(-1), p,
                                  margin, None if w is None else w.astype(np.float64),
                                  reduction, g.reshape(-1) if reduction == "none" else g)
    close("multi_margin_loss/naive", out.data, np.reshape(loss, out.shape), dtype, False)
    close("multi_margin_loss/naive grad", xt.grad, dx.reshape(shape), dtype, False)

    tx = torch.tensor(x, requires_grad=True)
    tout = torch.nn.functional.multi_margin_loss(
        tx, torch.tensor(y), p=p, margin=margin, weight=None if w is None else torch.tensor(w),
        reduction=reduction)
    tout.backward(torch.tensor(g))
    close("multi_margin_loss", out.data, tout.detach().numpy(), dtype)
    close("multi_margin_loss grad", xt.grad, tx.grad.numpy(), dtype)

    if dtype == np.float64:  # the hinge has kinks; random normal scores avoid them
        grad_check(lambda t: F.multi_margin_loss(t, y, p=p, margin=margin, weight=w,
                                                 reduction=reduction), [x.copy()])


# ---- mse ------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (4, 5), (2, 3, 3, 2), (1, 1)])
def test_mse_loss(shape, dtype, reduction, rng, torch):
    x = rng.standard_normal(shape).astype(dtype)
    t = rng.standard_normal(shape).astype(dtype)
    g = upstream(rng, reduction, shape, dtype)

    xt, tt = Tensor(x, requires_grad=True), Tensor(t, requires_grad=True)
    out = F.mse_loss(xt, tt, reduction=reduction)
    out.backward(g)

    loss, dx = naive_mse(x.astype(np.float64), t.astype(np.float64), reduction, g)
    close("mse_loss/naive", out.data, loss, dtype, False)
    close("mse_loss/naive grad", xt.grad, dx, dtype, False)
    close("mse_loss/naive grad target", tt.grad, -dx, dtype, False)

    tx = torch.tensor(x, requires_grad=True)
    ttt = torch.tensor(t, requires_grad=True)
    tout = torch.nn.functional.mse_loss(tx, ttt, reduction=reduction)
    tout.backward(torch.tensor(g))
    close("mse_loss", out.data, tout.detach().numpy(), dtype)
    close("mse_loss grad", xt.grad, tx.grad.numpy(), dtype)
    close("mse_loss grad", tt.grad, ttt.grad.numpy(), dtype)

    if dtype == np.float64:
        grad_check(lambda a, b: F.mse_loss(a, b, reduction=reduction), [x.copy(), t.copy()])


# ---- binary cross-entropy with logits ---------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,weight_shape,pos_weight", [
    ((6,), None, False), ((4, 3), (4, 1), False), ((4, 3), None, True),
    ((2, 3, 3, 4), (4,), True), ((1, 1), (1, 1), True)])
def test_bce_with_logits(shape, weight_shape, pos_weight, dtype, reduction, rng, torch):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    t = rng.random(shape).astype(dtype)
    w = None if weight_shape is None else (rng.random(weight_shape) + 0.5).astype(dtype)
    pw = (rng.random(shape[-1]) * 2 + 0.2).astype(dtype) if pos_weight else None
    g = upstream(rng, reduction, shape, dtype)

    xt, tt = Tensor(x, requires_grad=True), Tensor(t, requires_grad=True)
    out = F.binary_cross_entropy_with_logits(xt, tt, weight=w, reduction=reduction,
                                             pos_weight=pw)
    out.backward(g)

    loss, dx, dt = naive_bce(f64(x), f64(t), f64(w), f64(pw), reduction, f64(g))
    close("bce_with_logits/naive", out.data, loss, dtype, False)
    close("bce_with_logits/naive grad", xt.grad, dx, dtype, False)
    close("bce_with_logits/naive grad target", tt.grad, dt, dtype, False)

    # torch wants pos_weight broadcast along the class axis, which is our last axis
    tx = torch.tensor(x, requires_grad=True)
    ttt = torch.tensor(t, requires_grad=True)
    tout = torch.nn.functional.binary_cross_entropy_with_logits(
        tx, ttt, weight=None if w is None else torch.tensor(w), reduction=reduction,
        pos_weight=None if pw is None else torch.tensor(pw))
    tout.backward(torch.tensor(g))
    close("bce_with_logits", out.data, tout.detach().numpy(), dtype)
    close("bce_with_logits grad", xt.grad, tx.grad.numpy(), dtype)
    close("bce_with_logits grad", tt.grad, ttt.grad.numpy(), dtype)

    if dtype == np.float64:
        grad_check(lambda a, b: F.binary_cross_entropy_with_logits(
            a, b, weight=w, reduction=reduction, pos_weight=pw), [x.copy(), t.copy()])


def test_bce_with_logits_stable_for_huge_logits(torch):
    x = np.array([1e4, -1e4, 1e4, -1e4, 0.0])
    t = np.array([1.0, 0.0, 0.0, 1.0, 0.5])
    xt = Tensor(x, requires_grad=True)
    out = F.binary_cross_entropy_with_logits(xt, t, reduction="none")
    g = np.array([0.3, -1.1, 0.9, 2.0, 0.5])
    out.backward(g)
    np.testing.assert_allclose(out.data, [0.0, 0.0, 1e4, 1e4, math.log(2)])
    np.testing.assert_allclose(xt.grad, g * np.array([0.0, 0.0, 1.0, -1.0, 0.0]), atol=1e-12)
    tout = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(x), torch.tensor(t), reduction="none")
    np.testing.assert_allclose(out.data, tout.numpy())


# ---- argument errors --------------------------------------------------------------

@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss, F.multi_margin_loss])
def test_label_errors(fn):
    x = Tensor(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"must be in \[0, 2\].* got 3 at index 1"):
        fn(x, np.array([0, 3, 1, 2]))
    with pytest.raises(ValueError, match=r"got -1 at index 2"):
        fn(x, np.array([0, 1, -1, 2]))
    with pytest.raises(TypeError, match="integer class indices, got dtype float64"):
        fn(x, np.array([0.0, 1.0, 1.0, 2.0]) if fn is not F.cross_entropy
           else np.array([0.0, 1.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"target has shape \(5,\) but input \(4, 3\)"):
        fn(x, np.array([0, 1, 1, 2, 0]))
    with pytest.raises(TypeError, match="float32 or float64"):
        fn(Tensor(np.zeros((4, 3), dtype=np.int64)), np.array([0, 1, 1, 2]))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        fn(x, np.array([0, 1, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\), one per class, got"):
        fn(x, np.array([0, 1, 1, 2]), weight=np.ones(4))


def test_cross_entropy_target_errors():
    x = Tensor(np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"probabilities and must be float, got dtype int64"):
        F.cross_entropy(x, np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"target has shape \(3, 2\) but input \(2, 3\)"):
        F.cross_entropy(x, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        F.cross_entropy(x, np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="ignore_index is not supported for probability"):
        F.cross_entropy(x, np.full((2, 3), 1 / 3), ignore_index=1)


def test_pair_loss_errors():
    with pytest.raises(ValueError, match=r"target has shape \(3,\) but input has shape \(4,\)"):
        F.mse_loss(Tensor(np.zeros(4)), np.zeros(3))
    with pytest.raises(ValueError, match=r"target has shape \(2, 2\) but input has shape"):
        F.binary_cross_entropy_with_logits(Tensor(np.zeros((2, 3))), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2,\) does not broadcast to "
                                         r"the input shape \(2, 3\)"):
        F.binary_cross_entropy_with_logits(Tensor(np.zeros((2, 3))), np.zeros((2, 3)),
                                           pos_weight=np.ones(2))
    with pytest.raises(ValueError, match="p must be 1 or 2, got 3"):
        F.multi_margin_loss(Tensor(np.zeros((2, 3))), np.array([0, 1]), p=3)
