"""conv_transpose2d, checked four ways: as the input gradient of conv2d (seed 002's
"transpose of the conv matrix"), against a naive scatter loop written here, against
torch, and with float64 finite differences -- always with random upstream gradients."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import close_torch, from_torch, grad_check, to_torch, tol

import convnet.functional as F
from convnet import Tensor

DTYPES = [np.float32, np.float64]


# (N, H, W, C_in, C_out, kernel, stride, padding, output_padding, dilation, groups)
CONFIGS = [
    (2, 4, 5, 3, 4, 3, 1, 0, 0, 1, 1),
    (1, 3, 3, 2, 3, 3, 2, 1, 1, 1, 1),          # stride 2, output_padding
    (2, 3, 4, 4, 6, (2, 3), (3, 2), (1, 0), (2, 1), 1, 2),  # stride 3, groups
    (1, 1, 1, 2, 2, 3, 2, 0, 0, 1, 1),          # 1x1 input
    (2, 4, 3, 2, 2, 3, 1, 2, 0, 2, 1),          # dilation
    (1, 5, 4, 6, 3, (3, 2), 2, 1, (1, 2), (2, 3), 3),  # output_padding < dilation
    (1, 3, 5, 2, 4, 2, (1, 3), ((0, 1), (2, 0)), 0, 1, 2),  # asymmetric padding
]


def random_configs(count, seed=5):
    """Seeded random awkward configs on top of the hand-picked ones."""
    r = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        g = int(r.choice([1, 2]))
        s, d = int(r.integers(1, 4)), int(r.integers(1, 3))
        k = int(r.integers(1, 4))
        out.append((int(r.integers(1, 3)), int(r.integers(1, 6)), int(r.integers(1, 6)),
                    g * int(r.integers(1, 3)), g * int(r.integers(1, 3)), k, s,
                    int(r.integers(0, d * (k - 1) // 2 + 1)),
                    int(r.integers(0, max(s, d))), d, g))
    return out


ALL_CONFIGS = CONFIGS + random_configs(5)


def make(cfg, dtype, rng):
    n, h, w, cin, cout, k, s, p, op, d, g = cfg
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    wt = rng.standard_normal((kh, kw, cout // g, cin)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    return x, wt, b, dict(stride=s, padding=p, output_padding=op, dilation=d, groups=g)


def pairs(v):
    v = (v, v) if isinstance(v, int) else v
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in v)


def naive_conv_transpose2d(x, wt, b, stride, padding, output_padding, dilation, groups):
    """Scatter each input pixel times the kernel onto the full output, then crop."""
    n, h, w, cin = x.shape
    kh, kw, fg, _ = wt.shape
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    oph, opw = (output_padding,) * 2 if isinstance(output_padding, int) else output_padding
    (pt, pb), (pl, pr) = pairs(padding)
    cg = cin // groups
    full_h = (h - 1) * sh + dh * (kh - 1) + 1 + oph
    full_w = (w - 1) * sw + dw * (kw - 1) + 1 + opw
    full = np.zeros((n, full_h, full_w, fg * groups))
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                for bb in range(kw):
                    for gi in range(groups):
                        xin = x[:, i, j, gi * cg:(gi + 1) * cg].astype(np.float64)
                        full[:, i * sh + a * dh, j * sw + bb * dw, gi * fg:(gi + 1) * fg] += \
                            xin @ wt[a, bb, :, gi * cg:(gi + 1) * cg].T.astype(np.float64)
    out = full[:, pt:full_h - pb, pl:full_w - pr]
    return out + b


@pytest.mark.parametrize("cfg", ALL_CONFIGS)
def test_is_conv2d_input_gradient(cfg, rng):
    """conv_transpose2d(y, w) == d<conv2d(z, w), y>/dz, with the same hyperparameters."""
    x, wt, _, hp = make(cfg, np.float64, rng)
    out = F.conv_transpose2d(x, wt, None, **hp)
    z = Tensor(np.zeros(out.shape), requires_grad=True)
    conv = F.conv2d(z, wt, None, hp["stride"], hp["padding"], hp["dilation"], hp["groups"])
    # With output_padding >= stride (allowed while < dilation) the conv of the larger map
    # has extra rows/columns at the end; the transpose is that of the cropped conv.
    assert conv.shape[1] >= x.shape[1] and conv.shape[2] >= x.shape[2]
    conv = conv[:, :x.shape[1], :x.shape[2]]
    conv.backward(x)
    np.testing.assert_allclose(out.data, z.grad, rtol=1e-12, atol=1e-12)
    # and the adjoint identity <conv2d(z, w), y> = <z, conv_transpose2d(y, w)>
    zr = rng.standard_normal(out.shape)
    lhs = np.sum(F.conv2d(zr, wt, None, hp["stride"], hp["padding"], hp["dilation"],
                          hp["groups"]).data[:, :x.shape[1], :x.shape[2]] * x)
    np.testing.assert_allclose(lhs, np.sum(zr * out.data), rtol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", ALL_CONFIGS)
def test_forward_matches_naive(cfg, dtype, rng):
    x, wt, b, hp = make(cfg, dtype, rng)
    got = F.conv_transpose2d(x, wt, b, **hp)
    assert got.dtype == dtype
    want = naive_conv_transpose2d(x, wt, b, **hp)
    np.testing.assert_allclose(got.data, want, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", [c for c in ALL_CONFIGS if not isinstance(c[7], tuple)
                                 or isinstance(c[7][0], int)])
def test_matches_torch(cfg, dtype, rng, torch):
    x, wt, b, hp = make(cfg, dtype, rng)
    xt, wt_t, bt = (Tensor(a, requires_grad=True) for a in (x, wt, b))
    out = F.conv_transpose2d(xt, wt_t, bt, **hp)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)

    tx = to_torch(x, "nhwc", True)
    tw = torch.from_numpy(np.ascontiguousarray(wt.transpose(3, 2, 0, 1))).requires_grad_(True)
    tb = torch.from_numpy(b).requires_grad_(True)
    ref = torch.nn.functional.conv_transpose2d(
        tx, tw, tb, hp["stride"], hp["padding"], hp["output_padding"], hp["groups"],
        hp["dilation"])
    ref.backward(to_torch(dout, "nhwc"))
    close_torch("conv_transpose2d", out.data, from_torch(ref, "nhwc"), dtype)
    close_torch("conv_transpose2d dx", xt.grad, from_torch(tx.grad, "nhwc"), dtype)
    close_torch("conv_transpose2d dw", wt_t.grad,
                tw.grad.detach().numpy().transpose(2, 3, 1, 0), dtype)
    close_torch("conv_transpose2d db", bt.grad, tb.grad.numpy(), dtype)


@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[2], CONFIGS[5], CONFIGS[6]])
def test_finite_differences(cfg, rng):
    x, wt, b, hp = make(cfg, np.float64, rng)
    grad_check(lambda a, w_, b_: F.conv_transpose2d(a, w_, b_, **hp), [x, wt, b])


def test_no_bias_and_partial_grads(rng):
    x, wt, _, hp = make(CONFIGS[2], np.float64, rng)
    wt_t = Tensor(wt, requires_grad=True)
    out = F.conv_transpose2d(x, wt_t, None, **hp)   # x needs no gradient
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    xt = Tensor(x, requires_grad=True)
    F.conv_transpose2d(xt, wt_t.data, None, **hp).backward(dout)
    assert wt_t.grad.shape == wt.shape and xt.grad.shape == x.shape


@pytest.mark.parametrize("kwargs, match", [
    (dict(stride=2, output_padding=2), r"output_padding must be .* max\(stride, dilation\) = 2"
                                       r".* got 2"),
    (dict(stride=1, output_padding=1), r"max\(stride, dilation\) = 1 .* got 1"),
    (dict(groups=2), "groups=2 does not divide the 3 input channels"),
    (dict(padding=5), r"must be positive, got \(-5, -4\)"),
    (dict(stride=0), r"stride must be positive, got \(0, 0\)"),
])
def test_bad_hyperparameters(kwargs, match, rng):
    x = rng.standard_normal((1, 3, 4, 3))
    wt = rng.standard_normal((3, 3, 2, 3))
    with pytest.raises(ValueError, match=match):
        F.conv_transpose2d(x, wt, **kwargs)


def test_bad_shapes(rng):
    x = rng.standard_normal((1, 3, 4, 3))
    with pytest.raises(ValueError, match=r"input has 3 channels but weight \(3, 3, 2, 5\) "
                                         r"\(KH, KW, C_out/groups, C_in\) expects 5"):
        F.conv_transpose2d(x, rng.standard_normal((3, 3, 2, 5)))
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\), got \(3,\)"):
        F.conv_transpose2d(x, rng.standard_normal((3, 3, 2, 3)), rng.standard_normal(3))
    with pytest.raises(ValueError, match="input must be 4-D"):
        F.conv_transpose2d(x[0], rng.standard_normal((3, 3, 2, 3)))
    with pytest.raises(TypeError, match="padding must be"):
        F.conv_transpose2d(x, rng.standard_normal((3, 3, 2, 3)), padding="same")
