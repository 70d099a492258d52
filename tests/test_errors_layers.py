"""Issue 2's error table at the layer level (test_errors.py covers the functional API):
every listed error, raised through ``nn`` layers -- at construction for bad
hyperparameters and at call time for bad inputs -- as ValueError or TypeError, with a
message naming what was expected and what was got."""

from __future__ import annotations

import numpy as np
import pytest

from convnet import Tensor, nn


def z(*shape, dtype=np.float32):
    return Tensor(np.zeros(shape, dtype=dtype))


CASES = {
    # ---- stride <= 0
    "Conv1d stride -1": (lambda: nn.Conv1d(4, 6, 3, stride=-1), ValueError,
                         r"^Conv1d: stride must be positive, got -1$"),
    "Conv3d stride 0": (lambda: nn.Conv3d(2, 2, 3, stride=(1, 0, 1)), ValueError,
                        r"Conv3d: stride must be positive, got \(1, 0, 1\)"),
    "ConvTranspose2d stride 0": (lambda: nn.ConvTranspose2d(2, 2, 3, stride=0), ValueError,
                                 r"ConvTranspose2d: stride must be positive, got \(0, 0\)"),
    "MaxPool1d stride 0": (lambda: nn.MaxPool1d(2, stride=0), ValueError,
                           r"MaxPool1d: stride must be positive, got 0"),
    "LocallyConnected2d stride 0": (
        lambda: nn.LocallyConnected2d(4, 6, 3, stride=0, input_size=(5, 5)), ValueError,
        r"LocallyConnected2d: stride must be positive, got \(0, 0\)"),
    # ---- negative padding
    "Conv3d padding": (lambda: nn.Conv3d(4, 6, 3, padding=(1, -1, 0)), ValueError,
                       r"Conv3d: padding must be non-negative, got \(1, -1, 0\)"),
    "ConvTranspose2d padding": (lambda: nn.ConvTranspose2d(4, 6, 3, padding=-1), ValueError,
                                r"ConvTranspose2d: padding must be non-negative, got -1"),
    "AvgPool2d padding": (lambda: nn.AvgPool2d(3, padding=((0, 0), (-1, 0))), ValueError,
                          r"AvgPool2d: padding must be non-negative"),
    # ---- dilation <= 0
    "Conv3d dilation": (lambda: nn.Conv3d(4, 6, 3, dilation=(1, 0, 1)), ValueError,
                        r"Conv3d: dilation must be positive, got \(1, 0, 1\)"),
    "MaxPool3d dilation": (lambda: nn.MaxPool3d(2, dilation=0), ValueError,
                           r"MaxPool3d: dilation must be positive, got \(0, 0, 0\)"),
    "MixedDilationConv2d rate 0": (lambda: nn.MixedDilationConv2d(2, 4, 3, rates=(1, 0)),
                                   ValueError, r"rates must be positive, got \(0, 0\)"),
    # ---- groups that don't divide the channels
    "Conv2d groups": (lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError,
                      r"Conv2d: groups=4 must divide in_channels=4 and out_channels=6"),
    "Conv1d groups": (lambda: nn.Conv1d(4, 6, 3, groups=3), ValueError,
                      r"Conv1d: groups=3 must divide in_channels=4 and out_channels=6"),
    "ConvTranspose2d groups": (lambda: nn.ConvTranspose2d(3, 6, 3, groups=2), ValueError,
                               r"groups=2 must divide in_channels=3 and out_channels=6"),
    # ---- a kernel larger than the padded input (at call time)
    "Conv2d kernel": (lambda: nn.Conv2d(3, 8, 5)(z(1, 4, 4, 3)), ValueError,
                      r"conv2d: kernel of size 5 .* larger than the padded input of size 4"),
    "MaxPool2d kernel": (lambda: nn.MaxPool2d(5)(z(1, 4, 6, 1)), ValueError,
                         r"max_pool2d: kernel of size 5 .* larger than the padded input of "
                         r"size 4"),
    "Conv1d dilated kernel": (lambda: nn.Conv1d(1, 1, 3, dilation=4)(z(1, 8, 1)), ValueError,
                              r"kernel of size 9 \(kernel 3, dilation 4\) is larger than the "
                              r"padded input of size 8"),
    # ---- wrong ndim
    "Conv2d 3-D input": (lambda: nn.Conv2d(3, 8, 3)(z(8, 8, 3)), ValueError,
                         r"conv2d: input must be 4-D \(N, H, W, C\), got 3-D with shape "
                         r"\(8, 8, 3\)"),
    "Conv3d 4-D input": (lambda: nn.Conv3d(2, 4, 3)(z(1, 4, 4, 2)), ValueError,
                         r"conv3d: input must be 5-D \(N, D, H, W, C\), got 4-D"),
    "ConvTranspose2d 3-D input": (lambda: nn.ConvTranspose2d(2, 4, 3)(z(4, 4, 2)), ValueError,
                                  r"conv_transpose2d: input must be 4-D"),
    "MaxPool1d 4-D input": (lambda: nn.MaxPool1d(2)(z(1, 4, 4, 1)), ValueError,
                            r"max_pool1d: input must be 3-D \(N, L, C\), got 4-D"),
    "BatchNorm1d 4-D input": (lambda: nn.BatchNorm1d(4)(z(3, 5, 5, 4)), ValueError,
                              r"BatchNorm1d: input must be 2-D \(N, C\) or 3-D \(N, L, C\), "
                              r"got 4-D"),
    "Upsample bilinear 3-D": (lambda: nn.Upsample(scale_factor=2, mode="bilinear")(z(1, 4, 3)),
                              ValueError, r"mode='bilinear' needs 4-D input, got 3-D"),
    "Conv2d output_shape rank": (lambda: nn.Conv2d(3, 8, 3).output_shape((8, 3)), ValueError,
                                 r"Conv2d: input shape must be \(H, W, C\), got \(8, 3\)"),
    # ---- a channel mismatch
    "Conv2d(3, 8, 3) on 4 channels": (
        lambda: nn.Conv2d(3, 8, 3)(z(1, 8, 8, 4)), ValueError,
        r"^conv2d: input has 4 channels but weight \(3, 3, 3, 8\) expects 3$"),
    "Conv2d(3, 8, 3).output_shape on 4 channels": (
        lambda: nn.Conv2d(3, 8, 3).output_shape((8, 8, 4)), ValueError,
        r"input has 4 channels but weight \(3, 3, 3, 8\) expects 3"),
    "Conv1d channels": (lambda: nn.Conv1d(2, 4, 3)(z(1, 8, 3)), ValueError,
                        r"conv1d: input has 3 channels but weight \(3, 2, 4\) expects 2"),
    "Conv3d channels": (lambda: nn.Conv3d(2, 4, 3)(z(1, 4, 4, 4, 3)), ValueError,
                        r"conv3d: input has 3 channels but weight \(3, 3, 3, 2, 4\) expects 2"),
    "grouped Conv2d channels": (lambda: nn.Conv2d(4, 4, 3, groups=2)(z(1, 5, 5, 6)), ValueError,
                                r"input has 6 channels but weight \(3, 3, 2, 4\) expects 4 "
                                r"\(2 per group x 2 groups\)"),
    "ConvTranspose2d channels": (lambda: nn.ConvTranspose2d(2, 4, 3)(z(1, 4, 4, 3)),
                                 ValueError, r"input has 3 channels but weight \(3, 3, 4, 2\)"),
    "LocallyConnected2d channels": (
        lambda: nn.LocallyConnected2d(2, 4, 3, input_size=(5, 5))(z(1, 5, 5, 3)), ValueError,
        r"LocallyConnected2d: expected 2 input channels, got 3"),
    "MixedDilationConv2d channels": (lambda: nn.MixedDilationConv2d(2, 4, 3)(z(1, 5, 5, 3)),
                                     ValueError, r"input has 3 channels but weight "
                                                 r"\(3, 3, 2, 4\) expects 2"),
    "DepthwiseSeparableConv2d channels": (
        lambda: nn.DepthwiseSeparableConv2d(3, 8, 3)(z(1, 6, 6, 4)), ValueError,
        r"conv2d: groups=3 does not divide the 4 input channels \(weight \(3, 3, 1, 3\) "
        r"expects 3 = 1 per group x 3 groups\)"),
    "grouped Conv1d input channels": (
        lambda: nn.Conv1d(4, 4, 3, groups=2)(z(1, 6, 3)), ValueError,
        r"conv1d: groups=2 does not divide the 3 input channels \(weight \(3, 2, 4\) "
        r"expects 4 = 2 per group x 2 groups\)"),
    "BatchNorm1d channels": (lambda: nn.BatchNorm1d(4)(z(3, 5)), ValueError,
                             r"BatchNorm1d: input has 5 channels but num_features is 4"),
    "GroupNorm channels": (lambda: nn.GroupNorm(2, 4)(z(3, 5, 6)), ValueError,
                           r"GroupNorm: input has 6 channels but num_channels is 4"),
    "LayerNorm shape": (lambda: nn.LayerNorm(4)(z(3, 5)), ValueError,
                        r"input of shape \(3, 5\) does not end with normalized_shape \(4,\)"),
    "Linear features": (lambda: nn.Linear(5, 3)(z(2, 4)), ValueError,
                        r"input has 4 features \(shape \(2, 4\)\) but weight \(5, 3\) "
                        r"expects 5"),
    # ---- an integer or object input where floats are needed
    "Conv2d int input": (lambda: nn.Conv2d(3, 8, 3)(z(1, 8, 8, 3, dtype=np.int32)), TypeError,
                         r"conv2d: input must be a float array \(float32 or float64\), got "
                         r"dtype int32"),
    "Linear int input": (lambda: nn.Linear(3, 2)(z(2, 3, dtype=np.int64)), TypeError,
                         r"linear: input must be a float array .* got dtype int64"),
    "Linear object input": (lambda: nn.Linear(3, 2)(np.array([[object()] * 3], dtype=object)),
                            TypeError, r"Tensor data must be numeric, got an array of dtype "
                                       r"object"),
    "BatchNorm2d bool input": (lambda: nn.BatchNorm2d(1)(z(2, 2, 2, 1, dtype=bool)), TypeError,
                               r"batch_norm: input must be a float array .* got dtype bool"),
    "ReLU int input": (lambda: nn.ReLU()(z(3, dtype=np.int16)), TypeError,
                       r"relu: input must be a float array .* got dtype int16"),
    "CrossEntropyLoss object labels": (
        lambda: nn.CrossEntropyLoss()(z(2, 3), np.array([0, "a"], dtype=object)), TypeError,
        r"target of shape \(2,\) must hold integer class indices, got dtype object"),
    # ---- labels out of range
    "CrossEntropyLoss label": (lambda: nn.CrossEntropyLoss()(z(2, 3), np.array([0, 5])),
                               ValueError, r"cross_entropy: target labels must be in \[0, 2\] "
                                           r"or ignore_index=-100 for 3 classes, got 5 at "
                                           r"index 1"),
    "NLLLoss negative label": (lambda: nn.NLLLoss()(z(2, 3), np.array([0, -2])), ValueError,
                               r"nll_loss: target labels must be in \[0, 2\].* got -2"),
    "MultiMarginLoss label": (lambda: nn.MultiMarginLoss()(z(2, 3), np.array([3, 0])),
                              ValueError, r"multi_margin_loss: target labels must be in "
                                          r"\[0, 2\] for 3 classes, got 3 at index 0"),
    # ---- load_state_dict
    "load_state_dict shape": (
        lambda: nn.Linear(3, 2).load_state_dict({"weight": np.zeros((2, 3)),
                                                 "bias": np.zeros(2)}),
        ValueError, r"load_state_dict for Linear: shape mismatch for weight: expected shape "
                    r"\(3, 2\), got \(2, 3\)"),
    "load_state_dict object values": (
        lambda: nn.Linear(2, 2).load_state_dict({"weight": np.full((2, 2), None),
                                                 "bias": np.zeros(2)}),
        TypeError, r"weight: expected a numeric array of shape \(2, 2\), got dtype object"),
    "load_state_dict missing key": (
        lambda: nn.Linear(2, 2).load_state_dict({"weight": np.zeros((2, 2))}), ValueError,
        r"load_state_dict for Linear: missing keys \['bias'\]"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_layer_error_names_expected_and_got(name):
    fn, exc, pattern = CASES[name]
    with pytest.raises(exc, match=pattern):
        fn()


def test_failed_load_leaves_the_module_unchanged(rng):
    """Regression: a non-numeric value used to fail half-way with NumPy's own message."""
    net = nn.Sequential(nn.Linear(2, 2, rng=rng), nn.Linear(2, 1, rng=rng))
    before = net.state_dict()
    bad = dict(before)
    bad["0.bias"] = np.full(2, 7.0)
    bad["1.weight"] = np.array([["a"], ["b"]])
    with pytest.raises(TypeError, match=r"1\.weight: expected a numeric array of shape \(2, 1\)"
                                        r", got dtype <U1"):
        net.load_state_dict(bad)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
