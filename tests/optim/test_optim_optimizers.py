"""Optimizers: parity with torch.optim over 20 steps, a hand-written reference, state
round trips, parameter groups and hyperparameter validation."""

import json
import math

import numpy as np
import pytest

from convnet import optim
from convnet.nn import Parameter

SHAPES = [(3, 4), (5,), (2, 3, 3, 2), (1,)]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-13), np.float32: dict(rtol=1e-6, atol=1e-6)}

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("SGD", dict(lr=0.02, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=3e-3, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("Adam", dict(lr=1e-2, betas=(0.0, 0.5), amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.3, amsgrad=True)),
    ("RMSprop", dict(lr=1e-2)),
    ("RMSprop", dict(lr=1e-3, alpha=0.9, eps=1e-6, weight_decay=0.05)),
    ("RMSprop", dict(lr=1e-3, momentum=0.9)),
    ("RMSprop", dict(lr=1e-3, centered=True)),
    ("RMSprop", dict(lr=1e-3, momentum=0.7, centered=True, weight_decay=0.01)),
]


def _problem(dtype, steps=20, seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    # Gradients of varied scale, so that Adam's and RMSprop's normalisation matters.
    grads = [[(rng.standard_normal(s) * 10.0 ** rng.integers(-2, 2)).astype(dtype)
              for s in SHAPES] for _ in range(steps)]
    return init, grads


def _run_ours(name, kwargs, init, grads, skip=None):
    params = [Parameter(a.copy()) for a in init]
    opt = getattr(optim, name)(params, **kwargs)
    for k, step_grads in enumerate(grads):
        for i, (p, g) in enumerate(zip(params, step_grads)):
            p.grad = None if (skip is not None and skip(k, i)) else g.copy()
        opt.step()
    return params, opt


def _run_torch(torch, name, kwargs, init, grads, skip=None):
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = getattr(torch.optim, name)(params, foreach=False, **kwargs)
    for k, step_grads in enumerate(grads):
        for i, (p, g) in enumerate(zip(params, step_grads)):
            p.grad = None if (skip is not None and skip(k, i)) else torch.from_numpy(g.copy())
        opt.step()
    return [p.detach().numpy() for p in params]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,kwargs", CONFIGS)
def test_matches_torch_for_20_steps(torch, name, kwargs, dtype):
    init, grads = _problem(dtype)
    ours, _ = _run_ours(name, kwargs, init, grads)
    theirs = _run_torch(torch, name, kwargs, init, grads)
    for i, (p, t) in enumerate(zip(ours, theirs)):
        assert p.data.dtype == dtype
        np.testing.assert_allclose(p.data, t, **TOL[dtype], err_msg=f"parameter {i}")
        assert not np.allclose(p.data, init[i]), "the parameters must have moved"


@pytest.mark.parametrize("name,kwargs", [CONFIGS[2], CONFIGS[7], CONFIGS[15]])
def test_missing_grads_are_skipped_like_torch(torch, name, kwargs):
    init, grads = _problem(np.float64, steps=12, seed=3)

    def skip(k, i):  # parameter 1 has no gradient on even steps, parameter 3 never
        return (i == 1 and k % 2 == 0) or i == 3

    ours, _ = _run_ours(name, kwargs, init, grads, skip)
    theirs = _run_torch(torch, name, kwargs, init, grads, skip)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.data, t, **TOL[np.float64])
    np.testing.assert_array_equal(ours[3].data, init[3])


def test_param_groups_match_torch(torch):
    init, grads = _problem(np.float64)
    groups = lambda ps: [{"params": ps[:2]},  # noqa: E731
                         {"params": ps[2:], "lr": 0.3, "momentum": 0.5, "weight_decay": 0.1}]
    ours = [Parameter(a.copy()) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = optim.SGD(groups(ours), lr=0.05, momentum=0.9)
    topt = torch.optim.SGD(groups(theirs), lr=0.05, momentum=0.9, foreach=False)
    for step_grads in grads:
        for p, t, g in zip(ours, theirs, step_grads):
            p.grad, t.grad = g.copy(), torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), **TOL[np.float64])


