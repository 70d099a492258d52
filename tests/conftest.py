import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# The compiled kernels (convnet.ops.jit) index without bounds checks in use; under test
# numba checks every index, so a stray one raises IndexError instead of writing memory.
os.environ.setdefault("NUMBA_BOUNDSCHECK", "1")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def torch():
    import torch
    torch.set_num_threads(2)
    return torch


def pytest_terminal_summary(terminalreporter):
    """After the run: the largest error against torch per op and dtype (the figures the
    issues ask for), as recorded by ``helpers.close_torch``."""
    from helpers import TORCH_ERR

    if not TORCH_ERR:
        return
    terminalreporter.section("largest absolute error vs torch")
    for (op, dtype), err in sorted(TORCH_ERR.items()):
        terminalreporter.write_line(f"{op:<40} {dtype:<8} {err:.2e}")
