"""VGG-11/13/16/19 (Simonyan & Zisserman, 2015), with and without BatchNorm, as torchvision."""

from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..nn import init
from ._adaptive import AdaptiveAvgPool2d
from ._common import check_count, torchvision_init

__all__ = ["VGG", "CONFIGS", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn",
           "vgg16_bn", "vgg19_bn"]

# Output channels of each 3x3 conv; "M" is a 2x2 max pool with stride 2.
CONFIGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
         512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}


class VGG(nn.Sequential):
    """VGG with torchvision's submodule names: ``features.N``, ``avgpool``, ``classifier.N``.

    ``features``: blocks of 3x3 convs (stride 1, padding 1, ReLU; with ``batch_norm`` a
    BatchNorm2d between conv and ReLU), each block closed by a 2x2/2 max pool: at
    224x224x3 the maps go 224x224x64 -> 112x112x128 -> 56x56x256 -> 28x28x512 ->
    14x14x512 -> 7x7x512.  ``avgpool``: adaptive average pool to 7x7 (the identity at
    224x224; on smaller inputs it spreads the map over 7x7, as torchvision does).
    ``flatten``: 25,088 units.  ``classifier``: 4096 - ReLU - dropout - 4096 - ReLU -
    dropout - ``num_classes``; ``classifier.0`` alone holds 102,764,544 parameters.
    Inputs must be at least 32x32.

    Args:
        depth: 11, 13, 16 or 19 weight layers.
        batch_norm: BatchNorm2d after every conv.
        num_classes: output scores. Default 1000.
        in_channels: input channels. Default 3.
        dropout: drop probability in the classifier. Default 0.5.
        rng: ``numpy.random.Generator`` or int seed.  Convs get torchvision's He
            (fan-out) normal init with zero bias; linear layers keep PyTorch's default.
        dtype: parameter dtype (default float32).

    Input shape:
        (N, H, W, in_channels), H, W >= 32
    Output shape:
        (N, num_classes)

    Example:
        >>> with convnet.nn.init.skip_init():      # shapes only: no 138M random draws
        ...     net = VGG(16)
        >>> net.num_parameters()
        138357544
    """

    def __init__(self, depth=16, batch_norm=False, num_classes=1000, in_channels=3,
                 dropout=0.5, rng=None, dtype=None):
        name = type(self).__name__
        if depth not in CONFIGS:
            raise ValueError(f"{name}: depth must be one of {sorted(CONFIGS)}, got {depth!r}")
        num_classes = check_count(num_classes, "num_classes", name)
        in_channels = check_count(in_channels, "in_channels", name)
        rng = init.get_rng(rng)
        with init.skip_init():  # every weight is drawn once, below
            layers, cin = [], in_channels
            for v in CONFIGS[depth]:
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                    continue
                layers.append(nn.Conv2d(cin, v, 3, padding=1, rng=rng, dtype=dtype))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(v, dtype=dtype))
                layers.append(nn.ReLU())
                cin = v
            classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096, rng=rng, dtype=dtype), nn.ReLU(),
                nn.Dropout(dropout, rng=rng),
                nn.Linear(4096, 4096, rng=rng, dtype=dtype), nn.ReLU(),
                nn.Dropout(dropout, rng=rng),
                nn.Linear(4096, num_classes, rng=rng, dtype=dtype),
            )
            super().__init__(OrderedDict([
                ("features", nn.Sequential(*layers)), ("avgpool", AdaptiveAvgPool2d((7, 7))),
                ("flatten", nn.Flatten()), ("classifier", classifier),
            ]))
        torchvision_init(self, rng, convs="he")


def _builder(depth, batch_norm):
    def build(num_classes=1000, in_channels=3, rng=None, dtype=None, dropout=0.5) -> VGG:
        return VGG(depth, batch_norm, num_classes, in_channels, dropout, rng, dtype)

    build.__name__ = f"vgg{depth}{'_bn' if batch_norm else ''}"
    build.__qualname__ = build.__name__
    build.__doc__ = (f"VGG-{depth}{' with BatchNorm' if batch_norm else ''}, torchvision's "
                     f"layout; see ``VGG``.")
    return build


vgg11, vgg13, vgg16, vgg19 = (_builder(d, False) for d in (11, 13, 16, 19))
vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn = (_builder(d, True) for d in (11, 13, 16, 19))
