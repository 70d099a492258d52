"""The fit loop: learning, History, train/eval modes, evaluate, callbacks, loggers and the
progress bar.  (The NaN guard and resuming have their own files.)"""

import csv
import io
import json
import types

import numpy as np
import pytest

import convnet
import convnet.functional as F
from convnet import Tensor, nn, optim
from convnet.train import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    ModelCheckpoint,
    ProgressBar,
    evaluate,
    fit,
)


def quadrant_data(n, rng):
    """6x6 images whose class (0-3) is the bright quadrant; easy to learn."""
    y = rng.integers(0, 4, n)
    x = rng.random((n, 6, 6, 1)).astype(np.float32) * 0.3
    for c, (r, s) in enumerate([(0, 0), (0, 3), (3, 0), (3, 3)]):
        x[y == c, r:r + 3, s:s + 3] += 1.0
    return x, y


def small_cnn(rng):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(36, 4, rng=rng))


def test_fit_learns_and_fills_the_history(rng):
    train, val = quadrant_data(96, rng), quadrant_data(48, rng)
    model = small_cnn(rng)
    opt = optim.Adam(model.parameters(), lr=0.02)
    hist = fit(model, train, val, optimizer=opt, epochs=4, batch_size=16, rng=rng, verbose=0)
    assert len(hist) == 4 and hist.epochs == [1, 2, 3, 4]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time",
                "images_per_sec"):
        assert key in hist and len(hist[key]) == 4, key
    assert hist["loss"][-1] < hist["loss"][0]
    assert hist["val_accuracy"][-1] > 0.9
    assert all(v > 0 for v in hist["images_per_sec"])
    assert hist.best("val_loss") == min(hist["val_loss"])


