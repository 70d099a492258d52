"""Activation functions as forward/backward pairs on plain arrays (any shape).

Every forward returns ``(out, cache)`` and every backward takes ``(dout, cache)`` and
returns ``dx``.  The values at the kinks follow PyTorch's CPU kernels, so gradients
match torch exactly even on ties:

    relu        max(x, 0)                         dx = dout where out > 0 else 0
    leaky_relu  x if x > 0 else a x               dx = dout if x > 0 else a dout
    elu         x if x > 0 else alpha (e^x - 1)   dx = dout if x > 0 else alpha e^x dout
    sigmoid     1 / (1 + e^-x)                    dx = dout s (1 - s)
    tanh        tanh x                            dx = dout (1 - t^2)
    gelu        x Phi(x) = x/2 (1 + erf(x/sqrt2)) dx = dout (Phi(x) + x phi(x))
    gelu tanh   x/2 (1 + tanh(k (x + 0.044715 x^3))),  k = sqrt(2/pi)
    softmax     e^(x - m) / sum e^(x - m),  m = max x (never overflows)
    log_softmax (x - m) - log sum e^(x - m)

NumPy has no ``erf``; ``erf`` below is accurate to about 2 ulp in float64 (see its
docstring), so the exact GELU matches ``torch.nn.functional.gelu`` to rounding.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import chebyshev as cheb

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_C = 0.044715


# ---- erf ------------------------------------------------------------------
# |x| <= 1: the Maclaurin series erf(x) = 2/sqrt(pi) * x * sum_n (-u)^n / (n! (2n+1)),
#   u = x^2 <= 1; 19 terms reach 1/(18! 37) ~ 4e-18, and the terms shrink fast enough
#   that the alternating sum loses no digits.  Coefficients are exact rationals.
# 1 < |x| <= 6: erf(x) = 1 - e^(-x^2) q(x) with q(x) = e^(x^2) erfc(x), a smooth,
#   slowly varying function (about 1/(x sqrt(pi))).  q is fitted once, at import, by
#   least squares on 300 Chebyshev nodes per interval from the C library's
#   ``math.erfc``/``math.exp`` (correctly rounded to within an ulp); the oversampling
#   averages the rounding noise of the samples away.
# |x| > 6: erfc(6) = 2e-17 is below half an ulp of 1, so erf(x) = sign(x).
_SERIES = np.array([(-1.0) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(19)]
                   ) * (2.0 / math.sqrt(math.pi))
_ERFC_EDGES = (1.0, 2.0, 3.0, 4.5, 6.0)
_ERF_CHUNK = 1 << 16          # elements per pass: keeps the temporaries in cache


def _fit_erfcx(lo: float, hi: float, deg: int = 18, nodes: int = 300) -> np.ndarray:
    t = np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)              # Chebyshev nodes
    a = (t * (hi - lo) + (lo + hi)) / 2
    q = np.array([math.erfc(v) * math.exp(v * v) for v in a])
    return cheb.chebfit(t, q, deg)


_ERFC_FITS = [(lo, hi, _fit_erfcx(lo, hi)) for lo, hi in zip(_ERFC_EDGES[:-1], _ERFC_EDGES[1:])]
# float32 needs ~1e-8 only: 11 series terms (1/(11! 23) ~ 1e-9) and the fits cut where
# their Chebyshev coefficients drop below 1e-10, evaluated in float32 (half the bytes).
_ERF_PLANS = {
    np.dtype(np.float64): (_SERIES, _ERFC_FITS),
    np.dtype(np.float32): (_SERIES[:11].astype(np.float32),
                           [(lo, hi, c[:int(np.nonzero(np.abs(c) > 1e-10)[0].max()) + 1]
                             .astype(np.float32)) for lo, hi, c in _ERFC_FITS]),
}


def _clenshaw(t: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """sum_k coef[k] T_k(t), in place where it can be."""
    t2 = 2.0 * t
    b1, b2 = np.full_like(t, coef[-1]), np.zeros_like(t)
    for c in coef[-2:0:-1]:
        b0 = t2 * b1
        b0 -= b2
        b0 += c
        b1, b2 = b0, b1
    b1 *= t
    b1 -= b2
    b1 += coef[0]
    return b1


def _erf_block(x: np.ndarray, series, fits) -> np.ndarray:
    ax = np.abs(x)
    out = np.sign(x)                             # |x| > 6 (and NaN -> NaN, +-inf -> +-1)
    small = ax <= 1.0
    xs = x[small]
    acc = np.full_like(xs, series[-1])
    u = xs * xs
    for c in series[-2::-1]:                     # Horner in u = x^2
        acc *= u
        acc += c
    acc *= xs
    out[small] = acc
    for lo, hi, coef in fits:
        m = (ax > lo) & (ax <= hi)
        if m.any():
            a = ax[m]
            t = (2.0 * a - (lo + hi)) / (hi - lo)  # map [lo, hi] -> [-1, 1]
            q = _clenshaw(t, coef)
            q *= np.exp(-a * a)
            out[m] = np.copysign(1.0 - q, x[m])
    return out


def erf(x) -> np.ndarray:
    """The error function, vectorised: erf(x) = 2/sqrt(pi) * integral_0^x e^(-t^2) dt.

    float64 (and integer input, promoted) is computed to within 2 ulp of ``math.erf``
    (2.8e-16 relative over [-7, 7] and tiny arguments); float32 in float32 with shorter
    expansions, to within 1e-7.  Blocks of 65,536 elements keep temporaries in cache.
    NaN gives NaN and +-inf gives +-1.
    """
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    work = np.dtype(np.float32) if dtype.itemsize <= 4 else np.dtype(np.float64)
    series, fits = _ERF_PLANS[work]
    flat = x.astype(work, copy=False).reshape(-1)
    out = np.empty(flat.shape, dtype=dtype)
    for start in range(0, flat.size, _ERF_CHUNK):
        out[start:start + _ERF_CHUNK] = _erf_block(flat[start:start + _ERF_CHUNK], series, fits)
    return out.reshape(x.shape)


# ---- piecewise-linear activations -------------------------------------------

# Elementwise passes over large arrays run in chunks of this many elements, so one
# chunk's temporaries (the mask) stay in cache: one sweep over memory, not one per call.
CHUNK = 1 << 16


def chunks(size: int, step: int | None = None):
    """Consecutive slices of at most ``step`` (default ``CHUNK``) elements covering
    ``range(size)``."""
    step = step or CHUNK
    for start in range(0, size, step):
        yield slice(start, min(start + step, size))


def relu_forward(x):
    """The cache is ``out`` itself: the next layer usually keeps it as its input anyway,
    so a ReLU costs no memory of its own for backward (a mask would add N bytes)."""
    out = np.maximum(x, 0)                       # NaN stays NaN, as in torch
    return out, out


def _bits(a):
    """``a`` viewed as signed integers of its own width (a view: writes go through)."""
    return a.view(np.dtype(f"i{a.dtype.itemsize}"))


def relu_mask(g, kept, out, work=None):
    """out = g where kept != 0, else +0 -- torch's ``kept <= 0 ? 0 : g`` for a ReLU's
    output ``kept`` (>= 0 or NaN, so ``!= 0`` is torch's test).

    Bitwise: g's bits AND an all-ones or all-zeros word, so a passed value (NaN and inf
    included) is copied exactly and a blocked one is +0 whatever g holds there (g * 0
    would make NaN of an infinite g).  Any same-shaped arrays or views; ``out`` may be
    ``g`` itself.  ``work``, a C-contiguous array of g's shape and dtype, holds the
    words (a reused buffer spares an allocation per call)."""
    itype = np.dtype(f"i{g.dtype.itemsize}")
    word = np.empty(g.shape, itype) if work is None else _bits(work)
    np.not_equal(kept, 0, out=word)                                      # 1 or 0
    np.negative(word, out=word)                                          # -1 (all ones) or 0
    np.bitwise_and(_bits(g), word, out=_bits(out))
    return out


def relu_backward(dout, cache, out=None):
    """dx = dout where the forward's output is > 0 or NaN, else +0 (``relu_mask``), in
    chunks that keep the mask in cache.  ``out=`` may be ``dout`` itself."""
    kept = cache
    if kept.shape != dout.shape:
        raise ValueError(f"relu_backward: dout has shape {dout.shape}, the forward's output "
                         f"{kept.shape}")
    dout, kept = np.ascontiguousarray(dout), np.ascontiguousarray(kept)
    dx = np.empty(dout.shape, dout.dtype) if out is None else out
    if not dx.flags.c_contiguous or dx.shape != dout.shape or dx.dtype != dout.dtype:
        raise ValueError("relu_backward: out= must be a C-contiguous array of dout's shape "
                         "and dtype")
    g, k, r = dout.reshape(-1), kept.reshape(-1), dx.reshape(-1)
    work = np.empty(min(g.size, CHUNK), g.dtype)
    for sl in chunks(g.size):
        relu_mask(g[sl], k[sl], r[sl], work[:sl.stop - sl.start])
    return dx


def leaky_relu_forward(x, negative_slope=0.01):
    out = np.where(x > 0, x, x * x.dtype.type(negative_slope))
    return out, (x, negative_slope)


def leaky_relu_backward(dout, cache):
    x, slope = cache
    return np.where(x > 0, dout, dout * dout.dtype.type(slope))


def elu_forward(x, alpha=1.0):
    neg = alpha * np.expm1(np.minimum(x, 0))     # min() keeps exp from overflowing
    out = np.where(x > 0, x, neg.astype(x.dtype, copy=False))
    return out, (x, alpha)


def elu_backward(dout, cache):
    x, alpha = cache
    slope = (alpha * np.exp(np.minimum(x, 0))).astype(dout.dtype, copy=False)
    return np.where(x > 0, dout, dout * slope)


# ---- smooth activations -----------------------------------------------------

def sigmoid_forward(x):
    e = np.exp(-np.abs(x))                       # in (0, 1]: never overflows
    out = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    return out, out


def sigmoid_backward(dout, cache):
    s = cache
    return dout * s * (1 - s)


def tanh_forward(x):
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    t = cache
    return dout * (1 - t * t)


def gelu_forward(x, approximate="none"):
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + _GELU_C * x ** 3)
        t = np.tanh(inner)
        out = 0.5 * x * (1 + t)
        return out, (x, approximate, t)
    cdf = erf(x * _INV_SQRT_2)                   # in x's dtype
    cdf += 1
    cdf *= 0.5                                   # Phi(x)
    return x * cdf, (x, approximate, cdf)


def gelu_backward(dout, cache):
    x, approximate, aux = cache
    if approximate == "tanh":
        t = aux
        dinner = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * x * x)
        grad = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner
    else:
        grad = x * np.exp(-0.5 * x * x)
        grad *= _INV_SQRT_2PI
        grad += aux                              # Phi(x) + x phi(x)
    return dout * grad


# ---- softmax over one axis --------------------------------------------------

def softmax_forward(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)   # <= 0, so exp() cannot overflow
    e = np.exp(shifted)
    out = e / e.sum(axis=axis, keepdims=True)
    return out, (out, axis)


def softmax_backward(dout, cache):
    s, axis = cache
    # dx_i = s_i (dout_i - sum_j dout_j s_j)
    return s * (dout - (dout * s).sum(axis=axis, keepdims=True))


def log_softmax_forward(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return out, (out, axis)


def log_softmax_backward(dout, cache):
    out, axis = cache
    # dx_i = dout_i - softmax_i * sum_j dout_j
    return dout - np.exp(out) * dout.sum(axis=axis, keepdims=True)


__all__ = [
    "erf", "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
    "elu_forward", "elu_backward", "sigmoid_forward", "sigmoid_backward", "tanh_forward",
    "tanh_backward", "gelu_forward", "gelu_backward", "softmax_forward", "softmax_backward",
    "log_softmax_forward", "log_softmax_backward",
]
