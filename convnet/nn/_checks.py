"""Hyperparameter checks shared by the layers: errors name the layer, what was expected
and what was got."""

from __future__ import annotations

import numpy as np


def check_int(value, name: str, layer: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{layer}: {name} must be an int >= {minimum}, got {value!r}")


def check_channels(layer: str, in_channels, out_channels, groups,
                   out_name: str = "out_channels") -> None:
    """Positive ints, and ``groups`` divides both channel counts."""
    check_int(in_channels, "in_channels", layer)
    check_int(out_channels, out_name, layer)
    check_int(groups, "groups", layer)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{layer}: groups={groups} must divide in_channels={in_channels} "
                         f"and {out_name}={out_channels}")
