"""``summary(model, input_shape)``: shapes, parameters, MACs, memory and receptive fields.

Nothing is run on data.  The engine walks the model with per-sample shapes:

* a ``Sequential`` is a chain: each child gets the previous child's output;
* a module with a ``graph(g, x)`` method (``convnet.models.GraphModule``: ResNet blocks,
  U-Net, TCN blocks) declares its wiring once; the engine passes a tracer as ``g``,
  so every child call becomes a row and every add / concat / crop a merge row;
* any other module is a layer: one row, from its ``output_shape``.

Each row carries the receptive field from ``receptive.py`` and the MACs from
``rules.py``.  Totals come from the model itself (every parameter once, even if shared
or unused).  With ``check_tiling`` each layer's ``output_shape`` is also run under
``strict_tiling()``, the seeds' "(n + 2p - f)/s must be an integer" check.
"""

from __future__ import annotations

import math
import re

import numpy as np

from .. import backend
from ..models._graph import centre_crop_offsets, resolve_child
from ..nn.module import Sequential, strict_tiling
from . import receptive as rfm
from .report import LayerRow, Summary, TilingError, format_shape
from .rules import layer_macs, layer_rf

__all__ = ["summary", "parse_shape"]


def parse_shape(spec) -> tuple[int, ...]:
    """``"224x224x3"`` (or ``"224,224,3"``, or a tuple) -> (224, 224, 3)."""
    if isinstance(spec, str):
        parts = [p for p in re.split(r"[x×,\s]+", spec.strip().lower()) if p]
        if not parts or not all(p.isdigit() for p in parts):
            raise ValueError(f"input shape must look like 224x224x3 (H x W x C), got {spec!r}")
        shape = tuple(int(p) for p in parts)
    else:
        try:
            shape = tuple(spec)
        except TypeError:
            raise TypeError(f"input shape must be a tuple like (224, 224, 3) or a string "
                            f"like '224x224x3', got {spec!r}") from None
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shape):
            raise TypeError(f"input shape entries must be ints, got {spec!r}")
        shape = tuple(int(v) for v in shape)
    if not shape or any(v < 1 for v in shape):
        raise ValueError(f"input shape must be positive sizes, per sample (no batch axis), "
                         f"got {shape}")
    return shape


class _Node:
    """A symbolic activation: per-sample shape plus receptive field per spatial axis."""

    __slots__ = ("shape", "rf")

    def __init__(self, shape, rf):
        self.shape = tuple(int(v) for v in shape)
        self.rf = rf


class _Tracer:
    """The ``g`` a GraphModule's ``graph`` receives during a summary."""

    def __init__(self, engine, module, prefix):
        self.engine, self.module, self.prefix = engine, module, prefix
        self.counts: dict[str, int] = {}

    def _name(self, child):
        return f"{self.prefix}.{child}" if self.prefix else child

    def _merge_name(self, kind):
        k = self.counts.get(kind, 0)
        self.counts[kind] = k + 1
        return self._name(kind if k == 0 else f"{kind}_{k}")

    def __call__(self, name, node):
        return self.engine.visit(resolve_child(self.module, name), self._name(name), node)

    def add(self, a, b):
        name = self._merge_name("add")
        if a.shape != b.shape:
            raise ValueError(f"summary: {name}: add needs two activations of the same shape, "
                             f"got {format_shape(a.shape)} and {format_shape(b.shape)}")
        return self.engine.merge_row(name, "Add", a.shape, [a, b])

    def concat(self, nodes):
        name = self._merge_name("concat")
        ref = nodes[0].shape
        if any(n.shape[:-1] != ref[:-1] for n in nodes):
            raise ValueError(f"summary: {name}: concat needs equal sizes on every axis but "
                             f"channels, got {[format_shape(n.shape) for n in nodes]}")
        shape = (*ref[:-1], sum(n.shape[-1] for n in nodes))
        return self.engine.merge_row(name, "Concat", shape, nodes)

    def crop(self, node, like):
        name = self._merge_name("crop")
        target = like.shape[:-1]
        offs = centre_crop_offsets(node.shape[:-1], target, f"summary: {name}")
        if tuple(node.shape[:-1]) == tuple(target):
            return node
        rf = None if node.rf is None else rfm.crop(node.rf, offs)
        return self.engine.add_row(name, "Crop", (*target, node.shape[-1]), rf)


