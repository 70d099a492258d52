"""``History``: the per-epoch metrics that ``fit`` returns (Keras' ``History`` shape)."""

from __future__ import annotations

import math

__all__ = ["History"]


class History:
    """Per-epoch metrics, one list per name, aligned with ``epochs``.

    ``fit`` records ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` (with
    validation data), ``lr``, ``time`` (seconds of the epoch's training and validation)
    and ``images_per_sec``; ``history["loss"]`` is the list of training losses.
    ``stop_reason`` says why training stopped early (early stopping, NaN guard), else None.

    Example:
        >>> hist = fit(model, train, val, epochs=3)
        >>> hist["val_accuracy"][-1], hist.best("val_loss")
    """

    def __init__(self):
        self.epochs: list[int] = []
        self.history: dict[str, list] = {}
        self.stop_reason: str | None = None

    def append(self, epoch: int, logs: dict) -> None:
        for key in self.history:
            if key not in logs:
                self.history[key].append(None)
        for key, value in logs.items():
            if key not in self.history:
                self.history[key] = [None] * len(self.epochs)
            self.history[key].append(value)
        self.epochs.append(int(epoch))

    def __getitem__(self, key: str) -> list:
        return self.history[key]

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epochs)

    def keys(self):
        return self.history.keys()

    def last(self) -> dict:
        """The most recent epoch's metrics."""
        return {k: v[-1] for k, v in self.history.items()} if self.epochs else {}

    def best(self, key: str, mode: str = "auto"):
        """The best value of ``key`` (min for losses, max otherwise unless ``mode``)."""
        if mode == "auto":
            mode = "min" if "loss" in key else "max"
        vals = [v for v in self.history.get(key, []) if v is not None and not
                (isinstance(v, float) and math.isnan(v))]
        if not vals:
            return None
        return min(vals) if mode == "min" else max(vals)

    def to_dict(self) -> dict:
        return {"epochs": list(self.epochs), "history": {k: list(v) for k, v in
                                                         self.history.items()},
                "stop_reason": self.stop_reason}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        h = cls()
        h.epochs = [int(e) for e in d.get("epochs", [])]
        h.history = {k: list(v) for k, v in d.get("history", {}).items()}
        h.stop_reason = d.get("stop_reason")
        return h

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in self.last().items())
        return f"History({len(self)} epochs; last: {last})"
