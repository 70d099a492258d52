"""conv_transpose ops (to be filled)."""

__all__ = []
