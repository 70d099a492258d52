"""Loss functions as forward/backward pairs on plain arrays.

Notation:
    z     logits or scores, (M, C): M rows (the batch, or every pixel of an NHWC map
          flattened by the caller), C classes
    y     int class indices, (M,)
    q     class probabilities, (M, C)
    w     per-class weight, (C,)
    g     the upstream gradient: a scalar for 'mean'/'sum', (M,) for 'none'

Every classification loss here reduces to one form.  With a coefficient matrix
A (M, C) and log p = log_softmax(z),

    loss_m = -sum_c A[m, c] log p[m, c]          (reduction 'none')
    loss   = sum_m loss_m / D                    ('mean'; D depends on the loss)

    cross-entropy, indices:  A[m] = w[y_m] (1 - eps) onehot(y_m) + eps/C * w, D = sum_m w[y_m]
    cross-entropy, probs:    A[m] = w * ((1 - eps) q[m] + eps/C),             D = M

Rows whose label equals ``ignore_index`` get A[m] = 0 and leave D.  The gradient of the
form is dz[m, k] = g_m (sum_c A[m, c] * softmax[m, k] - A[m, k]).  These are PyTorch's
definitions (aten/src/ATen/native/LossNLL.cpp), including where label smoothing and the
weights enter the 'mean' denominator.

All functions are stable for logits of +-1e4: softmax subtracts the row maximum and
the logistic losses use log(1 + e^-|x|).
"""

from __future__ import annotations

import numpy as np

REDUCTIONS = ("mean", "sum", "none")


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stable log-softmax: z - max - log(sum(exp(z - max)))."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """Stable log(sigmoid(x)) = min(x, 0) - log(1 + e^-|x|)."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Stable logistic function (no overflow for large |x|)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _reduce(per_row: np.ndarray, reduction: str, denom) -> np.ndarray:
    if reduction == "none":
        return per_row
    total = per_row.sum()
    if reduction == "sum":
        return np.asarray(total)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 -> nan, as in torch
        return np.asarray(total / denom)


