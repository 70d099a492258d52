"""Normalization layers as forward/backward pairs: batch, layer and group norm.

Notation:
    x       input (N, ..., C), channels last (NHWC for images)
    gamma   scale, beta shift: (C,) for batch/group norm, normalized_shape for layer norm
    mu, var mean and biased variance over the normalized axes (one per group)
    xhat    (x - mu) / sqrt(var + eps)
    out     gamma * xhat + beta

    batch norm   statistics over every axis but the last: N, H, W per channel
    layer norm   statistics over the last k axes, per sample
    group norm   statistics over the spatial axes and the C/G channels of each group,
                 per sample and group

Backward, the compact formula (one pass, no per-term chain).  With dxhat = dout * gamma
and means taken over the normalized axes,

    dx     = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)
    dgamma = sum(dout * xhat),   dbeta = sum(dout)    over every axis gamma broadcasts on

In evaluation batch norm uses fixed running statistics, so the mean and variance are
constants and dx = dout * gamma / sqrt(running_var + eps).
"""

from __future__ import annotations

import numpy as np


def _stats(x, axes, eps):
    """Per-group mean and biased variance, (keepdims); returns (xhat, inv_std, mu, var)."""
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    return xc * inv_std, inv_std, mu, var


def _affine(xhat, gamma, beta):
    out = xhat if gamma is None else xhat * gamma
    return out if beta is None else out + beta


def normalize_backward(dxhat, xhat, inv_std, axes):
    """The compact formula: dx given dxhat = dL/dxhat and the saved xhat, 1/std."""
    mean_d = dxhat.mean(axis=axes, keepdims=True)
    mean_dx = (dxhat * xhat).mean(axis=axes, keepdims=True)
    return inv_std * (dxhat - mean_d - xhat * mean_dx)


def _param_grads(dout, xhat, gamma, beta, lead_axes, need):
    dgamma = (dout * xhat).sum(axis=lead_axes) if gamma is not None and need[1] else None
    dbeta = dout.sum(axis=lead_axes) if beta is not None and need[2] else None
    return dgamma, dbeta


# ---- batch norm --------------------------------------------------------------

def batch_norm_train_forward(x, gamma, beta, eps=1e-5):
    """Batch statistics over all axes but the last.

    Returns ``(out, cache, mean, var)`` with the (C,) batch mean and biased variance."""
    axes = tuple(range(x.ndim - 1))
    xhat, inv_std, mu, var = _stats(x, axes, eps)                 # stats (1, ..., 1, C)
    out = _affine(xhat, gamma, beta)                              # (N, ..., C)
    cache = ("train", xhat, inv_std, gamma, beta, axes)
    return out, cache, mu.reshape(-1), var.reshape(-1)


def batch_norm_eval_forward(x, gamma, beta, running_mean, running_var, eps=1e-5):
    """Normalize with fixed (C,) statistics; returns ``(out, cache)``."""
    axes = tuple(range(x.ndim - 1))
    inv_std = (1.0 / np.sqrt(running_var + eps)).astype(x.dtype, copy=False)   # (C,)
    xhat = (x - running_mean.astype(x.dtype, copy=False)) * inv_std           # (N, ..., C)
    out = _affine(xhat, gamma, beta)
    return out, ("eval", xhat, inv_std, gamma, beta, axes)


def batch_norm_backward(dout, cache, need=(True, True, True)):
    """Returns ``(dx, dgamma, dbeta)``; entries not in ``need`` are None."""
    mode, xhat, inv_std, gamma, beta, axes = cache
    dgamma, dbeta = _param_grads(dout, xhat, gamma, beta, axes, need)
    dx = None
    if need[0]:
        dxhat = dout if gamma is None else dout * gamma           # (N, ..., C)
        if mode == "train":
            dx = normalize_backward(dxhat, xhat, inv_std, axes)
        else:
            dx = dxhat * inv_std
    return dx, dgamma, dbeta


def update_running_stats(running_mean, running_var, mean, var, count, momentum):
    """In place: r <- (1 - momentum) r + momentum * batch statistic.

    ``var`` is the biased batch variance over ``count`` values; the running variance
    takes the unbiased one, var * count / (count - 1), as PyTorch does."""
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += momentum * mean
    if running_var is not None:
        running_var *= 1 - momentum
        running_var += momentum * var * (count / (count - 1))


# ---- layer norm --------------------------------------------------------------

def layer_norm_forward(x, gamma, beta, k, eps=1e-5):
    """Normalize over the last ``k`` axes; gamma and beta have those axes' shape."""
    axes = tuple(range(x.ndim - k, x.ndim))
    xhat, inv_std, _, _ = _stats(x, axes, eps)                    # stats (N, ..., 1 x k)
    out = _affine(xhat, gamma, beta)
    return out, (xhat, inv_std, gamma, beta, axes)


def layer_norm_backward(dout, cache, need=(True, True, True)):
    xhat, inv_std, gamma, beta, axes = cache
    lead = tuple(range(xhat.ndim - len(axes)))
    dgamma, dbeta = _param_grads(dout, xhat, gamma, beta, lead, need)
    dx = None
    if need[0]:
        dxhat = dout if gamma is None else dout * gamma
        dx = normalize_backward(dxhat, xhat, inv_std, axes)
    return dx, dgamma, dbeta


# ---- group norm --------------------------------------------------------------

def group_norm_forward(x, gamma, beta, groups, eps=1e-5):
    """Channels-last group norm: x (N, *S, C) with C divisible by ``groups``."""
    n, c = x.shape[0], x.shape[-1]
    xg = x.reshape(n, -1, groups, c // groups)                    # (N, S, G, C/G)
    xhat_g, inv_std, _, _ = _stats(xg, (1, 3), eps)               # stats (N, 1, G, 1)
    xhat = xhat_g.reshape(x.shape)                                # (N, ..., C)
    out = _affine(xhat, gamma, beta)
    return out, (xhat_g, inv_std, gamma, beta, x.shape)


def group_norm_backward(dout, cache, need=(True, True, True)):
    xhat_g, inv_std, gamma, beta, x_shape = cache
    xhat = xhat_g.reshape(x_shape)
    lead = tuple(range(len(x_shape) - 1))
    dgamma, dbeta = _param_grads(dout, xhat, gamma, beta, lead, need)
    dx = None
    if need[0]:
        dxhat = (dout if gamma is None else dout * gamma).reshape(xhat_g.shape)  # (N,S,G,C/G)
        dx = normalize_backward(dxhat, xhat_g, inv_std, (1, 3)).reshape(x_shape)
    return dx, dgamma, dbeta
