"""Metrics against naive loop references (and scikit-learn for the confusion matrix)."""

import numpy as np
import pytest

from convnet.train import (
    MetricAccumulator,
    accuracy,
    confusion_matrix,
    per_class_metrics,
    topk_accuracy,
)


def _naive_topk(scores, targets, k):
    hits = 0
    for s, t in zip(scores, targets):
        higher = sum(1 for v in s if v > s[t])
        hits += higher < k
    return hits / len(targets)


def _naive_confusion(y_true, y_pred, c):
    cm = np.zeros((c, c), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    return cm


@pytest.mark.parametrize("k", [1, 2, 3, 5, 10])
def test_topk_against_a_loop(rng, k):
    scores = rng.standard_normal((200, 10))
    targets = rng.integers(0, 10, 200)
    assert topk_accuracy(scores, targets, k) == pytest.approx(_naive_topk(scores, targets, k))
    if k == 1:
        assert accuracy(scores, targets) == pytest.approx(np.mean(scores.argmax(1) == targets))


def test_topk_ties_count_against_the_target():
    scores = np.array([[1.0, 1.0, 0.0]])
    assert topk_accuracy(scores, [1], k=1) == 1.0  # nothing scores strictly higher
    assert topk_accuracy(np.array([[2.0, 1.0, 1.0]]), [2], k=1) == 0.0


def test_confusion_matrix_against_loop_and_sklearn(rng):
    from sklearn.metrics import confusion_matrix as sk_cm

    y_true, y_pred = rng.integers(0, 6, 300), rng.integers(0, 6, 300)
    cm = confusion_matrix(y_true, y_pred, 6)
    assert np.array_equal(cm, _naive_confusion(y_true, y_pred, 6))
    assert np.array_equal(cm, sk_cm(y_true, y_pred, labels=range(6)))
    pcm = per_class_metrics(cm)
    assert pcm["recall"][2] == pytest.approx(cm[2, 2] / cm[2].sum())
    assert pcm["precision"][2] == pytest.approx(cm[2, 2] / cm[:, 2].sum())


def test_accumulator_over_batches_equals_one_shot(rng):
    scores = rng.standard_normal((103, 7))
    targets = rng.integers(0, 7, 103)
    losses = rng.random(103)
    acc = MetricAccumulator(topk=(3,), confusion=True)
    for i in range(0, 103, 16):
        sl = slice(i, i + 16)
        acc.update(scores[sl], targets[sl], float(losses[sl].mean()))
    res = acc.result()
    assert res["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == targets))
    assert res["top3_accuracy"] == pytest.approx(_naive_topk(scores, targets, 3))
    assert res["loss"] == pytest.approx(losses.mean())
    assert np.array_equal(acc.cm, _naive_confusion(targets, scores.argmax(1), 7))
    restored = MetricAccumulator(topk=(3,), confusion=True)
    restored.load_state_dict(acc.state_dict())
    assert restored.result() == res


@pytest.mark.parametrize("targets,match", [
    (np.array([0, 1]), r"shape \(3,\)"),
    (np.array([0, 1, 9]), "outside"),
    (np.array([0, -1, 2]), "outside"),
    (np.array([0.5, 1, 2]), "integer"),
    (np.array(["a", "b", "c"]), "integer"),
])
def test_bad_targets_are_named(targets, match):
    with pytest.raises(ValueError, match=match):
        accuracy(np.zeros((3, 4)), targets)


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must be"):
        topk_accuracy(np.zeros((2, 3)), [0, 1], k=0)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        accuracy(np.zeros(3), [0, 1, 2])
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 5], [0, 1], num_classes=3)
