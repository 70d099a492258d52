"""F.pad in every mode (constant, reflect, replicate, circular) on 1-D, 2-D and 3-D
channels-last data, checked against a naive loop written here, torch, and float64 finite
differences -- always with random upstream gradients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import close_torch, from_torch, grad_check, to_torch, tol

import convnet.functional as F
from convnet import Tensor

DTYPES = [np.float32, np.float64]
MODES = ["constant", "reflect", "replicate", "circular"]


def naive_source(t, n, mode):
    """Input index read at padded position t (t < 0 or t >= n is the padding), or None."""
    if 0 <= t < n:
        return t
    if mode == "constant":
        return None
    if mode == "replicate":
        return 0 if t < 0 else n - 1
    if mode == "circular":
        return t % n
    period = 2 * (n - 1)                       # reflect: ... 2 1 | 0 1 2 .. n-1 | n-2 ...
    m = t % period
    return m if m < n else period - m


def naive_pad(x, pads, mode, value, dout):
    nd = x.ndim - 2
    sp = x.shape[1:-1]
    osz = [sp[a] + pads[a][0] + pads[a][1] for a in range(nd)]
    out = np.full((x.shape[0], *osz, x.shape[-1]), float(value))
    dx = np.zeros(x.shape)
    for o in itertools.product(*[range(m) for m in osz]):
        src = [naive_source(o[a] - pads[a][0], sp[a], mode) for a in range(nd)]
        if any(s is None for s in src):
            continue
        out[(slice(None), *o)] = x[(slice(None), *src)]
        dx[(slice(None), *src)] += dout[(slice(None), *o)]
    return out, dx


# (input shape, pads as (lo, hi) per spatial axis)
CASES = [
    ((2, 6, 3), ((2, 3),)),
    ((1, 4, 2), ((3, 0),)),
    ((2, 5, 4, 2), ((1, 2), (3, 0))),
    ((1, 3, 3, 1), ((2, 2), (2, 2))),
    ((1, 4, 5, 2), ((0, 0), (1, 4))),
    ((1, 3, 4, 5, 2), ((1, 2), (0, 1), (2, 2))),
    ((2, 2, 3, 2, 1), ((1, 1), (2, 1), (1, 0))),
]


def fits(shape, pads, mode):
    sp = shape[1:-1]
    if mode == "reflect":
        return all(max(p) < n for n, p in zip(sp, pads))
    if mode == "circular":
        return all(max(p) <= n for n, p in zip(sp, pads))
    return True


# Only the combinations a mode accepts (too-wide pads are test_errors' business): filtered
# here rather than skipped at run time, so a skip can never hide a failure.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, pads, mode", [(s, p, m) for s, p in CASES for m in MODES
                                               if fits(s, p, m)])
def test_pad(shape, pads, mode, dtype, rng, torch):
    x = rng.standard_normal(shape).astype(dtype)
    value = 0.5 if mode == "constant" else 0.0
    xt = Tensor(x, requires_grad=True)
    out = F.pad(xt, pads, mode=mode, value=value)
    assert out.dtype == dtype
    dout = rng.standard_normal(out.shape).astype(dtype)
    out.backward(dout)
    want, dx = naive_pad(x, pads, mode, value, dout)
    np.testing.assert_array_equal(out.data, want.astype(dtype))
    np.testing.assert_allclose(xt.grad, dx, **tol(dtype))
    tx = to_torch(x, "nhwc", True)
    flat = tuple(v for lo_hi in reversed(pads) for v in lo_hi)     # torch: last axis first
    ref = torch.nn.functional.pad(tx, flat, mode=mode,
                                  value=value if mode == "constant" else None)
    ref.backward(to_torch(dout, "nhwc"))
    close_torch(f"pad {mode}", out.data, from_torch(ref, "nhwc"), dtype)
    close_torch(f"pad {mode} dx", xt.grad, from_torch(tx.grad, "nhwc"), dtype)


@pytest.mark.parametrize("mode", MODES)
def test_finite_differences(mode, rng):
    x = rng.standard_normal((1, 4, 3, 2))
    grad_check(lambda a: F.pad(a, ((3, 1), (2, 2)), mode=mode), [x])


def test_spellings_and_zeros_alias(rng):
    x = rng.standard_normal((1, 3, 4, 2))
    a = F.pad(x, 1, mode="zeros").data
    np.testing.assert_array_equal(a, F.pad(x, (1, 1), mode="constant").data)
    np.testing.assert_array_equal(a, F.pad(x, ((1, 1), (1, 1))).data)
    assert F.pad(x, (2, 0)).shape == (1, 7, 4, 2)
    np.testing.assert_array_equal(F.pad(x, 0, mode="reflect").data, x)


def test_errors(rng):
    x = rng.standard_normal((1, 3, 4, 2))
    with pytest.raises(ValueError, match=r"reflect padding must be smaller than the input "
                                         r"size, got padding \(3, 0\) for size 3 on spatial "
                                         r"axis 0"):
        F.pad(x, ((3, 0), (0, 0)), mode="reflect")
    with pytest.raises(ValueError, match=r"circular padding must be at most the input size, "
                                         r"got padding \(0, 5\) for size 4 on spatial axis 1"):
        F.pad(x, ((0, 0), (0, 5)), mode="circular")
    with pytest.raises(ValueError, match="mode must be one of .* got 'wrap'"):
        F.pad(x, 1, mode="wrap")
    with pytest.raises(ValueError, match="padding must be non-negative"):
        F.pad(x, -1)
    with pytest.raises(TypeError, match="pads must be an int, 2 ints or 2 .* got the string"):
        F.pad(x, "same")
    with pytest.raises(ValueError, match="value is only used by mode='constant'"):
        F.pad(x, 1, mode="reflect", value=1.0)
    with pytest.raises(ValueError, match=r"pad: input must be 3-D or 4-D or 5-D"):
        F.pad(x[0, 0], 1)
