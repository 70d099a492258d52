"""The Optimizer base class: parameter groups, per-parameter state, state_dict.

An optimizer holds ``param_groups``, a list of dicts, each with a ``"params"`` list
and that group's hyperparameters, and per-parameter ``state`` (moment buffers, step
counts).  Subclasses validate hyperparameters in ``_check_group`` and update one
parameter in ``_update``; everything else -- ``step``, ``zero_grad``, ``state_dict``,
``load_state_dict`` -- lives here, so every optimizer serialises the same way.

A state dict is ``{"state": {index: {name: ndarray | int}}, "param_groups": [...]}``
where ``index`` counts parameters across groups in order and each group lists its
parameters by index.  Leaves are NumPy arrays or JSON-able scalars and lists, so a
checkpoint can put the arrays in safetensors and the rest in JSON.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["Optimizer"]


def check_number(owner: str, name: str, value, low=None, high=None, low_open=False,
                 high_open=False) -> float:
    """``value`` as a float, or a ValueError/TypeError naming the expected range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got "
                        f"{type(value).__name__} {value!r}")
    value = float(value)
    lo_ok = low is None or (value > low if low_open else value >= low)
    hi_ok = high is None or (value < high if high_open else value <= high)
    if not (math.isfinite(value) and lo_ok and hi_ok):
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        if low is not None and high is not None:
            expected = f"in {lo}, {hi}"
        elif low is not None:
            expected = f"{'>' if low_open else '>='} {low}"
        else:
            expected = f"{'<' if high_open else '<='} {high}"
        raise ValueError(f"{owner}: {name} must be a finite number {expected}, got {value!r}")
    return value


def check_bool(owner: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got "
                        f"{type(value).__name__} {value!r}")
    return bool(value)


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def lerp_(a: np.ndarray, b: np.ndarray, weight: float) -> None:
    """a <- a + weight * (b - a), in place, with torch.lerp's two-branch rounding."""
    if abs(weight) < 0.5:
        a += weight * (b - a)
    else:
        a[...] = b - (b - a) * (1.0 - weight)


class Optimizer:
    """Base class of the optimizers.

    Args:
        params: an iterable of Parameters (objects with ``.data`` and ``.grad`` arrays,
            e.g. ``model.parameters()``), or an iterable of dicts, each with a
            ``"params"`` entry and per-group hyperparameters overriding the defaults.
        defaults: the default hyperparameters of every group.
    """

    def __init__(self, params, defaults: dict):
        name = type(self).__name__
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}  # id(param) -> that parameter's state
        if hasattr(params, "data") or isinstance(params, (dict, str, bytes)):
            raise TypeError(f"{name}: params must be an iterable of Parameters or of dicts, "
                            f"got a single {type(params).__name__}")
        if hasattr(params, "parameters") and callable(params.parameters):
            raise TypeError(f"{name}: params must be an iterable of Parameters, got a "
                            f"{type(params).__name__}; pass model.parameters()")
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ---- groups -----------------------------------------------------------
    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (others from defaults)."""
        name = type(self).__name__
        if not isinstance(group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict, got "
                            f"{type(group).__name__}")
        if "params" not in group:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry, got keys "
                             f"{sorted(group)}")
        params = group["params"]
        params = [params] if hasattr(params, "data") else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            data = getattr(p, "data", None)
            if not isinstance(data, np.ndarray) or data.dtype.kind != "f":
                got = type(p).__name__ if data is None else f"{type(p).__name__} with data " \
                    f"{type(data).__name__} {getattr(data, 'dtype', '')}"
                raise TypeError(f"{name}: parameter {i} must have a floating-point ndarray "
                                f".data (a Parameter), got {got}")
            if id(p) in seen:
                raise ValueError(f"{name}: parameter {i} (shape {data.shape}) appears in more "
                                 f"than one place; each parameter may be given once")
            seen.add(id(p))
        new = dict(self.defaults)
        new.update({k: v for k, v in group.items() if k != "params"})
        new["params"] = params
        self._check_group(new)
        self.param_groups.append(new)

    def _check_group(self, group: dict) -> None:
        """Validate one group's hyperparameters (converting them in place); subclasses."""

    # ---- stepping ---------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (``None``, or zeros with ``set_to_none=False``)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad = np.zeros_like(p.data)

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()`` if given."""
        loss = closure() if closure is not None else None
        name = type(self).__name__
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = np.asarray(p.grad)
                if grad.shape != p.data.shape:
                    raise ValueError(f"{name}: a gradient of shape {grad.shape} for a "
                                     f"parameter of shape {p.data.shape}")
                grad = grad.astype(p.data.dtype, copy=False)
                self._update(p, grad, self.state.setdefault(id(p), {}), group)
        return loss

    def _update(self, p, grad: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError

    # ---- state ------------------------------------------------------------
    def _index(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        """``{"state": {i: {...}}, "param_groups": [{..., "params": [i, ...]}]}``; copies."""
        params = self._index()
        where = {id(p): i for i, p in enumerate(params)}
        groups, start = [], 0
        for g in self.param_groups:
            out = {k: _jsonable(v) for k, v in g.items() if k != "params"}
            out["params"] = list(range(start, start + len(g["params"])))
            start += len(g["params"])
            groups.append(out)
        state = {}
        for pid, st in self.state.items():
            if pid in where and st:
                state[where[pid]] = {k: (v.copy() if isinstance(v, np.ndarray) else _jsonable(v))
                                     for k, v in st.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and buffers saved by ``state_dict`` (keys may be str)."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and "
                             f"'param_groups', got {got}")
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the optimizer has "
                             f"{len(self.param_groups)} parameter groups but the state has "
                             f"{len(saved)}")
        for k, (mine, theirs) in enumerate(zip(self.param_groups, saved)):
            if len(theirs["params"]) != len(mine["params"]):
                raise ValueError(f"{name}.load_state_dict: group {k} has {len(mine['params'])} "
                                 f"parameters but the state's has {len(theirs['params'])}")
        params = self._index()
        new_state: dict[int, dict] = {}
        for key, st in state_dict["state"].items():
            i = int(key)
            if not 0 <= i < len(params):
                raise ValueError(f"{name}.load_state_dict: state for parameter {i}, but the "
                                 f"optimizer has {len(params)} parameters")
            p = params[i]
            out = {}
            for k, v in st.items():
                if isinstance(v, np.ndarray) or isinstance(v, list):
                    v = np.asarray(v)
                    if v.shape != p.data.shape:
                        raise ValueError(f"{name}.load_state_dict: state {k!r} of parameter {i} "
                                         f"has shape {v.shape}, expected {p.data.shape}")
                    v = np.array(v, dtype=p.data.dtype, copy=True)
                elif isinstance(v, (float, np.floating)) and float(v).is_integer():
                    v = int(v)
                out[k] = v
            new_state[id(p)] = out
        groups = []
        for mine, theirs in zip(self.param_groups, saved):
            g = {k: v for k, v in theirs.items() if k != "params"}
            for k, v in g.items():
                if isinstance(v, list) and isinstance(self.defaults.get(k), tuple):
                    g[k] = tuple(v)
            g["params"] = mine["params"]
            self._check_group(g)
            groups.append(g)
        self.param_groups = groups
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines + [")"])
