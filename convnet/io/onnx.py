"""ONNX export: ``export_onnx(model, path, input_shape)``.

Layout.  The exported model keeps convnet's semantics at its edges: its input is
``"input"``, (N, H, W, C) -- (N, L, C) or (N, D, H, W, C) for 1-D / 3-D models -- and its
output ``"output"`` has exactly the shape and layout of ``model(x)``.  Inside, ONE
Transpose moves the input to channels-first and the standard NCHW operators follow
(Conv, ConvTranspose, MaxPool, AveragePool, BatchNormalization, Gemm, Resize, ...) with
the weights transposed at the boundary (HWIO -> OIHW); a Transpose back to channels-last
closes the graph when the output still has spatial axes.  Every activation of rank >= 3
is stored channels-first; (N, F) features are stored as is.  A Flatten of a map inserts
a Transpose to channels-last first, so that the features come out in convnet's (h, w, c)
order and the following Linear needs no change.

What is fixed at export time: the spatial size (``input_shape``; 'same' padding, ceil
mode and adaptive pooling are resolved for it) and the evaluation semantics (BatchNorm
uses its running statistics, Dropout is the identity).  The batch axis is symbolic
(``"N"``) unless ``batch`` is given.  Weights are exported in float32 (onnxruntime's CPU
kernels are float32).  Graph models (``GraphModule``: ResNet blocks, U-Net, TCN) are
exported from their ``graph`` wiring: add -> Add, concat -> Concat, crop -> Slice.

A layer type without a built-in rule raises ``TypeError`` naming it; a custom layer can
be taught with ``register_onnx_exporter(cls, fn)``, where ``fn(ctx, module, path, value)``
returns the output ``OnnxValue`` (see ``_Ctx`` for the helpers ``ctx.op``/``ctx.const``).
"""

from __future__ import annotations

import math
import os
from typing import Callable, NamedTuple

import numpy as np

from .. import nn
from ..functional.convnd import pool_params
from ..models._adaptive import AdaptiveAvgPool2d, adaptive_windows
from ..models._graph import GraphModule, centre_crop_offsets, resolve_child
from ..nn.conv import _ConvNd
from ..nn.module import Sequential
from ..nn.norm import _BatchNorm
from ..nn.pool import _Pool2d
from ..ops.shape import resolve_padding
from .atomic import atomic_write_bytes

__all__ = ["export_onnx", "export_main", "register_onnx_exporter", "OnnxValue",
           "MIN_OPSET"]

MIN_OPSET = 13
_USER_EXPORTERS: dict[type, Callable] = {}


class OnnxValue(NamedTuple):
    """A symbolic activation: its ONNX tensor name and convnet per-sample shape (no batch
    axis, channels last).  Stored channels-first in the graph when ``len(shape) >= 2``."""

    name: str
    shape: tuple

    @property
    def cf(self) -> bool:
        return len(self.shape) >= 2


def register_onnx_exporter(cls: type, fn: Callable) -> None:
    """Teach ``export_onnx`` a layer type: ``fn(ctx, module, path, value) -> OnnxValue``.

    Subclasses of ``cls`` use ``fn`` too.  ``ctx.op(op_type, inputs, path, **attrs)`` adds
    a node and returns its output name; ``ctx.const(array, hint)`` adds an initializer.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_onnx_exporter: cls must be a class, got {cls!r}")
    if not callable(fn):
        raise TypeError(f"register_onnx_exporter: fn must be callable, got {fn!r}")
    _USER_EXPORTERS[cls] = fn


def _onnx():
    try:
        import onnx  # noqa: PLC0415 - optional dependency
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("ONNX export needs the 'onnx' package: pip install onnx "
                          "(or pip install 'convnet[onnx]')") from exc
    return onnx


def _to_last(rank: int) -> list[int]:
    """Channels-first (N, C, *S) -> channels-last (N, *S, C)."""
    return [0, *range(2, rank), 1]


def _to_first(rank: int) -> list[int]:
    return [0, rank - 1, *range(1, rank - 1)]


def _onnx_pads(pads) -> list[int]:
    """((lo, hi), ...) per spatial axis -> ONNX's [lo..., hi...]."""
    return [int(lo) for lo, _ in pads] + [int(hi) for _, hi in pads]


