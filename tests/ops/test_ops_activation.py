"""Activations, checked three ways: per-element loops written here with ``math``, torch,
and float64 finite differences, always with random upstream gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import close_torch, grad_check, tol

import convnet.functional as F
from convnet import Tensor
from convnet.ops.activation import erf

DTYPES = [np.float32, np.float64]


# ---- naive references: one Python float at a time -------------------------------

def _phi(v):
    return math.exp(-v * v / 2) / math.sqrt(2 * math.pi)


def _gelu_tanh(v):
    k = math.sqrt(2 / math.pi)
    t = math.tanh(k * (v + 0.044715 * v ** 3))
    return 0.5 * v * (1 + t), 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * 0.044715 * v * v)


def _sig(v):
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


NAIVE = {  # name -> (f(v), f'(v)) on Python floats, the kink conventions being torch's
    "relu": lambda v: (max(v, 0.0), 1.0 if v > 0 else 0.0),
    "leaky_relu": lambda v: (v if v > 0 else 0.2 * v, 1.0 if v > 0 else 0.2),
    "elu": lambda v: (v if v > 0 else 1.5 * (math.exp(v) - 1), 1.0 if v > 0 else 1.5 * math.exp(v)),
    "sigmoid": lambda v: (_sig(v), _sig(v) * (1 - _sig(v))),
    "tanh": lambda v: (math.tanh(v), 1 - math.tanh(v) ** 2),
    "gelu": lambda v: (v * 0.5 * (1 + math.erf(v / math.sqrt(2))),
                       0.5 * (1 + math.erf(v / math.sqrt(2))) + v * _phi(v)),
    "gelu_tanh": _gelu_tanh,
}

OURS = {
    "relu": F.relu,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
    "elu": lambda t: F.elu(t, alpha=1.5),
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "gelu": F.gelu,
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
}


def _torch_fn(torch, name):
    tf = torch.nn.functional
    return {
        "relu": torch.relu, "leaky_relu": lambda t: tf.leaky_relu(t, 0.2),
        "elu": lambda t: tf.elu(t, alpha=1.5), "sigmoid": torch.sigmoid, "tanh": torch.tanh,
        "gelu": tf.gelu, "gelu_tanh": lambda t: tf.gelu(t, approximate="tanh"),
    }[name]


def _inputs(rng, dtype, shape=(2, 3, 4, 5)):
    x = rng.standard_normal(shape) * 3
    x.flat[:7] = [0.0, -0.0, 1e-8, -1e-8, 12.0, -12.0, 0.5]   # kinks and tails
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(NAIVE))
def test_elementwise_vs_naive_and_torch(name, dtype, rng, torch):
    x = _inputs(rng, dtype)
    xt = Tensor(x.copy(), requires_grad=True)
    out = OURS[name](xt)
    dout = rng.standard_normal(x.shape).astype(dtype)
    out.backward(dout)
    assert out.dtype == dtype and xt.grad.dtype == dtype

    ref = np.array([NAIVE[name](float(v))[0] for v in x.ravel()]).reshape(x.shape)
    dref = np.array([NAIVE[name](float(v))[1] for v in x.ravel()]).reshape(x.shape) * dout
    np.testing.assert_allclose(out.data, ref, **tol(dtype))
    np.testing.assert_allclose(xt.grad, dref, **tol(dtype))

    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    tout = _torch_fn(torch, name)(tx)
    tout.backward(torch.from_numpy(dout))
    close_torch(name, out.data, tout.detach().numpy(), dtype)
    close_torch(f"{name} grad", xt.grad, tx.grad.numpy(), dtype)


@pytest.mark.parametrize("name", list(NAIVE))
def test_elementwise_gradcheck(name, rng):
    x = rng.standard_normal((3, 4, 5)) * 2
    x[np.abs(x) < 1e-3] = 0.5                   # stay off the kink at 0
    grad_check(OURS[name], [x])


# ---- softmax and log_softmax --------------------------------------------------------

def naive_softmax(x, dout, axis, log):
    """Loops over every 1-D slice along ``axis``; returns (out, dx) in float64."""
    xm = np.moveaxis(x.astype(np.float64), axis, -1)
    gm = np.moveaxis(dout.astype(np.float64), axis, -1)
    out, dx = np.zeros_like(xm), np.zeros_like(xm)
    for idx in np.ndindex(xm.shape[:-1]):
        row, g = list(xm[idx]), list(gm[idx])
        m = max(row)
        z = sum(math.exp(v - m) for v in row)
        p = [math.exp(v - m) / z for v in row]
        for i in range(len(row)):
            if log:
                out[idx + (i,)] = row[i] - m - math.log(z)
                dx[idx + (i,)] = g[i] - p[i] * sum(g)
            else:
                out[idx + (i,)] = p[i]
                dx[idx + (i,)] = p[i] * (g[i] - sum(gj * pj for gj, pj in zip(g, p)))
    return np.moveaxis(out, -1, axis), np.moveaxis(dx, -1, axis)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 1, 0, 2])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_vs_naive_and_torch(axis, log, dtype, rng, torch):
    x = (rng.standard_normal((2, 3, 4, 5)) * 4).astype(dtype)
    fn, tfn = (F.log_softmax, torch.log_softmax) if log else (F.softmax, torch.softmax)
    xt = Tensor(x.copy(), requires_grad=True)
    out = fn(xt, axis=axis)
    dout = rng.standard_normal(x.shape).astype(dtype)
    out.backward(dout)
    ref, dref = naive_softmax(x, dout, axis, log)
    np.testing.assert_allclose(out.data, ref, **tol(dtype))
    np.testing.assert_allclose(xt.grad, dref, **tol(dtype))
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    tout = tfn(tx, dim=axis)
    tout.backward(torch.from_numpy(dout))
    name = "log_softmax" if log else "softmax"
    close_torch(name, out.data, tout.detach().numpy(), dtype)
    close_torch(f"{name} grad", xt.grad, tx.grad.numpy(), dtype)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_gradcheck(log, axis, rng):
    fn = F.log_softmax if log else F.softmax
    grad_check(lambda t: fn(t, axis=axis), [rng.standard_normal((3, 4, 5))])


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_logits_stay_finite(dtype, torch):
    x = np.array([[1e4, -1e4, 0.0, 3.0], [-1e4, -1e4, -1e4, -1e4 + 1], [1e4, 1e4, 1e4, 1e4]],
                 dtype)
    dout = np.arange(12, dtype=dtype).reshape(3, 4) / 7
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is fine
        for fn, tfn in ((F.softmax, torch.softmax), (F.log_softmax, torch.log_softmax)):
            xt = Tensor(x.copy(), requires_grad=True)
            out = fn(xt)
            out.backward(dout)
            assert np.isfinite(out.data).all() and np.isfinite(xt.grad).all()
            tx = torch.from_numpy(x.copy()).requires_grad_(True)
            tout = tfn(tx, dim=-1)
            tout.backward(torch.from_numpy(dout))
            np.testing.assert_allclose(out.data, tout.detach().numpy(), **tol(dtype))
            np.testing.assert_allclose(xt.grad, tx.grad.numpy(), **tol(dtype))
        s = F.sigmoid(Tensor(x))
        assert np.isfinite(s.data).all() and s.data.max() == 1 and s.data.min() == 0
        assert np.isfinite(F.elu(Tensor(x)).data).all()
    np.testing.assert_allclose(F.softmax(Tensor(x)).data.sum(-1), 1, rtol=1e-6)


# ---- erf ------------------------------------------------------------------------

def test_erf_accuracy_against_math_erf():
    x = np.concatenate([np.linspace(-7, 7, 140001), np.linspace(0.99, 1.01, 2001),
                        np.linspace(5.9, 6.1, 2001), np.logspace(-320, 0.85, 4000),
                        -np.logspace(-30, 0.85, 2000)])
    ref = np.array([math.erf(v) for v in x])
    got = erf(x)
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), np.finfo(np.float64).tiny)
    assert rel.max() < 1e-15, f"erf: max relative error {rel.max():.3g} at {x[rel.argmax()]}"
    assert (np.abs(got) <= 1).all()


def test_erf_special_values_and_dtype():
    got = erf(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 40.0]))
    assert np.isnan(got[0]) and list(got[1:3]) == [1.0, -1.0]
    assert got[3] == 0 and np.signbit(got[4]) and got[5] == 1.0
    x32 = np.linspace(-3, 3, 101, dtype=np.float32)
    out = erf(x32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [math.erf(v) for v in x32.astype(np.float64)], rtol=1e-7,
                               atol=1e-7)
    assert erf(np.array([1, 2])).dtype == np.float64          # integers promote


# ---- errors ------------------------------------------------------------------------

@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.relu(np.arange(3)), TypeError, "relu: input must be a float.*got dtype int64"),
    (lambda: F.gelu(Tensor(np.ones(3)), approximate="erf"), ValueError,
     "approximate must be 'none' or 'tanh', got 'erf'"),
    (lambda: F.softmax(Tensor(np.ones((2, 3))), axis=2), ValueError,
     r"axis must be an int in \[-2, 1\].*got 2"),
    (lambda: F.log_softmax(Tensor(np.ones((2, 3))), axis=1.0), ValueError, "axis must be an int"),
    (lambda: F.leaky_relu(Tensor(np.ones(3)), "0.1"), TypeError,
     "negative_slope must be a real number"),
    (lambda: F.elu(Tensor(np.ones(3)), alpha=None), TypeError, "alpha must be a real number"),
    (lambda: F.sigmoid(np.array(["a"], dtype=object)), TypeError, "object"),
])
def test_activation_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---- relu backward: the branch-free product and its np.where fallback ---------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dout_kind", ["finite", "nan_inf"])
def test_relu_backward_special_values_like_torch(dout_kind, dtype, rng, torch):
    """Zeros (both signs), NaN and +-inf inputs, and a dout holding NaN/+-inf both where
    the gradient passes and where it is blocked: torch gives exactly 0 where out <= 0
    and passes dout (NaN included) where out > 0 or out is NaN."""
    x = rng.standard_normal((3, 5, 4, 6)).astype(dtype)
    flat = x.reshape(-1)
    flat[:6] = [0.0, -0.0, np.nan, np.inf, -np.inf, -1.0]
    dout = rng.standard_normal(x.shape).astype(dtype)
    if dout_kind == "nan_inf":
        d = dout.reshape(-1)
        d[[0, 1, 4, 5, 7, 9]] = [np.nan, np.inf, -np.inf, np.nan, np.inf, np.nan]
    xt = Tensor(x, requires_grad=True)
    out = F.relu(xt)
    out.backward(dout)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    tout = torch.relu(tx)
    tout.backward(torch.from_numpy(dout.copy()))
    np.testing.assert_array_equal(out.data, tout.detach().numpy())
    np.testing.assert_array_equal(xt.grad, tx.grad.numpy())        # NaN == NaN here
    assert not xt.grad[x <= 0].any(), "blocked positions must be 0 (+0 or -0)"
    # the naive rule, one element at a time
    want = np.array([0.0 if (not math.isnan(v) and v <= 0) else g
                     for v, g in zip(np.maximum(x, 0).reshape(-1), dout.reshape(-1))])
    np.testing.assert_array_equal(xt.grad.reshape(-1), want.astype(dtype))
    assert xt.grad.dtype == dtype
