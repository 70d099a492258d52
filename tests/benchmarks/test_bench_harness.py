"""The speed harness runs end to end in its tiny smoke mode and writes a well-formed
Markdown table and JSON.  It reports figures only, so nothing here checks a timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IDS = ["W1", "W2", "W3", "W4", "W5", "W6"]
ROW_KEYS = {"id", "workload", "unit", "convnet", "torch", "ratio", "target", "met",
            "convnet_gflops", "torch_gflops", "roof_gflops", "roof_frac", "note", "better"}


@pytest.fixture(scope="module")
def common():
    """benchmarks.common, imported without leaving its thread variables in os.environ."""
    saved = dict(os.environ)
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import common as mod
    finally:
        sys.path.remove(str(ROOT))
        os.environ.clear()
        os.environ.update(saved)
    return mod


def run_harness(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "smoke.json"
    res = run_harness("-m", "benchmarks", "--smoke", "--json", str(path))
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout, json.loads(path.read_text())


def table_rows(markdown: str) -> list[list[str]]:
    lines = [ln for ln in markdown.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def test_smoke_run_prints_a_markdown_table_with_every_workload(smoke):
    stdout, _ = smoke
    rows = table_rows(stdout)
    header, body = rows[0], rows[1:]
    assert header[:8] == ["id", "workload", "unit", "convnet", "torch", "ratio", "target", "met"]
    assert all(len(r) == len(header) for r in body)
    assert sorted({r[0] for r in body}) == IDS
    assert "sgemm roof" in stdout and "CPU:" in stdout


def test_smoke_json_matches_the_table(smoke):
    stdout, doc = smoke
    keys = {"cpu", "date", "threads", "sgemm_gflops", "numpy", "torch", "malloc", "jit"}
    assert keys <= set(doc["machine"])
    assert doc["machine"]["malloc"] == "default"
    assert "malloc policy default for both frameworks" in stdout
    try:
        import numba
        jit = "numpy" if os.environ.get("CONVNET_JIT") == "0" else f"numba {numba.__version__}"
    except ImportError:
        jit = "numpy"
    assert doc["machine"]["jit"] == jit
    assert f"convnet's Winograd transforms: {jit}." in stdout
    assert doc["machine"]["threads"] == 2 and doc["machine"]["sgemm_gflops"] > 0
    assert doc["settings"]["smoke"] is True
    assert doc["markdown"].strip() in stdout
    rows = doc["rows"]
    assert len(rows) == len(table_rows(stdout)) - 1
    for r in rows:
        assert ROW_KEYS <= set(r), r
        if r["convnet"] is not None and r["torch"] is not None:
            want = (r["convnet"] / r["torch"] if r["better"] == "higher"
                    else r["torch"] / r["convnet"])
            assert r["ratio"] == pytest.approx(want)
    w4 = [r for r in rows if r["id"] == "W4"]
    assert w4 and all(r["convnet_gflops"] > 0 and r["roof_gflops"] > 0 for r in w4)
    assert {r["workload"].split()[-1] for r in w4} == {"fwd", "bwd"}


def test_smoke_rows_are_measured_or_say_why_not(smoke):
    _, doc = smoke
    for r in doc["rows"]:
        if r["convnet"] is None:
            assert r["note"].startswith("n/a: "), r
    measured = {r["id"] for r in doc["rows"] if r["convnet"] is not None}
    assert {"W1", "W2", "W3", "W4", "W5"} <= measured   # W6 is skipped in quick/smoke mode


def test_script_entry_point_and_only(tmp_path):
    path = tmp_path / "w4.json"
    res = run_harness("benchmarks/run.py", "--smoke", "--only", "w4", "--json", str(path))
    assert res.returncode == 0, res.stderr[-2000:]
    assert {r["id"] for r in json.loads(path.read_text())["rows"]} == {"W4"}


def test_unknown_workload_is_a_usage_error():
    res = run_harness("-m", "benchmarks", "--only", "W9")
    assert res.returncode == 2 and "unknown workload" in res.stderr


def test_malloc_policy_retain_and_numpy_transforms_are_recorded_and_bad_values_refused(
        tmp_path):
    path = tmp_path / "w4.json"
    env = dict(os.environ, BENCH_MALLOC="retain", CONVNET_JIT="0")
    res = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--only", "W4", "--json",
                          str(path)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    machine = json.loads(path.read_text())["machine"]
    assert machine["malloc"] in ("retain", "default (not glibc)")
    assert machine["jit"] == "numpy"
    env["BENCH_MALLOC"] = "jemalloc"
    res = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode != 0
    assert "BENCH_MALLOC must be 'retain' or 'default', got 'jemalloc'" in res.stderr
    assert "Traceback" not in res.stderr


def test_ratio_and_target_logic(common):
    up = common.Row("W1", "x", "images/s", 300.0, 100.0, better="higher", target=1.5)
    assert up.ratio == pytest.approx(3.0) and up.met is True
    down = common.Row("W3", "x", "ms", 40.0, 20.0, better="lower", target=1.5)
    assert down.ratio == pytest.approx(0.5) and down.met is False
    conv = common.Row("W4", "x", "ms", 1.0, 1.0, better="lower", convnet_gflops=150.0,
                      roof_gflops=300.0)
    assert conv.roof_frac == pytest.approx(0.5) and conv.met is False
    na = common.na_row("W6", "x", "s", "not here")
    assert na.ratio is None and na.met is None and na.note == "n/a: not here"
    info = {"cpu": "cpu", "threads": 2, "date": "d", "numpy": "n", "torch": "t",
            "onnxruntime": None, "sgemm_gflops": 300.0}
    table = common.markdown_table([up, down, conv, na], info)
    assert "| W4 | x | ms |" in table and "150 (50%)" in table
    assert "onnxruntime not installed" in table


MS = 2.0 ** -10      # a "millisecond" that sums exactly in binary


@pytest.mark.parametrize("warmup, repeats, warm_s, timed_s, untimed, timed", [
    (2, 7, 0.0, 0.0, 2, 7),              # counts alone
    (2, 7, 10 * MS, 0.0, 10, 7),         # untimed calls until 10 ms have passed
    (1, 3, 0.0, 20 * MS, 1, 20),         # timed calls until 20 ms have passed
    (5, 30, 2 * MS, 4 * MS, 5, 30),      # the counts outlast both floors
])
def test_samples_makes_its_calls_until_both_counts_and_seconds_are_reached(
        common, monkeypatch, warmup, repeats, warm_s, timed_s, untimed, timed):
    """On a clock that call i moves by i ms: only the timed calls come back."""
    clock = {"now": 0.0, "calls": 0}
    monkeypatch.setattr(common.time, "perf_counter", lambda: clock["now"])

    def fn():
        clock["calls"] += 1
        clock["now"] += MS if clock["calls"] <= untimed else MS * (clock["calls"] - untimed)

    if timed_s:                          # i ms per timed call: fewer calls fill the floor
        timed = next(k for k in range(1, 100) if MS * k * (k + 1) / 2 >= timed_s)
    got = common.samples(fn, warmup, repeats, warm_s, timed_s)
    timed = max(timed, repeats)
    assert clock["calls"] == untimed + timed
    assert got == pytest.approx([MS * i for i in range(1, timed + 1)])


def test_timeit_is_the_median_of_its_timed_calls(common, monkeypatch):
    clock = {"now": 0.0, "calls": 0}
    monkeypatch.setattr(common.time, "perf_counter", lambda: clock["now"])

    def fn():                            # 100 ms untimed, then 1, 2, ..., 6 ms
        clock["calls"] += 1
        clock["now"] += MS * (100 if clock["calls"] <= 2 else clock["calls"] - 2)

    assert common.timeit(fn, 2, 6) == pytest.approx(3.5 * MS) and clock["calls"] == 8


def test_in_turns_alternates_the_functions_and_takes_each_ones_median(common, monkeypatch):
    """Three functions in two turns: each turn of each warms up, then makes its share of
    the timed calls (and of the timed seconds); the median is over all of one's calls."""
    clock = {"now": 0.0}
    log = []
    monkeypatch.setattr(common.time, "perf_counter", lambda: clock["now"])

    def make(name, step):
        def fn():
            log.append(name)
            clock["now"] += step * MS
        return fn

    got = common.in_turns([make("a", 1), make("b", 2), make("c", 4)], 2, 1, 5,
                          timed_s=8 * MS)
    # per turn: 1 untimed call, then 3 timed (ceil(5 / 2)), and more until 4 ms pass
    a, b, c = ["a"] * 5, ["b"] * 4, ["c"] * 4
    assert log == a + b + c + a + b + c
    assert got == [MS, 2 * MS, 4 * MS]