class _Ctx:
    """Collects nodes and initializers; ``visit`` exports one module."""

    def __init__(self, onnx, opset: int):
        self.onnx, self.helper, self.opset = onnx, onnx.helper, opset
        self.nodes, self.inits, self._names = [], [], set()

    def fresh(self, hint: str) -> str:
        base = hint or "t"
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def const(self, array, hint: str, dtype=np.float32) -> str:
        arr = np.array(array, dtype=dtype, order="C")  # keeps 0-d scalars 0-d
        name = self.fresh(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def ints(self, values, hint: str) -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint, np.int64)

    def op(self, op_type: str, inputs, path: str, **attrs) -> str:
        out = self.fresh(f"{path}/{op_type}" if path else op_type)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], name=out,
                                                **attrs))
        return out

    def transpose(self, name: str, perm, path: str) -> str:
        return self.op("Transpose", [name], path, perm=list(perm))

    def pad(self, v: OnnxValue, pads, mode: str, path: str, value=None) -> str:
        """Explicit Pad of the spatial axes of a channels-first value."""
        onnx_mode = {"zeros": "constant", "constant": "constant", "reflect": "reflect",
                     "replicate": "edge", "circular": "wrap"}[mode]
        if onnx_mode == "wrap" and self.opset < 19:
            raise ValueError(f"export_onnx: {path}: padding_mode='circular' needs opset >= 19 "
                             f"(ONNX Pad mode 'wrap'), got opset {self.opset}")
        full = [0, 0] + [lo for lo, _ in pads] + [0, 0] + [hi for _, hi in pads]
        inputs = [v.name, self.ints(full, f"{path}.pads")]
        if value is not None:
            inputs.append(self.const(np.array(value), f"{path}.pad_value"))
        return self.op("Pad", inputs, path, mode=onnx_mode)

    def visit(self, module, path: str, v: OnnxValue) -> OnnxValue:
        for klass in type(module).__mro__:
            if klass in _USER_EXPORTERS:
                return _USER_EXPORTERS[klass](self, module, path, v)
        for klass in type(module).__mro__:
            fn = _BUILTIN.get(klass)
            if fn is not None and type(module).forward is klass.forward:
                return fn(self, module, path, v)
        if isinstance(module, GraphModule) and type(module).forward is GraphModule.forward:
            return module.graph(_GraphTracer(self, module, path), v)
        if isinstance(module, Sequential) and type(module).forward is Sequential.forward:
            for name, child in module._modules.items():
                if child is not None:
                    v = self.visit(child, f"{path}.{name}" if path else name, v)
            return v
        where = f" at {path!r}" if path else ""
        raise TypeError(f"export_onnx: no ONNX exporter for layer type "
                        f"{type(module).__name__}{where}; supported: {_supported()}, "
                        f"Sequential and GraphModule models; teach it with "
                        f"convnet.io.onnx.register_onnx_exporter({type(module).__name__}, fn)")


class _GraphTracer:
    """The ``g`` a GraphModule's ``graph(g, x)`` receives during export."""

    def __init__(self, ctx: _Ctx, module, path: str):
        self.ctx, self.module, self.path = ctx, module, path

    def _child(self, name):
        return f"{self.path}.{name}" if self.path else name

    def __call__(self, name, v):
        return self.ctx.visit(resolve_child(self.module, name), self._child(name), v)

    def add(self, a, b):
        if a.shape != b.shape:
            raise ValueError(f"export_onnx: {self.path or 'graph'}: add needs two activations "
                             f"of the same shape, got {a.shape} and {b.shape}")
        return OnnxValue(self.ctx.op("Add", [a.name, b.name], self._child("add")), a.shape)

    def concat(self, vs):
        vs = list(vs)
        shape = (*vs[0].shape[:-1], sum(v.shape[-1] for v in vs))
        # Channels sit on axis 1 both channels-first and for (N, F) features.
        out = self.ctx.op("Concat", [v.name for v in vs], self._child("concat"), axis=1)
        return OnnxValue(out, shape)

    def crop(self, v, like):
        target = like.shape[:-1]
        offs = centre_crop_offsets(v.shape[:-1], target, f"export_onnx: {self.path}")
        if tuple(v.shape[:-1]) == tuple(target):
            return v
        where = self._child("crop")
        axes = list(range(2, 2 + len(target)))
        out = self.ctx.op("Slice", [v.name, self.ctx.ints(offs, f"{where}.starts"),
                                    self.ctx.ints([o + t for o, t in zip(offs, target)],
                                                  f"{where}.ends"),
                                    self.ctx.ints(axes, f"{where}.axes")], where)
        return OnnxValue(out, (*target, v.shape[-1]))


