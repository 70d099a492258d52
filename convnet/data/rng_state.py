"""JSON-able snapshots of a ``numpy.random.Generator``'s state.

``rng.bit_generator.state`` is a dict of ints and strings for PCG64 (the default) but
holds arrays for MT19937, Philox and SFC64; ``get_rng_state`` turns those arrays into
``{"__ndarray__": [...], "dtype": "..."}`` so the whole snapshot survives ``json.dumps``,
and ``set_rng_state`` turns them back.  Restoring a snapshot makes the generator draw
exactly what it would have drawn when the snapshot was taken.
"""

from __future__ import annotations

import numpy as np

__all__ = ["get_rng_state", "set_rng_state"]


def _encode(value):
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.name}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"__ndarray__", "dtype"}:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"])
        return {k: _decode(v) for k, v in value.items()}
    return value


def get_rng_state(rng: np.random.Generator) -> dict:
    """A JSON-able copy of the generator's bit-generator state."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"get_rng_state: expected a numpy.random.Generator, got "
                        f"{type(rng).__name__}")
    return _encode(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    """Restore a state captured by ``get_rng_state`` (the bit generator must match)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"set_rng_state: expected a numpy.random.Generator, got "
                        f"{type(rng).__name__}")
    want = type(rng.bit_generator).__name__
    got = state.get("bit_generator") if isinstance(state, dict) else None
    if got != want:
        raise ValueError(f"set_rng_state: the state is for bit generator {got!r} but the "
                         f"generator uses {want!r}")
    rng.bit_generator.state = _decode(state)
