"""Training: the ``fit`` loop, ``evaluate``, callbacks, loggers and metrics.

Example:
    >>> from convnet.train import fit, evaluate, EarlyStopping, NaNGuard
    >>> hist = fit(model, train, val, epochs=10, callbacks=[EarlyStopping(patience=3),
    ...                                                        NaNGuard()])
    >>> evaluate(model, test)["accuracy"]
"""

from .callbacks import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    NaNGuard,
    NonFiniteError,
    TrainingCheckpoint,
)
from .evaluation import EvalResult, evaluate
from .history import History
from .loggers import CSVLogger, JSONLogger, StepLogger
from .loop import Trainer, fit
from .metrics import (
    MetricAccumulator,
    accuracy,
    confusion_matrix,
    per_class_metrics,
    topk_accuracy,
)
from .progress import ProgressBar

__all__ = ["fit", "evaluate", "Trainer", "History", "EvalResult", "Callback",
           "EarlyStopping", "ModelCheckpoint", "TrainingCheckpoint", "NaNGuard",
           "NonFiniteError", "ProgressBar", "CSVLogger", "JSONLogger", "StepLogger",
           "accuracy", "topk_accuracy", "confusion_matrix", "per_class_metrics",
           "MetricAccumulator"]
