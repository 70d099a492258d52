"""Linear and flatten, checked three ways: loops written here, torch, and float64
finite differences, always with random upstream gradients."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import close_torch, grad_check, tol

import convnet.functional as F
from convnet import Tensor

DTYPES = [np.float32, np.float64]


def naive_linear(x, w, b, dout):
    """Triple loops over (row, out, in); rows are every leading index of x."""
    n_in, n_out = w.shape
    xs = x.reshape(-1, n_in).astype(np.float64)
    gs = dout.reshape(-1, n_out).astype(np.float64)
    out = np.zeros((xs.shape[0], n_out))
    dx, dw, db = np.zeros_like(xs), np.zeros((n_in, n_out)), np.zeros(n_out)
    for m in range(xs.shape[0]):
        for o in range(n_out):
            out[m, o] = (0.0 if b is None else b[o]) + sum(xs[m, i] * w[i, o]
                                                           for i in range(n_in))
            db[o] += gs[m, o]
            for i in range(n_in):
                dx[m, i] += gs[m, o] * w[i, o]
                dw[i, o] += xs[m, i] * gs[m, o]
    return (out.reshape(x.shape[:-1] + (n_out,)), dx.reshape(x.shape), dw,
            None if b is None else db)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,n_out,bias", [
    ((4, 6), 3, True), ((1, 5), 7, True), ((3, 2, 5), 4, False), ((2, 3, 2, 4), 1, True),
    ((5,), 3, True), ((6, 1), 2, False),
])
def test_linear_vs_naive_and_torch(x_shape, n_out, bias, dtype, rng, torch):
    n_in = x_shape[-1]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if bias else None
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    bt = Tensor(b, requires_grad=True) if bias else None
    out = F.linear(xt, wt, bt)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    assert out.shape == x_shape[:-1] + (n_out,) and out.dtype == dtype

    ref, rdx, rdw, rdb = naive_linear(x, w, b, dout)
    np.testing.assert_allclose(out.data, ref, **tol(dtype))
    np.testing.assert_allclose(xt.grad, rdx, **tol(dtype))
    np.testing.assert_allclose(wt.grad, rdw, **tol(dtype))
    if bias:
        np.testing.assert_allclose(bt.grad, rdb, **tol(dtype))

    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    tw = torch.from_numpy(np.ascontiguousarray(w.T)).requires_grad_(True)   # torch: (out, in)
    tb = torch.from_numpy(b.copy()).requires_grad_(True) if bias else None
    tout = torch.nn.functional.linear(tx, tw, tb)
    tout.backward(torch.from_numpy(dout))
    close_torch("linear", out.data, tout.detach().numpy(), dtype)
    close_torch("linear grad x", xt.grad, tx.grad.numpy(), dtype)
    close_torch("linear grad w", wt.grad, tw.grad.numpy().T, dtype)
    if bias:
        close_torch("linear grad b", bt.grad, tb.grad.numpy(), dtype)


@pytest.mark.parametrize("x_shape,bias", [((3, 4), True), ((2, 3, 4), False)])
def test_linear_gradcheck(x_shape, bias, rng):
    inputs = [rng.standard_normal(x_shape), rng.standard_normal((x_shape[-1], 3))]
    if bias:
        inputs.append(rng.standard_normal(3))
    grad_check(lambda *t: F.linear(*t), inputs)


def test_linear_only_computes_requested_grads(rng):
    x = Tensor(rng.standard_normal((3, 4)))                  # no grad for the input
    w = Tensor(rng.standard_normal((4, 2)), requires_grad=True)
    F.linear(x, w).backward(rng.standard_normal((3, 2)))
    assert x.grad is None and w.grad.shape == (4, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,start,end", [
    ((2, 3, 4, 5), 1, -1), ((1, 1, 1, 7), 1, -1), ((3, 4), 1, -1), ((2, 3, 4, 5), 2, 3),
    ((2, 3, 4, 5), 0, 1), ((2, 3, 4, 5), -3, -2),
])
def test_flatten_vs_naive_and_torch(shape, start, end, dtype, rng, torch):
    x = rng.standard_normal(shape).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    out = F.flatten(xt, start, end)
    s, e = start % len(shape), end % len(shape)
    merged = int(np.prod(shape[s:e + 1]))
    assert out.shape == shape[:s] + (merged,) + shape[e + 1:]
    # naive: walk x in C order, writing to consecutive output positions
    ref = np.zeros(out.shape, dtype)
    flat_out = ref.reshape(-1)
    for k, idx in enumerate(np.ndindex(shape)):
        flat_out[k] = x[idx]
    np.testing.assert_array_equal(out.data, ref)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    tout = torch.flatten(tx, start, end)
    tout.backward(torch.from_numpy(dout))
    close_torch("flatten", out.data, tout.detach().numpy(), dtype)
    close_torch("flatten grad", xt.grad, tx.grad.numpy(), dtype)
    grad_check(lambda t: F.flatten(t, start, end), [x.astype(np.float64)])


@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.linear(Tensor(np.ones((2, 5))), Tensor(np.ones((4, 3)))), ValueError,
     r"linear: input has 5 features \(shape \(2, 5\)\) but weight \(4, 3\) expects 4"),
    (lambda: F.linear(Tensor(np.ones((2, 4))), Tensor(np.ones(4))), ValueError,
     "weight must be 2-D"),
    (lambda: F.linear(Tensor(np.ones((2, 4))), Tensor(np.ones((4, 3))), Tensor(np.ones(4))),
     ValueError, r"bias must have shape \(3,\).*got \(4,\)"),
    (lambda: F.linear(np.ones((2, 4), np.int32), Tensor(np.ones((4, 3)))), TypeError,
     "float.*got dtype int32"),
    (lambda: F.flatten(Tensor(np.ones((2, 3))), start_dim=2), ValueError,
     r"start_dim must be an int in \[-2, 1\].*got 2"),
    (lambda: F.flatten(Tensor(np.ones((2, 3, 4))), 2, 1), ValueError, "comes after end_dim"),
])
def test_linear_flatten_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
