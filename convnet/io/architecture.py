"""A model's architecture as JSON, rebuilt only from an allowlist of convnet's classes.

Every ``Module`` records the arguments its constructor was called with
(``module._init_args``).  ``module_to_spec`` turns those into JSON; ``spec_to_module``
calls the constructors again.  The class named in the file is looked up in a registry
dict (class name -> class) that holds convnet's own ``Module`` subclasses and whatever a
program registers explicitly with ``register_class``.  Nothing read from a file is ever
imported, ``eval``'d or unpickled.

JSON shapes of argument values (every JSON object is a tagged node with one key):

==========================  ==============================================
Python value                JSON
==========================  ==============================================
None, bool, int, str        as is
float                       as is; NaN / +-inf as ``{"__float__": "nan"}``
list                        a list
tuple                       ``{"__tuple__": [...]}``
dict (str keys)             ``{"__dict__": {...}}``
Module                      ``{"__module__": {"class", "args", "kwargs"}}``
a registered Module class   ``{"__class__": "ReLU"}``
numpy dtype / scalar type   ``{"__dtype__": "float32"}``
numpy.random.Generator      ``{"__rng__": null}`` (rebuilt as a fresh generator;
                            the weights are overwritten from the file anyway)
small ndarray               ``{"__array__": {"dtype", "shape", "data"}}``
==========================  ==============================================

``Sequential``, ``ModuleList`` and ``ModuleDict`` are stored from their *current*
children, so a container edited after construction still round-trips.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ModelFormatError

__all__ = ["register_class", "registered_classes", "module_to_spec", "spec_to_module",
           "class_key"]

MAX_DEPTH = 100
MAX_ARRAY_ARG = 65536
_FLOAT_DTYPES = ("float16", "float32", "float64")
_ALLOWED_DTYPES = _FLOAT_DTYPES + ("int8", "int16", "int32", "int64", "uint8", "bool")

_extra: dict[str, type] = {}
_cache: dict = {"registry": None, "keys": None, "n": -1}


def register_class(cls: type, name: str | None = None) -> type:
    """Allow ``cls`` (a ``Module`` subclass defined outside convnet) in model files.

    Usable as a decorator.  The allowlist is extended by code, never by a file.
    """
    from ..nn.module import Module

    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register_class: expected a Module subclass, got {cls!r}")
    key = name or cls.__name__
    if key in _extra and _extra[key] is not cls:
        raise ValueError(f"register_class: the name {key!r} is already registered for "
                         f"{_extra[key].__module__}.{_extra[key].__qualname__}")
    _extra[key] = cls
    _cache["registry"] = None
    return cls


def _all_subclasses(root: type) -> list[type]:
    out, stack = [], [root]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in out:
                out.append(sub)
                stack.append(sub)
    return out


def registered_classes() -> dict[str, type]:
    """The allowlist: name -> class for every convnet Module subclass (layers, containers
    and the zoo's model classes) plus the classes given to ``register_class``."""
    from .. import models  # noqa: F401 - import the zoo so its classes are registered
    from ..nn.module import Module

    subclasses = _all_subclasses(Module)
    if _cache["registry"] is not None and _cache["n"] == len(subclasses):
        return _cache["registry"]
    own = [Module] + [c for c in subclasses
                      if c.__module__.split(".")[0] == "convnet" and "<locals>" not in
                      c.__qualname__]
    by_name: dict[str, list[type]] = {}
    for cls in own:
        by_name.setdefault(cls.__name__, []).append(cls)
    registry: dict[str, type] = {}
    keys: dict[type, str] = {}
    for name, classes in by_name.items():
        for cls in classes:
            # A class name used twice inside convnet is keyed by its full dotted name.
            key = name if len(classes) == 1 else f"{cls.__module__}.{cls.__qualname__}"
            registry[key] = cls
            keys[cls] = key
    for key, cls in _extra.items():
        registry[key] = cls
        keys[cls] = key
    _cache.update(registry=registry, keys=keys, n=len(subclasses))
    return registry


def class_key(cls: type) -> str | None:
    registered_classes()
    return _cache["keys"].get(cls)


# ---- encoding ----------------------------------------------------------------
def _encode(value, where: str, depth: int):
    from ..nn.module import Module

    if depth > MAX_DEPTH:
        raise ValueError(f"{where[:60]}...: nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else {"__float__": repr(f)}
    if isinstance(value, Module):
        return {"__module__": module_to_spec(value, where, depth + 1)}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{where}[{i}]", depth + 1)
                              for i, v in enumerate(value)]}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: dict keys must be str to be stored as JSON, "
                                f"got {type(k).__name__}")
            out[k] = _encode(v, f"{where}[{k!r}]", depth + 1)
        return {"__dict__": out}
    if isinstance(value, np.random.Generator):
        return {"__rng__": None}
    if isinstance(value, np.dtype) or value in (float, int, bool) or (
            isinstance(value, type) and issubclass(value, np.generic)):
        name = np.dtype(value).name
        if name not in _ALLOWED_DTYPES:
            raise TypeError(f"{where}: dtype {name} cannot be stored")
        return {"__dtype__": name}
    if isinstance(value, type) and issubclass(value, Module):
        key = class_key(value)
        if key is None:
            raise TypeError(f"{where}: class {value.__qualname__} is not a convnet class; "
                            f"allow it with convnet.io.register_class")
        return {"__class__": key}
    if isinstance(value, np.ndarray):
        if value.size > MAX_ARRAY_ARG or value.dtype.name not in _ALLOWED_DTYPES:
            raise TypeError(f"{where}: only small numeric arrays can be stored as "
                            f"constructor arguments, got {value.dtype}{value.shape}")
        return {"__array__": {"dtype": value.dtype.name, "shape": list(value.shape),
                              "data": value.ravel().tolist()}}
    raise TypeError(f"{where}: cannot store a constructor argument of type "
                    f"{type(value).__name__} in a model file")


