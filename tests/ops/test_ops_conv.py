"""conv2d, checked three ways: a per-pixel, per-tap loop written here, torch, and float64
finite differences, always with random upstream gradients, over randomised configs."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import close_torch, from_torch, grad_check, to_torch, tol

import convnet.functional as F
from convnet import Tensor

DTYPES = [np.float32, np.float64]


# ---- the reference: one output pixel, one tap, one group at a time ---------------------

def explicit_pads(padding, size, k, s, d):
    """((top, bottom), (left, right)) for every spelling, 'same' worked out here: the
    output is ceil(n / s) and the odd extra pixel goes bottom/right (TensorFlow)."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        pads = []
        for n, kk, ss, dd in zip(size, k, s, d):
            out = -(-n // ss)
            total = max((out - 1) * ss + (kk - 1) * dd + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


def naive_conv2d(x, w, b, stride, pads, dil, groups, dout):
    """Returns (out, dx, dw, db) in float64."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, h, wd, c = x.shape
    kh, kw, cg, f = w.shape
    fg = f // groups
    (pt, pb), (pl, pr) = pads
    x_pad = np.zeros((n, h + pt + pb, wd + pl + pr, c))
    x_pad[:, pt:pt + h, pl:pl + wd, :] = x
    oh = (h + pt + pb - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + pl + pr - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, oh, ow, f))
    dx_pad, dw = np.zeros_like(x_pad), np.zeros_like(w)
    g_out = None if dout is None else dout.astype(np.float64)
    for a in range(oh):
        for q in range(ow):
            for i in range(kh):
                for j in range(kw):
                    r, col = a * stride[0] + i * dil[0], q * stride[1] + j * dil[1]
                    for g in range(groups):
                        cin, cout = slice(g * cg, (g + 1) * cg), slice(g * fg, (g + 1) * fg)
                        xs, ws = x_pad[:, r, col, cin], w[i, j, :, cout]   # (N, cg), (cg, fg)
                        out[:, a, q, cout] += xs @ ws
                        if g_out is not None:
                            dx_pad[:, r, col, cin] += g_out[:, a, q, cout] @ ws.T
                            dw[i, j, :, cout] += xs.T @ g_out[:, a, q, cout]
    if b is not None:
        out += b
    dx = dx_pad[:, pt:pt + h, pl:pl + wd, :]
    db = None if g_out is None else g_out.sum(axis=(0, 1, 2))
    return out, dx, dw, db


# ---- randomised configs ---------------------------------------------------------------

def _configs(seed, count):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        k = tuple(int(v) for v in rng.integers(1, 6, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 4, 2)) if rng.random() < 0.4 else (1, 1)
        kind = rng.choice(["int", "pair", "asym", "same", "valid"])
        padding = {"int": int(rng.integers(0, 3)),
                   "pair": tuple(int(v) for v in rng.integers(0, 3, 2)),
                   "asym": tuple(tuple(int(v) for v in rng.integers(0, 4, 2)) for _ in range(2)),
                   "same": "same", "valid": "valid"}[str(kind)]
        groups = int(rng.choice([1, 1, 2, 3, 0]))          # 0: depthwise
        cg = int(rng.integers(1, 4))
        if groups == 0:                                    # depthwise, multiplier 1 or 2
            c = int(rng.integers(1, 5))
            groups, f = c, c * int(rng.integers(1, 3))
        else:
            c, f = cg * groups, groups * int(rng.integers(1, 4))
        n = int(rng.choice([1, 2, 3]))
        h, w = (int(v) for v in rng.choice([1, 2, 3, 5, 6, 7, 9], 2))
        pads = explicit_pads(padding, (h, w), k, s, d)
        fits = all(dd * (kk - 1) + 1 <= size + lo + hi
                   for size, kk, dd, (lo, hi) in zip((h, w), k, d, pads))
        if not fits:
            continue
        out.append(dict(k=k, s=s, d=d, padding=padding, groups=groups, c=c, f=f, n=n, h=h,
                        w=w, bias=bool(rng.random() < 0.7)))
    # hand-picked awkward ones on top of the random draw
    out += [
        dict(k=(1, 1), s=(1, 1), d=(1, 1), padding=0, groups=1, c=3, f=4, n=1, h=1, w=1,
             bias=True),
        dict(k=(3, 3), s=(2, 2), d=(1, 1), padding="same", groups=1, c=2, f=3, n=2, h=6, w=7,
             bias=True),
        dict(k=(3, 3), s=(3, 3), d=(1, 1), padding="same", groups=1, c=2, f=2, n=1, h=1, w=1,
             bias=False),
        dict(k=(5, 4), s=(3, 2), d=(2, 3), padding="same", groups=4, c=4, f=8, n=1, h=9, w=7,
             bias=True),
        dict(k=(3, 3), s=(1, 1), d=(1, 1), padding=((0, 2), (1, 0)), groups=5, c=5, f=5, n=2,
             h=5, w=5, bias=True),
    ]
    return out


CONFIGS = _configs(7, 40)


def _cfg_id(cfg):
    return (f"k{cfg['k']}s{cfg['s']}d{cfg['d']}p{cfg['padding']}g{cfg['groups']}"
            f"c{cfg['c']}f{cfg['f']}n{cfg['n']}{cfg['h']}x{cfg['w']}").replace(" ", "")


def _make(cfg, dtype, rng):
    x = rng.standard_normal((cfg["n"], cfg["h"], cfg["w"], cfg["c"])).astype(dtype)
    fan_in = cfg["k"][0] * cfg["k"][1] * cfg["c"] // cfg["groups"]
    w = (rng.standard_normal((*cfg["k"], cfg["c"] // cfg["groups"], cfg["f"]))
         / np.sqrt(fan_in)).astype(dtype)
    b = rng.standard_normal(cfg["f"]).astype(dtype) if cfg["bias"] else None
    return x, w, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_conv2d_vs_naive_and_torch(cfg, dtype, rng, torch):
    x, w, b = _make(cfg, dtype, rng)
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    bt = Tensor(b, requires_grad=True) if b is not None else None
    out = F.conv2d(xt, wt, bt, cfg["s"], cfg["padding"], cfg["d"], cfg["groups"])
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    assert out.dtype == dtype and xt.grad.dtype == dtype and wt.grad.dtype == dtype
    if cfg["padding"] == "same":
        assert out.shape[1:3] == (-(-cfg["h"] // cfg["s"][0]), -(-cfg["w"] // cfg["s"][1]))

    pads = explicit_pads(cfg["padding"], (cfg["h"], cfg["w"]), cfg["k"], cfg["s"], cfg["d"])
    ref, rdx, rdw, rdb = naive_conv2d(x, w, b, cfg["s"], pads, cfg["d"], cfg["groups"], dout)
    np.testing.assert_allclose(out.data, ref, **tol(dtype))
    np.testing.assert_allclose(xt.grad, rdx, **tol(dtype))
    np.testing.assert_allclose(wt.grad, rdw, **tol(dtype))
    if b is not None:
        np.testing.assert_allclose(bt.grad, rdb, **tol(dtype))

    # torch pads symmetrically only: pad explicitly (left, right, top, bottom), then conv
    tx = to_torch(x, "nhwc", requires_grad=True)
    tw = to_torch(w, "hwio", requires_grad=True)
    tb = torch.from_numpy(b.copy()).requires_grad_(True) if b is not None else None
    (pt, pb), (pl, pr) = pads
    tout = torch.nn.functional.conv2d(torch.nn.functional.pad(tx, (pl, pr, pt, pb)), tw, tb,
                                      cfg["s"], 0, cfg["d"], cfg["groups"])
    tout.backward(to_torch(dout, "nhwc"))
    close_torch("conv2d", out.data, from_torch(tout, "nhwc"), dtype)
    close_torch("conv2d grad x", xt.grad, from_torch(tx.grad, "nhwc"), dtype)
    close_torch("conv2d grad w", wt.grad, from_torch(tw.grad, "hwio"), dtype)
    if b is not None:
        close_torch("conv2d grad b", bt.grad, tb.grad.numpy(), dtype)


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c["n"] * c["h"] * c["w"] * c["c"] <= 150
                                 ][:6] + CONFIGS[-3:], ids=_cfg_id)
def test_conv2d_gradcheck(cfg, rng):
    x, w, b = _make(cfg, np.float64, rng)
    inputs = [x, w] + ([b] if b is not None else [])
    grad_check(lambda *t: F.conv2d(*t[:2], t[2] if len(t) > 2 else None, cfg["s"],
                                   cfg["padding"], cfg["d"], cfg["groups"]), inputs)


@pytest.mark.parametrize("padding", [1, (2, 0), ((0, 1), (2, 1)), "valid", "same"])
def test_padding_spellings_agree_with_explicit_pads(padding, rng):
    x = rng.standard_normal((2, 6, 5, 3))
    w = rng.standard_normal((3, 2, 3, 4))
    out = F.conv2d(Tensor(x), Tensor(w), None, 2, padding)
    ref = naive_conv2d(x, w, None, (2, 2), explicit_pads(padding, (6, 5), (3, 2), (2, 2),
                                                          (1, 1)), (1, 1), 1, None)[0]
    np.testing.assert_allclose(out.data, ref, rtol=1e-10, atol=1e-12)


def test_same_padding_at_stride_gt_1_puts_the_extra_pixel_bottom_right(torch):
    # n = 6, k = 3, s = 2: out = 3, total pad = (3-1)*2 + 3 - 6 = 1 -> (0, 1)
    x = np.arange(36, dtype=np.float64).reshape(1, 6, 6, 1)
    w = np.ones((3, 3, 1, 1))
    out = F.conv2d(Tensor(x), Tensor(w), stride=2, padding="same").data[0, :, :, 0]
    assert out.shape == (3, 3)
    assert out[0, 0] == x[0, 0:3, 0:3, 0].sum()                 # no top/left padding
    assert out[2, 2] == x[0, 4:6, 4:6, 0].sum()                 # bottom/right padded
