"""Normalization layers against torch.nn over several training steps, then evaluation;
state_dict names and loading torch's weights by name."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tol

from convnet import Tensor, nn


def nchw(a):
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if a.ndim > 2 else a


def nhwc(a):
    return np.moveaxis(a, 1, -1) if a.ndim > 2 else a


def load_from_torch(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def run_both(ours, theirs, x, dout, torch, dtype):
    """One forward/backward through both layers; compare output and every gradient."""
    xt = Tensor(x, requires_grad=True)
    out = ours(xt)
    out.backward(dout)
    tx = torch.tensor(nchw(x), requires_grad=True)
    tout = theirs(tx)
    tout.backward(torch.tensor(nchw(dout)))
    np.testing.assert_allclose(out.data, nhwc(tout.detach().numpy()), **tol(dtype))
    np.testing.assert_allclose(xt.grad, nhwc(tx.grad.numpy()), **tol(dtype))
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(theirs, name).grad.numpy(), **tol(dtype),
                                   err_msg=name)
    ours.zero_grad()
    theirs.zero_grad()


def compare_buffers(ours, theirs, dtype):
    sd = theirs.state_dict()
    for name, b in ours.named_buffers():
        np.testing.assert_allclose(b, sd[name].numpy(), **tol(dtype), err_msg=name)


BN_CASES = [  # (our class, torch class name, input shape)
    (nn.BatchNorm1d, "BatchNorm1d", (8, 5)),
    (nn.BatchNorm1d, "BatchNorm1d", (4, 7, 3)),
    (nn.BatchNorm2d, "BatchNorm2d", (4, 5, 3, 6)),
    (nn.BatchNorm2d, "BatchNorm2d", (1, 3, 3, 2)),
    (nn.BatchNorm3d, "BatchNorm3d", (2, 3, 2, 4, 3)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("case", range(len(BN_CASES)))
def test_batchnorm_train_then_eval_matches_torch(case, momentum, dtype, rng, torch):
    cls, tname, shape = BN_CASES[case]
    c = shape[-1]
    torch.manual_seed(0)
    theirs = getattr(torch.nn, tname)(c, momentum=momentum).to(getattr(torch, dtype.__name__))
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-1, 1)
    ours = cls(c, momentum=momentum, dtype=dtype)
    load_from_torch(ours, theirs)
    for _ in range(3):
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        run_both(ours, theirs, x, rng.standard_normal(shape).astype(dtype), torch, dtype)
    compare_buffers(ours, theirs, dtype)
    assert int(ours.num_batches_tracked) == 3
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape).astype(dtype)
    run_both(ours, theirs, x, rng.standard_normal(shape).astype(dtype), torch, dtype)
    compare_buffers(ours, theirs, dtype)  # evaluation leaves the running stats alone


@pytest.mark.parametrize("affine,track", [(False, True), (True, False), (False, False)])
def test_batchnorm_options_match_torch(affine, track, rng, torch):
    theirs = torch.nn.BatchNorm2d(4, affine=affine, track_running_stats=track).double()
    ours = nn.BatchNorm2d(4, affine=affine, track_running_stats=track, dtype=np.float64)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    load_from_torch(ours, theirs)
    shape = (3, 4, 5, 4)
    for mode in (True, False):
        ours.train(mode)
        theirs.train(mode)
        x = rng.standard_normal(shape) + 2
        run_both(ours, theirs, x, rng.standard_normal(shape), torch, np.float64)
    compare_buffers(ours, theirs, np.float64)


def test_batchnorm_state_dict_names_and_loading_torch_weights(rng, torch):
    theirs = torch.nn.BatchNorm2d(6)
    theirs.train()
    for _ in range(4):  # give the buffers non-trivial values
        theirs(torch.randn(5, 6, 3, 3) * 3 + 1)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 2)
        theirs.bias.uniform_(-1, 1)
    ours = nn.BatchNorm2d(6)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.state_dict()["num_batches_tracked"].shape == ()
    load_from_torch(ours, theirs)
    assert int(ours.num_batches_tracked) == 4
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 3, 3, 6)).astype(np.float32)
    np.testing.assert_allclose(ours(Tensor(x)).data,
                               nhwc(theirs(torch.tensor(nchw(x))).detach().numpy()),
                               **tol(np.float32))
    with pytest.raises(ValueError, match=r"running_mean: expected shape \(6,\), got \(5,\)"):
        sd = ours.state_dict()
        sd["running_mean"] = np.zeros(5, dtype=np.float32)
        ours.load_state_dict(sd)


def test_batchnorm_to_float64_keeps_the_counter_integer():
    bn = nn.BatchNorm2d(3).to(np.float64)
    assert bn.weight.dtype == np.float64 and bn.running_var.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64
    bn(Tensor(np.random.default_rng(0).standard_normal((2, 2, 2, 3))))
    assert bn.running_mean.dtype == np.float64 and int(bn.num_batches_tracked) == 1


def test_batchnorm_shapes_and_errors():
    bn = nn.BatchNorm2d(16)
    assert bn.output_shape((28, 28, 16)) == (28, 28, 16)
    assert bn.rf_params((28, 28, 16)) == ((1, 1, 0), (1, 1, 0))
    assert nn.BatchNorm1d(5).output_shape((7, 5)) == (7, 5)
    with pytest.raises(ValueError, match="BatchNorm2d: input has 8 channels but num_features "
                                         "is 16"):
        bn(Tensor(np.zeros((2, 4, 4, 8), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm2d: input must be 4-D \(N, H, W, C\), got "
                                         r"2-D with shape \(2, 16\)"):
        bn(Tensor(np.zeros((2, 16), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm1d: input must be 2-D \(N, C\) or 3-D "
                                         r"\(N, L, C\)"):
        nn.BatchNorm1d(3).output_shape((2, 2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(Tensor(np.zeros((1, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="num_features must be an int >= 1, got 0"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\] or None, "
                                         r"got 1.5"):
        nn.BatchNorm2d(3, momentum=1.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,normalized", [((4, 6), 6), ((2, 3, 4, 5), 5),
                                              ((2, 3, 4, 5), (3, 4, 5))])
def test_layernorm_matches_torch(shape, normalized, dtype, rng, torch):
    theirs = torch.nn.LayerNorm(normalized).to(getattr(torch, dtype.__name__))
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-1, 1)
    ours = nn.LayerNorm(normalized, dtype=dtype)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    load_from_torch(ours, theirs)
    x = rng.standard_normal(shape).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    xt = Tensor(x, requires_grad=True)
    ours(xt).backward(dout)
    tx = torch.tensor(x, requires_grad=True)  # trailing axes: no transposition needed
    theirs(tx).backward(torch.tensor(dout))
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), **tol(dtype))
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), **tol(dtype))
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), **tol(dtype))
    assert ours.output_shape(shape[1:]) == shape[1:]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups,shape", [(2, (3, 4, 5, 6)), (1, (2, 3, 3, 4)),
                                          (4, (2, 3, 3, 4)), (3, (2, 5, 6))])
def test_groupnorm_matches_torch(groups, shape, dtype, rng, torch):
    c = shape[-1]
    theirs = torch.nn.GroupNorm(groups, c).to(getattr(torch, dtype.__name__))
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-1, 1)
    ours = nn.GroupNorm(groups, c, dtype=dtype)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    load_from_torch(ours, theirs)
    x = rng.standard_normal(shape).astype(dtype)
    for mode in (True, False):  # no running statistics: the same in both modes
        ours.train(mode)
        theirs.train(mode)
        run_both(ours, theirs, x, rng.standard_normal(shape).astype(dtype), torch, dtype)


def test_layer_and_group_norm_layer_errors():
    with pytest.raises(ValueError, match="GroupNorm: num_groups=4 does not divide "
                                         "num_channels=6"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="GroupNorm: input has 8 channels but num_channels "
                                         "is 6"):
        nn.GroupNorm(3, 6)(Tensor(np.zeros((2, 3, 3, 8))))
    with pytest.raises(ValueError, match=r"LayerNorm: input shape \(4, 4, 3\) does not end "
                                         r"with normalized_shape \(8,\)"):
        nn.LayerNorm(8).output_shape((4, 4, 3))
    assert nn.LayerNorm(8, elementwise_affine=False).num_parameters() == 0
    assert nn.LayerNorm(8, bias=False).bias is None
    assert nn.GroupNorm(2, 4, affine=False).num_parameters() == 0
