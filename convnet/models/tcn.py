"""A temporal convolutional network (Bai, Kolter & Koltun, 2018): causal, dilated, residual."""

from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..nn import init
from ._common import check_count
from ._graph import GraphModule

__all__ = ["TemporalBlock", "TCN", "tcn"]


class TemporalBlock(GraphModule):
    """Two dilated causal 1-D convs with ReLU and dropout, plus a residual connection:
    relu(dropout(relu(conv2(dropout(relu(conv1(x)))))) + shortcut(x)).  The shortcut is
    the identity, or ``downsample`` (a 1x1 conv) when the width changes.

    Causal padding puts d*(K-1) zeros on the left only, so output t sees inputs <= t,
    and the length is kept.  The block widens the receptive field by 2*d*(K-1).

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: K.
        dilation: d.
        dropout: drop probability after each conv. Default 0.
        rng: ``numpy.random.Generator`` or int seed.
        dtype: parameter dtype.

    Input shape:
        (N, L, C_in)
    Output shape:
        (N, L, C_out)

    Example:
        >>> TemporalBlock(1, 32, 3, dilation=4).output_shape((100, 1))
        (100, 32)
    """

    def __init__(self, in_channels, out_channels, kernel_size, dilation, dropout=0.0,
                 rng=None, dtype=None):
        super().__init__()
        rng = init.get_rng(rng)
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation,
                               padding="causal", rng=rng, dtype=dtype)
        self.relu1 = nn.ReLU()
        self.dropout1 = nn.Dropout(dropout, rng=rng)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, dilation=dilation,
                               padding="causal", rng=rng, dtype=dtype)
        self.relu2 = nn.ReLU()
        self.dropout2 = nn.Dropout(dropout, rng=rng)
        self.downsample = (nn.Conv1d(in_channels, out_channels, 1, rng=rng, dtype=dtype)
                           if in_channels != out_channels else None)
        self.relu = nn.ReLU()

    def graph(self, g, x):
        out = g("dropout1", g("relu1", g("conv1", x)))
        out = g("dropout2", g("relu2", g("conv2", out)))
        res = x if self.downsample is None else g("downsample", x)
        return g("relu", g.add(out, res))


class TCN(nn.Sequential):
    """Stacked temporal blocks with dilations 1, 2, 4, ...; ``network.i`` is block i
    and ``head`` a 1x1 conv giving ``num_classes`` outputs at every time step.

    Output t depends only on inputs t - R + 1 .. t, where the receptive field is
    R = 1 + 2*(K-1)*(2**levels - 1): 61 steps for K=3 and 4 levels.

    Args:
        num_classes: outputs per time step. Default 10.
        in_channels: input features per step. Default 1.
        channels: width of each block, one entry per level. Default (32, 32, 32, 32).
        kernel_size: K. Default 3.
        dropout: drop probability inside the blocks. Default 0.
        rng: ``numpy.random.Generator`` or int seed.
        dtype: parameter dtype (default float32).

    Input shape:
        (N, L, in_channels)
    Output shape:
        (N, L, num_classes)

    Example:
        >>> TCN().output_shape((100, 1))
        (100, 10)
    """

    def __init__(self, num_classes=10, in_channels=1, channels=(32, 32, 32, 32),
                 kernel_size=3, dropout=0.0, rng=None, dtype=None):
        name = type(self).__name__
        num_classes = check_count(num_classes, "num_classes", name)
        in_channels = check_count(in_channels, "in_channels", name)
        kernel_size = check_count(kernel_size, "kernel_size", name)
        if not isinstance(channels, (tuple, list)) or not channels:
            raise ValueError(f"{name}: channels must be a non-empty list of widths, "
                             f"got {channels!r}")
        for c in channels:
            check_count(c, "each entry of channels", name)
        rng = init.get_rng(rng)
        blocks, cin = [], in_channels
        for i, width in enumerate(channels):
            blocks.append(TemporalBlock(cin, width, kernel_size, 2 ** i, dropout, rng=rng,
                                        dtype=dtype))
            cin = width
        super().__init__(OrderedDict([
            ("network", nn.Sequential(*blocks)),
            ("head", nn.Conv1d(cin, num_classes, 1, rng=rng, dtype=dtype)),
        ]))

    @property
    def receptive_field(self) -> int:
        k = self.network[0].conv1.kernel_size[0]
        return 1 + 2 * (k - 1) * (2 ** len(self.network) - 1)


def tcn(num_classes=10, in_channels=1, rng=None, dtype=None, channels=(32, 32, 32, 32),
        kernel_size=3, dropout=0.0) -> TCN:
    """A causal TCN; see ``TCN``."""
    return TCN(num_classes, in_channels, channels, kernel_size, dropout, rng, dtype)