# ---- convolutions -----------------------------------------------------------------
def _conv_node(ctx, x, weight_oihw, bias, path, kernel, stride, dilation, groups, pads,
               suffix=""):
    inputs = [x, ctx.const(weight_oihw, f"{path}.weight{suffix}")]
    if bias is not None:
        inputs.append(ctx.const(bias, f"{path}.bias{suffix}"))
    return ctx.op("Conv", inputs, path, kernel_shape=list(kernel), strides=list(stride),
                  dilations=list(dilation), group=int(groups), pads=_onnx_pads(pads))


def _conv(ctx, m, path, v):
    pads = m._pads(v.shape[:-1])
    x = v.name
    if m.padding_mode != "zeros":
        x = ctx.pad(v, pads, m.padding_mode, path)
        pads = tuple((0, 0) for _ in pads)
    w = np.moveaxis(m.weight.data, (-1, -2), (0, 1))  # (*K, I/g, O) -> (O, I/g, *K)
    b = None if m.bias is None else m.bias.data
    out = _conv_node(ctx, x, w, b, path, m.kernel_size, m.stride, m.dilation, m.groups, pads)
    return OnnxValue(out, m.output_shape(v.shape))


def _conv_transpose(ctx, m, path, v):
    shape = m.output_shape(v.shape)
    w = m.weight.data.transpose(3, 2, 0, 1)  # (KH, KW, O/g, I) -> (I, O/g, KH, KW)
    inputs = [v.name, ctx.const(w, f"{path}.weight")]
    if m.bias is not None:
        inputs.append(ctx.const(m.bias.data, f"{path}.bias"))
    out = ctx.op("ConvTranspose", inputs, path, kernel_shape=list(m.kernel_size),
                 strides=list(m.stride), dilations=list(m.dilation), group=m.groups,
                 pads=_onnx_pads(m._pads()), output_padding=list(m.output_padding))
    return OnnxValue(out, shape)


def _mixed_dilation(ctx, m, path, v):
    f, outs = m.out_channels_per_rate, []
    for i, (padding, rate) in enumerate(zip(m._paddings, m.rates)):
        pads = resolve_padding(padding, tuple(v.shape[:2]), m.kernel_size, m.stride, rate,
                               type(m).__name__)
        w = np.moveaxis(m.weight.data[..., i * f:(i + 1) * f], (-1, -2), (0, 1))
        b = None if m.bias is None else m.bias.data[i * f:(i + 1) * f]
        outs.append(_conv_node(ctx, v.name, w, b, path, m.kernel_size, m.stride, rate,
                               m.groups, pads, suffix=f".rate{i}"))
    return OnnxValue(ctx.op("Concat", outs, path, axis=1), m.output_shape(v.shape))