class ModeProbe(nn.Module):
    """Identity that records (training, grad enabled) each time it runs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, convnet.is_grad_enabled()))
        return x

    def output_shape(self, input_shape):
        return tuple(input_shape)


def test_train_mode_for_steps_eval_mode_and_no_grad_for_validation(rng):
    probe = ModeProbe()
    model = nn.Sequential(nn.Flatten(), probe, nn.Linear(36, 4, rng=rng))
    train, val = quadrant_data(32, rng), quadrant_data(20, rng)
    fit(model, train, val, epochs=2, batch_size=16, verbose=0, rng=rng)
    # per epoch: 2 training batches (train mode, grad on) then 1 validation batch
    assert probe.calls == [(True, True), (True, True), (False, False)] * 2
    assert model.training
    model.eval()
    evaluate(model, val)
    assert not model.training and convnet.is_grad_enabled()


def test_evaluate_matches_a_manual_computation(rng):
    x, y = quadrant_data(70, rng)
    model = small_cnn(rng)
    res = evaluate(model, (x, y), batch_size=32, topk=(2, 4))
    with convnet.no_grad():
        logits = model(Tensor(x)).data
    loss = float(F.cross_entropy(Tensor(logits.astype(np.float64)), y).data)
    assert res["loss"] == pytest.approx(loss, rel=1e-5)
    assert res["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))
    assert "top4_accuracy" not in res  # k >= number of classes is skipped
    order = np.argsort(-logits, axis=1)
    assert res["top2_accuracy"] == pytest.approx(np.mean([t in o[:2] for t, o in zip(y, order)]))
    cm = res["confusion_matrix"]
    assert cm.shape == (4, 4) and cm.sum() == 70 and res["num_samples"] == 70
    assert np.trace(cm) == int(np.sum(logits.argmax(1) == y))
    text = res.to_text()
    assert "confusion matrix" in text and "accuracy" in text
    json.dumps(res.to_json(), allow_nan=False)


def test_early_stopping_stops_after_patience(rng):
    model = small_cnn(rng)
    opt = optim.SGD(model.parameters(), lr=0.0)  # nothing improves
    stop = EarlyStopping(monitor="val_loss", patience=2)
    hist = fit(model, quadrant_data(32, rng), quadrant_data(16, rng), optimizer=opt, epochs=10,
               batch_size=16, callbacks=[stop], verbose=0, rng=rng)
    assert len(hist) == 3 and stop.stopped_epoch == 3
    assert hist.stop_reason.startswith("early stopping: val_loss")


def test_early_stopping_restores_best_weights(rng):
    model = small_cnn(rng)
    stop = EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=True)
    stop.on_epoch_end(types.SimpleNamespace(model=model), 1, {"val_accuracy": 0.9})
    best = model.state_dict()
    for p in model.parameters():
        p.data = p.data + 1
    trainer = types.SimpleNamespace(model=model, stop_training=False, stop_reason=None)
    stop.on_epoch_end(trainer, 2, {"val_accuracy": 0.5})
    assert trainer.stop_training
    stop.on_train_end(trainer, {})
    assert all(np.array_equal(best[k], v) for k, v in model.state_dict().items())
    with pytest.raises(KeyError, match="val_loss"):
        EarlyStopping().on_epoch_end(trainer, 1, {"loss": 1.0})


@pytest.mark.parametrize("save,expected", [("best", [1, 2, 4]), ("last", [1, 2, 3, 4])])
def test_model_checkpoint_best_or_last(tmp_path, rng, save, expected):
    model = small_cnn(rng)
    trainer = types.SimpleNamespace(model=model)
    cb = ModelCheckpoint(tmp_path / "e{epoch}.safetensors", save=save, metadata={"k": 1})
    for epoch, loss in enumerate([0.5, 0.4, 0.45, 0.3], start=1):
        cb.on_epoch_end(trainer, epoch, {"val_loss": loss})
    assert cb.saved_epochs == expected
    loaded, meta = convnet.load(tmp_path / f"e{expected[-1]}.safetensors", with_metadata=True)
    assert meta["k"] == 1 and meta["epoch"] == expected[-1]
    assert np.array_equal(loaded[0].weight.data, model[0].weight.data)


def test_loggers_write_every_epoch(tmp_path, rng):
    csv_path, json_path = tmp_path / "m.csv", tmp_path / "m.json"
    fit(small_cnn(rng), quadrant_data(32, rng), quadrant_data(16, rng), epochs=3, batch_size=16,
        callbacks=[CSVLogger(csv_path), JSONLogger(json_path, {"run": "x"})], verbose=0, rng=rng)
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"loss", "val_accuracy", "lr"} <= set(rows[0])
    doc = json.load(open(json_path))
    assert doc["run"] == "x" and doc["epochs"] == [1, 2, 3]
    assert len(doc["history"]["val_loss"]) == 3


def test_scheduler_per_epoch_and_lr_in_history(rng):
    model = small_cnn(rng)
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    hist = fit(model, quadrant_data(32, rng), epochs=3, batch_size=16, optimizer=opt,
               scheduler=sched, verbose=0, rng=rng)
    assert hist["lr"] == pytest.approx([0.1, 0.05, 0.025])


def test_progress_bar_shows_loss_accuracy_and_throughput(rng):
    stream = io.StringIO()
    fit(small_cnn(rng), quadrant_data(32, rng), epochs=2, batch_size=16, rng=rng,
        callbacks=[ProgressBar(stream=stream, force=True)])
    out = stream.getvalue()
    assert "epoch 2/2" in out and "loss=" in out and "acc=" in out and "img/s" in out


def test_progress_bar_is_quiet_off_a_terminal(rng, capsys):
    quiet = io.StringIO()
    bar = ProgressBar(stream=quiet)
    assert not bar.enabled and not ProgressBar(verbose=0, force=True).enabled
    fit(small_cnn(rng), quadrant_data(32, rng), epochs=1, batch_size=16, rng=rng,
        callbacks=[bar], verbose=1)
    assert quiet.getvalue() == ""
    assert capsys.readouterr().out == ""  # pytest's stdout is not a TTY


def test_callback_hook_order(rng):
    events = []

    class Recorder(Callback):
        def on_train_begin(self, trainer):
            events.append("begin")

        def on_epoch_begin(self, trainer, epoch):
            events.append(f"epoch{epoch}")

        def on_after_backward(self, trainer, loss):
            events.append("backward")

        def on_batch_end(self, trainer, logs):
            events.append(f"batch{logs['step']}")

        def on_epoch_end(self, trainer, epoch, logs):
            events.append(f"end{epoch}")

        def on_train_end(self, trainer, logs):
            events.append("done")

    fit(small_cnn(rng), quadrant_data(20, rng), epochs=2, batch_size=10, rng=rng, verbose=0,
        callbacks=[Recorder()])
    assert events == ["begin", "epoch0", "backward", "batch1", "backward", "batch2", "end1",
                      "epoch1", "backward", "batch3", "backward", "batch4", "end2", "done"]


@pytest.mark.parametrize("kwargs,err,match", [
    ({"epochs": 0}, ValueError, "epochs"),
    ({"batch_size": -1}, ValueError, "batch_size"),
    ({"verbose": 5}, ValueError, "verbose"),
    ({"callbacks": [object()]}, TypeError, "Callback"),
    ({"loss": "hinge"}, ValueError, "unknown loss"),
    ({"loss": 3}, TypeError, "callable"),
])
def test_fit_rejects_bad_arguments(rng, kwargs, err, match):
    kwargs = {"verbose": 0, **kwargs}
    with pytest.raises(err, match=match):
        fit(small_cnn(rng), quadrant_data(8, rng), **kwargs)


def test_fit_accepts_dataset_and_loader(rng):
    from convnet import data

    x, y = quadrant_data(24, rng)
    ds = data.ArrayDataset(x, y)
    loader = data.DataLoader(ds, batch_size=8, shuffle=True, rng=rng)
    for train in (ds, loader):
        hist = fit(small_cnn(rng), train, epochs=1, batch_size=8, verbose=0, rng=rng)
        assert len(hist) == 1
    with pytest.raises(TypeError, match="DataLoader"):
        fit(small_cnn(rng), 42, verbose=0)


def test_fit_and_evaluate_a_model_that_is_not_a_classifier(rng):
    """An autoencoder with MSE: only the loss is tracked, nothing crashes."""
    x = rng.random((32, 6, 6, 1)).astype(np.float32)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.ReLU(),
                          nn.Conv2d(4, 1, 3, padding=1, rng=rng))
    hist = fit(model, (x, x), (x[:8], x[:8]), loss=F.mse_loss, epochs=3, batch_size=8,
               optimizer=optim.Adam(model.parameters(), lr=0.01), verbose=0, rng=rng)
    assert hist["loss"][-1] < hist["loss"][0]
    assert np.isnan(hist["accuracy"][0]) and "val_loss" in hist
    res = evaluate(model, (x, x), loss=F.mse_loss)
    assert set(res) == {"loss", "num_samples"} and res["num_samples"] == 32
    with convnet.no_grad():
        expected = float(np.mean((model(Tensor(x)).data - x) ** 2))
    assert res["loss"] == pytest.approx(expected, rel=1e-5)
    assert "confusion" not in res.to_text()
