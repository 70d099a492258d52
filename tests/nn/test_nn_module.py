"""Module, Parameter and the containers: parameters and buffers by name, state_dict and
load_state_dict (strict or not), train/eval, zero_grad, to(dtype) and a readable repr --
the PyTorch-shaped base API of issue 2, checked against torch.nn where torch has it."""

from __future__ import annotations

import numpy as np
import pytest

from convnet import Tensor, nn


class TwoBranch(nn.Module):
    """A small custom module: a shared Linear used twice plus a buffer."""

    def __init__(self, rng=None):
        super().__init__()
        self.fc = nn.Linear(4, 4, rng=rng)
        self.body = nn.Sequential(nn.Conv2d(2, 3, 3, rng=rng), nn.BatchNorm2d(3), nn.ReLU())
        self.alias = self.fc                         # the same module under a second name
        self.scale = nn.Parameter(np.ones(4, dtype=np.float32))
        self.register_buffer("steps", np.zeros((), dtype=np.int64))
        self.register_buffer("cache", np.zeros(2, dtype=np.float32), persistent=False)

    def forward(self, x):
        return self.alias(self.fc(x)) * self.scale


def test_named_parameters_depth_first_each_once_like_torch(torch):
    net = TwoBranch(rng=0)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "fc.weight", "fc.bias", "body.0.weight", "body.0.bias",
                     "body.1.weight", "body.1.bias"]
    assert len(list(net.parameters())) == len(names)          # "alias" adds nothing
    assert net.num_parameters() == 4 + 16 + 4 + 54 + 3 + 3 + 3
    # the torch layout of the same tree orders its names the same way, modulo "scale"
    tnet = torch.nn.Module()
    tnet.fc = torch.nn.Linear(4, 4)
    tnet.body = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3),
                                    torch.nn.ReLU())
    tnet.alias = tnet.fc
    assert [n for n, _ in tnet.named_parameters()] == names[1:]
    # torch's state_dict repeats a shared module under each name; ours lists it once
    assert [k for k in tnet.state_dict() if not k.startswith("alias.")] == \
        [k for k in net.state_dict() if k != "steps"][1:]


def test_state_dict_holds_copies_params_then_persistent_buffers():
    net = TwoBranch(rng=0)
    sd = net.state_dict()
    assert list(sd)[:1] == ["scale"] and "steps" in sd and "cache" not in sd
    assert list(sd)[-4:] == ["body.1.bias", "body.1.running_mean", "body.1.running_var",
                             "body.1.num_batches_tracked"]
    sd["fc.weight"][...] = 123.0                              # a copy, not a view
    assert not np.any(net.fc.weight.data == 123.0)


def test_load_state_dict_round_trip_casts_and_leaves_objects_in_place(rng):
    src, dst = TwoBranch(rng=1), TwoBranch(rng=2)
    weight_obj = dst.fc.weight
    sd = {k: v.astype(np.float64) if v.dtype.kind == "f" else v
          for k, v in src.state_dict().items()}                # float64 values
    missing, unexpected = dst.load_state_dict(sd)
    assert missing == [] and unexpected == []
    assert dst.fc.weight is weight_obj                        # optimizers keep their handle
    assert dst.fc.weight.dtype == np.float32                  # cast to the parameter's dtype
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[k], v, err_msg=k)
    x = Tensor(rng.standard_normal((3, 4)).astype(np.float32))
    np.testing.assert_array_equal(dst(x).data, src(x).data)


def test_load_state_dict_strict_errors_are_value_errors_naming_the_keys():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    sd = net.state_dict()
    del sd["0.bias"]
    sd["9.extra"] = np.zeros(1)
    # a ValueError as issue 2 asks for bad input, still a KeyError for existing callers
    with pytest.raises(ValueError, match=r"^load_state_dict for Sequential: missing keys "
                                         r"\['0\.bias'\]; unexpected keys \['9\.extra'\]$"):
        net.load_state_dict(sd)
    with pytest.raises(KeyError):
        net.load_state_dict(sd)
    before = net[0].bias.data.copy()
    assert net.load_state_dict(sd, strict=False) == (["0.bias"], ["9.extra"])
    np.testing.assert_array_equal(net[0].bias.data, before)   # the missing one is untouched
    with pytest.raises(ValueError, match=r"0\.weight: expected shape \(3, 2\), got \(2, 3\)"):
        net.load_state_dict({**net.state_dict(), "0.weight": np.zeros((2, 3))})


def test_load_torch_state_dict_by_name(rng, torch):
    """BatchNorm and bias names follow torch: its state_dict loads by name (weights of
    conv/linear need their layout transposed, which the io floor does)."""
    tbn = torch.nn.BatchNorm1d(3)
    tbn(torch.randn(8, 3) * 2 + 1)
    bn = nn.BatchNorm1d(3)
    bn.load_state_dict({k: v.numpy() for k, v in tbn.state_dict().items()})
    np.testing.assert_allclose(bn.running_mean, tbn.running_mean.numpy())
    assert int(bn.num_batches_tracked) == 1


