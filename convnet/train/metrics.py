"""Classification metrics on plain arrays: accuracy, top-k accuracy, confusion matrix,
and a running accumulator the fit loop and ``evaluate`` share.

Scores are ``(N, C)`` logits or probabilities (any monotone score works: only the
ranking matters); targets are ``(N,)`` integer class indices in ``[0, C)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "topk_accuracy", "confusion_matrix", "per_class_metrics",
           "MetricAccumulator", "check_targets"]


def _scores(scores, op: str) -> np.ndarray:
    s = np.asarray(getattr(scores, "data", scores))
    if s.ndim != 2:
        raise ValueError(f"{op}: scores must be (N, C), got shape {s.shape}")
    return s


def check_targets(targets, n: int, num_classes: int | None, op: str) -> np.ndarray:
    """Targets as an int64 ``(N,)`` array, or a ValueError naming what is wrong."""
    t = np.asarray(getattr(targets, "data", targets))
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"{op}: targets must have shape ({n},), got {t.shape}")
    if t.size and t.dtype.kind == "f":
        if not np.all(t == np.round(t)):
            raise ValueError(f"{op}: targets must be integer class indices, got dtype "
                             f"{t.dtype} with fractional values")
    elif t.dtype.kind not in "iub":
        raise ValueError(f"{op}: targets must be integer class indices, got dtype {t.dtype}")
    t = t.astype(np.int64)
    if t.size and (t.min() < 0 or (num_classes is not None and t.max() >= num_classes)):
        bad = t[(t < 0) | (t >= (num_classes if num_classes is not None else np.inf))][0]
        raise ValueError(f"{op}: target {bad} is outside [0, {num_classes})")
    return t


def accuracy(scores, targets) -> float:
    """Fraction of rows whose highest score is the target class."""
    s = _scores(scores, "accuracy")
    t = check_targets(targets, s.shape[0], s.shape[1], "accuracy")
    return float(np.mean(s.argmax(axis=1) == t)) if t.size else float("nan")


def _topk_hits(s: np.ndarray, t: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: is the target among the k highest scores?  Ties count against the
    target: a class is in the top k when fewer than k classes score strictly higher."""
    target_score = s[np.arange(s.shape[0]), t]  # (N,)
    higher = np.sum(s > target_score[:, None], axis=1)  # (N,)
    return higher < k


def topk_accuracy(scores, targets, k: int = 5) -> float:
    """Fraction of rows whose target is among the ``k`` highest-scoring classes."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"topk_accuracy: k must be an int >= 1, got {k!r}")
    s = _scores(scores, "topk_accuracy")
    t = check_targets(targets, s.shape[0], s.shape[1], "topk_accuracy")
    return float(np.mean(_topk_hits(s, t, int(k)))) if t.size else float("nan")


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """``(C, C)`` int64 counts: row = true class, column = predicted class."""
    yt = np.asarray(y_true).astype(np.int64).ravel()
    yp = np.asarray(y_pred).astype(np.int64).ravel()
    if yt.shape != yp.shape:
        raise ValueError(f"confusion_matrix: y_true has {yt.size} labels but y_pred has "
                         f"{yp.size}")
    if num_classes is None:
        num_classes = int(max(yt.max(initial=-1), yp.max(initial=-1))) + 1
    for name, y in (("y_true", yt), ("y_pred", yp)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} has labels outside [0, {num_classes})")
    flat = yt * num_classes + yp  # (N,) cell index
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)  # (C, C)


def per_class_metrics(cm: np.ndarray) -> dict:
    """Precision, recall and F1 per class from a confusion matrix (NaN where undefined)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / cm.sum(axis=0)
        recall = tp / cm.sum(axis=1)
        f1 = 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1}


class MetricAccumulator:
    """Sums over batches: loss * batch size, correct predictions, top-k hits, and
    (optionally) the confusion matrix.  ``state_dict`` makes a mid-epoch checkpoint
    carry the partial sums, so a resumed epoch reports the same figures."""

    def __init__(self, topk=(), num_classes: int | None = None, confusion: bool = False):
        self.topk = tuple(int(k) for k in topk)
        self.num_classes = num_classes
        self.confusion = confusion
        self.reset()

    def reset(self) -> None:
        self.count = 0  # samples seen (for the loss)
        self.scored = 0  # samples with class scores (for the accuracies)
        self.loss_sum = 0.0
        self.correct = 0
        self.topk_hits = {k: 0 for k in self.topk}
        self.cm = None

    def update_loss(self, loss: float, n: int) -> None:
        """Only the loss, for models whose outputs are not class scores."""
        self.loss_sum += float(loss) * n
        self.count += n

    def update(self, scores, targets, loss: float | None = None) -> None:
        s = _scores(scores, "metrics")
        t = check_targets(targets, s.shape[0], s.shape[1], "metrics")
        n = t.shape[0]
        if loss is not None:
            self.loss_sum += float(loss) * n
        self.count += n
        self.scored += n
        pred = s.argmax(axis=1)  # (N,)
        self.correct += int(np.sum(pred == t))
        for k in self.topk:
            self.topk_hits[k] += int(np.sum(_topk_hits(s, t, k)))
        if self.confusion:
            c = self.num_classes or s.shape[1]
            cm = confusion_matrix(t, pred, c)
            self.cm = cm if self.cm is None else self.cm + cm

    def result(self) -> dict:
        n, m = self.count, self.scored
        out = {"loss": self.loss_sum / n if n else float("nan"),
               "accuracy": self.correct / m if m else float("nan")}
        for k in self.topk:
            out[f"top{k}_accuracy"] = self.topk_hits[k] / m if m else float("nan")
        return out

    def state_dict(self) -> dict:
        return {"count": self.count, "scored": self.scored, "loss_sum": self.loss_sum,
                "correct": self.correct,
                "topk_hits": {str(k): v for k, v in self.topk_hits.items()}, "cm": self.cm}

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state["count"])
        self.scored = int(state.get("scored", state["count"]))
        self.loss_sum = float(state["loss_sum"])
        self.correct = int(state["correct"])
        self.topk_hits = {int(k): int(v) for k, v in state["topk_hits"].items()}
        self.cm = None if state.get("cm") is None else np.asarray(state["cm"])