def _local(ctx, m, path, v):
    """Unshared weights: a one-hot Conv extracts the (kh, kw, c) patches, then one Einsum
    applies each position's own filter bank."""
    kh, kw = m.kernel_size
    c, oh, ow = m.in_channels, *m.out_size
    pads = resolve_padding(m.padding, m.input_size, m.kernel_size, m.stride, (1, 1),
                           type(m).__name__)
    p = kh * kw * c
    eye = np.zeros((p, c, kh, kw), dtype=np.float32)  # patch index (i*KW + j)*C + ch
    i, j, ch = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(c), indexing="ij")
    eye[((i * kw + j) * c + ch).ravel(), ch.ravel(), i.ravel(), j.ravel()] = 1.0
    patches = _conv_node(ctx, v.name, eye, None, path, (kh, kw), m.stride, (1, 1), 1, pads,
                         suffix=".patches")  # (N, P, OH, OW)
    w = m.weight.data.reshape(oh, ow, p, m.out_channels)
    out = ctx.op("Einsum", [patches, ctx.const(w, f"{path}.weight")], path,
                 equation="npij,ijpo->noij")  # (N, C_out, OH, OW)
    if m.bias is not None:
        out = ctx.op("Add", [out, ctx.const(m.bias.data.transpose(2, 0, 1), f"{path}.bias")],
                     path)
    return OnnxValue(out, m.output_shape(v.shape))


# ---- pooling ----------------------------------------------------------------------
def _pool_geometry(m, shape):
    """(kernel, stride, pads, dilation, ceil extension per axis)."""
    if isinstance(m, _Pool2d):
        kernel, stride, pads, dilation, out = m._params(shape)
    else:
        kernel, stride, pads, dilation, out = pool_params(
            tuple(shape[:-1]), m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode,
            m._ndim, type(m).__name__)
    # ceil_mode is exported as extra trailing padding that gives the same windows.
    ext = tuple(max(0, (o - 1) * s + (k - 1) * d + 1 - (n + lo + hi)) for n, o, k, s, d, (lo, hi)
                in zip(shape[:-1], out, kernel, stride, dilation, pads))
    return kernel, stride, pads, dilation, ext


def _max_pool(ctx, m, path, v):
    if getattr(m, "return_indices", False):
        raise TypeError(f"export_onnx: {path}: {type(m).__name__}(return_indices=True) has no "
                        f"ONNX export (its indices feed MaxUnpool2d)")
    kernel, stride, pads, dilation, ext = _pool_geometry(m, v.shape)
    pads = tuple((lo, hi + e) for (lo, hi), e in zip(pads, ext))
    x = v.name
    if any(max(p) >= k for p, k in zip(pads, kernel)):  # onnxruntime wants pads < kernel
        x = ctx.pad(v, pads, "constant", path, value=-np.inf)
        pads = tuple((0, 0) for _ in pads)
    out = ctx.op("MaxPool", [x], path, kernel_shape=list(kernel), strides=list(stride),
                 dilations=list(dilation), pads=_onnx_pads(pads))
    return OnnxValue(out, m.output_shape(v.shape))


def _avg_pool(ctx, m, path, v):
    kernel, stride, pads, _, ext = _pool_geometry(m, v.shape)
    x = v.name
    if m.count_include_pad and any(ext):
        # The user's padding counts in the divisor but the ceil extension does not:
        # pad with real zeros, then let AveragePool ignore its own (extension) pads.
        x = ctx.pad(v, pads, "constant", path)
        pads, include = tuple((0, e) for e in ext), 0
    else:
        pads = tuple((lo, hi + e) for (lo, hi), e in zip(pads, ext))
        include = int(m.count_include_pad)
    out = ctx.op("AveragePool", [x], path, kernel_shape=list(kernel), strides=list(stride),
                 pads=_onnx_pads(pads), count_include_pad=include)
    return OnnxValue(out, m.output_shape(v.shape))


def _global_pool(ctx, m, path, v):
    kind = "GlobalMaxPool" if isinstance(m, (nn.GlobalMaxPool2d, nn.GlobalMaxPool1d)) \
        else "GlobalAveragePool"
    out = ctx.op("Flatten", [ctx.op(kind, [v.name], path)], path, axis=1)
    return OnnxValue(out, m.output_shape(v.shape))


