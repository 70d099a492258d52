"""Pure array math: forward/backward pairs that know nothing of Tensor or Module."""
