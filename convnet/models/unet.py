"""U-Net (Ronneberger, Fischer & Brox, 2015): the original, with valid convolutions."""

from __future__ import annotations

from .. import nn
from ..nn import init
from ._common import check_count
from ._graph import GraphModule

__all__ = ["UNet", "unet", "double_conv"]


def double_conv(cin, cout, padding, rng, dtype) -> nn.Sequential:
    """Two 3x3 convs, each followed by ReLU (the paper's basic unit)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=padding, rng=rng, dtype=dtype), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=padding, rng=rng, dtype=dtype), nn.ReLU())


class UNet(GraphModule):
    """The U-Net of the paper: a contracting path, an expanding path, and skips that
    crop the contracting path's maps and concatenate them with the up-sampled ones.

    Contracting: ``enc1``..``enc4`` (two valid 3x3 convs + ReLU; 64, 128, 256, 512
    channels), each followed by ``pool1``..``pool4`` (2x2 max, stride 2); ``bottleneck``
    (1024).  Expanding: ``up4``..``up1`` (2x2 up-convolution, stride 2, halving the
    channels), then the centre-cropped ``enc`` map is concatenated and ``dec4``..``dec1``
    (two 3x3 convs) follow; ``head`` is a 1x1 conv to ``num_classes`` maps.  With the
    paper's 572x572x1 input the output is 388x388x2; 31,030,658 parameters.

    Valid convs shrink every map, so the output is smaller than the input.  Sizes of
    the form 16m + 124 with m >= 4 (188, 204, ..., 572) keep every pooled map even, so
    that the windows tile exactly (``summary(..., check_tiling=True)`` says which layer
    breaks for other sizes).  ``padding=1`` gives the common same-size variant.

    Args:
        num_classes: output maps. Default 2.
        in_channels: input channels. Default 1.
        base_channels: channels of ``enc1``; each level doubles them. Default 64.
        depth: number of poolings. Default 4.
        padding: 0 (the paper's valid convs) or 1.
        rng: ``numpy.random.Generator`` or int seed.
        dtype: parameter dtype (default float32).

    Input shape:
        (N, H, W, in_channels)
    Output shape:
        (N, OH, OW, num_classes); 572x572 -> 388x388 with the defaults

    Example:
        >>> UNet().output_shape((572, 572, 1))
        (388, 388, 2)
    """

    def __init__(self, num_classes=2, in_channels=1, base_channels=64, depth=4, padding=0,
                 rng=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        num_classes = check_count(num_classes, "num_classes", name)
        in_channels = check_count(in_channels, "in_channels", name)
        base_channels = check_count(base_channels, "base_channels", name)
        self.depth = check_count(depth, "depth", name)
        if padding not in (0, 1):
            raise ValueError(f"{name}: padding must be 0 (valid, as the paper) or 1 (same), "
                             f"got {padding!r}")
        rng = init.get_rng(rng)
        widths = [base_channels * 2 ** i for i in range(self.depth + 1)]
        cin = in_channels
        for i in range(1, self.depth + 1):
            self.add_module(f"enc{i}", double_conv(cin, widths[i - 1], padding, rng, dtype))
            self.add_module(f"pool{i}", nn.MaxPool2d(2, 2))
            cin = widths[i - 1]
        self.bottleneck = double_conv(cin, widths[-1], padding, rng, dtype)
        for i in range(self.depth, 0, -1):
            wide, narrow = widths[i], widths[i - 1]
            self.add_module(f"up{i}", nn.ConvTranspose2d(wide, narrow, 2, stride=2, rng=rng,
                                                         dtype=dtype))
            self.add_module(f"dec{i}", double_conv(2 * narrow, narrow, padding, rng, dtype))
        self.head = nn.Conv2d(widths[0], num_classes, 1, rng=rng, dtype=dtype)

    def graph(self, g, x):
        skips = []
        for i in range(1, self.depth + 1):
            x = g(f"enc{i}", x)
            skips.append(x)
            x = g(f"pool{i}", x)
        x = g("bottleneck", x)
        for i in range(self.depth, 0, -1):
            up = g(f"up{i}", x)
            x = g(f"dec{i}", g.concat([g.crop(skips[i - 1], up), up]))
        return g("head", x)


def unet(num_classes=2, in_channels=1, rng=None, dtype=None, base_channels=64, depth=4,
         padding=0) -> UNet:
    """The original U-Net (1 input channel, 2 classes by default); see ``UNet``."""
    return UNet(num_classes, in_channels, base_channels, depth, padding, rng, dtype)
