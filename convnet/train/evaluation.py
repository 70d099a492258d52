"""``evaluate``: loss, accuracy, top-k accuracy and the confusion matrix of a model."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor, no_grad
from .inputs import as_loader, batch_arrays, is_classification, resolve_loss
from .metrics import MetricAccumulator, per_class_metrics

__all__ = ["evaluate", "EvalResult"]


class EvalResult(dict):
    """``evaluate``'s metrics: a dict with ``loss``, ``accuracy``, ``topK_accuracy``,
    ``confusion_matrix`` ((C, C) ints, row = true class), ``per_class`` (precision,
    recall, f1) and ``num_samples``.  For a model whose outputs are not (N, C) class
    scores (an autoencoder, a sequence model) only ``loss`` and ``num_samples``."""

    def to_text(self, class_names=None) -> str:
        lines = [f"samples: {self['num_samples']}", f"loss: {self['loss']:.4f}"]
        if "accuracy" in self:
            lines.append(f"accuracy: {self['accuracy']:.4f}")
        lines += [f"{k}: {v:.4f}" for k, v in self.items() if k.startswith("top")]
        if "confusion_matrix" not in self:
            return "\n".join(lines)
        cm = self["confusion_matrix"]
        names = [str(c) for c in (class_names or range(cm.shape[0]))]
        width = max(max(len(n) for n in names), len(str(cm.max())) if cm.size else 1) + 1
        lines.append("confusion matrix (rows: true class, columns: predicted class):")
        lines.append(" " * width + "".join(n.rjust(width) for n in names))
        for name, row in zip(names, cm):
            lines.append(name.rjust(width) + "".join(str(v).rjust(width) for v in row))
        return "\n".join(lines)

    def to_json(self) -> dict:
        """Plain JSON types; NaN (e.g. the precision of a never-predicted class) -> None."""
        from ..io.atomic import _finite

        out = {}
        for k, v in self.items():
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, dict):
                v = {kk: (vv.tolist() if isinstance(vv, np.ndarray) else vv)
                     for kk, vv in v.items()}
            out[k] = _finite(v)
        return out


def evaluate(model, data, loss=None, batch_size: int = 256, topk=(5,),
             num_classes: int | None = None) -> EvalResult:
    """Loss, accuracy, top-k accuracy and the confusion matrix of ``model`` on ``data``.

    Runs in eval mode under ``no_grad`` (the model's mode is restored afterwards).
    ``data`` is a DataLoader, a dataset or an ``(x, y)`` tuple; ``topk`` lists the k of
    the top-k accuracies (a k at or above the number of classes is skipped).
    """
    loss_fn = resolve_loss(loss)
    loader = as_loader(data, batch_size, shuffle=False)
    was_training = model.training
    model.eval()
    acc = None
    try:
        with no_grad():
            for batch in loader:
                x, y = batch_arrays(batch)
                out = model(Tensor(x))
                classify = is_classification(out.data, y)
                if acc is None:
                    c = num_classes or (out.shape[1] if classify else None)
                    acc = MetricAccumulator([k for k in topk if c and k < c], c,
                                            confusion=classify)
                lv = float(loss_fn(out, y).data)
                if classify:
                    acc.update(out.data, y, lv)
                else:  # not class scores (a reconstruction, a sequence): loss only
                    acc.update_loss(lv, len(y))
    finally:
        model.train(was_training)
    if acc is None:
        raise ValueError("evaluate: the data holds no samples")
    res = EvalResult(acc.result() if acc.scored else {"loss": acc.result()["loss"]})
    res["num_samples"] = acc.count
    if acc.cm is not None:
        res["confusion_matrix"] = acc.cm
        res["per_class"] = per_class_metrics(acc.cm)
    return res
