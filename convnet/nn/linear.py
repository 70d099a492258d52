"""Fully connected layer, Flatten and Identity."""

from __future__ import annotations

import math

from .. import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["Linear", "Flatten", "Identity"]


class Linear(Module):
    """Fully connected (dense, affine) layer: ``out = x @ weight + bias``.

    The weight is stored (in_features, out_features), the seeds' W; PyTorch stores the
    transpose, so ``weight = torch_linear.weight.T`` when importing.

    Args:
        in_features: size of each input sample's last axis.
        out_features: size of each output sample's last axis.
        bias: learn an additive bias.
        rng: ``numpy.random.Generator`` (or int seed) for the initial values.  The init
            is PyTorch's default: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
        dtype: parameter dtype (default float32).

    Input shape:
        (N, in_features), or (N, ..., in_features)
    Output shape:
        (N, out_features), or (N, ..., out_features)

    Example:
        >>> fc = Linear(400, 120)
        >>> fc.weight.shape
        (400, 120)
        >>> fc.output_shape((400,))
        (120,)
    """

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        for arg, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {arg} must be an int >= 1, got {value!r}")
        if not isinstance(bias, bool):
            raise TypeError(f"{name}: bias must be True or False, got {bias!r}")
        self.in_features, self.out_features = in_features, out_features
        rng = init.get_rng(rng)
        self.weight = Parameter(init.torch_default_weight((in_features, out_features), rng=rng,
                                                          dtype=dtype))
        self.bias = Parameter(init.torch_default_bias((out_features,), in_features, rng=rng,
                                                      dtype=dtype)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if not input_shape or input_shape[-1] != self.in_features:
            raise ValueError(f"{type(self).__name__}({self.extra_repr()}): input shape must end "
                             f"in {self.in_features} features, got {input_shape}")
        return input_shape[:-1] + (self.out_features,)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Merge axes ``start_dim``..``end_dim`` into one; by default (N, ...) -> (N, -1).

    NHWC feature maps flatten in (h, w, c) order -- PyTorch's NCHW gives (c, h, w) --
    so a Linear layer imported from PyTorch after a Flatten needs its rows permuted.

    Args:
        start_dim: first axis to merge (counting the batch axis as 0); at least 1.
        end_dim: last axis to merge (inclusive); -1 is the last axis.

    Input shape:
        (N, *dims)
    Output shape:
        (N, prod(dims)) by default

    Example:
        >>> Flatten().output_shape((5, 5, 16))
        (400,)
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        name = type(self).__name__
        for arg, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}: {arg} must be an int, got {value!r}")
        if start_dim == 0:
            raise ValueError(f"{name}: start_dim must not be 0 (the batch axis), got 0")
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)

    def output_shape(self, input_shape):
        full = (1,) + tuple(input_shape)              # add the batch axis
        nd = len(full)
        s, e = self.start_dim, self.end_dim
        if not (-nd <= s < nd and -nd <= e < nd) or s % nd == 0 or s % nd > e % nd:
            raise ValueError(f"{type(self).__name__}(start_dim={s}, end_dim={e}) does not fit "
                             f"a per-sample shape {tuple(input_shape)}")
        s, e = s % nd, e % nd
        return full[1:s] + (math.prod(full[s:e + 1]),) + full[e + 1:]

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input unchanged; a placeholder (e.g. to drop a model's head).
    Any constructor arguments are accepted and ignored, as in PyTorch.

    Input shape:
        any
    Output shape:
        the same

    Example:
        >>> Identity().output_shape((7, 7, 512))
        (7, 7, 512)
    """

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x

    def output_shape(self, input_shape):
        return tuple(input_shape)
