"""PyTorch weight interop: the same architecture built in torch.nn and in convnet, torch's
weights copied over with convnet.io.torch_interop, outputs compared (NCHW <-> NHWC at
the boundary), and the torch-layout round trip checked bit for bit."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
from helpers import tol

from convnet import Tensor, nn
from convnet.io import ModelFormatError
from convnet.io.torch_interop import (
    flatten_permutation,
    from_torch_state_dict,
    load_torch_state_dict,
    save_torch_state_dict,
    to_torch_state_dict,
)
from convnet.models import AdaptiveAvgPool2d, BasicBlock, get_model

DTYPES = [np.float32, np.float64]


# ---- helpers ------------------------------------------------------------------------
def _randomize(torch, tm, seed=0):
    """Non-trivial BatchNorm affine parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    for m in tm.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.num_batches_tracked.fill_(7)
            if m.affine:
                m.weight.data.copy_(torch.randn(n, generator=g))
                m.bias.data.copy_(torch.randn(n, generator=g))
    return tm


def _torch_out(torch, tm, x):
    """Run torch on channels-last ``x``: (N, *S, C) -> (N, C, *S) and back."""
    with torch.no_grad():
        out = tm(torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))).numpy()
    return np.moveaxis(out, 1, -1) if out.ndim > 2 else out


def _parity(torch, tm, cm, shape, dtype, input_shape=None, batch=2, seed=0):
    """Load tm's weights into cm; return (convnet output, torch output)."""
    _randomize(torch, tm, seed)
    tm.eval()
    cm.eval()
    if dtype == np.float64:
        tm.double()
        cm.to(np.float64)
    missing, unexpected = from_torch_state_dict(cm, tm.state_dict(), input_shape=input_shape)
    assert missing == [] and unexpected == []
    x = np.random.default_rng(seed).standard_normal((batch, *shape)).astype(dtype)
    got = cm(Tensor(x)).data
    want = _torch_out(torch, tm, x)
    assert got.dtype == dtype and got.shape == want.shape
    assert np.std(want) > 1e-3  # a test that can fail: the output is not trivial
    return got, want


def _assert_round_trip(torch, tm, cm, input_shape=None):
    """to_torch reproduces torch's own tensors exactly, and to_torch -> from_torch gives
    back convnet's tensors bit for bit."""
    back = to_torch_state_dict(cm, input_shape=input_shape)
    theirs = tm.state_dict()
    assert list(back) == list(theirs)
    for key, value in theirs.items():
        np.testing.assert_array_equal(back[key], value.numpy(), err_msg=key)
        assert back[key].shape == tuple(value.shape)
    before = cm.state_dict()
    for p in cm.parameters():
        p.data = np.zeros_like(p.data)
    from_torch_state_dict(cm, back, input_shape=input_shape)
    after = cm.state_dict()
    for key in before:
        assert after[key].dtype == before[key].dtype
        assert np.array_equal(after[key], before[key]), key


def _small_cnn_pair(torch):
    t = torch.nn
    tm = t.Sequential(t.Conv2d(3, 8, 3, padding=1), t.BatchNorm2d(8), t.ReLU(), t.MaxPool2d(2),
                      t.Conv2d(8, 6, 3, stride=2, padding=2, dilation=2, groups=2), t.ReLU(),
                      t.Flatten(), t.Linear(6 * 3 * 2, 10))
    cm = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                       nn.MaxPool2d(2),
                       nn.Conv2d(8, 6, 3, stride=2, padding=2, dilation=2, groups=2),
                       nn.ReLU(), nn.Flatten(), nn.Linear(6 * 3 * 2, 10))
    return tm, cm


SMALL_SHAPE = (11, 7, 3)  # pool -> 5x3, conv stride 2 -> 3x2


