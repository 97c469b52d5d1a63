"""Self-describing checkpoints and the shipped model's integrity check."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from braintumor.inference import shipped
from braintumor.training.checkpoint import (CheckpointError, load_checkpoint, public_meta, save_checkpoint,
                                   sha256_file)
from braintumor.config import CLASSES
from braintumor.training.models import build_model
from braintumor.training.transforms import Preprocessing


def test_roundtrip_keeps_everything_needed_to_use_it(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet18", 4).eval()
    prep = Preprocessing(96, 1.1, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    path = tmp_path / "m.safetensors"
    digest = save_checkpoint(path, model, "resnet18", prep, meta={"val": {"accuracy": 0.5}})
    ck = load_checkpoint(path, expected_sha256=digest)
    assert ck.arch == "resnet18" and ck.classes == CLASSES and ck.preprocessing == prep
    assert ck.meta["val"]["accuracy"] == 0.5 and ck.sha256 == digest == sha256_file(path)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(ck.build()(x), model(x), atol=1e-5)


def test_half_precision_checkpoint_is_close_and_smaller(tmp_path):
    model = build_model("resnet18", 4).eval()
    full, half = tmp_path / "f.safetensors", tmp_path / "h.safetensors"
    save_checkpoint(full, model, "resnet18", Preprocessing(64))
    save_checkpoint(half, model, "resnet18", Preprocessing(64), half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(load_checkpoint(half).build()(x), model(x), atol=1e-2)


def test_checkpoint_is_not_a_pickle(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, build_model("resnet18", 4), "resnet18", Preprocessing(64))
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8:8 + header_len])  # safetensors: JSON header + raw tensors
    assert "braintumor" in header["__metadata__"]


def test_shipped_model_loads_and_is_checked():
    m = shipped.manifest()
    ck = shipped.load_default()
    assert ck.sha256 == m["sha256"] and ck.classes == CLASSES
    assert shipped.default_model_path().stat().st_size < 50 * 1024 * 1024
    assert ck.meta["val"]["accuracy"] > 0.9  # every source's validation slices (MODEL_CARD.md)


def test_damaged_shipped_weights_give_a_clear_error(tmp_path, monkeypatch):
    copy = tmp_path / "weights"
    shutil.copytree(shipped.weights_dir(), copy)
    f = copy / shipped.manifest()["file"]
    data = bytearray(f.read_bytes())
    data[-100] ^= 0xFF
    f.write_bytes(bytes(data))
    monkeypatch.setattr(shipped, "weights_dir", lambda: copy)
    with pytest.raises(CheckpointError, match="does not match the expected"):
        shipped.load_default()


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_public_meta_hides_paths_and_arrays():
    meta = {"name": "m", "val": {"accuracy": 0.9}, "config": {"data": "/secret/path"},
            "ood": {"threshold": 3.0, "mean": list(range(512))}}
    pub = public_meta(meta)
    assert pub == {"name": "m", "val": {"accuracy": 0.9}, "ood": {"threshold": 3.0}}


def test_shipped_public_meta_is_small_and_has_the_figures():
    pub = public_meta(shipped.load_default().meta)
    assert len(json.dumps(pub)) < 20_000  # no gate arrays or conformal scores in /api/model
    assert "config" not in pub and pub["val"]["accuracy"] > 0.9 and "temperature" in pub
