"""PyTorch weights in and out: ``load_torch_state_dict`` / ``to_torch_state_dict``.

A PyTorch ``state_dict`` loads by name into the convnet model of the same architecture
(the zoo uses torchvision's names), with each tensor transposed at this boundary and
nowhere else.  What a tensor needs is decided by the convnet module that owns it:

================================  =====================================  ==================
convnet module                    torch layout                           convnet layout
================================  =====================================  ==================
Conv1d / Conv2d / Conv3d,         (O, I/g, K) / (O, I/g, KH, KW) /        (K, I/g, O) / HWIO
MixedDilationConv2d               (O, I/g, KD, KH, KW)                    / (KD, KH, KW, I, O)
ConvTranspose2d                   (I, O/g, KH, KW)                        (KH, KW, O/g, I)
Linear                            (out, in)                               (in, out)
LayerNorm over >= 2 axes          (C, *S)                                 (*S, C)
BatchNorm, GroupNorm, biases,     as is                                   as is
buffers (running_mean, ...)
================================  =====================================  ==================

Flatten.  torch flattens an NCHW map in (c, h, w) order, convnet an NHWC map in
(h, w, c) order, so the Linear that reads a flattened map gets its input rows permuted
(and so do a BatchNorm1d or LayerNorm between the Flatten and that Linear).  That needs
the map's shape at the Flatten, found by following the data flow of ``Sequential`` and
``GraphModule`` models:

* with ``input_shape`` (per sample, channels last, e.g. (28, 28, 1)), from each layer's
  ``output_shape`` -- always exact;
* without it, only where the shape does not depend on the input size: after an
  ``AdaptiveAvgPool2d`` with a fixed size (VGG's 7x7x512, AlexNet's 6x6x256), or where
  the Linear's ``in_features`` equals the channel count (global pooling, 1x1 maps).
  Otherwise a ValueError asks for ``input_shape``.

``permute_flatten=False`` turns this off (for torch code that permutes to NHWC itself).

Files: a ``.safetensors`` file (what ``safetensors.torch.save_file(model.state_dict(),
path)`` writes).  PyTorch's own ``.pt``/``.pth`` files are pickles, which can run code
when read; they are refused, never unpickled.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict

import numpy as np

from .. import nn
from ..models._adaptive import AdaptiveAvgPool2d
from ..models._graph import GraphModule, resolve_child
from ..nn.activation import _Elementwise
from ..nn.conv import _ConvNd
from ..nn.convnd import _GlobalPool1d
from ..nn.module import Module, Sequential
from ..nn.norm import _BatchNorm
from ..nn.pool import _GlobalPool2d
from ..tensor import Tensor
from .errors import ModelFormatError
from .tensorfile import read_tensor_file, write_tensor_file

__all__ = ["from_torch_state_dict", "load_torch_state_dict", "to_torch_state_dict",
           "save_torch_state_dict"]

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar")
_CONVERT_HINT = ("convert it once in PyTorch: `from safetensors.torch import save_file; "
                 "save_file(model.state_dict(), 'weights.safetensors')`, then load that file")


# ---- following the data flow ----------------------------------------------------------
class _UnknownMap:
    """The order of a map flattened at an unknown size (only its channels are known)."""

    def __init__(self, channels):
        self.channels = channels


class _Sym:
    """A symbolic activation: per-sample shape (None: unknown), channel count (None:
    unknown) and ``perm``: for flattened features, the torch index of each convnet
    feature (None: the same order; ``_UnknownMap``: not known yet)."""

    __slots__ = ("shape", "channels", "perm")

    def __init__(self, shape=None, channels=None, perm=None):
        self.shape = None if shape is None else tuple(int(d) for d in shape)
        self.channels = channels if channels is not None or not self.shape else self.shape[-1]
        self.perm = perm


def flatten_permutation(shape) -> np.ndarray | None:
    """For a per-sample channels-last ``shape`` (*S, C): the torch (c, *s) flat index of
    each convnet (*s, c) flat index, or None where the two orders agree."""
    shape = tuple(shape)
    if len(shape) < 2 or math.prod(shape[:-1]) == 1:
        return None
    torch_index = np.arange(math.prod(shape)).reshape(shape[-1], *shape[:-1])  # (C, *S)
    return np.moveaxis(torch_index, 0, -1).ravel()  # (*S, C) order, flattened


def _keeps_channels(m) -> bool:
    return isinstance(m, (_Elementwise, nn.Dropout, nn.Identity, _BatchNorm, nn.GroupNorm,
                          nn.LayerNorm, nn.MaxPool2d, nn.AvgPool2d, nn.MaxPool1d,
                          nn.AvgPool1d, nn.MaxPool3d, nn.Upsample, nn.Unpool2d,
                          AdaptiveAvgPool2d))


def _unknown_size(m, s: _Sym) -> _Sym:
    """The activation after ``m`` when the input size is unknown: fixed-size pools give
    a known shape again; otherwise only the channels are followed."""
    c = s.channels
    if isinstance(m, AdaptiveAvgPool2d) and None not in m.output_size and c:
        return _Sym((*m.output_size, c))
    if isinstance(m, (_GlobalPool1d, _GlobalPool2d)):
        return _Sym((c,)) if c else _Sym()
    for attr in ("out_channels", "num_features", "num_channels"):
        value = getattr(m, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return _Sym(None, value)
    return _Sym(None, c if _keeps_channels(m) else None)


class _Flow:
    """Follows a model's data flow, recording the feature permutation that each Linear
    reading a flattened map (and each BatchNorm1d / LayerNorm on the way) needs."""

    def __init__(self):
        self.perms: dict[int, np.ndarray | None] = {}
        self.flattens: set[int] = set()

    def visit(self, m, path, s: _Sym) -> _Sym:
        if isinstance(m, GraphModule) and type(m).forward is GraphModule.forward:
            return m.graph(_FlowGraph(self, m, path), s)
        if isinstance(m, Sequential) and type(m).forward is Sequential.forward:
            for name, child in m._modules.items():
                if child is not None:
                    s = self.visit(child, f"{path}.{name}" if path else name, s)
            return s
        if isinstance(m, nn.Flatten):
            return self.flatten(m, path, s)
        if isinstance(m, nn.Linear):
            self.record(m, path, self.resolve(s.perm, m.in_features, m, path))
            return _Sym(None if s.shape is None else m.output_shape(s.shape), m.out_features)
        if s.perm is not None:
            return self.after_flatten(m, path, s)
        if s.shape is not None:
            try:
                return _Sym(m.output_shape(s.shape))
            except NotImplementedError:  # a custom layer: follow it no further
                return _Sym()
        return _unknown_size(m, s)

    def flatten(self, m, path, s: _Sym) -> _Sym:
        self.flattens.add(id(m))
        if s.perm is not None:
            raise ValueError(f"torch interop: {path}: a Flatten of already flattened "
                             f"features is not supported")
        if s.shape is None:
            return _Sym(None, None, _UnknownMap(s.channels))
        out = m.output_shape(s.shape)
        perm = flatten_permutation(s.shape)
        if perm is not None and len(out) != 1:
            raise ValueError(f"torch interop: {path}: Flatten(start_dim={m.start_dim}, "
                             f"end_dim={m.end_dim}) of a {s.shape} map has no fixed torch "
                             f"order; use permute_flatten=False and convert by hand")
        return _Sym(out, perm=perm)

    def after_flatten(self, m, path, s: _Sym) -> _Sym:
        name = type(m).__name__
        if isinstance(m, _BatchNorm) or (isinstance(m, nn.LayerNorm)
                                         and len(m.normalized_shape) == 1):
            size = m.num_features if isinstance(m, _BatchNorm) else m.normalized_shape[0]
            self.record(m, path, self.resolve(s.perm, size, m, path))
        elif not isinstance(m, (_Elementwise, nn.Dropout, nn.Identity)):
            raise ValueError(f"torch interop: {path}: cannot follow torch's (c, h, w) feature "
                             f"order through {name} after a Flatten; use "
                             f"permute_flatten=False and permute by hand")
        return _Sym(None if s.shape is None else m.output_shape(s.shape), s.channels, s.perm)

    @staticmethod
    def resolve(perm, features, m, path):
        """A known permutation (or None) for a layer reading ``features`` features."""
        if not isinstance(perm, _UnknownMap):
            return perm
        if perm.channels is not None and perm.channels == features:
            return None  # a 1x1 map (or plain features): both orders agree
        raise ValueError(f"torch interop: {path}: {type(m).__name__} reads a map flattened at "
                         f"an unknown size ({features} features), so its rows cannot be "
                         f"permuted from torch's (c, h, w) order; pass "
                         f"input_shape=(H, W, C) (per sample, channels last)")

    def record(self, m, path, perm):
        if id(m) in self.perms and not _same(self.perms[id(m)], perm):
            raise ValueError(f"torch interop: {path} ({type(m).__name__}) is used twice on "
                             f"features in different orders")
        self.perms[id(m)] = perm


class _FlowGraph:
    """The ``g`` a GraphModule's ``graph`` receives while following the data flow."""

    def __init__(self, flow, module, path):
        self.flow, self.module, self.path = flow, module, path

    def __call__(self, name, s):
        child = f"{self.path}.{name}" if self.path else name
        return self.flow.visit(resolve_child(self.module, name), child, s)

    def _plain(self, syms, what):
        if any(x.perm is not None for x in syms):
            raise ValueError(f"torch interop: {self.path}: {what} of flattened features is "
                             f"not supported")

    def add(self, a, b):
        self._plain([a, b], "add")
        return _Sym(a.shape if a.shape is not None else b.shape, a.channels or b.channels)

    def concat(self, syms):
        self._plain(syms, "concat")
        chans = [x.channels for x in syms]
        if all(x.shape is not None for x in syms):
            return _Sym((*syms[0].shape[:-1], sum(chans)))
        return _Sym(None, None if None in chans else sum(chans))

    def crop(self, s, like):
        self._plain([s], "crop")
        if s.shape is not None and like.shape is not None:
            return _Sym((*like.shape[:-1], s.shape[-1]))
        return _Sym(None, s.channels)