def _vgg_style_pair(torch, pooled=(3, 2)):
    t = torch.nn
    tm = t.Sequential(OrderedDict([
        ("features", t.Sequential(t.Conv2d(3, 8, 3, padding=1), t.BatchNorm2d(8), t.ReLU(),
                                  t.MaxPool2d(2, 2), t.Conv2d(8, 12, 3, padding=1), t.ReLU(),
                                  t.MaxPool2d(2, 2))),
        ("avgpool", t.AdaptiveAvgPool2d(pooled)), ("flatten", t.Flatten()),
        ("classifier", t.Sequential(t.Linear(12 * pooled[0] * pooled[1], 16), t.ReLU(),
                                    t.Dropout(0.5), t.Linear(16, 5)))]))
    cm = nn.Sequential(OrderedDict([
        ("features", nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.MaxPool2d(2, 2), nn.Conv2d(8, 12, 3, padding=1),
                                   nn.ReLU(), nn.MaxPool2d(2, 2))),
        ("avgpool", AdaptiveAvgPool2d(pooled)), ("flatten", nn.Flatten()),
        ("classifier", nn.Sequential(nn.Linear(12 * pooled[0] * pooled[1], 16), nn.ReLU(),
                                     nn.Dropout(0.5), nn.Linear(16, 5)))]))
    return tm, cm


def _torch_basic_block(torch):
    t = torch.nn

    class TorchBasicBlock(t.Module):
        """torchvision's BasicBlock, written out (torchvision is not installed)."""

        def __init__(self, cin, cout, stride=1):
            super().__init__()
            self.conv1 = t.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = t.BatchNorm2d(cout)
            self.relu = t.ReLU()
            self.conv2 = t.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = t.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = t.Sequential(t.Conv2d(cin, cout, 1, stride, bias=False),
                                               t.BatchNorm2d(cout))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            identity = x if self.downsample is None else self.downsample(x)
            return self.relu(out + identity)

    return TorchBasicBlock


def _torch_resnet(torch, layers, widths, num_classes):
    """torchvision's ResNet layout (conv1 7x7/2, maxpool, layer1..4, avgpool, fc)."""
    t = torch.nn
    block = _torch_basic_block(torch)

    class TorchResNet(t.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = t.Conv2d(3, widths[0], 7, 2, 3, bias=False)
            self.bn1 = t.BatchNorm2d(widths[0])
            self.relu = t.ReLU()
            self.maxpool = t.MaxPool2d(3, 2, 1)
            cin = widths[0]
            for i, (w, n) in enumerate(zip(widths, layers)):
                stride = 1 if i == 0 else 2
                blocks = [block(cin, w, stride)] + [block(w, w) for _ in range(n - 1)]
                setattr(self, f"layer{i + 1}", t.Sequential(*blocks))
                cin = w
            self.avgpool = t.AdaptiveAvgPool2d((1, 1))
            self.fc = t.Linear(cin, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            for i in range(len(layers)):
                x = getattr(self, f"layer{i + 1}")(x)
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return TorchResNet()


def _resnet_blocks_pair(torch):
    block = _torch_basic_block(torch)
    t = torch.nn
    tm = t.Sequential(OrderedDict([
        ("conv1", t.Conv2d(3, 8, 3, padding=1, bias=False)), ("bn1", t.BatchNorm2d(8)),
        ("relu", t.ReLU()),
        ("layer1", t.Sequential(block(8, 8), block(8, 8))),
        ("layer2", t.Sequential(block(8, 16, 2), block(16, 16))),
        ("avgpool", t.AdaptiveAvgPool2d(1)), ("flatten", t.Flatten()),
        ("fc", t.Linear(16, 4))]))
    cm = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 8, 3, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(8)),
        ("relu", nn.ReLU()),
        ("layer1", nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))),
        ("layer2", nn.Sequential(BasicBlock(8, 16, 2), BasicBlock(16, 16))),
        ("avgpool", nn.GlobalAvgPool2d()), ("flatten", nn.Flatten()), ("fc", nn.Linear(16, 4))]))
    return tm, cm