def _container_args(module):
    from ..nn.module import ModuleDict, ModuleList, Sequential

    kids = list(module._modules.items())
    if type(module) is Sequential:
        if all(name == str(i) for i, (name, _) in enumerate(kids)):
            return [m for _, m in kids], {}
        return [dict(kids)], {}
    if type(module) is ModuleList:
        return [[m for _, m in kids]], {}
    if type(module) is ModuleDict:
        return [dict(kids)], {}
    return None


def module_to_spec(module, where: str = "model", depth: int = 0) -> dict:
    """``{"class": key, "args": [...], "kwargs": {...}}`` for ``module`` (recursively)."""
    key = class_key(type(module))
    if key is None:
        raise TypeError(f"{where}: {type(module).__module__}.{type(module).__qualname__} is "
                        f"not a convnet class, so a model file could not rebuild it; allow "
                        f"it with convnet.io.register_class")
    container = _container_args(module)
    if container is not None:
        args, kwargs = container
    else:
        init_args = module.__dict__.get("_init_args")
        if init_args is None:
            raise TypeError(f"{where}: {key} has no recorded constructor arguments")
        args, kwargs = init_args
    return {"class": key,
            "args": [_encode(a, f"{where}.{key}.args[{i}]", depth + 1)
                     for i, a in enumerate(args)],
            "kwargs": {k: _encode(v, f"{where}.{key}.{k}", depth + 1)
                       for k, v in kwargs.items()}}


