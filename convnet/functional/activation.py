"""Activations as Tensor ops: thin Functions over ``convnet.ops.activation``.

All work on any shape; ``softmax`` and ``log_softmax`` normalise over one axis, the
channel axis (-1) by default in NHWC.
"""

from __future__ import annotations

import numbers

from ..ops import activation as act_ops
from ..tensor import Function, Tensor
from ._checks import float_input

__all__ = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "softmax", "log_softmax"]


class _Activation(Function):
    """One Function per op: ``fwd(x, **hyper) -> (out, cache)`` and ``bwd(dout, cache)``."""

    fwd = bwd = None

    def forward(self, x, **hyper):
        out, self.cache = type(self).fwd(x, **hyper)
        return out

    def backward(self, dout):
        return type(self).bwd(dout, self.cache)


def _make(name, fwd, bwd):
    return type(name, (_Activation,), {"fwd": staticmethod(fwd), "bwd": staticmethod(bwd)})


ReLUFn = _make("ReLUFn", act_ops.relu_forward, act_ops.relu_backward)
LeakyReLUFn = _make("LeakyReLUFn", act_ops.leaky_relu_forward, act_ops.leaky_relu_backward)
ELUFn = _make("ELUFn", act_ops.elu_forward, act_ops.elu_backward)
SigmoidFn = _make("SigmoidFn", act_ops.sigmoid_forward, act_ops.sigmoid_backward)
TanhFn = _make("TanhFn", act_ops.tanh_forward, act_ops.tanh_backward)
GELUFn = _make("GELUFn", act_ops.gelu_forward, act_ops.gelu_backward)
SoftmaxFn = _make("SoftmaxFn", act_ops.softmax_forward, act_ops.softmax_backward)
LogSoftmaxFn = _make("LogSoftmaxFn", act_ops.log_softmax_forward, act_ops.log_softmax_backward)


def _number(value, name, op):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    return float(value)


def _axis(x: Tensor, axis, op):
    nd = x.ndim
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or not -nd <= axis < nd:
        raise ValueError(f"{op}: axis must be an int in [{-nd}, {nd - 1}] for a {nd}-D input "
                         f"of shape {x.shape}, got {axis!r}")
    return int(axis)


def relu(x) -> Tensor:
    """max(x, 0), elementwise."""
    return ReLUFn.apply(float_input(x, "relu"))


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, else negative_slope * x."""
    slope = _number(negative_slope, "negative_slope", "leaky_relu")
    return LeakyReLUFn.apply(float_input(x, "leaky_relu"), negative_slope=slope)


def elu(x, alpha: float = 1.0) -> Tensor:
    """x for x > 0, else alpha * (exp(x) - 1)."""
    alpha = _number(alpha, "alpha", "elu")
    return ELUFn.apply(float_input(x, "elu"), alpha=alpha)


def sigmoid(x) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    return SigmoidFn.apply(float_input(x, "sigmoid"))


def tanh(x) -> Tensor:
    return TanhFn.apply(float_input(x, "tanh"))


def gelu(x, approximate: str = "none") -> Tensor:
    """x * Phi(x), Phi the standard normal CDF (``approximate='none'``, exact via erf),
    or PyTorch's ``approximate='tanh'`` form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELUFn.apply(float_input(x, "gelu"), approximate=approximate)


def softmax(x, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) over ``axis``; shifted by the max so +-1e4 logits stay finite."""
    x = float_input(x, "softmax")
    return SoftmaxFn.apply(x, axis=_axis(x, axis, "softmax"))


def log_softmax(x, axis: int = -1) -> Tensor:
    """x - logsumexp(x) over ``axis``, computed stably (never log of 0 for finite x)."""
    x = float_input(x, "log_softmax")
    return LogSoftmaxFn.apply(x, axis=_axis(x, axis, "log_softmax"))
