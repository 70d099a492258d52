"""Normalization layers: BatchNorm1d/2d/3d, LayerNorm and GroupNorm (channels last)."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from . import init
from ._checks import check_int
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm"]


def _check_eps(eps, layer):
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
        raise ValueError(f"{layer}: eps must be a non-negative number, got {eps!r}")


def _identity_rf(input_shape):
    return tuple((1, 1, 0) for _ in tuple(input_shape)[:-1])


class _BatchNorm(Module):
    _layouts: dict[int, str] = {}

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=None):
        super().__init__()
        name = type(self).__name__
        check_int(num_features, "num_features", name)
        _check_eps(eps, name)
        if momentum is not None and (isinstance(momentum, bool)
                                     or not isinstance(momentum, (int, float))
                                     or not 0.0 <= momentum <= 1.0):
            raise ValueError(f"{name}: momentum must be a number in [0, 1] or None, "
                             f"got {momentum!r}")
        self.num_features = int(num_features)
        self.eps, self.momentum = float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        c = self.num_features
        self.weight = Parameter(init.ones((c,), dtype)) if affine else None
        self.bias = Parameter(init.zeros((c,), dtype)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", init.zeros((c,), dtype))
            self.register_buffer("running_var", init.ones((c,), dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _check_input(self, shape):
        """``shape`` includes the batch axis."""
        name = type(self).__name__
        if len(shape) not in self._layouts:
            want = " or ".join(f"{d}-D {lay}" for d, lay in self._layouts.items())
            raise ValueError(f"{name}: input must be {want}, got {len(shape)}-D with shape "
                             f"{tuple(shape)}")
        if shape[-1] != self.num_features:
            raise ValueError(f"{name}: input has {shape[-1]} channels but num_features is "
                             f"{self.num_features}")

    def forward(self, x):
        self._check_input(x.shape)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self._buffers["num_batches_tracked"] = self.num_batches_tracked + 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            training=use_batch_stats, momentum=factor, eps=self.eps)

    def output_shape(self, input_shape):
        self._check_input((1, *input_shape))
        return tuple(input_shape)

    def rf_params(self, input_shape):
        """Per spatial axis: (1, 1, 0) -- normalization is pointwise in space."""
        return _identity_rf(input_shape)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) features or (N, L, C) sequences, per channel.

    In training each channel is normalized with the mean and (biased) variance of the
    batch (over N, or N and L) and the running averages are updated:
    r = (1 - momentum) r + momentum * batch statistic (unbiased variance for
    ``running_var``).  In evaluation the running averages are used.

    Args:
        num_features: C.
        eps: added to the variance before the square root. Default 1e-5.
        momentum: weight of the new batch in the running averages; None for a
            cumulative average over all batches seen. Default 0.1.
        affine: learn a per-channel scale ``weight`` (gamma) and shift ``bias`` (beta).
        track_running_stats: keep ``running_mean``, ``running_var`` and
            ``num_batches_tracked`` buffers (PyTorch's state_dict names); without them
            batch statistics are used in evaluation too.
        dtype: parameter dtype (default float32).

    Input shape:
        (N, C) or (N, L, C)
    Output shape:
        same as the input

    Example:
        >>> bn = BatchNorm1d(64)
        >>> bn.output_shape((64,))
        (64,)
        >>> sorted(bn.state_dict())
        ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    _layouts = {2: "(N, C)", 3: "(N, L, C)"}


class BatchNorm2d(_BatchNorm):
    """Batch normalization of NHWC maps: per channel, over N, H and W.

    Args:
        num_features: C.
        eps, momentum, affine, track_running_stats, dtype: as in :class:`BatchNorm1d`.

    Input shape:
        (N, H, W, C)
    Output shape:
        (N, H, W, C)

    Example:
        >>> bn = BatchNorm2d(16)
        >>> bn.output_shape((28, 28, 16))
        (28, 28, 16)
        >>> bn.weight.shape, bn.running_var.shape
        ((16,), (16,))
    """

    _layouts = {4: "(N, H, W, C)"}


class BatchNorm3d(_BatchNorm):
    """Batch normalization of (N, D, H, W, C) volumes: per channel, over N, D, H and W.

    Args:
        num_features: C.
        eps, momentum, affine, track_running_stats, dtype: as in :class:`BatchNorm1d`.

    Input shape:
        (N, D, H, W, C)
    Output shape:
        (N, D, H, W, C)

    Example:
        >>> BatchNorm3d(8).output_shape((4, 16, 16, 8))
        (4, 16, 16, 8)
    """

    _layouts = {5: "(N, D, H, W, C)"}


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` axes of each sample.

    On NHWC maps ``LayerNorm(C)`` normalizes every pixel over its channels (as in
    ConvNeXt); ``LayerNorm((H, W, C))`` normalizes each whole sample.

    Args:
        normalized_shape: int or tuple: the trailing shape to normalize over.
        eps: added to the variance. Default 1e-5.
        elementwise_affine: learn ``weight`` and ``bias`` of ``normalized_shape``.
        bias: learn the shift (with ``elementwise_affine``).
        dtype: parameter dtype (default float32).

    Input shape:
        (N, ..., *normalized_shape)
    Output shape:
        same as the input

    Example:
        >>> ln = LayerNorm(32)
        >>> ln.output_shape((7, 7, 32))
        (7, 7, 32)
        >>> ln.weight.shape
        (32,)
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=None):
        super().__init__()
        name = type(self).__name__
        shape = ((normalized_shape,) if isinstance(normalized_shape, (int, np.integer))
                 else tuple(normalized_shape))
        if not shape:
            raise ValueError(f"{name}: normalized_shape must not be empty, got {shape}")
        for s in shape:
            check_int(s, "normalized_shape entries", name)
        _check_eps(eps, name)
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps, self.elementwise_affine = float(eps), bool(elementwise_affine)
        self.weight = Parameter(init.ones(self.normalized_shape, dtype)) \
            if elementwise_affine else None
        self.bias = Parameter(init.zeros(self.normalized_shape, dtype)) \
            if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def output_shape(self, input_shape):
        k = len(self.normalized_shape)
        if tuple(input_shape[len(input_shape) - k:]) != self.normalized_shape \
                or len(input_shape) < k:
            raise ValueError(f"{type(self).__name__}: input shape {tuple(input_shape)} does "
                             f"not end with normalized_shape {self.normalized_shape}")
        return tuple(input_shape)

    def rf_params(self, input_shape):
        """Per spatial axis: (1, 1, 0) for a per-pixel LayerNorm over channels."""
        return _identity_rf(input_shape)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Group normalization (Wu & He, 2018), channels last.

    The C channels are split into ``num_groups`` groups; each (sample, group) is
    normalized over its spatial positions and its C/G channels, independently of the
    batch, so it behaves the same in training and evaluation.

    Args:
        num_groups: G, which must divide ``num_channels``.  G = 1 normalizes the whole
            sample; G = C is instance normalization.
        num_channels: C.
        eps: added to the variance. Default 1e-5.
        affine: learn per-channel ``weight`` and ``bias``.
        dtype: parameter dtype (default float32).

    Input shape:
        (N, ..., C), e.g. (N, H, W, C)
    Output shape:
        same as the input

    Example:
        >>> gn = GroupNorm(4, 32)
        >>> gn.output_shape((16, 16, 32))
        (16, 16, 32)
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=None):
        super().__init__()
        name = type(self).__name__
        check_int(num_groups, "num_groups", name)
        check_int(num_channels, "num_channels", name)
        _check_eps(eps, name)
        if num_channels % num_groups:
            raise ValueError(f"{name}: num_groups={num_groups} does not divide "
                             f"num_channels={num_channels}")
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps, self.affine = float(eps), bool(affine)
        self.weight = Parameter(init.ones((num_channels,), dtype)) if affine else None
        self.bias = Parameter(init.zeros((num_channels,), dtype)) if affine else None

    def _check_channels(self, c):
        if c != self.num_channels:
            raise ValueError(f"{type(self).__name__}: input has {c} channels but num_channels "
                             f"is {self.num_channels}")

    def forward(self, x):
        if getattr(x, "ndim", 0) >= 1:
            self._check_channels(x.shape[-1])
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def output_shape(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(f"{type(self).__name__}: input shape must be (..., C), "
                             f"got {tuple(input_shape)}")
        self._check_channels(input_shape[-1])
        return tuple(input_shape)

    def rf_params(self, input_shape):
        """Per spatial axis: (1, 1, 0)."""
        return _identity_rf(input_shape)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
