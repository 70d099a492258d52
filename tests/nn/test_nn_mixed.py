"""MixedDilationConv2d (seed 002: one layer whose filters use several dilation rates),
checked against separately computed dilated convs, torch (one conv per rate,
concatenated) and float64 finite differences, with random upstream gradients."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import from_torch, numerical_grad, to_torch, tol

import convnet.functional as F
from convnet import Tensor, nn
from convnet.ops.shape import resolve_padding

DTYPES = [np.float32, np.float64]
MAX_ERR: dict = {}  # (layer, dtype) -> largest abs error vs torch


def close_torch(op, got, want, dtype):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{op}: shape {got.shape} != {want.shape}"
    key = (op, np.dtype(dtype).name)
    MAX_ERR[key] = max(MAX_ERR.get(key, 0.0), float(np.nanmax(np.abs(got - want))))
    np.testing.assert_allclose(got, want, **tol(dtype), err_msg=op)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", [(3, 2, 3, (1, 2, 3), 1, 1), (4, 4, (3, 2), (1, 3), 2, 2),
                                 (2, 2, 2, (2, 1, 4), 1, 1)])
def test_mixed_dilation(cfg, dtype, rng, torch):
    cin, f, k, rates, s, g = cfg
    layer = nn.MixedDilationConv2d(cin, f, k, rates, stride=s, groups=g, rng=rng).to(dtype)
    x = rng.standard_normal((2, 9, 8, cin)).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    out = layer(xt)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    dx = xt.grad
    assert layer.output_shape(x.shape[1:]) == out.shape[1:]
    assert out.shape[-1] == f * len(rates)
    w, b = layer.weight.data, layer.bias.data
    # separately computed dilated convs, one per rate, stacked along channels
    parts = [F.conv2d(x, w[..., i * f:(i + 1) * f], b[i * f:(i + 1) * f], s, "same", r, g).data
             for i, r in enumerate(rates)]
    np.testing.assert_allclose(out.data, np.concatenate(parts, axis=-1), **tol(dtype))
    # torch: one conv2d per rate with explicit 'same' pads, concatenated
    tx = to_torch(x, "nhwc", True)
    tw = to_torch(w, "hwio", True)
    tb = torch.from_numpy(b).requires_grad_(True)
    outs = []
    for i, r in enumerate(rates):
        (pt, pb), (pl, pr) = resolve_padding("same", x.shape[1:3], layer.kernel_size,
                                             (s, s), (r, r))
        outs.append(torch.nn.functional.conv2d(
            torch.nn.functional.pad(tx, (pl, pr, pt, pb)), tw[i * f:(i + 1) * f],
            tb[i * f:(i + 1) * f], s, 0, r, g))
    ref = torch.cat(outs, dim=1)
    ref.backward(to_torch(dout, "nhwc"))
    close_torch("MixedDilationConv2d", out.data, from_torch(ref, "nhwc"), dtype)
    close_torch("MixedDilationConv2d dx", dx, from_torch(tx.grad, "nhwc"), dtype)
    close_torch("MixedDilationConv2d dw", layer.weight.grad, from_torch(tw.grad, "hwio"), dtype)
    close_torch("MixedDilationConv2d db", layer.bias.grad, tb.grad.numpy(), dtype)


def test_mixed_dilation_finite_differences_and_errors(rng):
    layer = nn.MixedDilationConv2d(2, 2, 3, (1, 2), stride=(1, 2), rng=rng).to(np.float64)
    x = rng.standard_normal((1, 5, 4, 2))
    xt = Tensor(x, requires_grad=True)
    out = layer(xt)
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    for got, arr in ((xt.grad, x), (layer.weight.grad, layer.weight.data),
                     (layer.bias.grad, layer.bias.data)):
        num = numerical_grad(lambda: layer(x).data, arr, dout)   # perturbs arr in place
        np.testing.assert_allclose(got, num, rtol=1e-5, atol=1e-7)
    assert layer.rf_params((5, 4, 2)) == ((5, 1, 2), (5, 2, 1))
    with pytest.raises(ValueError, match=r"the dilation banks must give one output size, got "
                                         r"\(3, 4\) for rate \(1, 1\), \(1, 2\) for rate \(2, 2\)"):
        nn.MixedDilationConv2d(2, 2, 3, (1, 2), padding=0).output_shape((5, 6, 2))
    ok = nn.MixedDilationConv2d(2, 2, 3, (1, 2), padding=[1, 2])
    assert ok.output_shape((5, 6, 2)) == (5, 6, 4)
    with pytest.raises(ValueError, match="a list of paddings needs one entry per rate "
                                         r"\(2\), got 3"):
        nn.MixedDilationConv2d(2, 2, 3, (1, 2), padding=[1, 2, 3])
    with pytest.raises(ValueError, match="rates must be positive"):
        nn.MixedDilationConv2d(2, 2, 3, (1, 0))
    with pytest.raises(ValueError, match="groups=2 must divide in_channels=3"):
        nn.MixedDilationConv2d(3, 2, 3, groups=2)
