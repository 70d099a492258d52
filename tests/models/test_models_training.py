"""Five plain SGD steps on a fixed small batch lower the loss of zoo models, including
graph models (ResNet blocks, U-Net, TCN) whose gradients flow through adds and concats."""

from __future__ import annotations

import numpy as np
import pytest

import convnet.functional as F
from convnet import Tensor
from convnet.models import get_model
from convnet.optim import SGD

CASES = {
    # name: (builder kwargs, per-sample input, learning rate)
    "lenet5": (dict(), (32, 32, 1), 0.1),
    "cifar_small": (dict(), (16, 16, 3), 0.05),
    "cifar_resnet20": (dict(), (12, 12, 3), 0.05),
    "digits_cnn": (dict(), (8, 8, 1), 0.05),
    "unet": (dict(base_channels=4, depth=2), (44, 44, 1), 0.2),
    "tcn": (dict(channels=(8, 8)), (24, 2), 0.1),
}


def loss_of(model, x, y, name):
    out = model(Tensor(x))
    if name == "unet":  # per-pixel classes (N, OH, OW, 2) against the centre of a label map
        top, left = (y.shape[1] - out.shape[1]) // 2, (y.shape[2] - out.shape[2]) // 2
        return F.cross_entropy(out, y[:, top:top + out.shape[1], left:left + out.shape[2]])
    return F.cross_entropy(out, y)  # tcn: (N, L, 10) against a class per time step


@pytest.mark.parametrize("name", sorted(CASES))
def test_five_sgd_steps_lower_the_loss(rng, name):
    kwargs, shape, lr = CASES[name]
    model = get_model(name, in_channels=shape[-1], rng=0, **kwargs)
    n = 8
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    if name == "unet":  # segment the positive pixels
        y = (x[..., 0] > 0).astype(np.int64)
    elif name == "tcn":
        y = rng.integers(0, 10, (n, shape[0]))
    else:
        y = rng.integers(0, kwargs.get("num_classes", 10), n)
    opt = SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for _ in range(6):  # losses[0] is before any step, losses[5] after five
        loss = loss_of(model, x, y, name)
        losses.append(float(loss.item()))
        if len(losses) == 6:
            break
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        opt.step()
    assert np.isfinite(losses).all()
    assert losses[5] < losses[0] - 0.02, losses


def test_inline_sgd_update(rng):
    """The update written out, p.data -= lr * p.grad, on LeNet-5."""
    model = get_model("lenet5", rng=1)
    x = rng.standard_normal((6, 32, 32, 1)).astype(np.float32)
    y = rng.integers(0, 10, 6)
    first = None
    for _ in range(5):
        loss = F.cross_entropy(model(Tensor(x)), y)
        first = float(loss.item()) if first is None else first
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= 0.2 * p.grad
    assert float(F.cross_entropy(model(Tensor(x)), y).item()) < first - 0.02
