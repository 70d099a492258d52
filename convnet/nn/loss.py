"""Loss layers: thin Modules over ``convnet.functional``'s losses (PyTorch's names)."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..functional.loss import _check_reduction
from ..tensor import Tensor
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MultiMarginLoss", "MSELoss", "BCEWithLogitsLoss"]


def _weight_buffer(module, name, value):
    if value is None:
        module.register_buffer(name, None)
        return
    arr = value.data if isinstance(value, Tensor) else value
    arr = np.array(arr, copy=True)
    if arr.dtype.kind != "f":
        raise TypeError(f"{type(module).__name__}: {name} must be a float array, "
                        f"got dtype {arr.dtype}")
    module.register_buffer(name, arr)


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        _check_reduction(reduction, type(self).__name__)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from raw logits, with the classes on the last axis.

    Args:
        weight: optional (C,) per-class weight (a ``weight`` buffer, as in PyTorch).
        ignore_index: label whose samples are skipped. Default -100.
        reduction: 'mean' (weighted mean over the kept samples), 'sum' or 'none'.
        label_smoothing: eps in [0, 1]; the target becomes (1 - eps) onehot + eps / C.

    Input shape:
        logits (N, C), (N, ..., C) or (C,); target: int class indices of shape
        (N, ...) or float probabilities of the logits' shape
    Output shape:
        () for 'mean' and 'sum', (N, ...) for 'none'

    Example:
        >>> loss_fn = CrossEntropyLoss(label_smoothing=0.1)
        >>> loss = loss_fn(Tensor(np.zeros((4, 10))), np.array([1, 2, 3, 4]))
        >>> loss.shape
        ()
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        _weight_buffer(self, "weight", weight)
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                               self.label_smoothing)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (f", label_smoothing={self.label_smoothing}" if self.label_smoothing else "")


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (pair it with ``LogSoftmax``).

    Args:
        weight: optional (C,) per-class weight.
        ignore_index: label whose samples are skipped. Default -100.
        reduction: 'mean' (divided by the sum of the targets' weights), 'sum' or 'none'.

    Input shape:
        log-probabilities (N, C), (N, ..., C) or (C,); int target (N, ...)
    Output shape:
        () for 'mean' and 'sum', (N, ...) for 'none'

    Example:
        >>> NLLLoss()(Tensor(np.log(np.full((2, 4), 0.25))), np.array([0, 3])).item()
        1.3862943611198906
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        _weight_buffer(self, "weight", weight)
        self.ignore_index = int(ignore_index)

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class MultiMarginLoss(_Loss):
    """The multiclass SVM (hinge) loss of seed 004, PyTorch's definition:

        loss_n = sum_{j != y_n} weight[y_n] * max(0, margin - x[n, y_n] + x[n, j])^p / C

    Args:
        p: 1 (hinge) or 2 (squared hinge). Default 1.
        margin: the required score gap. Default 1.0.
        weight: optional (C,) per-class weight.
        reduction: 'mean', 'sum' or 'none'.

    Input shape:
        scores (N, C) or (C,); int target (N,)
    Output shape:
        () for 'mean' and 'sum', (N,) for 'none'

    Example:
        >>> loss = MultiMarginLoss()(Tensor(np.array([[0.1, 0.2, 0.4, 0.8]])), np.array([3]))
        >>> round(loss.item(), 4)  # (0.3 + 0.4 + 0.6) / 4
        0.325
    """

    def __init__(self, p=1, margin=1.0, weight=None, reduction="mean"):
        super().__init__(reduction)
        if p not in (1, 2) or isinstance(p, bool):
            raise ValueError(f"{type(self).__name__}: p must be 1 or 2, got {p!r}")
        self.p, self.margin = int(p), float(margin)
        _weight_buffer(self, "weight", weight)

    def forward(self, input, target):
        return F.multi_margin_loss(input, target, self.p, self.margin, self.weight,
                                   self.reduction)

    def extra_repr(self) -> str:
        return f"p={self.p}, margin={self.margin}, " + super().extra_repr()


class MSELoss(_Loss):
    """Mean squared error between input and target of the same shape.

    Args:
        reduction: 'mean', 'sum' or 'none'.

    Input shape:
        input and target: any, equal shapes
    Output shape:
        () for 'mean' and 'sum', the input's shape for 'none'

    Example:
        >>> MSELoss()(Tensor(np.array([1.0, 2.0])), np.array([0.0, 0.0])).item()
        2.5
    """

    def forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid and binary cross-entropy in one stable step.

    Args:
        weight: optional weight broadcastable to the input (a ``weight`` buffer).
        reduction: 'mean', 'sum' or 'none'.
        pos_weight: optional weight of the positive term, one per class (C,),
            broadcast along the last axis (a ``pos_weight`` buffer).

    Input shape:
        logits: any; target: float in [0, 1], same shape
    Output shape:
        () for 'mean' and 'sum', the input's shape for 'none'

    Example:
        >>> loss = BCEWithLogitsLoss()(Tensor(np.zeros((2, 3))), np.ones((2, 3)))
        >>> round(loss.item(), 4)  # log 2
        0.6931
    """

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        _weight_buffer(self, "weight", weight)
        _weight_buffer(self, "pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction,
                                                  self.pos_weight)
