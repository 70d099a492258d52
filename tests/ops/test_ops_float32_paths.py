"""Float32 stays float32 inside the ops, not just at their outputs: a float64 temporary
the size of the data doubles the memory traffic of a float32 model.  Each forward and
backward pair runs on float32 arrays of a spying ndarray subclass (every array derived
from them by a ufunc, an operator or a method is checked) while the op module's ``np``
is a proxy that checks what NumPy's functions return.  Per-axis index or weight vectors
(1-D) are allowed; anything of 2 or more dims in float64 is a leak.  Then the outputs
and gradients of every pair keep float32 and float64 alike."""

from __future__ import annotations

import types

import numpy as np
import pytest

from convnet.ops import activation as act_ops
from convnet.ops import conv_transpose as ct_ops
from convnet.ops import convnd as nd_ops
from convnet.ops import dropout as drop_ops
from convnet.ops import linear as linear_ops
from convnet.ops import local as local_ops
from convnet.ops import loss as loss_ops
from convnet.ops import norm as norm_ops
from convnet.ops import pad as pad_ops
from convnet.ops import pool as pool_ops
from convnet.ops import upsample as up_ops

MODULES = [act_ops, ct_ops, nd_ops, drop_ops, linear_ops, local_ops, loss_ops, norm_ops,
           pad_ops, pool_ops, up_ops]
LEAKS: list = []


def _check(result, where):
    for r in result if isinstance(result, tuple) else (result,):
        if isinstance(r, np.ndarray) and r.dtype == np.float64 and r.ndim >= 2:
            LEAKS.append((where, r.shape))
    return result


class Spy(np.ndarray):
    def __array_finalize__(self, obj):
        if self.dtype == np.float64 and self.ndim >= 2:
            LEAKS.append(("a ufunc, operator or method", self.shape))


class _Wrapped:
    def __init__(self, fn, name):
        self._fn, self._name = fn, name

    def __call__(self, *args, **kwargs):
        return _check(self._fn(*args, **kwargs), f"np.{self._name}")

    def __getattr__(self, attr):                     # ufunc methods: reduceat, at, ...
        return getattr(self._fn, attr)


class NumpyProxy(types.SimpleNamespace):
    def __getattr__(self, name):
        attr = getattr(np, name)
        if callable(attr) and not isinstance(attr, type):     # functions, ufuncs, dispatchers
            return _Wrapped(attr, name)
        return attr


@pytest.fixture
def spy(monkeypatch):
    for mod in MODULES:
        if hasattr(mod, "np"):
            monkeypatch.setattr(mod, "np", NumpyProxy())
    LEAKS.clear()
    yield LEAKS


def arr(rng, *shape, dtype=np.float32, positive=False):
    a = rng.standard_normal(shape)
    return (np.abs(a) + 0.5 if positive else a).astype(dtype).view(Spy)


