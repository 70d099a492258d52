"""Small nets for 32x32x3 input (CIFAR-10), used by the benchmarks and the command line."""

from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..nn import init
from ._common import check_count, torchvision_init
from .resnet import make_stage

__all__ = ["CifarCNN", "CifarResNet", "cifar_small", "cifar_resnet20"]


class CifarCNN(nn.Sequential):
    """A VGG-style CNN for 32x32x3: conv-BN-ReLU pairs at 32, 64 and 128 channels, a 2x2
    max pool after each group (32 -> 16 -> 8 -> 4), global average pooling, dropout and
    one linear layer.  About 0.15M parameters; 1 input takes ~39 M MACs.

    Args:
        num_classes: output scores. Default 10.
        in_channels: input channels. Default 3.
        dropout: drop probability before ``fc``. Default 0.25.
        rng: ``numpy.random.Generator`` or int seed.
        dtype: parameter dtype (default float32).

    Input shape:
        (N, H, W, in_channels), H, W >= 8
    Output shape:
        (N, num_classes)

    Example:
        >>> CifarCNN().output_shape((32, 32, 3))
        (10,)
    """

    def __init__(self, num_classes=10, in_channels=3, dropout=0.25, rng=None, dtype=None):
        name = type(self).__name__
        num_classes = check_count(num_classes, "num_classes", name)
        in_channels = check_count(in_channels, "in_channels", name)
        rng = init.get_rng(rng)
        with init.skip_init():  # every weight is drawn once, below
            layers, cin, k = [], in_channels, 1
            for group, (width, convs) in enumerate(((32, 2), (64, 2), (128, 1)), start=1):
                for _ in range(convs):
                    layers += [(f"conv{k}", nn.Conv2d(cin, width, 3, padding=1, bias=False,
                                                      rng=rng, dtype=dtype)),
                               (f"bn{k}", nn.BatchNorm2d(width, dtype=dtype)),
                               (f"relu{k}", nn.ReLU())]
                    cin, k = width, k + 1
                layers.append((f"pool{group}", nn.MaxPool2d(2)))
            layers += [("avgpool", nn.GlobalAvgPool2d()), ("dropout", nn.Dropout(dropout, rng=rng)),
                       ("fc", nn.Linear(cin, num_classes, rng=rng, dtype=dtype))]
            super().__init__(OrderedDict(layers))
        torchvision_init(self, rng, convs="he")


class CifarResNet(nn.Sequential):
    """The CIFAR ResNet of He et al. (2016, section 4.2): a 3x3 conv to 16 channels, then
    three stages of n basic blocks at 16, 32 and 64 channels on 32, 16 and 8 pixels,
    global average pooling and ``fc``; depth = 6n + 2.  Shortcuts that change shape
    use a 1x1 conv + BatchNorm (the paper's option B), so ResNet-20 has 0.27M params.

    Args:
        depth: 6n + 2 (20, 32, 44, 56, 110). Default 20.
        num_classes: output scores. Default 10.
        in_channels: input channels. Default 3.
        rng: ``numpy.random.Generator`` or int seed.
        dtype: parameter dtype (default float32).

    Input shape:
        (N, H, W, in_channels)
    Output shape:
        (N, num_classes)

    Example:
        >>> CifarResNet(20).output_shape((32, 32, 3))
        (10,)
    """

    def __init__(self, depth=20, num_classes=10, in_channels=3, rng=None, dtype=None):
        name = type(self).__name__
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 \
                or (depth - 2) % 6:
            raise ValueError(f"{name}: depth must be 6n + 2 with n >= 1 (20, 32, 44, ...), "
                             f"got {depth!r}")
        num_classes = check_count(num_classes, "num_classes", name)
        in_channels = check_count(in_channels, "in_channels", name)
        n = (depth - 2) // 6
        rng = init.get_rng(rng)
        with init.skip_init():
            super().__init__(OrderedDict([
                ("conv1", nn.Conv2d(in_channels, 16, 3, padding=1, bias=False, rng=rng,
                                    dtype=dtype)),
                ("bn1", nn.BatchNorm2d(16, dtype=dtype)),
                ("relu", nn.ReLU()),
                ("layer1", make_stage(16, 16, n, 1, rng, dtype)),
                ("layer2", make_stage(16, 32, n, 2, rng, dtype)),
                ("layer3", make_stage(32, 64, n, 2, rng, dtype)),
                ("avgpool", nn.GlobalAvgPool2d()),
                ("fc", nn.Linear(64, num_classes, rng=rng, dtype=dtype)),
            ]))
        torchvision_init(self, rng, convs="he")


def cifar_small(num_classes=10, in_channels=3, rng=None, dtype=None, dropout=0.25) -> CifarCNN:
    """A small VGG-style CNN for 32x32x3; see ``CifarCNN``."""
    return CifarCNN(num_classes, in_channels, dropout, rng, dtype)


def cifar_resnet20(num_classes=10, in_channels=3, rng=None, dtype=None) -> CifarResNet:
    """ResNet-20 for CIFAR; see ``CifarResNet``."""
    return CifarResNet(20, num_classes, in_channels, rng, dtype)