def test_train_eval_reach_every_submodule_and_change_behaviour(rng):
    net = nn.Sequential(nn.Linear(5, 5, rng=rng), nn.Dropout(0.5, rng=0),
                        nn.Sequential(nn.BatchNorm1d(5), nn.Dropout(0.9, rng=1)))
    assert net.eval() is net and not any(m.training for m in net.modules())
    x = Tensor(rng.standard_normal((6, 5)).astype(np.float32))
    a, b = net(x).data, net(x).data
    np.testing.assert_array_equal(a, b)                       # eval: deterministic
    net.train()
    assert all(m.training for m in net.modules())
    assert not np.array_equal(net(x).data, net(x).data)       # training: fresh masks


def test_zero_grad_clears_every_parameter(rng):
    net = nn.Sequential(nn.Linear(4, 3, rng=rng), nn.ReLU(), nn.Linear(3, 2, rng=rng))
    out = net(Tensor(rng.standard_normal((5, 4)).astype(np.float32)))
    out.backward(rng.standard_normal(out.shape).astype(np.float32))
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_to_float64_casts_parameters_and_buffers_only_floats(rng):
    net = nn.Sequential(nn.Conv2d(1, 2, 3, rng=rng), nn.BatchNorm2d(2))
    w = net[0].weight
    assert net.to(np.float64) is net
    assert net[0].weight is w and w.dtype == np.float64
    assert net[1].running_var.dtype == np.float64
    assert net[1].num_batches_tracked.dtype == np.int64       # integer buffers stay integer


def test_repr_is_readable_and_nested():
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding="same"), nn.ReLU(),
                        nn.DepthwiseSeparableConv2d(6, 8, 3, stride=2), nn.Flatten())
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Conv2d(1, 6, kernel_size=(5, 5), padding='same')\n"
        "  (1): ReLU()\n"
        "  (2): DepthwiseSeparableConv2d(\n"
        "    (depthwise): Conv2d(6, 6, kernel_size=(3, 3), stride=(2, 2), groups=6)\n"
        "    (pointwise): Conv2d(6, 8, kernel_size=(1, 1))\n"
        "  )\n"
        "  (3): Flatten(start_dim=1, end_dim=-1)\n"
        ")")
    assert repr(nn.Parameter(np.zeros(2))).startswith("Parameter containing:\nTensor(")


def test_sequential_indexing_iteration_and_output_shape(rng):
    layers = [nn.Conv2d(1, 2, 3, rng=rng), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    net = nn.Sequential(*layers)
    assert net[0] is layers[0] and net[-1] is layers[-1] and len(net) == 4
    assert list(net) == layers
    head = net[:2]
    assert isinstance(head, nn.Sequential) and list(head) == layers[:2]
    assert net.output_shape((8, 8, 1)) == (18,)
    named = nn.Sequential({"conv": layers[0], "act": layers[1]})
    assert named["conv"] is layers[0] and [n for n, _ in named.named_children()] == ["conv",
                                                                                     "act"]
    with pytest.raises(TypeError, match="Sequential: item 1 must be a Module, got int"):
        nn.Sequential(nn.ReLU(), 3)


def test_module_list_and_dict_register_children(rng):
    blocks = nn.ModuleList([nn.Linear(2, 2, rng=rng) for _ in range(3)])
    heads = nn.ModuleDict({"a": nn.Linear(2, 1, rng=rng)})
    holder = nn.Module()
    holder.blocks, holder.heads = blocks, heads
    assert [n for n, _ in holder.named_parameters()][:2] == ["blocks.0.weight", "blocks.0.bias"]
    assert "heads.a.weight" in holder.state_dict() and len(blocks) == 3
    with pytest.raises(TypeError, match="ModuleList: items must be Modules, got str"):
        blocks.append("x")


def test_subclass_must_call_super_init_first():
    class Bad(nn.Module):
        def __init__(self):
            self.w = 1

    with pytest.raises(RuntimeError, match=r"Bad: call super\(\)\.__init__\(\) before "
                                           r"assigning attribute 'w'"):
        Bad()


def test_init_args_are_recorded_for_the_architecture_file():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding="same")
    assert conv._init_args == ((3, 8, 3), {"stride": 2, "padding": "same"})
    block = nn.DepthwiseSeparableConv2d(4, 8, 3, padding=1)
    assert block._init_args == ((4, 8, 3), {"padding": 1})    # the outer call, not Sequential's


def test_reassigning_an_attribute_replaces_its_registration(rng):
    m = nn.Module()
    m.layer = nn.Linear(2, 2, rng=rng)
    m.layer = nn.Parameter(np.zeros(3))
    assert [n for n, _ in m.named_parameters()] == ["layer"]
    assert list(m.named_children()) == []
    del m.layer
    assert list(m.parameters()) == []