def pairs(rng, dt):
    """(name, forward thunk, backward) for every op pair; arrays of dtype ``dt``."""
    def a(*shape, positive=False):
        return arr(rng, *shape, dtype=dt, positive=positive)

    x4, x3, x5, z = a(2, 6, 5, 4), a(2, 9, 4), a(2, 4, 5, 3, 4), a(6, 5)
    y = np.array([0, 1, 4, 2, 3, 1])
    out = [
        ("relu", lambda: act_ops.relu_forward(x4), act_ops.relu_backward),
        ("leaky_relu", lambda: act_ops.leaky_relu_forward(x4, 0.1), act_ops.leaky_relu_backward),
        ("elu", lambda: act_ops.elu_forward(x4, 1.5), act_ops.elu_backward),
        ("sigmoid", lambda: act_ops.sigmoid_forward(x4), act_ops.sigmoid_backward),
        ("tanh", lambda: act_ops.tanh_forward(x4), act_ops.tanh_backward),
        ("gelu", lambda: act_ops.gelu_forward(x4), act_ops.gelu_backward),
        ("gelu tanh", lambda: act_ops.gelu_forward(x4, "tanh"), act_ops.gelu_backward),
        ("softmax", lambda: act_ops.softmax_forward(x4, 1), act_ops.softmax_backward),
        ("log_softmax", lambda: act_ops.log_softmax_forward(x4), act_ops.log_softmax_backward),
        ("linear", lambda: linear_ops.linear_forward(x4, a(4, 3), a(3)),
         linear_ops.linear_backward),
        ("max_pool2d", lambda: pool_ops.max_pool2d_forward(x4, (3, 2), (2, 2), ((1, 1), (0, 1)),
                                                           (1, 1), True),
         pool_ops.max_pool2d_backward),
        ("max_pool2d tiles", lambda: pool_ops.max_pool2d_forward(x4, (2, 2), (2, 2),
                                                                 ((0, 0), (0, 0))),
         pool_ops.max_pool2d_backward),
        ("avg_pool2d", lambda: pool_ops.avg_pool2d_forward(x4, (3, 2), (2, 2), ((1, 1), (0, 1)),
                                                           True, False),
         pool_ops.avg_pool2d_backward),
        ("avg_pool2d tiles", lambda: pool_ops.avg_pool2d_forward(x4, (2, 2), (2, 2),
                                                                 ((0, 0), (0, 0))),
         pool_ops.avg_pool2d_backward),
        ("global_avg_pool2d", lambda: pool_ops.global_avg_pool2d_forward(x4),
         pool_ops.global_avg_pool2d_backward),
        ("global_max_pool2d", lambda: pool_ops.global_max_pool2d_forward(x4),
         pool_ops.global_max_pool2d_backward),
        ("batch_norm train", lambda: norm_ops.batch_norm_train_forward(x4, a(4), a(4))[:2],
         norm_ops.batch_norm_backward),
        ("batch_norm eval", lambda: norm_ops.batch_norm_eval_forward(
            x4, a(4), a(4), a(4), a(4, positive=True)), norm_ops.batch_norm_backward),
        ("layer_norm", lambda: norm_ops.layer_norm_forward(x4, a(5, 4), a(5, 4), 2),
         norm_ops.layer_norm_backward),
        ("group_norm", lambda: norm_ops.group_norm_forward(x4, a(4), a(4), 2),
         norm_ops.group_norm_backward),
        ("dropout", lambda: drop_ops.dropout_forward(x4, 0.3, np.random.default_rng(0)),
         drop_ops.dropout_backward),
        ("conv_transpose2d", lambda: ct_ops.conv_transpose2d_forward(
            x4, a(3, 3, 2, 4), a(4), (2, 2), ((1, 0), (1, 1)), (1, 0), (1, 1), 2),
         ct_ops.conv_transpose2d_backward),
        ("local2d", lambda: local_ops.local2d_forward(x4, a(3, 2, 2, 2, 4, 3), a(3, 2, 3),
                                                      (2, 2), ((0, 0), (0, 0))),
         local_ops.local2d_backward),
        ("conv1d", lambda: nd_ops.conv1d_forward(x3, a(3, 2, 4), a(4), (2,), ((1, 2),), (2,), 2),
         nd_ops.conv1d_backward),
        ("conv3d", lambda: nd_ops.conv3d_forward(x5, a(2, 2, 2, 2, 6), a(6), (1, 2, 1),
                                                 ((1, 0), (0, 1), (1, 1)), (1, 1, 2), 2),
         nd_ops.conv3d_backward),
        ("max_pool3d", lambda: nd_ops.max_pool3d_forward(x5, (2, 2, 2), (2, 2, 2),
                                                         ((1, 1),) * 3, (1, 1, 1), (3, 3, 2)),
         nd_ops.max_pool3d_backward),
        ("interpolate nearest", lambda: up_ops.interpolate_forward(x4, (9, 7), "nearest"),
         up_ops.interpolate_backward),
        ("interpolate linear", lambda: up_ops.interpolate_forward(x4, (9, 3), "linear", True),
         up_ops.interpolate_backward),
        ("unpool2d", lambda: up_ops.unpool2d_forward(x4, (2, 3)), up_ops.unpool2d_backward),
    ]
    for mode in pad_ops.MODES:
        out.append((f"pad {mode}", lambda m=mode: pad_ops.pad_forward(x4, ((1, 2), (2, 1)), m),
                    pad_ops.pad_backward))
    for red in loss_ops.REDUCTIONS:
        out += [
            (f"cross_entropy {red}", lambda r=red: loss_ops.softmax_loss_forward(
                z, *loss_ops.cross_entropy_index_coef(y, 5, dt, a(5), 1, 0.1)[:1], r, 4.0),
             loss_ops.softmax_loss_backward),
            (f"cross_entropy probs {red}", lambda r=red: loss_ops.softmax_loss_forward(
                z, loss_ops.cross_entropy_prob_coef(a(6, 5, positive=True), a(5), 0.2)[0], r, 6),
             loss_ops.softmax_loss_backward),
            (f"nll {red}", lambda r=red: loss_ops.nll_loss_forward(z, y, a(5), 1, r),
             loss_ops.nll_loss_backward),
            (f"multi_margin p=1 {red}", lambda r=red: loss_ops.multi_margin_loss_forward(
                z, y, 1, 1.0, a(5), r), loss_ops.multi_margin_loss_backward),
            (f"multi_margin p=2 {red}", lambda r=red: loss_ops.multi_margin_loss_forward(
                z, y, 2, 0.5, None, r), loss_ops.multi_margin_loss_backward),
            (f"mse {red}", lambda r=red: loss_ops.mse_loss_forward(z, a(6, 5), r),
             loss_ops.mse_loss_backward),
            (f"bce {red}", lambda r=red: loss_ops.bce_with_logits_forward(z, a(6, 5), a(5), a(5),
                                                                          r),
             loss_ops.bce_with_logits_backward),
        ]
    return out


def _run(fwd, bwd, rng, dt):
    out, cache = fwd()
    dout = np.asarray(rng.standard_normal(np.shape(out))).astype(dt)
    dout = dout.view(Spy) if dout.ndim else dout
    grads = bwd(dout, cache)
    return out, grads if isinstance(grads, tuple) else (grads,)


def test_no_float64_temporaries_in_float32_paths(spy):
    """Regression: cross_entropy with label smoothing and the multi-margin backward built
    (M, C) float64 arrays from Python floats before casting back."""
    rng = np.random.default_rng(0)
    found = {}
    for name, fwd, bwd in pairs(rng, np.float32):
        spy.clear()
        _run(fwd, bwd, rng, np.float32)
        if spy:
            found[name] = sorted(set(spy))
    assert not found, f"float64 temporaries in float32 ops: {found}"


def test_the_spy_sees_a_leak(spy):
    """The check can fail: an op that mixes in a float64 array is caught."""
    x = arr(np.random.default_rng(1), 3, 4)
    _ = x * np.ones((3, 4))                                   # float32 * float64 -> float64
    assert spy
    spy.clear()
    act_ops.np.where(x > 0, 1.0, 0)                           # via a proxied NumPy function
    assert spy


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_every_pair_keeps_its_dtype(dt):
    rng = np.random.default_rng(2)
    for name, fwd, bwd in pairs(rng, dt):
        out, grads = _run(fwd, bwd, rng, dt)
        assert np.asarray(out).dtype == dt, name
        for g in grads:
            assert g is None or np.asarray(g).dtype == dt, name
