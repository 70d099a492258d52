"""The execution model of ops.threads: ``owned()`` (one BLAS thread while convnet runs)
and ``matmul`` (one GEMM cut into bands on the pool)."""

from __future__ import annotations

import numpy as np
import pytest

import convnet
from convnet import nn
from convnet.ops import threads

needs_blas = pytest.mark.skipif(not threads._blas(),
                                reason="no controllable OpenBLAS in this NumPy")


@pytest.fixture
def two_threads(monkeypatch):
    """Two pool threads and a tiny split threshold, so every product below is cut."""
    prev = threads.num_threads()
    threads.set_num_threads(2)
    monkeypatch.setattr(threads, "PARALLEL_FLOPS", 1)
    yield
    threads.set_num_threads(prev)


@pytest.mark.parametrize("sa, sb", [
    ((37, 11), (11, 5)),           # rows cut
    ((5, 11), (11, 41)),           # columns cut
    ((1, 23), (23, 7)),            # a row vector: K cut, partial sums added in order
    ((4, 23), (23, 6)),            # up to four rows: K cut
    ((5, 7, 11), (5, 11, 3)),      # batch cut
    ((7, 11), (5, 11, 3)),         # left operand broadcast over the batch
    ((1, 19, 4), (4, 9)),          # batch of one: rows cut
    ((2, 3, 4), (4, 1)),           # too small to cut
    ((9,), (9, 4)),                # a vector: plain matmul
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_equals_numpy(sa, sb, dtype, two_threads, rng):
    a = rng.standard_normal(sa).astype(dtype)
    b = rng.standard_normal(sb).astype(dtype)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    with threads.owned():
        got = threads.matmul(a, b)
    assert got.shape == want.shape and got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def test_matmul_writes_into_out_and_views(two_threads, rng):
    a = rng.standard_normal((40, 30)).T             # a transposed view, (30, 40)
    b = rng.standard_normal((40, 50))[:, ::2]       # a strided view, (40, 25)
    out = np.full((30, 25), np.nan)
    assert threads.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sa, sb", [((64, 33), (33, 17)), ((1, 33), (33, 17))])
def test_matmul_is_repeatable_bit_for_bit(sa, sb, two_threads, rng):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    first = threads.matmul(a, b)
    for _ in range(5):
        assert np.array_equal(threads.matmul(a, b), first)


def test_row_vector_products_cut_k_over_strided_operands(two_threads, rng):
    """The K cut reads bands of b's rows: a transposed b (a dx pass's w.T) works too."""
    a = rng.standard_normal((2, 30))
    w = rng.standard_normal((20, 30))
    out = np.full((2, 20), np.nan)
    assert threads.matmul(a, w.T, out=out) is out
    np.testing.assert_allclose(out, a @ w.T, rtol=1e-12, atol=1e-12)


@needs_blas
def test_memory_bound_products_are_cut_by_their_bytes(monkeypatch, rng):
    """A matrix-vector product has few FLOPs per byte: it goes to the pool once its
    operands reach PARALLEL_BYTES, whatever its FLOPs."""
    prev = threads.num_threads()
    threads.set_num_threads(2)
    calls = []
    real = threads.run_blocks
    monkeypatch.setattr(threads, "run_blocks", lambda fn, blocks: calls.append(1) or
                        real(fn, blocks))
    monkeypatch.setattr(threads, "PARALLEL_FLOPS", 1 << 60)
    a, b = rng.standard_normal((1, 64)), rng.standard_normal((64, 48))
    try:
        monkeypatch.setattr(threads, "PARALLEL_BYTES", 1 << 60)
        threads.matmul(a, b)
        assert calls == []
        monkeypatch.setattr(threads, "PARALLEL_BYTES", (a.size + b.size) * 8)
        np.testing.assert_allclose(threads.matmul(a, b), a @ b, rtol=1e-12, atol=1e-12)
        assert calls == [1]
    finally:
        threads.set_num_threads(prev)


@needs_blas
def test_owned_sets_one_blas_thread_and_restores_it():
    getters = [get for _, get in threads._blas()]
    before = [get() for get in getters]
    with threads.owned():
        assert [get() for get in getters] == [1] * len(getters)
        with threads.owned():                          # re-entrant
            assert [get() for get in getters] == [1] * len(getters)
        assert [get() for get in getters] == [1] * len(getters)
    assert [get() for get in getters] == before


@needs_blas
def test_blas_threads_gives_the_blas_its_threads_back_inside_owned():
    getters = [get for _, get in threads._blas()]
    before = [get() for get in getters]
    with threads.blas_threads():                       # outside owned(): nothing changes
        assert [get() for get in getters] == before
    with threads.owned():
        with threads.blas_threads():
            assert [get() for get in getters] == before
        assert [get() for get in getters] == [1] * len(getters)
        with pytest.raises(ZeroDivisionError):
            with threads.blas_threads():
                1 / 0
        assert [get() for get in getters] == [1] * len(getters)
    assert [get() for get in getters] == before


@needs_blas
def test_owned_restores_after_an_exception():
    getters = [get for _, get in threads._blas()]
    before = [get() for get in getters]
    with pytest.raises(ZeroDivisionError):
        with threads.owned():
            1 / 0
    assert [get() for get in getters] == before


@needs_blas
def test_thread_count_first_read_inside_owned_is_the_blas_count(monkeypatch):
    """The pool's size must not be read from the BLAS while owned() has set it to 1."""
    before = threads._blas()[0][1]()
    monkeypatch.setitem(threads._exec, "threads", None)
    with threads.owned():
        assert threads.num_threads() == max(1, before)


@needs_blas
def test_tape_runs_ops_with_one_blas_thread(monkeypatch):
    """Forward and backward through the tape run inside owned(): the BLAS reads 1 there."""
    seen = []
    real = threads.matmul

    def spy(a, b, out=None):
        seen.append(threads._blas()[0][1]())
        return real(a, b, out=out)

    monkeypatch.setattr("convnet.ops.linear.matmul", spy)
    layer = nn.Linear(4, 3)
    loss = layer(convnet.Tensor(np.ones((2, 4), np.float32))).sum()
    loss.backward()
    assert len(seen) == 2 and set(seen) == {1}      # forward and dW (the input needs no dx)


# ---- the pool -----------------------------------------------------------------------

def test_run_blocks_keeps_block_order_and_runs_every_block(two_threads):
    seen = []
    got = threads.run_blocks(lambda b: seen.append(b) or b * b, range(50))
    assert got == [b * b for b in range(50)]
    assert sorted(seen) == list(range(50))


def test_run_blocks_reraises_a_block_error_on_the_caller(two_threads):
    def fn(b):
        if b == 7:
            raise KeyError("block 7")
        return b
    with pytest.raises(KeyError, match="block 7"):
        threads.run_blocks(fn, range(20))
    assert threads.run_blocks(lambda b: b, range(4)) == [0, 1, 2, 3]   # the pool still works


def test_nested_run_blocks_run_in_turn_inside_a_block(two_threads):
    inner = threads.run_blocks(lambda b: threads.run_blocks(lambda c: (b, c), range(3)), range(4))
    assert inner == [[(b, c) for c in range(3)] for b in range(4)]


def test_two_caller_threads_share_the_pool(two_threads, rng):
    """A caller that finds the pool busy runs its blocks itself; both get right answers."""
    import threading
    a, b = rng.standard_normal((200, 30)), rng.standard_normal((30, 40))
    want = a @ b
    results, errors = [], []

    def caller():
        try:
            for _ in range(20):
                results.append(np.allclose(threads.matmul(a, b), want, rtol=1e-12, atol=1e-12))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    callers = [threading.Thread(target=caller) for _ in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert not errors and len(results) == 60 and all(results)
