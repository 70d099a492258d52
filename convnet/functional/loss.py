"""Loss functions as Tensor ops: thin Functions over ``convnet.ops.loss``.

Classification losses take scores with the classes on the LAST axis: (N, C), or
(N, ..., C) for dense prediction on NHWC maps (torch puts C on axis 1 instead), or
(C,) for a single sample.  Integer targets have the scores' shape without the last axis.
"""

from __future__ import annotations

import numpy as np

from ..ops import loss as loss_ops
from ..tensor import Function, Tensor
from ._checks import float_input

__all__ = ["cross_entropy", "nll_loss", "multi_margin_loss", "mse_loss",
           "binary_cross_entropy_with_logits"]


# ---- validation ---------------------------------------------------------------

def _check_reduction(reduction, op):
    if reduction not in loss_ops.REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _scores(x, op, name="input"):
    t = float_input(x, op, name=name)
    if t.ndim == 0:
        raise ValueError(f"{op}: {name} must be (C,), (N, C) or (N, ..., C) with classes on "
                         f"the last axis, got a 0-D array")
    if t.shape[-1] == 0:
        raise ValueError(f"{op}: {name} must have at least one class, got shape {t.shape}")
    return t


def _as_array(x, op, name):
    if x is None:
        return None
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, (np.ndarray, list, tuple, int, float, np.number)):
        return np.asarray(x)
    raise TypeError(f"{op}: {name} must be a Tensor or an array, got {type(x).__name__}")


def _labels(target, scores_shape, op, ignore_index=None, classes=None):
    """Validate integer class labels for scores of ``scores_shape``; return an int array."""
    y = _as_array(target, op, "target")
    c = scores_shape[-1] if classes is None else classes
    want = tuple(scores_shape[:-1])
    if y.dtype.kind not in "iu":
        raise TypeError(f"{op}: target of shape {y.shape} must hold integer class indices, "
                        f"got dtype {y.dtype}")
    if y.shape != want:
        raise ValueError(f"{op}: target has shape {y.shape} but input {tuple(scores_shape)} "
                         f"expects class indices of shape {want}")
    bad = (y < 0) | (y >= c)
    if ignore_index is not None:
        bad &= y != ignore_index
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        extra = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
        at = f" at index {idx[0] if len(idx) == 1 else idx}" if idx else ""
        raise ValueError(f"{op}: target labels must be in [0, {c - 1}]{extra} for {c} classes, "
                         f"got {int(y[bad].flat[0])}{at}")
    return y.astype(np.int64, copy=False)


def _class_weight(weight, c, op, name="weight"):
    w = _as_array(weight, op, name)
    if w is None:
        return None
    if w.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a float array, got dtype {w.dtype}")
    if w.shape != (c,):
        raise ValueError(f"{op}: {name} must have shape ({c},), one per class, got {w.shape}")
    return w


def _broadcast_weight(weight, shape, op, name):
    w = _as_array(weight, op, name)
    if w is None:
        return None
    if w.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a float array, got dtype {w.dtype}")
    try:
        ok = np.broadcast_shapes(w.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{op}: {name} of shape {w.shape} does not broadcast to the input "
                         f"shape {tuple(shape)}")
    return w


# ---- Functions ----------------------------------------------------------------

class CrossEntropyFn(Function):
    def forward(self, z, target, weight, ignore_index, label_smoothing, reduction, probs):
        c = z.shape[-1]
        self.shapes = z.shape, target.shape, target.dtype
        self.probs = probs
        z2 = z.reshape(-1, c)                                          # (M, C)
        if probs:
            q = target.reshape(-1, c).astype(z.dtype, copy=False)      # (M, C)
            coef, denom, self.dq = loss_ops.cross_entropy_prob_coef(q, weight, label_smoothing)
        else:
            coef, denom = loss_ops.cross_entropy_index_coef(
                target.reshape(-1), c, z.dtype, weight, ignore_index, label_smoothing)
        out, self.cache = loss_ops.softmax_loss_forward(z2, coef, reduction, denom)
        return out.reshape(z.shape[:-1]) if reduction == "none" else out

    def backward(self, dout):
        z_shape, t_shape, t_dtype = self.shapes
        dz, dcoef = loss_ops.softmax_loss_backward(dout, self.cache)
        dt = None
        if self.probs and self.needs_input_grad[1]:
            dt = (dcoef * self.dq).reshape(t_shape).astype(t_dtype, copy=False)
        return dz.reshape(z_shape), dt


