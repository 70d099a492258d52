"""Plots: curves, confusion matrices, filters and activation maps (Agg backend)."""

import numpy as np
import pytest

from convnet import nn
from convnet.train import History
from convnet.viz import (
    capture_activation,
    plot_activations,
    plot_confusion_matrix,
    plot_curves,
    plot_filters,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _history():
    h = History()
    for e, (loss, acc) in enumerate([(2.0, 0.3), (1.0, 0.6), (0.5, 0.8)], start=1):
        h.append(e, {"loss": loss, "accuracy": acc, "val_loss": loss + 0.1,
                     "val_accuracy": acc - 0.05})
    return h


def test_curves_png_from_history_and_from_json_dict(tmp_path):
    import matplotlib

    fig = plot_curves(_history(), tmp_path / "curves.png", title="run")
    assert matplotlib.get_backend().lower() == "agg"
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG
    ax_loss, ax_acc = fig.axes[:2]
    assert [ln.get_label() for ln in ax_loss.get_lines()] == ["train", "validation"]
    assert list(ax_acc.get_lines()[0].get_ydata()) == [0.3, 0.6, 0.8]
    plot_curves(_history().to_dict(), tmp_path / "again.png")  # e.g. a parsed metrics.json
    assert (tmp_path / "again.png").read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_confusion_matrix_plot(tmp_path):
    cm = np.array([[5, 1], [0, 4]])
    fig = plot_confusion_matrix(cm, ["cat", "dog"], tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:8] == PNG
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["5", "1", "0", "4"]
    fig = plot_confusion_matrix(cm, normalize=True)
    assert [t.get_text() for t in fig.axes[0].texts][:2] == ["0.83", "0.17"]
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="names"):
        plot_confusion_matrix(cm, ["a"])


def test_filters_plot(tmp_path, rng):
    conv = nn.Conv2d(3, 10, 5, rng=rng)
    fig = plot_filters(conv, tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG
    assert sum(ax.get_images() != [] for ax in fig.axes) == 10
    plot_filters(nn.Conv2d(4, 6, 3, rng=rng), channel=2)
    with pytest.raises(ValueError, match="HWIO"):
        plot_filters(nn.Linear(3, 2, rng=rng))


def test_activation_capture_and_plot(tmp_path, rng):
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(6 * 4 * 4, 3, rng=rng))
    x = rng.random((8, 8, 1)).astype(np.float32)
    act = capture_activation(model, x[None], "1")
    w = model[0].weight.data
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    ref = np.zeros((8, 8, 6))
    for i in range(8):
        for j in range(8):
            ref[i, j] = np.tensordot(xp[i:i + 3, j:j + 3], w, axes=3) + model[0].bias.data
    np.testing.assert_allclose(act[0], np.maximum(ref, 0), rtol=1e-4, atol=1e-5)
    assert model.training  # the mode is restored
    assert "forward" not in model[1].__dict__  # the recording hook is removed
    fig = plot_activations(model, x, "2", tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG
    assert "4x4x6" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="no layer named 'conv9'"):
        plot_activations(model, x, "conv9")
    with pytest.raises(ValueError, match="only"):
        plot_activations(model, x, "4")
