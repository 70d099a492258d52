"""convnet.io (to be filled)."""
