"""Shared pieces of the harness: timing, the sgemm roof, FLOP counts, rows and tables.

Every figure is the median of ``repeats`` timed calls after ``warmup`` untimed ones.
A row's ``ratio`` always reads "convnet's advantage": above 1 means convnet is better
(more images/s, lower latency, fewer bytes).
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
import time

import numpy as np

from . import MALLOC, THREADS


@dataclasses.dataclass
class Settings:
    """How hard to measure.  ``quick`` keeps the whole run under 90 s; ``smoke`` is the
    tiny mode the tests use to check that a well-formed table comes out."""
    warmup: int = 2
    repeats: int = 7
    quick: bool = False
    smoke: bool = False

    @classmethod
    def make(cls, quick: bool = False, smoke: bool = False) -> Settings:
        if smoke:
            return cls(warmup=1, repeats=1, quick=True, smoke=True)
        if quick:
            return cls(warmup=1, repeats=3, quick=True)
        return cls()


@dataclasses.dataclass
class Row:
    id: str
    workload: str
    unit: str                       # what the convnet/torch figures measure
    convnet: float | None = None
    torch: float | None = None
    better: str = "higher"          # "higher" (throughput) or "lower" (latency, bytes)
    target: float | None = None     # wanted ratio (convnet's advantage)
    convnet_gflops: float | None = None
    torch_gflops: float | None = None
    roof_gflops: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.convnet is None or self.torch is None or not self.convnet or not self.torch:
            return None
        return self.convnet / self.torch if self.better == "higher" else self.torch / self.convnet

    @property
    def roof_frac(self) -> float | None:
        if self.convnet_gflops is None or not self.roof_gflops:
            return None
        return self.convnet_gflops / self.roof_gflops

    @property
    def met(self) -> bool | None:
        """Whether the issue's target is met (reported, never asserted).  W4 rows compare
        against the sgemm roof, the others against the ratio."""
        if self.id.startswith("W4") and self.roof_frac is not None:
            return self.roof_frac >= 1.0
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(ratio=self.ratio, roof_frac=self.roof_frac, met=self.met)
        return d


def na_row(id_: str, workload: str, unit: str, why: str, **kw) -> Row:
    """A row that could not be measured, with the reason in its note."""
    return Row(id_, workload, unit, note=f"n/a: {why}", **kw)


WARM_S = 0.15   # W4's untimed calls before each framework's timed ones, in seconds at least
TIMED_S = 0.1   # and its timed calls, in seconds at least, over all its turns (``in_turns``)
TURNS = 3       # W4's alternating turns per layer (``in_turns``)


def samples(fn, warmup: int, repeats: int, warm_s: float = 0.0,
            timed_s: float = 0.0) -> list[float]:
    """Wall times of ``fn()`` in seconds: ``repeats`` timed calls, and more, until they
    have taken ``timed_s`` seconds, after ``warmup`` untimed calls -- and more, until
    they have taken ``warm_s`` seconds.

    The warm-up is for what another framework leaves behind and for the VM itself: every
    framework here leaves worker threads spin-waiting after it returns (OpenBLAS for
    about 0.1 s, OpenMP, onnxruntime's pool), and on two cores a spinning thread takes a
    core from the next framework's two-thread calls (right after a two-thread sgemm,
    convnet's conv calls stalled 4-8 ms each, a scheduler time slice, for about 0.1 s);
    and after 0.15 s idle, VGG's 14x14x512 conv ran at half speed for its next 50 ms of
    calls (3 ms calls; a core kept busy meanwhile shortened that to one call).  An idle
    pause alone cures the first and causes the second; calls cure both."""
    t0 = time.perf_counter()
    done = 0
    while done < warmup or time.perf_counter() - t0 < warm_s:
        fn()
        done += 1
    times = []
    start = time.perf_counter()
    while len(times) < max(repeats, 1) or time.perf_counter() - start < timed_s:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def timeit(fn, warmup: int, repeats: int) -> float:
    """The median of ``samples``: ``repeats`` timed calls after ``warmup`` untimed ones."""
    return float(np.median(samples(fn, warmup, repeats)))


def in_turns(fns, turns: int, warmup: int, repeats: int, warm_s: float = 0.0,
             timed_s: float = 0.0) -> list[float]:
    """The median wall time of each of ``fns`` over all its calls, timed in ``turns``
    alternating turns (fns[0], fns[1], ..., fns[0], ...): each turn ``samples`` with
    ``warmup`` and ``warm_s`` as given, and a share of ``repeats`` and ``timed_s``.

    The VM has slow stretches of a tenth of a second and more.  Timed in one stretch, a
    row's median moved with them: CIFAR's 20 ms conv2_2 backward measured 36 ms in one
    full run and 25 ms in another (the median of 7 calls in a row), against 17-21 ms in
    nine other full runs and in two runs of W4 alone.  In three turns, spread over the
    layer's 2-3 s, one slow stretch holds a third of a row's calls."""
    share, floor = -(-max(repeats, 1) // turns), timed_s / turns
    times = [[] for _ in fns]
    for _ in range(max(turns, 1)):
        for t, fn in zip(times, fns):
            t.extend(samples(fn, warmup, share, warm_s, floor))
    return [float(np.median(t)) for t in times]


def sgemm_roof(settings: Settings) -> float:
    """GFLOP/s of one large float32 BLAS matmul through NumPy -- the roof."""
    n = 512 if settings.smoke else 2048
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    sec = timeit(lambda: np.matmul(a, b, out=out), 2, max(settings.repeats, 5))
    return 2.0 * n ** 3 / sec / 1e9


def conv_flops(n, h, w, c, f, k=3, stride=1, pad=1) -> float:
    """Direct-convolution FLOPs of one forward pass (2 per multiply-add)."""
    oh = (h + 2 * pad - k) // stride + 1
    ow = (w + 2 * pad - k) // stride + 1
    return 2.0 * n * oh * ow * k * k * c * f


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info(roof: float) -> dict:
    import torch
    info = {"cpu": cpu_model(), "date": datetime.date.today().isoformat(),
            "threads": THREADS, "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__,
            "sgemm_gflops": roof, "malloc": MALLOC, "jit": jit_info()}
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


def jit_info() -> str:
    """How convnet's Winograd tile transforms run: "numba X.Y" (compiled) or "numpy"."""
    from convnet.ops import jit
    if not jit.enabled():
        return "numpy"
    import numba
    return f"numba {numba.__version__}"


def _fmt(v, unit="") -> str:
    if v is None:
        return "n/a"
    if unit == "bytes":
        return f"{v / 2 ** 20:.0f} MiB"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def markdown_table(rows: list[Row], info: dict) -> str:
    head = (f"CPU: {info['cpu']}; {info['threads']} threads; {info['date']}; "
            f"numpy {info['numpy']}, torch {info['torch']}, onnxruntime "
            f"{info['onnxruntime'] or 'not installed'}; sgemm roof "
            f"{info['sgemm_gflops']:.0f} GFLOP/s (measured in this run); malloc policy "
            f"{info.get('malloc', 'default')} for both frameworks; convnet's Winograd "
            f"transforms: {info.get('jit', 'numpy')}.\n\n")
    lines = ["| id | workload | unit | convnet | torch | ratio | target | met | "
             "convnet GFLOP/s (% roof) | torch GFLOP/s | note |",
             "|---|---|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in rows:
        if r.id.startswith("W4"):
            target = "≥ 1.0× roof"
        else:
            target = "report" if r.target is None else f"≥ {r.target:g}×"
        met = {True: "yes", False: "no", None: "—"}[r.met]
        gf = "" if r.convnet_gflops is None else (
            f"{r.convnet_gflops:.0f} ({100 * r.roof_frac:.0f}%)" if r.roof_frac is not None
            else f"{r.convnet_gflops:.0f}")
        tgf = "" if r.torch_gflops is None else f"{r.torch_gflops:.0f}"
        ratio = "n/a" if r.ratio is None else f"{r.ratio:.2f}×"
        lines.append(f"| {r.id} | {r.workload} | {r.unit} | {_fmt(r.convnet, r.unit)} | "
                     f"{_fmt(r.torch, r.unit)} | {ratio} | {target} | {met} | {gf} | {tgf} | "
                     f"{r.note} |")
    foot = ("\nratio = convnet's advantage (images/s ÷ torch's; torch's latency or bytes ÷ "
            "convnet's): above 1 means convnet is better.\n")
    return head + "\n".join(lines) + "\n" + foot
