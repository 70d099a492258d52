"""Conv2d and DepthwiseSeparableConv2d as layers: the same numbers and gradients as
torch.nn with the weights copied (random upstream gradients, awkward configs), torch's
default init, output_shape without data, rf_params, and the opt-in strict tiling mode
whose message names the layer and the sizes -- on every layer that has windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import from_torch, to_torch, tol

from convnet import Tensor, nn
from convnet.ops.shape import resolve_padding

DTYPES = [np.float32, np.float64]

# (in, out, kernel, stride, padding, dilation, groups, bias, input (H, W), batch)
CONV2D = [
    (3, 4, 3, 1, 0, 1, 1, True, (7, 6), 2),
    (2, 6, 5, 2, "same", 1, 1, True, (9, 8), 1),                 # 'same' at stride 2
    (4, 4, 3, 3, "same", 2, 4, False, (10, 7), 2),               # depthwise, dilated
    (6, 9, (3, 2), (2, 1), ((0, 2), (1, 0)), (1, 2), 3, True, (8, 9), 1),  # asymmetric
    (2, 4, 1, 1, 0, 1, 2, True, (1, 1), 3),                      # 1x1 on a 1x1 map
    (4, 8, 4, 2, (1, 2), 3, 2, True, (11, 13), 1),
    (3, 3, 2, 1, "valid", 1, 3, True, (2, 5), 2),
]


def torch_layer(torch, layer, dtype):
    """torch.nn.Conv2d holding a copy of our layer's weights (padding 0)."""
    tl = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                         layer.stride, 0, layer.dilation, layer.groups, layer.bias is not None)
    tl = tl.to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        tl.weight.copy_(to_torch(layer.weight.data, "hwio"))
        if layer.bias is not None:
            tl.bias.copy_(torch.from_numpy(layer.bias.data))
    return tl


