"""Gradient clipping: by global norm (non-finite norms raise) and by value."""

from __future__ import annotations

import math

import numpy as np

from .optimizer import check_number

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _with_grads(parameters) -> list:
    if hasattr(parameters, "data"):
        parameters = [parameters]
    return [p for p in parameters if getattr(p, "grad", None) is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = True) -> float:
    """Scale all gradients together so that their global norm is at most ``max_norm``.

    The global norm is the ``norm_type``-norm of the per-parameter gradient norms (the
    norm of all gradients concatenated).  Each gradient is multiplied in place by
    ``min(1, max_norm / (norm + 1e-6))``, as ``torch.nn.utils.clip_grad_norm_`` does.

    Args:
        parameters: an iterable of Parameters (or one); those without ``.grad`` are skipped.
        max_norm: the largest allowed norm (>= 0).
        norm_type: the p of the p-norm (> 0), or ``math.inf`` for the largest magnitude.
        error_if_nonfinite: raise ``FloatingPointError`` when the norm is NaN or infinite
            (the default here, unlike PyTorch), naming the first offending parameter.

    Returns:
        The global norm before clipping, as a float.

    Example:
        >>> loss.backward()
        >>> norm = clip_grad_norm_(model.parameters(), max_norm=1.0)
    """
    max_norm = check_number("clip_grad_norm_", "max_norm", max_norm, low=0.0)
    norm_type = float(norm_type)
    if not (norm_type > 0):
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 or inf, got {norm_type}")
    params = _with_grads(parameters)
    if not params:
        return 0.0
    grads = [np.asarray(p.grad) for p in params]
    if math.isinf(norm_type):
        norms = np.array([np.max(np.abs(g)) if g.size else 0.0 for g in grads], np.float64)
        total = float(norms.max())
    else:
        norms = np.array([np.sum(np.abs(g.astype(np.float64)) ** norm_type) ** (1 / norm_type)
                          for g in grads])
        total = float(np.sum(norms ** norm_type) ** (1 / norm_type))
    if not math.isfinite(total):
        if error_if_nonfinite:
            bad = next((i for i, g in enumerate(grads) if not np.all(np.isfinite(g))), None)
            where = (f"; parameter {bad} (shape {grads[bad].shape}) has non-finite gradient "
                     "values" if bad is not None else "; the norm overflowed")
            raise FloatingPointError(
                f"clip_grad_norm_: the total gradient norm is {total} (expected a finite "
                f"number){where}. Lower the learning rate, or pass error_if_nonfinite=False")
    coef = min(max_norm / (total + 1e-6), 1.0)
    for p, g in zip(params, grads):
        p.grad = g * g.dtype.type(coef) if g.dtype.kind == "f" else g * coef
    return total


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``, in place."""
    clip_value = check_number("clip_grad_value_", "clip_value", clip_value, low=0.0)
    for p in _with_grads(parameters):
        p.grad = np.clip(p.grad, -clip_value, clip_value)
