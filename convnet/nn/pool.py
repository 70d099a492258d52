"""pool layers (to be filled)."""

__all__ = []
