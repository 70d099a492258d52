"""Parameter counts against the published figures, and state_dict names and shapes against
torchvision's layouts (rebuilt here from torch.nn on the meta device: no memory)."""

from __future__ import annotations

import numpy as np
import pytest

from convnet.models import get_model
from convnet.nn import init

PUBLISHED = {
    "lenet5": 61_706,
    "alexnet": 61_100_840,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512, "resnet34": 21_797_672,
    "unet": 31_030_658,
}

# The VGG paper's table 1, written out here (not imported from the code under test).
VGG_CFG = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_is_the_published_figure(name):
    model = get_model(name, init=False)  # shapes only: zeros, lazily allocated
    assert model.num_parameters() == PUBLISHED[name]
    assert sum(p.size for p in model.parameters()) == PUBLISHED[name]


@pytest.mark.slow
def test_vgg16_built_for_real():
    """One big model built with its real random init: the count, the init and the size of
    the first fully connected layer (seed 003: "nearly 103 million")."""
    model = get_model("vgg16", rng=0)
    assert model.num_parameters() == 138_357_544
    fc1 = model.classifier[0]
    assert fc1.weight.size + fc1.bias.size == 102_764_544 == 25_088 * 4096 + 4096
    w = fc1.weight.data
    bound = np.float32(1 / np.sqrt(25_088))  # PyTorch's default Linear init: U(+-1/sqrt(in))
    assert w.dtype == np.float32 and np.abs(w).max() <= bound
    np.testing.assert_allclose(w[::64].std(), bound / np.sqrt(3), rtol=0.01)
    conv = model.features[28].weight.data  # He (fan-out) normal: std sqrt(2 / (3*3*512))
    np.testing.assert_allclose(conv.std(), np.sqrt(2 / (9 * 512)), rtol=0.02)
    assert not model.features[28].bias.data.any()


def test_skip_init_gives_zeros_and_draws_nothing():
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    model = get_model("vgg11", rng=rng, init=False)
    assert rng.bit_generator.state == state
    assert not model.classifier[0].weight.data[:4].any()
    assert not init.is_init_skipped()  # the switch is restored


def test_same_seed_same_weights():
    a = get_model("cifar_resnet20", rng=3).state_dict()
    b = get_model("cifar_resnet20", rng=3).state_dict()
    c = get_model("cifar_resnet20", rng=4).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["layer1.0.conv1.weight"], c["layer1.0.conv1.weight"])


# ---- torchvision's layouts, written with torch.nn ----------------------------------

def torch_vgg(torch, depth, bn):
    tnn = torch.nn
    layers, cin = [], 3
    for v in VGG_CFG[depth]:
        if v == "M":
            layers.append(tnn.MaxPool2d(2, 2))
            continue
        layers.append(tnn.Conv2d(cin, v, 3, padding=1, device="meta"))
        if bn:
            layers.append(tnn.BatchNorm2d(v, device="meta"))
        layers.append(tnn.ReLU())
        cin = v
    net = tnn.Module()
    net.features = tnn.Sequential(*layers)
    net.avgpool = tnn.AdaptiveAvgPool2d((7, 7))
    net.classifier = tnn.Sequential(
        tnn.Linear(512 * 7 * 7, 4096, device="meta"), tnn.ReLU(), tnn.Dropout(),
        tnn.Linear(4096, 4096, device="meta"), tnn.ReLU(), tnn.Dropout(),
        tnn.Linear(4096, 1000, device="meta"))
    return net


