"""The summary engine: rows and totals, memory, the text and JSON forms, the tiling check,
and the errors it gives."""

from __future__ import annotations

import json

import numpy as np
import pytest

import convnet
from convnet.inspect import TilingError, parse_shape, summary
from convnet.models import get_model
from convnet.nn import BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential


def small_net():
    return Sequential(Conv2d(3, 8, 3, padding=1), BatchNorm2d(8), ReLU(), MaxPool2d(2),
                      Flatten(), Linear(8 * 8 * 8, 10))


def test_rows_and_totals_of_a_small_net():
    s = summary(small_net(), (16, 16, 3))
    assert [r.name for r in s.rows] == ["input", "0", "1", "2", "3", "4", "5"]
    assert [r.type for r in s.rows[1:]] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d",
                                            "Flatten", "Linear"]
    assert [r.output_shape for r in s.rows] == [(16, 16, 3), (16, 16, 8), (16, 16, 8),
                                                (16, 16, 8), (8, 8, 8), (512,), (10,)]
    assert [r.params for r in s.rows] == [0, 3 * 9 * 8 + 8, 16, 0, 0, 0, 512 * 10 + 10]
    assert [r.macs for r in s.rows] == [0, 16 * 16 * 8 * 27, 0, 0, 0, 0, 5120]
    assert s.total_params == 224 + 16 + 5130 == s.trainable_params
    assert s.param_bytes == 4 * s.total_params
    assert s.buffer_bytes == 4 * 16 + 8  # running mean/var (float32) + a batch counter
    assert s.rows[1].activation_bytes == 16 * 16 * 8 * 4
    assert s.input_bytes == 16 * 16 * 3 * 4
    assert s.activation_bytes == sum(r.activation_bytes for r in s.rows[1:])


def test_batch_size_and_dtype_scale_macs_and_memory():
    one = summary(small_net(), (16, 16, 3))
    eight = summary(small_net(), (16, 16, 3), batch_size=8)
    wide = summary(small_net().to(np.float64), (16, 16, 3))
    assert eight.total_macs == 8 * one.total_macs
    assert eight.activation_bytes == 8 * one.activation_bytes
    assert eight.total_params == one.total_params
    assert wide.param_bytes == 2 * one.param_bytes and wide.dtype == "float64"
    assert wide.activation_bytes == 2 * one.activation_bytes


def test_frozen_parameters_are_non_trainable():
    net = small_net()
    net[0].weight.requires_grad = False
    for p in net[5].parameters():
        p.requires_grad = False
    s = summary(net, (16, 16, 3))
    assert s.non_trainable_params == 3 * 9 * 8 + 5130
    assert s.trainable_params == 8 + 16
    assert [s.rows[i].trainable for i in (1, 2, 3, 6)] == ["partial", "yes", "-", "no"]
    assert "Non-trainable params: 5,346" in s.to_text()


def test_text_table():
    text = summary(small_net(), "16x16x3").to_text()
    lines = text.splitlines()
    header = next(ln for ln in lines if ln.startswith("Layer (type)"))
    for column in ("Output shape", "Params", "Train", "MACs", "Activations", "RF", "Jump",
                   "Start"):
        assert column in header
    conv = next(ln for ln in lines if ln.startswith("0 (Conv2d)"))
    assert "16x16x8" in conv and "224" in conv and "55.30 K" in conv
    assert "Total params: 5,370" in text and "Total MACs: 60.42 K (60,416)" in text
    assert str(summary(small_net(), "16x16x3")) == text


def test_json_form_round_trips():
    s = summary(get_model("resnet18", init=False), (64, 64, 3))
    d = json.loads(json.dumps(s.to_dict()))
    assert d["model"] == "ResNet" and d["input_shape"] == [64, 64, 3]
    assert d["output_shape"] == [1000]
    assert d["totals"]["params"] == 11_689_512 and d["totals"]["macs"] == s.total_macs
    row = next(r for r in d["layers"] if r["name"] == "layer1.0.add")
    assert row == {"name": "layer1.0.add", "type": "Add", "output_shape": [16, 16, 64],
                   "params": 0, "trainable_params": 0, "macs": 0,
                   "activation_bytes": 16 * 16 * 64 * 4, "receptive_field": [27, 27],
                   "jump": [4, 4], "start": [0, 0], "tiles": None, "note": ""}
    fc = d["layers"][-1]
    assert fc["name"] == "fc" and fc["jump"] == [None, None]


