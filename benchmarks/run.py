"""convnet vs PyTorch, side by side in one process: ``python -m benchmarks``.

    python -m benchmarks                 every workload, 7 timed repeats after warm-up
    python -m benchmarks --quick         every workload in under 90 s (W6 is skipped)
    python -m benchmarks --only W3,W4    some workloads
    python -m benchmarks --json out.json also write the table as JSON
    python benchmarks/run.py ...         the same

Workloads (issue 6):
    W1  LeNet training step, 28x28x1, batch 64, SGD with momentum       images/s
    W2  CIFAR VGG-style training step, 32x32x3, batch 64                  images/s
    W3  VGG-16 inference, batch 1, 224x224x3, vs torch and onnxruntime    latency
    W4  every 3x3 conv of W2 and W3, forward and backward separately      effective GFLOP/s
    W5  peak memory of W2's training, each framework in its own process   bytes
    W6  the default ``convnet train`` run on digits                       seconds

Both frameworks use ``BENCH_THREADS`` threads (default 2): the BLAS/OpenMP variables
are set before NumPy loads and torch gets ``torch.set_num_threads``.  They start from
the same weights and data; each figure is the median of the repeats after warm-up,
the two frameworks timed alternately.  The sgemm roof is measured in the same run.
``BENCH_MALLOC=retain`` runs every framework with glibc keeping freed memory (the policy
``convnet train`` sets for itself); the default leaves glibc's own.
The harness reports figures and whether each target is met; it asserts nothing.
A workload that cannot run (a missing package or piece of convnet) gives an "n/a" row
with the reason.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import benchmarks  # noqa: E402  (sets the thread variables before NumPy loads)
from benchmarks import common  # noqa: E402

THREADS = benchmarks.THREADS
Row, Settings, na_row = common.Row, common.Settings, common.na_row

WORKLOADS = {
    "W1": ("LeNet training step", "images/s"),
    "W2": ("CIFAR VGG-style training step", "images/s"),
    "W3": ("VGG-16 inference, batch 1", "ms"),
    "W4": ("3x3 conv layers of W2 and W3", "ms"),
    "W5": ("peak memory of W2 training", "bytes"),
    "W6": ("`convnet train` default run on digits", "s"),
}


def _run_one(wid: str, settings: Settings, roof: float) -> list[Row]:
    if wid == "W1":
        from benchmarks.training import run_w1
        return run_w1(settings)
    if wid == "W2":
        from benchmarks.training import run_w2
        return run_w2(settings)
    if wid == "W3":
        from benchmarks.vgg import run_w3
        return run_w3(settings)
    if wid == "W4":
        from benchmarks.convs import run_w4
        return run_w4(settings, roof)
    if wid == "W5":
        from benchmarks.memory import run_w5
        return run_w5(settings)
    from benchmarks.digits import run_w6
    return run_w6(settings)


def run(settings: Settings, only=None, log=None) -> tuple[list[Row], dict]:
    import torch
    torch.set_num_threads(THREADS)
    roof = common.sgemm_roof(settings)
    info = common.machine_info(roof)
    rows: list[Row] = []
    for wid in (only or list(WORKLOADS)):
        t0 = time.perf_counter()
        try:
            rows.extend(_run_one(wid, settings, roof))
        except Exception as exc:  # noqa: BLE001 - one broken workload must not stop the rest
            name, unit = WORKLOADS[wid]
            rows.append(na_row(wid, name, unit, f"{type(exc).__name__}: {exc}"[:200]))
        if log:
            log(f"{wid} done in {time.perf_counter() - t0:.1f} s")
    return rows, info


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks",
                                description="convnet vs PyTorch, side by side.")
    p.add_argument("--quick", action="store_true", help="every workload in under 90 s")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes, one repeat: checks that the harness works (tests)")
    p.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    p.add_argument("--only", metavar="IDS", help="comma-separated workload ids, e.g. W3,W4")
    args = p.parse_args(argv)
    if args.only:
        ids = [s.strip().upper() for s in args.only.split(",") if s.strip()]
        bad = [i for i in ids if i not in WORKLOADS]
        if bad:
            p.error(f"--only: unknown workload(s) {bad}; expected some of {list(WORKLOADS)}")
        args.only = ids
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = Settings.make(quick=args.quick, smoke=args.smoke)
    t0 = time.perf_counter()
    rows, info = run(settings, args.only, log=lambda m: print(m, file=sys.stderr, flush=True))
    elapsed = time.perf_counter() - t0
    table = common.markdown_table(rows, info)
    print(table)
    print(f"({elapsed:.0f} s in all)")
    if args.json:
        doc = {"machine": info, "elapsed_s": elapsed,
               "settings": {"quick": settings.quick, "smoke": settings.smoke,
                            "warmup": settings.warmup, "repeats": settings.repeats},
               "rows": [r.as_dict() for r in rows], "markdown": table}
        from convnet.io.atomic import atomic_write_json
        atomic_write_json(args.json, doc)          # a crash never leaves half a file
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
