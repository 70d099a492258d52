"""A convolutional autoencoder, with a transposed-conv or an upsample-then-conv decoder."""

from __future__ import annotations

from collections import OrderedDict

from .. import nn
from ..nn import init
from ._common import check_count, size_pair

__all__ = ["ConvAutoencoder", "conv_autoencoder"]

DECODERS = ("transpose", "upsample")


class ConvAutoencoder(nn.Sequential):
    """``encoder``: stride-2 3x3 convs with ReLU, halving the size at each stage;
    ``decoder``: the mirror image back to the input's size and channels, ending in a
    sigmoid (for inputs scaled to [0, 1]).

    The decoder doubles the size at each stage with either

    * ``'transpose'``: a 3x3 transposed conv, stride 2 (padding 1, output_padding 1); or
    * ``'upsample'``: nearest 2x upsampling, then a 3x3 conv -- seed 002's
      "upscale-then-convolve", which avoids the checkerboard artefacts of uneven
      transposed-conv overlap.

    Args:
        in_channels: input (and output) channels. Default 1.
        channels: encoder widths, one per stage. Default (16, 32): 28x28 -> 7x7x32.
        decoder: ``'transpose'`` or ``'upsample'``.
        input_size: int or (H, W); checked to be divisible by 2**stages, so that the
            reconstruction has the input's size. Default 28.
        rng: ``numpy.random.Generator`` or int seed.
        dtype: parameter dtype (default float32).

    Input shape:
        (N, H, W, in_channels), H and W divisible by 2**len(channels)
    Output shape:
        (N, H, W, in_channels)

    Example:
        >>> ae = ConvAutoencoder(decoder="upsample")
        >>> ae.output_shape((28, 28, 1)), ae.encoder.output_shape((28, 28, 1))
        ((28, 28, 1), (7, 7, 32))
    """

    def __init__(self, in_channels=1, channels=(16, 32), decoder="transpose", input_size=28,
                 rng=None, dtype=None):
        name = type(self).__name__
        in_channels = check_count(in_channels, "in_channels", name)
        if not isinstance(channels, (tuple, list)) or not channels:
            raise ValueError(f"{name}: channels must be a non-empty list of widths, "
                             f"got {channels!r}")
        for c in channels:
            check_count(c, "each entry of channels", name)
        if decoder not in DECODERS:
            raise ValueError(f"{name}: decoder must be one of {DECODERS}, got {decoder!r}")
        h, w = size_pair(input_size, "input_size", name)
        factor = 2 ** len(channels)
        if h % factor or w % factor:
            raise ValueError(f"{name}: input_size must be divisible by {factor} "
                             f"({len(channels)} stride-2 stages), got {h}x{w}")
        rng = init.get_rng(rng)
        enc, cin = [], in_channels
        for width in channels:
            enc += [nn.Conv2d(cin, width, 3, 2, 1, rng=rng, dtype=dtype), nn.ReLU()]
            cin = width
        dec = []
        targets = list(reversed(channels[:-1])) + [in_channels]
        for i, cout in enumerate(targets):
            if decoder == "transpose":
                dec.append(nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1,
                                              output_padding=1, rng=rng, dtype=dtype))
            else:
                dec += [nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.Conv2d(cin, cout, 3, padding=1, rng=rng, dtype=dtype)]
            dec.append(nn.Sigmoid() if i == len(targets) - 1 else nn.ReLU())
            cin = cout
        super().__init__(OrderedDict([("encoder", nn.Sequential(*enc)),
                                      ("decoder", nn.Sequential(*dec))]))


def conv_autoencoder(in_channels=1, input_size=28, decoder="transpose", channels=(16, 32),
                     rng=None, dtype=None) -> ConvAutoencoder:
    """A convolutional autoencoder; see ``ConvAutoencoder``."""
    return ConvAutoencoder(in_channels, channels, decoder, input_size, rng, dtype)
