"""The autograd tape on real layer graphs (test_tensor.py covers the elementwise engine):
a 2,000-op chain of layer ops, a layer reused in one graph (weight sharing), skip
connections, no_grad around layers, broadcasting against torch, indexing with Tensors and
negative steps, and a second backward through a freed graph -- which must raise."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import grad_check, to_torch

import convnet
import convnet.functional as F
from convnet import Tensor, nn


def test_2000_layer_op_chain(rng, torch):
    """2,000 ops deep through Functions of the functional API (no recursion)."""
    w0 = rng.standard_normal((4, 4)) * 0.5 / 2 + np.eye(4)
    x0 = rng.standard_normal((3, 4))
    w = Tensor(w0, requires_grad=True)
    x = Tensor(x0, requires_grad=True)
    h = x
    for i in range(1000):                                   # 1,000 x (linear + activation)
        h = F.linear(h, w) * 0.5
        h = F.tanh(h) if i % 2 else F.leaky_relu(h, 0.3)
    dout = rng.standard_normal(h.shape)
    limit = sys.getrecursionlimit()
    h.backward(dout)
    assert sys.getrecursionlimit() == limit
    tw = torch.from_numpy(w0.copy()).requires_grad_(True)
    tx = torch.from_numpy(x0.copy()).requires_grad_(True)
    th = tx
    for i in range(1000):
        th = (th @ tw) * 0.5
        th = torch.tanh(th) if i % 2 else torch.nn.functional.leaky_relu(th, 0.3)
    th.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(h.data, th.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(w.grad, tw.grad.numpy(), rtol=1e-7, atol=1e-12)


def test_a_layer_used_twice_accumulates_both_paths(rng, torch):
    """Weight sharing: the same Conv2d on two branches, plus a skip connection."""
    conv = nn.Conv2d(3, 3, 3, padding="same", rng=rng).to(np.float64)
    x0 = rng.standard_normal((2, 5, 4, 3))
    x = Tensor(x0, requires_grad=True)
    out = conv(F.relu(conv(x))) + x                         # conv twice, x three times
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    tc = torch.nn.Conv2d(3, 3, 3, padding="same").double()
    with torch.no_grad():
        tc.weight.copy_(to_torch(conv.weight.data, "hwio"))
        tc.bias.copy_(torch.from_numpy(conv.bias.data))
    tx = to_torch(x0, "nhwc", requires_grad=True)
    (tc(torch.relu(tc(tx))) + tx).backward(to_torch(dout, "nhwc"))
    np.testing.assert_allclose(x.grad, np.moveaxis(tx.grad.numpy(), 1, -1), rtol=1e-10)
    np.testing.assert_allclose(conv.weight.grad,
                               np.moveaxis(tc.weight.grad.numpy(), (1, 0), (-2, -1)), rtol=1e-10)
    np.testing.assert_allclose(conv.bias.grad, tc.bias.grad.numpy(), rtol=1e-10)


def test_concatenated_branches_gradcheck(rng):
    """A U-Net-style join: two branches of one input concatenated along channels."""
    w1, w2 = rng.standard_normal((3, 3, 2, 2)), rng.standard_normal((1, 1, 2, 3))

    def net(x):
        a = F.conv2d(x, w1, padding=1)
        b = F.conv2d(F.max_pool2d(x, 2), w2)
        up = F.interpolate(b, scale_factor=2)
        return convnet.concatenate([a, up, x], axis=-1)

    grad_check(net, [rng.standard_normal((2, 4, 6, 2))])


def test_no_grad_around_layers_records_nothing(rng):
    net = nn.Sequential(nn.Conv2d(1, 2, 3, rng=rng), nn.BatchNorm2d(2), nn.ReLU(),
                        nn.Flatten(), nn.Linear(2 * 4 * 4, 3, rng=rng))
    x = Tensor(rng.standard_normal((2, 6, 6, 1)).astype(np.float32), requires_grad=True)
    with convnet.no_grad():
        out = net(x)
        with convnet.enable_grad():                         # nested: records again
            inner = net[0](x)
        assert not convnet.is_grad_enabled()
    assert not out.requires_grad and out._ctx is None and inner.requires_grad
    assert int(net[1].num_batches_tracked) == 1             # running stats still update
    with pytest.raises(RuntimeError, match="does not require grad"):
        out.backward(np.ones(out.shape, np.float32))
    assert all(p.grad is None for p in net.parameters()) and x.grad is None
    with pytest.raises(ValueError):
        with convnet.no_grad():
            raise ValueError("inside")
    assert convnet.is_grad_enabled()                        # restored after an exception


@pytest.mark.parametrize("sa,sb", [((2, 1, 4, 1), (3, 1, 5)), ((4, 3), (1,)), ((), (2, 2)),
                                   ((1, 6, 1), (6, 1, 2))])
def test_broadcasting_chain_vs_torch(sa, sb, rng, torch):
    a0, b0 = rng.standard_normal(sa) + 2, rng.standard_normal(sb) + 2
    a, b = Tensor(np.asarray(a0), requires_grad=True), Tensor(np.asarray(b0), requires_grad=True)
    out = (a * b - b / a + a) ** 2 - (a - b).exp() / 10
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    ta = torch.from_numpy(np.array(a0)).requires_grad_(True)
    tb = torch.from_numpy(np.array(b0)).requires_grad_(True)
    ((ta * tb - tb / ta + ta) ** 2 - (ta - tb).exp() / 10).backward(torch.from_numpy(
        np.array(dout)))
    np.testing.assert_allclose(a.grad, ta.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-10)


def test_indexing_with_tensors_negative_steps_and_masks(rng, torch):
    x0 = rng.standard_normal((4, 5, 3))
    x = Tensor(x0, requires_grad=True)
    idx = Tensor(np.array([3, 0, 3]))
    parts = [x[idx], x[::-2, 1:4], x[..., -1], x[x0[:, :, 0] > 0], x[1, [4, 4, 0], 1:]]
    douts = [rng.standard_normal(p.shape) for p in parts]
    for p, d in zip(parts, douts):                          # separate graphs, one leaf
        p.backward(d)
    tx = torch.from_numpy(x0.copy()).requires_grad_(True)
    tparts = [tx[torch.tensor([3, 0, 3])], torch.flip(tx, (0,))[::2, 1:4], tx[..., -1],
              tx[torch.from_numpy(x0[:, :, 0] > 0)], tx[1, [4, 4, 0], 1:]]
    for p, t in zip(parts, tparts):
        np.testing.assert_array_equal(p.data, t.detach().numpy())
    sum(((t * torch.from_numpy(d)).sum() for t, d in zip(tparts, douts))).backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


def test_second_backward_through_a_freed_graph_raises(rng):
    """Regression: the second call used to treat the freed root as a leaf, silently leave
    the real leaves' gradients unchanged and give the intermediate a bogus ``.grad``."""
    x = Tensor(rng.standard_normal(3), requires_grad=True)
    y = F.relu(x * 3 + 1)
    y.backward(np.ones(3))
    first = x.grad.copy()
    with pytest.raises(RuntimeError, match="a second time.*retain_graph=True"):
        y.backward(np.ones(3))
    with pytest.raises(RuntimeError, match="a second time"):
        (y * 2).backward(np.ones(3))                        # a new graph over a freed node
    np.testing.assert_array_equal(x.grad, first)
    assert y.grad is None and not y.is_leaf
    z = F.tanh(x) * x                                       # retain_graph keeps it usable
    z.backward(np.ones(3), retain_graph=True)
    z.backward(np.ones(3))
    v = x.data
    np.testing.assert_allclose(x.grad - first, 2 * (np.tanh(v) + v * (1 - np.tanh(v) ** 2)))


def test_training_steps_build_fresh_graphs(rng):
    """The usual loop -- forward, backward, step -- is unaffected by freeing."""
    net = nn.Sequential(nn.Linear(3, 4, rng=rng), nn.ReLU(), nn.Linear(4, 2, rng=rng))
    x = Tensor(rng.standard_normal((5, 3)).astype(np.float32))
    y = rng.integers(0, 2, 5)
    losses = []
    for _ in range(5):
        loss = F.cross_entropy(net(x), y)
        net.zero_grad()
        loss.backward()
        for p in net.parameters():
            p.data -= 0.5 * p.grad
        losses.append(loss.item())
    assert losses[-1] < losses[0]
