"""Training checkpoints: a tree of state (model, optimizer, schedule, every RNG, the
loop's position) stored as safetensors + JSON, written atomically.  No pickle.

A checkpoint is one safetensors file.  Every ndarray in the tree becomes a tensor named
by its path (``model/conv1.weight``, ``optimizer/state/0/exp_avg``, ...); everything
else is JSON in the header's ``__metadata__["convnet"]``::

    {"format": "convnet.checkpoint", "version": 1, "state": <tree>}

JSON node shapes: plain JSON values as is (Python ints of any size, so a PCG64 state's
128-bit integers survive exactly); ``{"__tensor__": name}``; ``{"__tuple__": [...]}``;
``{"__dict__": {...}}`` for str-keyed dicts and ``{"__items__": [[k, v], ...]}`` for
other keys (an optimizer's per-parameter state is keyed by int); ``{"__scalar__":
[dtype, value]}`` for NumPy scalars (a float32 scalar stays float32, bit for bit);
``{"__float__": "nan"}`` for non-finite floats; ``{"__dtype__": name}``.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from .errors import CheckpointError
from .tensorfile import SAFETENSORS_DTYPES, read_tensor_file, write_tensor_file

__all__ = ["save_checkpoint", "load_checkpoint", "encode_tree", "decode_tree",
           "generator_state", "set_generator_state", "find_generators"]

FORMAT = "convnet.checkpoint"
VERSION = 1
_SCALAR_DTYPES = {dt.name for dt in SAFETENSORS_DTYPES.values()}
MAX_DEPTH = 64


def _tensor_name(path: tuple, used: set) -> str:
    base = "/".join(str(p) for p in path) or "root"
    name, i = base, 1
    while name in used:
        name, i = f"{base}#{i}", i + 1
    used.add(name)
    return name


def encode_tree(tree) -> tuple[object, dict]:
    """Split ``tree`` into a JSON-able skeleton and a name -> ndarray dict."""
    tensors: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def enc(v, path, depth):
        if depth > MAX_DEPTH:
            raise ValueError(f"checkpoint state nested deeper than {MAX_DEPTH} at {path}")
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else {"__float__": repr(v)}
        if isinstance(v, np.generic) and not isinstance(v, np.ndarray):
            if v.dtype.name not in _SCALAR_DTYPES:
                raise TypeError(f"checkpoint: cannot store a {v.dtype} scalar at {path}")
            item = v.item()
            if isinstance(item, float) and not math.isfinite(item):
                item = repr(item)
            return {"__scalar__": [v.dtype.name, item]}
        if isinstance(v, np.ndarray):
            if v.dtype.name not in _SCALAR_DTYPES:
                raise TypeError(f"checkpoint: cannot store an array of dtype {v.dtype} at "
                                f"{'/'.join(map(str, path))}")
            name = _tensor_name(path, used)
            tensors[name] = v
            return {"__tensor__": name}
        if hasattr(v, "data") and isinstance(getattr(v, "data", None), np.ndarray) \
                and type(v).__name__ in ("Tensor", "Parameter"):
            return enc(v.data, path, depth)
        if isinstance(v, np.dtype):
            return {"__dtype__": v.name}
        if isinstance(v, list):
            return [enc(x, path + (i,), depth + 1) for i, x in enumerate(v)]
        if isinstance(v, tuple):
            return {"__tuple__": [enc(x, path + (i,), depth + 1) for i, x in enumerate(v)]}
        if isinstance(v, dict):
            if all(isinstance(k, str) for k in v):
                return {"__dict__": {k: enc(x, path + (k,), depth + 1) for k, x in v.items()}}
            return {"__items__": [[enc(k, path + ("key",), depth + 1),
                                   enc(x, path + (k,), depth + 1)] for k, x in v.items()]}
        raise TypeError(f"checkpoint: cannot store a {type(v).__name__} at "
                        f"{'/'.join(map(str, path)) or 'the root'}")

    return enc(tree, (), 0), tensors


def decode_tree(node, tensors: dict, name: str = "<checkpoint>", error=CheckpointError):
    """Inverse of ``encode_tree``; a malformed node raises ``error`` naming where."""
    def fail(msg):
        raise error(f"{name}: {msg}")

    used = set()

    def dec(v, where, depth):
        if depth > MAX_DEPTH:
            fail(f"state nested deeper than {MAX_DEPTH} at {where}")
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [dec(x, f"{where}[{i}]", depth + 1) for i, x in enumerate(v)]
        if not isinstance(v, dict) or len(v) != 1:
            fail(f"{where}: expected a value or a one-key tagged object, got {v!r:.100}")
        (tag, body), = v.items()
        if tag == "__tensor__":
            if not isinstance(body, str) or body not in tensors:
                fail(f"{where}: refers to a tensor {body!r:.80} that the file does not hold")
            used.add(body)
            return tensors[body]
        if tag == "__tuple__" and isinstance(body, list):
            return tuple(dec(x, f"{where}[{i}]", depth + 1) for i, x in enumerate(body))
        if tag == "__dict__" and isinstance(body, dict):
            return {k: dec(x, f"{where}.{k}", depth + 1) for k, x in body.items()}
        if tag == "__items__" and isinstance(body, list):
            out = {}
            for i, pair in enumerate(body):
                if not isinstance(pair, list) or len(pair) != 2:
                    fail(f"{where}: item {i} must be a [key, value] pair")
                key = dec(pair[0], f"{where}.key{i}", depth + 1)
                try:
                    hash(key)
                except TypeError:
                    fail(f"{where}: item {i} has an unhashable key")
                out[key] = dec(pair[1], f"{where}[{key!r}]", depth + 1)
            return out
        if tag == "__scalar__" and isinstance(body, list) and len(body) == 2:
            dt, val = body
            if dt not in _SCALAR_DTYPES or not isinstance(val, (bool, int, float, str)):
                fail(f"{where}: bad scalar {body!r:.80}")
            try:
                return np.dtype(dt).type(float(val) if isinstance(val, str) else val)
            except (ValueError, OverflowError, TypeError) as exc:
                fail(f"{where}: bad scalar {body!r:.80}: {exc}")
        if tag == "__float__" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "__dtype__" and body in _SCALAR_DTYPES:
            return np.dtype(body)
        fail(f"{where}: malformed node {v!r:.100}")

    out = dec(node, "state", 0)
    unused = sorted(set(tensors) - used)
    if unused:
        fail(f"tensors {unused[:5]} are not referenced by the checkpoint's state")
    return out


def save_checkpoint(path, state: dict) -> None:
    """Write a checkpoint atomically: temporary file, fsync, rename, fsync of the directory.

    ``state`` is a tree of dicts, lists, tuples, ndarrays, NumPy scalars and JSON values.
    """
    skeleton, tensors = encode_tree(state)
    text = json.dumps({"format": FORMAT, "version": VERSION, "state": skeleton},
                      allow_nan=False)
    write_tensor_file(path, tensors, {"format": FORMAT, "convnet": text})


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by ``save_checkpoint``; returns the state tree.

    A malformed file raises ``CheckpointError`` (a ``ModelFormatError``)."""
    path = os.fspath(path)
    tensors, meta = read_tensor_file(path, error=CheckpointError)
    if meta.get("format") != FORMAT or "convnet" not in meta:
        raise CheckpointError(f"{path}: not a convnet checkpoint (format "
                              f"{meta.get('format')!r:.40})")
    try:
        doc = json.loads(meta["convnet"])
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: bad JSON in the checkpoint header: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "state" not in doc:
        raise CheckpointError(f"{path}: the checkpoint header lacks its format or state")
    if type(doc.get("version")) is not int or not 1 <= doc["version"] <= VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint version "
                              f"{doc.get('version')!r:.40}")
    try:
        return decode_tree(doc["state"], tensors, path)
    except RecursionError:
        raise CheckpointError(f"{path}: the state is nested too deeply") from None


