"""local2d (locally connected, unshared weights), checked against a naive loop written
here and float64 finite differences (torch has no such layer), plus one extra oracle:
with the same filter copied to every position it must equal torch's conv2d."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import from_torch, grad_check, to_torch, tol

import convnet.functional as F
from convnet import Tensor

DTYPES = [np.float32, np.float64]

# (N, H, W, C_in, C_out, kernel, stride, padding)
CONFIGS = [
    (2, 5, 5, 3, 4, 3, 1, 0),
    (1, 7, 6, 2, 3, (3, 2), (2, 3), 1),
    (2, 4, 5, 1, 2, 2, 3, ((1, 0), (0, 2))),
    (1, 3, 3, 2, 2, 3, 1, 0),               # one output position
    (3, 6, 4, 2, 5, 1, 2, 0),               # 1x1 kernel
    (1, 5, 7, 3, 2, 3, 2, "same"),
]


def out_hw(h, w, k, s, pads):
    (pt, pb), (pl, pr) = pads
    return (h + pt + pb - k[0]) // s[0] + 1, (w + pl + pr - k[1]) // s[1] + 1


def resolve(cfg):
    from convnet.ops.shape import resolve_padding
    n, h, w, cin, cout, k, s, p = cfg
    k = (k, k) if isinstance(k, int) else k
    s = (s, s) if isinstance(s, int) else s
    return k, s, resolve_padding(p, (h, w), k, s, (1, 1))


def make(cfg, dtype, rng):
    n, h, w, cin, cout, _, _, _ = cfg
    k, s, pads = resolve(cfg)
    oh, ow = out_hw(h, w, k, s, pads)
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    wt = rng.standard_normal((oh, ow, *k, cin, cout)).astype(dtype)
    b = rng.standard_normal((oh, ow, cout)).astype(dtype)
    return x, wt, b


def naive_local2d(x, wt, b, k, s, pads, dout):
    """Loop over output positions; each has its own filter bank.  Returns out, dx, dw, db."""
    xp = np.pad(x.astype(np.float64), ((0, 0), *pads, (0, 0)))
    oh, ow = wt.shape[:2]
    n, f = x.shape[0], wt.shape[-1]
    out = np.zeros((n, oh, ow, f))
    dxp, dw = np.zeros_like(xp), np.zeros(wt.shape)
    for i in range(oh):
        for j in range(ow):
            win = xp[:, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1], :]  # (N, KH, KW, C)
            filt = wt[i, j].astype(np.float64)                               # (KH, KW, C, F)
            out[:, i, j] = np.einsum("nabc,abcf->nf", win, filt) + b[i, j]
            dw[i, j] = np.einsum("nabc,nf->abcf", win, dout[:, i, j])
            dxp[:, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1], :] += \
                np.einsum("nf,abcf->nabc", dout[:, i, j], filt)
    (pt, pb), (pl, pr) = pads
    dx = dxp[:, pt:xp.shape[1] - pb, pl:xp.shape[2] - pr]
    return out, dx, dw, dout.sum(axis=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONFIGS)
def test_matches_naive(cfg, dtype, rng):
    x, wt, b = make(cfg, dtype, rng)
    k, s, pads = resolve(cfg)
    xt, wt_t, bt = (Tensor(a, requires_grad=True) for a in (x, wt, b))
    out = F.local2d(xt, wt_t, bt, cfg[6], cfg[7])
    assert out.dtype == dtype
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    want, dx, dw, db = naive_local2d(x, wt, b, k, s, pads, dout.astype(np.float64))
    np.testing.assert_allclose(out.data, want, **tol(dtype))
    np.testing.assert_allclose(xt.grad, dx, **tol(dtype))
    np.testing.assert_allclose(wt_t.grad, dw, **tol(dtype))
    np.testing.assert_allclose(bt.grad, db, **tol(dtype))


@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[2]])
def test_finite_differences(cfg, rng):
    x, wt, b = make(cfg, np.float64, rng)
    grad_check(lambda a, w_, b_: F.local2d(a, w_, b_, cfg[6], cfg[7]), [x, wt, b])


@pytest.mark.parametrize("dtype", DTYPES)
def test_shared_weights_equal_torch_conv2d(dtype, rng, torch):
    """Copy one filter bank to every position: the layer becomes a conv (torch's)."""
    x, wt, _ = make(CONFIGS[1], dtype, rng)
    k, s, pads = resolve(CONFIGS[1])
    filt = rng.standard_normal(wt.shape[2:]).astype(dtype)       # (KH, KW, C, F)
    shared = np.broadcast_to(filt, wt.shape).copy()
    got = F.local2d(x, shared, None, s, pads).data
    (pt, pb), (pl, pr) = pads
    ref = torch.nn.functional.conv2d(
        torch.nn.functional.pad(to_torch(x, "nhwc"), (pl, pr, pt, pb)), to_torch(filt, "hwio"),
        stride=s)
    np.testing.assert_allclose(got, from_torch(ref, "nhwc"), **tol(dtype))


def test_positions_are_independent(rng):
    """Changing position (i, j)'s filter changes output (i, j) only."""
    x, wt, b = make(CONFIGS[0], np.float64, rng)
    base = F.local2d(x, wt, b).data
    wt2 = wt.copy()
    wt2[1, 2] += 1.0
    diff = np.abs(F.local2d(x, wt2, b).data - base).sum(axis=(0, 3))
    assert diff[1, 2] > 0 and np.count_nonzero(diff) == 1


def test_errors(rng):
    x = rng.standard_normal((1, 5, 5, 3))
    with pytest.raises(ValueError, match=r"input \(5, 5\) gives 3 x 3 output positions but "
                                         r"weight \(4, 4, 3, 3, 3, 2\) has 4 x 4"):
        F.local2d(x, rng.standard_normal((4, 4, 3, 3, 3, 2)))
    with pytest.raises(ValueError, match=r"input has 3 channels but weight "
                                         r"\(3, 3, 3, 3, 2, 2\) expects 2"):
        F.local2d(x, rng.standard_normal((3, 3, 3, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"bias must have shape \(3, 3, 2\), got \(2,\)"):
        F.local2d(x, rng.standard_normal((3, 3, 3, 3, 3, 2)), rng.standard_normal(2))
    with pytest.raises(ValueError, match=r"weight must be 6-D \(OH, OW, KH, KW, C_in, C_out\)"):
        F.local2d(x, rng.standard_normal((3, 3, 3, 2)))
