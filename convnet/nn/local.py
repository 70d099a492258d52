"""local layers (to be filled)."""

__all__ = []