# ---- a reference written from the papers' formulas, one scalar at a time ----------------
def _reference(name, kw, x0, grads):
    x = [float(v) for v in x0]
    n = len(x)
    m, v, vmax, buf, ga = [0.0] * n, [0.0] * n, [0.0] * n, [None] * n, [0.0] * n
    for t, g_all in enumerate(grads, start=1):
        for j in range(n):
            g = float(g_all[j])
            if name == "SGD":
                g += kw.get("weight_decay", 0.0) * x[j]
                mu = kw.get("momentum", 0.0)
                if mu:
                    buf[j] = g if buf[j] is None else \
                        mu * buf[j] + (1 - kw.get("dampening", 0.0)) * g
                    g = g + mu * buf[j] if kw.get("nesterov") else buf[j]
                x[j] -= kw["lr"] * g
            elif name in ("Adam", "AdamW"):
                b1, b2 = kw.get("betas", (0.9, 0.999))
                wd = kw.get("weight_decay", 0.01 if name == "AdamW" else 0.0)
                if name == "AdamW":
                    x[j] *= 1 - kw["lr"] * wd
                else:
                    g += wd * x[j]
                m[j] = b1 * m[j] + (1 - b1) * g
                v[j] = b2 * v[j] + (1 - b2) * g * g
                vmax[j] = max(vmax[j], v[j])
                vh = vmax[j] if kw.get("amsgrad") else v[j]
                m_hat = m[j] / (1 - b1 ** t)
                x[j] -= kw["lr"] * m_hat / (math.sqrt(vh / (1 - b2 ** t)) + 1e-8)
            else:  # RMSprop
                alpha, mu = kw.get("alpha", 0.99), kw.get("momentum", 0.0)
                g += kw.get("weight_decay", 0.0) * x[j]
                v[j] = alpha * v[j] + (1 - alpha) * g * g
                ga[j] = alpha * ga[j] + (1 - alpha) * g
                var = v[j] - ga[j] ** 2 if kw.get("centered") else v[j]
                d = math.sqrt(var) + 1e-8
                if mu:
                    buf[j] = (buf[j] or 0.0) * mu + g / d
                    x[j] -= kw["lr"] * buf[j]
                else:
                    x[j] -= kw["lr"] * g / d
    return np.array(x)


@pytest.mark.parametrize("name,kwargs", [c for c in CONFIGS if "maximize" not in c[1]
                                         and c[1].get("eps", 1e-8) == 1e-8])
def test_matches_scalar_reference(name, kwargs):
    rng = np.random.default_rng(7)
    x0 = rng.standard_normal(6)
    grads = [rng.standard_normal(6) for _ in range(20)]
    p = Parameter(x0.copy())
    opt = getattr(optim, name)([p], **kwargs)
    for g in grads:
        p.grad = g.copy()
        opt.step()
    np.testing.assert_allclose(p.data, _reference(name, kwargs, x0, grads), rtol=1e-10,
                               atol=1e-12)


# ---- state_dict -----------------------------------------------------------------------
def _json_round_trip(sd):
    def enc(o):
        if isinstance(o, np.ndarray):
            return {"__array__": o.tolist()}
        raise TypeError(type(o))

    def dec(d):
        return np.array(d["__array__"]) if set(d) == {"__array__"} else d
    return json.loads(json.dumps(sd, default=enc), object_hook=dec)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,kwargs", CONFIGS)
