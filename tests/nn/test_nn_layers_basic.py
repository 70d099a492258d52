"""Pooling, Linear, Flatten, Identity and activation layers: shapes without data, the
same numbers as torch.nn, PyTorch's init, and errors for bad hyperparameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import from_torch, to_torch, tol

import convnet.nn as nn
from convnet import Tensor

DTYPES = [np.float32, np.float64]

SHAPE_CASES = [  # (layer, per-sample input shape)
    (nn.MaxPool2d(2), (8, 8, 3)),
    (nn.MaxPool2d(2), (7, 9, 3)),
    (nn.MaxPool2d(3, stride=2, ceil_mode=True), (8, 10, 2)),
    (nn.MaxPool2d((3, 2), stride=(1, 2), padding=(1, 1), dilation=(2, 1)), (6, 5, 2)),
    (nn.MaxPool2d(3, 2, padding="same"), (7, 4, 1)),
    (nn.MaxPool2d(3, 2, padding=((0, 1), (1, 0))), (7, 4, 1)),
    (nn.MaxPool2d(1), (1, 1, 4)),
    (nn.AvgPool2d(2), (9, 6, 3)),
    (nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), (5, 5, 2)),
    (nn.AvgPool2d(4, stride=3, padding=2, ceil_mode=True), (11, 6, 2)),
    (nn.GlobalAvgPool2d(), (5, 3, 7)),
    (nn.GlobalMaxPool2d(), (1, 1, 2)),
    (nn.Flatten(), (5, 5, 16)),
    (nn.Flatten(2), (4, 3, 2)),
    (nn.Flatten(1, 2), (4, 3, 2)),
    (nn.Linear(6, 4), (6,)),
    (nn.Linear(6, 4, bias=False), (3, 2, 6)),
    (nn.Identity(54, unused=True), (3, 3, 6)),
    (nn.ReLU(), (4, 4, 2)), (nn.LeakyReLU(0.1), (3,)), (nn.ELU(), (2, 3)),
    (nn.Sigmoid(), (5,)), (nn.Tanh(), (2, 2, 2)), (nn.GELU(), (7,)),
    (nn.GELU("tanh"), (7,)), (nn.Softmax(), (10,)), (nn.LogSoftmax(axis=1), (4, 3)),
    (nn.Sequential(nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(48, 5), nn.Softmax()),
     (8, 6, 4)),
]


@pytest.mark.parametrize("layer,shape", SHAPE_CASES, ids=lambda v: type(v).__name__
                         if isinstance(v, nn.Module) else str(v))
def test_output_shape_equals_forward_shape(layer, shape, rng):
    for batch in (1, 3):
        x = Tensor(rng.standard_normal((batch, *shape)).astype(np.float32))
        assert (batch, *layer.output_shape(shape)) == layer(x).shape


# ---- the same numbers as torch.nn ---------------------------------------------------

def _copy_linear(ours, torch, bias):
    t = torch.nn.Linear(ours.in_features, ours.out_features, bias=bias).double()
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(ours.weight.data.T.astype(np.float64)))
        if bias:
            t.bias.copy_(torch.from_numpy(ours.bias.data.astype(np.float64)))
    return t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape", [(4, 7), (2, 3, 7)])
def test_linear_layer_vs_torch(x_shape, bias, dtype, rng, torch):
    layer = nn.Linear(7, 5, bias=bias, rng=rng, dtype=dtype)
    assert layer.weight.dtype == dtype
    t = _copy_linear(layer, torch, bias)
    if dtype == np.float32:
        t = t.float()
    x = rng.standard_normal(x_shape).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    out = layer(xt)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    tout = t(tx)
    tout.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out.data, tout.detach().numpy(), **tol(dtype))
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), **tol(dtype))
    np.testing.assert_allclose(layer.weight.grad, t.weight.grad.numpy().T, **tol(dtype))
    if bias:
        np.testing.assert_allclose(layer.bias.grad, t.bias.grad.numpy(), **tol(dtype))
    else:
        assert layer.bias is None and list(layer.state_dict()) == ["weight"]


def test_linear_init_is_torch_default_and_reproducible():
    a = nn.Linear(300, 200, rng=np.random.default_rng(3))
    b = nn.Linear(300, 200, rng=np.random.default_rng(3))
    c = nn.Linear(300, 200, rng=np.random.default_rng(4))
    bound = 1 / math.sqrt(300)          # kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in))
    for p in (a.weight.data, a.bias.data):
        assert p.dtype == np.float32 and np.abs(p).max() <= bound
        assert np.abs(p).max() > 0.95 * bound                     # really spans the range
    assert abs(a.weight.data.std() - bound / math.sqrt(3)) < 0.02 * bound
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    assert a.weight.shape == (300, 200) and a.num_parameters() == 300 * 200 + 200
    assert repr(a) == "Linear(in_features=300, out_features=200, bias=True)"


POOL_PAIRS = [  # (ours, torch constructor kwargs, torch class name)
    (dict(kernel_size=2), "MaxPool2d"),
    (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), "MaxPool2d"),
    (dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1)), "MaxPool2d"),
    (dict(kernel_size=3, stride=2, padding=1, return_indices=True), "MaxPool2d"),
    (dict(kernel_size=2), "AvgPool2d"),
    (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), "AvgPool2d"),
    (dict(kernel_size=3, stride=1, padding=1, count_include_pad=False), "AvgPool2d"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs,name", POOL_PAIRS, ids=lambda v: str(v))
def test_pool_layers_vs_torch_nn(kwargs, name, dtype, rng, torch):
    ours, theirs = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    x = rng.integers(-2, 3, (2, 9, 8, 3)).astype(dtype)       # integer values: ties
    xt = Tensor(x, requires_grad=True)
    tx = to_torch(x, "nhwc", requires_grad=True)
    out, tout = ours(xt), theirs(tx)
    if kwargs.get("return_indices"):
        (out, idx), (tout, tidx) = out, tout
        np.testing.assert_array_equal(idx.data, from_torch(tidx, "nhwc"))
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    tout.backward(to_torch(dout, "nhwc"))
    np.testing.assert_allclose(out.data, from_torch(tout, "nhwc"), **tol(dtype))
    np.testing.assert_allclose(xt.grad, from_torch(tx.grad, "nhwc"), **tol(dtype))


@pytest.mark.parametrize("ours,theirs", [("GlobalAvgPool2d", "AdaptiveAvgPool2d"),
                                         ("GlobalMaxPool2d", "AdaptiveMaxPool2d")])
def test_global_pool_layers_vs_torch_nn(ours, theirs, rng, torch):
    x = rng.standard_normal((3, 5, 4, 6))
    xt = Tensor(x, requires_grad=True)
    tx = to_torch(x, "nhwc", requires_grad=True)
    out, tout = getattr(nn, ours)()(xt), getattr(torch.nn, theirs)(1)(tx).flatten(1)
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    tout.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(xt.grad, from_torch(tx.grad, "nhwc"), rtol=1e-12)


ACTIVATION_PAIRS = {  # id -> (ours, torch.nn equivalent given the torch module)
    "ReLU": (lambda: nn.ReLU(), lambda t: t.nn.ReLU()),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.2), lambda t: t.nn.LeakyReLU(0.2)),
    "ELU": (lambda: nn.ELU(alpha=0.5), lambda t: t.nn.ELU(alpha=0.5)),
    "Sigmoid": (lambda: nn.Sigmoid(), lambda t: t.nn.Sigmoid()),
    "Tanh": (lambda: nn.Tanh(), lambda t: t.nn.Tanh()),
    "GELU": (lambda: nn.GELU(), lambda t: t.nn.GELU()),
    "GELU-tanh": (lambda: nn.GELU("tanh"), lambda t: t.nn.GELU(approximate="tanh")),
    "Softmax": (lambda: nn.Softmax(), lambda t: t.nn.Softmax(dim=-1)),
    "LogSoftmax": (lambda: nn.LogSoftmax(axis=0), lambda t: t.nn.LogSoftmax(dim=0)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ACTIVATION_PAIRS))
def test_activation_layers_vs_torch_nn(name, dtype, rng, torch):
    make_ours, make_theirs = ACTIVATION_PAIRS[name]
    ours, theirs = make_ours(), make_theirs(torch)
    x = (rng.standard_normal((3, 4, 5)) * 2).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    out, tout = ours(xt), theirs(tx)
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    tout.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out.data, tout.detach().numpy(), **tol(dtype))
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), **tol(dtype))


def test_identity_returns_its_input(rng):
    x = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    assert nn.Identity(7, key="ignored")(x) is x


# ---- receptive field, strict tiling, errors ------------------------------------------

def test_pool_rf_params():
    assert nn.MaxPool2d(2).rf_params((8, 8, 3)) == ((2, 2, 0), (2, 2, 0))
    assert nn.MaxPool2d(3, 2, padding=1, dilation=(2, 1)).rf_params((9, 9, 1)) == \
        ((5, 2, 1), (3, 2, 1))
    assert nn.AvgPool2d(3, 2, padding="same").rf_params((8, 7, 1)) == ((3, 2, 0), (3, 2, 1))
    assert nn.GlobalAvgPool2d().rf_params((7, 5, 3)) == ((7, 7, 0), (5, 5, 0))


def test_strict_tiling_names_the_layer_and_sizes(rng):
    layer = nn.MaxPool2d(3, stride=2)
    assert layer.output_shape((8, 8, 1)) == (3, 3, 1)
    with nn.strict_tiling():
        with pytest.raises(ValueError, match=r"MaxPool2d\(kernel_size=\(3, 3\), stride=\(2, 2\)"
                                             r"\).*strides are incorrect.*\(8 \+ 0 - 3\)/2"):
            layer.output_shape((8, 8, 1))
        with pytest.raises(ValueError, match="strides are incorrect"):
            layer(Tensor(rng.standard_normal((1, 8, 8, 1))))
        assert layer.output_shape((9, 9, 1)) == (4, 4, 1)


@pytest.mark.parametrize("make,exc,match", [
    (lambda: nn.MaxPool2d(2, stride=0), ValueError, r"MaxPool2d: stride must be positive"),
    (lambda: nn.AvgPool2d(0), ValueError, "AvgPool2d: kernel_size must be positive"),
    (lambda: nn.MaxPool2d(3, padding=-1), ValueError, "non-negative"),
    (lambda: nn.MaxPool2d(3, padding=2), ValueError, r"at most half.*<= 1, got \(2, 2\)"),
    (lambda: nn.MaxPool2d(2, dilation=0), ValueError, "dilation must be positive"),
    (lambda: nn.MaxPool2d(2, ceil_mode=1), TypeError, "ceil_mode must be True or False"),
    (lambda: nn.AvgPool2d(2, count_include_pad="no"), TypeError, "count_include_pad"),
    (lambda: nn.Linear(0, 3), ValueError, "in_features must be an int >= 1, got 0"),
    (lambda: nn.Linear(3, 2.0), ValueError, "out_features must be an int >= 1, got 2.0"),
    (lambda: nn.GELU("exact"), ValueError, "approximate must be 'none' or 'tanh'"),
    (lambda: nn.Softmax(axis=None), TypeError, "axis must be an int"),
    (lambda: nn.LeakyReLU("x"), TypeError, "negative_slope must be a real number"),
    (lambda: nn.Flatten(start_dim=0), ValueError, "batch axis"),
])
def test_bad_hyperparameters_raise_at_construction(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("layer,shape,exc,match", [
    (nn.MaxPool2d(2), (8, 8), ValueError, r"input shape must be \(H, W, C\), got \(8, 8\)"),
    (nn.MaxPool2d(5), (4, 8, 1), ValueError, "larger than the padded input of size 4"),
    (nn.AvgPool2d(4, padding=1), (1, 8, 2), ValueError, "larger than the padded input of size 3"),
    (nn.GlobalMaxPool2d(), (4, 4), ValueError, r"\(H, W, C\)"),
    (nn.Linear(6, 2), (5,), ValueError, r"must end in 6 features, got \(5,\)"),
    (nn.Flatten(3), (4, 4), ValueError, r"does not fit a per-sample shape \(4, 4\)"),
])
def test_output_shape_errors(layer, shape, exc, match):
    with pytest.raises(exc, match=match):
        layer.output_shape(shape)


def test_forward_errors_name_expected_and_got(rng):
    with pytest.raises(ValueError, match=r"input has 5 features .* expects 6"):
        nn.Linear(6, 2)(Tensor(rng.standard_normal((3, 5))))
    with pytest.raises(ValueError, match=r"max_pool2d: input must be 4-D \(N, H, W, C\), got "
                                         r"3-D with shape \(8, 8, 1\)"):
        nn.MaxPool2d(2)(Tensor(rng.standard_normal((8, 8, 1))))
    with pytest.raises(TypeError, match="avg_pool2d: input must be a float array"):
        nn.AvgPool2d(2)(Tensor(np.ones((1, 4, 4, 1), np.int64)))


def test_layers_record_init_args_and_have_no_parameters():
    pool = nn.MaxPool2d(3, stride=2, padding=1)
    assert pool._init_args == ((3,), {"stride": 2, "padding": 1})
    assert nn.Softmax(axis=1)._init_args == ((), {"axis": 1})
    for layer in (pool, nn.AvgPool2d(2), nn.GlobalAvgPool2d(), nn.Flatten(), nn.ReLU(),
                  nn.GELU(), nn.Softmax(), nn.Identity()):
        assert layer.num_parameters() == 0 and layer.state_dict() == {}
    assert repr(pool) == "MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=1)"
