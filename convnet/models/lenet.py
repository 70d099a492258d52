"""LeNet-5 (LeCun et al., 1998), the classic: 32x32x1 input, tanh, average pooling."""

from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..nn import init
from ._common import check_count, size_pair

__all__ = ["LeNet5", "lenet5"]


class LeNet5(nn.Sequential):
    """LeNet-5 with its layer names: C1, S2, C3, S4, C5, F6 and the output layer.

    C1: 6 5x5 filters -> 28x28x6; S2: 2x2 average pool -> 14x14x6; C3: 16 5x5 filters,
    every map connected to all six S2 maps -> 10x10x16; S4: 2x2 average pool -> 5x5x16;
    C5: 120 5x5 filters -> 1x1x120; F6: 84 units; output: ``num_classes`` scores.  Tanh
    follows C1, C3, C5 and F6.  61,706 parameters for 10 classes.  (The paper's
    subsampling layers had a trainable coefficient and bias, and C3 a sparse connection
    table; the common "classic" figure of 61,706 uses plain pooling and a full C3.)

    Inputs smaller than 32x32 are zero-padded to it by C1's padding, as the paper did for
    28x28 MNIST digits; larger inputs leave C5 with more than 1x1 positions, and F6 takes
    them all.

    Args:
        num_classes: output scores. Default 10.
        in_channels: input channels. Default 1.
        input_size: int or (H, W). Default 32.
        rng: ``numpy.random.Generator`` or int seed for the initial weights.
        dtype: parameter dtype (default float32).

    Input shape:
        (N, H, W, in_channels)
    Output shape:
        (N, num_classes)

    Example:
        >>> net = LeNet5()
        >>> net.num_parameters()
        61706
        >>> net.output_shape((32, 32, 1))
        (10,)
    """

    def __init__(self, num_classes=10, in_channels=1, input_size=32, rng=None, dtype=None):
        name = type(self).__name__
        num_classes = check_count(num_classes, "num_classes", name)
        in_channels = check_count(in_channels, "in_channels", name)
        h, w = size_pair(input_size, "input_size", name)
        pad = (max(0, 32 - h + 1) // 2, max(0, 32 - w + 1) // 2)
        rng = init.get_rng(rng)
        features = OrderedDict([
            ("c1", nn.Conv2d(in_channels, 6, 5, padding=pad, rng=rng, dtype=dtype)),
            ("tanh1", nn.Tanh()),
            ("s2", nn.AvgPool2d(2, 2)),
            ("c3", nn.Conv2d(6, 16, 5, rng=rng, dtype=dtype)),
            ("tanh2", nn.Tanh()),
            ("s4", nn.AvgPool2d(2, 2)),
            ("c5", nn.Conv2d(16, 120, 5, rng=rng, dtype=dtype)),
            ("tanh3", nn.Tanh()),
            ("flatten", nn.Flatten()),
        ])
        try:
            flat = nn.Sequential(features).output_shape((h, w, in_channels))[0]
        except ValueError as err:
            raise ValueError(f"{name}: input {h}x{w} is too small once padded to "
                             f"{h + 2 * pad[0]}x{w + 2 * pad[1]}: {err}") from err
        features.update([
            ("f6", nn.Linear(flat, 84, rng=rng, dtype=dtype)),
            ("tanh4", nn.Tanh()),
            ("output", nn.Linear(84, num_classes, rng=rng, dtype=dtype)),
        ])
        super().__init__(features)


def lenet5(num_classes=10, in_channels=1, input_size=32, rng=None, dtype=None) -> LeNet5:
    """The classic LeNet-5; see ``LeNet5``."""
    return LeNet5(num_classes, in_channels, input_size, rng, dtype)
