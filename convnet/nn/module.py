"""Module, Parameter and the containers (Sequential, ModuleList, ModuleDict)."""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from typing import Iterator

import numpy as np

from ..tensor import Tensor

__all__ = ["Parameter", "Module", "Sequential", "ModuleList", "ModuleDict",
           "strict_tiling", "is_strict_tiling", "StateDictKeyError"]

_strict = {"on": False}


def is_strict_tiling() -> bool:
    return _strict["on"]


@contextlib.contextmanager
def strict_tiling(enabled: bool = True):
    """Inside the block, conv and pool layers raise when their windows do not tile the
    padded input exactly -- seed 002's "the strides are incorrect" case."""
    prev = _strict["on"]
    _strict["on"] = enabled
    try:
        yield
    finally:
        _strict["on"] = prev


class StateDictKeyError(KeyError, ValueError):
    """``load_state_dict(strict=True)`` found missing or unexpected keys.

    A ``ValueError`` like every other bad-input error, and a ``KeyError`` for code that
    catches PyTorch-style key errors; ``str()`` is the plain message (no quotes).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Parameter(Tensor):
    """A Tensor that a Module registers as learnable; ``requires_grad`` defaults to True."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model.

    Subclasses set parameters and submodules as attributes in ``__init__`` and define
    ``forward``.  Layers also define ``output_shape(input_shape)``, which maps a
    per-sample shape (no batch axis, e.g. ``(H, W, C)``) to the output's without data.

    The constructor's arguments are recorded (``self._init_args``) so that model files
    can store the architecture as JSON and rebuild it from an allowlist of classes.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            if "_init_args" not in self.__dict__:
                object.__setattr__(self, "_init_args", (args, dict(kw)))
            init(self, *args, **kw)

        cls.__init__ = recording_init

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration -----------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before "
                               f"assigning attribute {name!r}")
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value, persistent: bool = True) -> None:
        """A non-learnable array that belongs in ``state_dict`` (e.g. running means)."""
        if name in self.__dict__:
            object.__delattr__(self, name)
        self._buffers[name] = None if value is None else np.asarray(value)
        if not persistent:
            self._non_persistent.add(name)

    def register_module(self, name: str, module: Module | None) -> None:
        self._modules[name] = module

    def add_module(self, name: str, module: Module | None) -> None:
        self._modules[name] = module

    # ---- calling ----------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        if args and self._parameters:
            args = (self._match_dtype(args[0]),) + args[1:]
        return self.forward(*args, **kwargs)

    def _match_dtype(self, x):
        """Cast a float input to the dtype of this layer's parameters, as Keras does.

        NumPy arrays are float64 by default; without this a float32 model fed such an
        array would silently compute in float64.  The cast is recorded on the tape, so
        the input's gradient comes back in the input's own dtype.
        """
        p = next((q for q in self._parameters.values() if q is not None), None)
        if p is None or p.data.dtype.kind != "f":
            return x
        if isinstance(x, Tensor):
            if x.data.dtype.kind == "f" and x.data.dtype != p.data.dtype:
                return x.astype(p.data.dtype)
        elif isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.dtype != p.data.dtype:
            return Tensor(x.astype(p.data.dtype))
        return x

    def output_shape(self, input_shape):
        """Per-sample output shape for a per-sample ``input_shape``, without data."""
        raise NotImplementedError(f"{type(self).__name__} does not define output_shape()")

    # ---- traversal --------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Every module in the tree, depth first, each once, with dotted names."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            kids = [(f"{name}.{n}" if name else n, m) for n, m in mod.named_children()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, p in mod._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mod_name, mod in self.named_modules(prefix):
            for name, b in mod._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- state ------------------------------------------------------------
    def state_dict(self) -> OrderedDict:
        """Parameters and persistent buffers by dotted name, as array copies."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for mod_name, mod in self.named_modules():
            pre = f"{mod_name}." if mod_name else ""
            for name, p in mod._parameters.items():
                if p is not None:
                    out[pre + name] = p.data.copy()
            for name, b in mod._buffers.items():
                if b is not None and name not in mod._non_persistent:
                    out[pre + name] = np.array(b, copy=True)
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays into this module's parameters and buffers.

        Shapes must match exactly; values are cast to each parameter's dtype.  With
        ``strict`` the keys must match too.  Returns ``(missing_keys, unexpected_keys)``.
        """
        targets: dict[str, tuple[Module, str, bool]] = {}
        for mod_name, mod in self.named_modules():
            pre = f"{mod_name}." if mod_name else ""
            for name, p in mod._parameters.items():
                if p is not None:
                    targets[pre + name] = (mod, name, True)
            for name, b in mod._buffers.items():
                if b is not None and name not in mod._non_persistent:
                    targets[pre + name] = (mod, name, False)
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing[:10]}" + ("..." if len(missing) > 10 else ""))
            if unexpected:
                parts.append(f"unexpected keys {unexpected[:10]}"
                             + ("..." if len(unexpected) > 10 else ""))
            raise StateDictKeyError(f"load_state_dict for {type(self).__name__}: "
                                    + "; ".join(parts))
        mismatched, not_numeric = [], []
        for key, (mod, name, is_param) in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = value.data if isinstance(value, Tensor) else np.asarray(value)
            current = mod._parameters[name].data if is_param else mod._buffers[name]
            if value.dtype.kind not in "biuf":
                not_numeric.append(f"{key}: expected a numeric array of shape "
                                   f"{current.shape}, got dtype {value.dtype}")
            elif value.shape != current.shape:
                mismatched.append(f"{key}: expected shape {current.shape}, got {value.shape}")
        if not_numeric:
            raise TypeError(f"load_state_dict for {type(self).__name__}: "
                            + "; ".join(not_numeric))
        if mismatched:
            raise ValueError(f"load_state_dict for {type(self).__name__}: shape mismatch for "
                             + "; ".join(mismatched))
        for key, (mod, name, is_param) in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = value.data if isinstance(value, Tensor) else np.asarray(value)
            if is_param:
                p = mod._parameters[name]
                p.data = np.array(value, dtype=p.data.dtype, copy=True)
            else:
                cur = mod._buffers[name]
                mod._buffers[name] = np.array(value, dtype=cur.dtype, copy=True)
        return missing, unexpected

    # ---- modes and helpers ------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:  # PyTorch's name, as in model.eval()
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, dtype) -> Module:
        """Cast every float parameter and buffer to ``dtype`` (e.g. float64 for grad checks)."""
        dt = np.dtype(dtype)
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None and p.data.dtype.kind == "f":
                    p.data = p.data.astype(dt)
                    p.grad = None
            for name, b in list(m._buffers.items()):
                if b is not None and b.dtype.kind == "f":
                    m._buffers[name] = b.astype(dt)
        return self

    def apply(self, fn) -> Module:
        for m in self.modules():
            fn(m)
        return self

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"


