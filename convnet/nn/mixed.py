"""MixedDilationConv2d: one conv layer whose filter banks use several dilation rates."""

from __future__ import annotations

from .. import functional as F
from ..functional.conv import conv2d_params
from ..ops.shape import as_tuple, check_positive, effective_kernel, resolve_padding
from ..tensor import concatenate
from . import init
from ._checks import check_channels
from .module import Module, Parameter, is_strict_tiling

__all__ = ["MixedDilationConv2d"]


class MixedDilationConv2d(Module):
    """A 2-D conv layer whose filters come in banks of different dilation rates, the
    bank outputs stacked along channels (seed 002: "a single dilated convolutional
    layer can comprise filters with multiple dilation ratios, thus having a variable
    receptive field size").

    Bank r holds ``out_channels_per_rate`` filters of size KH x KW dilated by
    ``rates[r]``; its output channels are ``r*F .. (r+1)*F - 1`` (F =
    out_channels_per_rate).  All banks share one weight tensor.

    Args:
        in_channels: C_in.
        out_channels_per_rate: F, filters per dilation rate.
        kernel_size: int or (KH, KW).
        rates: the dilation rates, ints >= 1 (or (h, w) pairs). Default (1, 2, 3).
        stride: int or pair, shared by every bank.
        padding: ``'same'`` (default: every bank keeps ceil(n/stride)), or any Conv2d
            padding applied to every bank, or a list with one padding per rate.  The
            banks' output sizes must agree.
        groups: channel groups within each bank.
        bias: learn a bias per output channel.
        rng: ``numpy.random.Generator`` for the initial weights (torch's default init).
        dtype: parameter dtype (default float32).

    Weight shape (KH, KW, C_in/groups, len(rates)*F); bias shape (len(rates)*F,).

    Input shape:
        (N, H, W, C_in)
    Output shape:
        (N, OH, OW, len(rates) * F)

    Example:
        >>> layer = MixedDilationConv2d(8, 4, 3, rates=(1, 2, 4))
        >>> layer.output_shape((32, 32, 8))
        (32, 32, 12)
        >>> layer.weight.shape
        (3, 3, 8, 12)
    """

    def __init__(self, in_channels, out_channels_per_rate, kernel_size, rates=(1, 2, 3),
                 stride=1, padding="same", groups=1, bias=True, rng=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        check_channels(name, in_channels, out_channels_per_rate, groups,
                       out_name="out_channels_per_rate")
        if not isinstance(rates, (tuple, list)) or not rates:
            raise TypeError(f"{name}: rates must be a non-empty tuple of dilation rates, "
                            f"got {rates!r}")
        self.rates = tuple(as_tuple(r, 2, "rates entry", name) for r in rates)
        for r in self.rates:
            check_positive(r, "rates", name)
        self.kernel_size = as_tuple(kernel_size, 2, "kernel_size", name)
        self.stride = as_tuple(stride, 2, "stride", name)
        check_positive(self.kernel_size, "kernel_size", name)
        check_positive(self.stride, "stride", name)
        if isinstance(padding, list):
            if len(padding) != len(self.rates):
                raise ValueError(f"{name}: a list of paddings needs one entry per rate "
                                 f"({len(self.rates)}), got {len(padding)}")
            self._paddings = tuple(padding)
        else:
            self._paddings = (padding,) * len(self.rates)
        for p, r in zip(self._paddings, self.rates):
            resolve_padding(p, (1 << 20,) * 2, self.kernel_size, self.stride, r, name)
        self.padding = padding
        self.in_channels, self.out_channels_per_rate, self.groups = \
            in_channels, out_channels_per_rate, groups
        self.out_channels = out_channels_per_rate * len(self.rates)
        shape = (*self.kernel_size, in_channels // groups, self.out_channels)
        rng = init.get_rng(rng)
        # torch's default init, with the fan-in of one filter (the same for every bank).
        self.weight = Parameter(init.torch_default_weight(shape, rng=rng, dtype=dtype))
        fan_in = init.calculate_fan(shape)[0]
        self.bias = Parameter(init.torch_default_bias((self.out_channels,), fan_in, rng=rng,
                                                      dtype=dtype)) if bias else None

    def _bank_shapes(self, input_shape):
        name = type(self).__name__
        if len(input_shape) != 3:
            raise ValueError(f"{name}: input shape must be (H, W, C), got {tuple(input_shape)}")
        h, w, c = input_shape
        f = self.out_channels_per_rate
        wshape = (*self.kernel_size, self.in_channels // self.groups, f)
        sizes = [conv2d_params((1, h, w, c), wshape, None, self.stride, p, r, self.groups,
                               op=f"{name}(rate {r})", strict=is_strict_tiling())[3]
                 for p, r in zip(self._paddings, self.rates)]
        if len(set(sizes)) > 1:
            raise ValueError(f"{name}: the dilation banks must give one output size, got "
                             + ", ".join(f"{s} for rate {r}" for s, r in zip(sizes, self.rates))
                             + "; use padding='same' or one padding per rate")
        return sizes[0]

    def forward(self, x):
        self._bank_shapes(x.shape[1:])
        f = self.out_channels_per_rate
        outs = []
        for i, (p, r) in enumerate(zip(self._paddings, self.rates)):
            w = self.weight[:, :, :, i * f:(i + 1) * f]            # (KH, KW, C/G, F)
            b = None if self.bias is None else self.bias[i * f:(i + 1) * f]
            outs.append(F.conv2d(x, w, b, self.stride, p, r, self.groups))
        return concatenate(outs, axis=-1)                          # (N, OH, OW, R*F)

    def output_shape(self, input_shape):
        return (*self._bank_shapes(input_shape), self.out_channels)

    def rf_params(self, input_shape):
        """Per spatial axis, for the widest bank (the largest rate): (effective kernel,
        stride, leading padding)."""
        out = []
        for axis in range(2):
            i = max(range(len(self.rates)), key=lambda j: self.rates[j][axis])
            pads = resolve_padding(self._paddings[i], tuple(input_shape[:2]), self.kernel_size,
                                   self.stride, self.rates[i], type(self).__name__)
            out.append((effective_kernel(self.kernel_size[axis], self.rates[i][axis]),
                        self.stride[axis], pads[axis][0]))
        return tuple(out)

    def extra_repr(self) -> str:
        rates = tuple(r[0] if r[0] == r[1] else r for r in self.rates)
        s = (f"{self.in_channels}, {self.out_channels_per_rate}, "
             f"kernel_size={self.kernel_size}, rates={rates}")
        if self.stride != (1, 1):
            s += f", stride={self.stride}"
        if self.padding != "same":
            s += f", padding={self.padding!r}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
