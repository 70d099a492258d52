"""W6: the default ``convnet train`` run on digits -- its training time and test accuracy.

It runs the real command (``python -m convnet train --quiet --out TMP``) in a child
process with the harness's thread settings and reads the run's ``metrics.json``: the
training seconds (``train_time_s``, the fit loop alone) and the held-out test accuracy.
The default run has no validation split, so the accuracy is known at the end only; the
figure is therefore the seconds of the whole default run, an upper bound on the
seconds to 98%.  There is no torch counterpart, so the row reports convnet alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from .common import Row, Settings, na_row

NAME = "`convnet train` default run on digits: seconds of training"


def run_w6(settings: Settings) -> list[Row]:
    if settings.quick:
        return [na_row("W6", NAME, "s", "skipped in --quick (the default run trains for about "
                       "a minute); run `python -m benchmarks --only W6`", better="lower")]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        try:
            res = subprocess.run([sys.executable, "-m", "convnet", "train", "--quiet",
                                  "--out", out], capture_output=True, text=True, env=env,
                                 timeout=900)
        except subprocess.TimeoutExpired:
            return [na_row("W6", NAME, "s", "timed out after 900 s", better="lower")]
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            why = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
            return [na_row("W6", NAME, "s", f"`convnet train` failed: {why}"[:160],
                           better="lower")]
        try:
            with open(os.path.join(out, "metrics.json")) as fh:
                metrics = json.load(fh)
            train_s = float(metrics["train_time_s"])
            acc = float(metrics["test"]["accuracy"])
        except (OSError, KeyError, TypeError, ValueError) as exc:
            return [na_row("W6", NAME, "s", f"metrics.json unreadable: {exc}"[:160],
                           better="lower")]
    reached = "reaches" if acc >= 0.98 else "does NOT reach"
    return [Row("W6", NAME, "s", train_s, None, better="lower",
                note=f"test accuracy {acc:.4f} ({reached} 98%); {wall:.0f} s wall with "
                     f"start-up and evaluation; no torch counterpart")]
