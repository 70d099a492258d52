"""conv1d, conv3d, max_pool3d and the 1-D pools, checked three ways: naive loops written
here, torch, and float64 finite differences -- always with random upstream gradients.
Plus causality of padding='causal'."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import close_torch, from_torch, grad_check, to_torch, tol

import convnet.functional as F
from convnet import Tensor

DTYPES = [np.float32, np.float64]


def tup(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


# ---- naive N-d conv: loops over output positions and taps, matmul over channels --------

def naive_conv(x, w, b, stride, pad, dilation, groups):
    """Gather form; ``pad`` is one (lo, hi) pair per spatial axis."""
    nd = x.ndim - 2
    stride, dilation = tup(stride, nd), tup(dilation, nd)
    kernel = w.shape[:nd]
    cg, f = w.shape[nd], w.shape[nd + 1]
    fg = f // groups
    xp = np.pad(x.astype(np.float64), ((0, 0), *pad, (0, 0)))
    osz = [(xp.shape[1 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
           for i in range(nd)]
    out = np.zeros((x.shape[0], *osz, f))
    for o in itertools.product(*[range(s) for s in osz]):
        for t in itertools.product(*[range(k) for k in kernel]):
            pos = tuple(o[i] * stride[i] + t[i] * dilation[i] for i in range(nd))
            v = xp[(slice(None), *pos)]                         # (N, C)
            for g in range(groups):
                out[(slice(None), *o, slice(g * fg, (g + 1) * fg))] += \
                    v[:, g * cg:(g + 1) * cg] @ w[t][:, g * fg:(g + 1) * fg]
    return out if b is None else out + b


# (N, L, C_in, C_out, K, stride, padding, dilation, groups)
CONV1D = [
    (2, 9, 3, 4, 3, 1, 0, 1, 1),
    (1, 10, 4, 6, 3, 2, 1, 2, 2),
    (2, 7, 2, 3, 2, 3, ((2, 1),), 1, 1),
    (1, 1, 2, 2, 1, 1, 0, 1, 1),
    (2, 8, 3, 3, 3, 1, "causal", 3, 3),
    (1, 11, 2, 4, 4, 2, "same", 2, 1),
]


def make_conv(shape_x, kernel, cin, cout, groups, dtype, rng):
    x = rng.standard_normal(shape_x).astype(dtype)
    w = rng.standard_normal((*kernel, cin // groups, cout)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    return x, w, b


def resolved(padding, spatial, kernel, stride, dilation):
    from convnet.ops.shape import resolve_padding
    nd = len(spatial)
    return resolve_padding(padding, spatial, tup(kernel, nd), tup(stride, nd),
                           tup(dilation, nd))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONV1D)
def test_conv1d(cfg, dtype, rng, torch):
    n, length, cin, cout, k, s, p, d, g = cfg
    x, w, b = make_conv((n, length, cin), (k,), cin, cout, g, dtype, rng)
    pads = resolved(p, (length,), k, s, d)
    np.testing.assert_allclose(F.conv1d(x, w, b, s, p, d, g).data,
                               naive_conv(x, w, b, s, pads, d, g), **tol(dtype))
    xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
    out = F.conv1d(xt, wt, bt, s, p, d, g)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    tx, tw, tb = to_torch(x, "nhwc", True), to_torch(w, "hwio", True), to_torch(b, "", True)
    ref = torch.nn.functional.conv1d(torch.nn.functional.pad(tx, pads[0]), tw, tb, s, 0, d, g)
    ref.backward(to_torch(dout, "nhwc"))
    close_torch("conv1d", out.data, from_torch(ref, "nhwc"), dtype)
    close_torch("conv1d dx", xt.grad, from_torch(tx.grad, "nhwc"), dtype)
    close_torch("conv1d dw", wt.grad, from_torch(tw.grad, "hwio"), dtype)
    close_torch("conv1d db", bt.grad, tb.grad.numpy(), dtype)


@pytest.mark.parametrize("cfg", [CONV1D[1], CONV1D[2], CONV1D[4]])
def test_conv1d_finite_differences(cfg, rng):
    n, length, cin, cout, k, s, p, d, g = cfg
    x, w, b = make_conv((n, length, cin), (k,), cin, cout, g, np.float64, rng)
    grad_check(lambda a, w_, b_: F.conv1d(a, w_, b_, s, p, d, g), [x, w, b])


@pytest.mark.parametrize("k, d, s", [(3, 1, 1), (2, 4, 1), (5, 2, 1), (3, 2, 2)])
def test_causal_padding_is_causal(k, d, s, rng):
    """Changing the input at time t changes no output before t (seed 003's causal CNN)."""
    length = 13
    x = rng.standard_normal((2, length, 3))
    w = rng.standard_normal((k, 3, 4))
    base = F.conv1d(x, w, None, s, "causal", d).data
    if s == 1:
        assert base.shape[1] == length                     # causal keeps the length
    for t in range(length):
        x2 = x.copy()
        x2[:, t] += 10.0 * rng.standard_normal((2, 3))
        out = F.conv1d(x2, w, None, s, "causal", d).data
        first = -(-t // s)                                 # first output whose time is >= t
        np.testing.assert_array_equal(out[:, :first], base[:, :first])
        if s == 1:                                         # ...and output t does see time t
            assert not np.allclose(out[:, t], base[:, t])
    # Output t reads inputs t - d*(K-1) .. t: changing an old input changes output t.
    if s == 1 and d * (k - 1) < length:
        x3 = x.copy()
        x3[:, 0] += 1.0
        assert not np.allclose(F.conv1d(x3, w, None, 1, "causal", d).data[:, d * (k - 1)],
                               base[:, d * (k - 1)])


# (N, (D, H, W), C_in, C_out, kernel, stride, padding, dilation, groups)
CONV3D = [
    (2, (4, 5, 3), 2, 3, 3, 1, 1, 1, 1),
    (1, (5, 6, 6), 4, 6, (2, 3, 2), (2, 1, 3), (1, 0, 1), (1, 2, 1), 2),
    (1, (3, 3, 3), 3, 3, 2, 3, 0, 1, 3),
    (2, (1, 1, 1), 2, 2, 1, 1, 0, 1, 1),
    (1, (5, 6, 4), 2, 2, 3, 2, (((1, 0), (0, 2), (1, 1))), 2, 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONV3D)
def test_conv3d(cfg, dtype, rng, torch):
    n, sp, cin, cout, k, s, p, d, g = cfg
    kernel = tup(k, 3)
    x, w, b = make_conv((n, *sp, cin), kernel, cin, cout, g, dtype, rng)
    pads = resolved(p, sp, kernel, s, d)
    np.testing.assert_allclose(F.conv3d(x, w, b, s, p, d, g).data,
                               naive_conv(x, w, b, s, pads, d, g), **tol(dtype))
    xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
    out = F.conv3d(xt, wt, bt, s, p, d, g)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    tx, tw, tb = to_torch(x, "nhwc", True), to_torch(w, "hwio", True), to_torch(b, "", True)
    flat = tuple(v for lo_hi in reversed(pads) for v in lo_hi)    # torch: last axis first
    ref = torch.nn.functional.conv3d(torch.nn.functional.pad(tx, flat), tw, tb, s, 0, d, g)
    ref.backward(to_torch(dout, "nhwc"))
    close_torch("conv3d", out.data, from_torch(ref, "nhwc"), dtype)
    close_torch("conv3d dx", xt.grad, from_torch(tx.grad, "nhwc"), dtype)
    close_torch("conv3d dw", wt.grad, from_torch(tw.grad, "hwio"), dtype)
    close_torch("conv3d db", bt.grad, tb.grad.numpy(), dtype)


@pytest.mark.parametrize("cfg", [CONV3D[1], CONV3D[4]])
def test_conv3d_finite_differences(cfg, rng):
    n, sp, cin, cout, k, s, p, d, g = cfg
    x, w, b = make_conv((n, *sp, cin), tup(k, 3), cin, cout, g, np.float64, rng)
    grad_check(lambda a, w_, b_: F.conv3d(a, w_, b_, s, p, d, g), [x, w, b])


def test_conv_errors(rng):
    x1, x3 = rng.standard_normal((1, 6, 3)), rng.standard_normal((1, 4, 4, 4, 3))
    with pytest.raises(ValueError, match=r"conv1d: input has 3 channels but weight "
                                         r"\(3, 2, 4\) expects 2"):
        F.conv1d(x1, rng.standard_normal((3, 2, 4)))
    with pytest.raises(ValueError, match=r"conv1d: weight must be 3-D \(K, C_in/groups, "
                                         r"C_out\), got 4-D"):
        F.conv1d(x1, rng.standard_normal((1, 3, 3, 4)))
    with pytest.raises(ValueError, match=r"conv1d: input must be 3-D \(N, L, C\), got 4-D"):
        F.conv1d(x3[0], rng.standard_normal((3, 3, 4)))
    with pytest.raises(ValueError, match="kernel of size 9 .* larger than the padded input "
                                         "of size 6"):
        F.conv1d(x1, rng.standard_normal((5, 3, 4)), dilation=2)
    with pytest.raises(ValueError, match="conv3d: groups=2 does not divide the 3 input"):
        F.conv3d(x3, rng.standard_normal((2, 2, 2, 1, 4)), groups=2)
    with pytest.raises(TypeError, match=r"conv3d: stride must be an int or a tuple of 3 "
                                        r"ints, got \(1, 2\)"):
        F.conv3d(x3, rng.standard_normal((2, 2, 2, 3, 4)), stride=(1, 2))
    with pytest.raises(ValueError, match="padding='causal' needs 1-D input, got 3-D"):
        F.conv3d(x3, rng.standard_normal((2, 2, 2, 3, 4)), padding="causal")


# ---- 3-D max pooling -----------------------------------------------------------------

def naive_max_pool3d(x, dout, k, s, p, d, ceil):
    """torch's CPU scan: best starts at -inf and moves on v > best or isnan(v); windows
    cover only real input (ceil mode may add one window per axis)."""
    n, c = x.shape[0], x.shape[-1]
    sp = x.shape[1:4]
    osz = []
    for i in range(3):
        span = sp[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1
        o = (-(-span // s[i]) if ceil else span // s[i]) + 1
        if ceil and (o - 1) * s[i] >= sp[i] + p[i]:
            o -= 1
        osz.append(o)
    out = np.zeros((n, *osz, c))
    dx = np.zeros(x.shape)
    for o in itertools.product(*[range(v) for v in osz]):
        best, arg = np.full((n, c), -np.inf), None
        for t in itertools.product(*[range(v) for v in k]):
            pos = tuple(o[i] * s[i] - p[i] + t[i] * d[i] for i in range(3))
            if not all(0 <= pos[i] < sp[i] for i in range(3)):
                continue
            v = x[(slice(None), *pos)].astype(np.float64)
            if arg is None:
                arg = [[pos] * c for _ in range(n)]
            upd = (v > best) | np.isnan(v)
            best = np.where(upd, v, best)
            for ni, ci in zip(*np.nonzero(upd)):
                arg[ni][ci] = pos
        out[(slice(None), *o)] = best
        for ni in range(n):
            for ci in range(c):
                dx[(ni, *arg[ni][ci], ci)] += dout[(ni, *o, ci)]
    return out, dx


# (N, (D, H, W), C, kernel, stride, padding, dilation, ceil_mode)
POOL3D = [
    (2, (4, 4, 4), 2, 2, None, 0, 1, False),
    (1, (5, 6, 7), 3, 3, 2, 1, 1, True),
    (2, (5, 4, 6), 1, (2, 3, 2), (1, 2, 3), (1, 1, 0), (2, 1, 2), False),
    (1, (3, 5, 4), 2, (3, 2, 3), (2, 2, 3), (1, 1, 1), 1, True),
    (1, (1, 1, 1), 2, 1, 1, 0, 1, False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", POOL3D)
def test_max_pool3d(cfg, dtype, rng, torch):
    n, sp, c, k, s, p, d, ceil = cfg
    x = rng.standard_normal((n, *sp, c)).astype(dtype)
    x[0, 0, 0, :2, 0] = 3.0                                # a tie inside one window
    if x.size > 20:
        x.flat[7] = np.nan
    xt = Tensor(x, requires_grad=True)
    out = F.max_pool3d(xt, k, s, p, d, ceil)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    want, dx = naive_max_pool3d(x, dout, tup(k, 3), tup(s if s else k, 3), tup(p, 3),
                                tup(d, 3), ceil)
    np.testing.assert_allclose(out.data, want, **tol(dtype))
    np.testing.assert_allclose(xt.grad, dx, **tol(dtype))
    tx = to_torch(x, "nhwc", True)
    ref = torch.nn.functional.max_pool3d(tx, k, s, p, d, ceil_mode=ceil)
    ref.backward(to_torch(dout, "nhwc"))
    close_torch("max_pool3d", out.data, from_torch(ref, "nhwc"), dtype)
    close_torch("max_pool3d dx", xt.grad, from_torch(tx.grad, "nhwc"), dtype)


def test_max_pool3d_padding_never_wins(rng):
    """An all -inf window picks a real input, never the -inf padding."""
    x = np.full((1, 3, 3, 3, 1), -np.inf)
    xt = Tensor(x, requires_grad=True)
    out = F.max_pool3d(xt, 3, 1, 1, 2)
    out.backward(np.ones(out.shape))
    assert xt.grad.sum() == 1.0 and xt.grad[0, 1, 1, 1, 0] == 1.0


def test_max_pool3d_finite_differences(rng):
    x = rng.permutation(120).reshape(1, 4, 5, 3, 2).astype(np.float64) / 7.0  # no ties
    grad_check(lambda a: F.max_pool3d(a, (2, 3, 2), (2, 1, 1), (1, 1, 0)), [x])


def test_max_pool3d_errors(rng):
    x = rng.standard_normal((1, 4, 4, 4, 2))
    with pytest.raises(ValueError, match="padding must be between 0 and half the kernel "
                                         r"size \(1\) on spatial axis 0, got 2"):
        F.max_pool3d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"max_pool3d: input must be 5-D \(N, D, H, W, C\)"):
        F.max_pool3d(x[0], 2)
    with pytest.raises(ValueError, match="kernel of size 5 .* larger than the padded input"):
        F.max_pool3d(x, 5)


# ---- 1-D pools (the 2-D ops on an (N, 1, L, C) view) ----------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, s, p, d, ceil", [(2, None, 0, 1, False), (3, 2, 1, 1, True),
                                               (3, 1, 1, 2, False), (4, 3, 2, 1, True)])
def test_pool1d(k, s, p, d, ceil, dtype, rng, torch):
    x = rng.standard_normal((2, 11, 3)).astype(dtype)
    tx = to_torch(x, "nhwc", True)
    xt = Tensor(x, requires_grad=True)
    out, idx = F.max_pool1d(xt, k, s, p, d, ceil, return_indices=True)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    ref, ref_idx = torch.nn.functional.max_pool1d(tx, k, s, p, d, ceil, return_indices=True)
    ref.backward(to_torch(dout, "nhwc"))
    close_torch("max_pool1d", out.data, from_torch(ref, "nhwc"), dtype)
    close_torch("max_pool1d dx", xt.grad, from_torch(tx.grad, "nhwc"), dtype)
    np.testing.assert_array_equal(idx.data, from_torch(ref_idx, "nhwc"))

    tx = to_torch(x, "nhwc", True)
    xt = Tensor(x, requires_grad=True)
    for cip in (True, False):
        tx.grad, xt.grad = None, None
        out = F.avg_pool1d(xt, k, s, p, ceil, cip)
        dout = rng.standard_normal(out.shape).astype(dtype)
        out.backward(dout)
        ref = torch.nn.functional.avg_pool1d(tx, k, s, p, ceil, cip)
        ref.backward(to_torch(dout, "nhwc"))
        close_torch("avg_pool1d", out.data, from_torch(ref, "nhwc"), dtype)
        close_torch("avg_pool1d dx", xt.grad, from_torch(tx.grad, "nhwc"), dtype)


def test_pool1d_naive_and_global(rng):
    x = rng.standard_normal((2, 9, 3))
    want = np.stack([x[:, t * 2:t * 2 + 3].max(axis=1) for t in range(4)], axis=1)
    np.testing.assert_allclose(F.max_pool1d(x, 3, 2).data, want)
    want = np.stack([x[:, t * 2:t * 2 + 3].mean(axis=1) for t in range(4)], axis=1)
    np.testing.assert_allclose(F.avg_pool1d(x, 3, 2).data, want, rtol=1e-12)
    np.testing.assert_allclose(F.global_avg_pool1d(x).data, x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(F.global_max_pool1d(x).data, x.max(axis=1))
    grad_check(lambda a: F.max_pool1d(a, 3, 2, 1), [x])
    grad_check(lambda a: F.avg_pool1d(a, 3, 2, 1, count_include_pad=False), [x])
    grad_check(lambda a: F.global_avg_pool1d(a), [x])
    with pytest.raises(ValueError, match="max_pool1d: padding must be between 0 and half "
                                         r"the kernel size \(1\) on spatial axis 0, got 2"):
        F.max_pool1d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"avg_pool1d: input must be 3-D \(N, L, C\)"):
        F.avg_pool1d(x[0], 2)
