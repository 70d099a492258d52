"""loss ops (to be filled)."""

__all__ = []
