"""The benchmark networks, built twice -- in convnet and in PyTorch -- with equal weights.

A network is a list of layer specs; ``build_convnet`` makes it from convnet layers and
``build_torch`` from ``torch.nn`` layers, then ``copy_weights`` writes convnet's
initial weights into the torch model (HWIO -> OIHW for convs, (in, out) -> (out, in)
for linear layers, and the first linear layer after a flatten re-ordered from NHWC's
(H, W, C) flattening to NCHW's (C, H, W)).  ``check_same`` confirms that both compute
the same function on the benchmark data before anything is timed.
"""

from __future__ import annotations

import numpy as np

# ("conv", C_in, C_out, kernel, padding) | ("relu",) | ("pool", k) | ("flatten", H, W, C)
# | ("linear", in, out)
LENET = [("conv", 1, 6, 5, 0), ("relu",), ("pool", 2), ("conv", 6, 16, 5, 0), ("relu",),
         ("pool", 2), ("flatten", 4, 4, 16), ("linear", 256, 120), ("relu",),
         ("linear", 120, 84), ("relu",), ("linear", 84, 10)]


def cifar_vgg(width: int = 64) -> list:
    """W2: [conv3x3(w) x2, pool, conv3x3(2w) x2, pool, conv3x3(4w) x2, pool], fc256, fc10."""
    spec, cin = [], 3
    for c in (width, 2 * width, 4 * width):
        spec += [("conv", cin, c, 3, 1), ("relu",), ("conv", c, c, 3, 1), ("relu",), ("pool", 2)]
        cin = c
    return spec + [("flatten", 4, 4, cin), ("linear", 16 * cin, 256), ("relu",),
                   ("linear", 256, 10)]


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M")


def vgg16_spec(num_classes: int = 1000, width_div: int = 1) -> list:
    spec, cin = [], 3
    for v in VGG16_CFG:
        if v == "M":
            spec.append(("pool", 2))
        else:
            spec += [("conv", cin, v // width_div, 3, 1), ("relu",)]
            cin = v // width_div
    return spec + [("flatten", 7, 7, cin), ("linear", 49 * cin, 4096 // width_div), ("relu",),
                   ("linear", 4096 // width_div, 4096 // width_div), ("relu",),
                   ("linear", 4096 // width_div, num_classes)]


def spec_conv_flops(spec, batch, hw) -> float:
    """Direct-conv FLOPs of the network's convs (forward), for a square input."""
    total = 0.0
    for s in spec:
        if s[0] == "conv":
            _, c, f, k, p = s
            out = hw + 2 * p - k + 1
            total += 2.0 * batch * out * out * k * k * c * f
            hw = out
        elif s[0] == "pool":
            hw //= s[1]
    return total


def build_convnet(spec, rng):
    from convnet import nn
    layers = []
    for s in spec:
        kind = s[0]
        if kind == "conv":
            layers.append(nn.Conv2d(s[1], s[2], s[3], padding=s[4], rng=rng))
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "pool":
            layers.append(nn.MaxPool2d(s[1]))
        elif kind == "flatten":
            layers.append(nn.Flatten())
        elif kind == "linear":
            layers.append(nn.Linear(s[1], s[2], rng=rng))
    return nn.Sequential(*layers)


def build_torch(spec):
    """The network in torch.nn, with uninitialised weights: ``copy_weights`` fills them."""
    import torch
    with torch.device("meta"):  # skip torch's own random init of every weight
        model = _torch_layers(spec)
    return model.to_empty(device="cpu")


def _torch_layers(spec):
    import torch
    layers = []
    for s in spec:
        kind = s[0]
        if kind == "conv":
            layers.append(torch.nn.Conv2d(s[1], s[2], s[3], padding=s[4]))
        elif kind == "relu":
            layers.append(torch.nn.ReLU())
        elif kind == "pool":
            layers.append(torch.nn.MaxPool2d(s[1]))
        elif kind == "flatten":
            layers.append(torch.nn.Flatten())
        elif kind == "linear":
            layers.append(torch.nn.Linear(s[1], s[2]))
    return torch.nn.Sequential(*layers)


def _learned(module, types):
    return [m for _, m in module.named_modules() if isinstance(m, types)]


def copy_weights(cn_model, th_model, flat_hwc) -> None:
    """Write convnet's conv and linear weights into the torch model, layer by layer.

    ``flat_hwc``: the (H, W, C) map that the first linear layer reads after flattening."""
    import torch

    from convnet import nn
    cn_layers = _learned(cn_model, (nn.Conv2d, nn.Linear))
    th_layers = _learned(th_model, (torch.nn.Conv2d, torch.nn.Linear))
    if len(cn_layers) != len(th_layers):
        raise RuntimeError(f"benchmark models differ: {len(cn_layers)} convnet layers with "
                           f"weights, {len(th_layers)} torch layers")
    first_linear = True
    with torch.no_grad():
        for a, b in zip(cn_layers, th_layers):
            w = a.weight.data
            dst = b.weight
            if isinstance(a, nn.Conv2d):
                src = w.transpose(3, 2, 0, 1)                         # HWIO -> OIHW (a view)
            elif first_linear:                                        # rows (h w c) -> (c h w)
                h, wd, c = flat_hwc
                src = w.reshape(h, wd, c, -1).transpose(3, 2, 0, 1)   # (out, C, H, W) view
                dst = dst.view(dst.shape[0], c, h, wd)
            else:
                src = w.T                                             # (in, out) -> (out, in)
            if isinstance(a, nn.Linear):
                first_linear = False
            if tuple(dst.shape) != src.shape:
                raise RuntimeError(f"benchmark models differ: torch weight {tuple(dst.shape)}"
                                   f" vs convnet {src.shape}")
            dst.copy_(torch.from_numpy(src))                          # strided copy in torch
            if a.bias is not None:
                b.bias.copy_(torch.from_numpy(a.bias.data))


def nchw(x: np.ndarray):
    import torch
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def check_same(cn_model, th_model, x: np.ndarray) -> float:
    """Max |convnet - torch| / max |torch| of the two models' outputs on ``x``."""
    import torch

    import convnet
    with convnet.no_grad():
        a = cn_model(convnet.Tensor(x)).data
    with torch.no_grad():
        b = th_model(nchw(x)).numpy()
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
