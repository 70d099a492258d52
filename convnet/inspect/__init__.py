"""convnet.inspect (to be filled)."""
