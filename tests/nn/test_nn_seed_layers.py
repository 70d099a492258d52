"""The seeds' other layers as nn modules: ConvTranspose2d, Conv1d/Conv3d (and Conv2d's
padding_mode), the 1-D/3-D pools, LocallyConnected2d, Upsample, Unpool2d and MaxUnpool2d
(MixedDilationConv2d: test_nn_mixed.py).  Each: forward and gradients against torch
(weights copied) or a naive reference, output_shape equal to the real shape, errors
naming expected and got."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import from_torch, grad_check, to_torch, tol

import convnet.functional as F
from convnet import Tensor, nn

DTYPES = [np.float32, np.float64]
MAX_ERR: dict = {}  # (layer, dtype) -> largest abs error vs torch


def close_torch(op, got, want, dtype):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{op}: shape {got.shape} != {want.shape}"
    key = (op, np.dtype(dtype).name)
    MAX_ERR[key] = max(MAX_ERR.get(key, 0.0), float(np.nanmax(np.abs(got - want))))
    np.testing.assert_allclose(got, want, **tol(dtype), err_msg=op)


def run(layer, x, rng, *extra):
    """Forward with a random upstream gradient; returns (out, dx, dout)."""
    xt = Tensor(x, requires_grad=True)
    out = layer(xt, *extra)
    dout = rng.standard_normal(out.shape).astype(x.dtype)
    out.backward(dout)
    return out, xt.grad, dout


def torch_run(tlayer, x, dout, torch, *extra):
    tx = to_torch(x, "nhwc", True)
    ref = tlayer(tx, *extra)
    ref.backward(to_torch(dout, "nhwc"))
    return from_torch(ref, "nhwc"), from_torch(tx.grad, "nhwc")


# ---- ConvTranspose2d -----------------------------------------------------------------

# (in, out, kernel, stride, padding, output_padding, groups, dilation, input (H, W))
CT = [
    (3, 4, 3, 2, 1, 1, 1, 1, (5, 4)),
    (4, 6, (2, 3), (3, 2), (1, 0), (2, 1), 2, 1, (3, 3)),
    (2, 2, 3, 1, 2, 0, 2, 2, (4, 5)),
    (3, 2, 4, 2, 1, 0, 1, 1, (1, 1)),
    (6, 3, 3, 2, 0, (1, 2), 3, (1, 3), (3, 4)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CT)
def test_conv_transpose2d_layer(cfg, dtype, rng, torch):
    cin, cout, k, s, p, op, g, d, hw = cfg
    layer = nn.ConvTranspose2d(cin, cout, k, s, p, op, g, True, d, rng=rng).to(dtype)
    x = rng.standard_normal((2, *hw, cin)).astype(dtype)
    out, dx, dout = run(layer, x, rng)
    assert layer.output_shape(x.shape[1:]) == out.shape[1:]
    tl = torch.nn.ConvTranspose2d(cin, cout, k, s, p, op, g, True, d).to(
        torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(layer.weight.data.transpose(3, 2, 0, 1).copy()))
        tl.bias.copy_(torch.from_numpy(layer.bias.data))
    ref, ref_dx = torch_run(tl, x, dout, torch)
    close_torch("ConvTranspose2d", out.data, ref, dtype)
    close_torch("ConvTranspose2d dx", dx, ref_dx, dtype)
    close_torch("ConvTranspose2d dw", layer.weight.grad,
                tl.weight.grad.numpy().transpose(2, 3, 1, 0), dtype)
    close_torch("ConvTranspose2d db", layer.bias.grad, tl.bias.grad.numpy(), dtype)


def test_conv_transpose2d_output_size_and_init(rng, torch):
    layer = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, rng=rng).to(np.float64)
    x = rng.standard_normal((1, 4, 5, 2))
    assert layer(x).shape == (1, 7, 9, 3)
    assert layer(x, output_size=(8, 10)).shape == (1, 8, 10, 3)   # torch's forward(x, size)
    tl = torch.nn.ConvTranspose2d(2, 3, 3, 2, 1).double()
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(layer.weight.data.transpose(3, 2, 0, 1).copy()))
        tl.bias.copy_(torch.from_numpy(layer.bias.data))
    ref = tl(to_torch(x, "nhwc"), output_size=[8, 10])
    np.testing.assert_allclose(layer(x, output_size=(8, 10)).data, from_torch(ref, "nhwc"),
                               **tol(np.float64))
    with pytest.raises(ValueError, match=r"output_size must be in \[7, 8\] on spatial axis 0 "
                                         r"for input \(4, 5\), got 9"):
        layer(x, output_size=(9, 9))
    # torch's default init: U(+-1/sqrt(fan_in)), fan_in = KH*KW*out_channels/groups
    big = nn.ConvTranspose2d(8, 6, 3, groups=2, rng=rng)
    bound = 1 / np.sqrt(3 * 3 * 3)
    assert np.abs(big.weight.data).max() <= bound and np.abs(big.weight.data).max() > 0.9 * bound
    assert big.weight.shape == (3, 3, 3, 8)
    assert layer.rf_params((4, 5, 2)) == ((2, 0.5, 0.5), (2, 0.5, 0.5))


def test_conv_transpose2d_errors():
    with pytest.raises(ValueError, match=r"output_padding must be >= 0 and smaller than "
                                         r"max\(stride, dilation\) = 2 on spatial axis 0, got 2"):
        nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="groups=3 must divide in_channels=4 and "
                                         "out_channels=6"):
        nn.ConvTranspose2d(4, 6, 3, groups=3)
    layer = nn.ConvTranspose2d(4, 6, 3)
    with pytest.raises(ValueError, match=r"input has 3 channels but weight \(3, 3, 6, 4\)"):
        layer.output_shape((5, 5, 3))
    with pytest.raises(ValueError, match=r"input shape must be \(H, W, C\), got \(5, 4\)"):
        layer.output_shape((5, 4))


# ---- Conv1d / Conv2d / Conv3d and padding_mode ----------------------------------------

TORCH_CONV = {1: "Conv1d", 2: "Conv2d", 3: "Conv3d"}
# (ndim, in, out, kernel, stride, padding, dilation, groups, spatial)
CONVS = [
    (1, 3, 4, 3, 1, 1, 1, 1, (9,)),
    (1, 4, 2, 3, 2, 2, 2, 2, (11,)),
    (1, 2, 3, 2, 1, "same", 3, 1, (8,)),
    (2, 3, 4, 3, 2, 1, 1, 1, (5, 6)),
    (2, 4, 4, (3, 2), (1, 3), (2, 1), (2, 1), 2, (6, 7)),
    (2, 2, 3, 3, 1, "same", 1, 1, (4, 5)),
    (3, 2, 3, 3, 1, 1, 1, 1, (4, 3, 5)),
    (3, 4, 2, (2, 3, 2), (2, 1, 2), (1, 1, 0), (1, 1, 2), 2, (4, 4, 5)),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("cfg", CONVS)
def test_conv_padding_modes_match_torch(cfg, mode, dtype, rng, torch):
    nd, cin, cout, k, s, p, d, g, sp = cfg
    layer = getattr(nn, TORCH_CONV[nd])(cin, cout, k, s, p, d, g, True, mode, rng=rng).to(dtype)
    x = rng.standard_normal((2, *sp, cin)).astype(dtype)
    out, dx, dout = run(layer, x, rng)
    assert layer.output_shape(x.shape[1:]) == out.shape[1:]
    tl = getattr(torch.nn, TORCH_CONV[nd])(cin, cout, k, s, p, d, g, True, mode).to(
        torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        tl.weight.copy_(to_torch(layer.weight.data, "hwio"))
        tl.bias.copy_(torch.from_numpy(layer.bias.data))
    ref, ref_dx = torch_run(tl, x, dout, torch)
    name = f"{TORCH_CONV[nd]} {mode}"
    close_torch(name, out.data, ref, dtype)
    close_torch(name + " dx", dx, ref_dx, dtype)
    close_torch(name + " dw", layer.weight.grad, from_torch(tl.weight.grad, "hwio"), dtype)
    close_torch(name + " db", layer.bias.grad, tl.bias.grad.numpy(), dtype)


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_conv_padding_mode_finite_differences(mode, rng):
    layer = nn.Conv2d(2, 3, 3, stride=2, padding=(2, 1), padding_mode=mode, rng=rng).to(np.float64)
    x = rng.standard_normal((1, 5, 4, 2))
    grad_check(lambda a, w: F.conv2d(F.pad(a, ((2, 2), (1, 1)), mode), w, None, 2),
               [x, layer.weight.data.copy()])
    w = layer.weight.data.copy()
    grad_check(lambda a: F.conv2d(F.pad(a, ((2, 2), (1, 1)), mode), w, None, 2), [x])
    np.testing.assert_allclose(layer(x).data, F.conv2d(F.pad(x, ((2, 2), (1, 1)), mode), w,
                                                       layer.bias.data, 2).data, rtol=1e-12)


def test_causal_conv1d_layer(rng):
    layer = nn.Conv1d(3, 5, 3, dilation=2, padding="causal", rng=rng)
    x = rng.standard_normal((2, 10, 3)).astype(np.float32)
    assert layer(x).shape == (2, 10, 5) == (2, *layer.output_shape((10, 3)))
    assert layer.rf_params((10, 3)) == ((5, 1, 4),)
    assert layer.weight.shape == (3, 3, 5)
    with pytest.raises(ValueError, match="padding='causal' needs 1-D input, got 2-D"):
        nn.Conv2d(3, 5, 3, padding="causal")


def test_conv_nd_errors():
    with pytest.raises(ValueError, match="padding_mode must be one of .* got 'mirror'"):
        nn.Conv1d(2, 2, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match=r"Conv1d: input shape must be \(L, C\), got \(5, 5, 2\)"):
        nn.Conv1d(2, 2, 3).output_shape((5, 5, 2))
    with pytest.raises(ValueError, match=r"Conv3d: input shape must be \(D, H, W, C\)"):
        nn.Conv3d(2, 2, 3).output_shape((5, 5, 2))
    with pytest.raises(ValueError, match=r"input has 3 channels but weight \(3, 3, 3, 2, 2\) "
                                         r"expects 2"):
        nn.Conv3d(2, 2, 3).output_shape((5, 5, 5, 3))
    with pytest.raises(ValueError, match=r"reflect padding must be smaller than the input size,"
                                         r" got padding \(3, 3\) for size 3"):
        nn.Conv1d(2, 2, 3, padding=3, padding_mode="reflect").output_shape((3, 2))
    with pytest.raises(TypeError, match=r"kernel_size must be an int or a tuple of 3 ints"):
        nn.Conv3d(2, 2, (3, 3))
    assert "padding_mode='circular'" in repr(nn.Conv3d(2, 2, 3, padding=1,
                                                        padding_mode="circular"))


# ---- 1-D and 3-D pools -------------------------------------------------------------------

POOLS = [
    (lambda: nn.MaxPool1d(3, 2, 1), lambda t: t.nn.MaxPool1d(3, 2, 1), (2, 10, 3)),
    (lambda: nn.MaxPool1d(2, 3, 1, 2, True), lambda t: t.nn.MaxPool1d(2, 3, 1, 2, ceil_mode=True),
     (1, 11, 2)),
    (lambda: nn.AvgPool1d(3, 2, 1, count_include_pad=False),
     lambda t: t.nn.AvgPool1d(3, 2, 1, count_include_pad=False), (2, 9, 3)),
    (lambda: nn.AvgPool1d(4, 3, 2, ceil_mode=True), lambda t: t.nn.AvgPool1d(4, 3, 2, True),
     (1, 10, 2)),
    (lambda: nn.GlobalAvgPool1d(), lambda t: (lambda x: x.mean(dim=2, keepdim=True)),
     (2, 7, 3)),
    (lambda: nn.GlobalMaxPool1d(), lambda t: (lambda x: x.amax(dim=2, keepdim=True)),
     (2, 7, 3)),
    (lambda: nn.MaxPool3d(2), lambda t: t.nn.MaxPool3d(2), (2, 4, 5, 4, 2)),
    (lambda: nn.MaxPool3d((3, 2, 3), (2, 1, 2), (1, 1, 0), (1, 2, 1), True),
     lambda t: t.nn.MaxPool3d((3, 2, 3), (2, 1, 2), (1, 1, 0), (1, 2, 1), ceil_mode=True),
     (1, 5, 6, 7, 2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make, make_torch, shape", POOLS)
def test_pool_layers(make, make_torch, shape, dtype, rng, torch):
    layer = make()
    x = rng.standard_normal(shape).astype(dtype)
    out, dx, dout = run(layer, x, rng)
    assert layer.output_shape(x.shape[1:]) == out.shape[1:]
    if out.ndim == 2:                                           # global pools: (N, C)
        dout_t = dout[:, None, :]
        ref, ref_dx = torch_run(make_torch(torch), x, dout_t, torch)
        ref = ref[:, 0]
    else:
        ref, ref_dx = torch_run(make_torch(torch), x, dout, torch)
    name = type(layer).__name__
    close_torch(name, out.data, ref, dtype)
    close_torch(name + " dx", dx, ref_dx, dtype)


def test_pool_layer_errors_and_rf():
    with pytest.raises(ValueError, match="padding must be between 0 and half the kernel size"):
        nn.MaxPool1d(2, padding=2)
    with pytest.raises(ValueError, match=r"MaxPool3d: input shape must be \(D, H, W, C\)"):
        nn.MaxPool3d(2).output_shape((4, 4, 2))
    with pytest.raises(ValueError, match="kernel of size 5 .* larger than the padded input of "
                                         "size 4"):
        nn.MaxPool1d(5).output_shape((4, 2))
    with pytest.raises(ValueError, match=r"GlobalAvgPool1d: input shape must be \(L, C\)"):
        nn.GlobalAvgPool1d().output_shape((4, 4, 2))
    assert nn.MaxPool1d(3, 2, 1, dilation=2).rf_params((10, 2)) == ((5, 2, 1),)
    assert nn.MaxPool3d(2).rf_params((4, 4, 4, 1)) == ((2, 2, 0),) * 3
    assert nn.GlobalMaxPool1d().rf_params((9, 2)) == ((9, 1, 0),)


# ---- LocallyConnected2d ------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [(3, 4, 3, 1, 0, (6, 5)), (2, 3, (2, 3), (2, 1), 1, (5, 7)),
                                 (1, 2, 3, 3, "same", (7, 4))])
def test_locally_connected_layer(cfg, rng):
    cin, cout, k, s, p, hw = cfg
    layer = nn.LocallyConnected2d(cin, cout, k, s, p, input_size=hw, rng=rng).to(np.float64)
    x = rng.standard_normal((2, *hw, cin))
    out, dx, dout = run(layer, x, rng)
    assert layer.output_shape(x.shape[1:]) == out.shape[1:]
    oh, ow, kh, kw = layer.weight.shape[:4]
    assert layer.bias.shape == (oh, ow, cout)
    # naive: every position is its own little dense layer over its window
    from convnet.ops.shape import resolve_padding
    pads = resolve_padding(p, hw, (kh, kw), layer.stride, (1, 1))
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    sh, sw = layer.stride
    for i in range(oh):
        for j in range(ow):
            win = xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(2, -1)
            want = win @ layer.weight.data[i, j].reshape(-1, cout) + layer.bias.data[i, j]
            np.testing.assert_allclose(out.data[:, i, j], want, rtol=1e-12)
    grad_check(lambda a, w, b: F.local2d(a, w, b, s, p),
               [x[:1].copy(), layer.weight.data.copy(), layer.bias.data.copy()])


def test_locally_connected_errors(rng):
    with pytest.raises(ValueError, match=r"input_size=\(H, W\) is required"):
        nn.LocallyConnected2d(2, 3, 3)
    layer = nn.LocallyConnected2d(2, 3, 3, input_size=(6, 6))
    with pytest.raises(ValueError, match=r"built for input size \(6, 6\), got \(5, 6\)"):
        layer(rng.standard_normal((1, 5, 6, 2)).astype(np.float32))
    with pytest.raises(ValueError, match="expected 2 input channels, got 4"):
        layer.output_shape((6, 6, 4))
    with pytest.raises(ValueError, match="kernel of size 7 .* larger than the padded input"):
        nn.LocallyConnected2d(2, 3, 7, input_size=(6, 6))
    assert layer.num_parameters() == 4 * 4 * (3 * 3 * 2 * 3 + 3)
    assert layer.rf_params((6, 6, 2)) == ((3, 1, 0), (3, 1, 0))


# ---- Upsample, Unpool2d, MaxUnpool2d -----------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(scale_factor=1.5, mode="bilinear"),
                                dict(size=(9, 4), mode="bilinear", align_corners=True),
                                dict(scale_factor=(0.6, 2.5))])
def test_upsample_layer(kw, dtype, rng, torch):
    layer = nn.Upsample(**kw)
    x = rng.standard_normal((2, 5, 3, 2)).astype(dtype)
    out, dx, dout = run(layer, x, rng)
    assert layer.output_shape(x.shape[1:]) == out.shape[1:]
    ref, ref_dx = torch_run(torch.nn.Upsample(**kw), x, dout, torch)
    close_torch(f"Upsample {kw.get('mode', 'nearest')}", out.data, ref, dtype)
    close_torch(f"Upsample {kw.get('mode', 'nearest')} dx", dx, ref_dx, dtype)


def test_upsample_then_conv_and_rf(rng):
    """The seeds' upscale-then-convolve: Upsample x2 then a 'same' conv doubles the size."""
    net = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"),
                        nn.Conv2d(3, 4, 3, padding="same", rng=rng))
    x = rng.standard_normal((1, 5, 6, 3)).astype(np.float32)
    assert net(x).shape == (1, 10, 12, 4) == (1, *net.output_shape((5, 6, 3)))
    assert nn.Upsample(scale_factor=2).rf_params((5, 6, 3)) == ((1, 0.5, 0), (1, 0.5, 0))
    assert nn.Upsample(scale_factor=2, mode="bilinear").rf_params((5, 6, 3)) == \
        ((2, 0.5, 0.75), (2, 0.5, 0.75))
    with pytest.raises(ValueError, match="give exactly one of size and scale_factor"):
        nn.Upsample()
    with pytest.raises(ValueError, match="align_corners only applies to the linear modes"):
        nn.Upsample(scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match=r"mode='bilinear' needs 4-D input, got 3-D"):
        nn.Upsample(scale_factor=2, mode="bilinear").output_shape((5, 3))