class NLLLossFn(Function):
    def forward(self, logp, y, weight, ignore_index, reduction):
        c = logp.shape[-1]
        self.shape = logp.shape
        out, self.cache = loss_ops.nll_loss_forward(logp.reshape(-1, c), y.reshape(-1), weight,
                                                    ignore_index, reduction)
        return out.reshape(logp.shape[:-1]) if reduction == "none" else out

    def backward(self, dout):
        return loss_ops.nll_loss_backward(dout, self.cache).reshape(self.shape), None


class MultiMarginFn(Function):
    def forward(self, x, y, p, margin, weight, reduction):
        c = x.shape[-1]
        self.shape = x.shape
        out, self.cache = loss_ops.multi_margin_loss_forward(
            x.reshape(-1, c), y.reshape(-1), p, margin, weight, reduction)
        return out.reshape(x.shape[:-1]) if reduction == "none" else out

    def backward(self, dout):
        return loss_ops.multi_margin_loss_backward(dout, self.cache).reshape(self.shape), None


class MSELossFn(Function):
    def forward(self, x, t, reduction):
        out, self.cache = loss_ops.mse_loss_forward(x, t, reduction)
        return out

    def backward(self, dout):
        dx, dt = loss_ops.mse_loss_backward(dout, self.cache)
        return dx, dt


class BCEWithLogitsFn(Function):
    def forward(self, x, t, weight, pos_weight, reduction):
        out, self.cache = loss_ops.bce_with_logits_forward(x, t, weight, pos_weight, reduction)
        return out

    def backward(self, dout):
        dx, dt = loss_ops.bce_with_logits_backward(dout, self.cache)
        return dx, dt


# ---- public functions -----------------------------------------------------------

