"""Normalization as Tensor ops: thin Functions over ``convnet.ops.norm``.

All of them are channels-last: batch and group norm read the channel from the last
axis of (N, C), (N, L, C), (N, H, W, C) or (N, D, H, W, C).
"""

from __future__ import annotations

import numpy as np

from ..ops import norm as norm_ops
from ..tensor import Function, Tensor
from ._checks import check_ndim, float_input

__all__ = ["batch_norm", "layer_norm", "group_norm"]


class BatchNormTrainFn(Function):
    def forward(self, x, gamma, beta, eps):
        out, self.cache, self.mean, self.var = norm_ops.batch_norm_train_forward(
            x, gamma, beta, eps)
        return out

    def backward(self, dout):
        return norm_ops.batch_norm_backward(dout, self.cache, self.needs_input_grad)


class BatchNormEvalFn(Function):
    def forward(self, x, gamma, beta, running_mean, running_var, eps):
        out, self.cache = norm_ops.batch_norm_eval_forward(x, gamma, beta, running_mean,
                                                           running_var, eps)
        return out

    def backward(self, dout):
        return norm_ops.batch_norm_backward(dout, self.cache, self.needs_input_grad)


class LayerNormFn(Function):
    def forward(self, x, gamma, beta, k, eps):
        out, self.cache = norm_ops.layer_norm_forward(x, gamma, beta, k, eps)
        return out

    def backward(self, dout):
        return norm_ops.layer_norm_backward(dout, self.cache, self.needs_input_grad)


class GroupNormFn(Function):
    def forward(self, x, gamma, beta, groups, eps):
        out, self.cache = norm_ops.group_norm_forward(x, gamma, beta, groups, eps)
        return out

    def backward(self, dout):
        return norm_ops.group_norm_backward(dout, self.cache, self.needs_input_grad)


# ---- validation ---------------------------------------------------------------

def _param(t, shape, op, name):
    if t is None:
        return None
    t = float_input(t, op, name=name)
    if t.shape != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {t.shape}")
    return t


def _stat(a, c, op, name):
    """A running statistic: an ndarray (or Tensor) of shape (C,), updated in place."""
    if a is None:
        return None
    arr = a.data if isinstance(a, Tensor) else a
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{op}: {name} must be an ndarray of shape ({c},) (it is updated in "
                        f"place), got {type(a).__name__}")
    if arr.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a float array, got dtype {arr.dtype}")
    if arr.shape != (c,):
        raise ValueError(f"{op}: {name} must have shape ({c},), got {arr.shape}")
    return arr


def _eps(eps, op):
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
        raise ValueError(f"{op}: eps must be a non-negative number, got {eps!r}")
    return float(eps)


# ---- public functions -----------------------------------------------------------

def batch_norm(x, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalization over every axis but the last (channels-last).

    Args:
        x: (N, C), (N, L, C), (N, H, W, C) or (N, D, H, W, C); statistics are per channel
            over N (2-D), N, L (3-D) or N, H, W (4-D), ...
        running_mean, running_var: (C,) ndarrays or None.  In training they are updated in
            place: r = (1 - momentum) r + momentum * batch statistic, with the unbiased
            batch variance for ``running_var`` (PyTorch's rule).  In evaluation they
            replace the batch statistics and must be given.
        weight, bias: (C,) scale gamma and shift beta, or None.
        training: use batch statistics (True) or the running ones (False).
        momentum: weight of the new batch in the running averages.
        eps: added to the variance before the square root.

    Returns:
        Tensor of the shape of ``x``: gamma (x - mean) / sqrt(var + eps) + beta.
    """
    op = "batch_norm"
    x = float_input(x, op, layout="(N, ..., C)")
    if x.ndim < 2:
        raise ValueError(f"{op}: input must be at least 2-D (N, ..., C), got {x.ndim}-D with "
                         f"shape {x.shape}")
    c = x.shape[-1]
    rm = _stat(running_mean, c, op, "running_mean")
    rv = _stat(running_var, c, op, "running_var")
    weight = _param(weight, (c,), op, "weight")
    bias = _param(bias, (c,), op, "bias")
    eps = _eps(eps, op)
    if training:
        count = x.size // c if c else 0
        if count <= 1:
            raise ValueError(f"{op}: training needs more than 1 value per channel, got input "
                             f"shape {x.shape}")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) \
                or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{op}: momentum must be a number in [0, 1], got {momentum!r}")
        out, ctx = BatchNormTrainFn.apply_with_ctx(x, weight, bias, eps=eps)
        norm_ops.update_running_stats(rm, rv, ctx.mean, ctx.var, count, float(momentum))
        return out
    if rm is None or rv is None:
        raise ValueError(f"{op}: evaluation (training=False) needs running_mean and "
                         f"running_var, got None")
    return BatchNormEvalFn.apply(x, weight, bias, running_mean=rm, running_var=rv, eps=eps)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Layer normalization over the trailing ``normalized_shape`` axes, per sample.

    Args:
        x: (N, ..., *normalized_shape); for NHWC maps ``normalized_shape=(C,)`` normalizes
            each pixel over its channels, ``(H, W, C)`` the whole sample.
        normalized_shape: int or tuple, the trailing shape of ``x``.
        weight, bias: arrays of ``normalized_shape``, or None.
        eps: added to the variance.
    """
    op = "layer_norm"
    x = float_input(x, op)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0
                     for s in shape):
        raise ValueError(f"{op}: normalized_shape must be a positive int or a tuple of them, "
                         f"got {normalized_shape!r}")
    if x.ndim < k or x.shape[x.ndim - k:] != shape:
        raise ValueError(f"{op}: input of shape {x.shape} does not end with normalized_shape "
                         f"{shape}")
    weight = _param(weight, shape, op, "weight")
    bias = _param(bias, shape, op, "bias")
    return LayerNormFn.apply(x, weight, bias, k=k, eps=_eps(eps, op))


def group_norm(x, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Group normalization, channels-last: the C channels split into ``num_groups``
    groups and each (sample, group) is normalized over its spatial axes and channels.

    Args:
        x: (N, ..., C), e.g. (N, H, W, C).
        num_groups: G, which must divide C.  G = 1 is layer norm over (H, W, C);
            G = C is instance norm.
        weight, bias: (C,) per-channel scale and shift, or None.
        eps: added to the variance.
    """
    op = "group_norm"
    x = float_input(x, op)
    check_ndim(x, tuple(range(2, 7)), op, layout="(N, ..., C)")
    c = x.shape[-1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) \
            or num_groups <= 0:
        raise ValueError(f"{op}: num_groups must be a positive int, got {num_groups!r}")
    if c % num_groups:
        raise ValueError(f"{op}: num_groups={num_groups} does not divide the {c} channels")
    weight = _param(weight, (c,), op, "weight")
    bias = _param(bias, (c,), op, "bias")
    return GroupNormFn.apply(x, weight, bias, groups=int(num_groups), eps=_eps(eps, op))
