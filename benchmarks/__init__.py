"""convnet's speed harness: every workload in convnet and in PyTorch, in one process.

Run ``python -m benchmarks`` (or ``python benchmarks/run.py``); see ``benchmarks/run.py``.
Both frameworks get the same thread count (2 unless ``BENCH_THREADS`` says otherwise).
The BLAS/OpenMP variables must be set before NumPy is first imported, so they are set
here, in the package's first line of code.
"""

import os

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

# The C allocator's policy, the same for every framework in the process (and in W5's child
# processes, which import this package too).  "default" (the default) leaves glibc's own
# policy, as each framework ships; "retain" keeps freed memory for reuse, as ``convnet
# train`` does in its own process (convnet.backend.retain_freed_memory).  Torch gains more
# from "retain" than convnet does (about 30,000 page faults per W2 step against 2,000), so
# the ratios are quoted under "default".
MALLOC = os.environ.get("BENCH_MALLOC", "default")
if MALLOC not in ("retain", "default"):
    raise SystemExit(f"BENCH_MALLOC must be 'retain' or 'default', got {MALLOC!r}")
if MALLOC == "retain":
    from convnet.backend import retain_freed_memory

    MALLOC = "retain" if retain_freed_memory() else "default (not glibc)"
