"""convnet.optim (to be filled)."""
