"""convnd layers (to be filled)."""

__all__ = []