def test_resume_from_state_dict_is_exact(name, kwargs, dtype):
    init, grads = _problem(dtype, steps=20, seed=5)
    straight, _ = _run_ours(name, kwargs, init, grads)
    first, opt = _run_ours(name, kwargs, init, grads[:9])
    saved = _json_round_trip(opt.state_dict())  # str keys, lists, arrays rebuilt
    params = [Parameter(p.data.copy()) for p in first]
    opt2 = getattr(optim, name)(params, lr=123.0)  # hyperparameters come from the state
    opt2.load_state_dict(saved)
    for step_grads in grads[9:]:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        opt2.step()
    for p, q in zip(straight, params):
        assert q.data.dtype == dtype
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_is_a_copy_and_json_able():
    p = Parameter(np.ones(3))
    opt = optim.Adam([p], lr=0.1, betas=(0.5, 0.6))
    p.grad = np.array([1.0, -2.0, 3.0])
    opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"][0]["betas"] == [0.5, 0.6]
    assert sd["param_groups"][0]["params"] == [0]
    assert sd["state"][0]["step"] == 1
    before = sd["state"][0]["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], before)
    meta = {k: v for k, v in sd.items() if k != "state"}
    json.dumps(meta)
    json.dumps({k: {n: v for n, v in s.items() if not isinstance(v, np.ndarray)}
                for k, s in sd["state"].items()})


@pytest.mark.parametrize("mutate,match", [
    (lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])), "parameter groups"),
    (lambda sd: sd["param_groups"][0]["params"].pop(), "parameters"),
    (lambda sd: sd["state"][0].update(exp_avg=np.zeros(7)), r"shape \(7,\), expected \(3,\)"),
    (lambda sd: sd["state"].update({5: {"step": 1}}), "parameter 5"),
    (lambda sd: sd["param_groups"][0].update(lr=-1.0), "lr"),
    (lambda sd: sd.pop("state"), "'state'"),
])
def test_load_state_dict_rejects_mismatches(mutate, match):
    p = Parameter(np.ones(3))
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.ones(3)
    opt.step()
    sd = opt.state_dict()
    mutate(sd)
    with pytest.raises(ValueError, match=match):
        optim.Adam([Parameter(np.ones(3))]).load_state_dict(sd)


def test_zero_grad_and_closure():
    p = Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.5)
    p.grad = np.ones(2)
    assert opt.step(lambda: 3.5) == 3.5
    np.testing.assert_array_equal(p.data, [0.5, 0.5])
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad, [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None


def test_registry():
    p = Parameter(np.ones(2))
    assert isinstance(optim.get_optimizer("AdamW", [p], lr=1e-3), optim.AdamW)
    with pytest.raises(ValueError, match="unknown optimizer 'lamb'"):
        optim.get_optimizer("lamb", [p])


# ---- validation -----------------------------------------------------------------------
@pytest.mark.parametrize("name,kwargs,match", [
    ("SGD", dict(lr=-0.1), r"SGD: lr must be .*>= 0.*got -0.1"),
    ("SGD", dict(lr=float("nan")), "lr"),
    ("SGD", dict(lr=0.1, momentum=-0.5), r"momentum .*got -0.5"),
    ("SGD", dict(lr=0.1, nesterov=True), r"nesterov=True needs momentum > 0.*momentum=0"),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening"),
    ("SGD", dict(lr=0.1, dampening=1.5), r"dampening .*\[0.0, 1.0\].*got 1.5"),
    ("SGD", dict(lr=0.1, weight_decay=-1e-4), "weight_decay"),
    ("Adam", dict(betas=(1.0, 0.999)), r"betas\[0\] .*\[0.0, 1.0\).*got 1.0"),
    ("Adam", dict(betas=(0.9, -0.1)), r"betas\[1\].*got -0.1"),
    ("Adam", dict(betas=(0.9,)), "pair"),
    ("Adam", dict(eps=-1e-8), "eps"),
    ("AdamW", dict(weight_decay=-0.01), "weight_decay"),
    ("RMSprop", dict(alpha=1.5), r"alpha .*got 1.5"),
    ("RMSprop", dict(momentum=-0.1), "momentum"),
])
def test_bad_hyperparameters(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(optim, name)([Parameter(np.ones(2))], **kwargs)


@pytest.mark.parametrize("params,exc,match", [
    ([], ValueError, "empty parameter list"),
    ([np.ones(3)], TypeError, "floating-point ndarray"),
    ([Parameter(np.ones(2)), "w"], TypeError, "parameter 1"),
    (Parameter(np.ones(2)), TypeError, "single Parameter"),
])
def test_bad_params(params, exc, match):
    with pytest.raises(exc, match=match):
        optim.SGD(params, lr=0.1)


def test_duplicate_parameter_and_bad_types():
    p = Parameter(np.ones(2))
    with pytest.raises(ValueError, match="more than one place"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="amsgrad must be True or False"):
        optim.Adam([p], amsgrad="yes")
    with pytest.raises(TypeError, match="lr must be a real number"):
        optim.Adam([p], lr="0.1")
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.ones(3)
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\) for a parameter of shape"):
        opt.step()
