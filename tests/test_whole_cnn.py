"""A whole small CNN -- conv -> relu -> pool -> conv -> relu -> pool -> linear ->
cross-entropy -- checked end to end: float64 central differences with respect to the
input and every parameter, and the same network rebuilt in torch."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import numerical_grad, to_torch

import convnet.functional as F
from convnet import Tensor, nn

N, H, W, C, CLASSES = 3, 8, 8, 2, 5


def small_cnn(rng, batch_norm=False):
    layers = [nn.Conv2d(C, 4, 3, padding=1, rng=rng)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.MaxPool2d(2),
               nn.Conv2d(4, 6, 3, stride=1, padding="same", rng=rng), nn.ReLU(),
               nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 2 * 6, CLASSES, rng=rng)]
    net = nn.Sequential(*layers).to(np.float64)
    for p in net.parameters():  # move biases off zero so every parameter matters
        p.data += rng.uniform(-0.1, 0.1, p.shape)
    if batch_norm:
        net[1].weight.data[:] = rng.uniform(0.5, 1.5, 4)
    return net


def kink_margins(net, x):
    """Smallest |pre-activation| at a ReLU and smallest gap between the two largest values
    of a max-pool window: finite differences are only meaningful when both are well above
    the step.  Windows of ReLU zeros tie at 0 but pass no gradient, so they are skipped.
    Returns (relu margin, pool margin)."""
    relu_margin, pool_margin = np.inf, np.inf
    h = Tensor(x)
    for layer in net:
        if isinstance(layer, nn.ReLU):
            relu_margin = min(relu_margin, float(np.abs(h.data).min()))
        if isinstance(layer, nn.MaxPool2d):
            n, hh, ww, c = h.shape
            win = h.data.reshape(n, hh // 2, 2, ww // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
            top2 = np.sort(win.reshape(*win.shape[:4], 4), axis=-1)[..., -2:]
            live = top2[..., 1] > 0  # all-zero windows after a ReLU pass no gradient
            gap = (top2[..., 1] - top2[..., 0])[live]
            pool_margin = min(pool_margin, float(gap.min()) if gap.size else np.inf)
        h = layer(h)
    return relu_margin, pool_margin


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_whole_cnn_gradients_by_central_differences(reduction, batch_norm):
    rng = np.random.default_rng(2024)
    net = small_cnn(rng, batch_norm)
    x = rng.standard_normal((N, H, W, C))
    y = rng.integers(0, CLASSES, N)
    relu_margin, pool_margin = kink_margins(net, x)
    assert relu_margin > 1e-4 and pool_margin > 1e-4, (relu_margin, pool_margin)

    def loss_of(inp):
        return F.cross_entropy(net(inp), y, reduction=reduction)

    out = loss_of(Tensor(x, requires_grad=True))
    dout = rng.standard_normal(out.shape)  # a random upstream gradient, even for a scalar
    xt = Tensor(x, requires_grad=True)
    net.zero_grad()
    loss_of(xt).backward(dout)

    def f():
        return loss_of(Tensor(x)).data

    checked = 0
    np.testing.assert_allclose(xt.grad, numerical_grad(f, x, dout), rtol=1e-5, atol=1e-8,
                               err_msg="input")
    for name, p in net.named_parameters():
        assert p.grad is not None and np.abs(p.grad).max() > 0, name
        num = numerical_grad(f, p.data, dout)
        np.testing.assert_allclose(p.grad, num, rtol=1e-5, atol=1e-8, err_msg=name)
        checked += 1
    assert checked == len(list(net.parameters())) == (8 if batch_norm else 6)


def test_whole_cnn_matches_torch(torch):
    rng = np.random.default_rng(7)
    net = small_cnn(rng)
    x = rng.standard_normal((N, H, W, C))
    y = rng.integers(0, CLASSES, N)
    conv1, conv2, fc = net[0], net[3], net[7]

    tn = torch.nn
    ref = tn.Sequential(tn.Conv2d(C, 4, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2),
                        tn.Conv2d(4, 6, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2), tn.Flatten(),
                        tn.Linear(24, CLASSES)).double()
    # Our Flatten reads (H, W, C), torch's (C, H, W): permute the linear weight's inputs.
    fc_w = fc.weight.data.reshape(2, 2, 6, CLASSES).transpose(3, 2, 0, 1).reshape(CLASSES, 24)
    with torch.no_grad():
        ref[0].weight.copy_(to_torch(conv1.weight.data, "hwio"))
        ref[0].bias.copy_(to_torch(conv1.bias.data))
        ref[3].weight.copy_(to_torch(conv2.weight.data, "hwio"))
        ref[3].bias.copy_(to_torch(conv2.bias.data))
        ref[7].weight.copy_(torch.from_numpy(np.ascontiguousarray(fc_w)))
        ref[7].bias.copy_(to_torch(fc.bias.data))

    g = rng.standard_normal(N)
    xt = Tensor(x, requires_grad=True)
    loss = F.cross_entropy(net(xt), y, reduction="none")
    loss.backward(g)
    tx = to_torch(x, "nhwc", requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(ref(tx), torch.tensor(y), reduction="none")
    tloss.backward(torch.from_numpy(g))

    np.testing.assert_allclose(loss.data, tloss.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(xt.grad, np.moveaxis(tx.grad.numpy(), 1, -1), rtol=1e-7,
                               atol=1e-12)
    np.testing.assert_allclose(conv1.weight.grad,
                               np.moveaxis(ref[0].weight.grad.numpy(), (1, 0), (-2, -1)),
                               rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(conv2.bias.grad, ref[3].bias.grad.numpy(), rtol=1e-7, atol=1e-12)
    want_fc = ref[7].weight.grad.numpy().reshape(CLASSES, 6, 2, 2).transpose(2, 3, 1, 0)
    np.testing.assert_allclose(fc.weight.grad, want_fc.reshape(24, CLASSES), rtol=1e-7,
                               atol=1e-12)