class _Engine:
    def __init__(self, model, input_shape, check_tiling, batch_size, itemsize):
        self.model = model
        self.input_spatial = input_shape[:-1]
        self.check_tiling = check_tiling
        self.batch = batch_size
        self.itemsize = itemsize
        self.rows: list[LayerRow] = []

    def add_row(self, name, kind, shape, rf, module=None, in_shape=None, tiles=None,
                note=""):
        params = trainable = macs = 0
        if module is not None:
            sizes = [(p.size, p.requires_grad) for p in module.parameters()]
            params = sum(s for s, _ in sizes)
            trainable = sum(s for s, t in sizes if t)
            macs = layer_macs(module, in_shape, shape) * self.batch
        self.rows.append(LayerRow(
            name=name, type=kind, output_shape=tuple(shape), params=params,
            trainable_params=trainable, macs=macs,
            activation_bytes=math.prod(shape) * self.itemsize * self.batch,
            rf=rf, tiles=tiles, note=note))
        return _Node(shape, rf)

    def merge_row(self, name, kind, shape, nodes):
        return self.add_row(name, kind, shape, rfm.merge([n.rf for n in nodes]))

    def visit(self, module, name, node):
        if callable(getattr(type(module), "graph", None)):
            return module.graph(_Tracer(self, module, name), node)
        if isinstance(module, Sequential):
            for child_name, child in module.named_children():
                node = self.visit(child, f"{name}.{child_name}" if name else child_name, node)
            return node
        return self.layer(module, name, node)

    def layer(self, module, name, node):
        kind = type(module).__name__
        name = name or kind.lower()
        where = f"summary: layer {name!r} ({kind})"
        try:
            out = tuple(int(v) for v in module.output_shape(node.shape))
        except NotImplementedError:
            raise TypeError(f"{where} has no output_shape(), so its shape cannot be "
                            f"computed without data") from None
        except (ValueError, TypeError) as err:
            raise ValueError(f"{where} cannot take input {format_shape(node.shape)}: "
                             f"{err}") from err
        tiles, note = None, ""
        if self.check_tiling:
            try:
                with strict_tiling():
                    module.output_shape(node.shape)
                tiles = True
            except ValueError as err:
                tiles, note = False, str(err)
        rf = layer_rf(module, node.shape, out, node.rf, self.input_spatial)
        return self.add_row(name, kind, out, rf, module, node.shape, tiles, note)


def _itemsize(model, dtype) -> int:
    if dtype is not None:
        return np.dtype(dtype).itemsize
    for p in model.parameters():
        if p.data.dtype.kind == "f":
            return p.data.dtype.itemsize
    return backend.get_default_dtype().itemsize


def summary(model, input_shape, check_tiling=False, batch_size: int = 1,
            dtype=None) -> Summary:
    """Describe ``model`` for per-sample ``input_shape`` (e.g. ``(224, 224, 3)`` or
    ``"224x224x3"``) without running it.

    Args:
        model: a ``Module`` whose layers define ``output_shape``, or a zoo name such
            as ``"vgg16"`` (built with ``init=False``: shapes only, no random draws).
        input_shape: (H, W, C), (L, C) or (D, H, W, C); no batch axis.
        check_tiling: ``True`` runs the seeds' strict tiling check on every layer and
            raises ``TilingError`` (a ValueError) naming each layer whose windows do
            not tile its input; ``"report"`` only marks them in the ``tiles`` column.
        batch_size: MACs and activation memory are for a batch of this size.
        dtype: activation dtype for memory figures (default: the parameters').

    Returns:
        a ``Summary``: ``.rows``, ``.row(name)``, totals, ``.to_text()``, ``.to_dict()``.

    Example:
        >>> s = summary(convnet.models.get_model("vgg16"), "224x224x3")
        >>> s.row("classifier.0").params
        102764544
    """
    shape = parse_shape(input_shape)
    if isinstance(model, str):
        from ..models import get_model
        size = shape[:-1] if len(shape) > 2 else shape[0]
        model = get_model(model, in_channels=shape[-1], input_size=size, init=False)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"summary: batch_size must be an int >= 1, got {batch_size!r}")
    if check_tiling not in (False, True, "report"):
        raise ValueError(f"summary: check_tiling must be True, False or 'report', "
                         f"got {check_tiling!r}")
    itemsize = _itemsize(model, dtype)
    engine = _Engine(model, shape, bool(check_tiling), batch_size, itemsize)
    node = engine.add_row("input", "Input", shape, rfm.input_field(len(shape) - 1))
    engine.visit(model, "", node)
    params = list(model.parameters())
    result = Summary(
        model=type(model).__name__, input_shape=shape, batch_size=batch_size,
        dtype=str(np.dtype(dtype)) if dtype is not None else _dtype_name(model),
        rows=engine.rows,
        total_params=sum(p.size for p in params),
        trainable_params=sum(p.size for p in params if p.requires_grad),
        param_bytes=sum(p.data.nbytes for p in params),
        buffer_bytes=sum(np.asarray(b).nbytes for _, b in model.named_buffers()),
        check_tiling=bool(check_tiling))
    if check_tiling is True and result.tiling_failures():
        raise TilingError(result)
    return result


def _dtype_name(model) -> str:
    for p in model.parameters():
        if p.data.dtype.kind == "f":
            return str(p.data.dtype)
    return str(backend.get_default_dtype())