def _adaptive_avg(ctx, m, path, v):
    shape = m.output_shape(v.shape)
    (h, w), (oh, ow) = v.shape[:2], shape[:2]
    if (h, w) == (oh, ow):
        return OnnxValue(v.name, shape)
    if h % oh == 0 and w % ow == 0:
        k = [h // oh, w // ow]
        return OnnxValue(ctx.op("AveragePool", [v.name], path, kernel_shape=k, strides=k),
                         shape)
    # out = P_h . x . P_w^T with PyTorch's averaging windows; (N, C, H, W) -> (N, C, OH, OW)
    mats = []
    for n, o in ((h, oh), (w, ow)):
        p = np.zeros((o, n), dtype=np.float32)
        for i, (lo, hi) in enumerate(adaptive_windows(n, o)):
            p[i, lo:hi] = 1.0 / (hi - lo)
        mats.append(p)
    t = ctx.op("MatMul", [v.name, ctx.const(mats[1].T, f"{path}.pool_w")], path)  # (.., H, OW)
    out = ctx.op("MatMul", [ctx.const(mats[0], f"{path}.pool_h"), t], path)  # (.., OH, OW)
    return OnnxValue(out, shape)


# ---- dense, shape, normalisation ------------------------------------------------------
def _linear(ctx, m, path, v):
    shape = m.output_shape(v.shape)
    if not v.cf:  # (N, in) @ (in, out): convnet's weight is Gemm's B as stored
        inputs = [v.name, ctx.const(m.weight.data, f"{path}.weight")]
        if m.bias is not None:
            inputs.append(ctx.const(m.bias.data, f"{path}.bias"))
        return OnnxValue(ctx.op("Gemm", inputs, path), shape)
    # On a map, Linear acts on the channels: a 1x1 convolution.
    nd = len(v.shape) - 1
    w = m.weight.data.T.reshape(m.out_features, m.in_features, *(1,) * nd)
    b = None if m.bias is None else m.bias.data
    out = _conv_node(ctx, v.name, w, b, path, (1,) * nd, (1,) * nd, (1,) * nd, 1,
                     ((0, 0),) * nd)
    return OnnxValue(out, shape)


def _flatten(ctx, m, path, v):
    shape = m.output_shape(v.shape)
    x = v.name
    if v.cf:  # back to channels-last so the features come out in (h, w, c) order
        x = ctx.transpose(x, _to_last(len(v.shape) + 1), path)
    if len(shape) == 1:
        return OnnxValue(ctx.op("Flatten", [x], path, axis=1), shape)
    y = ctx.op("Reshape", [x, ctx.ints([0, *shape], f"{path}.shape")], path)
    return OnnxValue(ctx.transpose(y, _to_first(len(shape) + 1), path), shape)


def _batch_norm(ctx, m, path, v):
    if m.running_mean is None:
        raise ValueError(f"export_onnx: {path}: {type(m).__name__} has no running statistics "
                         f"(track_running_stats=False), so it normalises with batch "
                         f"statistics even in evaluation; ONNX export needs running stats")
    c = m.num_features
    scale = m.weight.data if m.weight is not None else np.ones(c)
    bias = m.bias.data if m.bias is not None else np.zeros(c)
    inputs = [v.name, ctx.const(scale, f"{path}.weight"), ctx.const(bias, f"{path}.bias"),
              ctx.const(m.running_mean, f"{path}.running_mean"),
              ctx.const(m.running_var, f"{path}.running_var")]
    return OnnxValue(ctx.op("BatchNormalization", inputs, path, epsilon=m.eps), v.shape)


def _layer_norm(ctx, m, path, v):
    if ctx.opset < 17:
        raise ValueError(f"export_onnx: {path}: LayerNorm needs opset >= 17 "
                         f"(LayerNormalization), got opset {ctx.opset}")
    rank = len(v.shape) + 1
    x = ctx.transpose(v.name, _to_last(rank), path) if v.cf else v.name
    scale = m.weight.data if m.weight is not None else np.ones(m.normalized_shape)
    inputs = [x, ctx.const(scale, f"{path}.weight")]
    if m.bias is not None:
        inputs.append(ctx.const(m.bias.data, f"{path}.bias"))
    y = ctx.op("LayerNormalization", inputs, path, axis=-len(m.normalized_shape),
               epsilon=m.eps)
    return OnnxValue(ctx.transpose(y, _to_first(rank), path) if v.cf else y, v.shape)


def _group_norm(ctx, m, path, v):
    """Reshape to (N, G, -1), InstanceNormalization per group, reshape back, affine."""
    c, g = m.num_channels, m.num_groups
    stored = (c, *v.shape[:-1])  # channels-first (or just (C,) for features)
    t = ctx.op("Reshape", [v.name, ctx.ints([0, g, -1], f"{path}.groups")], path)
    t = ctx.op("InstanceNormalization", [t, ctx.const(np.ones(g), f"{path}.ones"),
                                         ctx.const(np.zeros(g), f"{path}.zeros")], path,
               epsilon=m.eps)
    y = ctx.op("Reshape", [t, ctx.ints([0, *stored], f"{path}.shape")], path)
    if m.weight is not None:
        bshape = (c, *(1,) * (len(stored) - 1))
        y = ctx.op("Mul", [y, ctx.const(m.weight.data.reshape(bshape), f"{path}.weight")], path)
        y = ctx.op("Add", [y, ctx.const(m.bias.data.reshape(bshape), f"{path}.bias")], path)
    return OnnxValue(y, v.shape)


# ---- activations, resampling ----------------------------------------------------------
def _elementwise(op_type, **attrs):
    def export(ctx, m, path, v):
        extra = {k: float(getattr(m, a)) for k, a in attrs.items()}
        return OnnxValue(ctx.op(op_type, [v.name], path, **extra), v.shape)
    return export


def _gelu(ctx, m, path, v):
    x = v.name

    def c(value, hint):
        return ctx.const(np.array(value), f"{path}.{hint}")

    if m.approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x3 = ctx.op("Mul", [ctx.op("Mul", [x, x], path), x], path)
        inner = ctx.op("Add", [x, ctx.op("Mul", [x3, c(0.044715, "k")], path)], path)
        t = ctx.op("Tanh", [ctx.op("Mul", [inner, c(math.sqrt(2 / math.pi), "s")], path)],
                   path)
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        t = ctx.op("Erf", [ctx.op("Mul", [x, c(1 / math.sqrt(2), "s")], path)], path)
    y = ctx.op("Mul", [x, ctx.op("Add", [t, c(1.0, "one")], path)], path)
    return OnnxValue(ctx.op("Mul", [y, c(0.5, "half")], path), v.shape)


def _softmax(op_type):
    def export(ctx, m, path, v):
        rank = len(v.shape) + 1
        if not -rank <= m.axis < rank:
            raise ValueError(f"export_onnx: {path}: axis {m.axis} is out of range for a "
                             f"rank-{rank} input")
        axis = m.axis % rank
        if v.cf and axis != 0:  # channels-last axis -> channels-first axis
            axis = 1 if axis == rank - 1 else axis + 1
        return OnnxValue(ctx.op(op_type, [v.name], path, axis=axis), v.shape)
    return export


def _identity(ctx, m, path, v):
    return v


def _resize(ctx, path, v, shape, mode, coord, scales=None):
    inputs = [v.name, ""]
    if scales is not None:
        inputs.append(ctx.const([1.0, 1.0, *scales], f"{path}.scales"))
    else:  # sizes: the batch and channel dims come from the input, the rest are fixed
        dims = ctx.op("Slice", [ctx.op("Shape", [v.name], path), ctx.ints([0], f"{path}.s0"),
                                ctx.ints([2], f"{path}.s1")], path)
        inputs += ["", ctx.op("Concat", [dims, ctx.ints(shape[:-1], f"{path}.size")], path,
                              axis=0)]
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if mode == "nearest":
        attrs["nearest_mode"] = "floor"
    return OnnxValue(ctx.op("Resize", inputs, path, **attrs), shape)


def _upsample(ctx, m, path, v):
    shape = m.output_shape(v.shape)
    nd = len(v.shape) - 1
    scales = None
    if m.scale_factor is not None:  # torch's rule: the source step is 1/scale_factor
        sf = m.scale_factor
        scales = [float(sf)] * nd if isinstance(sf, (int, float)) else [float(s) for s in sf]
    if m.mode == "nearest":
        return _resize(ctx, path, v, shape, "nearest", "asymmetric", scales)
    coord = "align_corners" if m.align_corners else "half_pixel"
    return _resize(ctx, path, v, shape, "linear", coord, scales)


def _unpool(ctx, m, path, v):
    return _resize(ctx, path, v, m.output_shape(v.shape), "nearest", "asymmetric",
                   [float(k) for k in m.size])


_BUILTIN: dict[type, Callable] = {
    _ConvNd: _conv, nn.ConvTranspose2d: _conv_transpose,
    nn.MixedDilationConv2d: _mixed_dilation, nn.LocallyConnected2d: _local,
    nn.MaxPool2d: _max_pool, nn.MaxPool1d: _max_pool, nn.MaxPool3d: _max_pool,
    nn.AvgPool2d: _avg_pool, nn.AvgPool1d: _avg_pool,
    nn.GlobalMaxPool2d: _global_pool, nn.GlobalAvgPool2d: _global_pool,
    nn.GlobalMaxPool1d: _global_pool, nn.GlobalAvgPool1d: _global_pool,
    AdaptiveAvgPool2d: _adaptive_avg,
    nn.Linear: _linear, nn.Flatten: _flatten, nn.Identity: _identity, nn.Dropout: _identity,
    _BatchNorm: _batch_norm, nn.LayerNorm: _layer_norm, nn.GroupNorm: _group_norm,
    nn.ReLU: _elementwise("Relu"), nn.LeakyReLU: _elementwise("LeakyRelu",
                                                              alpha="negative_slope"),
    nn.ELU: _elementwise("Elu", alpha="alpha"), nn.Sigmoid: _elementwise("Sigmoid"),
    nn.Tanh: _elementwise("Tanh"), nn.GELU: _gelu,
    nn.Softmax: _softmax("Softmax"), nn.LogSoftmax: _softmax("LogSoftmax"),
    nn.Upsample: _upsample, nn.Unpool2d: _unpool,
}


def _supported() -> str:
    names = {k.__name__ for k in _BUILTIN if not k.__name__.startswith("_")}
    names |= {"Conv1d", "Conv2d", "Conv3d", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
              "Dropout1d", "Dropout2d", "Dropout3d"}
    return ", ".join(sorted(names))


def _check_args(model, input_shape, opset, batch, onnx):
    from ..nn.module import Module

    if not isinstance(model, Module):
        raise TypeError(f"export_onnx: model must be a convnet Module, got "
                        f"{type(model).__name__}")
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(f"export_onnx: input_shape must be a per-sample shape such as "
                        f"(28, 28, 1), got {input_shape!r}") from None
    if not shape or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                            and d >= 1 for d in shape):
        raise ValueError(f"export_onnx: input_shape must be positive ints per sample (no "
                         f"batch axis), e.g. (28, 28, 1), got {input_shape!r}")
    top = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= top:
        raise ValueError(f"export_onnx: opset must be an int in [{MIN_OPSET}, {top}], "
                         f"got {opset!r}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)
                              or batch < 1):
        raise ValueError(f"export_onnx: batch must be None (symbolic) or an int >= 1, "
                         f"got {batch!r}")
    return tuple(int(d) for d in shape)


