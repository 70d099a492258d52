"""GraphModule: models whose wiring is not a plain chain (skip connections, merges).

A chain of layers is a ``Sequential``.  Anything else -- a residual add, a U-Net's
crop-and-concatenate -- subclasses ``GraphModule`` and writes its wiring once, in
``graph(self, g, x)``, against a tiny executor ``g``:

    g(name, x)          call the child module ``name`` (dotted names reach deeper)
    g.add(a, b)         elementwise sum of two activations of the same shape
    g.concat([a, b])    join along the channel (last) axis
    g.crop(x, like)     centre-crop x's spatial axes to like's

``forward`` runs that wiring eagerly on Tensors, ``output_shape`` runs it on per-sample
shapes, and ``convnet.inspect.summary`` runs it with a tracer that records one row per
layer and carries receptive fields through the merges.  One definition, three readers:
the shapes the summary predicts cannot drift from what ``forward`` computes.
"""

from __future__ import annotations

from ..nn.module import Module
from ..tensor import Tensor, concatenate

__all__ = ["GraphModule", "resolve_child", "centre_crop_offsets"]


def resolve_child(module: Module, name: str) -> Module:
    """``module.a.b`` for the dotted name ``"a.b"``, with an error naming what is missing."""
    target = module
    for part in name.split("."):
        child = target._modules.get(part)
        if child is None:
            raise AttributeError(f"{type(module).__name__}.graph: no child module {name!r} "
                                 f"(has {list(target._modules)})")
        target = child
    return target


def centre_crop_offsets(spatial, target, where: str) -> tuple[int, ...]:
    """Leading offsets that centre a ``target``-sized window in ``spatial``."""
    if len(spatial) != len(target) or any(t > s for s, t in zip(spatial, target)):
        raise ValueError(f"{where}: cannot crop spatial size {tuple(spatial)} to "
                         f"{tuple(target)}")
    return tuple((s - t) // 2 for s, t in zip(spatial, target))


def _check_add(a, b, where):
    if tuple(a) != tuple(b):
        raise ValueError(f"{where}: add needs two activations of the same shape, got "
                         f"{tuple(a)} and {tuple(b)}")


def _check_concat(shapes, where):
    ref = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(ref) or tuple(s[:-1]) != tuple(ref[:-1]):
            raise ValueError(f"{where}: concat needs equal sizes on every axis but channels, "
                             f"got {[tuple(x) for x in shapes]}")


class _Eager:
    """Runs a graph on Tensors (N, ..., C)."""

    def __init__(self, module):
        self.module = module
        self.where = type(module).__name__

    def __call__(self, name, x):
        return resolve_child(self.module, name)(x)

    def add(self, a, b):
        _check_add(a.shape, b.shape, self.where)
        return a + b

    def concat(self, xs):
        _check_concat([x.shape[1:] for x in xs], self.where)
        return concatenate(list(xs), axis=-1)

    def crop(self, x, like):
        target = (like.shape if isinstance(like, Tensor) else like)[1:-1]
        offs = centre_crop_offsets(x.shape[1:-1], target, self.where)
        if all(o == 0 for o in offs) and tuple(x.shape[1:-1]) == tuple(target):
            return x
        index = (slice(None),) + tuple(slice(o, o + t) for o, t in zip(offs, target))
        return x[index + (slice(None),)]


class _Shapes:
    """Runs a graph on per-sample shapes (no batch axis)."""

    def __init__(self, module):
        self.module = module
        self.where = type(module).__name__

    def __call__(self, name, shape):
        return tuple(resolve_child(self.module, name).output_shape(shape))

    def add(self, a, b):
        _check_add(a, b, self.where)
        return tuple(a)

    def concat(self, shapes):
        _check_concat(shapes, self.where)
        return (*shapes[0][:-1], sum(s[-1] for s in shapes))

    def crop(self, shape, like):
        centre_crop_offsets(shape[:-1], like[:-1], self.where)
        return (*like[:-1], shape[-1])


class GraphModule(Module):
    """Base class for models with skip connections; see the module docstring.

    Subclasses define ``graph(self, g, x)`` and nothing else for the data flow.

    Example:
        >>> class Residual(GraphModule):
        ...     def __init__(self, c):
        ...         super().__init__()
        ...         self.conv = Conv2d(c, c, 3, padding=1)
        ...     def graph(self, g, x):
        ...         return g.add(g("conv", x), x)
        >>> Residual(8).output_shape((16, 16, 8))
        (16, 16, 8)
    """

    def graph(self, g, x):
        raise NotImplementedError(f"{type(self).__name__} does not define graph()")

    def forward(self, x):
        return self.graph(_Eager(self), x)

    def output_shape(self, input_shape):
        return tuple(self.graph(_Shapes(self), tuple(input_shape)))
