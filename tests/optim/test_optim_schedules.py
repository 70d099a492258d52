"""Learning-rate schedules against torch.optim.lr_scheduler, plus state and validation."""

import json
import math

import numpy as np
import pytest

from convnet import optim
from convnet.nn import Parameter

RTOL = 1e-12  # our closed forms vs torch's chained updates differ only in rounding


def _pair(torch, lrs=(0.1, 0.03)):
    ours = optim.SGD([{"params": [Parameter(np.ones(2))], "lr": lr} for lr in lrs], lr=1.0)
    theirs = torch.optim.SGD([{"params": [torch.ones(2, requires_grad=True)], "lr": lr}
                              for lr in lrs], lr=1.0)
    return ours, theirs


def _lrs(opt):
    return [g["lr"] for g in opt.param_groups]


@pytest.mark.parametrize("ours_fn,theirs_fn,steps", [
    (lambda o: optim.StepLR(o, step_size=3, gamma=0.5),
     lambda T, o: T.StepLR(o, step_size=3, gamma=0.5), 20),
    (lambda o: optim.StepLR(o, step_size=1),
     lambda T, o: T.StepLR(o, step_size=1), 8),
    (lambda o: optim.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
     lambda T, o: T.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3), 14),
    (lambda o: optim.ExponentialLR(o, gamma=0.9),
     lambda T, o: T.ExponentialLR(o, gamma=0.9), 15),
    (lambda o: optim.CosineAnnealingLR(o, T_max=10),
     lambda T, o: T.CosineAnnealingLR(o, T_max=10), 25),
    (lambda o: optim.CosineAnnealingLR(o, T_max=7, eta_min=0.002),
     lambda T, o: T.CosineAnnealingLR(o, T_max=7, eta_min=0.002), 30),
    (lambda o: optim.LinearWarmup(o, warmup_steps=5, start_factor=0.25),
     lambda T, o: T.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=5), 12),
    (lambda o: optim.LinearWarmup(o, 4, 0.1, after=optim.CosineAnnealingLR(o, T_max=10)),
     lambda T, o: T.SequentialLR(o, [T.LinearLR(o, 0.1, 1.0, total_iters=4),
                                     T.CosineAnnealingLR(o, T_max=10)], milestones=[4]), 20),
    (lambda o: optim.LinearWarmup(o, 3, 0.5, after=optim.StepLR(o, 2, 0.1)),
     lambda T, o: T.SequentialLR(o, [T.LinearLR(o, 0.5, 1.0, total_iters=3),
                                     T.StepLR(o, 2, 0.1)], milestones=[3]), 12),
], ids=["step", "step1", "multistep", "exp", "cosine", "cosine_eta_min", "warmup",
        "warmup_cosine", "warmup_step"])
def test_schedule_matches_torch(torch, ours_fn, theirs_fn, steps):
    import warnings
    ours, theirs = _pair(torch)
    s, t = ours_fn(ours), theirs_fn(torch.optim.lr_scheduler, theirs)
    np.testing.assert_allclose(_lrs(ours), _lrs(theirs), rtol=RTOL, err_msg="step 0")
    seen = []
    for k in range(1, steps + 1):
        ours.step()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs.step()
            s.step()
            t.step()
        np.testing.assert_allclose(_lrs(ours), _lrs(theirs), rtol=RTOL, atol=1e-15,
                                   err_msg=f"step {k}")
        np.testing.assert_allclose(s.get_last_lr(), _lrs(ours), rtol=0)
        seen.append(_lrs(ours)[0])
    assert len(set(seen)) > 1, "the schedule must change the rate"


def test_cosine_closed_form_by_hand():
    opt = optim.SGD([Parameter(np.ones(1))], lr=0.2)
    sched = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.0)
    got = [opt.param_groups[0]["lr"]]
    for _ in range(4):
        sched.step()
        got.append(opt.param_groups[0]["lr"])
    np.testing.assert_allclose(got, [0.2, 0.2 * (1 + math.sqrt(0.5)) / 2, 0.1,
                                     0.2 * (1 - math.sqrt(0.5)) / 2, 0.0], atol=1e-15)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(mode="max", patience=2, factor=0.5),
    dict(mode="min", patience=1, threshold=0.1, threshold_mode="abs", cooldown=2),
    dict(mode="max", patience=0, threshold=0.05, threshold_mode="rel", min_lr=[0.01, 0.002]),
    dict(patience=1, factor=0.5, min_lr=0.02, eps=1e-3),
])
def test_reduce_on_plateau_matches_torch(torch, kwargs):
    rng = np.random.default_rng(0)
    metrics = np.concatenate([np.linspace(1.0, 0.5, 5), np.full(8, 0.5),
                              0.5 + rng.normal(0, 0.05, 20), np.linspace(0.4, 0.1, 6),
                              np.full(12, 0.1)])
    ours, theirs = _pair(torch)
    s = optim.ReduceLROnPlateau(ours, **kwargs)
    t = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kwargs)
    changes = 0
    for k, m in enumerate(metrics):
        before = _lrs(ours)
        s.step(float(m))
        t.step(float(m))
        np.testing.assert_allclose(_lrs(ours), _lrs(theirs), rtol=RTOL, err_msg=f"step {k}")
        changes += before != _lrs(ours)
        assert s.num_bad_epochs == t.num_bad_epochs and s.best == t.best
    assert changes > 0


