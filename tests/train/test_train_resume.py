"""Exact resume, in process: crash a run (an exception from a callback) after a
checkpoint, rebuild everything from scratch, resume -- the per-step losses, the History
and the final weights equal an uninterrupted run's bit for bit.  The run has dropout,
shuffling, augmentation from a second generator, Adam, a schedule and early-stopping
state, so every piece of state has to come back."""

import numpy as np
import pytest

from convnet import data, nn, optim
from convnet.io import CheckpointError, load_checkpoint
from convnet.nn.init import manual_seed
from convnet.train import (
    Callback,
    EarlyStopping,
    StepLogger,
    TrainingCheckpoint,
    fit,
)

N, BATCH, EPOCHS = 40, 8, 3  # 5 steps per epoch, 15 in all


class Crash(Exception):
    pass


class CrashAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, logs):
        if logs["step"] == self.step:
            raise Crash(f"simulated crash after step {self.step}")


def _run(tmp_path, every=None, crash=None, resume=None, batch_size=BATCH):
    rng = manual_seed(11)  # also convnet's default generator
    x = rng.random((N, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, N)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.ReLU(),
                          nn.Dropout(0.3, rng=np.random.default_rng(3)),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 3, rng=rng))
    crop = data.RandomCrop(6, padding=1, rng=np.random.default_rng(5))
    loader = data.DataLoader(data.ArrayDataset(x, y), batch_size=batch_size, shuffle=True,
                             rng=rng, transform=crop)
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.StepLR(opt, step_size=1, gamma=0.7)
    callbacks = [StepLogger(tmp_path / "steps.csv"), EarlyStopping(monitor="loss", patience=9)]
    ckpt = tmp_path / "ckpt.safetensors"
    if every is not None:
        callbacks.append(TrainingCheckpoint(ckpt, every_n_steps=every or None))
    if crash is not None:
        callbacks.append(CrashAt(crash))
    hist = fit(model, loader, optimizer=opt, scheduler=sched, epochs=EPOCHS,
               callbacks=callbacks, verbose=0, resume=resume)
    return model, hist


def _strip(hist):
    return {k: v for k, v in hist.history.items() if k not in ("time", "images_per_sec")}


@pytest.mark.parametrize("every,crash", [
    (3, 8),    # checkpoint at step 6: mid-epoch 2
    (5, 12),   # checkpoint at step 10: after the last batch of epoch 2, before its summary
    (4, 15),   # checkpoint at step 12, crash on the very last step
    (0, 13),   # epoch-end checkpoints only: resume at the start of epoch 3
])
def test_resume_after_a_crash_is_exact(tmp_path, every, crash):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref_dir.mkdir()
    run_dir.mkdir()
    ref_model, ref_hist = _run(ref_dir)
    with pytest.raises(Crash):
        _run(run_dir, every=every, crash=crash)
    lines = (run_dir / "steps.csv").read_text().splitlines()
    assert len(lines) == 1 + crash  # the crashed run logged past its checkpoint
    state = load_checkpoint(run_dir / "ckpt.safetensors")
    assert state["loop"]["step"] < crash
    model, hist = _run(run_dir, every=every, resume=run_dir / "ckpt.safetensors")
    assert (run_dir / "steps.csv").read_text() == (ref_dir / "steps.csv").read_text()
    for (k, a), b in zip(ref_model.state_dict().items(), model.state_dict().values()):
        assert np.array_equal(a, b), k
    assert _strip(hist) == _strip(ref_hist)


def test_checkpoint_holds_every_piece_of_state(tmp_path):
    with pytest.raises(Crash):
        _run(tmp_path, every=3, crash=7)
    state = load_checkpoint(tmp_path / "ckpt.safetensors")
    assert {"model", "optimizer", "scheduler", "loader", "rngs", "loop", "callbacks"} <= set(state)
    assert state["loop"]["step"] == 6 and state["loop"]["epoch"] == 1
    assert state["loop"]["batch"] == 1
    assert state["loader"]["position"] == 1
    assert sorted(state["loader"]["permutation"]) == list(range(N))  # the shuffle order
    assert "default" in state["rngs"]
    assert "model.2.rng" in state["rngs"]  # the dropout layer's own generator
    assert any(path.endswith("transform.rng") for path in state["rngs"])
    assert state["optimizer"]["state"][0]["step"] == 6
    assert state["callbacks"]["EarlyStopping:0"]["best"] is not None


def test_resume_into_a_different_run_is_refused(tmp_path):
    with pytest.raises(Crash):
        _run(tmp_path, every=3, crash=7)
    with pytest.raises(CheckpointError, match="batches per epoch"):
        _run(tmp_path, every=3, resume=tmp_path / "ckpt.safetensors", batch_size=4)