def test_tiling_check_names_the_layer():
    vgg = get_model("vgg16", init=False)
    assert all(r.tiles for r in summary(vgg, (224, 224, 3), check_tiling=True).rows[1:])
    with pytest.raises(TilingError, match=r"features\.4 \(MaxPool2d\).*strides are "
                                          r"incorrect.*\(225 \+ 0 - 2\)/2 = 111\.5") as err:
        summary(vgg, (225, 225, 3), check_tiling=True)
    assert isinstance(err.value, ValueError)
    assert err.value.layers[0] == "features.4"
    assert "NO" in err.value.summary.to_text()


def test_torchvision_alexnet_tiles_223_but_not_224_or_227():
    # torchvision's conv1 (11x11, stride 4, padding 2): (224 + 4 - 11)/4 = 54.25; at 227
    # conv1 fits, (227 + 4 - 11)/4 = 55, but the first pool gets (56 - 3)/2 = 26.5.
    # 223: 55 -> pool 27 -> conv 27 -> pool 13 -> convs 13 -> pool 6: every window fits.
    net = get_model("alexnet", init=False)
    report = summary(net, (224, 224, 3), check_tiling="report")
    assert [r.name for r in report.tiling_failures()] == ["features.0"]
    assert "Tiling: features.0 (Conv2d)" in report.to_text()
    with pytest.raises(TilingError, match=r"features\.2 \(MaxPool2d\)"):
        summary(net, (227, 227, 3), check_tiling=True)
    tiled = summary(net, (223, 223, 3), check_tiling=True)
    assert not tiled.tiling_failures() and tiled.row("features.12").output_shape == (6, 6, 256)
    assert summary(net, (224, 224, 3)).rows[1].tiles is None  # not checked unless asked


class NoShape(Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x


def test_errors_name_the_layer():
    with pytest.raises(TypeError, match=r"layer '1' \(NoShape\) has no output_shape"):
        summary(Sequential(Conv2d(1, 2, 3), NoShape()), (8, 8, 1))
    with pytest.raises(ValueError, match=r"layer 'features.30' \(MaxPool2d\) cannot take "
                                         r"input 1x1x512"):
        summary(get_model("vgg16", init=False), (16, 16, 3))
    with pytest.raises(ValueError, match=r"layer '0' \(Conv2d\) cannot take input 8x8x3"):
        summary(Sequential(Conv2d(1, 2, 3)), (8, 8, 3))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        summary(small_net(), (16, 16, 3), batch_size=0)
    with pytest.raises(ValueError, match="check_tiling must be"):
        summary(small_net(), (16, 16, 3), check_tiling="yes")
    with pytest.raises(KeyError, match="no layer named 'nope'"):
        summary(small_net(), (16, 16, 3)).row("nope")
    with pytest.raises(ValueError, match="unknown model"):
        convnet.summary("vgg61", (224, 224, 3))


@pytest.mark.parametrize("spec,want", [("224x224x3", (224, 224, 3)), ("32,32,1", (32, 32, 1)),
                                       ("100x1", (100, 1)), ((8, 8, 1), (8, 8, 1)),
                                       (" 7 X 7 x 2 ", (7, 7, 2))])
def test_parse_shape(spec, want):
    assert parse_shape(spec) == want


@pytest.mark.parametrize("spec,err", [("224x224xthree", ValueError), ("", ValueError),
                                      ((0, 4, 3), ValueError), ((2.5, 3), TypeError),
                                      (5, TypeError)])
def test_parse_shape_errors(spec, err):
    with pytest.raises(err, match="input shape"):
        parse_shape(spec)


def test_summary_does_not_run_the_model():
    class Exploding(Conv2d):
        def forward(self, x):
            raise AssertionError("summary must not run forward")

    s = summary(Sequential(Exploding(1, 2, 3)), (5, 5, 1))
    assert s.output_shape == (3, 3, 2)


class Opaque(Module):
    """A composite layer with output_shape but no rf_params: the field is unknown."""

    def __init__(self):
        super().__init__()
        self.conv = Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(x)

    def output_shape(self, input_shape):
        return self.conv.output_shape(input_shape)


def test_unknown_receptive_field_is_shown_as_a_dash():
    s = summary(Sequential(Opaque(), ReLU(), Conv2d(2, 2, 3)), (8, 8, 2))
    assert s.rows[1].rf is None and s.rows[3].rf is None
    assert s.rows[1].macs == 8 * 8 * 3 * 3 * 2 * 2 and s.rows[1].params == 38
    line = next(ln for ln in s.to_text().splitlines() if ln.startswith("0 (Opaque)"))
    assert line.split()[-3:] == ["-", "-", "-"]
    assert s.to_dict()["layers"][1]["receptive_field"] is None
