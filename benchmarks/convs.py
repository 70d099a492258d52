"""W4: every 3x3 conv layer of W2 and W3, forward and backward timed separately.

Effective GFLOP/s = direct-convolution FLOPs / time, whatever algorithm ran (Winograd
does fewer real FLOPs, so it can pass the sgemm roof).  Forward runs as in training
(the graph is recorded); backward is the conv's own backward on that recorded graph,
called repeatedly with one random upstream gradient.  It computes dW, db and -- except
for a network's first layer, whose input needs no gradient -- dX, so its FLOPs are
2x (or 1x) the forward's.  The four are timed in ``common.TURNS`` alternating turns
(convnet's forward, its backward, torch's forward, its backward, and again), each turn
after at least ``common.WARM_S`` of untimed calls, over at least ``common.TIMED_S`` of
timed calls in all (``common.in_turns``); --quick times one turn.
"""

from __future__ import annotations

import numpy as np

from .common import TIMED_S, TURNS, WARM_S, Row, Settings, conv_flops, in_turns

# (name, N, H, W, C_in, C_out): every distinct 3x3 conv (stride 1, padding 1).
W2_CONVS = [("W2 conv1_1", 64, 32, 32, 3, 64), ("W2 conv1_2", 64, 32, 32, 64, 64),
            ("W2 conv2_1", 64, 16, 16, 64, 128), ("W2 conv2_2", 64, 16, 16, 128, 128),
            ("W2 conv3_1", 64, 8, 8, 128, 256), ("W2 conv3_2", 64, 8, 8, 256, 256)]
W3_CONVS = [("W3 conv1_1", 1, 224, 224, 3, 64), ("W3 conv1_2", 1, 224, 224, 64, 64),
            ("W3 conv2_1", 1, 112, 112, 64, 128), ("W3 conv2_2", 1, 112, 112, 128, 128),
            ("W3 conv3_1", 1, 56, 56, 128, 256), ("W3 conv3_2/3", 1, 56, 56, 256, 256),
            ("W3 conv4_1", 1, 28, 28, 256, 512), ("W3 conv4_2/3", 1, 28, 28, 512, 512),
            ("W3 conv5_1/2/3", 1, 14, 14, 512, 512)]
SMOKE_CONVS = [("smoke conv_a", 2, 8, 8, 3, 8), ("smoke conv_b", 2, 8, 8, 8, 16)]


def _one_layer(name, n, h, w, c, f, settings: Settings, roof: float) -> list[Row]:
    import torch

    import convnet
    import convnet.functional as F

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c), dtype=np.float32)
    wt = (rng.standard_normal((3, 3, c, f), dtype=np.float32) / np.sqrt(9 * c)).astype(
        np.float32)
    b = rng.standard_normal(f, dtype=np.float32) * np.float32(0.1)
    dout = rng.standard_normal((n, h, w, f), dtype=np.float32)
    need_dx = c != 3  # a network's first layer: its input needs no gradient
    flops = conv_flops(n, h, w, c, f)
    bwd_flops = flops * (2 if need_dx else 1)

    # convnet
    xc = convnet.Tensor(x, requires_grad=need_dx)
    wc = convnet.Tensor(wt, requires_grad=True)
    bc = convnet.Tensor(b, requires_grad=True)

    def cn_fwd():
        return F.conv2d(xc, wc, bc, padding=1)

    out = cn_fwd()
    ctx = out._ctx

    # torch, NCHW as its convolutions expect
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(need_dx)
    wtt = torch.from_numpy(np.ascontiguousarray(wt.transpose(3, 2, 0, 1))).requires_grad_(True)
    bt = torch.from_numpy(b.copy()).requires_grad_(True)
    dt = torch.from_numpy(np.ascontiguousarray(dout.transpose(0, 3, 1, 2)))

    def th_fwd():
        return torch.nn.functional.conv2d(xt, wtt, bt, padding=1)

    tout = th_fwd()
    inputs = [xt, wtt, bt] if need_dx else [wtt, bt]
    warm = 0.0 if settings.smoke else WARM_S
    turns, timed = (1, 0.0) if settings.quick else (TURNS, TIMED_S)  # --quick: its 90 s
    t_cf, t_cb, t_tf, t_tb = in_turns(
        [cn_fwd, lambda: ctx.backward(dout), th_fwd,
         lambda: torch.autograd.grad(tout, inputs, dt, retain_graph=True)],
        turns, settings.warmup, settings.repeats, warm, timed)

    shape = f"{n}x{h}x{w}x{c}→{f}"
    rows = []
    for kind, tc, tt, fl in (("fwd", t_cf, t_tf, flops), ("bwd", t_cb, t_tb, bwd_flops)):
        rows.append(Row("W4", f"{name} {shape} {kind}", "ms", tc * 1e3, tt * 1e3,
                        better="lower", convnet_gflops=fl / tc / 1e9,
                        torch_gflops=fl / tt / 1e9, roof_gflops=roof,
                        note="" if kind == "fwd" or need_dx else "dW, db only"))
    return rows


def run_w4(settings: Settings, roof: float, layers=None) -> list[Row]:
    if layers is None:
        layers = SMOKE_CONVS if settings.smoke else W2_CONVS + W3_CONVS
    rows = []
    for spec in layers:
        rows.extend(_one_layer(*spec, settings=settings, roof=roof))
    return rows
