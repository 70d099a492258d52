"""Every zoo model's forward on a small random input gives the shape the summary predicted;
the graph models' wiring (residual adds, crop-and-concatenate, causal convs) is checked
against the same networks written in torch with the same weights."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import from_torch, to_torch

import convnet
from convnet import Tensor
from convnet.models import GraphModule, ResNet, TemporalBlock, UNet, get_model, list_models
from convnet.models._graph import resolve_child
from convnet.nn import Conv2d

SMALL_INPUT = {
    "alexnet": (63, 63, 3), "lenet5": (32, 32, 1), "digits_cnn": (8, 8, 1),
    "unet": (188, 188, 1),  # the smallest size the valid-conv U-Net accepts
    "autoencoder": (16, 16, 1), "autoencoder_upsample": (16, 16, 1), "tcn": (40, 3),
}
# The 130M-parameter nets run on init=False weights (lazily allocated zeros): the shapes
# are what is checked, and zeros cost no memory.
SHAPES_ONLY = {"alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn",
               "vgg16_bn", "vgg19_bn"}
SLOW = {"unet", "vgg19", "vgg19_bn", "vgg16_bn", "vgg13_bn"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in list_models()])
def test_forward_shape_is_what_summary_predicts(rng, name):
    shape = SMALL_INPUT.get(name, (32, 32, 3))
    model = get_model(name, in_channels=shape[-1], rng=0, init=name not in SHAPES_ONLY)
    predicted = convnet.summary(model, shape).output_shape
    x = Tensor(rng.standard_normal((1, *shape)).astype(np.float32))
    with convnet.no_grad():
        y = model.eval()(x)
    assert y.shape == (1, *predicted)
    assert y.dtype == np.float32 and np.isfinite(y.data).all()


# ---- weights into torch, by name --------------------------------------------------

def torch_weight(torch, module, array):
    """convnet's layouts -> torch's: HWIO -> OIHW, (K, I, O) -> (O, I, K), (in, out) ->
    (out, in), ConvTranspose2d (KH, KW, O, I) -> (I, O, KH, KW)."""
    if isinstance(module, torch.nn.ConvTranspose2d) and array.ndim == 4:
        return torch.from_numpy(np.ascontiguousarray(array.transpose(3, 2, 0, 1)))
    if array.ndim == 4:
        return to_torch(array, "hwio")
    if array.ndim == 3:
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 1, 0)))
    if array.ndim == 2:
        return torch.from_numpy(np.ascontiguousarray(array.T))
    return torch.from_numpy(np.array(array))


def copy_into_torch(torch, ours, theirs):
    modules = dict(theirs.named_modules())
    ref = theirs.state_dict()
    mine = ours.state_dict()
    assert sorted(mine) == sorted(ref)
    with torch.no_grad():
        for key, value in mine.items():
            owner = modules[key.rpartition(".")[0]]
            ref[key].copy_(torch_weight(torch, owner, value))


def randomise_batchnorm(model, rng):
    for m in model.modules():
        if type(m).__name__ == "BatchNorm2d":
            m.weight.data = rng.uniform(0.5, 1.5, m.weight.shape)
            m.bias.data = rng.standard_normal(m.bias.shape)
            m._buffers["running_mean"] = rng.standard_normal(m.num_features)
            m._buffers["running_var"] = rng.uniform(0.5, 2.0, m.num_features)


def test_resnet18_matches_torch_with_the_same_weights(rng, torch):
    from test_models_params import torch_resnet
    ours = get_model("resnet18", rng=1).to(np.float64).eval()
    randomise_batchnorm(ours, rng)
    theirs = torch_resnet(torch, (2, 2, 2, 2), device="cpu").double().eval()
    copy_into_torch(torch, ours, theirs)
    x = rng.standard_normal((2, 40, 36, 3))
    with convnet.no_grad():
        got = ours(Tensor(x)).data
    want = theirs(to_torch(x, "nhwc")).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


def torch_unet(torch, widths, num_classes):
    tnn = torch.nn

    def double(cin, cout):
        return tnn.Sequential(tnn.Conv2d(cin, cout, 3), tnn.ReLU(),
                              tnn.Conv2d(cout, cout, 3), tnn.ReLU())

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            depth = len(widths) - 1
            self.depth = depth
            cin = 1
            for i in range(1, depth + 1):
                setattr(self, f"enc{i}", double(cin, widths[i - 1]))
                cin = widths[i - 1]
            self.bottleneck = double(cin, widths[-1])
            for i in range(depth, 0, -1):
                setattr(self, f"up{i}", tnn.ConvTranspose2d(widths[i], widths[i - 1], 2, 2))
                setattr(self, f"dec{i}", double(2 * widths[i - 1], widths[i - 1]))
            self.head = tnn.Conv2d(widths[0], num_classes, 1)

        def forward(self, x):
            skips = []
            for i in range(1, self.depth + 1):
                x = getattr(self, f"enc{i}")(x)
                skips.append(x)
                x = torch.nn.functional.max_pool2d(x, 2)
            x = self.bottleneck(x)
            for i in range(self.depth, 0, -1):
                up = getattr(self, f"up{i}")(x)
                skip = skips[i - 1]
                dh = (skip.shape[2] - up.shape[2]) // 2
                dw = (skip.shape[3] - up.shape[3]) // 2
                skip = skip[:, :, dh:dh + up.shape[2], dw:dw + up.shape[3]]
                x = getattr(self, f"dec{i}")(torch.cat([skip, up], dim=1))
            return self.head(x)

    return Net()


@pytest.mark.parametrize("size", [(44, 44), (45, 51)])  # odd sizes: floors, uneven crops
def test_unet_matches_torch_with_the_same_weights(rng, torch, size):
    ours = UNet(num_classes=3, base_channels=4, depth=2, rng=2).to(np.float64)
    theirs = torch_unet(torch, [4, 8, 16], 3).double()
    copy_into_torch(torch, ours, theirs)
    x = rng.standard_normal((2, *size, 1))
    got = ours(Tensor(x)).data
    want = from_torch(theirs(to_torch(x, "nhwc")), "nhwc")
    assert got.shape == (2, *ours.output_shape((*size, 1)))
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


def torch_tcn(torch, cin, widths, k, num_classes):
    tnn, F = torch.nn, torch.nn.functional

    class Block(tnn.Module):
        def __init__(self, cin, cout, d):
            super().__init__()
            self.d, self.k = d, k
            self.conv1 = tnn.Conv1d(cin, cout, k, dilation=d)
            self.conv2 = tnn.Conv1d(cout, cout, k, dilation=d)
            self.downsample = tnn.Conv1d(cin, cout, 1) if cin != cout else None

        def forward(self, x):
            pad = (self.d * (self.k - 1), 0)  # causal: zeros on the left only
            out = F.relu(self.conv1(F.pad(x, pad)))
            out = F.relu(self.conv2(F.pad(out, pad)))
            res = x if self.downsample is None else self.downsample(x)
            return F.relu(out + res)

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            blocks, c = [], cin
            for i, w in enumerate(widths):
                blocks.append(Block(c, w, 2 ** i))
                c = w
            self.network = tnn.Sequential(*blocks)
            self.head = tnn.Conv1d(c, num_classes, 1)

        def forward(self, x):
            return self.head(self.network(x))

    return Net()


def test_tcn_matches_torch_and_is_causal(rng, torch):
    model = get_model("tcn", num_classes=4, in_channels=2, channels=(6, 6, 5), kernel_size=3,
                      rng=3).to(np.float64)
    theirs = torch_tcn(torch, 2, (6, 6, 5), 3, 4).double()
    copy_into_torch(torch, model, theirs)
    x = rng.standard_normal((2, 30, 2))
    y = model(Tensor(x)).data
    want = theirs(torch.from_numpy(x.transpose(0, 2, 1).copy())).detach().numpy()
    np.testing.assert_allclose(y, want.transpose(0, 2, 1), rtol=1e-7, atol=1e-9)
    # causality: changing the input at t leaves every output before t unchanged
    t = 17
    x2 = x.copy()
    x2[:, t, :] += 5.0
    y2 = model(Tensor(x2)).data
    np.testing.assert_array_equal(y2[:, :t], y[:, :t])
    assert np.abs(y2[:, t:] - y[:, t:]).max() > 1e-3


def test_tcn_receptive_field_is_what_the_summary_reports():
    model = get_model("tcn", channels=(8, 8, 8, 8), kernel_size=3)
    s = convnet.summary(model, (100, 1))
    assert s.row("head").receptive_field == (1 + 2 * (3 - 1) * (1 + 2 + 4 + 8),)  # 61
    assert model.receptive_field == 61
    # the field ends at the output's own step: centre t - 30 with 61 steps -> [t-60, t]
    assert s.row("head").start == (-30,)


@pytest.mark.parametrize("name", ["autoencoder", "autoencoder_upsample"])
def test_autoencoder_reconstructs_the_input_shape(rng, name):
    model = get_model(name, input_size=(12, 20), channels=(4, 6), rng=0)
    x = Tensor(rng.uniform(size=(2, 12, 20, 1)).astype(np.float32))
    y = model(x)
    assert y.shape == x.shape and (y.data > 0).all() and (y.data < 1).all()
    kinds = {type(m).__name__ for m in model.decoder}
    assert ("ConvTranspose2d" in kinds) == (name == "autoencoder")
    assert ("Upsample" in kinds) == (name == "autoencoder_upsample")


def test_resnet_block_forward_equals_its_output_shape(rng):
    model = ResNet((1, 1, 1, 1), num_classes=7, rng=0).eval()
    for h, w in [(33, 47), (1, 1), (64, 40)]:
        x = Tensor(rng.standard_normal((1, h, w, 3)).astype(np.float32))
        assert model(x).shape[1:] == model.output_shape((h, w, 3)) == (7,)


class _BadAdd(GraphModule):
    def __init__(self):
        super().__init__()
        self.conv = Conv2d(2, 3, 3)

    def graph(self, g, x):
        return g.add(g("conv", x), x)


def test_graph_errors_name_the_problem(rng):
    bad = _BadAdd()
    with pytest.raises(ValueError, match=r"_BadAdd: add needs two activations of the same "
                                         r"shape, got \(6, 6, 3\) and \(8, 8, 2\)"):
        bad.output_shape((8, 8, 2))
    with pytest.raises(ValueError, match="add needs two activations of the same shape"):
        bad(Tensor(rng.standard_normal((1, 8, 8, 2)).astype(np.float32)))
    with pytest.raises(ValueError, match="add needs two activations"):
        convnet.summary(bad, (8, 8, 2))
    block = TemporalBlock(2, 4, 3, 1)
    with pytest.raises(AttributeError, match="no child module 'conv1.nope'"):
        resolve_child(block, "conv1.nope")
    assert resolve_child(block, "conv1") is block.conv1