def _conv1d_pair(torch):
    t = torch.nn
    tm = t.Sequential(t.Conv1d(4, 6, 3, padding=2, dilation=2, groups=2), t.BatchNorm1d(6),
                      t.ReLU(), t.MaxPool1d(2), t.Conv1d(6, 5, 2, stride=2), t.Flatten(),
                      t.Linear(5 * 3, 3))
    cm = nn.Sequential(nn.Conv1d(4, 6, 3, padding=2, dilation=2, groups=2), nn.BatchNorm1d(6),
                       nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(6, 5, 2, stride=2), nn.Flatten(),
                       nn.Linear(5 * 3, 3))
    return tm, cm


def _conv_transpose_pair(torch):
    t = torch.nn
    tm = t.Sequential(t.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1,
                                        groups=2), t.ReLU(),
                      t.ConvTranspose2d(6, 3, (2, 3), stride=(1, 2), dilation=2, bias=False),
                      t.BatchNorm2d(3))
    cm = nn.Sequential(nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1,
                                          groups=2), nn.ReLU(),
                       nn.ConvTranspose2d(6, 3, (2, 3), stride=(1, 2), dilation=2, bias=False),
                       nn.BatchNorm2d(3))
    return tm, cm


def _conv3d_pair(torch):
    t = torch.nn
    tm = t.Sequential(t.Conv3d(2, 4, 3, stride=(1, 2, 2), padding=1), t.BatchNorm3d(4),
                      t.ReLU(), t.Flatten(), t.Linear(4 * 3 * 2 * 3, 2))
    cm = nn.Sequential(nn.Conv3d(2, 4, 3, stride=(1, 2, 2), padding=1), nn.BatchNorm3d(4),
                       nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 2 * 3, 2))
    return tm, cm


def _bn_after_flatten_pair(torch):
    t = torch.nn
    tm = t.Sequential(t.Conv2d(2, 3, 3), t.Flatten(), t.BatchNorm1d(3 * 3 * 2), t.ReLU(),
                      t.Linear(3 * 3 * 2, 4))
    cm = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.BatchNorm1d(3 * 3 * 2), nn.ReLU(),
                       nn.Linear(3 * 3 * 2, 4))
    return tm, cm


# (name, builder, per-sample shape, input_shape argument)
CASES = [
    ("small_cnn", _small_cnn_pair, SMALL_SHAPE, SMALL_SHAPE),
    ("vgg_style", _vgg_style_pair, (12, 10, 3), None),
    ("resnet_blocks", _resnet_blocks_pair, (9, 8, 3), None),
    ("conv1d", _conv1d_pair, (12, 4), (12, 4)),
    ("conv_transpose", _conv_transpose_pair, (5, 4, 4), None),
    ("conv3d", _conv3d_pair, (3, 4, 5, 2), (3, 4, 5, 2)),
    ("bn_after_flatten", _bn_after_flatten_pair, (5, 4, 2), (5, 4, 2)),
]


# ---- parity and round trips ---------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,build,shape,input_shape", CASES, ids=[c[0] for c in CASES])
def test_outputs_match_torch(torch, name, build, shape, input_shape, dtype):
    tm, cm = build(torch)
    got, want = _parity(torch, tm, cm, shape, dtype, input_shape)
    np.testing.assert_allclose(got, want, **tol(dtype))


@pytest.mark.parametrize("name,build,shape,input_shape", CASES, ids=[c[0] for c in CASES])
def test_round_trip_is_bit_identical(torch, name, build, shape, input_shape):
    tm, cm = build(torch)
    _parity(torch, tm, cm, shape, np.float32, input_shape)
    _assert_round_trip(torch, tm, cm, input_shape)


def test_weight_layouts_by_module_type(torch):
    """The layouts themselves, on single layers (independent of the output checks)."""
    conv = nn.Conv2d(3, 5, (2, 4), groups=1)
    convt = nn.ConvTranspose2d(4, 6, (2, 3), groups=2)
    lin = nn.Linear(7, 2)
    c1 = nn.Conv1d(3, 4, 5)
    for m, torch_shape in ((conv, (5, 3, 2, 4)), (convt, (4, 3, 2, 3)), (lin, (2, 7)),
                           (c1, (4, 3, 5))):
        sd = to_torch_state_dict(m)
        assert sd["weight"].shape == torch_shape
    w = to_torch_state_dict(conv)["weight"]
    assert w[4, 2, 1, 3] == conv.weight.data[1, 3, 2, 4]
    w = to_torch_state_dict(convt)["weight"]
    assert w[3, 2, 1, 0] == convt.weight.data[1, 0, 2, 3]
    assert to_torch_state_dict(lin)["weight"][1, 6] == lin.weight.data[6, 1]


