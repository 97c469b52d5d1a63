"""A network cut at its last convolutional block: the *body* (input -> the block's output, what
the ONNX graphs compute and the heat maps are read from) and the *head* (pooling and classifier).
Training uses the parts to put losses on the block's output; the conversion exports the body."""

from __future__ import annotations

from torch import nn


def split_network(model: nn.Module, arch: str) -> tuple[nn.Module, nn.Module]:
    """(body, head) sharing ``model``'s modules: ``head(body(x)) == model(x)``.

    body ends with the last convolutional block (ResNet ``layer4``, EfficientNet ``features``), the
    output the heat maps are computed from; head is the model's own pooling, flatten and classifier."""
    if arch.startswith("resnet"):
        body = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool,
                             model.layer1, model.layer2, model.layer3, model.layer4)
        head = nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)
    elif arch.startswith("efficientnet"):
        body = model.features
        head = nn.Sequential(model.avgpool, nn.Flatten(1), model.classifier)
    else:
        raise ValueError(f"no body/head split is known for architecture {arch!r}")
    return body.eval(), head.eval()


def full_model_target_layer(model: nn.Module, arch: str) -> nn.Module:
    """The layer pytorch-grad-cam would hook on the whole model (for reference checks)."""
    if arch.startswith("resnet"):
        return model.layer4[-1]
    if arch.startswith("efficientnet"):
        return model.features[-1]
    raise ValueError(f"no Grad-CAM target layer is known for architecture {arch!r}")
