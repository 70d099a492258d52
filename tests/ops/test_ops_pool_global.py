"""Global pooling, (N, H, W, C) -> (N, C), checked three ways: loops written here,
torch, and float64 finite differences, always with random upstream gradients."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import close_torch, from_torch, grad_check, to_torch, tol

import convnet.functional as F
from convnet import Tensor
from convnet.ops import pool as pool_ops

DTYPES = [np.float32, np.float64]


def _distinct(rng, shape):
    """Values at least 0.05 apart, so an eps nudge never changes an argmax."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.05 + 0.01


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 5, 4, 3), (1, 1, 1, 4), (3, 1, 6, 2), (2, 7, 7, 1)])
def test_global_pools_vs_naive_and_torch(shape, dtype, rng, torch):
    x = rng.standard_normal(shape).astype(dtype)
    n, h, w, c = shape
    for op in ("avg", "max"):
        xt = Tensor(x.copy(), requires_grad=True)
        out = (F.global_avg_pool2d if op == "avg" else F.global_max_pool2d)(xt)
        assert out.shape == (n, c)
        dout = rng.standard_normal((n, c)).astype(dtype)
        out.backward(dout)
        ref = np.zeros((n, c))
        ref_dx = np.zeros(shape)
        for ni in range(n):
            for ci in range(c):
                plane = x[ni, :, :, ci].astype(np.float64)
                if op == "avg":
                    ref[ni, ci] = plane.sum() / (h * w)
                    ref_dx[ni, :, :, ci] = dout[ni, ci] / (h * w)
                else:
                    best, at = -np.inf, (0, 0)
                    for r in range(h):
                        for q in range(w):
                            if plane[r, q] > best:
                                best, at = plane[r, q], (r, q)
                    ref[ni, ci] = best
                    ref_dx[ni, at[0], at[1], ci] = dout[ni, ci]
        np.testing.assert_allclose(out.data, ref, **tol(dtype))
        np.testing.assert_allclose(xt.grad, ref_dx, **tol(dtype))
        tx = to_torch(x, "nhwc", requires_grad=True)
        tout = (tx.mean(dim=(2, 3)) if op == "avg"
                else torch.nn.functional.adaptive_max_pool2d(tx, 1).flatten(1))
        tout.backward(torch.from_numpy(dout))
        close_torch(f"global_{op}_pool2d", out.data, tout.detach().numpy(), dtype)
        close_torch(f"global_{op}_pool2d grad", xt.grad, from_torch(tx.grad, "nhwc"), dtype)


def test_global_max_pool2d_ties_and_nan_like_torch(rng, torch):
    x = rng.integers(0, 2, (3, 4, 5, 4)).astype(np.float64)
    x[0, 1, 1, 0] = x[0, 3, 2, 0] = np.nan                 # two NaNs: the last one wins
    x[1] = 0.0                                              # all tied
    xt = Tensor(x, requires_grad=True)
    out = F.global_max_pool2d(xt)
    dout = rng.standard_normal(out.shape)
    out.backward(dout)
    tx = to_torch(x, "nhwc", requires_grad=True)
    tout, tidx = torch.nn.functional.adaptive_max_pool2d(tx, 1, return_indices=True)
    tout.flatten(1).backward(torch.from_numpy(dout))
    np.testing.assert_array_equal(out.data, tout.detach().numpy()[:, :, 0, 0])
    np.testing.assert_array_equal(xt.grad, from_torch(tx.grad, "nhwc"))
    cache = pool_ops.global_max_pool2d_forward(x)[1]
    np.testing.assert_array_equal(pool_ops.global_max_pool2d_argmax(cache),
                                  tidx.numpy()[:, :, 0, 0])


def test_global_pools_gradcheck(rng):
    grad_check(F.global_avg_pool2d, [rng.standard_normal((2, 3, 4, 3))])
    grad_check(F.global_max_pool2d, [_distinct(rng, (2, 3, 4, 3))])


def test_global_pool_errors():
    with pytest.raises(ValueError, match=r"global_max_pool2d: input must be 4-D"):
        F.global_max_pool2d(Tensor(np.ones((2, 3, 4))))
    with pytest.raises(ValueError, match=r"empty spatial plane, shape \(2, 0, 3, 1\)"):
        F.global_avg_pool2d(Tensor(np.ones((2, 0, 3, 1))))
    with pytest.raises(TypeError, match="got dtype int32"):
        F.global_max_pool2d(np.zeros((1, 4, 4, 1), np.int32))
