"""ONNX export: models exported with convnet.io.onnx, run in onnxruntime, compared with
convnet's own forward (float32), plus the file, layout and error contracts."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import tol

from convnet import Tensor, nn
from convnet.io import onnx as cx
from convnet.io import save
from convnet.io.onnx import export_main, export_onnx, register_onnx_exporter
from convnet.models import AdaptiveAvgPool2d, get_model
from convnet.nn import Module

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _randomize_bn(model, seed=1):
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if getattr(m, "running_mean", None) is not None:
            n = m.running_mean.shape
            m._buffers["running_mean"] = (rng.standard_normal(n) * 0.3).astype(np.float32)
            m._buffers["running_var"] = rng.uniform(0.5, 2.0, n).astype(np.float32)
            if m.weight is not None:
                m.weight.data = rng.standard_normal(n).astype(np.float32)
                m.bias.data = rng.standard_normal(n).astype(np.float32)
    return model


def _session(path):
    return ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])


def _check(model, shape, tmp_path, batch=2, seed=0, **kwargs):
    """Export, run in onnxruntime, compare with convnet; returns the relative max error."""
    _randomize_bn(model).eval()
    x = np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)
    want = model(Tensor(x)).data
    path = tmp_path / "model.onnx"
    export_onnx(model, path, shape, **kwargs)
    got = _session(path).run(None, {"input": x})[0]
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.std(want) > 1e-4  # the output is not trivial, so the check can fail
    np.testing.assert_allclose(got, want, **tol(np.float32))
    return float(np.abs(got - want).max() / np.abs(want).max())


S = nn.Sequential
LAYER_CASES = {
    # convolutions: stride, 'same' (asymmetric at stride 2), explicit asymmetric pads,
    # dilation, groups, depthwise, padding modes
    "conv_same_stride2": (S(nn.Conv2d(3, 4, 3, stride=2, padding="same"), nn.BatchNorm2d(4),
                            nn.ReLU()), (9, 8, 3)),
    "conv_asym_dil_groups": (S(nn.Conv2d(4, 6, (3, 2), stride=(2, 1),
                                         padding=((1, 2), (0, 1)), dilation=(1, 2),
                                         groups=2)), (9, 8, 4)),
    "conv_stride3_valid": (S(nn.Conv2d(2, 5, 4, stride=3, bias=False)), (11, 10, 2)),
    "depthwise_padding_modes": (S(nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect"),
                                  nn.Conv2d(6, 6, 3, padding=2, padding_mode="replicate",
                                            groups=6)), (7, 8, 4)),
    "depthwise_separable": (S(nn.DepthwiseSeparableConv2d(3, 5, 3, padding=1,
                                                          depth_multiplier=2)), (7, 6, 3)),
    "mixed_dilation": (S(nn.MixedDilationConv2d(3, 2, 3, rates=(1, 2, 3), stride=2)),
                       (9, 8, 3)),
    "locally_connected": (S(nn.LocallyConnected2d(3, 4, 3, stride=2, padding=1,
                                                  input_size=(7, 6))), (7, 6, 3)),
    "conv_transpose": (S(nn.ConvTranspose2d(4, 6, 3, stride=2, padding=((1, 0), (2, 1)),
                                            output_padding=1, groups=2)), (5, 4, 4)),
    "conv_transpose_dilated": (S(nn.ConvTranspose2d(4, 6, 3, stride=3, padding=1,
                                                    output_padding=2, dilation=2)),
                               (5, 4, 4)),
    # pooling: ceil_mode, padding, dilation, count_include_pad, 'same'
    "maxpool_ceil": (S(nn.MaxPool2d(3, 2, 1, ceil_mode=True)), (8, 9, 3)),
    "maxpool_dilated_ceil": (S(nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True)),
                             (10, 9, 3)),
    "maxpool_same": (S(nn.MaxPool2d(3, 2, "same")), (8, 7, 2)),
    "maxpool_pad_not_below_kernel": (S(nn.MaxPool2d(2, 3, padding=2, dilation=3,
                                                    ceil_mode=True)), (10, 9, 2)),
    "avgpool_ceil_include_pad": (S(nn.AvgPool2d(3, 2, 1, ceil_mode=True)), (8, 9, 3)),
    "avgpool_ceil_exclude_pad": (S(nn.AvgPool2d(3, 2, 1, ceil_mode=True,
                                                count_include_pad=False)), (8, 9, 3)),
    "avgpool_same": (S(nn.AvgPool2d(2, 2, "same")), (7, 9, 3)),
    "avgpool_same_exclude_pad": (S(nn.AvgPool2d(4, 3, "same", count_include_pad=False)),
                                 (7, 9, 3)),
    "global_max": (S(nn.Conv2d(3, 4, 1), nn.GlobalMaxPool2d()), (5, 5, 3)),
    "global_avg_bn1d": (S(nn.Conv2d(3, 4, 1), nn.GlobalAvgPool2d(), nn.BatchNorm1d(4),
                          nn.Dropout()), (5, 5, 3)),
    "adaptive_avg": (S(AdaptiveAvgPool2d((3, 2)), AdaptiveAvgPool2d(7),
                       AdaptiveAvgPool2d((7, 1)), AdaptiveAvgPool2d((7, None))), (5, 5, 3)),
    # dense, flatten, activations, normalisation
    "flatten_linear_softmax": (S(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 5 * 6, 7),
                                 nn.Softmax()), (7, 8, 3)),
    "linear_on_map_activations": (S(nn.Linear(3, 5), nn.LogSoftmax(axis=-1), nn.GELU(),
                                    nn.GELU("tanh"), nn.ELU(0.5), nn.LeakyReLU(0.2),
                                    nn.Sigmoid(), nn.Tanh(), nn.Identity()), (4, 5, 3)),
    "softmax_spatial_axis": (S(nn.Softmax(axis=1), nn.LogSoftmax(axis=2)), (4, 5, 3)),
    "layer_and_group_norm": (S(nn.LayerNorm(3), nn.Conv2d(3, 6, 1), nn.GroupNorm(3, 6),
                               nn.LayerNorm((4, 5, 6))), (4, 5, 3)),
    "partial_flatten": (S(nn.Flatten(1, 2), nn.Conv1d(3, 2, 3)), (4, 5, 3)),
    # resampling
    "upsample_nearest": (S(nn.Upsample(scale_factor=3), nn.Upsample(scale_factor=1.5),
                           nn.Upsample(size=(11, 13))), (4, 5, 3)),
    "upsample_bilinear": (S(nn.Upsample(scale_factor=2, mode="bilinear"),
                            nn.Upsample(size=(7, 9), mode="bilinear", align_corners=True),
                            nn.Upsample(size=(3, 5), mode="bilinear")), (4, 5, 3)),
    "unpool": (S(nn.Unpool2d((3, 2))), (4, 5, 3)),
    # 1-D and 3-D
    "conv1d_causal_pools": (S(nn.Conv1d(3, 4, 3, padding="causal", dilation=2),
                              nn.MaxPool1d(3, 2, 1, ceil_mode=True),
                              nn.AvgPool1d(2, padding=1, ceil_mode=True), nn.BatchNorm1d(4),
                              nn.GlobalAvgPool1d()), (11, 3)),
    "conv1d_global_max": (S(nn.Conv1d(2, 3, 2, stride=2), nn.GlobalMaxPool1d()), (9, 2)),
    "conv3d": (S(nn.Conv3d(2, 4, 3, stride=2, padding=1), nn.BatchNorm3d(4),
                 nn.MaxPool3d(2, ceil_mode=True), nn.Upsample(scale_factor=2,
                                                              mode="trilinear")),
               (5, 6, 7, 2)),
}


@pytest.mark.parametrize("name", list(LAYER_CASES))
def test_layers_match_onnxruntime(name, tmp_path):
    model, shape = LAYER_CASES[name]
    _check(model, shape, tmp_path)


ZOO_CASES = [
    ("lenet5", {}, (32, 32, 1)),
    ("digits_cnn", {}, (8, 8, 1)),
    ("cifar_small", {}, (32, 32, 3)),
    ("cifar_resnet20", {}, (32, 32, 3)),
    ("resnet18", {"num_classes": 10}, (64, 64, 3)),
    ("unet", {"base_channels": 4, "depth": 2}, (44, 44, 1)),           # valid convs + crop
    ("unet", {"base_channels": 4, "depth": 2, "padding": 1}, (20, 20, 1)),
    ("tcn", {"channels": (8, 8, 6)}, (30, 1)),
    ("autoencoder", {}, (28, 28, 1)),
    ("autoencoder_upsample", {}, (28, 28, 1)),
]


@pytest.mark.parametrize("name,kwargs,shape", ZOO_CASES,
                         ids=[f"{c[0]}{'_same' if c[1].get('padding') else ''}"
                              for c in ZOO_CASES])
def test_zoo_models_match_onnxruntime(name, kwargs, shape, tmp_path):
    _check(get_model(name, rng=0, **kwargs), shape, tmp_path)


# ---- layout, batch, opsets ------------------------------------------------------------
def test_graph_layout_one_transpose_in_and_out(tmp_path):
    model = S(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    proto = export_onnx(model, tmp_path / "m.onnx", (6, 5, 3))
    dims = [d.dim_param or d.dim_value for d in
            proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 6, 5, 3]
    ops = [n.op_type for n in proto.graph.node]
    assert ops == ["Transpose", "Conv", "Relu", "Conv", "Transpose"]
    assert list(proto.graph.node[0].attribute[0].ints) == [0, 3, 1, 2]
    assert proto.graph.output[0].name == "output"
    weight = {i.name: i for i in proto.graph.initializer}["0.weight"]
    assert list(weight.dims) == [4, 3, 3, 3]  # OIHW


def test_symbolic_batch_runs_any_batch(tmp_path):
    model = _randomize_bn(get_model("cifar_small", rng=0)).eval()
    export_onnx(model, tmp_path / "m.onnx", (32, 32, 3))
    sess = _session(tmp_path / "m.onnx")
    for n in (1, 3):
        x = np.random.default_rng(n).standard_normal((n, 32, 32, 3)).astype(np.float32)
        np.testing.assert_allclose(sess.run(None, {"input": x})[0], model(Tensor(x)).data,
                                   **tol(np.float32))


def test_fixed_batch(tmp_path):
    proto = export_onnx(nn.Sequential(nn.Flatten()), tmp_path / "m.onnx", (2, 2, 1), batch=4)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    sess = _session(tmp_path / "m.onnx")
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        sess.run(None, {"input": np.zeros((3, 2, 2, 1), np.float32)})


@pytest.mark.parametrize("opset", [13, 17, 19])
def test_opsets(opset, tmp_path):
    model = S(nn.Conv2d(3, 4, 3, stride=2, padding="same"), nn.BatchNorm2d(4), nn.GELU(),
              nn.MaxPool2d(2, ceil_mode=True), nn.Upsample(scale_factor=2, mode="bilinear"),
              nn.Flatten(), nn.Linear(4 * 4 * 4, 3), nn.LogSoftmax())
    _check(model, (7, 7, 3), tmp_path, opset=opset)
    assert onnx.load(tmp_path / "model.onnx").opset_import[0].version == opset


def test_circular_padding_needs_opset_19(tmp_path):
    model = S(nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"))
    with pytest.raises(ValueError, match="opset >= 19"):
        export_onnx(model, tmp_path / "m.onnx", (5, 6, 2))
    _check(model, (5, 6, 2), tmp_path, opset=19)


def test_layer_norm_needs_opset_17(tmp_path):
    with pytest.raises(ValueError, match="opset >= 17"):
        export_onnx(S(nn.LayerNorm(3)), tmp_path / "m.onnx", (2, 2, 3), opset=13)


def test_exported_in_evaluation_mode(tmp_path):
    model = _randomize_bn(S(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5),
                            nn.Flatten(), nn.Linear(4 * 3 * 3, 2)))
    model.train()
    export_onnx(model, tmp_path / "m.onnx", (5, 5, 2))
    assert model.training  # the export does not change the model's mode
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 2)).astype(np.float32)
    got = _session(tmp_path / "m.onnx").run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model.eval()(Tensor(x)).data, **tol(np.float32))


# ---- files ----------------------------------------------------------------------------
def test_file_is_valid_and_written_atomically(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old contents")
    export_onnx(S(nn.Conv2d(1, 2, 3)), path, (5, 5, 1))
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert os.listdir(tmp_path) == ["m.onnx"]  # no temporary file left behind
    before = path.read_bytes()
    with pytest.raises(TypeError):
        export_onnx(S(nn.Conv2d(1, 2, 3), nn.MaxUnpool2d(2)), path, (5, 5, 1))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.onnx"]


def test_export_main_uses_the_model_files_input_shape(tmp_path, capsys):
    model = _randomize_bn(get_model("digits_cnn", rng=0)).eval()
    save(model, tmp_path / "digits.safetensors", metadata={"input_shape": [8, 8, 1]})
    assert export_main(tmp_path / "digits.safetensors", tmp_path / "digits.onnx") == 0
    assert "digits.onnx" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 1)).astype(np.float32)
    got = _session(tmp_path / "digits.onnx").run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model(Tensor(x)).data, **tol(np.float32))


def test_export_main_without_input_shape(tmp_path):
    save(nn.Sequential(nn.Conv2d(1, 2, 3)), tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="input shape"):
        export_main(tmp_path / "m.safetensors", tmp_path / "m.onnx")
    assert export_main(tmp_path / "m.safetensors", tmp_path / "m.onnx",
                       input_shape=(6, 6, 1)) == 0


# ---- unsupported layers, bad arguments, the hook ---------------------------------------
class _Double(Module):
    def forward(self, x):
        return x * 2.0

    def output_shape(self, input_shape):
        return tuple(input_shape)


@pytest.mark.parametrize("layer,match", [
    (nn.MaxUnpool2d(2), "MaxUnpool2d"),
    (_Double(), "_Double"),
    (nn.MaxPool2d(2, return_indices=True), "return_indices"),
])
def test_unsupported_layers_are_named(layer, match, tmp_path):
    with pytest.raises(TypeError, match=match):
        export_onnx(S(nn.Conv2d(1, 2, 1), layer), tmp_path / "m.onnx", (4, 4, 1))


def test_batch_norm_without_running_stats(tmp_path):
    model = S(nn.BatchNorm2d(2, track_running_stats=False))
    with pytest.raises(ValueError, match="running stat"):
        export_onnx(model, tmp_path / "m.onnx", (3, 3, 2))


@pytest.mark.parametrize("kwargs,match", [
    ({"input_shape": (4, 4)}, "cannot take"),
    ({"input_shape": (0, 4, 1)}, "positive ints"),
    ({"input_shape": 5}, "per-sample shape"),
    ({"opset": 7}, "opset"),
    ({"batch": 0}, "batch"),
])
def test_bad_arguments(kwargs, match, tmp_path):
    args = {"input_shape": (4, 4, 1), **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        export_onnx(S(nn.Conv2d(1, 2, 3)), tmp_path / "m.onnx", **args)


def test_register_onnx_exporter_hook(tmp_path, monkeypatch):
    monkeypatch.setattr(cx, "_USER_EXPORTERS", {})

    def export_double(ctx, module, path, value):
        two = ctx.const(np.array(2.0), f"{path}.two")
        return cx.OnnxValue(ctx.op("Mul", [value.name, two], path), value.shape)

    register_onnx_exporter(_Double, export_double)
    _check(S(nn.Conv2d(2, 3, 3), _Double(), nn.ReLU()), (5, 5, 2), tmp_path)
    with pytest.raises(TypeError, match="class"):
        register_onnx_exporter("Double", export_double)
