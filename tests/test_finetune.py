"""``braintumor finetune``: a site's scans adapt a checkpoint into an ordinary, calibrated checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def site(sample_dir, tmp_path_factory) -> Path:
    """36 scans in class folders: the twelve samples, each also darker and brighter (a 'site' whose
    contrast differs), the notumor folder left out to show that a site may lack a class."""
    root = tmp_path_factory.mktemp("site")
    for p in sorted(sample_dir.rglob("*.jpg")):
        if p.parent.name == "notumor":
            continue
        (root / p.parent.name).mkdir(exist_ok=True)
        img = Image.open(p).convert("L")
        for k, gamma in enumerate((1.0, 0.6, 1.6)):
            out = img.point(lambda v, g=gamma: int(255 * (v / 255) ** g)).rotate(7 * k)
            out.save(root / p.parent.name / f"{p.stem}-{k}.png")
    return root


def test_finetune_adapts_the_late_layers_and_calibrates_on_the_site(site, random_checkpoint, tmp_path, capsys):
    from braintumor.training.checkpoint import load_checkpoint
    from braintumor.cli import main
    from braintumor.inference.predictor import Predictor

    out = tmp_path / "run"
    assert main(["finetune", "--data", str(site), "--model", str(random_checkpoint), "--epochs", "2",
                 "--out", str(out), "--batch-size", "16"]) == 0
    printed = capsys.readouterr().out
    assert "before" in printed and "after" in printed and "missed tumours" in printed

    report = json.loads((out / "finetune.json").read_text())
    assert report["site_images"] == 27
    val = json.loads((out / "split.json").read_text())["val"]
    assert report["validation_images"] == len(val) > 0
    for part in ("before", "after"):
        fig = report[part]
        assert fig["n"] == len(val) and 0 <= fig["accuracy"] <= 1
        assert sum(fig["decisions"].values()) == len(val)

    start, adapted = load_checkpoint(random_checkpoint), load_checkpoint(out / "last.safetensors")
    assert adapted.meta["config"]["extra"]["finetuned_from"]["sha256"] == start.sha256
    for key in ("temperature", "conformal", "ood", "notumor_rule"):
        assert key in adapted.meta, key  # refitted on the site's validation part
    s0, s1 = start.state_dict, adapted.state_dict
    weights = [k for k in s0 if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(np.array_equal(s0[k].numpy(), s1[k].numpy()) for k in weights if k.startswith(("conv1.", "layer1.")))
    # the early blocks' batch-norm statistics follow the site's scans
    assert not np.array_equal(s0["layer1.0.bn1.running_mean"].numpy(), s1["layer1.0.bn1.running_mean"].numpy())
    assert any(not np.array_equal(s0[k].numpy(), s1[k].numpy()) for k in s0 if k.startswith("layer4."))

    p = Predictor.load(out / "last.safetensors")  # an ordinary checkpoint
    r = p.predict(Image.open(next(site.rglob("*.png"))))
    assert set(r["probabilities"]) == set(start.classes)


def test_finetune_refuses_too_few_images(tmp_path, random_checkpoint, capsys):
    from braintumor.cli import main

    (tmp_path / "glioma").mkdir()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "glioma" / "a.png")
    assert main(["finetune", "--data", str(tmp_path), "--model", str(random_checkpoint)]) == 2
    assert "at least 20" in capsys.readouterr().err
