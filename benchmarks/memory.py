"""W5: peak memory of W2's training, each framework in a fresh process of its own.

Method (Linux): after the imports, the model, the optimizer and the batch exist, the
child notes its resident set (VmRSS), resets the kernel's high-water mark by writing
"5" to /proc/self/clear_refs, runs a few training steps, then reads the high-water
mark (VmHWM).  The figure is VmHWM - VmRSS-before: the memory the training steps
themselves need (activations, gradients, workspaces, optimizer state), free of each
framework's import size (torch's libraries alone are some hundreds of MiB) -- and of
convnet's compiled kernels (``ops.jit.warm_up`` runs before the baseline: numba and
LLVM hold about 170 MiB once they have compiled, which the whole-process peak in the
note includes).  Where
clear_refs cannot be written, it falls back to ``resource.getrusage`` ru_maxrss,
whose peak then includes the imports; the note says which method ran.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

from .common import Row, Settings, na_row


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def child(framework: str, batch: int, width: int, steps: int) -> dict:
    """Run in the subprocess: build, measure, train, measure."""
    from .models import build_convnet, build_torch, cifar_vgg
    from .training import batch_data, convnet_step, torch_step
    x, y, rng = batch_data(batch, 32, 3)
    if framework == "torch":  # only this framework is imported in this process
        import torch
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        step = torch_step(build_torch(cifar_vgg(width)), x, y)
    else:
        from convnet.ops import jit
        jit.warm_up()  # numba's compile of convnet's kernels is code, like an import
        step = convnet_step(build_convnet(cifar_vgg(width), rng), x, y)
    before = _status_kib("VmRSS")
    reset = before is not None and _reset_peak()
    for _ in range(steps):
        step()
    if reset:
        peak_kib, method = _status_kib("VmHWM"), "VmHWM after clear_refs"
        used = (peak_kib - before) * 1024
    else:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        method, used = "ru_maxrss (includes imports)", peak_kib * 1024
    return {"framework": framework, "bytes": used, "peak_rss": peak_kib * 1024,
            "rss_before": (before or 0) * 1024, "method": method}


def _spawn(framework, batch, width, steps, timeout) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "benchmarks.memory", framework, "--batch", str(batch),
           "--width", str(width), "--steps", str(steps)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                         cwd=root)
    if res.returncode != 0:
        raise RuntimeError(res.stderr.strip().splitlines()[-1] if res.stderr.strip()
                           else f"exit code {res.returncode}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_w5(settings: Settings) -> list[Row]:
    batch, width, steps = (4, 8, 1) if settings.smoke else (64, 64, 3)
    name = f"peak memory of W2 training (batch {batch}), own process each"
    try:
        cn = _spawn("convnet", batch, width, steps, 300)
        th = _spawn("torch", batch, width, steps, 300)
    except Exception as exc:  # noqa: BLE001 - report, never crash the harness
        return [na_row("W5", name, "bytes", f"{type(exc).__name__}: {exc}"[:160],
                       better="lower")]
    note = (f"{cn['method']}; {steps} steps; whole-process peaks {cn['peak_rss'] / 2**20:.0f} "
            f"vs {th['peak_rss'] / 2**20:.0f} MiB")
    return [Row("W5", name, "bytes", float(cn["bytes"]), float(th["bytes"]), better="lower",
                target=1.0, note=note)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    p.add_argument("framework", choices=["convnet", "torch"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args(argv)
    print(json.dumps(child(a.framework, a.batch, a.width, a.steps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