def _same(a, b):
    if a is None or b is None:
        return a is b
    return np.array_equal(a, b)


def _trace(model, input_shape, permute_flatten) -> dict:
    """id(module) -> permutation, for the modules that need one."""
    flattens = [m for m in model.modules() if isinstance(m, nn.Flatten)]
    if not permute_flatten or not flattens:
        return {}
    flow = _Flow()
    start = _Sym() if input_shape is None else _Sym(tuple(input_shape))
    flow.visit(model, "", start)
    if any(id(m) not in flow.flattens for m in flattens):
        raise ValueError(f"torch interop: a Flatten inside {type(model).__name__} is not "
                         f"reached through Sequential / GraphModule wiring, so the Linear "
                         f"after it cannot be permuted from torch's (c, h, w) order; pass "
                         f"permute_flatten=False if no permutation is needed")
    return {k: v for k, v in flow.perms.items() if v is not None}


# ---- per-tensor layout rules ----------------------------------------------------------
class _Rule:
    """How one tensor moves between convnet's and torch's layouts."""

    def __init__(self, kind: str, perm=None):
        self.kind, self.perm = kind, perm
        self.inv = None if perm is None else np.argsort(perm)

    def torch_shape(self, shape) -> tuple:
        s = tuple(shape)
        if self.kind == "conv":
            return (s[-1], s[-2], *s[:-2])
        if self.kind == "conv_transpose":
            return (s[3], s[2], s[0], s[1])
        if self.kind == "linear":
            return (s[1], s[0])
        if self.kind == "channels_first":
            return (s[-1], *s[:-1])
        return s

    def to_torch(self, a: np.ndarray) -> np.ndarray:
        if self.kind == "conv":  # (*K, I, O) -> (O, I, *K)
            a = np.moveaxis(a, (-1, -2), (0, 1))
        elif self.kind == "conv_transpose":  # (KH, KW, O/g, I) -> (I, O/g, KH, KW)
            a = a.transpose(3, 2, 0, 1)
        elif self.kind == "linear":  # (in, out) -> (out, in), rows back to torch order
            a = (a if self.inv is None else a[self.inv]).T
        elif self.kind == "channels_first":  # (*S, C) -> (C, *S)
            a = np.moveaxis(a, -1, 0)
        elif self.kind == "features":
            a = a[self.inv]
        return np.array(a, order="C", copy=True)

    def from_torch(self, a: np.ndarray) -> np.ndarray:
        if self.kind == "conv":
            a = np.moveaxis(a, (0, 1), (-1, -2))
        elif self.kind == "conv_transpose":
            a = a.transpose(2, 3, 1, 0)
        elif self.kind == "linear":
            a = a.T if self.perm is None else a.T[self.perm]
        elif self.kind == "channels_first":
            a = np.moveaxis(a, 0, -1)
        elif self.kind == "features":
            a = a[self.perm]
        return np.array(a, order="C", copy=True)


