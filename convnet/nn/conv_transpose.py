"""conv_transpose layers (to be filled)."""

__all__ = []