def _upstream(dout: np.ndarray, reduction: str, denom, m: int) -> np.ndarray:
    """Per-row upstream gradient g (M, 1) from the reduced gradient."""
    if reduction == "none":
        return dout.reshape(m, 1)
    if reduction == "sum":
        return np.full((m, 1), dout, dtype=dout.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.full((m, 1), dout / denom, dtype=dout.dtype)


# ---- the shared softmax form ------------------------------------------------

def softmax_loss_forward(z, coef, reduction, denom):
    """loss = reduce(-sum_c coef * log_softmax(z)); returns ``(out, cache)``.

    ``coef`` is the (M, C) coefficient matrix A described in the module docstring."""
    logp = log_softmax(z, axis=1)                                 # (M, C)
    per_row = -(coef * logp).sum(axis=1)                          # (M,)
    out = _reduce(per_row, reduction, denom)
    return out, (logp, coef, reduction, denom)


def softmax_loss_backward(dout, cache):
    """Returns ``(dz, dcoef)``: dz = g (rowsum(A) softmax - A), dcoef = -g log p."""
    logp, coef, reduction, denom = cache
    m = logp.shape[0]
    g = _upstream(np.asarray(dout, dtype=logp.dtype), reduction, denom, m)   # (M, 1)
    prob = np.exp(logp)                                           # (M, C)
    dz = g * (coef.sum(axis=1, keepdims=True) * prob - coef)      # (M, C)
    dcoef = -g * logp                                             # (M, C)
    return dz, dcoef


def cross_entropy_index_coef(y, c, dtype, weight=None, ignore_index=-100,
                             label_smoothing=0.0):
    """Coefficients A (M, C) and the 'mean' denominator for integer labels ``y``."""
    m, dtype = y.shape[0], np.dtype(dtype)
    keep = y != ignore_index                                      # (M,)
    y_safe = np.where(keep, y, 0)
    w = np.ones(c, dtype=dtype) if weight is None else weight.astype(dtype, copy=False)
    w_y = np.where(keep, w[y_safe], 0).astype(dtype)              # (M,)
    coef = np.zeros((m, c), dtype=dtype)
    coef[np.arange(m), y_safe] = (1 - label_smoothing) * w_y
    if label_smoothing:
        share = w * dtype.type(label_smoothing / c)                # (C,), in the logits' dtype
        coef += np.where(keep[:, None], share[None, :], dtype.type(0))   # (M, C)
    return coef, w_y.sum()


def cross_entropy_prob_coef(q, weight=None, label_smoothing=0.0):
    """Coefficients A (M, C) and the 'mean' denominator for probability targets ``q``.

    Returns ``(coef, denom, dq_factor)`` where dA/dq = dq_factor (elementwise)."""
    m, c = q.shape
    factor = (1 - label_smoothing) * (np.ones(c, dtype=q.dtype) if weight is None
                                      else weight.astype(q.dtype, copy=False))
    q_s = q * (1 - label_smoothing) + label_smoothing / c if label_smoothing else q
    coef = q_s if weight is None else q_s * weight.astype(q.dtype, copy=False)   # (M, C)
    return coef, m, factor


# ---- negative log-likelihood ------------------------------------------------

def nll_loss_forward(logp, y, weight=None, ignore_index=-100, reduction="mean"):
    """loss_m = -w[y_m] logp[m, y_m]; 'mean' divides by sum_m w[y_m] over kept rows."""
    m, c = logp.shape
    keep = y != ignore_index                                      # (M,)
    y_safe = np.where(keep, y, 0)
    w = np.ones(c, dtype=logp.dtype) if weight is None else weight.astype(logp.dtype)
    w_y = np.where(keep, w[y_safe], 0).astype(logp.dtype)         # (M,)
    per_row = -w_y * logp[np.arange(m), y_safe]                   # (M,)
    denom = w_y.sum()
    return _reduce(per_row, reduction, denom), (logp.shape, y_safe, w_y, reduction, denom)


def nll_loss_backward(dout, cache):
    shape, y_safe, w_y, reduction, denom = cache
    m = shape[0]
    g = _upstream(np.asarray(dout, dtype=w_y.dtype), reduction, denom, m)[:, 0]   # (M,)
    dlogp = np.zeros(shape, dtype=w_y.dtype)                      # (M, C)
    dlogp[np.arange(m), y_safe] = -g * w_y
    return dlogp


# ---- multiclass hinge (the SVM loss) ----------------------------------------

def multi_margin_loss_forward(x, y, p=1, margin=1.0, weight=None, reduction="mean"):
    """loss_m = sum_{j != y_m} w[y_m] max(0, margin - x[m, y_m] + x[m, j])^p / C.

    The weight multiplies the hinge after the power, as torch's kernel does."""
    m, c = x.shape
    rows = np.arange(m)
    x_y = x[rows, y][:, None]                                     # (M, 1)
    z = margin - x_y + x                                          # (M, C)
    active = z > 0
    active[rows, y] = False                                       # j == y never counts
    h = np.where(active, z if p == 1 else z * z, 0)               # (M, C)
    w_y = (np.ones(m, dtype=x.dtype) if weight is None
           else weight.astype(x.dtype)[y])                        # (M,)
    per_row = (w_y * h.sum(axis=1) / c).astype(x.dtype)           # (M,)
    cache = (z, active, rows, y, w_y, p, c, reduction)
    return _reduce(per_row, reduction, m), cache


def multi_margin_loss_backward(dout, cache):
    z, active, rows, y, w_y, p, c, reduction = cache
    m = z.shape[0]
    g = _upstream(np.asarray(dout, dtype=z.dtype), reduction, m, m)          # (M, 1)
    one, zero = z.dtype.type(1), z.dtype.type(0)                  # no float64 temporaries
    dh = np.where(active, one if p == 1 else 2 * z, zero)         # dh/dz, (M, C)
    dx = g * (w_y[:, None] / c) * dh                              # (M, C): dz/dx_j = 1
    dx[rows, y] -= dx.sum(axis=1)                                 # dz/dx_y = -1 for each j
    return dx


# ---- regression and binary losses -------------------------------------------

def mse_loss_forward(x, t, reduction="mean"):
    diff = x - t
    out = _reduce(diff * diff, reduction, diff.size)
    return out, (diff, reduction)


def mse_loss_backward(dout, cache):
    """Returns ``(dx, dt)``."""
    diff, reduction = cache
    if reduction == "none":
        g = dout
    elif reduction == "sum":
        g = np.asarray(dout, dtype=diff.dtype)
    else:
        g = np.asarray(dout / diff.size, dtype=diff.dtype)
    dx = 2 * g * diff
    return dx, -dx


def bce_with_logits_forward(x, t, weight=None, pos_weight=None, reduction="mean"):
    """loss = w [(1 - t) x - (1 + (pw - 1) t) log sigmoid(x)], torch's stable form."""
    ls = log_sigmoid(x)
    lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
    loss = (1 - t) * x - lw * ls
    if weight is not None:
        loss = loss * weight
    loss = loss.astype(x.dtype, copy=False)
    cache = (x, t, ls, lw, weight, pos_weight, reduction, loss.size)
    return _reduce(loss, reduction, loss.size), cache


def bce_with_logits_backward(dout, cache):
    """Returns ``(dx, dt)``: dx = w [(1 - t) - lw sigmoid(-x)], dt = w [-x - (pw - 1) ls]."""
    x, t, ls, lw, weight, pos_weight, reduction, size = cache
    g = dout if reduction == "none" else dout / size if reduction == "mean" else dout
    g = np.asarray(g, dtype=x.dtype)
    if weight is not None:
        g = g * weight
    dx = g * ((1 - t) - lw * sigmoid(-x))
    dt = g * (-x if pos_weight is None else -x - (pos_weight - 1) * ls)
    return dx.astype(x.dtype, copy=False), dt.astype(x.dtype, copy=False)
