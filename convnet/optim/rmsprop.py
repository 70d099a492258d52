"""RMSprop, plain or centered, with optional momentum."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, check_bool, check_number, lerp_

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (Hinton), step for step the same as ``torch.optim.RMSprop``.

    With gradient ``g`` and running averages ``s`` (of g**2) and ``a`` (of g)::

        g <- g + weight_decay * p
        s <- alpha * s + (1 - alpha) * g**2
        a <- alpha * a + (1 - alpha) * g                 (centered only)
        d <- sqrt(s - a**2) if centered else sqrt(s), then d <- d + eps
        b <- momentum * b + g / d;  p <- p - lr * b      (momentum > 0)
        p <- p - lr * g / d                              (otherwise)

    Args:
        params: an iterable of Parameters or of parameter-group dicts.
        lr: learning rate (>= 0, default 0.01).
        alpha: smoothing constant, in [0, 1).
        eps: added to the denominator (>= 0).
        weight_decay: L2 penalty (>= 0) added to the gradient.
        momentum: momentum factor (>= 0).
        centered: normalise by an estimate of the gradient's variance.
        maximize: ascend the objective instead of descending it.

    State per parameter: ``step``, ``square_avg``, and ``momentum_buffer`` /
    ``grad_avg`` when momentum / centered are used.

    Example:
        >>> opt = RMSprop(model.parameters(), lr=1e-3, momentum=0.9, centered=True)
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 maximize: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered,
                                      maximize=maximize))

    def _check_group(self, group: dict) -> None:
        group["lr"] = check_number("RMSprop", "lr", group["lr"], low=0.0)
        group["alpha"] = check_number("RMSprop", "alpha", group["alpha"], 0.0, 1.0,
                                      high_open=True)
        group["eps"] = check_number("RMSprop", "eps", group["eps"], low=0.0)
        group["weight_decay"] = check_number("RMSprop", "weight_decay", group["weight_decay"],
                                             low=0.0)
        group["momentum"] = check_number("RMSprop", "momentum", group["momentum"], low=0.0)
        group["centered"] = check_bool("RMSprop", "centered", group["centered"])
        group["maximize"] = check_bool("RMSprop", "maximize", group["maximize"])

    def _update(self, p, grad: np.ndarray, state: dict, group: dict) -> None:
        lr, alpha, eps, wd = group["lr"], group["alpha"], group["eps"], group["weight_decay"]
        momentum = group["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p.data)
        if momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = np.zeros_like(p.data)
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = np.zeros_like(p.data)
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        if wd != 0:
            grad = grad + wd * p.data
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            lerp_(grad_avg, grad, 1 - alpha)
            avg = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += eps
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += grad / avg
            p.data -= lr * buf
        else:
            p.data += -lr * grad / avg
