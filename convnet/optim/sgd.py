"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, check_bool, check_number

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent, step for step the same as ``torch.optim.SGD``.

    With gradient ``g``, parameter ``p`` and momentum buffer ``b`` (``b = g`` on the
    first step)::

        g <- g + weight_decay * p
        b <- momentum * b + (1 - dampening) * g
        g <- g + momentum * b   if nesterov   else   b
        p <- p - lr * g

    Args:
        params: an iterable of Parameters or of parameter-group dicts.
        lr: learning rate (>= 0).
        momentum: momentum factor (>= 0, default 0: plain SGD).
        dampening: dampening of the momentum's gradient term, in [0, 1].
        weight_decay: L2 penalty (>= 0), added to the gradient.
        nesterov: Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
        maximize: ascend the objective instead of descending it.

    State per parameter: ``momentum_buffer`` (once momentum is used).

    Example:
        >>> opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 maximize: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _check_group(self, group: dict) -> None:
        group["lr"] = check_number("SGD", "lr", group["lr"], low=0.0)
        group["momentum"] = check_number("SGD", "momentum", group["momentum"], low=0.0)
        group["dampening"] = check_number("SGD", "dampening", group["dampening"], 0.0, 1.0)
        group["weight_decay"] = check_number("SGD", "weight_decay", group["weight_decay"],
                                             low=0.0)
        group["nesterov"] = check_bool("SGD", "nesterov", group["nesterov"])
        group["maximize"] = check_bool("SGD", "maximize", group["maximize"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def _update(self, p, grad: np.ndarray, state: dict, group: dict) -> None:
        # In place where it can be: the momentum buffer and the parameter are updated
        # with out= ufuncs, and the one temporary (lr * g) lives in a reused workspace.
        # ``grad`` is the caller's p.grad and is never written.
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        if group["maximize"]:
            grad = np.negative(grad)
        if wd != 0:
            decayed = np.multiply(p.data, wd)
            grad = np.add(grad, decayed, out=decayed)     # g + wd * p
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(grad, copy=True)
            else:
                buf *= momentum
                if group["dampening"] == 0:
                    buf += grad                           # (1 - 0) * g is g exactly
                else:
                    buf += np.multiply(grad, 1 - group["dampening"],
                                       out=self._workspace(grad))
            if group["nesterov"]:
                grad = grad + momentum * buf
            else:
                grad = buf
        p.data -= np.multiply(grad, lr, out=self._workspace(grad))

    def _workspace(self, like: np.ndarray) -> np.ndarray:
        """A scratch array shaped like ``like``, one flat buffer per dtype reused by every
        parameter (a 4 MiB weight no longer costs a fresh 4 MiB temporary per step)."""
        work = self.__dict__.setdefault("_work", {})
        buf = work.get(like.dtype)
        if buf is None or buf.size < like.size:
            buf = work[like.dtype] = np.empty(like.size, like.dtype)
        return buf[:like.size].reshape(like.shape)