# ---- decoding ----------------------------------------------------------------
def _decode(node, where: str, depth: int, fail):
    if depth > MAX_DEPTH:
        fail(f"{where[:60]}...: nested more than {MAX_DEPTH} levels deep")
    if node is None or isinstance(node, (bool, int, str)):
        return node
    if isinstance(node, float):
        return node
    if isinstance(node, list):
        return [_decode(v, f"{where}[{i}]", depth + 1, fail) for i, v in enumerate(node)]
    if not isinstance(node, dict) or len(node) != 1:
        fail(f"{where}: expected a value or a one-key tagged object, got {node!r:.120}")
    (tag, body), = node.items()
    if tag == "__tuple__":
        if not isinstance(body, list):
            fail(f"{where}: '__tuple__' must hold a list, got {type(body).__name__}")
        return tuple(_decode(v, f"{where}[{i}]", depth + 1, fail) for i, v in enumerate(body))
    if tag == "__dict__":
        if not isinstance(body, dict):
            fail(f"{where}: '__dict__' must hold an object, got {type(body).__name__}")
        return {k: _decode(v, f"{where}[{k!r}]", depth + 1, fail) for k, v in body.items()}
    if tag == "__module__":
        return _build(body, where, depth + 1, fail)
    if tag == "__float__":
        if body not in ("nan", "inf", "-inf"):
            fail(f"{where}: '__float__' must be 'nan', 'inf' or '-inf', got {body!r:.40}")
        return float(body)
    if tag == "__rng__":
        return np.random.default_rng(0)
    if tag == "__dtype__":
        if body not in _ALLOWED_DTYPES:
            fail(f"{where}: unsupported dtype {body!r:.40} (expected one of "
                 f"{list(_ALLOWED_DTYPES)})")
        return np.dtype(body)
    if tag == "__class__":
        cls = registered_classes().get(body) if isinstance(body, str) else None
        if cls is None:
            fail(f"{where}: unknown layer type {body!r:.80} (not one of convnet's classes)")
        return cls
    if tag == "__array__":
        return _decode_array(body, where, fail)
    fail(f"{where}: unknown tag {tag!r:.40}")


def _decode_array(body, where, fail):
    if not isinstance(body, dict) or set(body) != {"dtype", "shape", "data"}:
        fail(f"{where}: '__array__' needs exactly 'dtype', 'shape' and 'data'")
    dt, shape, data = body["dtype"], body["shape"], body["data"]
    if dt not in _ALLOWED_DTYPES:
        fail(f"{where}: unsupported array dtype {dt!r:.40}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        fail(f"{where}: array shape must be a list of non-negative ints, got {shape!r:.80}")
    if not isinstance(data, list) or not all(
            type(v) in (int, float, bool) for v in data):
        fail(f"{where}: array data must be a flat list of numbers")
    if len(data) != math.prod(shape):
        fail(f"{where}: array of shape {tuple(shape)} needs {math.prod(shape)} values, "
             f"got {len(data)}")
    return np.array(data, dtype=dt).reshape(shape)


def _build(spec, where: str, depth: int, fail):
    if not isinstance(spec, dict) or set(spec) != {"class", "args", "kwargs"}:
        fail(f"{where}: a module must be an object with exactly 'class', 'args' and "
             f"'kwargs', got {spec!r:.120}")
    key, args, kwargs = spec["class"], spec["args"], spec["kwargs"]
    if not isinstance(key, str):
        fail(f"{where}: 'class' must be a string, got {type(key).__name__}")
    cls = registered_classes().get(key)
    if cls is None:
        fail(f"{where}: unknown layer type {key!r:.80} (not one of convnet's classes)")
    if not isinstance(args, list):
        fail(f"{where}: 'args' of {key} must be a list, got {type(args).__name__}")
    if not isinstance(kwargs, dict):
        fail(f"{where}: 'kwargs' of {key} must be an object, got {type(kwargs).__name__}")
    here = f"{where}.{key}"
    args = [_decode(a, f"{here}.args[{i}]", depth + 1, fail) for i, a in enumerate(args)]
    kwargs = {k: _decode(v, f"{here}.{k}", depth + 1, fail) for k, v in kwargs.items()}
    try:
        return cls(*args, **kwargs)
    except MemoryError:
        fail(f"{where}: building {key} ran out of memory (are its sizes plausible?)")
    except Exception as exc:  # noqa: BLE001 - any constructor complaint means a bad file
        fail(f"{where}: cannot build {key} from the stored arguments: "
             f"{type(exc).__name__}: {exc}")


def spec_to_module(spec, name: str = "<architecture>", error=ModelFormatError):
    """Rebuild a module from ``module_to_spec``'s output, raising ``error`` on a bad spec."""
    def fail(msg):
        raise error(f"{name}: architecture: {msg}")

    return _build(spec, "model", 0, fail)