@pytest.mark.parametrize("make", [
    lambda o: optim.StepLR(o, 3, 0.5),
    lambda o: optim.MultiStepLR(o, [2, 4]),
    lambda o: optim.CosineAnnealingLR(o, 9, 1e-4),
    lambda o: optim.LinearWarmup(o, 3, 0.0, after=optim.CosineAnnealingLR(o, 6)),
    lambda o: optim.ReduceLROnPlateau(o, patience=1, cooldown=1),
], ids=["step", "multistep", "cosine", "warmup", "plateau"])
def test_schedule_state_round_trip_resumes_exactly(make):
    metrics = [1.0, 0.9, 0.95, 0.97, 0.99, 0.8, 0.85, 0.9, 0.91, 0.92, 0.93, 0.94]

    def advance(opt, sched, ks):
        out = []
        for k in ks:
            if isinstance(sched, optim.ReduceLROnPlateau):
                sched.step(metrics[k])
            else:
                sched.step()
            out.append(_lrs(opt))
        return out

    opt = optim.SGD([Parameter(np.ones(1)), Parameter(np.ones(1))], lr=0.1)
    straight = advance(opt, make(opt), range(12))

    opt1 = optim.SGD([Parameter(np.ones(1)), Parameter(np.ones(1))], lr=0.1)
    sched1 = make(opt1)
    advance(opt1, sched1, range(5))
    saved = json.loads(json.dumps({"opt": opt1.state_dict(), "sched": sched1.state_dict()}))

    opt2 = optim.SGD([Parameter(np.ones(1)), Parameter(np.ones(1))], lr=0.7)
    sched2 = make(opt2)
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    assert advance(opt2, sched2, range(5, 12)) == straight[5:]


@pytest.mark.parametrize("build,exc,match", [
    (lambda o: optim.StepLR(o, step_size=0), ValueError, r"step_size .*>= 1, got 0"),
    (lambda o: optim.StepLR(o, step_size=2, gamma=-0.5), ValueError, "gamma"),
    (lambda o: optim.MultiStepLR(o, [5, 2]), ValueError, "increasing"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=0), ValueError, "T_max"),
    (lambda o: optim.LinearWarmup(o, 0), ValueError, "warmup_steps"),
    (lambda o: optim.LinearWarmup(o, 3, start_factor=1.5), ValueError, "start_factor"),
    (lambda o: optim.LinearWarmup(o, 3, after=optim.ReduceLROnPlateau(o)), TypeError,
     "epoch-indexed"),
    (lambda o: optim.ReduceLROnPlateau(o, factor=1.0), ValueError, r"factor .*got 1.0"),
    (lambda o: optim.ReduceLROnPlateau(o, mode="up"), ValueError, "'min' or 'max'"),
    (lambda o: optim.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "'rel' or 'abs'"),
    (lambda o: optim.ReduceLROnPlateau(o, patience=-1), ValueError, "patience"),
    (lambda o: optim.ReduceLROnPlateau(o, min_lr=[0.1, 0.2]), ValueError, "expected 1"),
    (lambda o: optim.StepLR(object(), 2), TypeError, "Optimizer"),
])
def test_bad_schedule_arguments(build, exc, match):
    opt = optim.SGD([Parameter(np.ones(1))], lr=0.1)
    with pytest.raises(exc, match=match):
        build(opt)


def test_warmup_after_must_share_the_optimizer():
    a = optim.SGD([Parameter(np.ones(1))], lr=0.1)
    b = optim.SGD([Parameter(np.ones(1))], lr=0.1)
    with pytest.raises(ValueError, match="same optimizer"):
        optim.LinearWarmup(a, 2, after=optim.StepLR(b, 2))


# ---- gradient clipping ------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_norm_matches_torch(torch, norm_type, max_norm, dtype):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s).astype(dtype) for s in [(3, 4), (7,), (2, 2, 3)]]
    ours = [Parameter(np.zeros(g.shape, dtype)) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True)
              for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = g.copy(), torch.from_numpy(g.copy())
    total = optim.clip_grad_norm_(ours, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    tol = dict(rtol=1e-12) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-7)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, float(ttotal), **tol)
    for p, t in zip(ours, theirs):
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad, t.grad.numpy(), **tol)
    # by hand: the global 2-norm of all gradients concatenated
    if norm_type == 2.0:
        flat = np.concatenate([g.ravel() for g in grads]).astype(np.float64)
        np.testing.assert_allclose(total, np.sqrt(np.sum(flat ** 2)), rtol=1e-6)
        if max_norm < total:
            new = np.concatenate([p.grad.ravel() for p in ours]).astype(np.float64)
            np.testing.assert_allclose(np.sqrt(np.sum(new ** 2)), max_norm, rtol=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_clip_grad_norm_non_finite_raises(bad):
    ps = [Parameter(np.zeros(3)), Parameter(np.zeros((2, 2)))]
    ps[0].grad = np.ones(3)
    ps[1].grad = np.array([[1.0, bad], [0.0, 1.0]])
    with pytest.raises(FloatingPointError, match=r"parameter 1 \(shape \(2, 2\)\)"):
        optim.clip_grad_norm_(ps, 1.0)
    np.testing.assert_array_equal(ps[0].grad, np.ones(3))  # untouched when it raises


def test_clip_grad_norm_edge_cases():
    p = Parameter(np.zeros(2))
    assert optim.clip_grad_norm_([p], 1.0) == 0.0  # no gradients at all
    p.grad = np.array([3.0, 4.0])
    assert optim.clip_grad_norm_(p, 10.0) == 5.0  # a single parameter; no clipping needed
    np.testing.assert_array_equal(p.grad, [3.0, 4.0])
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm_([p], -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        optim.clip_grad_norm_([p], 1.0, norm_type=0)


def test_clip_grad_value():
    p = Parameter(np.zeros(4))
    p.grad = np.array([-3.0, -0.5, 0.5, 3.0])
    optim.clip_grad_value_([p], 1.0)
    np.testing.assert_array_equal(p.grad, [-1.0, -0.5, 0.5, 1.0])
