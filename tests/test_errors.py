"""Issue 2's error table: bad input raises ValueError or TypeError whose message names
what was expected and what was got -- through the functional API and through layers."""

from __future__ import annotations

import numpy as np
import pytest

import convnet.functional as F
from convnet import Tensor, nn


def f32(*shape, dtype=np.float32):
    return Tensor(np.zeros(shape, dtype=dtype))


X = f32(1, 8, 8, 3)
W = f32(3, 3, 3, 4)

CASES = {
    # ---- stride <= 0
    "conv2d stride 0": (lambda: F.conv2d(X, W, stride=0), ValueError,
                        r"conv2d: stride must be positive, got \(0, 0\)"),
    "conv2d stride negative": (lambda: F.conv2d(X, W, stride=(1, -2)), ValueError,
                               r"conv2d: stride must be positive, got \(1, -2\)"),
    "Conv2d stride 0": (lambda: nn.Conv2d(3, 4, 3, stride=0), ValueError,
                        r"Conv2d: stride must be positive, got \(0, 0\)"),
    "max_pool2d stride 0": (lambda: F.max_pool2d(X, 2, stride=0), ValueError,
                            r"max_pool2d: stride must be positive, got \(0, 0\)"),
    "avg_pool2d stride negative": (lambda: F.avg_pool2d(X, 2, stride=-1), ValueError,
                                   r"avg_pool2d: stride must be positive, got \(-1, -1\)"),
    # ---- negative padding
    "conv2d padding -1": (lambda: F.conv2d(X, W, padding=-1), ValueError,
                          r"conv2d: padding must be non-negative, got -1"),
    "conv2d asymmetric negative": (lambda: F.conv2d(X, W, padding=((0, -1), (0, 0))),
                                   ValueError, r"padding must be non-negative, got "
                                               r"\(\(0, -1\), \(0, 0\)\)"),
    "Conv2d padding -1": (lambda: nn.Conv2d(3, 4, 3, padding=-1), ValueError,
                          r"Conv2d: padding must be non-negative, got -1"),
    "max_pool2d padding -1": (lambda: F.max_pool2d(X, 2, padding=-1), ValueError,
                              r"max_pool2d: padding must be non-negative, got -1"),
    # ---- dilation <= 0
    "conv2d dilation 0": (lambda: F.conv2d(X, W, dilation=0), ValueError,
                          r"conv2d: dilation must be positive, got \(0, 0\)"),
    "Conv2d dilation 0": (lambda: nn.Conv2d(3, 4, 3, dilation=0), ValueError,
                          r"Conv2d: dilation must be positive, got \(0, 0\)"),
    "MaxPool2d dilation 0": (lambda: nn.MaxPool2d(2, dilation=0), ValueError,
                             r"MaxPool2d: dilation must be positive, got \(0, 0\)"),
    # ---- groups that don't divide the channels
    "conv2d groups": (lambda: F.conv2d(X, f32(3, 3, 1, 4), groups=2), ValueError,
                      r"conv2d: groups=2 does not divide the 3 input channels"),
    "Conv2d groups": (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError,
                      r"Conv2d: groups=2 must divide in_channels=3 and out_channels=4"),
    "GroupNorm groups": (lambda: nn.GroupNorm(4, 6), ValueError,
                         r"GroupNorm: num_groups=4 does not divide num_channels=6"),
    # ---- a kernel larger than the padded input
    "conv2d kernel too large": (lambda: F.conv2d(X, f32(9, 9, 3, 4)), ValueError,
                                r"conv2d: kernel of size 9 .* larger than the padded input of "
                                r"size 8"),
    "Conv2d.output_shape kernel too large": (
        lambda: nn.Conv2d(3, 4, 9).output_shape((8, 8, 3)), ValueError,
        r"kernel of size 9 .* larger than the padded input of size 8"),
    "max_pool2d kernel too large": (lambda: F.max_pool2d(X, 9), ValueError,
                                    r"max_pool2d: kernel of size 9 .* larger than the padded "
                                    r"input of size 8"),
    # ---- wrong ndim
    "conv2d 3-D input": (lambda: F.conv2d(f32(8, 8, 3), W), ValueError,
                         r"conv2d: input must be 4-D \(N, H, W, C\), got 3-D with shape "
                         r"\(8, 8, 3\)"),
    "max_pool2d 3-D input": (lambda: F.max_pool2d(f32(8, 8, 3), 2), ValueError,
                             r"max_pool2d: input must be 4-D \(N, H, W, C\), got 3-D"),
    "BatchNorm2d 2-D input": (lambda: nn.BatchNorm2d(3)(f32(4, 3)), ValueError,
                              r"BatchNorm2d: input must be 4-D \(N, H, W, C\), got 2-D with "
                              r"shape \(4, 3\)"),
    "dropout2d 3-D input": (lambda: F.dropout2d(f32(2, 3, 4), 0.5), ValueError,
                            r"dropout2d: input must be 4-D \(N, H, W, C\), got 3-D"),
    # ---- a channel mismatch
    "conv2d channels (issue text)": (
        lambda: F.conv2d(f32(1, 32, 32, 3), f32(5, 5, 1, 6)), ValueError,
        r"^conv2d: input has 3 channels but weight \(5, 5, 1, 6\) expects 1$"),
    "Conv2d channels": (lambda: nn.Conv2d(1, 6, 5)(f32(1, 32, 32, 3)), ValueError,
                        r"^conv2d: input has 3 channels but weight \(5, 5, 1, 6\) expects 1$"),
    "Linear features": (lambda: nn.Linear(5, 3)(f32(2, 4)), ValueError,
                        r"input has 4 features .* but weight \(5, 3\) expects 5"),
    "BatchNorm2d channels": (lambda: nn.BatchNorm2d(16)(f32(2, 4, 4, 8)), ValueError,
                             r"BatchNorm2d: input has 8 channels but num_features is 16"),
    # ---- integer or object input where floats are needed
    "conv2d int input": (lambda: F.conv2d(f32(1, 8, 8, 3, dtype=np.int64), W), TypeError,
                         r"conv2d: input must be a float array \(float32 or float64\), got "
                         r"dtype int64"),
    "conv2d object input": (lambda: F.conv2d(np.zeros((1, 8, 8, 3), dtype=object), W),
                            TypeError, r"must be numeric, got an array of dtype object"),
    "Tensor of objects": (lambda: Tensor(np.array([object()] * 2, dtype=object)), TypeError,
                          r"Tensor data must be numeric, got an array of dtype object"),
    "int tensor requiring grad": (lambda: Tensor(np.zeros(3, np.int64), requires_grad=True),
                                  TypeError, r"only float tensors can require gradients, got "
                                             r"dtype int64"),
    "relu int input": (lambda: F.relu(f32(3, dtype=np.int32)), TypeError,
                       r"relu: input must be a float array \(float32 or float64\), got dtype "
                       r"int32"),
    "batch_norm int input": (lambda: F.batch_norm(f32(4, 3, dtype=np.int32), None, None,
                                                  training=True), TypeError,
                             r"batch_norm: input must be a float array \(float32 or float64\), "
                             r"got dtype int32"),
    "cross_entropy int logits": (lambda: F.cross_entropy(f32(2, 3, dtype=np.int64),
                                                         np.array([0, 1])), TypeError,
                                 r"cross_entropy: input must be a float array \(float32 or "
                                 r"float64\), got dtype int64"),
    "cross_entropy float labels": (lambda: F.cross_entropy(f32(2, 3), np.array([0.0, 1.0])),
                                   TypeError, r"cross_entropy: target of shape \(2,\) must hold "
                                              r"integer class indices, got dtype float64"),
    # ---- labels out of range
    "cross_entropy label 10 of 10": (
        lambda: F.cross_entropy(f32(4, 10), np.array([1, 10, 2, 3])), ValueError,
        r"cross_entropy: target labels must be in \[0, 9\] or ignore_index=-100 for 10 "
        r"classes, got 10 at index 1"),
    "cross_entropy negative label": (
        lambda: F.cross_entropy(f32(3, 4), np.array([0, -1, 2])), ValueError,
        r"must be in \[0, 3\] .* got -1 at index 1"),
    "CrossEntropyLoss label": (lambda: nn.CrossEntropyLoss()(f32(2, 3), np.array([0, 3])),
                               ValueError, r"target labels must be in \[0, 2\].* got 3"),
    "nll_loss label": (lambda: F.nll_loss(f32(2, 3), np.array([5, 0])), ValueError,
                       r"nll_loss: target labels must be in \[0, 2\].* got 5 at index 0"),
    "multi_margin_loss label": (lambda: F.multi_margin_loss(f32(2, 3), np.array([0, 3])),
                                ValueError, r"multi_margin_loss: target labels must be in "
                                            r"\[0, 2\] for 3 classes, got 3 at index 1"),
    "dense label": (lambda: F.cross_entropy(f32(1, 2, 2, 3), np.array([[[0, 1], [2, 7]]])),
                    ValueError, r"got 7 at index \(0, 1, 1\)"),
    # ---- shape mismatches
    "cross_entropy target shape": (lambda: F.cross_entropy(f32(4, 3), np.array([0, 1, 2])),
                                   ValueError, r"target has shape \(3,\) but input \(4, 3\) "
                                               r"expects class indices of shape \(4,\)"),
    "mse_loss shapes": (lambda: F.mse_loss(f32(4), f32(3)), ValueError,
                        r"mse_loss: target has shape \(3,\) but input has shape \(4,\)"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_error_names_expected_and_got(name):
    fn, exc, pattern = CASES[name]
    with pytest.raises(exc, match=pattern):
        fn()


def test_load_state_dict_shape_mismatch_names_both_shapes():
    net = nn.Sequential(nn.Conv2d(1, 6, 5), nn.BatchNorm2d(6), nn.Flatten(), nn.Linear(24, 10))
    sd = net.state_dict()
    before = {k: v.copy() for k, v in sd.items()}
    sd["3.bias"] = np.full(10, 7.0, dtype=np.float32)  # a good entry next to the bad ones
    sd["0.weight"] = np.zeros((5, 5, 3, 6), dtype=np.float32)
    sd["1.running_var"] = np.ones(7, dtype=np.float32)
    with pytest.raises(ValueError, match=r"0\.weight: expected shape \(5, 5, 1, 6\), got "
                                         r"\(5, 5, 3, 6\).*1\.running_var: expected shape "
                                         r"\(6,\), got \(7,\)"):
        net.load_state_dict(sd)
    sd = net.state_dict()
    sd["3.weight"] = np.zeros((10, 24), dtype=np.float32)  # torch's (out, in) orientation
    with pytest.raises(ValueError, match=r"3\.weight: expected shape \(24, 10\), got "
                                         r"\(10, 24\)"):
        net.load_state_dict(sd)
    for k, v in net.state_dict().items():  # a failed load changes nothing
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_load_state_dict_missing_and_unexpected_keys():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    sd = net.state_dict()
    del sd["1.num_batches_tracked"]
    sd["2.weight"] = np.zeros(2)
    with pytest.raises(KeyError, match=r"missing keys \['1\.num_batches_tracked'\]; "
                                       r"unexpected keys \['2\.weight'\]"):
        net.load_state_dict(sd)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert missing == ["1.num_batches_tracked"] and unexpected == ["2.weight"]