def test_flatten_permutation_order():
    # convnet flattens (h, w, c); torch (c, h, w): feature (h=1, w=0, c=1) of a
    # (2, 3, 2) map is convnet index 1*6 + 0*2 + 1 = 7 and torch index 1*6 + 1*3 + 0 = 9.
    perm = flatten_permutation((2, 3, 2))
    assert perm[7] == 9
    assert sorted(perm) == list(range(12))
    assert flatten_permutation((1, 1, 8)) is None
    assert flatten_permutation((8,)) is None


def test_permutation_matters(torch):
    """Without the row permutation the outputs differ: the check above can fail."""
    tm, cm = _small_cnn_pair(torch)
    _randomize(torch, tm).eval()
    cm.eval()
    from_torch_state_dict(cm, tm.state_dict(), permute_flatten=False)
    x = np.random.default_rng(0).standard_normal((2, *SMALL_SHAPE)).astype(np.float32)
    assert np.abs(cm(Tensor(x)).data - _torch_out(torch, tm, x)).max() > 1e-2


def test_input_shape_needed_when_map_size_is_unknown(torch):
    tm, cm = _small_cnn_pair(torch)
    with pytest.raises(ValueError, match="input_shape"):
        from_torch_state_dict(cm, tm.state_dict())
    with pytest.raises(ValueError, match="input_shape"):
        to_torch_state_dict(cm)


def test_vgg_style_at_two_input_sizes(torch):
    """Behind AdaptiveAvgPool2d the flattened map is always 3x2x12: no input_shape."""
    tm, cm = _vgg_style_pair(torch)
    for shape in ((12, 10, 3), (20, 9, 3)):
        got, want = _parity(torch, tm, cm, shape, np.float32)
        np.testing.assert_allclose(got, want, **tol(np.float32))


# ---- inputs: dicts, files -----------------------------------------------------------
def test_numpy_dict_and_torch_tensors_give_the_same_weights(torch):
    tm, cm = _conv_transpose_pair(torch)
    _randomize(torch, tm)
    from_torch_state_dict(cm, tm.state_dict())
    a = cm.state_dict()
    _, cm2 = _conv_transpose_pair(torch)
    from_torch_state_dict(cm2, {k: v.numpy() for k, v in tm.state_dict().items()})
    b = cm2.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_safetensors_file_written_by_torch(torch, tmp_path):
    from safetensors.torch import save_file

    tm, cm = _small_cnn_pair(torch)
    _randomize(torch, tm).eval()
    path = tmp_path / "weights.safetensors"
    save_file(tm.state_dict(), str(path))
    assert load_torch_state_dict(cm, path, input_shape=SMALL_SHAPE) == ([], [])
    cm.eval()
    x = np.random.default_rng(3).standard_normal((2, *SMALL_SHAPE)).astype(np.float32)
    np.testing.assert_allclose(cm(Tensor(x)).data, _torch_out(torch, tm, x),
                               **tol(np.float32))


def test_save_torch_state_dict_loads_in_torch(torch, tmp_path):
    from safetensors.torch import load_file

    tm, cm = _vgg_style_pair(torch)
    cm.eval()
    for p in cm.parameters():  # distinct values everywhere
        p.data = np.random.default_rng(p.size).standard_normal(p.shape).astype(np.float32)
    path = tmp_path / "for_torch.safetensors"
    save_torch_state_dict(cm, path)
    tm.load_state_dict(load_file(str(path)))
    tm.eval()
    x = np.random.default_rng(4).standard_normal((2, 12, 10, 3)).astype(np.float32)
    np.testing.assert_allclose(cm(Tensor(x)).data, _torch_out(torch, tm, x),
                               **tol(np.float32))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".ckpt"])
