"""The registry: names, defaults, input-size checks and the errors they give."""

from __future__ import annotations

import pytest

from convnet.models import LeNet5, default_input_shape, get_model, list_models, model_info

REQUIRED = ["lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn",
            "vgg16_bn", "vgg19_bn", "resnet18", "resnet34", "unet", "autoencoder",
            "autoencoder_upsample", "tcn", "cifar_small", "cifar_resnet20"]


def test_every_family_is_registered():
    names = list_models()
    assert names == sorted(names)
    assert set(REQUIRED) <= set(names)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match=r"unknown model 'vgg61'; did you mean .*vgg16"):
        get_model("vgg61")
    with pytest.raises(ValueError, match="Known models: alexnet"):
        model_info("nothing-like-it")


@pytest.mark.parametrize("name,least", [("vgg16", 32), ("alexnet", 63), ("resnet18", 1),
                                        ("unet", 188), ("cifar_small", 8)])
def test_smallest_input_is_reported(name, least):
    if least > 1:
        with pytest.raises(ValueError, match=rf"{name} cannot take {least - 1}x{least - 1}x\d "
                                             rf"input; the smallest it accepts is "
                                             rf"{least}x{least}"):
            get_model(name, input_size=least - 1, init=False)
    get_model(name, input_size=least, init=False)


def test_vgg16_on_digits_is_a_clear_error():
    with pytest.raises(ValueError, match=r"vgg16 cannot take 8x8x1 input; the smallest it "
                                         r"accepts is 32x32 \(.*MaxPool2d"):
        get_model("vgg16", in_channels=1, input_size=8, init=False)


def test_lenet5_pads_mnist_digits_to_32():
    net = get_model("lenet5", input_size=28)
    assert isinstance(net, LeNet5) and net.num_parameters() == 61_706
    assert net.c1.output_shape((28, 28, 1)) == (28, 28, 6)  # C1 pads 28 -> 32
    assert net.output_shape((28, 28, 1)) == (10,)
    bigger = get_model("lenet5", input_size=(36, 40), num_classes=3)
    assert bigger.output_shape((36, 40, 1)) == (3,)
    assert bigger.f6.in_features == 120 * 2 * 3  # 36 -> 32, 16, 12, 6 -> C5 2; 40 -> C5 3


def test_builder_arguments_and_defaults():
    assert default_input_shape("vgg16") == (224, 224, 3)
    assert default_input_shape("unet", in_channels=3) == (572, 572, 3)
    assert default_input_shape("tcn") == (100, 1)
    net = get_model("alexnet", num_classes=10, in_channels=1, init=False, dropout=0.2)
    assert net.classifier[6].out_features == 10 and net.features[0].in_channels == 1
    assert net.classifier[0].p == 0.2
    assert get_model("unet", num_classes=5, base_channels=8, init=False).head.out_channels == 5
    assert get_model("tcn", input_size=50, in_channels=3).output_shape((50, 3)) == (50, 10)
    assert get_model("resnet18", num_classes=7, init=False).fc.out_features == 7


def test_autoencoder_arguments():
    with pytest.raises(ValueError, match="reconstructs its input; num_classes does not apply"):
        get_model("autoencoder", num_classes=10)
    with pytest.raises(ValueError, match="input_size must be divisible by 4"):
        get_model("autoencoder", input_size=30)
    with pytest.raises(ValueError, match="decoder must be one of"):
        get_model("autoencoder", decoder="deconv")


@pytest.mark.parametrize("name,kwargs,match", [
    ("vgg16", dict(num_classes=0), "num_classes must be an int >= 1"),
    ("resnet18", dict(in_channels=2.5), "in_channels must be an int >= 1"),
    ("unet", dict(padding=2), "padding must be 0"),
    ("tcn", dict(channels=()), "channels must be a non-empty list"),
    ("lenet5", dict(input_size=(0, 3)), "input_size must be an int or an"),
    ("tcn", dict(input_size=(8, 8)), r"tcn takes sequences \(L, C\); input_size must be a "
                                     r"length, got \(8, 8\)"),
])
def test_bad_arguments_name_the_problem(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_model(name, init=False, **kwargs)
