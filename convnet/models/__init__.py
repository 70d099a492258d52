"""convnet.models: the zoo, one file per family, and a registry by name.

    >>> net = get_model("vgg16")                      # 138,357,544 parameters
    >>> net = get_model("lenet5", input_size=28)      # MNIST-sized LeNet-5
    >>> net = get_model("vgg16", init=False)          # shapes only, for summaries
    >>> list_models()
    ['alexnet', 'autoencoder', ...]

Submodule names follow the reference checkpoints (torchvision's ``features.0``,
``classifier.6``, ``conv1``, ``bn1``, ``layer1.0.downsample.0``), so foreign weights can
load by name.  Chains are ``Sequential`` subclasses; models with skip connections are
``GraphModule`` subclasses that write their wiring once in ``graph(g, x)``.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
from dataclasses import dataclass
from typing import Callable

from ..nn import init as _init
from ._adaptive import AdaptiveAvgPool2d, adaptive_avg_pool2d
from ._common import size_pair
from ._graph import GraphModule
from .alexnet import AlexNet, alexnet
from .autoencoder import ConvAutoencoder, conv_autoencoder
from .cifar import CifarCNN, CifarResNet, cifar_resnet20, cifar_small
from .lenet import LeNet5, lenet5
from .resnet import BasicBlock, ResNet, resnet18, resnet34
from .tcn import TCN, TemporalBlock, tcn
from .unet import UNet, unet
from .vgg import VGG, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn

__all__ = ["get_model", "list_models", "model_info", "default_input_shape", "ModelEntry",
           "GraphModule", "AdaptiveAvgPool2d", "adaptive_avg_pool2d",
           "LeNet5", "AlexNet", "VGG", "ResNet", "BasicBlock", "UNet", "ConvAutoencoder",
           "TCN", "TemporalBlock", "CifarCNN", "CifarResNet",
           "lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn",
           "vgg16_bn", "vgg19_bn", "resnet18", "resnet34", "unet", "conv_autoencoder", "tcn",
           "cifar_small", "cifar_resnet20"]


@dataclass(frozen=True)
class ModelEntry:
    """How the registry builds one model.

    ``input_shape`` is the default per-sample input ((H, W, C) or (L, C));
    ``classes`` says whether ``num_classes`` applies; ``sized`` whether the builder
    itself takes ``input_size`` (otherwise it is only checked against the model).
    """

    builder: Callable
    input_shape: tuple
    task: str
    description: str
    classes: bool = True
    sized: bool = False
    extra: tuple = ()


def _entries() -> dict[str, ModelEntry]:
    imagenet = (224, 224, 3)
    reg = {
        "lenet5": ModelEntry(lenet5, (32, 32, 1), "classification",
                             "LeNet-5, classic: tanh, average pooling, full C3", sized=True),
        "alexnet": ModelEntry(alexnet, imagenet, "classification", "AlexNet (torchvision)"),
        "resnet18": ModelEntry(resnet18, imagenet, "classification", "ResNet-18, basic blocks"),
        "resnet34": ModelEntry(resnet34, imagenet, "classification", "ResNet-34, basic blocks"),
        "unet": ModelEntry(unet, (572, 572, 1), "segmentation",
                           "U-Net, the paper's valid convs and crop-and-concatenate"),
        "autoencoder": ModelEntry(conv_autoencoder, (28, 28, 1), "reconstruction",
                                  "conv autoencoder, transposed-conv decoder", classes=False,
                                  sized=True, extra=(("decoder", "transpose"),)),
        "autoencoder_upsample": ModelEntry(conv_autoencoder, (28, 28, 1), "reconstruction",
                                           "conv autoencoder, upsample-then-conv decoder",
                                           classes=False, sized=True,
                                           extra=(("decoder", "upsample"),)),
        "tcn": ModelEntry(tcn, (100, 1), "sequence",
                          "temporal CNN: dilated causal 1-D convs, residual blocks"),
        "cifar_small": ModelEntry(cifar_small, (32, 32, 3), "classification",
                                  "small VGG-style CNN for 32x32x3"),
        "cifar_resnet20": ModelEntry(cifar_resnet20, (32, 32, 3), "classification",
                                     "ResNet-20 for 32x32x3"),
    }
    for depth, fns in ((11, (vgg11, vgg11_bn)), (13, (vgg13, vgg13_bn)),
                       (16, (vgg16, vgg16_bn)), (19, (vgg19, vgg19_bn))):
        reg[f"vgg{depth}"] = ModelEntry(fns[0], imagenet, "classification", f"VGG-{depth}")
        reg[f"vgg{depth}_bn"] = ModelEntry(fns[1], imagenet, "classification",
                                           f"VGG-{depth} with BatchNorm")
    try:  # the default model of `convnet train`, written alongside the zoo
        digits = importlib.import_module(".digits", __name__)
    except ImportError:
        digits = None
    if digits is not None and hasattr(digits, "digits_cnn"):
        reg["digits_cnn"] = ModelEntry(digits.digits_cnn, (8, 8, 1), "classification",
                                       "small CNN for 8x8 digits (convnet train's default)",
                                       sized=True)
    return dict(sorted(reg.items()))


_REGISTRY = _entries()


def list_models() -> list[str]:
    """Every name ``get_model`` accepts, sorted."""
    return list(_REGISTRY)


def model_info(name: str) -> ModelEntry:
    if not isinstance(name, str) or name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} Known models: "
                         f"{', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def default_input_shape(name: str, in_channels: int | None = None) -> tuple:
    """The per-sample input the model was designed for, e.g. (224, 224, 3) for vgg16."""
    shape = model_info(name).input_shape
    return shape if in_channels is None else (*shape[:-1], in_channels)


def _spatial(input_size, entry: ModelEntry, name: str) -> tuple:
    if len(entry.input_shape) == 2:  # sequences: input_size is the length
        if isinstance(input_size, (tuple, list)) and len(input_size) == 1:
            input_size = input_size[0]
        if isinstance(input_size, (tuple, list)):
            raise ValueError(f"{name} takes sequences (L, C); input_size must be a length, "
                             f"got {tuple(input_size)}")
        return (size_pair(input_size, "input_size", name)[0],)
    return size_pair(input_size, "input_size", name)


def _smallest_square(model, ndim: int, channels: int, limit: int = 1024) -> int | None:
    for n in range(1, limit + 1):
        try:
            model.output_shape((n,) * ndim + (channels,))
            return n
        except ValueError:
            continue
    return None


def get_model(name: str, num_classes=None, in_channels=None, input_size=None, rng=None,
              init: bool = True, dtype=None, **kwargs):
    """Build zoo model ``name``.

    Args:
        name: one of ``list_models()``.
        num_classes: output classes (U-Net: output maps; TCN: outputs per step).
            Default: the model's own (1000 for the ImageNet nets, 10, 2 for U-Net).
        in_channels: input channels. Default: the model's own.
        input_size: int or (H, W) (sequence length for ``tcn``).  Builders that size
            layers from it (LeNet-5, the autoencoder) use it; for every model it is
            checked, and an input the model cannot take raises ValueError naming the
            smallest one it accepts (VGG-16 on 8x8 digits: "at least 32x32").
        rng: ``numpy.random.Generator`` or int seed for the initial weights.
        init: ``False`` skips the random draws (parameters are lazily-allocated
            zeros): for summaries of big models, never for training.
        dtype: parameter dtype (default float32).
        **kwargs: passed to the builder (e.g. ``dropout``, ``base_channels``).
    """
    entry = model_info(name)
    args = dict(entry.extra)
    args.update(kwargs)
    if num_classes is not None:
        if not entry.classes:
            raise ValueError(f"{name} reconstructs its input; num_classes does not apply "
                             f"(got {num_classes!r})")
        args["num_classes"] = num_classes
    if in_channels is not None:
        args["in_channels"] = in_channels
    spatial = None
    if input_size is not None:
        spatial = _spatial(input_size, entry, name)
        if entry.sized:
            args["input_size"] = spatial if len(spatial) > 1 else spatial[0]
    with _init.skip_init() if not init else contextlib.nullcontext():
        model = entry.builder(rng=rng, dtype=dtype, **args)
    if spatial is not None:
        channels = in_channels if in_channels is not None else entry.input_shape[-1]
        shape = (*spatial, channels)
        try:
            model.output_shape(shape)
        except ValueError as err:
            least = _smallest_square(model, len(spatial), channels)
            hint = (f"; the smallest it accepts is {'x'.join([str(least)] * len(spatial))}"
                    if least else "")
            raise ValueError(f"{name} cannot take {'x'.join(map(str, shape))} input{hint} "
                             f"({err})") from err
    return model
