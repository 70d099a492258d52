"""Numerics: logits of +-1e4 give finite values and gradients (matching torch) in softmax,
log_softmax and every classification loss, in float32 and float64, with NumPy's
overflow / invalid / divide-by-zero warnings turned into errors; and a model keeps its
dtype end to end -- a float64 network computes in float64 (what the gradient checks
need), a float32 one in float32 -- through forward, loss, backward and an SGD step."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tol

import convnet.functional as F
from convnet import Tensor, nn

DTYPES = [np.float32, np.float64]
LOGITS = [[1e4, -1e4, 0.0, 3.0], [-1e4, -1e4, -1e4, -1e4 + 1], [1e4, 1e4, 1e4, 1e4],
          [-1e4, 1e4, -1e4, 1e4]]
LABELS = np.array([1, 3, 0, 2])


def cases(torch, dt):
    tf = torch.nn.functional
    w = np.array([0.5, 1.0, 2.0, 1.5], dt)
    q = np.array([[0.1, 0.2, 0.3, 0.4]] * 4, dt)
    y = torch.from_numpy(LABELS)
    tw, tq = torch.from_numpy(w), torch.from_numpy(q)
    return {  # name -> (ours, torch's), both on (N, C) logits
        "softmax": (lambda z: F.softmax(z), lambda t: torch.softmax(t, -1)),
        "log_softmax": (lambda z: F.log_softmax(z), lambda t: torch.log_softmax(t, -1)),
        "cross_entropy": (lambda z: F.cross_entropy(z, LABELS, reduction="none"),
                          lambda t: tf.cross_entropy(t, y, reduction="none")),
        "cross_entropy weighted smoothed": (
            lambda z: F.cross_entropy(z, LABELS, weight=w, label_smoothing=0.2),
            lambda t: tf.cross_entropy(t, y, weight=tw, label_smoothing=0.2)),
        "cross_entropy probabilities": (
            lambda z: F.cross_entropy(z, q, reduction="sum", label_smoothing=0.1),
            lambda t: tf.cross_entropy(t, tq, reduction="sum", label_smoothing=0.1)),
        "nll_loss of log_softmax": (
            lambda z: F.nll_loss(F.log_softmax(z), LABELS, weight=w, reduction="none"),
            lambda t: tf.nll_loss(torch.log_softmax(t, -1), y, weight=tw, reduction="none")),
        "multi_margin_loss": (lambda z: F.multi_margin_loss(z, LABELS, reduction="none"),
                              lambda t: tf.multi_margin_loss(t, y, reduction="none")),
        "multi_margin_loss p=2": (lambda z: F.multi_margin_loss(z, LABELS, p=2),
                                  lambda t: tf.multi_margin_loss(t, y, p=2)),
        "bce_with_logits": (
            lambda z: F.binary_cross_entropy_with_logits(z, q, pos_weight=w, reduction="none"),
            lambda t: tf.binary_cross_entropy_with_logits(t, tq, pos_weight=tw,
                                                          reduction="none")),
        "sigmoid": (lambda z: F.sigmoid(z), torch.sigmoid),
        "gelu": (lambda z: F.gelu(z), tf.gelu),
        "elu": (lambda z: F.elu(z), tf.elu),
    }


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_logits_are_finite_and_match_torch(dtype, rng, torch):
    z0 = np.array(LOGITS, dtype)
    for name, (ours, theirs) in cases(torch, dtype).items():
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            zt = Tensor(z0.copy(), requires_grad=True)
            out = ours(zt)
            dout = rng.standard_normal(out.shape).astype(dtype)
            out.backward(dout)
        assert out.dtype == dtype and zt.grad.dtype == dtype, name
        assert np.isfinite(out.data).all() and np.isfinite(zt.grad).all(), name
        tz = torch.from_numpy(z0.copy()).requires_grad_(True)
        tout = theirs(tz)
        tout.backward(torch.from_numpy(dout))
        np.testing.assert_allclose(out.data, tout.detach().numpy(), **tol(dtype), err_msg=name)
        np.testing.assert_allclose(zt.grad, tz.grad.numpy(), **tol(dtype), err_msg=name)


def _net(rng):
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding="same", rng=rng), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(2), nn.DepthwiseSeparableConv2d(4, 6, 3, padding=1, rng=rng), nn.GELU(),
        nn.ConvTranspose2d(6, 4, 2, stride=2, rng=rng), nn.GroupNorm(2, 4),
        nn.Upsample(scale_factor=0.5, mode="bilinear"), nn.AvgPool2d(2), nn.Dropout(0.2, rng=0),
        nn.Flatten(), nn.Linear(2 * 2 * 4, 5, rng=rng), nn.LogSoftmax())


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_model_keeps_its_dtype_through_a_training_step(dtype, rng):
    net = _net(rng).to(dtype)
    x = Tensor(rng.standard_normal((3, 8, 8, 2)).astype(dtype), requires_grad=True)
    y = rng.integers(0, 5, 3)
    h = x
    for layer in net:                                     # every activation in between
        h = layer(h)
        assert h.dtype == dtype, f"{type(layer).__name__} gave {h.dtype}"
    loss = F.nll_loss(h, y)
    assert loss.dtype == dtype
    loss.backward()
    assert x.grad.dtype == dtype
    for name, p in net.named_parameters():
        assert p.grad.dtype == dtype, name
        p.data -= 0.1 * p.grad
        assert p.data.dtype == dtype, name
    for name, b in net.named_buffers():
        assert b.dtype.kind != "f" or b.dtype == dtype, name
    net.eval()
    assert net(x).dtype == dtype


def test_float64_model_is_accurate_to_float64(rng):
    """A float64 network's output matches an independent float64 evaluation to ~1e-12:
    nothing in it rounds through float32."""
    net = nn.Sequential(nn.Conv2d(1, 2, 3, rng=rng), nn.Tanh(), nn.Flatten(),
                        nn.Linear(2 * 3 * 3, 1, rng=rng)).to(np.float64)
    x = rng.standard_normal((2, 5, 5, 1))
    w, b = net[0].weight.data, net[0].bias.data
    conv = np.zeros((2, 3, 3, 2))
    for i in range(3):
        for j in range(3):
            conv[:, i, j] = np.einsum("nabc,abcf->nf", x[:, i:i + 3, j:j + 3], w) + b
    want = np.tanh(conv).reshape(2, -1) @ net[3].weight.data + net[3].bias.data
    np.testing.assert_allclose(net(x).data, want, rtol=1e-12, atol=1e-14)
