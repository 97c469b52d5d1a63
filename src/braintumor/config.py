"""The one configuration dataclass for training, and the constants every module shares."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

# Class order used everywhere: folders, logits, tables, JSON.
CLASSES: tuple[str, ...] = ("glioma", "meningioma", "notumor", "pituitary")
# What a person reads for each class, and its colour (RGB), on the page, in charts and in reports.
CLASS_NAMES: dict[str, str] = {"glioma": "Glioma", "meningioma": "Meningioma", "notumor": "No tumour",
                               "pituitary": "Pituitary tumour"}
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {"glioma": (239, 68, 68), "meningioma": (245, 158, 11),
                                                  "notumor": (16, 185, 129), "pituitary": (99, 102, 241)}

# How a model's body runs (braintumor.inference.backends): auto is int8 when ONNX Runtime and calibration scans
# are there, else onnx, else torch.
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx", "int8")
BACKEND_HELP = ("inference engine: int8 (ONNX Runtime, int8-quantised: the fastest), onnx (ONNX Runtime, "
                "float32), torch (eager PyTorch, the reference) or auto (int8 when ONNX Runtime and the "
                "calibration scans are there, onnx without the scans, else torch)")

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def cache_dir() -> Path | None:
    """Where decoded training images and converted models are kept between runs:
    $BRAINTUMOR_CACHE (set but empty: no cache), else $XDG_CACHE_HOME/braintumor or
    ~/.cache/braintumor."""
    env = os.environ.get("BRAINTUMOR_CACHE")
    if env is not None:
        return Path(env) if env else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "braintumor"


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json`` in the run folder."""

    data: str = ""  # folder with one sub-folder per class (or a root holding Training/)
    out: str = "runs/default"  # run folder: checkpoints, metrics, plots
    arch: str = "resnet18"  # a name from braintumor.training.models.ARCHITECTURES
    pretrained: str = "none"  # none | imagenet | path to a weights file
    epochs: int = 30  # upper bound; early stopping may end sooner
    img_size: int = 224  # side of the square network input, in pixels
    resize_ratio: float = 1.0  # eval: resize to img_size*ratio, then centre-crop img_size
    fit: str = "pad"  # how a slice is made square: pad the shorter side (whole slice seen) or crop
    batch_size: int = 64
    device: str = "auto"  # auto | cpu | cuda | mps
    seed: int = 0
    resume: bool = False
    workers: int = 0  # cache-building processes (0 = in this process)
    # Optimisation
    lr: float = 2e-3  # peak learning rate (from scratch) / layer3-4 rate (imagenet: 3e-4)
    head_lr: float = 1e-3  # head learning rate when fine-tuning pretrained weights
    weight_decay: float = 5e-2
    warmup_epochs: int = 3  # linear warm-up, then cosine decay (from scratch)
    label_smoothing: float = 0.1
    patience: int = 0  # early stopping on validation loss; 0 = off
    time_budget: float = 0.0  # seconds; after epoch 1, cut the epoch count to fit (0 = off)
    keep_epochs: bool = False  # also save every epoch's weights (epoch-NNN.safetensors), to choose by source later
    ema_decay: float = 0.0  # exponential moving average of weights; 0 = off
    # Augmentation (applied to batches of tensors)
    crop_scale: tuple[float, float] = (0.6, 1.0)  # random-resized-crop area range
    rotation: float = 15.0  # degrees, +/-
    hflip: bool = True
    jitter: float = 0.15  # brightness and contrast
    mixup: float = 0.0  # probability of a CutMix batch (not used with boxes)
    # Tumour boxes: teach the network where the tumour is and break the source-class link
    boxes: str = ""  # TSV of radiologist boxes (file xc yc w h); "" = classification only
    cam_loss: float = 1.0  # weight of the CAM-in-box loss (with boxes)
    box_loss: float = 1.0  # weight of the box head's loss (with boxes)
    paste: float = 0.3  # share of no-tumour images that get a tumour pasted in (with boxes)
    erase: float = 0.12  # share of boxed tumour images whose tumour is covered (with boxes)
    erase_fill: float = 0.0  # share of covered tumours inpainted instead of covered with healthy tissue
    erase_mirror: float = 0.0  # share covered by the other hemisphere of the same slice instead
    style_mix: float = 0.3  # share of images given the other source's histogram (with boxes)
    artefacts: float = 0.3  # TorchIO MRI artefacts: how often each kind is applied (with boxes)
    init: str = ""  # start from this checkpoint's weights (all of them, head included)
    freeze_early: bool = False  # keep the early blocks (ResNet conv1-layer2) fixed: 2x faster on a CPU
    # More collections (braintumor.data.sources): folders of class folders (and tumour/ for an unknown type)
    sources: tuple[str, ...] = ()
    source_balance: float = 0.0  # draws per source within a class ~ size**power (0: natural, 1: equal)
    # Split
    val_fraction: float = 0.15
    split_file: str = ""  # reuse an existing split.json instead of computing one
    max_images: int = 0  # use at most this many images (debugging); 0 = all
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    classes: tuple[str, ...] = CLASSES
    amp: bool = True  # bfloat16 mixed precision: CUDA, and training on CPUs with native bfloat16
    channels_last: bool = True
    extra: dict = field(default_factory=dict)  # free-form notes kept with the run

    @classmethod
    def recipe(cls, pretrained: str, **overrides) -> "TrainConfig":
        """The default recipe for a kind of start: the specification's fine-tuning recipe for
        pretrained weights, and a from-scratch recipe (nothing frozen, warm-up + cosine) otherwise."""
        if pretrained != "none":
            base = dict(
                lr=3e-4, head_lr=1e-3, weight_decay=1e-4, warmup_epochs=0, label_smoothing=0.0,
                patience=5, crop_scale=(0.08, 1.0), resize_ratio=256 / 224, epochs=30, freeze_early=True,
            )
        else:
            base = {}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(pretrained=pretrained, **base)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        raw = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names}
        return cls(**kwargs)

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_json() + "\n")
