"""A tqdm progress bar for ``fit``: loss, accuracy and throughput in images/s.

It draws only when stdout is a terminal and ``verbose > 0``; in a pipe, a log file or a
test it prints nothing.  tqdm is imported lazily, so ``import convnet.train`` does not
need it.
"""

from __future__ import annotations

import sys
import time

from .callbacks import Callback

__all__ = ["ProgressBar"]


def _load_tqdm():
    try:
        from tqdm import tqdm  # noqa: PLC0415 - optional dependency
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the progress bar needs 'tqdm': pip install tqdm (or pass "
                          "verbose=0)") from exc
    return tqdm


class ProgressBar(Callback):
    """One bar per epoch with ``loss``, ``acc`` and ``img/s`` as it trains, then a summary
    line with the epoch's validation metrics.

    Args:
        verbose: 0 disables the bar.
        stream: where to draw (default ``sys.stdout``); nothing is drawn unless it is a
            TTY, or ``force=True``.
        force: draw even when the stream is not a terminal (for tests).
    """

    def __init__(self, verbose: int = 1, stream=None, force: bool = False):
        self.verbose = verbose
        self.stream = stream
        self.force = force
        self.bar = None
        self._t0 = None
        self._images = 0

    @property
    def enabled(self) -> bool:
        stream = self.stream if self.stream is not None else sys.stdout
        if not self.verbose:
            return False
        if self.force:
            return True
        isatty = getattr(stream, "isatty", None)
        return bool(isatty and isatty())

    def on_epoch_begin(self, trainer, epoch):
        if not self.enabled:
            return
        tqdm = _load_tqdm()
        self.bar = tqdm(total=trainer.num_batches, initial=trainer.batch,
                        desc=f"epoch {epoch + 1}/{trainer.epochs}", unit="batch",
                        file=self.stream if self.stream is not None else sys.stdout,
                        leave=True, dynamic_ncols=True)
        self._t0, self._images = time.perf_counter(), 0

    def on_batch_end(self, trainer, logs):
        if self.bar is None:
            return
        self._images += logs["size"]
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        run = trainer.running.result()
        self.bar.set_postfix(loss=f"{run['loss']:.4f}", acc=f"{run['accuracy']:.4f}",
                             **{"img/s": f"{self._images / elapsed:.0f}"}, refresh=False)
        self.bar.update(1)

    def on_epoch_end(self, trainer, epoch, logs):
        if self.bar is None:
            return
        short = {"loss": "loss", "accuracy": "acc", "val_loss": "val_loss",
                 "val_accuracy": "val_acc"}
        parts = [f"{short[k]}={v:.4f}" for k, v in logs.items()
                 if k in short and isinstance(v, float)]
        if "images_per_sec" in logs:
            parts.append(f"img/s={logs['images_per_sec']:.0f}")
        self.bar.set_postfix_str(" ".join(parts), refresh=True)
        self.bar.close()
        self.bar = None

    def on_train_end(self, trainer, logs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