def export_onnx(model, path, input_shape, opset: int = 17, batch: int | None = None):
    """Export ``model`` (evaluation semantics) to an ONNX file, atomically.

    Args:
        model: a convnet model: layers, ``Sequential`` chains (nested), zoo models and
            ``GraphModule`` models.
        path: destination ``.onnx`` file (written via temp file, fsync and rename).
        input_shape: per-sample input shape, channels last: (H, W, C), (L, C) or
            (D, H, W, C).  The spatial size is fixed in the graph.
        opset: ONNX opset, 13 .. the installed onnx's newest (LayerNorm needs 17,
            ``padding_mode='circular'`` 19).  Default 17.
        batch: fixed batch size, or None (default) for a symbolic ``"N"``.

    Returns:
        The checked ``onnx.ModelProto`` (also written to ``path``).

    The graph's input ``"input"`` is (N, *input_shape) float32 and its output
    ``"output"`` matches ``model(x)`` (same shape and layout); see the module docstring.

    Example:
        >>> export_onnx(get_model("lenet5"), "lenet5.onnx", (32, 32, 1))
        >>> sess = onnxruntime.InferenceSession("lenet5.onnx")
        >>> sess.run(None, {"input": x.astype(np.float32)})[0].shape
        (N, 10)
    """
    onnx = _onnx()
    shape = _check_args(model, input_shape, opset, batch, onnx)
    try:
        expected = tuple(model.output_shape(shape))
    except NotImplementedError:
        expected = None
    except ValueError as exc:
        raise ValueError(f"export_onnx: {type(model).__name__} cannot take per-sample input "
                         f"{shape}: {exc}") from exc
    ctx = _Ctx(onnx, opset)
    rank = len(shape) + 1
    v = OnnxValue("input", shape)
    if v.cf:
        v = OnnxValue(ctx.transpose("input", _to_first(rank), "input"), shape)
    out = ctx.visit(model, "", v)
    if expected is not None and tuple(out.shape) != expected:  # pragma: no cover - a bug
        raise RuntimeError(f"export_onnx: internal error: the exported graph gives "
                           f"{out.shape} but the model gives {expected}")
    if out.cf:
        out = OnnxValue(ctx.transpose(out.name, _to_last(len(out.shape) + 1), "output"),
                        out.shape)
    if out.name == "input":
        ctx.nodes.append(onnx.helper.make_node("Identity", ["input"], ["output"],
                                               name="output"))
    else:
        for node in ctx.nodes:
            node.input[:] = ["output" if n == out.name else n for n in node.input]
            node.output[:] = ["output" if n == out.name else n for n in node.output]
    n = "N" if batch is None else batch
    f32 = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        ctx.nodes, type(model).__name__,
        [onnx.helper.make_tensor_value_info("input", f32, [n, *shape])],
        [onnx.helper.make_tensor_value_info("output", f32, [n, *out.shape])],
        ctx.inits)
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(
        graph, opset_imports=opsets, producer_name="convnet",
        ir_version=onnx.helper.find_min_ir_version_for(opsets),
        doc_string="exported by convnet: input and output in convnet's channels-last "
                   "layout, evaluation semantics")
    onnx.helper.set_model_props(proto, {"convnet.input_layout": "channels_last",
                                        "convnet.input_shape": "x".join(map(str, shape))})
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # pragma: no cover - a bug in a rule above
        raise RuntimeError(f"export_onnx: internal error: the exported graph fails ONNX's "
                           f"checker: {exc}") from exc
    atomic_write_bytes(os.fspath(path), proto.SerializeToString())
    return proto


def export_main(model_path, out_path, input_shape=None, opset: int = 17,
                batch: int | None = None) -> int:
    """``convnet export MODEL_FILE out.onnx``: load a convnet model file and export it.

    The input shape comes from the file's ``input_shape`` metadata unless given.  Prints
    one line and returns 0; raises ValueError / OSError (one-line CLI errors) otherwise.
    """
    from .model_file import load

    model, meta = load(model_path, with_metadata=True)
    if input_shape is None:
        input_shape = meta.get("input_shape")
        if not input_shape:
            raise ValueError(f"{model_path}: the model file does not record its input shape; "
                             f"give one (e.g. --input-shape 28x28x1)")
    proto = export_onnx(model, out_path, tuple(input_shape), opset=opset, batch=batch)
    print(f"wrote {out_path}: {type(model).__name__}, input (N, "
          f"{', '.join(map(str, input_shape))}), {len(proto.graph.node)} nodes, opset {opset}")
    return 0
