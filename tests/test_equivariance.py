"""Seed 002's claims about translation: shared weights make a stride-1 convolution
translation-equivariant (shift the input, the output shifts the same way), while
down-sampling (a stride-2 conv or pool) breaks it.  Circular padding makes the shift a
cyclic one, so the claim holds exactly, border included."""

from __future__ import annotations

import numpy as np
import pytest

import convnet.functional as F
from convnet import nn

SHIFTS_2D = [(1, 0), (0, 1), (2, 3), (-1, 4), (5, 5)]


def out_shifts(out_shape):
    """Every cyclic shift of an output map (1-D or 2-D spatial)."""
    sp = out_shape[1:-1]
    grids = np.meshgrid(*[np.arange(n) for n in sp], indexing="ij")
    return list(zip(*[g.ravel() for g in grids]))


def rolled(a, shift):
    return np.roll(a, shift, axis=tuple(range(1, 1 + len(shift))))


@pytest.mark.parametrize("k, d", [(3, 1), (5, 1), (3, 2), (2, 1), (4, 3)])
@pytest.mark.parametrize("shift", SHIFTS_2D)
def test_stride1_circular_conv2d_is_equivariant(k, d, shift, rng):
    layer = nn.Conv2d(3, 4, k, padding="same", dilation=d, padding_mode="circular",
                      rng=rng).to(np.float64)
    x = rng.standard_normal((2, 9, 11, 3))
    out = layer(x).data
    assert out.shape[1:3] == x.shape[1:3]
    np.testing.assert_allclose(layer(rolled(x, shift)).data, rolled(out, shift),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shift", [1, 3, -2, 7])
def test_stride1_circular_conv1d_and_conv3d_are_equivariant(shift, rng):
    c1 = nn.Conv1d(2, 3, 3, padding="same", dilation=2, padding_mode="circular",
                   rng=rng).to(np.float64)
    x = rng.standard_normal((2, 12, 2))
    np.testing.assert_allclose(c1(rolled(x, (shift,))).data, rolled(c1(x).data, (shift,)),
                               rtol=1e-12, atol=1e-12)
    c3 = nn.Conv3d(2, 3, 3, padding=1, padding_mode="circular", rng=rng).to(np.float64)
    v = rng.standard_normal((1, 5, 6, 4, 2))
    s3 = (shift, -shift, 2 * shift)
    np.testing.assert_allclose(c3(rolled(v, s3)).data, rolled(c3(v).data, s3),
                               rtol=1e-12, atol=1e-12)


def test_zero_padding_breaks_equivariance_at_the_border(rng):
    """Zero padding is not cyclic: with the same shift the border outputs differ."""
    layer = nn.Conv2d(2, 2, 3, padding=1, rng=rng).to(np.float64)
    x = rng.standard_normal((1, 6, 6, 2))
    assert not np.allclose(layer(rolled(x, (1, 0))).data, rolled(layer(x).data, (1, 0)))


def test_stride2_conv_is_not_equivariant(rng):
    """Counterexample: a 1x1, stride-2 conv sees only even positions.  An impulse at 0
    gives a non-zero output; shifted by one pixel it gives all zeros, which is no shift of
    the first output."""
    w = np.ones((1, 1, 1, 1))
    x = np.zeros((1, 8, 8, 1))
    x[0, 0, 0, 0] = 1.0
    out = F.conv2d(x, w, None, stride=2).data
    out_shifted = F.conv2d(rolled(x, (1, 0)), w, None, stride=2).data
    assert out.sum() == 1.0 and out_shifted.sum() == 0.0
    # and a random stride-2 circular conv: no cyclic shift of the output matches
    layer = nn.Conv2d(3, 4, 3, stride=2, padding="same", padding_mode="circular",
                      rng=rng).to(np.float64)
    x = rng.standard_normal((1, 8, 8, 3))
    out, out_shifted = layer(x).data, layer(rolled(x, (1, 0))).data
    assert not any(np.allclose(rolled(out, s), out_shifted) for s in out_shifts(out.shape))
    # shifting by the stride itself does commute (the output moves by one pixel)
    np.testing.assert_allclose(layer(rolled(x, (2, 0))).data, rolled(out, (1, 0)),
                               rtol=1e-12, atol=1e-12)


def test_stride2_pool_is_not_equivariant(rng):
    """Counterexample: 2x2 max pooling of [0, 5, 1, 0] gives [5, 1]; shifted by one,
    [0, 0, 5, 1] gives [0, 5] -- no shift of [5, 1]."""
    x = np.array([0.0, 5.0, 1.0, 0.0]).reshape(1, 4, 1)
    out = F.max_pool1d(x, 2).data[0, :, 0]
    out_shifted = F.max_pool1d(rolled(x, (1,)), 2).data[0, :, 0]
    np.testing.assert_array_equal(out, [5.0, 1.0])
    np.testing.assert_array_equal(out_shifted, [0.0, 5.0])
    assert not any(np.array_equal(np.roll(out, s), out_shifted) for s in range(2))
    # random 2-D maps, max and average pooling alike
    x = rng.standard_normal((1, 8, 8, 2))
    for pool in (nn.MaxPool2d(2), nn.AvgPool2d(2)):
        out, out_shifted = pool(x).data, pool(rolled(x, (0, 1))).data
        assert not any(np.allclose(rolled(out, s), out_shifted) for s in out_shifts(out.shape))
