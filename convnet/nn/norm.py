"""norm layers (to be filled)."""

__all__ = []
