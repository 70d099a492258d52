"""W1 and W2: one training step (forward, cross-entropy, backward, SGD with momentum).

Both frameworks train the same network from the same weights on the same batch; the
figure is images per second (batch size / median step time).  The convnet and torch
steps are timed alternately, so a busy machine slows both alike.
"""

from __future__ import annotations

import time

import numpy as np

from .common import Row, Settings
from .models import LENET, build_convnet, build_torch, check_same, cifar_vgg, copy_weights, nchw

SETTLE_S = 0.15   # idle time before each framework's turn when frameworks alternate
RUN = 3           # timed calls per turn, after one untimed call


def interleaved(fns, warmup: int, repeats: int, settle: float = SETTLE_S,
                run: int = RUN) -> list[float]:
    """Median seconds per call of each function in ``fns``, timed in alternating turns.

    Every framework here leaves worker threads spin-waiting after it returns (OpenBLAS
    for about 0.1 s, OpenMP, onnxruntime's pool), and on two cores a spinning thread
    left by one framework takes a core from the next one's timed call.  So each turn
    starts after ``settle`` seconds of idle, makes one untimed call (the framework wakes
    its own threads, as it would between steps of a real run), then times ``run`` calls
    back to back -- the steady state of a training loop or an inference server.  The
    figure is the median over turns of the mean call time in a turn."""
    for _ in range(warmup):
        for f in fns:
            f()
    times = [[] for _ in fns]
    for _ in range(max(repeats, 1)):
        for t, f in zip(times, fns):
            if len(fns) > 1 and settle > 0:
                time.sleep(settle)
                f()
            t0 = time.perf_counter()
            for _ in range(run):
                f()
            t.append((time.perf_counter() - t0) / run)
    return [float(np.median(t)) for t in times]


def batch_data(batch, hw, channels, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, hw, hw, channels), dtype=np.float32)
    return x, rng.integers(0, 10, size=batch), rng


def convnet_step(model, x, y, lr=0.01, momentum=0.9):
    """One convnet training step on (x, y), as a closure."""
    import convnet
    from convnet import nn, optim
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    xc = convnet.Tensor(x)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xc), y)
        loss.backward()
        opt.step()
    return step


def torch_step(model, x, y, lr=0.01, momentum=0.9):
    """One torch training step on the same (x, y), as a closure."""
    import torch
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    xt, yt = nchw(x), torch.from_numpy(y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return step


def make_steps(spec, batch, hw, channels, flat_hwc, seed=0):
    """(convnet step, torch step, max relative output difference): same weights, same data."""
    x, y, rng = batch_data(batch, hw, channels, seed)
    cn = build_convnet(spec, rng)
    th = build_torch(spec)
    copy_weights(cn, th, flat_hwc)
    diff = check_same(cn, th, x[:4])
    return convnet_step(cn, x, y), torch_step(th, x, y), diff


def _row(id_, name, spec, batch, hw, channels, flat_hwc, settings: Settings) -> Row:
    cn_step, th_step, diff = make_steps(spec, batch, hw, channels, flat_hwc)
    t_cn, t_th = interleaved([cn_step, th_step], settings.warmup + 1, settings.repeats)
    return Row(id_, name, "images/s", batch / t_cn, batch / t_th, better="higher",
               target={"W1": 1.5, "W2": 1.2}.get(id_),
               note=f"outputs agree to {diff:.0e}")


def run_w1(settings: Settings) -> list[Row]:
    batch = 8 if settings.smoke else 64
    return [_row("W1", f"LeNet training step, 28x28x1, batch {batch}, SGD momentum", LENET,
                 batch, 28, 1, (4, 4, 16), settings)]


def run_w2(settings: Settings) -> list[Row]:
    batch, width = (4, 8) if settings.smoke else (64, 64)
    return [_row("W2", f"CIFAR VGG-style training step, 32x32x3, batch {batch}",
                 cifar_vgg(width), batch, 32, 3, (4, 4, 4 * width), settings)]
