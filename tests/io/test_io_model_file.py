"""Model files: the round trip (bit-identical weights and predictions) and the rules of
the architecture JSON (allowlist, containers, custom classes, no RNG side effects)."""

import json

import numpy as np
import pytest

import convnet
from convnet import Tensor, nn
from convnet.io import (
    ModelFormatError,
    read_model_metadata,
    read_tensor_file,
    register_class,
    registered_classes,
)
from convnet.nn import init


def _mixed_model(rng):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding="same", rng=rng), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.DepthwiseSeparableConv2d(8, 12, 3, padding=1, rng=rng), nn.LeakyReLU(0.2),
        nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.3, rng=5), nn.Linear(2 * 2 * 12, 7, rng=rng),
    )


def _train_a_little(model, rng, shape):
    """A few steps so BatchNorm's running statistics are not their initial values."""
    import convnet.functional as F
    from convnet import optim

    opt = optim.SGD(model.parameters(), lr=0.01)
    for _ in range(2):
        x = Tensor(rng.standard_normal((4, *shape)).astype(np.float32))
        loss = F.cross_entropy(model(x), rng.integers(0, 7, 4))
        opt.zero_grad()
        loss.backward()
        opt.step()


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert np.array_equal(sa[k], sb[k]), k
        assert sa[k].tobytes() == sb[k].tobytes(), k


def test_round_trip_weights_and_predictions_identical(tmp_path, rng):
    model = _mixed_model(rng)
    _train_a_little(model, rng, (8, 8, 3))
    path = tmp_path / "m.safetensors"
    convnet.save(model, path, metadata={"input_shape": [8, 8, 3], "note": "hi"})
    loaded, meta = convnet.load(path, with_metadata=True)
    assert meta == {"input_shape": [8, 8, 3], "note": "hi"}
    assert type(loaded) is nn.Sequential
    assert [type(m).__name__ for m in loaded] == [type(m).__name__ for m in model]
    _assert_same_weights(model, loaded)
    assert not loaded.training
    model.eval()
    x = Tensor(rng.standard_normal((5, 8, 8, 3)).astype(np.float32))
    with convnet.no_grad():
        assert np.array_equal(model(x).data, loaded(x).data)
    assert read_model_metadata(path)["note"] == "hi"


def test_round_trip_keeps_float64_and_hyperparameters(tmp_path, rng):
    model = nn.Sequential(nn.Conv2d(1, 4, (3, 2), stride=(2, 1), padding=((1, 0), (0, 1)),
                                    dilation=1, bias=False, rng=rng),
                          nn.ELU(alpha=0.7), nn.Flatten()).to(np.float64)
    convnet.save(model, tmp_path / "f64.safetensors")
    loaded = convnet.load(tmp_path / "f64.safetensors")
    assert loaded[0].weight.data.dtype == np.float64
    assert loaded[0].bias is None
    assert loaded[0].stride == (2, 1) and loaded[0].padding == ((1, 0), (0, 1))
    assert loaded[1].alpha == 0.7
    _assert_same_weights(model, loaded)


@pytest.mark.parametrize("name,kwargs,shape", [
    ("digits_cnn", {}, (8, 8, 1)),
    ("lenet5", {}, (32, 32, 1)),
    ("cifar_resnet20", {}, (32, 32, 3)),
])
def test_zoo_models_round_trip(tmp_path, rng, name, kwargs, shape):
    from convnet.models import get_model

    model = get_model(name, rng=rng, **kwargs)
    path = tmp_path / f"{name}.safetensors"
    convnet.save(model, path)
    loaded = convnet.load(path)
    assert type(loaded) is type(model)
    _assert_same_weights(model, loaded)
    model.eval()
    x = Tensor(rng.standard_normal((2, *shape)).astype(np.float32))
    with convnet.no_grad():
        assert np.array_equal(model(x).data, loaded(x).data)


def test_file_is_one_plain_safetensors_file(tmp_path, rng):
    from safetensors.numpy import load_file

    model = nn.Sequential(nn.Linear(3, 2, rng=rng))
    path = tmp_path / "m.safetensors"
    convnet.save(model, path)
    tensors = load_file(str(path))  # any safetensors reader sees the weights
    assert set(tensors) == {"0.weight", "0.bias"}
    _, meta = read_tensor_file(path)
    doc = json.loads(meta["convnet"])
    assert meta["format"] == "convnet.model" and doc["version"] == 1
    assert doc["architecture"]["class"] == "Sequential"
    assert doc["tensors"]["0.weight"] == {"dtype": "float32", "shape": [3, 2]}


def test_edited_container_is_stored_from_its_children(tmp_path, rng):
    model = nn.Sequential(nn.Linear(4, 3, rng=rng), nn.ReLU())
    model.append(nn.Linear(3, 2, rng=rng))
    convnet.save(model, tmp_path / "m.safetensors")
    assert len(convnet.load(tmp_path / "m.safetensors")) == 3


def test_model_changed_after_construction_fails_at_save(tmp_path, rng):
    from convnet.models.digits import DigitsCNN

    model = DigitsCNN(rng=rng)
    model.fc2 = nn.Linear(128, 3, rng=rng)  # no longer what DigitsCNN(...) builds
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        convnet.save(model, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


class _Custom(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.lin = nn.Linear(n, 2)

    def forward(self, x):
        return self.lin(x)


def test_classes_outside_convnet_need_registering(tmp_path, rng):
    assert "_Custom" not in registered_classes()
    with pytest.raises(TypeError, match="register_class"):
        convnet.save(_Custom(3), tmp_path / "c.safetensors")
    register_class(_Custom)
    try:
        model = _Custom(3)
        convnet.save(model, tmp_path / "c.safetensors")
        _assert_same_weights(model, convnet.load(tmp_path / "c.safetensors"))
    finally:
        from convnet.io import architecture
        architecture._extra.pop("_Custom")
        architecture._cache["registry"] = None
    with pytest.raises(ModelFormatError, match="unknown layer type '_Custom'"):
        convnet.load(tmp_path / "c.safetensors")


def test_registry_is_convnet_classes_only():
    reg = registered_classes()
    assert {"Conv2d", "Linear", "Sequential", "DigitsCNN", "VGG", "ResNet"} <= set(reg)
    assert all(c.__module__.startswith("convnet.") for c in reg.values())


def test_save_and_load_do_not_advance_the_default_rng(tmp_path):
    init.manual_seed(123)
    model = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3))  # rng=None: drawn from it
    state = init.default_rng().bit_generator.state
    convnet.save(model, tmp_path / "m.safetensors")
    convnet.load(tmp_path / "m.safetensors")
    assert init.default_rng().bit_generator.state == state


def test_save_rejects_unserialisable_metadata(tmp_path, rng):
    with pytest.raises(TypeError, match="JSON"):
        convnet.save(nn.Linear(2, 2, rng=rng), tmp_path / "m.safetensors",
                     metadata={"bad": object()})


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        convnet.load(tmp_path / "nope.safetensors")
    with pytest.raises(IsADirectoryError):
        convnet.load(tmp_path)
