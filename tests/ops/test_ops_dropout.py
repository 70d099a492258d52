"""Dropout, checked three ways.

* Naive loop reference: the documented mask rule (a unit is kept when its U[0, 1) draw
  from the given generator is >= p, and kept units are scaled by 1/(1-p)), applied
  element by element with the same seed.
* torch: its generator differs, so the comparison is of the law, not of the draw: the
  same set of output values {0, x/(1-p)}, the same keep rate within binomial error, the
  same channel structure for dropout2d, and the same identity in evaluation.
* Finite differences: with a fixed seed dropout is a fixed linear map.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import grad_check, tol

import convnet.functional as F
from convnet import Tensor

DTYPES = [np.float32, np.float64]


def naive_dropout(x, p, seed, mask_shape, dout):
    """Element by element: draw U for each mask cell, keep it when U >= p."""
    u = np.random.default_rng(seed).random(mask_shape)
    out, dx = np.zeros(x.shape), np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        m_idx = tuple(0 if ms == 1 else i for i, ms in zip(idx, mask_shape))
        if p < 1 and u[m_idx] >= p:
            out[idx] = x[idx] / (1 - p)
            dx[idx] = dout[idx] / (1 - p)
    return out, dx


CASES = [  # (fn, shape, mask shape from x.shape)
    (F.dropout, (4, 7), lambda s: s),
    (F.dropout, (2, 3, 4, 5), lambda s: s),
    (F.dropout, (1, 1), lambda s: s),
    (F.dropout1d, (3, 6, 4), lambda s: (s[0], 1, s[2])),
    (F.dropout2d, (3, 4, 5, 6), lambda s: (s[0], 1, 1, s[3])),
    (F.dropout2d, (1, 1, 1, 3), lambda s: (s[0], 1, 1, s[3])),
    (F.dropout3d, (2, 2, 3, 3, 4), lambda s: (s[0], 1, 1, 1, s[4])),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_dropout_against_naive(case, p, dtype, rng):
    fn, shape, mshape = CASES[case]
    x = rng.standard_normal(shape).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    out = fn(xt, p, training=True, rng=np.random.default_rng(42))
    out.backward(dout)
    if p == 0.0:
        want_out, want_dx = x.astype(np.float64), dout.astype(np.float64)
    else:
        want_out, want_dx = naive_dropout(x.astype(np.float64), p, 42, mshape(shape),
                                          dout.astype(np.float64))
    assert out.dtype == dtype
    np.testing.assert_allclose(out.data, want_out, **tol(dtype))
    np.testing.assert_allclose(xt.grad, want_dx, **tol(dtype))


@pytest.mark.parametrize("fn", [F.dropout, F.dropout2d])
def test_dropout_finite_differences(fn, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    grad_check(lambda t: fn(t, 0.4, training=True, rng=np.random.default_rng(7)), [x])


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_law_matches_torch(p, torch):
    x = np.full((200, 500), 2.0)
    ours = F.dropout(Tensor(x), p, training=True, rng=np.random.default_rng(3)).data
    theirs = torch.nn.functional.dropout(torch.tensor(x), p, training=True).numpy()
    for out in (ours, theirs):
        values = np.unique(out)
        np.testing.assert_allclose(values, [0.0, 2.0 / (1 - p)], rtol=1e-12)
    sigma = np.sqrt(p * (1 - p) / x.size)
    keep_ours, keep_torch = (ours != 0).mean(), (theirs != 0).mean()
    assert abs(keep_ours - (1 - p)) < 5 * sigma
    assert abs(keep_ours - keep_torch) < 7 * sigma
    np.testing.assert_allclose(ours.mean(), theirs.mean(), rtol=0.02)  # both unbiased: E = x


def test_dropout2d_channel_structure_matches_torch(torch):
    x = np.ones((64, 5, 4, 32))
    ours = F.dropout2d(Tensor(x), 0.5, training=True, rng=np.random.default_rng(5)).data
    theirs = np.moveaxis(torch.nn.functional.dropout2d(
        torch.tensor(np.moveaxis(x, -1, 1).copy()), 0.5, training=True).numpy(), 1, -1)
    for out in (ours, theirs):
        per_map = out.reshape(64, 20, 32)
        # every (sample, channel) map is all zeros or all 2.0
        assert np.all((per_map == 0).all(axis=1) | (per_map == 2.0).all(axis=1))
        assert 0.35 < (per_map[:, 0, :] != 0).mean() < 0.65


@pytest.mark.parametrize("fn,shape", [(F.dropout, (3, 4)), (F.dropout2d, (2, 3, 3, 4))])
def test_dropout_eval_is_identity_like_torch(fn, shape, rng, torch):
    x = rng.standard_normal(shape)
    xt = Tensor(x, requires_grad=True)
    out = fn(xt, 0.7, training=False, rng=np.random.default_rng(0))
    dout = rng.standard_normal(shape)
    out.backward(dout)
    np.testing.assert_array_equal(out.data, x)
    np.testing.assert_array_equal(xt.grad, dout)
    np.testing.assert_array_equal(
        torch.nn.functional.dropout(torch.tensor(x), 0.7, training=False).numpy(), out.data)


def test_dropout_is_reproducible_from_the_generator(rng):
    x = Tensor(rng.standard_normal((8, 16)))
    a = F.dropout(x, 0.5, rng=np.random.default_rng(11)).data
    b = F.dropout(x, 0.5, rng=np.random.default_rng(11)).data
    c = F.dropout(x, 0.5, rng=np.random.default_rng(12)).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    g = np.random.default_rng(11)
    first, second = F.dropout(x, 0.5, rng=g).data, F.dropout(x, 0.5, rng=g).data
    assert not np.array_equal(first, second)  # the generator advances


def test_dropout_p_one_zeroes_everything(rng):
    xt = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    out = F.dropout(xt, 1.0, rng=np.random.default_rng(0))
    out.backward(np.ones((3, 4)))
    assert np.all(out.data == 0) and np.all(xt.grad == 0)
    assert np.isfinite(out.data).all()


def test_dropout_errors():
    x = Tensor(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\], got 1.5"):
        F.dropout(x, 1.5)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got -0.1"):
        F.dropout(x, -0.1)
    with pytest.raises(TypeError, match="p must be a number"):
        F.dropout(x, "0.5")
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator or None, got int"):
        F.dropout(x, 0.5, rng=3)
    with pytest.raises(ValueError, match=r"dropout2d: input must be 4-D \(N, H, W, C\), got 3-D"):
        F.dropout2d(Tensor(np.zeros((2, 3, 4))), 0.5)
    with pytest.raises(TypeError, match=r"float32 or float64\), got dtype int64"):
        F.dropout(Tensor(np.zeros((2, 3), dtype=np.int64)), 0.5)
