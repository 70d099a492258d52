"""Shared test helpers: finite differences, torch conversion, tolerances.

None of these call the code under test to compute an expected value.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from convnet import Tensor
from convnet.ops import algo, jit

# Every conv2d algorithm, plus Winograd F(4x4) with its tile transforms in NumPy rather
# than compiled (``ops.jit``; plain "winograd4" runs compiled when numba is installed).
ALGO_VARIANTS = list(algo.ALGORITHMS) + ["winograd2-numpy", "winograd4-numpy"]


@contextmanager
def force_algo(name: str):
    """``algo.force`` for a name of ALGO_VARIANTS ("-numpy": ops.jit turned off)."""
    base, _, variant = name.partition("-")
    with jit.use(variant != "numpy"), algo.force(base):
        yield


def base_algo(name: str) -> str:
    """The algorithm a variant name runs ("winograd4-numpy" -> "winograd4")."""
    return name.partition("-")[0]

TOL = {np.float64: dict(rtol=1e-7, atol=1e-9), np.float32: dict(rtol=1e-4, atol=1e-5)}


def tol(dtype) -> dict:
    return TOL[np.dtype(dtype).type]


def numerical_grad(f, x: np.ndarray, dout: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of sum(f(x) * dout) w.r.t. x; f maps an ndarray to an ndarray.

    ``x`` is perturbed in place (and restored), so pass the very array the closure reads.
    """
    assert x.dtype == np.float64, "gradient checks run in float64 only"
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = float(np.sum(f() * dout))
        x[i] = old - eps
        fm = float(np.sum(f() * dout))
        x[i] = old
        grad[i] = (fp - fm) / (2 * eps)
    return grad


def grad_check(fn, inputs: list[np.ndarray], dout_seed: int = 0, eps: float = 1e-6,
               rtol: float = 1e-5, atol: float = 1e-7) -> None:
    """Check the autograd gradients of ``fn(*tensors)`` against central differences,
    with a random upstream gradient.  ``inputs`` are float64 arrays."""
    tensors = [Tensor(a, requires_grad=True) for a in inputs]
    out = fn(*tensors)
    dout = np.random.default_rng(dout_seed).standard_normal(out.shape)
    out.backward(dout)
    for k, (t, a) in enumerate(zip(tensors, inputs)):
        def f():
            return fn(*[Tensor(b) for b in inputs]).data
        num = numerical_grad(f, a, dout, eps)
        np.testing.assert_allclose(t.grad, num, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {k}")


def to_torch(a: np.ndarray, layout: str = "", requires_grad: bool = False):
    """NHWC -> NCHW (layout='nhwc'), HWIO -> OIHW (layout='hwio'), or as is."""
    import torch
    if layout == "nhwc":
        a = np.moveaxis(a, -1, 1)
    elif layout == "hwio":
        a = np.moveaxis(a, (-2, -1), (1, 0))
    t = torch.from_numpy(np.ascontiguousarray(a))
    if requires_grad:
        t.requires_grad_(True)
    return t


def from_torch(t, layout: str = "") -> np.ndarray:
    a = t.detach().numpy()
    if layout == "nhwc":
        a = np.moveaxis(a, 1, -1)
    elif layout == "hwio":
        a = np.moveaxis(a, (1, 0), (-2, -1))
    return a


TORCH_ERR: dict = {}  # (op, dtype name) -> largest absolute error against torch this run


def close_torch(op: str, got, want, dtype) -> None:
    """Assert ``got`` matches torch's ``want`` at ``dtype``'s tolerance, and record the
    largest finite absolute error per (op, dtype); conftest prints them after the run."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{op}: shape {got.shape} != {want.shape}"
    if got.size:
        diff = np.abs(got - want)
        diff = diff[np.isfinite(diff)]
        if diff.size:
            key = (op, np.dtype(dtype).name)
            TORCH_ERR[key] = max(TORCH_ERR.get(key, 0.0), float(diff.max()))
    np.testing.assert_allclose(got, want, **tol(dtype), err_msg=op)


def conv_loops(x, w, b, stride, pads, dil) -> np.ndarray:
    """float64 2-D conv, one output pixel and one tap at a time (x unpadded, NHWC; w HWIO;
    pads ((top, bottom), (left, right)))."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    kh, kw, _, f = w.shape
    oh = (xp.shape[1] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[2] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((x.shape[0], oh, ow, f))
    for r in range(oh):
        for q in range(ow):
            for i in range(kh):
                for j in range(kw):
                    out[:, r, q] += xp[:, r * stride[0] + i * dil[0],
                                       q * stride[1] + j * dil[1]] @ w[i, j]
    return out + b


def conv_weight_grad_loops(x, dout, w_shape, stride, pads, dil):
    """float64 (dW, db) of that conv: dW[i, j, c, f] = sum over (n, r, q) of
    x_pad[n, r s_h + i d_h, q s_w + j d_w, c] dout[n, r, q, f], one tap at a time."""
    xp = np.pad(x.astype(np.float64), ((0, 0), *pads, (0, 0)))
    dout = dout.astype(np.float64)
    oh, ow = dout.shape[1:3]
    dw = np.zeros(w_shape)
    for i in range(w_shape[0]):
        for j in range(w_shape[1]):
            win = xp[:, i * dil[0]::stride[0], j * dil[1]::stride[1]][:, :oh, :ow]
            dw[i, j] = np.einsum("nrqc,nrqf->cf", win, dout)
    return dw, dout.sum(axis=(0, 1, 2))


def torch_conv_weight_grad(torch, x, w, b, stride, pads, dil, dout, relu=False):
    """torch's float64 (dW HWIO, db) of conv2d(x, w, b) (then a ReLU with ``relu``) for
    the upstream gradient ``dout`` (NHWC); pads ((top, bottom), (left, right))."""
    xt, wt = to_torch(x.astype(np.float64), "nhwc"), to_torch(w.astype(np.float64), "hwio", True)
    bt = to_torch(b.astype(np.float64), requires_grad=True)
    (pt, pb), (pl, pr) = pads
    o = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (pl, pr, pt, pb)), wt, bt,
                                   stride, 0, dil)
    if relu:
        o = torch.relu(o)
    o.backward(to_torch(dout.astype(np.float64), "nhwc"))
    return from_torch(wt.grad, "hwio"), from_torch(bt.grad)
