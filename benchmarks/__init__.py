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