def cross_entropy(input, target, weight=None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy from raw scores, PyTorch's definition.

    Args:
        input: logits (N, C), (N, ..., C) or (C,); classes on the last axis.
        target: int class indices with the shape of ``input`` minus its last axis, or
            float class probabilities with the shape of ``input`` (differentiable).
        weight: optional (C,) rescaling per class.
        ignore_index: label whose rows contribute nothing (index targets only).
        reduction: 'mean' (weighted by ``weight[target]`` for index targets), 'sum' or
            'none'.
        label_smoothing: eps in [0, 1]: the target becomes (1 - eps) target + eps / C.

    Returns:
        A scalar, or per-sample losses of shape ``input.shape[:-1]`` for 'none'.
    """
    op = "cross_entropy"
    x = _scores(input, op)
    _check_reduction(reduction, op)
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    c = x.shape[-1]
    w = _class_weight(weight, c, op)
    t = target if isinstance(target, Tensor) else _as_array(target, op, "target")
    tdata = t.data if isinstance(t, Tensor) else t
    if tdata.shape == x.shape and tdata.dtype.kind == "f":
        probs = True
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index is not supported for probability targets, "
                             f"got ignore_index={ignore_index}")
    elif tdata.shape == x.shape and tdata.dtype.kind in "iub":
        raise TypeError(f"{op}: a target of the input's shape {x.shape} holds class "
                        f"probabilities and must be float, got dtype {tdata.dtype}")
    elif tdata.shape != x.shape[:-1]:
        raise ValueError(f"{op}: target has shape {tdata.shape} but input {x.shape} expects "
                         f"class indices of shape {x.shape[:-1]} or probabilities of shape "
                         f"{x.shape}")
    else:
        probs = False
        tdata = _labels(tdata, x.shape, op, ignore_index)
        t = tdata
    return CrossEntropyFn.apply(x, t, weight=w, ignore_index=ignore_index,
                                label_smoothing=float(label_smoothing), reduction=reduction,
                                probs=probs)


def nll_loss(input, target, weight=None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: loss_n = -weight[y_n] * input[n, y_n].

    Args:
        input: log-probabilities (N, C), (N, ..., C) or (C,), e.g. from ``log_softmax``.
        target: int class indices of shape ``input.shape[:-1]``.
        weight: optional (C,) rescaling per class.
        ignore_index: label whose rows contribute nothing.
        reduction: 'mean' (divides by the sum of ``weight[target]``), 'sum' or 'none'.
    """
    op = "nll_loss"
    x = _scores(input, op)
    _check_reduction(reduction, op)
    w = _class_weight(weight, x.shape[-1], op)
    y = _labels(target, x.shape, op, ignore_index)
    return NLLLossFn.apply(x, y, weight=w, ignore_index=ignore_index, reduction=reduction)


def multi_margin_loss(input, target, p: int = 1, margin: float = 1.0, weight=None,
                      reduction: str = "mean") -> Tensor:
    """Multiclass hinge loss, the SVM loss of seed 004 (PyTorch's definition).

        loss_n = sum_{j != y_n} weight[y_n] * max(0, margin - x[n, y_n] + x[n, j])^p / C

    Args:
        input: scores (N, C), (N, ..., C) or (C,).
        target: int class indices of shape ``input.shape[:-1]``.
        p: 1 (hinge) or 2 (squared hinge).
        margin: the required gap between the true class and every other class.
        weight: optional (C,) rescaling per class.
        reduction: 'mean' (over samples), 'sum' or 'none'.
    """
    op = "multi_margin_loss"
    x = _scores(input, op)
    _check_reduction(reduction, op)
    if p not in (1, 2) or isinstance(p, bool):
        raise ValueError(f"{op}: p must be 1 or 2, got {p!r}")
    w = _class_weight(weight, x.shape[-1], op)
    y = _labels(target, x.shape, op)
    return MultiMarginFn.apply(x, y, p=int(p), margin=float(margin), weight=w,
                               reduction=reduction)


def _pair(input, target, op):
    x = float_input(input, op)
    t = float_input(target, op, name="target")
    if t.shape != x.shape:
        raise ValueError(f"{op}: target has shape {t.shape} but input has shape {x.shape}; "
                         f"they must match")
    if t.dtype != x.dtype:
        t = t.astype(x.dtype)
    return x, t


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean squared error: (input - target)^2, reduced.  Both arguments are
    differentiable and must have the same shape."""
    op = "mse_loss"
    _check_reduction(reduction, op)
    x, t = _pair(input, target, op)
    return MSELossFn.apply(x, t, reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """Sigmoid plus binary cross-entropy in one stable step (PyTorch's definition).

        loss = weight * [(1 - t) x - (1 + (pos_weight - 1) t) log sigmoid(x)]

    Args:
        input: logits of any shape.
        target: float targets in [0, 1], same shape (differentiable).
        weight: optional array broadcastable to the input's shape.
        reduction: 'mean', 'sum' or 'none'.
        pos_weight: optional weight of the positive term, broadcast along the last axis
            (one per class: (C,)).
    """
    op = "binary_cross_entropy_with_logits"
    _check_reduction(reduction, op)
    x, t = _pair(input, target, op)
    w = _broadcast_weight(weight, x.shape, op, "weight")
    pw = _broadcast_weight(pos_weight, x.shape, op, "pos_weight")
    w = None if w is None else w.astype(x.dtype, copy=False)
    pw = None if pw is None else pw.astype(x.dtype, copy=False)
    return BCEWithLogitsFn.apply(x, t, weight=w, pos_weight=pw, reduction=reduction)

