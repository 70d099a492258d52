"""Sequential runs a plain Conv2d followed by a plain ReLU as one fused op (F.conv2d_relu),
and Conv2d -> ReLU -> MaxPool2d with non-overlapping windows as another
(F.conv2d_relu_max_pool2d), in training and inference alike: the same outputs and
gradients as the layers run one by one.  F.conv2d_relu itself is checked against torch
and float64 finite differences, gradients included (the triple: tests/ops/test_ops_fused.py)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import close_torch, from_torch, grad_check, to_torch

import convnet
import convnet.functional as F
from convnet import nn
from convnet.functional.conv import Conv2dReLUFn, Conv2dReLUPoolFn
from convnet.viz.maps import capture_activation


def make_net(rng, **conv_kw):
    return nn.Sequential(nn.Conv2d(3, 5, 3, padding=1, rng=rng, dtype=np.float64, **conv_kw),
                         nn.ReLU(),
                         nn.Conv2d(5, 4, 3, stride=2, rng=rng, dtype=np.float64),
                         nn.ReLU(),
                         nn.MaxPool2d(2))


def run_unfused(net, x):
    """The same layers, one module call at a time (no fusion)."""
    for m in net:
        x = m(x)
    return x


def counting(monkeypatch, name):
    calls = []
    real = getattr(F, name)
    monkeypatch.setattr(F, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_fused_equals_layer_by_layer(rng, monkeypatch):
    net = make_net(rng)
    x = rng.standard_normal((2, 11, 10, 3))
    pairs = counting(monkeypatch, "conv2d_relu")
    triples = counting(monkeypatch, "conv2d_relu_max_pool2d")
    with convnet.no_grad():
        fused = net(x).data
        unfused = run_unfused(net, x).data
    assert (len(pairs), len(triples)) == (1, 1)       # conv+relu, then conv+relu+pool
    np.testing.assert_array_equal(fused, unfused)


@pytest.mark.parametrize("bias", [True, False])
def test_fused_while_training_gradients_match_layer_by_layer(bias, rng):
    """Training fuses too, and its gradients are the layer-by-layer ones."""
    net = make_net(rng, bias=bias)
    x = rng.standard_normal((2, 11, 10, 3))
    xf, xu = convnet.Tensor(x, requires_grad=True), convnet.Tensor(x, requires_grad=True)
    out = net(xf)
    assert isinstance(out._ctx, Conv2dReLUPoolFn)
    assert isinstance(net[:2](xf)._ctx, Conv2dReLUFn)
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    fused = [p.grad.copy() for p in net.parameters()]
    net.zero_grad()
    run_unfused(net, xu).backward(dout)
    for g, p in zip(fused, net.parameters()):
        np.testing.assert_allclose(g, p.grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xf.grad, xu.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2, stride=1), nn.MaxPool2d(2, padding=1),
                                  nn.MaxPool2d(2, ceil_mode=True), nn.MaxPool2d(3, stride=2),
                                  nn.MaxPool2d(2, dilation=2), nn.AvgPool2d(2)],
                         ids=["overlap", "padded", "ceil", "3s2", "dilated", "avg"])
def test_pool_not_fused_unless_plain_tiles(pool, rng, monkeypatch):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, rng=rng, dtype=np.float64), nn.ReLU(), pool)
    x = rng.standard_normal((2, 9, 9, 3))
    triples = counting(monkeypatch, "conv2d_relu_max_pool2d")
    got = net(x).data
    assert triples == []
    np.testing.assert_allclose(got, run_unfused(net, convnet.Tensor(x)).data, rtol=1e-12)


def test_pool_returning_indices_is_not_fused(rng, monkeypatch):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, rng=rng), nn.ReLU(),
                        nn.MaxPool2d(2, return_indices=True))
    triples = counting(monkeypatch, "conv2d_relu_max_pool2d")
    out, idx = net(rng.standard_normal((1, 8, 8, 3)).astype(np.float32))
    assert triples == [] and idx.shape == out.shape


def test_sequential_fuses_under_no_grad(rng, monkeypatch):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, rng=rng), nn.ReLU())
    seen = []
    real = F.conv2d_relu
    monkeypatch.setattr(F, "conv2d_relu", lambda *a, **k: seen.append(1) or real(*a, **k))
    with convnet.no_grad():
        out = net(convnet.Tensor(rng.standard_normal((1, 6, 6, 3)).astype(np.float32)))
    assert seen == [1]
    assert out.dtype == np.float32 and out.data.min() >= 0


def test_float64_input_is_cast_to_the_layer_dtype_when_fused(rng):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, rng=rng), nn.ReLU())   # float32 parameters
    with convnet.no_grad():
        out = net(rng.standard_normal((1, 6, 6, 3)))             # float64 NumPy input
    assert out.dtype == np.float32


@pytest.mark.parametrize("case", ["reflect", "subclass", "leaky", "patched"])
def test_not_fused_where_it_would_change_behaviour(case, rng, monkeypatch):
    class MyConv(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2.0

    conv = (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect", rng=rng) if case == "reflect"
            else MyConv(3, 4, 3, rng=rng) if case == "subclass"
            else nn.Conv2d(3, 4, 3, rng=rng))
    act = nn.LeakyReLU(0.1) if case == "leaky" else nn.ReLU()
    net = nn.Sequential(conv, act)
    x = rng.standard_normal((1, 7, 7, 3)).astype(np.float32)
    if case == "patched":   # capture_activation patches the conv: it must see pre-ReLU values
        pre = capture_activation(net, x, "0")
        assert pre.min() < 0
        np.testing.assert_allclose(pre, F.conv2d(x, conv.weight, conv.bias).data, rtol=1e-6)
        return
    calls = []
    real = F.conv2d_relu
    monkeypatch.setattr(F, "conv2d_relu", lambda *a, **k: calls.append(1) or real(*a, **k))
    with convnet.no_grad():
        out = net(x)
    assert calls == []
    np.testing.assert_allclose(out.data, run_unfused(net, convnet.Tensor(x)).data, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_relu_matches_torch(dtype, rng, torch):
    x = rng.standard_normal((2, 9, 8, 3)).astype(dtype)
    w = rng.standard_normal((3, 3, 3, 6)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    dout = rng.standard_normal((2, 5, 4, 6)).astype(dtype)
    xc, wc, bc = (convnet.Tensor(a, requires_grad=True) for a in (x, w, b))
    out = F.conv2d_relu(xc, wc, bc, stride=(2, 2), padding=((1, 1), (1, 0)), dilation=1)
    out.backward(dout)
    xt, wt = to_torch(x, "nhwc", True), to_torch(w, "hwio", True)
    bt = torch.tensor(b, requires_grad=True)
    yt = torch.relu(torch.nn.functional.conv2d(
        torch.nn.functional.pad(xt, (1, 0, 1, 1)), wt, bt, stride=2))
    yt.backward(to_torch(dout, "nhwc"))
    close_torch("conv2d_relu", out.data, from_torch(yt, "nhwc"), dtype)
    close_torch("conv2d_relu dx", xc.grad, from_torch(xt.grad, "nhwc"), dtype)
    close_torch("conv2d_relu dw", wc.grad, from_torch(wt.grad, "hwio"), dtype)
    close_torch("conv2d_relu db", bc.grad, bt.grad.numpy(), dtype)


def test_conv2d_relu_finite_differences(rng):
    x = rng.standard_normal((2, 7, 6, 3))
    w = rng.standard_normal((3, 3, 3, 4))
    b = rng.standard_normal(4)
    out = F.conv2d_relu(x, w, b, padding=1).data
    pre = F.conv2d(x, w, b, padding=1).data
    assert np.abs(pre).min() > 1e-4 and (out == 0).any()    # no output sits on the kink
    grad_check(lambda a, c, d: F.conv2d_relu(a, c, d, padding=1), [x, w, b])


def test_conv2d_relu_validates_like_conv2d(rng):
    with pytest.raises(ValueError, match="conv2d_relu: input has 3 channels"):
        F.conv2d_relu(rng.standard_normal((1, 5, 5, 3)), rng.standard_normal((3, 3, 4, 2)))