def _rules(model, input_shape=None, permute_flatten=True) -> OrderedDict:
    """state_dict key -> (_Rule, current convnet array), in state_dict order."""
    if not isinstance(model, Module):
        raise TypeError(f"torch interop: model must be a convnet Module, got "
                        f"{type(model).__name__}")
    perms = _trace(model, input_shape, permute_flatten)
    rules: OrderedDict = OrderedDict()
    for mod_name, mod in model.named_modules():
        pre = f"{mod_name}." if mod_name else ""
        perm = perms.get(id(mod))
        for name, p in mod._parameters.items():
            if p is None:
                continue
            kind = "plain"
            if name == "weight" and isinstance(mod, (_ConvNd, nn.MixedDilationConv2d)):
                kind = "conv"
            elif name == "weight" and isinstance(mod, nn.ConvTranspose2d):
                kind = "conv_transpose"
            elif name == "weight" and isinstance(mod, nn.Linear):
                kind = "linear"
            elif isinstance(mod, nn.LayerNorm) and p.data.ndim >= 2:
                kind = "channels_first"
            elif perm is not None and not isinstance(mod, nn.Linear):
                kind = "features"
            rules[pre + name] = (_Rule(kind, perm), p.data)
        for name, b in mod._buffers.items():
            if b is None or name in mod._non_persistent:
                continue
            kind = "features" if perm is not None and np.ndim(b) == 1 else "plain"
            rules[pre + name] = (_Rule(kind, perm), b)
    return rules