# ---- random number generators ---------------------------------------------------
def generator_state(gen: np.random.Generator) -> dict:
    """A Generator's full state (``bit_generator.state``): plain dicts and ints."""
    return gen.bit_generator.state


def set_generator_state(gen: np.random.Generator, state, where: str = "rng") -> None:
    """Restore ``gen`` to ``state``; raises ``CheckpointError`` if it does not fit."""
    if not isinstance(state, dict) or "bit_generator" not in state:
        raise CheckpointError(f"{where}: expected a bit_generator state dict")
    kind = type(gen.bit_generator).__name__
    if state["bit_generator"] != kind:
        raise CheckpointError(f"{where}: the checkpoint holds a {state['bit_generator']!r:.40}"
                              f" state but the generator is {kind}")
    try:
        gen.bit_generator.state = state
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise CheckpointError(f"{where}: invalid generator state: {exc}") from None


def find_generators(root, prefix: str = "", max_depth: int = 6) -> dict:
    """Every ``numpy.random.Generator`` reachable from ``root`` through attributes, lists,
    tuples and dicts (up to ``max_depth`` hops; inside a Module, every submodule at any
    depth), keyed by a dotted path.

    Used to capture the generators hidden in dropout layers, transforms and loaders, so
    that a checkpoint holds every RNG state without each class having to expose it.
    """
    found: dict[str, np.random.Generator] = {}
    seen: set[int] = set()

    def walk(obj, path, depth):
        if isinstance(obj, np.random.Generator):
            found.setdefault(path or "root", obj)
            return
        if callable(getattr(obj, "named_modules", None)) and hasattr(obj, "_modules"):
            # A Module: every submodule's own attributes, however deep the tree.
            for name, mod in obj.named_modules():
                for k, v in sorted(vars(mod).items()):
                    if isinstance(v, np.random.Generator):
                        key = ".".join(p for p in (path, name, k) if p)
                        found.setdefault(key, v)
            return
        if depth > max_depth or id(obj) in seen or obj is None or \
                isinstance(obj, (str, bytes, int, float, bool, np.ndarray, np.generic, type)):
            return
        seen.add(id(obj))
        if isinstance(obj, dict):
            items = [(str(k), v) for k, v in obj.items()]
        elif isinstance(obj, (list, tuple)):
            items = [(str(i), v) for i, v in enumerate(obj)]
        elif hasattr(obj, "__dict__"):
            items = sorted((k, v) for k, v in vars(obj).items()
                           if not callable(v) or isinstance(v, np.random.Generator)
                           or hasattr(v, "__dict__"))
        else:
            return
        for k, v in items:
            walk(v, f"{path}.{k}" if path else k, depth + 1)

    walk(root, prefix, 0)
    return found
