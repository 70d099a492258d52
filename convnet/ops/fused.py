"""conv2d + bias + ReLU + max pooling as one op, on NHWC data.

    out = max_pool2d(relu(conv2d(x, w) + b), kernel=pool, stride=pool)   (N, OH', OW', F)

with non-overlapping pool windows (stride = kernel, no padding, dilation 1, floor mode):
the Conv2d -> ReLU -> MaxPool2d block of LeNet, VGG and most CNNs.

When the conv runs Winograd (and the pool height divides its tile) or the banded GEMM
(``ops.toeplitz``), each block of the conv's output is clamped and pooled while it is
still in cache, so the full-size activation is never stored: the forward keeps the
pooled output and one argmax tap per window, and the backward rebuilds each block's
gradient from those two (a window's ReLU passes its gradient iff the window's max is
not 0) -- no (N, OH, OW, F) array is written or read in either direction.  Every other
algorithm runs the three ops in turn, with the same results.
"""

from __future__ import annotations

from . import threads
from .conv import (
    choose_algorithm,
    conv2d_backward,
    conv2d_forward,
    conv2d_relu_backward,
    conv2d_relu_forward,
    pools_in_blocks,
)
from .pool import max_pool2d_backward, max_pool2d_forward


def conv2d_relu_pool_forward(x, w, b, stride, pads, dilation, groups, pool):
    """Returns ``(out, cache)``: the pooled (N, OH // PH, OW // PW, F)."""
    pool = tuple(pool)
    stride, dilation = tuple(stride), tuple(dilation)
    pads = tuple(tuple(p) for p in pads)
    with threads.owned():
        name = choose_algorithm(x, w, b, stride, pads, dilation, groups)
        if pools_in_blocks(name, pool):
            out, cache = conv2d_forward(x, w, b, stride, pads, dilation, groups, relu=True,
                                        pool=pool, algorithm=name)
            return out, ("blocked", cache)
    act, conv_cache = conv2d_relu_forward(x, w, b, stride, pads, dilation, groups)
    out, pool_cache = max_pool2d_forward(act, pool, pool, ((0, 0), (0, 0)))
    return out, ("in turn", (conv_cache, pool_cache))


def conv2d_relu_pool_backward(dout, cache, need=(True, True, True)):
    """Returns ``(dx, dw, db)`` from the pooled gradient ``dout``; entries not in ``need``
    are None."""
    kind, inner = cache
    if kind == "blocked":
        return conv2d_backward(dout, inner, tuple(need))
    conv_cache, pool_cache = inner
    d_act = max_pool2d_backward(dout, pool_cache)                        # (N, OH, OW, F)
    return conv2d_relu_backward(d_act, conv_cache, need)


__all__ = ["conv2d_relu_pool_forward", "conv2d_relu_pool_backward"]
