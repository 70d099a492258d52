"""The reference figures: receptive fields, shapes, MACs and parameters of the classic nets,
each worked out here by hand (or from the papers) rather than by the code under test."""

from __future__ import annotations

import pytest

import convnet
from convnet.inspect import summary
from convnet.models import get_model


@pytest.fixture(scope="module")
def vgg16():
    return summary(get_model("vgg16", init=False), (224, 224, 3))


def test_vgg16_receptive_field_at_conv5_3_and_pool5(vgg16):
    # 3x3 convs add 2*jump, 2x2/2 pools add 1*jump and double it:
    # block1 1+2+2 (+1) = 6 (j 2); block2 6+4+4 (+2) = 16 (j 4); block3 16+8*3 (+4) = 44 (j 8);
    # block4 44+16*3 (+8) = 100 (j 16); block5 100+32*3 = 196 = conv5_3; +16 = 212 = pool5.
    conv5_3, pool5 = vgg16.row("features.28"), vgg16.row("features.30")
    assert conv5_3.type == "Conv2d" and pool5.type == "MaxPool2d"
    assert conv5_3.receptive_field == (196, 196) and conv5_3.jump == (16, 16)
    assert pool5.receptive_field == (212, 212) and pool5.jump == (32, 32)
    # pool k=2 shifts the centre by j/2: 0.5 + 1 + 2 + 4 + 8
    assert pool5.start == (15.5, 15.5)


def test_vgg16_shapes_follow_seed_003(vgg16):
    shapes = [(r.type, r.output_shape) for r in vgg16.rows
              if r.type in ("Conv2d", "MaxPool2d")]
    walk = []
    for size, width, convs in ((224, 64, 2), (112, 128, 2), (56, 256, 3), (28, 512, 3),
                               (14, 512, 3)):
        walk += [("Conv2d", (size, size, width))] * convs
        walk.append(("MaxPool2d", (size // 2, size // 2, width)))
    assert shapes == walk
    assert walk[-1] == ("MaxPool2d", (7, 7, 512))
    assert vgg16.row("flatten").output_shape == (25_088,)
    assert vgg16.output_shape == (1000,)


def test_vgg16_macs_are_15_47_g(vgg16):
    convs = [(224, 3, 64), (224, 64, 64), (112, 64, 128), (112, 128, 128),
             (56, 128, 256), (56, 256, 256), (56, 256, 256),
             (28, 256, 512), (28, 512, 512), (28, 512, 512),
             (14, 512, 512), (14, 512, 512), (14, 512, 512)]
    expected = sum(n * n * 9 * cin * cout for n, cin, cout in convs)
    expected += 25_088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert vgg16.total_macs == expected == 15_470_264_320
    assert round(vgg16.total_macs / 1e9, 2) == 15.47
    assert vgg16.row("features.0").macs == 224 * 224 * 64 * 27


def test_vgg16_first_fully_connected_layer_is_shown(vgg16):
    fc1 = vgg16.row("classifier.0")
    assert fc1.type == "Linear" and fc1.params == 102_764_544 == 25_088 * 4096 + 4096
    line = next(ln for ln in vgg16.to_text().splitlines() if ln.startswith("classifier.0"))
    assert "102,764,544" in line and "(Linear)" in line
    assert vgg16.total_params == 138_357_544 == vgg16.trainable_params
    assert fc1.params / vgg16.total_params > 0.74  # seed 003: "the majority"


def test_alexnet_receptive_field_at_the_last_max_pool():
    # conv 11/4 -> 11 (j 4); pool 3/2 -> 19 (j 8); conv 5 -> 51; pool 3/2 -> 67 (j 16);
    # three 3x3 convs -> 99, 131, 163; pool 3/2 -> 195 (j 32).
    s = summary(get_model("alexnet", init=False), (224, 224, 3))
    pool = s.row("features.12")
    assert pool.type == "MaxPool2d" and pool.receptive_field == (195, 195)
    assert pool.jump == (32, 32) and pool.output_shape == (6, 6, 256)
    assert s.total_params == 61_100_840


def test_lenet5_receptive_field_at_s4():
    # C1 5 -> 5; S2 2/2 -> 6 (j 2); C3 5 -> 6 + 4*2 = 14; S4 2/2 -> 16 (j 4)
    s = summary(get_model("lenet5"), (32, 32, 1))
    assert s.row("s4").receptive_field == (16, 16) and s.row("s4").jump == (4, 4)
    assert [s.row(n).output_shape for n in ("c1", "s2", "c3", "s4", "c5")] == \
        [(28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16), (1, 1, 120)]
    assert s.row("c5").receptive_field == (32, 32)
    assert s.total_params == 61_706


def test_resnet18_receptive_field_through_the_residual_stages():
    # conv1 7/2 -> 7 (j 2); maxpool 3/2 -> 11 (j 4); layer1: four 3x3 -> 43;
    # layer2: 3x3/2 -> 51 (j 8), three 3x3 -> 99; layer3: 115 (j 16), 211;
    # layer4: 243 (j 32), 435.  The 1x1 shortcuts see less and never widen the union.
    s = summary(get_model("resnet18", init=False), (224, 224, 3))
    assert s.row("layer1.1.add").receptive_field == (43, 43)
    assert s.row("layer2.0.downsample.0").receptive_field == (43, 43)
    assert s.row("layer2.0.add").receptive_field == (67, 67)
    assert s.row("layer4.1.add").receptive_field == (435, 435)
    assert s.row("layer4.1.add").output_shape == (7, 7, 512)
    avg = s.row("avgpool")
    assert avg.receptive_field == (224, 224) and avg.jump == (None, None)
    assert round(s.total_macs / 1e9, 2) == 1.81
    assert s.total_params == 11_689_512


def test_unet_shapes_of_the_paper():
    s = summary(get_model("unet", init=False), (572, 572, 1), check_tiling=True)
    assert s.row("enc1.2").output_shape == (568, 568, 64)
    assert s.row("bottleneck.2").output_shape == (28, 28, 1024)
    assert s.row("up4").output_shape == (56, 56, 512)
    assert s.row("crop").output_shape == (56, 56, 512)  # 64x64 cropped to 56x56
    assert s.row("concat").output_shape == (56, 56, 1024)
    assert s.output_shape == (388, 388, 2)
    assert all(r.tiles is not False for r in s.rows)
    # the crop moves the field's centre by (64 - 56)/2 units of jump 8
    enc4 = s.row("enc4.3")
    assert s.row("crop").start[0] == enc4.start[0] + 4 * enc4.jump[0]


def test_summary_by_name_builds_without_drawing():
    s = convnet.summary("lenet5", "28x28x1")
    assert s.model == "LeNet5" and s.row("c1").output_shape == (28, 28, 6)
    s = convnet.summary("vgg16", "64x64x1")
    assert s.row("features.0").params == 9 * 64 + 64
