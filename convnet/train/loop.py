"""The fit loop and the ``Trainer`` that holds a run's state.

``fit`` is Keras' one call on top of PyTorch's flow: for each batch it runs
``optimizer.zero_grad()``, the forward pass, ``loss.backward()``, the callbacks'
``on_after_backward`` (the NaN guard), optional clipping, then ``optimizer.step()``.
Training runs in train mode; validation and ``evaluate`` run in eval mode under
``no_grad``.

A run's whole state -- model, optimizer, schedule, loader position and shuffle order,
every RNG, partial epoch sums, History, callback state -- is ``Trainer.state_dict()``,
and ``fit(..., resume=path)`` continues a checkpointed run so exactly that the per-step
losses and the final weights equal an uninterrupted run's, bit for bit.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..tensor import Tensor
from .callbacks import Callback
from .evaluation import evaluate
from .history import History
from .inputs import as_loader, batch_arrays, is_classification, resolve_loss
from .metrics import MetricAccumulator

__all__ = ["fit", "Trainer"]


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"fit: {name} must be an int >= 1, got {value!r}")
    return int(value)


# ---- the trainer -----------------------------------------------------------------
class Trainer:
    """The state of one training run; ``fit`` builds one and calls ``run``.

    Attributes the callbacks read: ``model``, ``optimizer``, ``scheduler``, ``loader``,
    ``epochs``, ``epoch`` (0-based, current), ``batch`` (batches done in this epoch),
    ``step`` (optimizer steps done), ``num_batches``, ``history``, ``running`` (this
    epoch's partial sums), ``stop_training``, ``stop_reason``.
    """

    def __init__(self, model, loader, optimizer, loss_fn, epochs, callbacks=(),
                 val_data=None, val_batch_size=256, scheduler=None,
                 scheduler_interval="epoch", clip_grad_norm=None, topk=(5,), verbose=1):
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"fit: scheduler_interval must be 'epoch' or 'step', got "
                             f"{scheduler_interval!r}")
        self.model, self.loader, self.optimizer = model, loader, optimizer
        self.loss_fn, self.epochs, self.callbacks = loss_fn, epochs, list(callbacks)
        self.val_data, self.val_batch_size = val_data, val_batch_size
        self.scheduler, self.scheduler_interval = scheduler, scheduler_interval
        self.clip_grad_norm, self.topk, self.verbose = clip_grad_norm, tuple(topk), verbose
        self.history = History()
        self.epoch, self.batch, self.step = 0, 0, 0
        self.running = MetricAccumulator()
        self.epoch_time, self.epoch_images = 0.0, 0
        self.epoch_complete = False
        self.stop_training, self.stop_reason, self.skip_step = False, None, False
        self.num_batches = len(loader)

    # ---- hooks -------------------------------------------------------------
    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # ---- state -------------------------------------------------------------
    def _rng_roots(self) -> dict:
        return {"model": self.model, "loader": self.loader, "loss": self.loss_fn,
                "callbacks": dict(zip(self._callback_keys(), self.callbacks))}

    def _callback_keys(self) -> list[str]:
        counts: dict[str, int] = {}
        keys = []
        for cb in self.callbacks:
            name = type(cb).__name__
            keys.append(f"{name}:{counts.get(name, 0)}")
            counts[name] = counts.get(name, 0) + 1
        return keys

    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly (arrays and JSON values)."""
        from ..io.checkpoint import find_generators, generator_state
        from ..nn import init

        rngs = {"default": generator_state(init.default_rng())}
        for path, gen in find_generators(self._rng_roots()).items():
            rngs[path] = generator_state(gen)
        done = self.epoch_complete
        return {
            "model": dict(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "loader": self.loader.state_dict() if hasattr(self.loader, "state_dict") else None,
            "rngs": rngs,
            "loop": {"epoch": self.epoch + 1 if done else self.epoch,
                     "batch": 0 if done else self.batch, "step": self.step,
                     "epochs": self.epochs, "num_batches": self.num_batches,
                     "running": self.running.state_dict() if not done else None,
                     "epoch_time": 0.0 if done else self.epoch_time,
                     "epoch_images": 0 if done else self.epoch_images,
                     "history": self.history.to_dict()},
            "callbacks": {k: cb.state_dict() for k, cb in zip(self._callback_keys(),
                                                              self.callbacks)},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a state from ``state_dict`` (raises ``CheckpointError`` on a mismatch)."""
        from ..io.checkpoint import find_generators, set_generator_state
        from ..io.errors import CheckpointError
        from ..nn import init

        try:
            loop = state["loop"]
            if loop["num_batches"] != self.num_batches:
                raise CheckpointError(f"checkpoint: the run had {loop['num_batches']} batches "
                                      f"per epoch, this one has {self.num_batches} (different "
                                      f"data or batch size?)")
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state.get("scheduler") is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            if state.get("loader") is not None and hasattr(self.loader, "load_state_dict"):
                self.loader.load_state_dict(state["loader"])
            rngs = dict(state["rngs"])
            set_generator_state(init.default_rng(), rngs.pop("default"), "rng 'default'")
            gens = find_generators(self._rng_roots())
            for path, st in rngs.items():
                if path not in gens:
                    raise CheckpointError(f"checkpoint: holds the state of generator "
                                          f"{path!r}, which this run does not have")
                set_generator_state(gens[path], st, f"rng {path!r}")
            self.epoch, self.batch, self.step = (int(loop["epoch"]), int(loop["batch"]),
                                                 int(loop["step"]))
            self.running = self._new_running()
            if loop.get("running") is not None:
                self.running.load_state_dict(loop["running"])
            self.epoch_time = float(loop["epoch_time"])
            self.epoch_images = int(loop["epoch_images"])
            self.history = History.from_dict(loop["history"])
            saved = state.get("callbacks") or {}
            for key, cb in zip(self._callback_keys(), self.callbacks):
                if key in saved:
                    cb.load_state_dict(saved[key])
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CheckpointError(f"checkpoint does not fit this run: {type(exc).__name__}: "
                                  f"{exc}") from exc

    def save_checkpoint(self, path, config: dict | None = None) -> None:
        from ..io.checkpoint import save_checkpoint

        state = self.state_dict()
        state["config"] = config
        save_checkpoint(path, state)

    def _new_running(self) -> MetricAccumulator:
        return MetricAccumulator()

    # ---- the loop ----------------------------------------------------------
    def _train_step(self, x: np.ndarray, y: np.ndarray) -> None:
        self.optimizer.zero_grad()
        out = self.model(Tensor(x))
        loss = self.loss_fn(out, y)
        loss_value = float(loss.data)
        loss.backward()
        self.skip_step = False
        self._call("on_after_backward", loss_value)
        if self.skip_step:  # the NaN guard: no update from a non-finite gradient
            return
        if self.clip_grad_norm is not None:
            from ..optim import clip_grad_norm_

            clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        self.optimizer.step()
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        scores = out.data
        if is_classification(scores, y):
            self.running.update(scores, y, loss_value)
            batch_acc = float(np.mean(scores.argmax(axis=1) == y))
        else:  # e.g. an autoencoder's reconstruction: only the loss is tracked
            self.running.update_loss(loss_value, len(y))
            batch_acc = None
        self.step += 1
        self.batch += 1
        self.epoch_images += len(y)
        self._call("on_batch_end", {"step": self.step, "epoch": self.epoch + 1,
                                    "batch": self.batch, "loss": loss_value,
                                    "accuracy": batch_acc, "size": len(y)})

    def _validate(self) -> dict:
        if self.val_data is None:
            return {}
        res = evaluate(self.model, self.val_data, self.loss_fn, self.val_batch_size,
                       topk=self.topk)
        return {f"val_{k}": v for k, v in res.items() if isinstance(v, float)}

    def _end_epoch(self) -> None:
        t0 = time.perf_counter()
        logs = dict(self.running.result())
        logs.update(self._validate())
        logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
        logs["time"] = self.epoch_time + (time.perf_counter() - t0)
        logs["images_per_sec"] = (self.epoch_images / self.epoch_time
                                  if self.epoch_time > 0 else float("nan"))
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            if type(self.scheduler).__name__ == "ReduceLROnPlateau":
                self.scheduler.step(logs.get("val_loss", logs["loss"]))
            else:
                self.scheduler.step()
        self.history.append(self.epoch + 1, logs)
        self.epoch_complete = True
        self._call("on_epoch_end", self.epoch + 1, logs)
        self.epoch_complete = False
        self.epoch += 1
        self.batch = 0
        self.running = self._new_running()
        self.epoch_time, self.epoch_images = 0.0, 0

    def run(self) -> History:
        """Train until ``epochs`` are done or a callback stops training.  An exception
        (a crash, Ctrl-C) propagates without ``on_train_end``, so a training checkpoint
        keeps the last state written before it."""
        self.model.train()
        self._call("on_train_begin")
        while self.epoch < self.epochs and not self.stop_training:
            self._call("on_epoch_begin", self.epoch)
            if self.batch < self.num_batches:  # else: resumed after the epoch's last step
                t_start = time.perf_counter()
                for batch in self.loader:  # a restored loader continues its epoch
                    x, y = batch_arrays(batch)
                    self._train_step(x, y)
                    now = time.perf_counter()
                    self.epoch_time += now - t_start
                    t_start = now
                    if self.stop_training:
                        break
            if self.stop_training and self.skip_step:
                break  # the NaN guard fired: no epoch summary for a poisoned epoch
            self._end_epoch()
        if self.stop_reason:
            self.history.stop_reason = self.stop_reason
        self._call("on_train_end", self.history.last())
        return self.history


def fit(model, train_data, val_data=None, *, optimizer=None, loss=None, epochs: int = 10,
        batch_size: int = 32, callbacks=None, rng=None, verbose: int = 1, scheduler=None,
        scheduler_interval: str = "epoch", shuffle: bool = True, drop_last: bool = False,
        clip_grad_norm: float | None = None, topk=(5,), resume=None) -> History:
    """Train ``model`` and return a ``History`` of per-epoch metrics.

    Args:
        model: a ``convnet.nn.Module`` mapping (N, ...) inputs to (N, classes) scores.
        train_data: a ``DataLoader``, a dataset (``len`` and ``[i] -> (x, y)``) or an
            ``(x, y)`` tuple of arrays (x NHWC).
        val_data: the same kinds, evaluated after every epoch (``val_loss``,
            ``val_accuracy``, ``val_topK_accuracy`` in the History).
        optimizer: a ``convnet.optim`` optimizer (default ``Adam(lr=1e-3)``).
        loss: a callable ``(scores, targets) -> Tensor`` such as ``nn.CrossEntropyLoss()``
            (default: ``F.cross_entropy``).
        epochs: total number of epochs (a resumed run counts the ones already done).
        batch_size: used when ``train_data`` is not already a DataLoader.
        callbacks: a list of ``Callback``s (``EarlyStopping``, ``ModelCheckpoint``,
            ``TrainingCheckpoint``, ``NaNGuard``, ``CSVLogger``, ...).
        rng: ``numpy.random.Generator`` or int seed for the shuffle order.
        verbose: 0 silent; 1 a progress bar (only when stdout is a terminal); 2 also
            one printed line per epoch.
        scheduler: a ``convnet.optim`` schedule, stepped per epoch (``ReduceLROnPlateau``
            gets ``val_loss``, else ``loss``) or per step with ``scheduler_interval="step"``.
        clip_grad_norm: clip the global gradient norm to this value before each step.
        topk: the k of the validation top-k accuracies.
        resume: a checkpoint path (written by ``TrainingCheckpoint``) or a state dict
            from ``Trainer.state_dict()``: continue that run exactly.

    Returns:
        ``History`` with ``loss``, ``accuracy``, ``val_*``, ``lr``, ``time`` and
        ``images_per_sec`` per epoch, and ``stop_reason``.

    Example:
        >>> hist = fit(model, (x_train, y_train), (x_val, y_val), epochs=5,
        ...            optimizer=optim.Adam(model.parameters(), lr=1e-3), rng=0)
        >>> hist["val_accuracy"][-1]
    """
    from .. import optim
    from ..nn import init
    from .progress import ProgressBar

    epochs = _check_positive_int(epochs, "epochs")
    batch_size = _check_positive_int(batch_size, "batch_size")
    if verbose not in (0, 1, 2, False, True):
        raise ValueError(f"fit: verbose must be 0, 1 or 2, got {verbose!r}")
    callbacks = list(callbacks or [])
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: callbacks must be Callback instances, got "
                            f"{type(cb).__name__}")
    loader = as_loader(train_data, batch_size, shuffle, init.get_rng(rng), drop_last)
    if len(loader) == 0:
        raise ValueError("fit: the training data yields no batches")
    if optimizer is None:
        optimizer = optim.Adam(model.parameters(), lr=1e-3)
    if verbose and not any(isinstance(cb, ProgressBar) for cb in callbacks):
        callbacks.insert(0, ProgressBar(verbose=verbose))
    if verbose == 2:
        callbacks.append(_EpochPrinter())
    trainer = Trainer(model, loader, optimizer, resolve_loss(loss), epochs, callbacks,
                      val_data=val_data, val_batch_size=max(batch_size, 256),
                      scheduler=scheduler, scheduler_interval=scheduler_interval,
                      clip_grad_norm=clip_grad_norm, topk=topk, verbose=verbose)
    if resume is not None:
        if not isinstance(resume, dict):
            from ..io.checkpoint import load_checkpoint

            resume = load_checkpoint(resume)
        trainer.load_state_dict(resume)
    return trainer.run()


class _EpochPrinter(Callback):
    def on_epoch_end(self, trainer, epoch, logs):
        parts = [f"{k}={v:.4f}" for k, v in logs.items()
                 if isinstance(v, float) and not math.isnan(v) and k not in ("time",)]
        print(f"epoch {epoch}/{trainer.epochs}: " + " ".join(parts), flush=True)
