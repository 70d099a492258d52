"""The default model of ``convnet train``: a small LeNet-style CNN for 8x8 digits."""

from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..nn import init
from ._common import check_count, size_pair

__all__ = ["DigitsCNN", "digits_cnn"]


class DigitsCNN(nn.Sequential):
    """LeNet's pattern -- convolutions and pooling that shrink the map while the channels
    grow, then fully connected layers -- sized for scikit-learn's 8x8 digits.

    conv1: 32 3x3 filters, same padding -> 8x8x32; conv2: 32 3x3 -> 8x8x32; pool1: 2x2
    max -> 4x4x32; conv3: 64 3x3 -> 4x4x64; pool2: 2x2 max -> 2x2x64; flatten -> 256;
    fc1: 128 units with dropout; fc2: ``num_classes`` scores.  ReLU after every conv and
    after fc1.  62,250 parameters for 8x8x1 input and 10 classes.

    Args:
        num_classes: output scores. Default 10.
        in_channels: input channels. Default 1.
        input_size: int or (H, W), at least 4. Default 8.
        dropout: drop probability before the last layer. Default 0.25.
        rng: ``numpy.random.Generator`` or int seed for the initial weights.
        dtype: parameter dtype (default float32).

    Input shape:
        (N, H, W, in_channels)
    Output shape:
        (N, num_classes)

    Example:
        >>> net = DigitsCNN()
        >>> net.output_shape((8, 8, 1))
        (10,)
        >>> net.num_parameters()
        62250
    """

    def __init__(self, num_classes=10, in_channels=1, input_size=8, dropout=0.25, rng=None,
                 dtype=None):
        name = type(self).__name__
        num_classes = check_count(num_classes, "num_classes", name)
        in_channels = check_count(in_channels, "in_channels", name)
        h, w = size_pair(input_size, "input_size", name)
        if h < 4 or w < 4:
            raise ValueError(f"{name}: input_size must be at least 4x4 (two 2x2 poolings), "
                             f"got {h}x{w}")
        rng = init.get_rng(rng)
        layers = OrderedDict([
            ("conv1", nn.Conv2d(in_channels, 32, 3, padding=1, rng=rng, dtype=dtype)),
            ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(32, 32, 3, padding=1, rng=rng, dtype=dtype)),
            ("relu2", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("conv3", nn.Conv2d(32, 64, 3, padding=1, rng=rng, dtype=dtype)),
            ("relu3", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()),
        ])
        flat = nn.Sequential(layers).output_shape((h, w, in_channels))[0]
        layers.update([
            ("fc1", nn.Linear(flat, 128, rng=rng, dtype=dtype)),
            ("relu4", nn.ReLU()),
            ("dropout", nn.Dropout(dropout)),
            ("fc2", nn.Linear(128, num_classes, rng=rng, dtype=dtype)),
        ])
        super().__init__(layers)


def digits_cnn(num_classes=10, in_channels=1, input_size=8, dropout=0.25, rng=None,
               dtype=None) -> DigitsCNN:
    """The default CNN of ``convnet train`` (8x8 digits); see ``DigitsCNN``."""
    return DigitsCNN(num_classes, in_channels, input_size, dropout, rng=rng, dtype=dtype)
