"""AdaptiveAvgPool2d (torchvision's ``avgpool``), checked three ways: a naive loop over
output cells written here, torch, and float64 finite differences, with random upstream
gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import from_torch, grad_check, to_torch, tol

from convnet import Tensor
from convnet.models import AdaptiveAvgPool2d, adaptive_avg_pool2d

DTYPES = [np.float32, np.float64]
# (H, W, output_size): divisible, uneven windows, identity, 1x1, and growing (1x1 -> 7x7)
CONFIGS = [(8, 8, (2, 2)), (7, 10, (3, 4)), (5, 5, (5, 5)), (6, 9, (1, 1)), (1, 1, (7, 7)),
           (13, 4, (7, 7)), (3, 11, (2, None))]


def naive_adaptive(x, dout, out_hw):
    """Loops over output cells: PyTorch's windows [floor(i*n/o), ceil((i+1)*n/o))."""
    n, h, w, c = x.shape
    oh, ow = out_hw
    out = np.zeros((n, oh, ow, c), np.float64)
    dx = np.zeros(x.shape, np.float64)
    for i in range(oh):
        h0, h1 = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
        for j in range(ow):
            w0, w1 = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
            area = (h1 - h0) * (w1 - w0)
            out[:, i, j, :] = x[:, h0:h1, w0:w1, :].astype(np.float64).sum(axis=(1, 2)) / area
            dx[:, h0:h1, w0:w1, :] += dout[:, i, j, None, None, :] / area
    return out, dx


def resolved(h, w, size):
    return tuple(n if o is None else o for n, o in zip((h, w), size))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("h,w,size", CONFIGS)
def test_adaptive_avg_pool_matches_naive_loop(rng, h, w, size, dtype):
    x = rng.standard_normal((2, h, w, 3)).astype(dtype)
    oh, ow = resolved(h, w, size)
    dout = rng.standard_normal((2, oh, ow, 3)).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    y = adaptive_avg_pool2d(xt, size)
    y.backward(dout)
    want, want_dx = naive_adaptive(x, dout.astype(np.float64), (oh, ow))
    assert y.dtype == dtype and xt.grad.dtype == dtype
    np.testing.assert_allclose(y.data, want, **tol(dtype))
    np.testing.assert_allclose(xt.grad, want_dx, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("h,w,size", CONFIGS)
def test_adaptive_avg_pool_matches_torch(rng, torch, h, w, size, dtype):
    x = rng.standard_normal((1, h, w, 4)).astype(dtype)
    oh, ow = resolved(h, w, size)
    dout = rng.standard_normal((1, oh, ow, 4)).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    y = AdaptiveAvgPool2d(size)(xt)
    y.backward(dout)
    tx = to_torch(x, "nhwc", requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, size)
    ty.backward(to_torch(dout, "nhwc"))
    np.testing.assert_allclose(y.data, from_torch(ty, "nhwc"), **tol(dtype))
    np.testing.assert_allclose(xt.grad, from_torch(tx.grad, "nhwc"), **tol(dtype))


@pytest.mark.parametrize("h,w,size", [(7, 10, (3, 4)), (1, 1, (3, 2)), (5, 6, (5, 6))])
def test_adaptive_avg_pool_gradient_is_finite_difference(rng, h, w, size):
    x = rng.standard_normal((2, h, w, 2))
    grad_check(lambda t: adaptive_avg_pool2d(t, size), [x])


def test_adaptive_avg_pool_shape_and_errors():
    pool = AdaptiveAvgPool2d((7, 7))
    assert pool.output_shape((14, 14, 512)) == (7, 7, 512)
    assert pool.output_shape((1, 1, 512)) == (7, 7, 512)
    assert AdaptiveAvgPool2d((None, 2)).output_shape((5, 9, 3)) == (5, 2, 3)
    assert pool.rf_params((14, 14, 8)) == ((2, 2, 0), (2, 2, 0))
    with pytest.raises(ValueError, match="output_size"):
        AdaptiveAvgPool2d(0)
    with pytest.raises(TypeError, match="output_size"):
        AdaptiveAvgPool2d("7")
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        pool.output_shape((14, 14))
    with pytest.raises(ValueError, match="4-D"):
        adaptive_avg_pool2d(Tensor(np.zeros((2, 3, 3), np.float32)), 2)