def test_unpool2d_layer_seed_example():
    layer = nn.Unpool2d(2)
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32).reshape(1, 2, 2, 1)
    out = layer(x)
    np.testing.assert_array_equal(out.data[0, :, :, 0], [[1, 1, 2, 2], [1, 1, 2, 2],
                                                         [3, 3, 4, 4], [3, 3, 4, 4]])
    assert layer.output_shape((2, 2, 1)) == out.shape[1:]
    assert nn.Unpool2d((2, 3)).output_shape((3, 4, 5)) == (6, 12, 5)
    with pytest.raises(ValueError, match=r"size must be positive, got \(0, 2\)"):
        nn.Unpool2d((0, 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, s, p, hw", [(2, None, 0, (6, 8)), (3, 2, 1, (7, 5)),
                                         ((2, 3), (2, 3), 0, (6, 9))])
def test_max_unpool2d_layer_after_max_pool2d(k, s, p, hw, dtype, rng, torch):
    pool = nn.MaxPool2d(k, s, p, return_indices=True)
    unpool = nn.MaxUnpool2d(k, s, p)
    x = rng.standard_normal((2, *hw, 3)).astype(dtype)
    pooled, idx = pool(x)
    out, dx, dout = run(unpool, pooled.data, rng, idx, hw)
    assert unpool.output_shape(pooled.shape[1:])[2] == 3
    tpool = torch.nn.MaxPool2d(k, s, p, return_indices=True)
    tp, tidx = tpool(to_torch(x, "nhwc"))
    np.testing.assert_array_equal(idx.data, from_torch(tidx, "nhwc"))
    ref, ref_dx = torch_run(torch.nn.MaxUnpool2d(k, s, p), pooled.data, dout, torch,
                            tidx, list(hw))
    close_torch("MaxUnpool2d", out.data, ref, dtype)
    close_torch("MaxUnpool2d dx", dx, ref_dx, dtype)


def test_max_unpool2d_layer_shape_and_rf():
    layer = nn.MaxUnpool2d(3, 2, 1)
    assert layer.output_shape((4, 4, 2)) == (7, 7, 2)
    assert layer.rf_params((4, 4, 2)) == ((2, 0.5, 0.5), (2, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"input shape must be \(H, W, C\), got \(4, 4\)"):
        layer.output_shape((4, 4))
