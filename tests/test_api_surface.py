"""The public names and signatures that issues 2 and 5 promise (users and tests rely on
them), checked with ``inspect.signature``: the leading parameters, in order, with their
defaults.  Extra trailing keyword parameters (PyTorch's) are allowed."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import convnet
import convnet.functional as F
from convnet import Tensor, nn

_ = inspect.Parameter.empty
FUNCTIONAL = {  # name -> leading (parameter, default) pairs; _ means required
    "conv2d": [("x", _), ("weight", _), ("bias", None), ("stride", 1), ("padding", 0),
               ("dilation", 1), ("groups", 1)],
    "conv1d": [("x", _), ("weight", _), ("bias", None), ("stride", 1), ("padding", 0),
               ("dilation", 1), ("groups", 1)],
    "conv3d": [("x", _), ("weight", _), ("bias", None), ("stride", 1), ("padding", 0),
               ("dilation", 1), ("groups", 1)],
    "conv_transpose2d": [("x", _), ("weight", _), ("bias", None), ("stride", 1),
                         ("padding", 0), ("output_padding", 0), ("dilation", 1), ("groups", 1)],
    # torch's order after padding: dilation, ceil_mode, return_indices
    "max_pool2d": [("x", _), ("kernel_size", _), ("stride", None), ("padding", 0),
                   ("dilation", 1), ("ceil_mode", False), ("return_indices", False)],
    "avg_pool2d": [("x", _), ("kernel_size", _), ("stride", None), ("padding", 0),
                   ("count_include_pad", True)],
    "global_avg_pool2d": [("x", _)], "global_max_pool2d": [("x", _)],
    "linear": [("x", _), ("weight", _), ("bias", None)],
    "flatten": [("x", _)],
    "relu": [("x", _)], "leaky_relu": [("x", _)], "elu": [("x", _)], "sigmoid": [("x", _)],
    "tanh": [("x", _)], "gelu": [("x", _)],
    "softmax": [("x", _), ("axis", -1)], "log_softmax": [("x", _), ("axis", -1)],
    "dropout": [("x", _), ("p", 0.5), ("training", True), ("rng", None)],
    "batch_norm": [("x", _), ("running_mean", _), ("running_var", _), ("weight", None),
                   ("bias", None), ("training", False), ("momentum", 0.1), ("eps", 1e-5)],
    "cross_entropy": [("input", _), ("target", _)],
    "nll_loss": [("input", _), ("target", _)],
    "multi_margin_loss": [("input", _), ("target", _)],
    "mse_loss": [("input", _), ("target", _)],
    "binary_cross_entropy_with_logits": [("input", _), ("target", _)],
    "interpolate": [("x", _), ("size", None), ("scale_factor", None), ("mode", "nearest"),
                    ("align_corners", False)],
}
KEYWORDS = {  # name -> keyword parameters with their defaults, anywhere in the signature
    "cross_entropy": {"label_smoothing": 0.0, "reduction": "mean"},
    "nll_loss": {"reduction": "mean"},
    "multi_margin_loss": {"margin": 1.0, "reduction": "mean"},
    "mse_loss": {"reduction": "mean"},
    "binary_cross_entropy_with_logits": {"reduction": "mean"},
}
LAYERS = {
    "Conv2d": [("in_channels", _), ("out_channels", _), ("kernel_size", _), ("stride", 1),
               ("padding", 0), ("dilation", 1), ("groups", 1), ("bias", True)],
    "Linear": [("in_features", _), ("out_features", _), ("bias", True)],
    "ConvTranspose2d": [("in_channels", _), ("out_channels", _), ("kernel_size", _)],
    "LocallyConnected2d": [("in_channels", _), ("out_channels", _), ("kernel_size", _),
                           ("stride", 1), ("padding", 0), ("input_size", None)],
    "MixedDilationConv2d": [("in_channels", _), ("out_channels_per_rate", _),
                            ("kernel_size", _), ("rates", (1, 2, 3))],
    "Upsample": [("size", None), ("scale_factor", None), ("mode", "nearest"),
                 ("align_corners", False)],
    "Unpool2d": [("size", 2)],
    "Dropout": [("p", 0.5)],
}
NN_NAMES = ["Module", "Parameter", "Sequential", "Conv2d", "DepthwiseSeparableConv2d",
            "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "GlobalMaxPool2d", "Flatten",
            "Linear", "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "GELU", "Softmax",
            "Dropout", "BatchNorm1d", "BatchNorm2d", "ConvTranspose2d", "MaxUnpool2d",
            "Unpool2d", "Upsample", "LocallyConnected2d", "Conv1d", "MaxPool1d", "AvgPool1d",
            "GlobalAvgPool1d", "Conv3d", "MaxPool3d", "MixedDilationConv2d"]


def _leading(fn, skip_self=False):
    params = list(inspect.signature(fn).parameters.values())
    return [(p.name, p.default) for p in params[1 if skip_self else 0:]]


@pytest.mark.parametrize("name", list(FUNCTIONAL))
def test_functional_signatures(name):
    got = _leading(getattr(F, name))
    assert got[:len(FUNCTIONAL[name])] == FUNCTIONAL[name]
    sig = inspect.signature(getattr(F, name)).parameters
    for kw, default in KEYWORDS.get(name, {}).items():
        assert sig[kw].default == default, kw


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_signatures(name):
    got = _leading(getattr(nn, name).__init__, skip_self=True)
    assert got[:len(LAYERS[name])] == LAYERS[name]


def test_every_named_layer_and_tool_exists():
    missing = [n for n in NN_NAMES if not hasattr(nn, n)]
    assert not missing
    for name in ("Tensor", "concatenate", "no_grad", "stack", "manual_seed"):
        assert hasattr(convnet, name), name
    for name in ("kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal",
                 "glorot_uniform", "glorot_normal"):
        assert callable(getattr(nn.init, name)), name
    assert nn.Conv1d(2, 2, 3, padding="causal").padding == "causal"
    for cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        assert inspect.signature(cls.__init__).parameters["padding_mode"].default == "zeros"
    assert inspect.signature(nn.Module.load_state_dict).parameters["strict"].default is True


def test_tensor_api():
    t = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert t.shape == (2, 3) and t.dtype == np.float64 and t.grad is None
    assert t.numpy() is t.data
    assert inspect.signature(Tensor.backward).parameters["grad"].default is None
    assert inspect.signature(Tensor.__init__).parameters["requires_grad"].default is False
    out = convnet.concatenate([t, t * 2], axis=0)
    (-(out @ Tensor(np.ones((3, 1))))).mean().backward()
    np.testing.assert_array_equal(t.grad, np.full((2, 3), -3 / 4))


def test_max_pool2d_positional_order_is_torchs(rng, torch):
    """Regression: the 6th positional argument is ceil_mode, as in torch (it was
    return_indices, so a ported ``max_pool2d(x, 3, 2, 1, 1, True)`` returned a tuple)."""
    x = rng.standard_normal((1, 6, 6, 2))
    out = F.max_pool2d(Tensor(x), 3, 2, 1, 1, True)
    tout = torch.nn.functional.max_pool2d(torch.from_numpy(np.moveaxis(x, -1, 1).copy()),
                                          3, 2, 1, 1, True)
    assert isinstance(out, Tensor) and out.shape[1:3] == tuple(tout.shape[2:]) == (4, 4)
    np.testing.assert_array_equal(out.data, np.moveaxis(tout.numpy(), 1, -1))
    pooled, idx = F.max_pool2d(Tensor(x), 3, 2, 1, 1, False, True)
    assert pooled.shape == (1, 3, 3, 2) and idx.dtype == np.int64
    layer = nn.MaxPool2d(3, 2, 1, 1, True, True)             # nn: return_indices, ceil_mode
    out, idx = layer(Tensor(x))
    assert out.shape == (1, 4, 4, 2) == idx.shape
