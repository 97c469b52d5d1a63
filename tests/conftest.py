"""Shared fixtures: the shipped sample of real scans, synthetic images and small real checkpoints."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("BRAINTUMOR_NO_PROGRESS", "1")

SAMPLE = Path(__file__).parent / "data" / "sample"
SHARED_TRAINING = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brain-tumor-mri" / "Training"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """Twelve real MRI slices (three per class, CC0) in class folders."""
    return SAMPLE


@pytest.fixture(scope="session")
def sample_files(sample_dir) -> list[tuple[Path, str]]:
    return sorted((p, p.parent.name) for p in sample_dir.rglob("*.jpg"))


@pytest.fixture(scope="session")
def shared_training() -> Path:
    """The full Training folder beside the repo; tests that need it skip where it is missing."""
    if not SHARED_TRAINING.is_dir():
        pytest.skip("../shared/data/brain-tumor-mri/Training is not here")
    return SHARED_TRAINING


def random_resnet18(path: Path, seed: int, name: str) -> Path:
    """A real ResNet18 checkpoint at 64 px with random weights (for mechanics, not accuracy)."""
    import torch

    from braintumor.training.checkpoint import save_checkpoint
    from braintumor.training.models import build_model
    from braintumor.training.transforms import Preprocessing

    torch.manual_seed(seed)
    model = build_model("resnet18", 4).eval()
    save_checkpoint(path, model, "resnet18", Preprocessing(img_size=64), meta={"name": name})
    return path


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    return random_resnet18(tmp_path_factory.mktemp("ck") / "random-r18-64.safetensors", 0, "random-r18-64")


@pytest.fixture(scope="session")
def second_checkpoint(tmp_path_factory) -> Path:
    """Another random ResNet18 (other weights): the second member of an ensemble."""
    return random_resnet18(tmp_path_factory.mktemp("ck2") / "second.safetensors", 7, "second")


@pytest.fixture(scope="session")
def predictor(random_checkpoint):
    """A Predictor on the random checkpoint (the default backend, as the app uses it)."""
    from braintumor.inference.predictor import Predictor

    return Predictor.load(random_checkpoint)


def synthetic_scan(seed: int = 0, size: int = 128) -> np.ndarray:
    """A grey disc with a bright blob on black: scan-like, but not a real MRI."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    img = np.where((yy - c) ** 2 + (xx - c) ** 2 < (0.4 * size) ** 2, 90.0, 0.0)
    by, bx = rng.uniform(0.3, 0.7, 2) * size
    img += 120 * np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * (0.06 * size) ** 2))
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def box_checkpoint(path: Path, always: int | None = None, size: int = 64, seed: int = 1) -> Path:
    """A ResNet18 checkpoint with a box head and random weights; with ``always``, its classifier
    bias makes every answer that class (so that tests know whether an answer carries a box)."""
    import torch

    from braintumor.training.checkpoint import save_checkpoint
    from braintumor.training.models import build_model
    from braintumor.training.transforms import Preprocessing

    torch.manual_seed(seed)
    model = build_model("resnet18", 4, box_head=True).eval()
    if always is not None:
        bias = torch.zeros(4)
        bias[always] = 20.0
        with torch.no_grad():
            model.fc.bias.copy_(bias)
    save_checkpoint(path, model, "resnet18", Preprocessing(img_size=size), meta={"name": path.stem})
    return path


def write_boxes_file(sample_dir: Path, path: Path) -> Path:
    """A boxes TSV (file xc yc w h) with one box for every tumour image of ``sample_dir``."""
    rows = [("file", "xc", "yc", "w", "h")]
    for p in sorted(sample_dir.rglob("*.jpg")):
        if p.parent.name != "notumor":
            rows.append((f"{p.parent.name}/{p.name}", "0.5", "0.45", "0.3", "0.25"))
    with open(path, "w", newline="") as f:
        csv.writer(f, delimiter="\t").writerows(rows)
    return path
