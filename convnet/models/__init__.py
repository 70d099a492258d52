"""convnet.models (to be filled)."""
