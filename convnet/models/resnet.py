"""ResNet-18/34 (He et al., 2016) with basic blocks, in torchvision's layout and names."""

from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..nn import init
from ._common import check_count, torchvision_init
from ._graph import GraphModule

__all__ = ["BasicBlock", "ResNet", "resnet18", "resnet34"]


class BasicBlock(GraphModule):
    """Two 3x3 conv-BN stages and a skip connection: relu(bn2(conv2(relu(bn1(conv1(x)))))
    + shortcut(x)).  The shortcut is the identity, or ``downsample`` (1x1 conv with the
    block's stride, then BatchNorm) when the stride or the width changes.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        stride: stride of ``conv1`` and of the shortcut. Default 1.
        rng: ``numpy.random.Generator`` or int seed.
        dtype: parameter dtype.

    Input shape:
        (N, H, W, C_in)
    Output shape:
        (N, ceil(H/stride), ceil(W/stride), C_out)

    Example:
        >>> BasicBlock(64, 128, stride=2).output_shape((56, 56, 64))
        (28, 28, 128)
    """

    expansion = 1

    def __init__(self, in_channels, out_channels, stride=1, rng=None, dtype=None):
        super().__init__()
        rng = init.get_rng(rng)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False, rng=rng,
                               dtype=dtype)
        self.bn1 = nn.BatchNorm2d(out_channels, dtype=dtype)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False, rng=rng,
                               dtype=dtype)
        self.bn2 = nn.BatchNorm2d(out_channels, dtype=dtype)
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False, rng=rng,
                          dtype=dtype),
                nn.BatchNorm2d(out_channels, dtype=dtype))
        else:
            self.downsample = None

    def graph(self, g, x):
        out = g("relu", g("bn1", g("conv1", x)))
        out = g("bn2", g("conv2", out))
        identity = x if self.downsample is None else g("downsample", x)
        return g("relu", g.add(out, identity))


def make_stage(in_channels, out_channels, blocks, stride, rng, dtype) -> nn.Sequential:
    """``blocks`` basic blocks; the first one carries the stride and the widening."""
    layers = [BasicBlock(in_channels, out_channels, stride, rng=rng, dtype=dtype)]
    layers += [BasicBlock(out_channels, out_channels, 1, rng=rng, dtype=dtype)
               for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet(nn.Sequential):
    """ResNet for ImageNet-sized input, torchvision's layout and names.

    ``conv1`` (7x7/2, 64, no bias) - ``bn1`` - ``relu`` - ``maxpool`` (3x3/2) -
    ``layer1``..``layer4`` (64, 128, 256, 512 channels; stages 2-4 halve the size in
    their first block, whose shortcut is ``layerK.0.downsample``) - ``avgpool`` (global
    average) - ``fc``.  At 224x224 the stages give 56, 28, 14 and 7 pixels.

    Args:
        layers: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18, (3, 4, 6, 3) for 34.
        num_classes: output scores. Default 1000.
        in_channels: input channels. Default 3.
        rng: ``numpy.random.Generator`` or int seed; convs get torchvision's He
            (fan-out) normal init, BatchNorm (1, 0), ``fc`` PyTorch's default.
        dtype: parameter dtype (default float32).

    Input shape:
        (N, H, W, in_channels)
    Output shape:
        (N, num_classes)

    Example:
        >>> ResNet((2, 2, 2, 2)).num_parameters()
        11689512
    """

    def __init__(self, layers=(2, 2, 2, 2), num_classes=1000, in_channels=3, rng=None,
                 dtype=None):
        name = type(self).__name__
        if not isinstance(layers, (tuple, list)) or len(layers) != 4:
            raise ValueError(f"{name}: layers must be 4 block counts, got {layers!r}")
        for count in layers:
            check_count(count, "each entry of layers", name)
        num_classes = check_count(num_classes, "num_classes", name)
        in_channels = check_count(in_channels, "in_channels", name)
        rng = init.get_rng(rng)
        with init.skip_init():  # every weight is drawn once, below
            stages, cin = [], 64
            for i, (width, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
                stages.append((f"layer{i + 1}",
                               make_stage(cin, width, blocks, 1 if i == 0 else 2, rng, dtype)))
                cin = width
            super().__init__(OrderedDict([
                ("conv1", nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False, rng=rng, dtype=dtype)),
                ("bn1", nn.BatchNorm2d(64, dtype=dtype)),
                ("relu", nn.ReLU()),
                ("maxpool", nn.MaxPool2d(3, 2, 1)),
                *stages,
                ("avgpool", nn.GlobalAvgPool2d()),
                ("fc", nn.Linear(512, num_classes, rng=rng, dtype=dtype)),
            ]))
        torchvision_init(self, rng, convs="he")


def resnet18(num_classes=1000, in_channels=3, rng=None, dtype=None) -> ResNet:
    """ResNet-18: (2, 2, 2, 2) basic blocks, 11,689,512 parameters for 1000 classes."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels, rng, dtype)


def resnet34(num_classes=1000, in_channels=3, rng=None, dtype=None) -> ResNet:
    """ResNet-34: (3, 4, 6, 3) basic blocks, 21,797,672 parameters for 1000 classes."""
    return ResNet((3, 4, 6, 3), num_classes, in_channels, rng, dtype)
