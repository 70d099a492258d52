"""Loss layers against torch.nn's, with random upstream gradients."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tol

from convnet import Tensor, nn


def check(ours, theirs, x, target, torch, target_t=None, reduction="mean", rng=None):
    xt = Tensor(x, requires_grad=True)
    out = ours(xt, target)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    tout = theirs(tx, torch.tensor(target) if target_t is None else target_t)
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(out.data, tout.detach().numpy(), **tol(np.float64))
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), **tol(np.float64))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_layers_match_torch(reduction, rng, torch):
    x = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    y[1] = -100
    w = rng.random(4) + 0.5
    check(nn.CrossEntropyLoss(weight=w, reduction=reduction, label_smoothing=0.1),
          torch.nn.CrossEntropyLoss(weight=torch.tensor(w), reduction=reduction,
                                    label_smoothing=0.1), x, y, torch, rng=rng)
    check(nn.NLLLoss(weight=w, reduction=reduction),
          torch.nn.NLLLoss(weight=torch.tensor(w), reduction=reduction), x, y, torch, rng=rng)
    y2 = rng.integers(0, 4, 6)
    check(nn.MultiMarginLoss(p=2, margin=0.8, weight=w, reduction=reduction),
          torch.nn.MultiMarginLoss(p=2, margin=0.8, weight=torch.tensor(w), reduction=reduction),
          x, y2, torch, rng=rng)
    t = rng.standard_normal((6, 4))
    check(nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction), x, t, torch,
          rng=rng)
    pw = rng.random(4) + 0.5
    p = rng.random((6, 4))
    check(nn.BCEWithLogitsLoss(pos_weight=pw, reduction=reduction),
          torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw), reduction=reduction),
          x, p, torch, rng=rng)


def test_loss_weight_buffers_use_torchs_names(torch):
    w = np.arange(1.0, 4.0)
    ours = nn.CrossEntropyLoss(weight=w)
    theirs = torch.nn.CrossEntropyLoss(weight=torch.tensor(w))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    assert list(nn.BCEWithLogitsLoss(pos_weight=w).state_dict()) == list(
        torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w)).state_dict())
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    w[0] = 100.0  # the layer keeps its own copy
    assert ours.weight[0] == 1.0


def test_loss_layer_errors():
    with pytest.raises(ValueError, match="CrossEntropyLoss: reduction must be 'mean', 'sum' or "
                                         "'none', got 'avg'"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match="MultiMarginLoss: p must be 1 or 2, got 3"):
        nn.MultiMarginLoss(p=3)
    with pytest.raises(TypeError, match="NLLLoss: weight must be a float array, got dtype int64"):
        nn.NLLLoss(weight=np.array([1, 2]))
    with pytest.raises(ValueError, match=r"cross_entropy: target labels must be in \[0, 2\]"):
        nn.CrossEntropyLoss()(Tensor(np.zeros((2, 3))), np.array([0, 3]))
