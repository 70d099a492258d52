"""Dropout layers: training versus evaluation, reproducible masks, channel dropout."""

from __future__ import annotations

import numpy as np
import pytest

import convnet
from convnet import Tensor, nn


def test_dropout_train_and_eval(rng):
    x = Tensor(rng.standard_normal((50, 40)) + 3)
    drop = nn.Dropout(0.25, rng=np.random.default_rng(1))
    out = drop(x).data
    kept = out != 0
    assert 0.65 < kept.mean() < 0.85
    np.testing.assert_allclose(out[kept], x.data[kept] / 0.75)
    drop.eval()
    assert drop(x) is x or np.array_equal(drop(x).data, x.data)


def test_dropout_rng_seed_and_manual_seed_reproduce(rng):
    x = Tensor(np.ones((6, 10)))
    a = nn.Dropout(0.5, rng=3)(x).data
    b = nn.Dropout(0.5, rng=3)(x).data
    np.testing.assert_array_equal(a, b)
    convnet.manual_seed(9)
    c = nn.Dropout(0.5)(x).data
    convnet.manual_seed(9)
    d = nn.Dropout(0.5)(x).data
    np.testing.assert_array_equal(c, d)


@pytest.mark.parametrize("cls,shape", [(nn.Dropout1d, (8, 5, 6)), (nn.Dropout2d, (8, 3, 4, 6)),
                                       (nn.Dropout3d, (8, 2, 3, 2, 6))])
def test_channel_dropout_layers(cls, shape):
    x = Tensor(np.ones(shape))
    out = cls(0.5, rng=0)(x).data
    per_map = out.reshape(shape[0], -1, shape[-1])
    assert np.all((per_map == 0).all(axis=1) | (per_map == 2.0).all(axis=1))
    assert 0 < (per_map != 0).mean() < 1
    assert cls(0.5).output_shape(shape[1:]) == shape[1:]


def test_dropout_gradient_follows_the_mask(rng):
    xt = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    out = nn.Dropout(0.4, rng=2)(xt)
    dout = rng.standard_normal((4, 5))
    out.backward(dout)
    mask = out.data / xt.data
    np.testing.assert_allclose(xt.grad, dout * mask)


def test_dropout_layer_errors_and_repr():
    with pytest.raises(ValueError, match=r"Dropout: p must be a number in \[0, 1\], got 1.2"):
        nn.Dropout(1.2)
    with pytest.raises(ValueError, match=r"Dropout2d: p must be a number in \[0, 1\], got -1"):
        nn.Dropout2d(-1)
    with pytest.raises(ValueError, match=r"dropout2d: input must be 4-D \(N, H, W, C\)"):
        nn.Dropout2d(0.5)(Tensor(np.zeros((2, 3))))
    assert repr(nn.Dropout(0.3)) == "Dropout(p=0.3)"
    assert nn.Dropout(0.3).num_parameters() == 0
    assert nn.Dropout(0.3).state_dict() == {}
