"""Model files: ``convnet.save(model, path)`` and ``convnet.load(path)``.

The format is ONE safetensors file (suffix ``.safetensors`` by convention):

- the tensors are the model's ``state_dict`` (parameters and persistent buffers) under
  their dotted names, stored with their own dtype;
- the header's ``__metadata__`` holds ``"format": "convnet.model"`` and, under
  ``"convnet"``, a JSON document::

      {"format": "convnet.model", "version": 1,
       "architecture": {"class": "Sequential", "args": [...], "kwargs": {...}},
       "tensors": {"0.weight": {"dtype": "float32", "shape": [3, 3, 1, 16]}, ...},
       "metadata": {...}}        # free-form: input shape, class names, preprocessing

One file keeps the write atomic (temp file, fsync, rename, fsync of the directory) and
lets any safetensors reader see the weights.  ``load`` rebuilds the architecture from an
allowlist of convnet's classes (see ``architecture.py``), checks every tensor against it
and the manifest, and raises ``ModelFormatError`` -- and nothing else -- for a malformed
file.  No pickle, no ``eval``, no import of names read from the file.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .architecture import module_to_spec, spec_to_module
from .errors import ModelFormatError
from .tensorfile import read_tensor_file, write_tensor_file

__all__ = ["save", "load", "read_model_metadata", "FORMAT", "VERSION"]

FORMAT = "convnet.model"
VERSION = 1


class _fresh_default_rng:
    """Rebuilding a model draws initial weights that are overwritten at once.  Build
    inside ``init.skip_init()`` (no draws, lazily allocated zeros) and from a scratch
    default generator, so that saving or loading never advances convnet's default
    generator (and so never changes what a seeded program does next)."""

    def __enter__(self):
        from ..nn import init

        self._init = init
        self._saved = init.default_rng()
        init.manual_seed(0)
        self._skip = init.skip_init() if hasattr(init, "skip_init") else None
        if self._skip is not None:
            self._skip.__enter__()

    def __exit__(self, *exc):
        if self._skip is not None:
            self._skip.__exit__(*exc)
        self._init.set_default_rng(self._saved)
        return False


def _tensor_specs(model) -> dict:
    """name -> (shape, dtype) of every parameter and persistent buffer, in state_dict
    order, without copying any data."""
    out = {}
    for mod_name, mod in model.named_modules():
        pre = f"{mod_name}." if mod_name else ""
        for name, p in mod._parameters.items():
            if p is not None:
                out[pre + name] = (p.data.shape, p.data.dtype)
        for name, b in mod._buffers.items():
            if b is not None and name not in mod._non_persistent:
                out[pre + name] = (np.shape(b), np.asarray(b).dtype)
    return out


def _structure(model) -> list:
    mods = [(name, type(m).__name__) for name, m in model.named_modules()]
    tensors = [(k, shape) for k, (shape, _) in _tensor_specs(model).items()]
    return mods + tensors


def _describe_difference(a: list, b: list) -> str:
    for x, y in zip(a, b):
        if x != y:
            return f"{x} in the model but {y} when rebuilt"
    longer, which = (a, "model") if len(a) > len(b) else (b, "rebuilt model")
    return f"the {which} has extra entries starting at {longer[min(len(a), len(b))]}"


def save(model, path, metadata: dict | None = None, verify: bool = True) -> None:
    """Write ``model`` to the single-file format described above, atomically.

    Args:
        model: a ``convnet.nn.Module`` built from convnet's classes (or classes allowed
            with ``convnet.io.register_class``).
        path: destination file, conventionally ``*.safetensors``.
        metadata: optional JSON-serialisable dict kept in the file (e.g. ``input_shape``,
            ``class_names``, ``preprocess``); ``load(..., with_metadata=True)`` returns it.
        verify: rebuild the architecture once before writing and check that it matches
            the model, so a model changed after construction (a layer swapped on a custom
            class) fails here rather than when it is loaded.

    Example:
        >>> convnet.save(model, "digits.safetensors", metadata={"input_shape": [8, 8, 1]})
        >>> same = convnet.load("digits.safetensors")
    """
    spec = module_to_spec(model)
    state = model.state_dict()
    manifest = {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in state.items()}
    if verify:
        with _fresh_default_rng():
            rebuilt = spec_to_module(spec, "save", error=ValueError)
        a, b = _structure(model), _structure(rebuilt)
        if a != b:
            raise ValueError(f"save: the model cannot be rebuilt from its constructor "
                             f"arguments ({_describe_difference(a, b)}); build it from "
                             f"constructor arguments only")
    doc = {"format": FORMAT, "version": VERSION, "architecture": spec, "tensors": manifest,
           "metadata": metadata or {}}
    try:
        text = json.dumps(doc, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"save: metadata must be JSON-serialisable: {exc}") from exc
    write_tensor_file(path, state, {"format": FORMAT, "convnet": text})


def _parse_doc(meta: dict, name: str) -> dict:
    def fail(msg):
        raise ModelFormatError(f"{name}: {msg}")

    if "convnet" not in meta:
        fail("not a convnet model file: the safetensors metadata has no 'convnet' entry")
    try:
        doc = json.loads(meta["convnet"])
    except (ValueError, RecursionError) as exc:
        fail(f"bad JSON in the 'convnet' metadata: {exc}")
    if not isinstance(doc, dict):
        fail(f"the 'convnet' metadata must be a JSON object, got {type(doc).__name__}")
    missing = {"format", "version", "architecture", "tensors"} - set(doc)
    if missing:
        fail(f"the 'convnet' metadata lacks {sorted(missing)}")
    if doc["format"] != FORMAT:
        fail(f"format is {doc['format']!r:.60}, expected {FORMAT!r}")
    if type(doc["version"]) is not int or not 1 <= doc["version"] <= VERSION:
        fail(f"unsupported version {doc['version']!r:.40} (this convnet reads version "
             f"{VERSION})")
    manifest = doc["tensors"]
    if not isinstance(manifest, dict):
        fail("'tensors' must be an object mapping names to {dtype, shape}")
    for key, entry in manifest.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape"} \
                or not isinstance(entry["dtype"], str) or not isinstance(entry["shape"], list) \
                or not all(type(d) is int and d >= 0 for d in entry["shape"]):
            fail(f"'tensors' entry {key!r} must be {{'dtype': str, 'shape': [int, ...]}}, "
                 f"got {entry!r:.100}")
    if not isinstance(doc.get("metadata", {}), dict):
        fail("'metadata' must be an object")
    return doc


def _check_tensors(tensors: dict, manifest: dict, model, name: str) -> None:
    def fail(msg):
        raise ModelFormatError(f"{name}: {msg}")

    missing = [k for k in manifest if k not in tensors]
    if missing:
        fail(f"missing tensors {missing[:5]} listed in the architecture")
    extra = [k for k in tensors if k not in manifest]
    if extra:
        fail(f"unexpected tensors {extra[:5]} not listed in the architecture")
    for key, entry in manifest.items():
        arr = tensors[key]
        if arr.dtype.name != entry["dtype"]:
            fail(f"tensor {key!r} has dtype {arr.dtype.name}, the architecture says "
                 f"{entry['dtype']!r:.20}")
        if list(arr.shape) != entry["shape"]:
            fail(f"tensor {key!r} has shape {arr.shape}, the architecture says "
                 f"{tuple(entry['shape'])}")
    expected = _tensor_specs(model)
    missing = [k for k in expected if k not in tensors]
    if missing:
        fail(f"missing tensors {missing[:5]} that the {type(model).__name__} needs")
    extra = [k for k in tensors if k not in expected]
    if extra:
        fail(f"unexpected tensors {extra[:5]} that the {type(model).__name__} does not have")
    for key, (shape, dtype) in expected.items():
        arr = tensors[key]
        if arr.shape != tuple(shape):
            fail(f"tensor {key!r} has shape {arr.shape} but the architecture expects "
                 f"{tuple(shape)}")
        if dtype.kind == "f":
            ok = arr.dtype.kind == "f"
        else:
            ok = arr.dtype.kind in "iub" and arr.dtype.kind == dtype.kind
        if not ok:
            fail(f"tensor {key!r} has dtype {arr.dtype.name} but the architecture expects "
                 f"{dtype.name}")


def _assign(model, tensors: dict) -> None:
    for mod_name, mod in model.named_modules():
        pre = f"{mod_name}." if mod_name else ""
        for pname, p in mod._parameters.items():
            if p is not None:
                p.data = tensors[pre + pname]
                p.grad = None
        for bname, b in list(mod._buffers.items()):
            if b is not None and bname not in mod._non_persistent:
                mod._buffers[bname] = tensors[pre + bname]


def read_model_metadata(path) -> dict:
    """The free-form ``metadata`` dict of a model file, without building the model."""
    path = os.fspath(path)
    _, meta = read_tensor_file(path)
    return _parse_doc(meta, path).get("metadata", {})


def load(path, with_metadata: bool = False):
    """Read a model file written by ``save``; the model comes back in eval mode.

    The weights are bit-identical to the saved ones (same values, same dtypes), so the
    predictions are too.  Returns the model, or ``(model, metadata)`` with
    ``with_metadata=True``.

    Raises:
        FileNotFoundError / OSError: the path cannot be read.
        ModelFormatError: anything wrong inside the file -- truncated, a bad header or
            JSON, an unknown layer type, bad constructor arguments, missing or extra
            tensors, a shape or dtype that does not match the architecture.
    """
    path = os.fspath(path)
    try:
        tensors, meta = read_tensor_file(path)
        doc = _parse_doc(meta, path)
        with _fresh_default_rng():
            model = spec_to_module(doc["architecture"], path)
        from ..nn.module import Module

        if not isinstance(model, Module):  # pragma: no cover - registry holds Modules only
            raise ModelFormatError(f"{path}: the architecture is not a Module")
        _check_tensors(tensors, doc["tensors"], model, path)
        _assign(model, tensors)
        model.eval()
    except (ModelFormatError, OSError, ImportError):
        raise
    except RecursionError:
        raise ModelFormatError(f"{path}: the architecture is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - the contract: a bad file is a ModelFormatError
        raise ModelFormatError(f"{path}: cannot load the model: {type(exc).__name__}: "
                               f"{exc}") from exc
    if with_metadata:
        return model, doc.get("metadata", {})
    return model