class Sequential(Module):
    """Run modules in order.  Children are named ``"0"``, ``"1"``, ... as in PyTorch,
    or by the keys of an ``OrderedDict``.

    Example:
        >>> net = Sequential(Conv2d(1, 6, 5), ReLU(), MaxPool2d(2))
        >>> net.output_shape((28, 28, 1))
        (12, 12, 6)
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (dict, OrderedDict)):
            for name, m in layers[0].items():
                self._check(m, name)
                self._modules[str(name)] = m
        else:
            for i, m in enumerate(layers):
                self._check(m, i)
                self._modules[str(i)] = m

    @staticmethod
    def _check(m, where):
        if not isinstance(m, Module):
            raise TypeError(f"Sequential: item {where} must be a Module, got {type(m).__name__}")

    def forward(self, x):
        mods = [m for m in self._modules.values() if m is not None]
        i = 0
        while i < len(mods):
            m = mods[i]
            if i + 1 < len(mods) and _fusable(m, mods[i + 1]):
                # Conv2d -> ReLU (-> MaxPool2d) as one op: the same results and gradients,
                # the ReLU and pool applied block by block while the conv's output is in
                # cache (F.conv2d_relu, F.conv2d_relu_max_pool2d).
                pool = _pool_tiles(mods[i + 2]) if i + 2 < len(mods) else None
                if pool is not None:
                    if is_strict_tiling():
                        mods[i + 2].output_shape(m.output_shape(x.shape[1:]))
                    x = m.forward_relu_pool(m._match_dtype(x), pool)
                    i += 3
                else:
                    x = m.forward_relu(m._match_dtype(x))
                    i += 2
                continue
            x = m(x)
            i += 1
        return x

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for m in self._modules.values():
            shape = m.output_shape(shape)
        return shape

    def append(self, module: Module) -> Sequential:
        self._check(module, len(self._modules))
        self._modules[str(len(self._modules))] = module
        return self

    def __getitem__(self, idx):
        items = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(*items[idx])
        if isinstance(idx, str):
            return self._modules[idx]
        return items[idx]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleList(Module):
    """A list of modules, registered under ``"0"``, ``"1"``, ..."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: items must be Modules, got {type(module).__name__}")
        self._modules[str(len(self._modules))] = module
        return self

    def __getitem__(self, idx):
        return list(self._modules.values())[idx]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of modules, registered under their keys."""

    def __init__(self, modules=None):
        super().__init__()
        for k, m in (modules or {}).items():
            self[k] = m

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: values must be Modules, got {type(module).__name__}")
        self._modules[str(key)] = module

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def items(self):
        return self._modules.items()

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()


def _pool_tiles(m):
    """A plain non-overlapping MaxPool2d's window (``MaxPool2d.plain_tiles``), else None."""
    tiles = getattr(m, "plain_tiles", None)
    return tiles() if tiles is not None else None


def _fusable(m, nxt) -> bool:
    """Whether ``Sequential`` may run ``m`` then ``nxt`` as one fused conv + ReLU."""
    fuses = getattr(m, "fuses_relu", None)
    plain = getattr(nxt, "is_plain_relu", None)
    return fuses is not None and plain is not None and fuses() and plain()
