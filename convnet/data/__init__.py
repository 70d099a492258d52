"""convnet.data (to be filled)."""