# ---- public API -----------------------------------------------------------------------
def to_torch_state_dict(model, input_shape=None, permute_flatten: bool = True) -> OrderedDict:
    """The model's ``state_dict`` in PyTorch's layouts (numpy arrays, contiguous).

    ``torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``
    loads it into the torch model of the same architecture.  ``input_shape`` as in
    :func:`from_torch_state_dict`.
    """
    return OrderedDict((key, rule.to_torch(np.asarray(arr)))
                       for key, (rule, arr) in _rules(model, input_shape,
                                                      permute_flatten).items())


def _as_numpy(value, key):
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch.Tensor, duck-typed
        t = value.detach().cpu()
        if str(getattr(t, "dtype", "")) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    if isinstance(value, (int, float, list, tuple, np.generic)):
        return np.asarray(value)
    raise TypeError(f"torch interop: state_dict[{key!r}] must be an array or a torch "
                    f"tensor, got {type(value).__name__}")


def from_torch_state_dict(model, state_dict, strict: bool = True, input_shape=None,
                          permute_flatten: bool = True):
    """Load a PyTorch ``state_dict`` (torch tensors or numpy arrays) into ``model``.

    Args:
        model: the convnet model with the same architecture and parameter names.
        state_dict: name -> tensor in torch's layouts (``torch_model.state_dict()``).
        strict: the names must match exactly (KeyError otherwise, naming them).
        input_shape: per-sample input shape, channels last, e.g. (32, 32, 3): needed
            only to permute a Linear after a Flatten whose map size depends on the
            input (see the module docstring).
        permute_flatten: permute Linear rows from torch's (c, h, w) flatten order.

    Returns:
        ``(missing_keys, unexpected_keys)`` as ``Module.load_state_dict``.

    Raises:
        ValueError naming the key, the expected torch shape and the one given, before
        anything is changed.
    """
    if not hasattr(state_dict, "items"):
        raise TypeError(f"from_torch_state_dict: state_dict must be a mapping of names to "
                        f"tensors, got {type(state_dict).__name__}")
    rules = _rules(model, input_shape, permute_flatten)
    converted, bad = OrderedDict(), []
    for key, value in state_dict.items():
        arr = _as_numpy(value, key)
        if key not in rules:
            converted[key] = arr
            continue
        rule, current = rules[key]
        want = rule.torch_shape(np.shape(current))
        if arr.shape != want:
            bad.append(f"{key}: expected torch shape {want} (convnet {np.shape(current)}), "
                       f"got {arr.shape}")
            continue
        converted[key] = rule.from_torch(arr)
    if bad:
        raise ValueError(f"from_torch_state_dict for {type(model).__name__}: shape mismatch "
                         f"for " + "; ".join(bad))
    return model.load_state_dict(converted, strict=strict)


