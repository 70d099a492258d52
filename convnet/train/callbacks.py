"""Callbacks for ``fit``: early stopping, model checkpoints, training checkpoints and the
NaN/Inf guard.  (The progress bar and the metric loggers live in their own modules.)

A callback overrides any of the hooks below; each receives the ``Trainer`` (the loop's
state: ``model``, ``optimizer``, ``epoch``, ``batch``, ``step``, ``history``, ...).
Setting ``trainer.stop_training = True`` (and ``trainer.stop_reason``) ends training
after the current step.  A callback with state that must survive a resume implements
``state_dict`` / ``load_state_dict``; ``fit`` stores it in training checkpoints.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "TrainingCheckpoint", "NaNGuard",
           "NonFiniteError"]


class NonFiniteError(FloatingPointError):
    """Raised by ``NaNGuard(raise_error=True)``; the message names step, epoch and layer."""


class Callback:
    """Base class: every hook is a no-op."""

    def on_train_begin(self, trainer) -> None: ...

    def on_epoch_begin(self, trainer, epoch: int) -> None: ...

    def on_after_backward(self, trainer, loss: float) -> None:
        """After ``loss.backward()``, before the optimizer step (gradients are set)."""

    def on_batch_end(self, trainer, logs: dict) -> None:
        """After the optimizer step; ``logs``: step, epoch, batch, loss, accuracy, size."""

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None: ...

    def on_train_end(self, trainer, logs: dict) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _resolve_mode(mode: str, monitor: str, owner: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "min" if "loss" in monitor else "max"
    return mode


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: a History key, e.g. ``"val_loss"`` (default) or ``"val_accuracy"``.
        patience: epochs without improvement to tolerate.
        min_delta: the smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (min for losses).
        restore_best_weights: at the end, load the weights of the best epoch.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        if not _finite(min_delta) or min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be a number >= 0, got "
                             f"{min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        self.restore_best_weights = restore_best_weights
        self.best, self.best_epoch, self.wait, self.best_weights = None, None, 0, None
        self.stopped_epoch = None

    def _improved(self, value) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer, epoch, logs):
        value = logs.get(self.monitor)
        if value is None:
            raise KeyError(f"EarlyStopping: metric {self.monitor!r} is not recorded; "
                           f"available: {sorted(logs)}")
        if _finite(value) and self._improved(value):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if self.restore_best_weights:
                self.best_weights = trainer.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True
            trainer.stop_reason = (f"early stopping: {self.monitor} has not improved for "
                                   f"{self.wait} epochs (best {self.best:.6g} at epoch "
                                   f"{self.best_epoch})" if self.best is not None else
                                   f"early stopping: {self.monitor} is not finite")

    def on_train_end(self, trainer, logs):
        if self.restore_best_weights and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_weights": self.best_weights}

    def load_state_dict(self, state):
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.best_weights = int(state["wait"]), state.get("best_weights")


class ModelCheckpoint(Callback):
    """Save the model file (``convnet.save``) at the end of epochs.

    Args:
        path: the model file to write (atomically).  ``{epoch}`` in the name is
            replaced by the epoch number.
        monitor: metric deciding "best" (default ``"val_loss"``; falls back to ``"loss"``
            when there is no validation data).
        mode: ``"min"``, ``"max"`` or ``"auto"``.
        save: ``"best"`` (only when ``monitor`` improves) or ``"last"`` (every epoch).
        metadata: extra JSON metadata stored in the file (e.g. input shape, classes).
    """

    def __init__(self, path, monitor: str = "val_loss", mode: str = "auto",
                 save: str = "best", metadata: dict | None = None):
        if save not in ("best", "last"):
            raise ValueError(f"ModelCheckpoint: save must be 'best' or 'last', got {save!r}")
        self.path, self.monitor, self.save = os.fspath(path), monitor, save
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        self.metadata = metadata
        self.best = None
        self.saved_epochs: list[int] = []

    def on_epoch_end(self, trainer, epoch, logs):
        from ..io import save as save_model

        monitor = self.monitor if self.monitor in logs or self.monitor != "val_loss" else "loss"
        value = logs.get(monitor)
        if self.save == "best":
            if value is None:
                raise KeyError(f"ModelCheckpoint: metric {monitor!r} is not recorded; "
                               f"available: {sorted(logs)}")
            if not _finite(value):
                return
            better = self.best is None or (value < self.best if self.mode == "min"
                                           else value > self.best)
            if not better:
                return
            self.best = float(value)
        meta = dict(self.metadata or {}, epoch=epoch)
        if value is not None:
            meta[monitor] = value
        save_model(trainer.model, self.path.replace("{epoch}", str(epoch)), metadata=meta)
        self.saved_epochs.append(epoch)

    def state_dict(self):
        return {"best": self.best, "saved_epochs": list(self.saved_epochs)}

    def load_state_dict(self, state):
        self.best = state["best"]
        self.saved_epochs = [int(e) for e in state.get("saved_epochs", [])]


class TrainingCheckpoint(Callback):
    """Write a full training checkpoint (model, optimizer, schedule, every RNG state, the
    loop position and the loader's shuffle order) so that ``fit(..., resume=path)``
    continues exactly where this run stopped.

    Args:
        path: the checkpoint file (written atomically, overwritten each time).
        every_n_steps: also save after every N optimizer steps (mid-epoch included).
        every_epoch: save at the end of every epoch (after validation).
        config: a JSON-able dict stored alongside (the CLI keeps its arguments here).
    """

    def __init__(self, path, every_n_steps: int | None = None, every_epoch: bool = True,
                 config: dict | None = None):
        if every_n_steps is not None and (isinstance(every_n_steps, bool) or
                                          not isinstance(every_n_steps, int)
                                          or every_n_steps < 1):
            raise ValueError(f"TrainingCheckpoint: every_n_steps must be an int >= 1 or None, "
                             f"got {every_n_steps!r}")
        self.path, self.every_n_steps = os.fspath(path), every_n_steps
        self.every_epoch, self.config = every_epoch, config

    def on_batch_end(self, trainer, logs):
        if self.every_n_steps and trainer.step % self.every_n_steps == 0:
            trainer.save_checkpoint(self.path, config=self.config)

    def on_epoch_end(self, trainer, epoch, logs):
        if self.every_epoch:
            trainer.save_checkpoint(self.path, config=self.config)

    def on_train_end(self, trainer, logs):
        trainer.save_checkpoint(self.path, config=self.config)


class NaNGuard(Callback):
    """Stop training at the first non-finite loss or gradient, before the bad update.

    The message (``trainer.stop_reason`` and ``self.message``) names the step, the
    epoch, the batch, and the first layer whose gradient went non-finite: gradients flow
    from the output backwards, so that is the non-finite layer closest to the output
    (parameters are scanned in reverse registration order).

    Args:
        raise_error: raise ``NonFiniteError`` instead of stopping quietly.
    """

    def __init__(self, raise_error: bool = False):
        self.raise_error = raise_error
        self.message: str | None = None
        self.layer: str | None = None

    @staticmethod
    def first_bad_layer(model) -> tuple[str, str, list[str]] | None:
        """(layer name, layer type, its non-finite parameters) of the first layer whose
        gradient is non-finite in backward order, or None when all are finite."""
        layers: list[tuple[str, str, list]] = []
        seen: set[int] = set()
        for mod_name, mod in model.named_modules():
            params = [(n, p) for n, p in mod._parameters.items()
                      if p is not None and id(p) not in seen]
            seen.update(id(p) for _, p in params)
            if params:
                layers.append((mod_name or "<model>", type(mod).__name__, params))
        for name, kind, params in reversed(layers):
            bad = [pname for pname, p in params
                   if p.grad is not None and not np.all(np.isfinite(p.grad))]
            if bad:
                return name, kind, bad
        return None

    def on_after_backward(self, trainer, loss):
        bad = self.first_bad_layer(trainer.model)
        loss_ok = math.isfinite(loss)
        if bad is None and loss_ok:
            return
        where = (f"at step {trainer.step + 1} (epoch {trainer.epoch + 1}, batch "
                 f"{trainer.batch + 1})")
        if bad is not None:
            layer, kind, pnames = bad
            self.layer = layer
            which = ", ".join(f"'{n}'" for n in pnames)
            msg = (f"NaNGuard: non-finite gradient {where}, first in layer '{layer}' "
                   f"({kind}), parameter{'s' if len(pnames) > 1 else ''} {which}; "
                   f"loss = {loss:.6g}")
        else:
            msg = f"NaNGuard: non-finite loss {where}: loss = {loss}"
        self.message = msg
        trainer.stop_training = True
        trainer.stop_reason = msg
        trainer.skip_step = True
        if self.raise_error:
            raise NonFiniteError(msg)
