"""Every nn layer, one table: ``output_shape`` (no data) equals the real forward shape for
batch 1 and batch 3, and dtypes hold end to end -- float32 in, float32 out, float32
gradients for the input and every parameter; the same for float64, with float64
buffers.  No layer up-casts a float32 model or down-casts a float64 one, and no layer
warns."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import convnet.nn as nn
from convnet import Tensor

LAYERS = [  # (constructor, per-sample input shape)
    (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"), (7, 6, 3)),
    (lambda: nn.Conv2d(4, 4, 3, groups=4, padding=((0, 1), (2, 0)), padding_mode="reflect"),
     (5, 6, 4)),
    (lambda: nn.DepthwiseSeparableConv2d(3, 5, 3, stride=2, padding=1), (7, 5, 3)),
    (lambda: nn.Conv1d(3, 4, 3, dilation=2, padding="causal"), (9, 3)),
    (lambda: nn.Conv1d(2, 4, 2, stride=3, padding="same", padding_mode="replicate"), (8, 2)),
    (lambda: nn.Conv3d(2, 3, 2, stride=(1, 2, 1), padding=1, padding_mode="circular"),
     (3, 4, 5, 2)),
    (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1), (4, 3, 3)),
    (lambda: nn.ConvTranspose2d(4, 2, (2, 3), stride=(3, 1), groups=2, dilation=(1, 2)),
     (1, 1, 4)),
    (lambda: nn.LocallyConnected2d(2, 3, 3, stride=2, padding=1, input_size=(5, 6)), (5, 6, 2)),
    (lambda: nn.MixedDilationConv2d(2, 2, 3, rates=(1, 2), stride=2), (7, 6, 2)),
    (lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), (7, 6, 2)),
    (lambda: nn.MaxPool2d(2, padding="same", dilation=2), (5, 3, 2)),
    (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), (7, 6, 2)),
    (lambda: nn.AvgPool2d(1), (1, 1, 3)),
    (lambda: nn.GlobalAvgPool2d(), (3, 4, 2)),
    (lambda: nn.GlobalMaxPool2d(), (1, 1, 2)),
    (lambda: nn.MaxPool1d(3, 2, 1), (9, 2)),
    (lambda: nn.AvgPool1d(3, 2, 1, ceil_mode=True), (9, 2)),
    (lambda: nn.GlobalAvgPool1d(), (9, 2)),
    (lambda: nn.GlobalMaxPool1d(), (1, 2)),
    (lambda: nn.MaxPool3d(2, ceil_mode=True), (3, 5, 4, 2)),
    (lambda: nn.Upsample(scale_factor=1.5, mode="bilinear"), (3, 4, 2)),
    (lambda: nn.Upsample(size=7, mode="linear", align_corners=True), (3, 2)),
    (lambda: nn.Upsample(scale_factor=(2, 1, 3), mode="trilinear"), (2, 3, 2, 1)),
    (lambda: nn.Upsample(scale_factor=0.5), (5, 4, 1)),
    (lambda: nn.Unpool2d((2, 3)), (3, 4, 2)),
    (lambda: nn.Flatten(), (3, 4, 2)),
    (lambda: nn.Flatten(2), (3, 4, 2)),
    (lambda: nn.Linear(5, 3), (5,)),
    (lambda: nn.Linear(5, 3, bias=False), (4, 5)),
    (lambda: nn.Identity(), (3, 2)),
    (lambda: nn.ReLU(), (3, 2)), (lambda: nn.LeakyReLU(0.1), (3, 2)),
    (lambda: nn.ELU(), (3, 2)), (lambda: nn.Sigmoid(), (3, 2)), (lambda: nn.Tanh(), (3, 2)),
    (lambda: nn.GELU(), (3, 2)), (lambda: nn.GELU("tanh"), (3, 2)),
    (lambda: nn.Softmax(), (3, 2)), (lambda: nn.LogSoftmax(axis=1), (3, 2)),
    (lambda: nn.Dropout(0.3), (3, 2)), (lambda: nn.Dropout1d(0.3), (3, 2)),
    (lambda: nn.Dropout2d(0.3), (3, 4, 2)), (lambda: nn.Dropout3d(0.3), (2, 3, 4, 2)),
    (lambda: nn.BatchNorm1d(2), (5, 2)),
    (lambda: nn.BatchNorm2d(2), (3, 4, 2)), (lambda: nn.BatchNorm3d(2), (2, 3, 4, 2)),
    (lambda: nn.LayerNorm((4, 2)), (3, 4, 2)), (lambda: nn.GroupNorm(2, 4), (3, 4, 4)),
    (lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Dropout(0.1), nn.Flatten(), nn.Linear(12, 4), nn.Softmax()),
     (6, 6, 2)),
]


def _id(case):
    return repr(case[0]()).split("\n")[0][:60]


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", LAYERS, ids=_id)
def test_shape_and_dtype_end_to_end(case, dtype, mode, rng):
    make, shape = case
    for batch in (1, 3):
        layer = make().to(dtype)
        layer.train(mode == "train")
        x = Tensor(rng.standard_normal((batch, *shape)).astype(dtype), requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")                  # no RuntimeWarning, no overflow
            out = layer(x)
            assert out.shape == (batch, *layer.output_shape(shape))
            assert out.dtype == dtype
            out.backward(rng.standard_normal(out.shape).astype(dtype))
        assert x.grad is not None and x.grad.dtype == dtype and x.grad.shape == x.shape
        for name, p in layer.named_parameters():
            assert p.dtype == dtype, name
            assert p.grad is not None and p.grad.dtype == dtype, name
        for name, b in layer.named_buffers():
            assert b.dtype.kind != "f" or b.dtype == dtype, name


def test_batch_norm_1d_on_single_feature_vectors():
    """(N, C) input: per-sample shape (C,); batch 1 cannot train (one value per channel)."""
    layer = nn.BatchNorm1d(3)
    assert layer.output_shape((3,)) == (3,)
    assert layer(Tensor(np.ones((4, 3), np.float32))).shape == (4, 3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(Tensor(np.ones((1, 3), np.float32)))
    assert layer.eval()(Tensor(np.ones((1, 3), np.float32))).shape == (1, 3)


@pytest.mark.parametrize("layer,shape,match", [
    (nn.Dropout1d(0.5), (4,), r"Dropout1d: input shape must be \(L, C\), got \(4,\)"),
    (nn.Dropout2d(0.5), (4, 3), r"Dropout2d: input shape must be \(H, W, C\), got \(4, 3\)"),
    (nn.Dropout3d(0.5), (4, 3, 2), r"Dropout3d: input shape must be \(D, H, W, C\)"),
])
def test_channel_dropout_output_shape_checks_the_rank(layer, shape, match, rng):
    """Regression: output_shape accepted any rank although forward raises on it."""
    with pytest.raises(ValueError, match=match):
        layer.output_shape(shape)
    with pytest.raises(ValueError, match="input must be"):
        layer(Tensor(rng.standard_normal((2, *shape))))
    assert nn.Dropout(0.5).output_shape((4,)) == (4,)        # plain dropout: any shape
