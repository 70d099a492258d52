"""He/Kaiming and Glorot/Xavier initialisers: fan sizes of HWIO weights equal torch's for
the same weight in OIHW, the bounds and standard deviations follow the papers' formulas
(written out here, not read from the code), and every draw comes from an explicit,
seedable numpy Generator."""

from __future__ import annotations

import math

import numpy as np
import pytest

import convnet
from convnet import nn
from convnet.nn import init

SHAPES = [(3, 3, 16, 32), (5, 5, 1, 6), (1, 1, 64, 8), (120, 84), (7, 3, 4, 5, 6)]


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_match_torch_for_the_same_weight(shape, torch):
    fan_in, fan_out = init.calculate_fan(shape)
    t = torch.empty(*shape[-1:], *shape[-2:-1], *shape[:-2])   # (out, in, *kernel)
    if len(shape) == 2:
        t = torch.empty(shape[1], shape[0])                     # Linear: (out, in)
    assert (fan_in, fan_out) == torch.nn.init._calculate_fan_in_and_fan_out(t)


def _stats(sample):
    return float(np.abs(sample).max()), float(sample.std()), float(sample.mean())


# name -> (our initialiser, the expected law as (kind, bound or std) from the paper)
LAWS = {
    "kaiming_uniform": (lambda s, r: init.kaiming_uniform(s, rng=r),
                        lambda fi, fo: ("uniform", math.sqrt(6.0 / fi))),
    "kaiming_normal": (lambda s, r: init.kaiming_normal(s, rng=r),
                       lambda fi, fo: ("normal", math.sqrt(2.0 / fi))),
    "kaiming_normal_fan_out": (lambda s, r: init.kaiming_normal(s, mode="fan_out", rng=r),
                               lambda fi, fo: ("normal", math.sqrt(2.0 / fo))),
    "xavier_uniform": (lambda s, r: init.xavier_uniform(s, rng=r),
                       lambda fi, fo: ("uniform", math.sqrt(6.0 / (fi + fo)))),
    "glorot_normal": (lambda s, r: init.glorot_normal(s, rng=r),
                      lambda fi, fo: ("normal", math.sqrt(2.0 / (fi + fo)))),
    "torch_default": (lambda s, r: init.torch_default_weight(s, rng=r),
                      lambda fi, fo: ("uniform", 1.0 / math.sqrt(fi))),
}


@pytest.mark.parametrize("name", list(LAWS))
def test_initialisers_follow_their_formulas(name):
    shape = (3, 3, 64, 128)                                     # 73,728 draws
    fi, fo = 3 * 3 * 64, 3 * 3 * 128
    make, law = LAWS[name]
    w = make(shape, np.random.default_rng(0))
    assert w.shape == shape and w.dtype == np.float32
    kind, scale = law(fi, fo)
    top, std, mean = _stats(w.astype(np.float64))
    se = 1.0 / math.sqrt(w.size)                                # relative standard error ~
    sigma = scale / math.sqrt(3) if kind == "uniform" else scale  # the law's std
    if kind == "uniform":
        assert top <= scale and top > (1 - 1e-3) * scale        # spans [-b, b], no further
    assert abs(std - sigma) < 6 * se * sigma                    # 6 standard errors
    assert abs(mean) < 6 * se * sigma


@pytest.mark.parametrize("name", list(LAWS))
def test_initialisers_match_torch_in_law(name, torch):
    """torch.nn.init draws from its own generator: compare the spread, not the values."""
    shape = (3, 3, 32, 64)
    make, _ = LAWS[name]
    ours = make(shape, np.random.default_rng(1)).astype(np.float64)
    t = torch.empty(64, 32, 3, 3, dtype=torch.float64)
    torch.manual_seed(0)
    ti = torch.nn.init
    {"kaiming_uniform": lambda: ti.kaiming_uniform_(t, nonlinearity="relu"),
     "kaiming_normal": lambda: ti.kaiming_normal_(t, nonlinearity="relu"),
     "kaiming_normal_fan_out": lambda: ti.kaiming_normal_(t, mode="fan_out",
                                                          nonlinearity="relu"),
     "xavier_uniform": lambda: ti.xavier_uniform_(t),
     "glorot_normal": lambda: ti.xavier_normal_(t),
     "torch_default": lambda: ti.kaiming_uniform_(t, a=math.sqrt(5))}[name]()
    theirs = t.numpy()
    assert abs(ours.std() / theirs.std() - 1) < 0.05
    if "uniform" in name or name == "torch_default":
        assert abs(np.abs(ours).max() / np.abs(theirs).max() - 1) < 0.01


def test_same_seed_same_weights_and_manual_seed():
    a = init.kaiming_normal((3, 3, 4, 8), rng=np.random.default_rng(5))
    b = init.kaiming_normal((3, 3, 4, 8), rng=np.random.default_rng(5))
    c = init.kaiming_normal((3, 3, 4, 8), rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(init.xavier_uniform((4, 3), rng=7),
                                  init.xavier_uniform((4, 3), rng=np.random.default_rng(7)))
    convnet.manual_seed(11)
    net1 = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Linear(4, 2))
    convnet.manual_seed(11)
    net2 = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Linear(4, 2))
    for (k, v), w in zip(net1.state_dict().items(), net2.state_dict().values()):
        np.testing.assert_array_equal(v, w, err_msg=k)
    g = np.random.default_rng(3)                                # one generator, several layers
    l1, l2 = nn.Linear(5, 5, rng=g), nn.Linear(5, 5, rng=g)
    assert not np.array_equal(l1.weight.data, l2.weight.data)   # the generator advances


def test_dtype_gain_and_errors():
    assert init.kaiming_uniform((4, 4), dtype=np.float64).dtype == np.float64
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="unknown nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match=r"at least 2 dims, got shape \(5,\)"):
        init.calculate_fan((5,))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator, an int seed "
                                        "or None, got str"):
        init.get_rng("seed")


def test_skip_init_draws_nothing():
    g = np.random.default_rng(0)
    state = g.bit_generator.state
    with init.skip_init():
        w = init.kaiming_normal((3, 3, 8, 8), rng=g)
    assert not w.any() and g.bit_generator.state == state
