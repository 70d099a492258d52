"""Optimizers by name, for the command line: ``get_optimizer("adam", params, lr=1e-3)``."""

from __future__ import annotations

from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["OPTIMIZERS", "get_optimizer"]

OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get_optimizer(name: str, params, **kwargs) -> Optimizer:
    """Build the optimizer called ``name`` (sgd, adam, adamw, rmsprop; any case).

    Example:
        >>> opt = get_optimizer("sgd", model.parameters(), lr=0.1, momentum=0.9)
    """
    cls = OPTIMIZERS.get(str(name).lower())
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    return cls(params, **kwargs)
