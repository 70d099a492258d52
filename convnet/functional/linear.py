"""Fully connected layer and flatten as Tensor ops: thin Functions over ``convnet.ops.linear``."""

from __future__ import annotations

from ..ops import linear as linear_ops
from ..tensor import Function, Tensor
from ._checks import check_ndim, float_input

__all__ = ["linear", "flatten"]


class LinearFn(Function):
    def forward(self, x, w, b):
        out, self.cache = linear_ops.linear_forward(x, w, b)
        return out

    def backward(self, dout):
        return linear_ops.linear_backward(dout, self.cache, self.needs_input_grad)


class FlattenFn(Function):
    def forward(self, x, start_dim, end_dim):
        out, self.cache = linear_ops.flatten_forward(x, start_dim, end_dim)
        return out

    def backward(self, dout):
        return linear_ops.flatten_backward(dout, self.cache)


def linear(x, weight, bias=None) -> Tensor:
    """Affine map ``x @ weight + bias`` over the last axis.

    Args:
        x: (N, IN) or (..., IN) float.
        weight: (IN, OUT) -- the seeds' W; note PyTorch stores the transpose (OUT, IN).
        bias: (OUT,) or None.

    Returns:
        (..., OUT).
    """
    op = "linear"
    x = float_input(x, op)
    weight = float_input(weight, op, name="weight")
    check_ndim(weight, 2, op, "weight", "(in_features, out_features)")
    if x.ndim < 1:
        raise ValueError(f"linear: input must have at least 1 dim (..., {weight.shape[0]}), "
                         f"got a scalar")
    if x.shape[-1] != weight.shape[0]:
        raise ValueError(f"linear: input has {x.shape[-1]} features (shape {x.shape}) but "
                         f"weight {weight.shape} expects {weight.shape[0]}")
    if bias is not None:
        bias = float_input(bias, op, name="bias")
        if bias.shape != (weight.shape[1],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[1]},) to match "
                             f"weight {weight.shape}, got {bias.shape}")
    return LinearFn.apply(x, weight, bias)


def flatten(x, start_dim: int = 1, end_dim: int = -1) -> Tensor:
    """Merge axes ``start_dim``..``end_dim`` into one: (N, H, W, C) -> (N, H*W*C) by default.

    NHWC data flattens in (h, w, c) order, unlike PyTorch's NCHW (c, h, w): a Linear
    layer imported from PyTorch after a flatten needs its input rows permuted.
    """
    op = "flatten"
    x = float_input(x, op)
    nd = max(x.ndim, 1)
    for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
        if isinstance(d, bool) or not isinstance(d, int) or not -nd <= d < nd:
            raise ValueError(f"{op}: {name} must be an int in [{-nd}, {nd - 1}] for a "
                             f"{x.ndim}-D input of shape {x.shape}, got {d!r}")
    if start_dim % nd > end_dim % nd:
        raise ValueError(f"{op}: start_dim ({start_dim}) comes after end_dim ({end_dim}) for "
                         f"a {x.ndim}-D input")
    return FlattenFn.apply(x, start_dim=start_dim, end_dim=end_dim)
