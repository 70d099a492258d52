"""Receptive fields against an oracle that knows nothing of the recurrence: the input pixels
whose gradient is non-zero when one output unit is back-propagated.  The nets are linear
(convs and average pools, float64, random weights), so that support is exactly the set
of pixels the unit depends on."""

from __future__ import annotations

import numpy as np
import pytest

from convnet import Tensor
from convnet.inspect import summary
from convnet.nn import AvgPool2d, Conv2d, ConvTranspose2d, Sequential, Upsample


def support(model, shape, unit, rng):
    """Rows and columns (lo, hi) of the input pixels that output ``unit`` depends on."""
    x = Tensor(np.zeros((1, *shape)), requires_grad=True)
    out = model(x)
    g = np.zeros(out.shape)
    g[(0, *unit)] = rng.uniform(1, 2, out.shape[-1])
    out.backward(g)
    mask = np.abs(x.grad[0]).sum(axis=-1) > 0  # (H, W)
    rows, cols = np.where(mask.any(axis=1))[0], np.where(mask.any(axis=0))[0]
    return (rows.min(), rows.max()), (cols.min(), cols.max())


CHAINS = {
    "pool-stride-dilation": lambda: Sequential(
        Conv2d(2, 3, 3, padding=1), AvgPool2d(2), Conv2d(3, 3, 5, stride=2, padding=2),
        Conv2d(3, 2, 3, dilation=2, padding=2)),
    "asymmetric-same-stride3": lambda: Sequential(
        Conv2d(2, 3, 4, stride=3, padding=((1, 2), (0, 1))),
        Conv2d(3, 3, 3, stride=2, padding="same"), AvgPool2d(3, stride=2, padding=1)),
    "rectangular": lambda: Sequential(
        Conv2d(2, 3, (3, 5), stride=(1, 2), dilation=(2, 1)), Conv2d(3, 3, 1, stride=2),
        Conv2d(3, 2, 3, stride=3, groups=1)),
}


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_window_chain_matches_gradient_support(rng, chain):
    model = CHAINS[chain]().to(np.float64)
    shape = (61, 67, 2)
    s = summary(model, shape)
    last = s.rows[-1]
    oh, ow = last.output_shape[:2]
    checked = 0
    for unit in [(oh // 2, ow // 2), (oh // 2 + 1, ow // 2 - 1), (oh // 3, 2 * ow // 3)]:
        spans = support(model, shape, unit, rng)
        for axis, ((lo, hi), n) in enumerate(zip(spans, shape[:2])):
            if lo == 0 or hi == n - 1:
                continue  # clipped by the border: the recurrence counts the padding
            assert hi - lo + 1 == last.receptive_field[axis], (unit, axis)
            centre = last.start[axis] + unit[axis] * last.jump[axis]
            assert (lo + hi) / 2 == centre, (unit, axis)
            checked += 1
    assert checked >= 4  # the test saw enough interior units to mean something


UPSAMPLING = {
    # (net, input shape); the summary's size must be the largest interior support
    "upconv-2x2": (lambda: Sequential(Conv2d(1, 2, 3, stride=2, padding=1),
                                      ConvTranspose2d(2, 2, 2, stride=2)), (16, 16, 1)),
    "upconv-3x3-then-conv": (lambda: Sequential(
        Conv2d(1, 2, 3, stride=2), ConvTranspose2d(2, 2, 3, stride=2, padding=1,
                                                   output_padding=1),
        Conv2d(2, 2, 3, padding=1)), (17, 17, 1)),
    "upconv-4x4": (lambda: Sequential(Conv2d(1, 2, 3, stride=2, padding=1),
                                      ConvTranspose2d(2, 2, 4, stride=2, padding=1)),
                   (16, 16, 1)),
    "nearest-then-conv": (lambda: Sequential(Conv2d(1, 2, 3, stride=2, padding=1),
                                             Upsample(scale_factor=2),
                                             Conv2d(2, 2, 3, padding=1)), (16, 16, 1)),
}


@pytest.mark.parametrize("net", sorted(UPSAMPLING))
def test_upsampling_field_is_the_largest_interior_support(rng, net):
    build, shape = UPSAMPLING[net]
    model = build().to(np.float64)
    s = summary(model, shape)
    oh, ow = s.output_shape[:2]
    sizes = []
    for i in range(2, oh - 2):
        (lo, hi), _ = support(model, shape, (i, ow // 2), rng)
        if lo > 0 and hi < shape[0] - 1:
            sizes.append(hi - lo + 1)
    assert sizes and max(sizes) == s.rows[-1].receptive_field[0]
    assert s.rows[-1].jump[0] == 1


def test_dilation_widens_the_field_without_parameters():
    # seed 002: "the number of pixels in the receptive field remains constant, but the
    # field is more sparsely populated as its dimensions grow"
    plain = summary(Conv2d(1, 1, 3), (32, 32, 1)).rows[-1]
    dilated = summary(Conv2d(1, 1, 3, dilation=4), (32, 32, 1)).rows[-1]
    assert plain.params == dilated.params
    assert plain.receptive_field == (3, 3) and dilated.receptive_field == (9, 9)


def test_one_dimensional_causal_field():
    from convnet.nn import Conv1d
    net = Sequential(Conv1d(1, 4, 3, padding="causal"),
                     Conv1d(4, 4, 3, dilation=2, padding="causal"),
                     Conv1d(4, 4, 3, dilation=4, padding="causal"))
    row = summary(net, (50, 1)).rows[-1]
    # sizes 3, 3 + 2*2, 7 + 2*4 = 15; the field ends at the unit itself: [t - 14, t]
    assert row.receptive_field == (15,) and row.jump == (1,) and row.start == (-7,)