def _refuse_pickle(path: str) -> None:
    if path.lower().endswith(PICKLE_SUFFIXES):
        raise ValueError(f"{path}: PyTorch .pt/.pth/.bin files are pickles, and reading a "
                         f"pickle can run arbitrary code, so convnet never does; "
                         + _CONVERT_HINT)
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK" or head[:1] == b"\x80":  # torch.save's zip archive, or a raw pickle
        raise ValueError(f"{path}: this looks like a torch.save pickle (not safetensors); "
                         f"convnet never unpickles files; " + _CONVERT_HINT)


def load_torch_state_dict(model, path_or_dict, strict: bool = True, input_shape=None,
                          permute_flatten: bool = True):
    """Load PyTorch weights into ``model`` from a dict or a ``.safetensors`` file.

    A file must be safetensors, as written in PyTorch by
    ``safetensors.torch.save_file(model.state_dict(), "weights.safetensors")``; pickled
    ``.pt``/``.pth`` files are refused with a message saying how to convert them.  Other
    arguments and the return value as :func:`from_torch_state_dict`.

    Example:
        >>> net = convnet.models.resnet18()
        >>> load_torch_state_dict(net, "resnet18.safetensors")
        ([], [])
    """
    if isinstance(path_or_dict, (str, os.PathLike)):
        path = os.fspath(path_or_dict)
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path}: is a directory, expected a .safetensors file")
        _refuse_pickle(path)
        state, _ = read_tensor_file(path, error=ModelFormatError)
        return from_torch_state_dict(model, state, strict, input_shape, permute_flatten)
    return from_torch_state_dict(model, path_or_dict, strict, input_shape, permute_flatten)


def save_torch_state_dict(model, path, input_shape=None, permute_flatten: bool = True) -> None:
    """Write the model's weights in PyTorch's layouts to a ``.safetensors`` file,
    atomically: ``torch_model.load_state_dict(safetensors.torch.load_file(path))``."""
    write_tensor_file(path, to_torch_state_dict(model, input_shape, permute_flatten))
