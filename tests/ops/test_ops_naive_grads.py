"""Gradients against naive loop references for the ops whose own test files check the
backward against torch and finite differences only: conv_transpose2d, conv1d, conv3d and
the 1-D pools.  Configs are randomised (seeded) over kernels 1-5, strides 1-3, dilations
1-3, asymmetric / 'same' / 'causal' padding, groups and depthwise, batch 1, 1-pixel inputs
and odd sizes, in float32 and float64, always with random upstream gradients.  Every
padding is worked out here by hand; nothing below calls convnet to build an expectation.

Also: conv_transpose2d against torch with asymmetric padding (torch crops symmetrically,
so its full output is cropped here), and finite differences for the 1-D / 3-D ops that had
none (global_max_pool1d, linear and trilinear interpolation, 1-D and 3-D padding)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import from_torch, grad_check, to_torch, tol

import convnet.functional as F
from convnet import Tensor

DTYPES = [np.float32, np.float64]


def tup(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


def explicit_pads(padding, spatial, kernel, stride, dilation):
    """One (lo, hi) pair per axis for every spelling, by the formulas of issues 2 and 5."""
    nd = len(spatial)
    if padding == "valid":
        return ((0, 0),) * nd
    if padding == "causal":
        return ((dilation[0] * (kernel[0] - 1), 0),)
    if padding == "same":
        out = []
        for n, k, s, d in zip(spatial, kernel, stride, dilation):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            out.append((total // 2, total - total // 2))
        return tuple(out)
    if isinstance(padding, int):
        return ((padding, padding),) * nd
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


# ---- naive N-d convolution with its gradients: loops over output positions and taps -------

def naive_conv(x, w, b, stride, pads, dilation, groups, dout):
    """x (N, *S, C), w (*K, C/G, F).  Returns (out, dx, dw, db) in float64."""
    nd = x.ndim - 2
    x, w, g_out = x.astype(np.float64), w.astype(np.float64), dout.astype(np.float64)
    kernel, cg, f = w.shape[:nd], w.shape[nd], w.shape[nd + 1]
    fg = f // groups
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    osz = [(xp.shape[1 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
           for i in range(nd)]
    out, dxp, dw = np.zeros((x.shape[0], *osz, f)), np.zeros_like(xp), np.zeros_like(w)
    for o in itertools.product(*[range(v) for v in osz]):
        for t in itertools.product(*[range(k) for k in kernel]):
            pos = tuple(o[i] * stride[i] + t[i] * dilation[i] for i in range(nd))
            for gi in range(groups):
                cin, cout = slice(gi * cg, (gi + 1) * cg), slice(gi * fg, (gi + 1) * fg)
                xs = xp[(slice(None), *pos, cin)]                     # (N, C/G)
                ws = w[t][:, cout]                                    # (C/G, F/G)
                go = g_out[(slice(None), *o, cout)]                   # (N, F/G)
                out[(slice(None), *o, cout)] += xs @ ws
                dxp[(slice(None), *pos, cin)] += go @ ws.T
                dw[t][:, cout] += xs.T @ go
    crop = (slice(None),) + tuple(slice(lo, xp.shape[1 + i] - hi)
                                  for i, (lo, hi) in enumerate(pads)) + (slice(None),)
    db = g_out.sum(axis=tuple(range(nd + 1)))
    return (out if b is None else out + b), dxp[crop], dw, db


def conv_configs(nd, seed, count):
    rng = np.random.default_rng(seed)
    out = []
    spellings = ["int", "asym", "same", "valid"] + (["causal"] if nd == 1 else [])
    while len(out) < count:
        k = tuple(int(v) for v in rng.integers(1, 6 if nd == 1 else 4, nd))
        s = tuple(int(v) for v in rng.integers(1, 4, nd))
        d = tuple(int(v) for v in rng.integers(1, 4, nd)) if rng.random() < 0.5 else (1,) * nd
        kind = str(rng.choice(spellings))
        padding = {"int": int(rng.integers(0, 3)),
                   "asym": tuple(tuple(int(v) for v in rng.integers(0, 3, 2)) for _ in range(nd)),
                   "same": "same", "valid": "valid", "causal": "causal"}[kind]
        if kind == "causal":
            s = (1,) if rng.random() < 0.6 else s
        groups = int(rng.choice([1, 1, 2, 0]))                       # 0: depthwise
        if groups == 0:
            c = int(rng.integers(1, 4))
            groups, f = c, c * int(rng.integers(1, 3))
        else:
            c, f = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        n = int(rng.choice([1, 2]))
        spatial = tuple(int(v) for v in rng.choice([1, 2, 3, 5, 7] if nd == 3 else
                                                   [1, 2, 5, 8, 11], nd))
        pads = explicit_pads(padding, spatial, k, s, d)
        if any(dd * (kk - 1) + 1 > sp + lo + hi
               for sp, kk, dd, (lo, hi) in zip(spatial, k, d, pads)):
            continue
        out.append(dict(k=k, s=s, d=d, padding=padding, groups=groups, c=c, f=f, n=n,
                        spatial=spatial, bias=bool(rng.random() < 0.7)))
    return out


CONV1D = conv_configs(1, 11, 16) + [
    dict(k=(3,), s=(2,), d=(3,), padding="causal", groups=2, c=4, f=2, n=1, spatial=(9,),
         bias=True),
    dict(k=(1,), s=(1,), d=(1,), padding=0, groups=1, c=2, f=3, n=1, spatial=(1,), bias=True),
    dict(k=(4,), s=(2,), d=(2,), padding=((3, 1),), groups=2, c=4, f=6, n=2, spatial=(11,),
         bias=False),
    dict(k=(5,), s=(3,), d=(1,), padding="same", groups=1, c=3, f=2, n=1, spatial=(8,),
         bias=True),
]
CONV3D = conv_configs(3, 12, 8) + [
    dict(k=(3, 1, 2), s=(2, 3, 1), d=(1, 1, 2), padding="same", groups=3, c=3, f=6, n=1,
         spatial=(5, 4, 3), bias=True),
]


def _cid(cfg):
    return (f"k{cfg['k']}s{cfg['s']}d{cfg['d']}p{cfg['padding']}g{cfg['groups']}"
            f"c{cfg['c']}f{cfg['f']}n{cfg['n']}{cfg['spatial']}").replace(" ", "")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONV1D + CONV3D, ids=_cid)
def test_conv1d_conv3d_gradients_vs_naive(cfg, dtype, rng):
    nd = len(cfg["k"])
    x = rng.standard_normal((cfg["n"], *cfg["spatial"], cfg["c"])).astype(dtype)
    w = (rng.standard_normal((*cfg["k"], cfg["c"] // cfg["groups"], cfg["f"]))
         / np.sqrt(np.prod(cfg["k"]))).astype(dtype)
    b = rng.standard_normal(cfg["f"]).astype(dtype) if cfg["bias"] else None
    fn = F.conv1d if nd == 1 else F.conv3d
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    bt = None if b is None else Tensor(b, requires_grad=True)
    out = fn(xt, wt, bt, cfg["s"], cfg["padding"], cfg["d"], cfg["groups"])
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    assert out.dtype == dtype and xt.grad.dtype == dtype and wt.grad.dtype == dtype
    pads = explicit_pads(cfg["padding"], cfg["spatial"], cfg["k"], cfg["s"], cfg["d"])
    ref, rdx, rdw, rdb = naive_conv(x, w, b, cfg["s"], pads, cfg["d"], cfg["groups"], dout)
    np.testing.assert_allclose(out.data, ref, **tol(dtype))
    np.testing.assert_allclose(xt.grad, rdx, **tol(dtype))
    np.testing.assert_allclose(wt.grad, rdw, **tol(dtype))
    if b is not None:
        np.testing.assert_allclose(bt.grad, rdb, **tol(dtype))


# ---- conv_transpose2d: a scatter loop and its adjoint ---------------------------------------

def naive_conv_transpose2d(x, wt, b, stride, pads, output_padding, dilation, groups, dout):
    """Scatter each input pixel times the kernel onto the full output, crop; the gradients
    gather back along the same taps.  Returns (out, dx, dw, db) in float64."""
    x, wt, g_out = x.astype(np.float64), wt.astype(np.float64), dout.astype(np.float64)
    n, h, w, cin = x.shape
    kh, kw, fg, _ = wt.shape
    (sh, sw), (dh, dw_), (oph, opw) = stride, dilation, output_padding
    (pt, pb), (pl, pr) = pads
    cg = cin // groups
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1 + oph, (w - 1) * sw + dw_ * (kw - 1) + 1 + opw
    full = np.zeros((n, full_h, full_w, fg * groups))
    dfull = np.zeros_like(full)
    dfull[:, pt:full_h - pb, pl:full_w - pr] = g_out
    dx, dwt = np.zeros_like(x), np.zeros_like(wt)
    for i, j, a, c in itertools.product(range(h), range(w), range(kh), range(kw)):
        r, q = i * sh + a * dh, j * sw + c * dw_
        for gi in range(groups):
            cs, fs = slice(gi * cg, (gi + 1) * cg), slice(gi * fg, (gi + 1) * fg)
            tap = wt[a, c, :, cs]                                     # (F/G, C/G)
            full[:, r, q, fs] += x[:, i, j, cs] @ tap.T
            dx[:, i, j, cs] += dfull[:, r, q, fs] @ tap
            dwt[a, c, :, cs] += dfull[:, r, q, fs].T @ x[:, i, j, cs]
    out = full[:, pt:full_h - pb, pl:full_w - pr]
    return (out if b is None else out + b), dx, dwt, g_out.sum(axis=(0, 1, 2))


def ct_configs(seed, count):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        k = tuple(int(v) for v in rng.integers(1, 6, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 4, 2)) if rng.random() < 0.5 else (1, 1)
        op = tuple(int(rng.integers(0, max(ss, dd))) for ss, dd in zip(s, d))
        groups = int(rng.choice([1, 2, 3]))
        cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        n = int(rng.choice([1, 2]))
        h, w = (int(v) for v in rng.choice([1, 2, 3, 4, 5], 2))
        pads = tuple(tuple(int(v) for v in rng.integers(0, 3, 2)) for _ in range(2))
        full = [(m - 1) * ss + dd * (kk - 1) + 1 + o for m, ss, dd, kk, o in
                zip((h, w), s, d, k, op)]
        if any(f - lo - hi <= 0 for f, (lo, hi) in zip(full, pads)):
            continue
        out.append(dict(k=k, s=s, d=d, op=op, pads=pads, groups=groups, cin=cin, cout=cout,
                        n=n, h=h, w=w, bias=bool(rng.random() < 0.7)))
    return out


CT = ct_configs(21, 14) + [
    dict(k=(1, 1), s=(1, 1), d=(1, 1), op=(0, 0), pads=((0, 0), (0, 0)), groups=1, cin=2,
         cout=3, n=1, h=1, w=1, bias=True),
    dict(k=(4, 3), s=(3, 2), d=(1, 3), op=(2, 2), pads=((2, 0), (0, 1)), groups=2, cin=4,
         cout=2, n=2, h=3, w=2, bias=True),
]


def _ctid(c):
    return (f"k{c['k']}s{c['s']}d{c['d']}op{c['op']}p{c['pads']}g{c['groups']}"
            f"{c['cin']}to{c['cout']}n{c['n']}{c['h']}x{c['w']}").replace(" ", "")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CT, ids=_ctid)
def test_conv_transpose2d_vs_naive_and_torch(cfg, dtype, rng, torch):
    g = cfg["groups"]
    x = rng.standard_normal((cfg["n"], cfg["h"], cfg["w"], cfg["cin"])).astype(dtype)
    w = rng.standard_normal((*cfg["k"], cfg["cout"] // g, cfg["cin"])).astype(dtype)
    b = rng.standard_normal(cfg["cout"]).astype(dtype) if cfg["bias"] else None
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    bt = None if b is None else Tensor(b, requires_grad=True)
    out = F.conv_transpose2d(xt, wt, bt, cfg["s"], cfg["pads"], cfg["op"], cfg["d"], g)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    assert out.dtype == dtype and xt.grad.dtype == dtype and wt.grad.dtype == dtype
    ref, rdx, rdw, rdb = naive_conv_transpose2d(x, w, b, cfg["s"], cfg["pads"], cfg["op"],
                                                cfg["d"], g, dout)
    np.testing.assert_allclose(out.data, ref, **tol(dtype))
    np.testing.assert_allclose(xt.grad, rdx, **tol(dtype))
    np.testing.assert_allclose(wt.grad, rdw, **tol(dtype))
    if b is not None:
        np.testing.assert_allclose(bt.grad, rdb, **tol(dtype))
    # torch: no padding, then crop the asymmetric (top, bottom), (left, right) by hand
    tx = to_torch(x, "nhwc", requires_grad=True)
    tw = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))).requires_grad_(True)
    tb = None if b is None else torch.from_numpy(b.copy()).requires_grad_(True)
    full = torch.nn.functional.conv_transpose2d(tx, tw, tb, cfg["s"], 0, cfg["op"], g, cfg["d"])
    (pt, pb), (pl, pr) = cfg["pads"]
    tout = full[:, :, pt:full.shape[2] - pb, pl:full.shape[3] - pr]
    tout.backward(to_torch(dout, "nhwc"))
    np.testing.assert_allclose(out.data, from_torch(tout, "nhwc"), **tol(dtype))
    np.testing.assert_allclose(xt.grad, from_torch(tx.grad, "nhwc"), **tol(dtype))
    np.testing.assert_allclose(wt.grad, tw.grad.numpy().transpose(2, 3, 1, 0), **tol(dtype))
    if b is not None:
        np.testing.assert_allclose(bt.grad, tb.grad.numpy(), **tol(dtype))


# ---- 1-D pools: naive loops with torch's rules ------------------------------------------------

def naive_pool1d(x, dout, k, s, p, d, ceil, kind, count_include_pad=True):
    """Max (first maximum wins, -inf padding) or average pooling along L of (N, L, C)."""
    n, length, c = x.shape
    span = length + 2 * p - d * (k - 1) - 1
    out_len = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out_len - 1) * s >= length + p:
        out_len -= 1
    out, dx = np.zeros((n, out_len, c)), np.zeros(x.shape)
    xs, g = x.astype(np.float64), dout.astype(np.float64)
    for t in range(out_len):
        taps = [t * s - p + i * d for i in range(k)]
        real = [q for q in taps if 0 <= q < length]
        if kind == "max":
            for ni, ci in itertools.product(range(n), range(c)):
                best = max(real, key=lambda q: (xs[ni, q, ci], -q))   # first of the maxima
                out[ni, t, ci] = xs[ni, best, ci]
                dx[ni, best, ci] += g[ni, t, ci]
        else:
            counted = len([q for q in taps if -p <= q < length + p]) if count_include_pad \
                else len(real)
            for q in real:
                out[:, t] += xs[:, q] / counted
                dx[:, q] += g[:, t] / counted
    return out, dx


POOL1D = [  # (kernel, stride, padding, dilation, ceil_mode, length)
    (2, 2, 0, 1, False, 7), (3, 2, 1, 1, True, 8), (3, 1, 1, 2, False, 6), (4, 3, 2, 1, True, 9),
    (1, 1, 0, 1, False, 1), (5, 3, 2, 1, False, 5), (2, 3, 1, 3, True, 10),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,s,p,d,ceil,length", POOL1D)
def test_pools_1d_gradients_vs_naive(k, s, p, d, ceil, length, dtype, rng):
    x = rng.integers(-3, 4, (2, length, 3)).astype(dtype)          # small integers: ties
    xt = Tensor(x, requires_grad=True)
    out = F.max_pool1d(xt, k, s, p, d, ceil)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    ref, rdx = naive_pool1d(x, dout, k, s, p, d, ceil, "max")
    np.testing.assert_array_equal(out.data, ref)
    np.testing.assert_allclose(xt.grad, rdx, **tol(dtype))
    if d == 1:
        for include in (True, False):
            xt = Tensor(x, requires_grad=True)
            out = F.avg_pool1d(xt, k, s, p, ceil, include)
            dout = rng.standard_normal(out.shape).astype(dtype)
            out.backward(dout)
            ref, rdx = naive_pool1d(x, dout, k, s, p, 1, ceil, "avg", include)
            np.testing.assert_allclose(out.data, ref, **tol(dtype))
            np.testing.assert_allclose(xt.grad, rdx, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_pools_1d_vs_naive_and_torch(dtype, rng, torch):
    x = rng.integers(-2, 3, (3, 5, 4)).astype(dtype)                # ties: the first wins
    for op in ("max", "avg"):
        xt = Tensor(x, requires_grad=True)
        out = (F.global_max_pool1d if op == "max" else F.global_avg_pool1d)(xt)
        dout = rng.standard_normal(out.shape).astype(dtype)
        out.backward(dout)
        ref, rdx = naive_pool1d(x, dout[:, None, :], 5, 5, 0, 1, False, op)
        np.testing.assert_allclose(out.data, ref[:, 0], **tol(dtype))
        np.testing.assert_allclose(xt.grad, rdx, **tol(dtype))
        tx = to_torch(x, "nhwc", requires_grad=True)
        tfn = torch.nn.functional.adaptive_max_pool1d if op == "max" else \
            torch.nn.functional.adaptive_avg_pool1d
        tfn(tx, 1)[:, :, 0].backward(torch.from_numpy(dout))
        np.testing.assert_allclose(xt.grad, from_torch(tx.grad, "nhwc"), **tol(dtype))


# ---- finite differences for the 1-D / 3-D ops that had none ---------------------------------

def test_more_finite_differences(rng):
    distinct = rng.permutation(2 * 7 * 3).reshape(2, 7, 3) * 0.05     # no ties
    grad_check(F.global_max_pool1d, [distinct.astype(np.float64)])
    grad_check(lambda a: F.max_pool1d(a, 3, 2, 1, 2, True), [distinct.astype(np.float64)])
    grad_check(lambda a: F.interpolate(a, scale_factor=2.5, mode="linear"),
               [rng.standard_normal((1, 4, 2))])
    grad_check(lambda a: F.interpolate(a, size=(3, 5, 2), mode="trilinear", align_corners=True),
               [rng.standard_normal((1, 2, 3, 3, 1))])
    grad_check(lambda a: F.interpolate(a, scale_factor=(1.5, 2, 0.7)),
               [rng.standard_normal((1, 2, 3, 4, 1))])
    grad_check(lambda a: F.pad(a, ((2, 3),), mode="reflect"), [rng.standard_normal((2, 5, 2))])
    grad_check(lambda a: F.pad(a, ((1, 2), (2, 0), (1, 1)), mode="circular"),
               [rng.standard_normal((1, 3, 2, 3, 1))])
    grad_check(lambda a: F.pad(a, ((0, 2), (3, 1), (1, 0)), mode="replicate"),
               [rng.standard_normal((1, 2, 2, 3, 1))])