def torch_alexnet(torch):
    tnn = torch.nn
    net = tnn.Module()
    net.features = tnn.Sequential(
        tnn.Conv2d(3, 64, 11, 4, 2, device="meta"), tnn.ReLU(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(64, 192, 5, padding=2, device="meta"), tnn.ReLU(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(192, 384, 3, padding=1, device="meta"), tnn.ReLU(),
        tnn.Conv2d(384, 256, 3, padding=1, device="meta"), tnn.ReLU(),
        tnn.Conv2d(256, 256, 3, padding=1, device="meta"), tnn.ReLU(), tnn.MaxPool2d(3, 2))
    net.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
    net.classifier = tnn.Sequential(
        tnn.Dropout(), tnn.Linear(9216, 4096, device="meta"), tnn.ReLU(),
        tnn.Dropout(), tnn.Linear(4096, 4096, device="meta"), tnn.ReLU(),
        tnn.Linear(4096, 1000, device="meta"))
    return net


def torch_resnet(torch, layers, device="meta"):
    """torchvision's ResNet with basic blocks."""
    tnn = torch.nn

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False, device=device)
            self.bn1 = tnn.BatchNorm2d(cout, device=device)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False, device=device)
            self.bn2 = tnn.BatchNorm2d(cout, device=device)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(
                    tnn.Conv2d(cin, cout, 1, stride, bias=False, device=device),
                    tnn.BatchNorm2d(cout, device=device))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False, device=device)
            self.bn1 = tnn.BatchNorm2d(64, device=device)
            self.relu = tnn.ReLU()
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (width, n) in enumerate(zip((64, 128, 256, 512), layers)):
                stride = 1 if i == 0 else 2
                blocks = [Block(cin, width, stride)] + [Block(width, width, 1)
                                                        for _ in range(n - 1)]
                setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
                cin = width
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(512, 1000, device=device)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            for i in range(1, 5):
                x = getattr(self, f"layer{i}")(x)
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return Net()


def torch_shape_in_convnet(key, shape):
    """Where convnet keeps the same numbers: conv OIHW -> HWIO, linear (out, in) -> (in, out)."""
    shape = tuple(shape)
    if len(shape) == 4:
        return (shape[2], shape[3], shape[1], shape[0])
    if len(shape) == 2:
        return (shape[1], shape[0])
    return shape


def assert_same_checkpoint_layout(ours, theirs):
    # named_parameters/buffers are the state_dict's entries without its copies
    mine = {k: v.shape for k, v in ours.named_parameters()}
    mine.update({k: v.shape for k, v in ours.named_buffers()})
    ref = {k: torch_shape_in_convnet(k, v.shape) for k, v in theirs.state_dict().items()}
    assert sorted(mine) == sorted(ref)
    for k in ref:
        assert mine[k] == ref[k], k


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
@pytest.mark.parametrize("bn", [False, True])
def test_vgg_state_dict_matches_torchvision_names(torch, depth, bn):
    name = f"vgg{depth}{'_bn' if bn else ''}"
    assert_same_checkpoint_layout(get_model(name, init=False), torch_vgg(torch, depth, bn))


def test_alexnet_state_dict_matches_torchvision_names(torch):
    assert_same_checkpoint_layout(get_model("alexnet", init=False), torch_alexnet(torch))


@pytest.mark.parametrize("name,layers", [("resnet18", (2, 2, 2, 2)), ("resnet34", (3, 4, 6, 3))])
def test_resnet_state_dict_matches_torchvision_names(torch, name, layers):
    model = get_model(name, init=False)
    assert_same_checkpoint_layout(model, torch_resnet(torch, layers))
    assert sorted(model.state_dict()) == sorted(torch_resnet(torch, layers).state_dict())
    assert "layer1.0.downsample" not in dict(model.named_modules())
    assert "layer2.0.downsample.0.weight" in model.state_dict()


@pytest.mark.parametrize("name", ["alexnet", "resnet18", "cifar_small", "cifar_resnet20"])
def test_every_weight_is_drawn_with_torchvision_scales(name):
    """Builders construct inside skip_init and draw each weight once afterwards; nothing
    may be left at zero, and the scales are torchvision's."""
    model = get_model(name, rng=7)
    for key, p in model.named_parameters():
        w = p.data
        if w.ndim >= 2:
            assert w.std() > 0, key
        if w.ndim == 4 and name != "alexnet":  # He, fan-out: std sqrt(2 / (KH*KW*C_out))
            want = np.sqrt(2 / (w.shape[0] * w.shape[1] * w.shape[3]))
            assert abs(w.std() - want) < 0.2 * want, key
        elif w.ndim >= 2:  # PyTorch's default: U(+-1/sqrt(fan_in))
            bound = np.float32(1 / np.sqrt(np.prod(w.shape[:-1])))
            assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound, key
