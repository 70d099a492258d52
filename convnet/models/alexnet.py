"""AlexNet, torchvision's variant (Krizhevsky 2014, "one weird trick"): 61,100,840 params."""

from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..nn import init
from ._adaptive import AdaptiveAvgPool2d
from ._common import check_count, torchvision_init

__all__ = ["AlexNet", "alexnet"]


class AlexNet(nn.Sequential):
    """AlexNet as torchvision builds it, with torchvision's submodule names.

    ``features``: conv 11x11/4 (64) - pool 3/2 - conv 5x5 (192) - pool 3/2 - conv 3x3
    (384) - conv 3x3 (256) - conv 3x3 (256) - pool 3/2, ReLU after each conv;
    ``avgpool``: adaptive average pool to 6x6; ``flatten``; ``classifier``: dropout -
    4096 - ReLU - dropout - 4096 - ReLU - ``num_classes``.  At 224x224 the last pool
    gives 6x6x256 and its receptive field is 195 pixels.  Inputs must be at least 63x63.

    Args:
        num_classes: output scores. Default 1000.
        in_channels: input channels. Default 3.
        dropout: drop probability in the classifier. Default 0.5.
        rng: ``numpy.random.Generator`` or int seed.
        dtype: parameter dtype (default float32).

    Input shape:
        (N, H, W, in_channels), H, W >= 63
    Output shape:
        (N, num_classes)

    Example:
        >>> AlexNet().output_shape((224, 224, 3))
        (1000,)
    """

    def __init__(self, num_classes=1000, in_channels=3, dropout=0.5, rng=None, dtype=None):
        name = type(self).__name__
        num_classes = check_count(num_classes, "num_classes", name)
        in_channels = check_count(in_channels, "in_channels", name)
        rng = init.get_rng(rng)

        with init.skip_init():  # every weight is drawn once, below
            def conv(cin, cout, k, stride=1, padding=0):
                return nn.Conv2d(cin, cout, k, stride, padding, rng=rng, dtype=dtype)

            features = nn.Sequential(
                conv(in_channels, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
                conv(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                conv(192, 384, 3, padding=1), nn.ReLU(),
                conv(384, 256, 3, padding=1), nn.ReLU(),
                conv(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
            )
            classifier = nn.Sequential(
                nn.Dropout(dropout, rng=rng), nn.Linear(256 * 6 * 6, 4096, rng=rng, dtype=dtype),
                nn.ReLU(),
                nn.Dropout(dropout, rng=rng), nn.Linear(4096, 4096, rng=rng, dtype=dtype),
                nn.ReLU(),
                nn.Linear(4096, num_classes, rng=rng, dtype=dtype),
            )
            super().__init__(OrderedDict([
                ("features", features), ("avgpool", AdaptiveAvgPool2d((6, 6))),
                ("flatten", nn.Flatten()), ("classifier", classifier),
            ]))
        torchvision_init(self, rng, convs="default")


def alexnet(num_classes=1000, in_channels=3, rng=None, dtype=None, dropout=0.5) -> AlexNet:
    """torchvision's AlexNet; see ``AlexNet``.  Like torchvision, every layer gets
    PyTorch's default init, U(+-1/sqrt(fan_in))."""
    return AlexNet(num_classes, in_channels, dropout, rng, dtype)
