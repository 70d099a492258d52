"""Metric loggers: per-epoch CSV and JSON files, and a per-step log.

The per-epoch files are rewritten whole and atomically after every epoch, so a killed
run never leaves a torn file.  The per-step log is appended to line by line (flushed
each time) and its byte length is part of a training checkpoint: a resumed run cuts it
back to that length, so the log always reads as one uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import os

from ..io.atomic import atomic_write_json, atomic_write_text
from .callbacks import Callback

__all__ = ["CSVLogger", "JSONLogger", "StepLogger"]


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


class CSVLogger(Callback):
    """One row per epoch (``epoch`` then every History key) in a CSV file."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def on_epoch_end(self, trainer, epoch, logs):
        hist = trainer.history
        keys = list(hist.keys())
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["epoch"] + keys)
        for i, e in enumerate(hist.epochs):
            w.writerow([e] + [_fmt(hist[k][i]) for k in keys])
        atomic_write_text(self.path, buf.getvalue())


class JSONLogger(Callback):
    """The whole History as JSON (``{"epochs", "history", "stop_reason", ...}``), plus any
    ``extra`` dict (e.g. the run's configuration and its test metrics)."""

    def __init__(self, path, extra: dict | None = None):
        self.path = os.fspath(path)
        self.extra = dict(extra or {})

    def write(self, trainer) -> None:
        doc = dict(self.extra)
        doc.update(trainer.history.to_dict())
        atomic_write_json(self.path, doc)

    def on_epoch_end(self, trainer, epoch, logs):
        self.write(trainer)

    def on_train_end(self, trainer, logs):
        self.write(trainer)


class StepLogger(Callback):
    """Append ``step,epoch,batch,loss,accuracy`` for every optimizer step to a CSV file.

    Floats are written with ``repr``, which round-trips exactly, so two runs can be
    compared bit for bit.  Each line is written and flushed on its own (the file is not
    held open), so a killed run loses at most the line being written.
    """

    HEADER = "step,epoch,batch,loss,accuracy\n"

    def __init__(self, path):
        self.path = os.fspath(path)

    def _append(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)

    def on_train_begin(self, trainer):
        if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            self._append(self.HEADER)

    def on_batch_end(self, trainer, logs):
        self._append(f"{logs['step']},{logs['epoch']},{logs['batch']},{logs['loss']!r},"
                     f"{logs['accuracy']!r}\n")

    def state_dict(self):
        if not os.path.exists(self.path):
            return {"bytes": 0}
        with open(self.path, "rb+") as f:
            os.fsync(f.fileno())
            return {"bytes": f.seek(0, os.SEEK_END)}

    def load_state_dict(self, state):
        """Cut the log back to its length at the checkpoint (lines past it came from the
        interrupted run after its last checkpoint and will be written again)."""
        size = int(state["bytes"])
        if os.path.exists(self.path) and os.path.getsize(self.path) > size:
            with open(self.path, "r+b") as f:
                f.truncate(size)
        # (A log that is missing or shorter is left as it is and appended to.)
