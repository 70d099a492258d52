"""The NaN/Inf guard: it stops before the bad update and names step, epoch and layer."""

import numpy as np
import pytest

from convnet import Function, nn, optim
from convnet.train import Callback, NaNGuard, NonFiniteError, fit


class _PoisonFn(Function):
    def forward(self, x, armed):
        self.armed = armed
        return x.copy()

    def backward(self, dout):
        if self.armed:
            return (dout * np.inf,)  # the gradient blows up inside this layer
        return (dout,)


class Poison(nn.Module):
    """Identity whose backward pass returns inf once ``armed`` is set."""

    def __init__(self):
        super().__init__()
        self.armed = False

    def forward(self, x):
        return _PoisonFn.apply(x, armed=self.armed)

    def output_shape(self, input_shape):
        return tuple(input_shape)


class ArmAt(Callback):
    """Arm the poison so that optimizer step ``step`` gets a non-finite gradient."""

    def __init__(self, poison, step):
        self.poison, self.step = poison, step

    def on_batch_end(self, trainer, logs):
        if logs["step"] == self.step - 1:
            self.poison.armed = True


def _data(rng, n=40):
    x = rng.standard_normal((n, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _model(rng, poison):
    # 'fc1' -> poison -> relu -> 'fc2': the poisoned backward pass leaves fc2's gradient
    # finite and makes fc1's infinite, so fc1 is the first layer to go non-finite.
    from collections import OrderedDict

    return nn.Sequential(OrderedDict([("fc1", nn.Linear(6, 8, rng=rng)), ("poison", poison),
                                      ("relu", nn.ReLU()), ("fc2", nn.Linear(8, 2, rng=rng))]))


def test_guard_names_step_epoch_and_layer_and_skips_the_update(rng):
    poison = Poison()
    model = _model(rng, poison)
    guard = NaNGuard()
    seen = {}

    class Snapshot(Callback):
        def on_batch_end(self, trainer, logs):
            seen[logs["step"]] = model.state_dict()

    # 40 samples / batch 8 = 5 steps per epoch; step 7 is epoch 2, batch 2
    hist = fit(model, _data(rng), epochs=5, batch_size=8, rng=rng, verbose=0,
               optimizer=optim.SGD(model.parameters(), lr=0.1),
               callbacks=[ArmAt(poison, 7), guard, Snapshot()])
    msg = guard.message
    assert msg.startswith("NaNGuard: non-finite gradient at step 7 (epoch 2, batch 2)")
    assert "layer 'fc1' (Linear), parameters 'weight', 'bias'" in msg
    assert guard.layer == "fc1"
    assert hist.stop_reason == msg
    assert max(seen) == 6 and len(hist) == 1  # stopped in epoch 2, before its summary
    after = model.state_dict()
    assert all(np.array_equal(seen[6][k], after[k]) for k in after)  # no poisoned update
    assert all(np.all(np.isfinite(v)) for v in after.values())


def test_guard_reports_a_non_finite_loss(rng):
    calls = {"n": 0}

    def loss_fn(out, y):
        import convnet.functional as F

        calls["n"] += 1
        loss = F.cross_entropy(out, y)
        return loss * np.float32(np.nan) if calls["n"] == 3 else loss

    model = _model(rng, Poison())
    guard = NaNGuard()
    hist = fit(model, _data(rng), epochs=2, batch_size=8, rng=rng, verbose=0, loss=loss_fn,
               callbacks=[guard])
    assert "step 3 (epoch 1, batch 3)" in guard.message and "loss = nan" in guard.message
    # every gradient is NaN; the first to go non-finite in the backward pass is the last
    # layer's
    assert "layer 'fc2' (Linear)" in guard.message
    assert hist.stop_reason == guard.message


def test_guard_can_raise(rng):
    poison = Poison()
    model = _model(rng, poison)
    with pytest.raises(NonFiniteError, match=r"step 2 \(epoch 1, batch 2\).*'fc1'"):
        fit(model, _data(rng), epochs=1, batch_size=8, rng=rng, verbose=0,
            callbacks=[ArmAt(poison, 2), NaNGuard(raise_error=True)])


def test_guard_catches_divergence(rng):
    x = rng.standard_normal((64, 6)).astype(np.float32) * 100
    y = rng.integers(0, 2, 64)
    model = _model(rng, Poison())
    guard = NaNGuard()
    hist = fit(model, (x, y), epochs=50, batch_size=8, rng=rng, verbose=0,
               optimizer=optim.SGD(model.parameters(), lr=1e30), callbacks=[guard])
    assert guard.message is not None and "NaNGuard: non-finite" in guard.message
    assert len(hist) < 50 and hist.stop_reason == guard.message


def test_finite_run_is_untouched(rng):
    guard = NaNGuard()
    hist = fit(_model(rng, Poison()), _data(rng), epochs=2, batch_size=8, rng=rng, verbose=0,
               callbacks=[guard])
    assert guard.message is None and hist.stop_reason is None and len(hist) == 2