def test_pickle_files_are_refused(tmp_path, suffix):
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(b"not read at all")
    with pytest.raises(ValueError, match=r"pickle.*save_file"):
        load_torch_state_dict(nn.Linear(2, 2), path)


@pytest.mark.parametrize("head", [b"PK\x03\x04zipped pickle", b"\x80\x02}q\x00."])
def test_pickle_content_is_refused_whatever_the_suffix(tmp_path, head):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(head)
    with pytest.raises(ValueError, match="torch.save pickle"):
        load_torch_state_dict(nn.Linear(2, 2), path)


def test_malformed_safetensors_file(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(ModelFormatError, match="bad header"):
        load_torch_state_dict(nn.Linear(2, 2), path)


# ---- errors -------------------------------------------------------------------------
def test_shape_mismatch_names_key_and_changes_nothing(torch):
    t = torch.nn
    tm = t.Sequential(t.Conv2d(3, 6, 3), t.ReLU(), t.Conv2d(6, 4, 5))
    cm = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 3))
    before = cm.state_dict()
    with pytest.raises(ValueError, match=r"2\.weight: expected torch shape \(4, 6, 3, 3\)"
                                         r".*got \(4, 6, 5, 5\)"):
        from_torch_state_dict(cm, tm.state_dict())
    after = cm.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_strict_and_non_strict_keys(torch):
    t = torch.nn
    tm = t.Sequential(t.Conv2d(3, 6, 3), t.BatchNorm2d(6))
    cm = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.Conv2d(6, 2, 1))
    with pytest.raises(KeyError, match="missing keys"):
        from_torch_state_dict(cm, tm.state_dict())
    extra = dict(tm.state_dict(), **{"head.weight": torch.zeros(2)})
    missing, unexpected = from_torch_state_dict(cm, extra, strict=False)
    assert missing == ["2.weight", "2.bias"] and unexpected == ["head.weight"]
    np.testing.assert_array_equal(cm[1].running_var, tm[1].running_var.numpy())


def test_bad_arguments():
    with pytest.raises(TypeError, match="mapping"):
        from_torch_state_dict(nn.Linear(2, 2), [1, 2])
    with pytest.raises(TypeError, match="convnet Module"):
        to_torch_state_dict(object())
    with pytest.raises(TypeError, match=r"state_dict\['weight'\]"):
        from_torch_state_dict(nn.Linear(2, 2), {"weight": object(), "bias": np.zeros(2)})


# ---- the zoo against torchvision-equivalent torch code ------------------------------
def test_resnet18_matches_torch(torch):
    tm = _torch_resnet(torch, (2, 2, 2, 2), (64, 128, 256, 512), 10)
    cm = get_model("resnet18", num_classes=10, init=False)
    got, want = _parity(torch, tm, cm, (64, 64, 3), np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    _assert_round_trip(torch, tm, cm)


@pytest.mark.slow
def test_vgg11_matches_torch(torch):
    t = torch.nn
    layers, cin = [], 3
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            layers.append(t.MaxPool2d(2, 2))
        else:
            layers += [t.Conv2d(cin, v, 3, padding=1), t.ReLU()]
            cin = v
    tm = t.Sequential(OrderedDict([
        ("features", t.Sequential(*layers)), ("avgpool", t.AdaptiveAvgPool2d(7)),
        ("flatten", t.Flatten()),
        ("classifier", t.Sequential(t.Linear(512 * 7 * 7, 4096), t.ReLU(), t.Dropout(),
                                    t.Linear(4096, 4096), t.ReLU(), t.Dropout(),
                                    t.Linear(4096, 10)))]))
    cm = get_model("vgg11", num_classes=10, init=False)
    # 64x64 leaves a 2x2x512 map that the adaptive pool spreads over 7x7: the 25,088
    # classifier rows are permuted from torch's (c, h, w) order without input_shape.
    got, want = _parity(torch, tm, cm, (64, 64, 3), np.float32, batch=1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
