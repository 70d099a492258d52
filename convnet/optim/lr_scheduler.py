"""Learning-rate schedules: step decay, cosine, linear warm-up, reduce-on-plateau.

Usage follows PyTorch: build the schedule on an optimizer (which sets the step-0
rate), then call ``scheduler.step()`` once per epoch (or per batch, if the schedule is
counted in batches) after ``optimizer.step()``.  ``ReduceLROnPlateau.step(metric)``
takes the monitored value instead.

The epoch-indexed schedules are closed forms of the step count ``t`` and each group's
``initial_lr`` (recorded in the optimizer's groups on first use), so a schedule can be
restored from its ``state_dict`` -- plain JSON-able values -- and, because the
learning rates themselves live in the optimizer's groups, from the optimizer's.
"""

from __future__ import annotations

import bisect
import math
import numbers

from .optimizer import Optimizer, check_number

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
           "LinearWarmup", "ReduceLROnPlateau"]


def _check_optimizer(owner: str, optimizer) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{owner}: expected a convnet.optim Optimizer, got "
                        f"{type(optimizer).__name__}")


def _check_int(owner: str, name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class LRScheduler:
    """Base class of the epoch-indexed schedules.

    Subclasses define ``lr_at(base_lr, t)``, the rate at step ``t`` (0 = as built),
    and list their hyperparameters in ``_hyper``.
    """

    _hyper: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer):
        _check_optimizer(type(self).__name__, optimizer)
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def lr_at(self, base_lr: float, t: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and set every group's ``lr``."""
        self.last_epoch += 1
        lrs = [self.lr_at(base, self.last_epoch) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs

    def get_last_lr(self) -> list[float]:
        """The learning rate of each group as set by the last ``step``."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """The step count, base rates and hyperparameters (JSON-able)."""
        out = {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs),
               "last_lr": list(self._last_lr)}
        for k in self._hyper:
            v = getattr(self, k)
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        name = type(self).__name__
        missing = {"last_epoch", "base_lrs", *self._hyper} - set(state_dict)
        if missing:
            raise ValueError(f"{name}.load_state_dict: missing keys {sorted(missing)}")
        if len(state_dict["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state has "
                             f"{len(state_dict['base_lrs'])} base rates but the optimizer has "
                             f"{len(self.optimizer.param_groups)} groups")
        for k in self._hyper:
            v = state_dict[k]
            setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.last_epoch = int(state_dict["last_epoch"])
        self.base_lrs = [float(b) for b in state_dict["base_lrs"]]
        self._last_lr = [float(x) for x in state_dict.get(
            "last_lr", [self.lr_at(b, self.last_epoch) for b in self.base_lrs])]

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper)
        return f"{type(self).__name__}({hyper}, last_epoch={self.last_epoch})"


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` steps (``torch.optim.lr_scheduler.
    StepLR``): ``lr_t = base_lr * gamma ** (t // step_size)``.

    Example:
        >>> sched = StepLR(opt, step_size=10, gamma=0.5)   # halve every 10 epochs
    """

    _hyper = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = _check_int("StepLR", "step_size", step_size, 1)
        self.gamma = check_number("StepLR", "gamma", gamma, low=0.0)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone step (``MultiStepLR``).

    Example:
        >>> sched = MultiStepLR(opt, milestones=[30, 80], gamma=0.1)
    """

    _hyper = ("milestones", "gamma")

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1):
        ms = [_check_int("MultiStepLR", "each milestone", m, 1) for m in milestones]
        if ms != sorted(ms):
            raise ValueError(f"MultiStepLR: milestones must be increasing, got {ms}")
        self.milestones = tuple(ms)
        self.gamma = check_number("MultiStepLR", "gamma", gamma, low=0.0)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, t)


class ExponentialLR(LRScheduler):
    """``lr_t = base_lr * gamma ** t`` (``ExponentialLR``)."""

    _hyper = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float):
        self.gamma = check_number("ExponentialLR", "gamma", gamma, low=0.0)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** t


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from ``base_lr`` to ``eta_min`` over ``T_max`` steps
    (``CosineAnnealingLR``, without restarts)::

        lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2

    Past ``T_max`` the cosine goes on, rising again, as in PyTorch.

    Example:
        >>> sched = CosineAnnealingLR(opt, T_max=epochs, eta_min=1e-5)
    """

    _hyper = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max = _check_int("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = check_number("CosineAnnealingLR", "eta_min", eta_min, low=0.0)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, t: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * t / self.T_max)) / 2


class LinearWarmup(LRScheduler):
    """Linear warm-up over ``warmup_steps`` steps, then ``after`` (or the base rate).

    For ``t < warmup_steps`` the rate is
    ``base_lr * (start_factor + (1 - start_factor) * t / warmup_steps)``; from then on
    it is ``after``'s rate at step ``t - warmup_steps`` -- as ``torch``'s ``LinearLR``
    followed by ``after`` in a ``SequentialLR``.  Build ``after`` on the same optimizer
    first, then step only the warm-up; its ``state_dict`` holds ``after``'s.

    Args:
        optimizer: the optimizer.
        warmup_steps: length of the warm-up (>= 1).
        start_factor: fraction of the base rate at step 0, in [0, 1].
        after: an optional schedule to follow the warm-up (not ReduceLROnPlateau).

    Example:
        >>> cosine = CosineAnnealingLR(opt, T_max=epochs - 5)
        >>> sched = LinearWarmup(opt, warmup_steps=5, start_factor=0.1, after=cosine)
    """

    _hyper = ("warmup_steps", "start_factor")

    def __init__(self, optimizer: Optimizer, warmup_steps: int, start_factor: float = 0.1,
                 after: LRScheduler | None = None):
        self.warmup_steps = _check_int("LinearWarmup", "warmup_steps", warmup_steps, 1)
        self.start_factor = check_number("LinearWarmup", "start_factor", start_factor,
                                         0.0, 1.0)
        if after is not None:
            if not isinstance(after, LRScheduler):
                raise TypeError(f"LinearWarmup: after must be an epoch-indexed schedule "
                                f"(StepLR, CosineAnnealingLR, ...), got {type(after).__name__}")
            if after.optimizer is not optimizer:
                raise ValueError("LinearWarmup: after must be built on the same optimizer")
        self.after = after
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, t: int) -> float:
        w = self.warmup_steps
        if t < w:
            return base_lr * (self.start_factor + (1.0 - self.start_factor) * t / w)
        return self.after.lr_at(base_lr, t - w) if self.after is not None else base_lr

    def step(self) -> None:
        super().step()
        if self.after is not None:
            self.after.last_epoch = max(self.last_epoch - self.warmup_steps, 0)
            self.after._last_lr = list(self._last_lr)

    def state_dict(self) -> dict:
        out = super().state_dict()
        out["after"] = self.after.state_dict() if self.after is not None else None
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        inner = state_dict.get("after")
        if (inner is None) != (self.after is None):
            raise ValueError("LinearWarmup.load_state_dict: the state "
                             f"{'has no' if inner is None else 'has an'} 'after' schedule but "
                             f"this warm-up {'has one' if inner is None else 'has none'}")
        if inner is not None:
            self.after.load_state_dict(inner)


class ReduceLROnPlateau:
    """Cut the rate by ``factor`` when a metric stops improving (``ReduceLROnPlateau``).

    After ``patience`` steps without an improvement of more than ``threshold``
    (relative: ``best * (1 -/+ threshold)``, or absolute), every group's rate becomes
    ``max(lr * factor, min_lr)``, then ``cooldown`` steps pass before counting again.

    Args:
        optimizer: the optimizer.
        mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
        factor: multiplier in [0, 1).
        patience: steps without improvement tolerated (>= 0).
        threshold: the smallest change that counts as an improvement (>= 0).
        threshold_mode: ``"rel"`` or ``"abs"``.
        cooldown: steps to wait after a cut (>= 0).
        min_lr: floor on the rate, one number or one per group.
        eps: a cut smaller than this is skipped.

    Example:
        >>> sched = ReduceLROnPlateau(opt, mode="min", patience=3)
        >>> sched.step(val_loss)
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr=0.0, eps: float = 1e-8):
        owner = "ReduceLROnPlateau"
        _check_optimizer(owner, optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{owner}: threshold_mode must be 'rel' or 'abs', got "
                             f"{threshold_mode!r}")
        self.optimizer = optimizer
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = check_number(owner, "factor", factor, 0.0, 1.0, high_open=True)
        self.patience = _check_int(owner, "patience", patience, 0)
        self.threshold = check_number(owner, "threshold", threshold, low=0.0)
        self.cooldown = _check_int(owner, "cooldown", cooldown, 0)
        self.eps = check_number(owner, "eps", eps, low=0.0)
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"{owner}: expected {n} min_lr values (one per group), got "
                                 f"{len(min_lr)}")
            self.min_lrs = [check_number(owner, "min_lr", m, low=0.0) for m in min_lr]
        else:
            self.min_lrs = [check_number(owner, "min_lr", min_lr, low=0.0)] * n
        self.last_epoch = 0
        self.best = self._worse
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = [float(g["lr"]) for g in optimizer.param_groups]

    @property
    def _worse(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def is_better(self, current: float, best: float) -> bool:
        if self.mode == "min":
            limit = best * (1.0 - self.threshold) if self.threshold_mode == "rel" \
                else best - self.threshold
            return current < limit
        limit = best * (self.threshold + 1.0) if self.threshold_mode == "rel" \
            else best + self.threshold
        return current > limit

    def step(self, metric) -> None:
        """Record one value of the monitored metric; cut the rates if it has stalled."""
        try:
            current = float(metric)
        except (TypeError, ValueError):
            raise TypeError(f"ReduceLROnPlateau.step: the metric must be a number, got "
                            f"{type(metric).__name__}") from None
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, floor in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, floor)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    _keys = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown",
             "min_lrs", "eps", "last_epoch", "num_bad_epochs", "cooldown_counter")

    def state_dict(self) -> dict:
        """Counters, best value (``None`` before any) and hyperparameters; JSON-able."""
        out = {k: getattr(self, k) for k in self._keys}
        out["min_lrs"] = list(self.min_lrs)
        out["best"] = None if math.isinf(self.best) else self.best
        out["last_lr"] = list(self._last_lr)
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        missing = set(self._keys) - set(state_dict)
        if missing:
            raise ValueError(f"ReduceLROnPlateau.load_state_dict: missing keys "
                             f"{sorted(missing)}")
        for k in self._keys:
            setattr(self, k, state_dict[k])
        self.min_lrs = [float(m) for m in self.min_lrs]
        best = state_dict.get("best")
        self.best = self._worse if best is None else float(best)
        self._last_lr = list(state_dict.get("last_lr", self._last_lr))
