"""convnet's default random generator, at the bottom floor so every floor may use it.

Every random draw in convnet takes an explicit ``numpy.random.Generator``; ``rng=None``
means this default one, which ``manual_seed`` replaces, so the same seed gives the same
weights, dropout masks and shuffles.
"""

from __future__ import annotations

import numpy as np

_state = {"rng": np.random.default_rng(0)}


def manual_seed(seed: int) -> np.random.Generator:
    """Replace the default generator with ``numpy.random.default_rng(seed)`` and return it."""
    _state["rng"] = np.random.default_rng(seed)
    return _state["rng"]


def default_rng() -> np.random.Generator:
    return _state["rng"]


def set_default_rng(rng: np.random.Generator) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"the default rng must be a numpy.random.Generator, "
                        f"got {type(rng).__name__}")
    _state["rng"] = rng


def get_rng(rng) -> np.random.Generator:
    """``rng`` itself, a new Generator for an int seed, or the default for None."""
    if rng is None:
        return _state["rng"]
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, "
                        f"got {type(rng).__name__}")
    return rng
