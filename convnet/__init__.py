"""convnet: a convolutional neural network library and toolkit on NumPy.

Activations are NHWC (N, H, W, C) and conv weights HWIO (KH, KW, C_in/groups, C_out),
the seeds' m x n_H x n_W x n_C and f x f x n_C[l-1] x n_C[l].

``import convnet`` loads only the NumPy core; the toolkit floors (data, optim, train,
io, inspect, viz, models) load on first use.
"""

import importlib

from . import backend, functional, nn
from .rng import manual_seed
from .tensor import Function, Tensor, concatenate, enable_grad, is_grad_enabled, no_grad, stack

__version__ = "0.1.0"

_SUBMODULES = {"models", "optim", "data", "train", "io", "inspect", "viz", "ops"}
_LAZY = {"summary": ("inspect", "summary"), "save": ("io", "save"), "load": ("io", "load"),
         "fit": ("train", "fit"), "evaluate": ("train", "evaluate")}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{mod}", __name__), attr)
    raise AttributeError(f"module 'convnet' has no attribute {name!r}")


__all__ = ["Tensor", "Function", "concatenate", "stack", "no_grad", "enable_grad",
           "is_grad_enabled", "manual_seed", "functional", "nn", "backend",
           "summary", "save", "load", "fit", "evaluate"]