def torch_conv(torch, layer, x, pads, dtype):
    """Our layer run in torch; asymmetric pads applied with F.pad first."""
    tl = torch_layer(torch, layer, dtype)
    (pt, pb), (pl, pr) = pads
    tx = to_torch(x, "nhwc", requires_grad=True)
    return tl, tx, tl(torch.nn.functional.pad(tx, (pl, pr, pt, pb)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONV2D, ids=str)
def test_conv2d_layer_matches_torch_nn(cfg, dtype, rng, torch):
    cin, cout, k, s, p, d, g, bias, hw, n = cfg
    layer = nn.Conv2d(cin, cout, k, s, p, d, g, bias, rng=rng, dtype=dtype)
    assert layer.weight.dtype == dtype
    x = rng.standard_normal((n, *hw, cin)).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    out = layer(xt)
    assert out.shape == (n, *layer.output_shape((*hw, cin))) and out.dtype == dtype
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    pads = resolve_padding(p, hw, layer.kernel_size, layer.stride, layer.dilation)
    tl, tx, tout = torch_conv(torch, layer, x, pads, dtype)
    tout.backward(to_torch(dout, "nhwc"))
    np.testing.assert_allclose(out.data, from_torch(tout, "nhwc"), **tol(dtype))
    np.testing.assert_allclose(xt.grad, from_torch(tx.grad, "nhwc"), **tol(dtype))
    np.testing.assert_allclose(layer.weight.grad, from_torch(tl.weight.grad, "hwio"),
                               **tol(dtype))
    if bias:
        np.testing.assert_allclose(layer.bias.grad, tl.bias.grad.numpy(), **tol(dtype))
    if p == "same":
        assert out.shape[1:3] == tuple(-(-h // ss) for h, ss in zip(hw, layer.stride))


def test_conv2d_init_is_torch_default_and_seeded():
    layer = nn.Conv2d(16, 32, 3, groups=2, rng=np.random.default_rng(0))
    bound = 1 / math.sqrt(3 * 3 * 8)                       # fan_in = KH*KW*C_in/groups
    for p in (layer.weight.data, layer.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.9 * bound
    assert layer.weight.shape == (3, 3, 8, 32) and layer.bias.shape == (32,)
    again = nn.Conv2d(16, 32, 3, groups=2, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(layer.weight.data, again.weight.data)
    assert nn.Conv2d(3, 4, 3, bias=False).bias is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cin,cout,k,s,p,mult,hw", [(3, 5, 3, 1, 1, 1, (6, 7)),
                                                   (4, 6, 3, 2, "same", 2, (9, 8)),
                                                   (2, 3, 5, 2, 0, 1, (5, 5))])
def test_depthwise_separable_matches_torch(cin, cout, k, s, p, mult, hw, dtype, rng, torch):
    """Seed 002: a depthwise conv (groups = C_in) then a 1x1 pointwise conv."""
    layer = nn.DepthwiseSeparableConv2d(cin, cout, k, s, p, depth_multiplier=mult, rng=rng,
                                        dtype=dtype)
    dw, pw = layer.depthwise, layer.pointwise
    assert dw.groups == cin and dw.weight.shape == (k, k, 1, cin * mult)
    assert pw.weight.shape == (1, 1, cin * mult, cout)
    assert layer.num_parameters() == k * k * cin * mult + cin * mult + cin * mult * cout + cout
    x = rng.standard_normal((2, *hw, cin)).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    out = layer(xt)
    assert out.shape == (2, *layer.output_shape((*hw, cin)))
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    pads = resolve_padding(p, hw, dw.kernel_size, dw.stride, dw.dilation)
    tdw, tx, mid = torch_conv(torch, dw, x, pads, dtype)
    tpw = torch_layer(torch, pw, dtype)
    tout = tpw(mid)
    tout.backward(to_torch(dout, "nhwc"))
    np.testing.assert_allclose(out.data, from_torch(tout, "nhwc"), **tol(dtype))
    np.testing.assert_allclose(xt.grad, from_torch(tx.grad, "nhwc"), **tol(dtype))
    np.testing.assert_allclose(dw.weight.grad, from_torch(tdw.weight.grad, "hwio"), **tol(dtype))
    np.testing.assert_allclose(pw.weight.grad, from_torch(tpw.weight.grad, "hwio"), **tol(dtype))


def test_conv_rf_params():
    assert nn.Conv2d(1, 1, 3).rf_params((8, 8, 1)) == ((3, 1, 0), (3, 1, 0))
    assert nn.Conv2d(1, 1, (5, 3), stride=2, padding="same", dilation=(1, 2)).rf_params(
        (9, 8, 1)) == ((5, 2, 2), (5, 2, 1))                   # 'same' pads W by (1, 2)
    assert nn.Conv2d(1, 1, 3, padding=((0, 2), (1, 0))).rf_params((5, 5, 1)) == \
        ((3, 1, 0), (3, 1, 1))


# ---- strict tiling: seed 002's "the strides are incorrect" ---------------------------------

STRICT = [  # (layer, a per-sample shape that does not tile, one that does)
    (lambda: nn.Conv2d(3, 4, 3, stride=2), (8, 8, 3), (9, 9, 3)),
    (lambda: nn.Conv2d(3, 4, 1, stride=2, padding="same"), (8, 7, 3), (9, 9, 3)),
    (lambda: nn.Conv1d(2, 2, 4, stride=3), (11, 2), (10, 2)),
    (lambda: nn.Conv3d(2, 2, 2, stride=2), (5, 4, 4, 2), (4, 4, 4, 2)),
    (lambda: nn.MaxPool2d(3, stride=2), (8, 8, 1), (9, 9, 1)),
    (lambda: nn.AvgPool2d(2), (7, 8, 1), (8, 8, 1)),
    (lambda: nn.MaxPool1d(3, 2), (8, 1), (9, 1)),
    (lambda: nn.AvgPool1d(3, 2), (8, 1), (9, 1)),
    (lambda: nn.MaxPool3d(2), (3, 4, 4, 1), (4, 4, 4, 1)),
    (lambda: nn.DepthwiseSeparableConv2d(2, 3, 3, stride=2), (8, 8, 2), (9, 9, 2)),
    (lambda: nn.MixedDilationConv2d(2, 2, 3, (1, 2), stride=2, padding=[1, 2]), (8, 9, 2),
     (9, 9, 2)),
    (lambda: nn.LocallyConnected2d(2, 2, 3, stride=2, input_size=(8, 8)), (8, 8, 2), None),
    (lambda: nn.LocallyConnected2d(2, 2, 3, stride=2, input_size=(9, 9)), None, (9, 9, 2)),
]


@pytest.mark.parametrize("make,bad,good", STRICT, ids=lambda v: str(v) if v is None or
                         isinstance(v, tuple) else "")
def test_strict_tiling_names_the_layer_and_the_sizes(make, bad, good, rng):
    layer = make()
    for shape in (bad, good):
        if shape is not None:                          # outside strict mode: both work
            assert len(layer.output_shape(shape)) >= 1
    with nn.strict_tiling():
        if bad is not None:
            name = type(layer).__name__ if not isinstance(layer, nn.DepthwiseSeparableConv2d) \
                else "Conv2d"
            with pytest.raises(ValueError, match=rf"^{name}\(.*\): the strides are incorrect "
                                                 r"on spatial axis \d: \(n \+ 2p - f\)/s = "
                                                 r"\(\d+ \+ \d+ - \d+\)/\d+ = [\d.]+ is not an "
                                                 r"integer"):
                layer.output_shape(bad)
            with pytest.raises(ValueError, match="the strides are incorrect"):
                layer(Tensor(rng.standard_normal((1, *bad)).astype(np.float32)))
        if good is not None:
            out = layer(Tensor(rng.standard_normal((1, *good)).astype(np.float32)))
            assert out.shape == (1, *layer.output_shape(good))
    assert not nn.is_strict_tiling()


def test_strict_tiling_is_restored_after_an_error():
    with pytest.raises(ValueError):
        with nn.strict_tiling():
            nn.Conv2d(1, 1, 3, stride=2).output_shape((8, 8, 1))
    assert not nn.is_strict_tiling()
    assert nn.Conv2d(1, 1, 3, stride=2).output_shape((8, 8, 1)) == (3, 3, 1)


@pytest.mark.parametrize("make,exc,match", [
    (lambda: nn.Conv2d(0, 4, 3), ValueError, r"Conv2d: in_channels must be an int >= 1, got 0"),
    (lambda: nn.Conv2d(3, 4, 0), ValueError, r"Conv2d: kernel_size must be positive, got"),
    (lambda: nn.Conv2d(3, 4, (3, 3, 3)), TypeError, r"kernel_size must be an int or a tuple "
                                                    r"of 2 ints"),
    (lambda: nn.Conv2d(3, 4, 3, padding="full"), ValueError, r"padding must be an int, a "
                                                             r"tuple, 'valid', 'same'"),
    (lambda: nn.Conv2d(3, 4, 3, groups=0), ValueError, r"groups must be an int >= 1, got 0"),
    (lambda: nn.DepthwiseSeparableConv2d(3, 4, 3, stride=0), ValueError,
     r"Conv2d: stride must be positive, got \(0, 0\)"),
])
def test_conv_layer_hyperparameter_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
