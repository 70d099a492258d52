"""Fully connected (affine) layer and flatten, as forward/backward pairs.

Notation:
    x     input,  (..., IN)        usually (N, IN); leading axes are batch-like
    w     weight, (IN, OUT)        the seeds' W with out = x W + b (not torch's (OUT, IN))
    b     bias,   (OUT,)
    out   output, (..., OUT)

Forward is one BLAS matmul.  Backward folds every leading axis into one batch axis M
and makes two more:  dx = dout w^T  (mo,io -> mi)  and  dw = x^T dout  (mi,mo -> io).
"""

from __future__ import annotations

import numpy as np

from .threads import matmul


def linear_forward(x, w, b=None):
    """Returns ``(out, cache)``; ``out`` is (..., OUT)."""
    out = matmul(x.reshape(-1, w.shape[0]), w).reshape(x.shape[:-1] + w.shape[1:])  # mi,io -> mo
    if b is not None:
        out += b
    return out, (x, w, b is not None)


def linear_backward(dout, cache, need=(True, True, True)):
    """Returns ``(dx, dw, db)``; entries not in ``need`` are None."""
    x, w, has_bias = cache
    n_in, n_out = w.shape
    dout2 = dout.reshape(-1, n_out)                     # (M, OUT)
    dx = dw = db = None
    if need[0]:
        dx = matmul(dout2, w.T).reshape(x.shape)        # mo,oi -> mi -> (..., IN)
    if need[1]:
        dw = matmul(x.reshape(-1, n_in).T, dout2)       # im,mo -> io
    if has_bias and len(need) > 2 and need[2]:
        db = dout2.sum(axis=0)                          # (OUT,)
    return dx, dw, db


def flatten_forward(x, start_dim=1, end_dim=-1):
    """Merge axes start_dim..end_dim (inclusive) into one: (N, H, W, C) -> (N, H*W*C)."""
    shape = x.shape
    nd = max(x.ndim, 1)
    s, e = start_dim % nd, end_dim % nd
    new_shape = shape[:s] + (int(np.prod(shape[s:e + 1], dtype=np.int64)),) + shape[e + 1:]
    return x.reshape(new_shape), shape                  # a view when x is contiguous


def flatten_backward(dout, cache):
    return dout.reshape(cache)


__all__ = ["linear_forward", "linear_backward", "flatten_forward", "flatten_backward"]
