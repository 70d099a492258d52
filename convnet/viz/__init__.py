"""convnet.viz (to be filled)."""
