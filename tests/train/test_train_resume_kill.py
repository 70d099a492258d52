"""The acceptance test for checkpoints: ``kill -9`` a ``convnet train`` run at a random
step (mid-epoch included), ``convnet train --resume``, and get exactly the per-step
losses and final weights of an uninterrupted run (same machine, one BLAS thread)."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

import convnet

EPOCHS, STEPS_PER_EPOCH, EVERY = 3, 45, 7  # digits: 1,437 images / 32 per batch -> 45


def _env():
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MPLBACKEND="Agg", PYTHONHASHSEED="0")
    return env


def _train(*args, **kw):
    cmd = [sys.executable, "-m", "convnet", "train", "--quiet", "--epochs", str(EPOCHS), *args]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _lines(path):
    try:
        with open(path) as f:
            return f.read().count("\n")
    except FileNotFoundError:
        return 0


def _weights(path):
    return convnet.load(path).state_dict()


def _history(path):
    doc = json.load(open(path))
    return {k: v for k, v in doc["history"].items() if k not in ("time", "images_per_sec")}


def test_kill_minus_nine_then_resume_matches_an_uninterrupted_run(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    reference = _train("--out", str(ref))

    # Kill the checkpointed run once its step log shows step `target` (a random step
    # after the first checkpoint, mid-epoch or not), while it is still training.
    target = random.Random(os.urandom(8)).randint(EVERY + 1, 2 * STEPS_PER_EPOCH)
    proc = _train("--out", str(run), "--checkpoint-every", str(EVERY))
    deadline = time.monotonic() + 120
    while _lines(run / "steps.csv") < 1 + target and proc.poll() is None:
        assert time.monotonic() < deadline, "the run did not reach the target step"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _lines(run / "steps.csv") - 1
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill (step {target})"
    assert not (run / "model.safetensors").exists()

    resumed = _train("--resume", str(run))
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "test accuracy" in out
    out_ref, err_ref = reference.communicate(timeout=120)
    assert reference.returncode == 0, err_ref

    info = f"(killed after step {killed_at}, target {target})"
    assert (run / "steps.csv").read_text() == (ref / "steps.csv").read_text(), info
    assert _lines(run / "steps.csv") == 1 + EPOCHS * STEPS_PER_EPOCH
    a, b = _weights(ref / "model.safetensors"), _weights(run / "model.safetensors")
    assert list(a) == list(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} differs {info}"
    assert _history(ref / "metrics.json") == _history(run / "metrics.json"), info
    assert out.split(" -- ")[0] == out_ref.split(" -- ")[0]  # the same test accuracy
