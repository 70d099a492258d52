"""convnet.train (to be filled)."""
