"""convnet.backend: the array module, the default dtype, and the allocator policy."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from convnet import backend

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Frees a 64 MiB array, then makes and touches a 48 MiB one; prints the page faults that
# took.  64 MiB is above glibc's largest self-set mmap threshold (32 MiB), so by default
# the freed block goes back to the OS and the new one faults in again.
_PROBE = """
import resource, sys
import numpy as np
from convnet import backend
if sys.argv[1] == "retain":
    print(backend.retain_freed_memory(), flush=True)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counts = []
for _ in range(3):
    a = np.ones(64 << 18, np.float32)
    del a
    f0 = faults()
    b = np.ones(48 << 18, np.float32)
    counts.append(faults() - f0)
    del b
print(max(counts[1:]))
"""


def _probe(mode):
    res = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


@pytest.mark.skipif(not GLIBC, reason="the allocator policy is glibc's")
def test_retain_freed_memory_reuses_freed_blocks_without_page_faults():
    (default,) = _probe("default")
    applied, retained = _probe("retain")
    assert applied == "True"
    assert int(default) > 0                 # the freed block was unmapped: new pages fault in
    assert int(retained) == 0               # the freed block is reused as it is


@pytest.mark.skipif(GLIBC, reason="off glibc the call reports that nothing changed")
def test_retain_freed_memory_reports_false_off_glibc():
    assert backend.retain_freed_memory() is False


@pytest.mark.parametrize("bad", [0, 1 << 19, 1 << 31, 2.0, True, "1GB", None])
def test_retain_freed_memory_rejects_bad_limits(bad):
    with pytest.raises(ValueError, match="limit must be an int of bytes"):
        backend.retain_freed_memory(bad)


def test_default_dtype_round_trip_and_validation():
    prev = backend.get_default_dtype()
    try:
        backend.set_default_dtype("float64")
        assert backend.get_default_dtype() == np.float64
        with pytest.raises(ValueError, match="float32 or float64, got int32"):
            backend.set_default_dtype(np.int32)
        assert backend.get_default_dtype() == np.float64      # unchanged by the bad call
    finally:
        backend.set_default_dtype(prev)


def test_use_names_what_is_implemented():
    backend.use("numpy")
    with pytest.raises(NotImplementedError, match="CuPy backend is not implemented"):
        backend.use("cupy")
    with pytest.raises(ValueError, match="backend must be 'numpy', got 'jax'"):
        backend.use("jax")
