"""Training on several collections: source folders, patient-grouped splits, source-balanced draws,
the partial label for tumours of unknown type, the same-scan counterfactual, and padding to a square."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from braintumor.training.box_supervision import boxes_in_prepared
from braintumor.cli import main as cli_main
from braintumor.config import CLASSES
from braintumor.training.engine import answered_right, classification_loss
from braintumor.errors import DataError
from braintumor.training.source_aug import copy_paste, mirror_fill
from braintumor.data.sources import (NOTUMOR, TUMOUR, list_source, sampling_weights, split_images, split_source)
from braintumor.training.transforms import Preprocessing, prepare

from conftest import synthetic_scan, write_boxes_file


def make_source(folder: Path, patients: int = 4, per_patient: int = 3) -> Path:
    """A FLAIR-like collection: glioma and no-tumour slices of the same patients, boxes for the
    gliomas, a manifest naming each slice's patient, and two tumours of unknown type."""
    rows, boxes = ["file\tpatient"], ["file\txc\tyc\tw\th"]
    for p in range(patients):
        for k in range(per_patient):
            for cls in ("glioma", "notumor"):
                rel = f"{cls}/P{p}_{cls}_{k}.png"
                (folder / cls).mkdir(parents=True, exist_ok=True)
                Image.fromarray(synthetic_scan(100 * p + k + (50 if cls == "glioma" else 0), 64)).save(folder / rel)
                rows.append(f"{rel}\tP{p}")
                if cls == "glioma":
                    boxes.append(f"{rel}\t0.3\t0.4\t0.2\t0.2")
    (folder / "tumour").mkdir()
    for k in range(2):
        Image.fromarray(synthetic_scan(900 + k, 80)[:, :60]).save(folder / "tumour" / f"y{k}.jpg")
    (folder / "manifest.tsv").write_text("\n".join(rows) + "\n")
    (folder / "boxes.tsv").write_text("\n".join(boxes) + "\n")
    return folder


def test_a_source_folder_lists_classes_boxes_patients_and_unknown_tumours(tmp_path):
    images = list_source(make_source(tmp_path / "flair"))
    assert {im.source for im in images} == {"flair"}
    by_label = {lab: [im for im in images if im.label == lab] for lab in {im.label for im in images}}
    assert len(by_label[CLASSES.index("glioma")]) == 12 and len(by_label[NOTUMOR]) == 12
    assert len(by_label[TUMOUR]) == 2
    assert all(im.box is not None for im in by_label[CLASSES.index("glioma")])
    assert all(im.box is None for im in by_label[NOTUMOR])
    glioma = by_label[CLASSES.index("glioma")][0]
    assert glioma.box == pytest.approx((0.2, 0.3, 0.4, 0.5))
    assert glioma.group == "flair:P0"
    assert by_label[TUMOUR][0].group == "flair:tumour/y0.jpg"  # no patient: each image its own group


def test_a_folder_without_class_folders_is_refused(tmp_path):
    (tmp_path / "empty" / "misc").mkdir(parents=True)
    with pytest.raises(DataError, match="no class folders"):
        list_source(tmp_path / "empty")


def test_the_split_keeps_each_patient_on_one_side(tmp_path):
    images = list_source(make_source(tmp_path / "flair", patients=8))
    train, val = split_source(images, 0.25, seed=0)
    assert val and train and not set(train) & set(val)
    patient = {im.rel: im.group for im in images}
    assert not {patient[r] for r in train} & {patient[r] for r in val}
    assert sorted(train + val) == sorted(im.rel for im in images)


def test_draws_balance_sources_within_a_class_and_keep_class_shares():
    labels = np.array([0] * 90 + [0] * 10 + [2] * 50)
    sources = ["a"] * 90 + ["b"] * 10 + ["a"] * 50
    natural = sampling_weights(labels, sources, 0.0)
    assert natural == pytest.approx(np.ones(150))
    equal = sampling_weights(labels, sources, 1.0)
    assert equal[:90].sum() == pytest.approx(equal[90:100].sum())  # each source half of the class
    assert equal[:100].sum() == pytest.approx(100) and equal[100:].sum() == pytest.approx(50)
    half = sampling_weights(labels, sources, 0.5)
    assert half[:90].sum() / half[90:100].sum() == pytest.approx(3.0)  # sqrt(90) / sqrt(10)


def test_partial_label_is_minus_log_of_the_tumour_classes_summed():
    logits = torch.tensor([[2.0, 0.5, 1.0, -1.0], [0.0, 0.0, 3.0, 0.0]])
    y = torch.tensor([TUMOUR, TUMOUR])
    p = logits.softmax(1)
    tumour = p[:, [0, 1, 3]].sum(1)
    assert classification_loss(logits, y) == pytest.approx(float(-tumour.log().mean()), rel=1e-5)
    mixed = torch.tensor([1, TUMOUR])
    expected = (-p[0, 1].log() - tumour[1].log()) / 2
    assert classification_loss(logits, mixed) == pytest.approx(float(expected), rel=1e-5)
    assert answered_right(logits, y).tolist() == [True, False]  # any tumour class counts, not "no tumour"


def test_a_tumour_covered_by_the_other_hemisphere_becomes_that_hemisphere():
    x = torch.zeros(2, 64, 64)
    x[:, :, 32:] = 0.5  # right half grey
    x[0, 20:30, 8:18] = 1.0  # a bright "tumour" on the left
    boxes = torch.tensor([[8 / 64, 20 / 64, 18 / 64, 30 / 64], [0.3, 0.3, 0.7, 0.7]])
    out, ok = mirror_fill(x, boxes)
    assert ok.tolist() == [True, False]  # a central box would mirror onto itself
    assert float(out[0, 22:28, 10:16].mean()) == pytest.approx(0.5, abs=0.02)
    assert float(out[0, 50:60, 40:50].mean()) == pytest.approx(0.5)  # the rest unchanged


def test_erasing_by_mirror_labels_the_slice_no_tumour():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 64, 64) * 0.2 + 0.3
    labels = torch.tensor([0, 0, NOTUMOR, TUMOUR])
    nan = float("nan")
    boxes = torch.tensor([[0.1, 0.2, 0.25, 0.35], [0.1, 0.2, 0.25, 0.35], [nan] * 4, [nan] * 4])
    out, lab, bx = copy_paste(x, labels, boxes, g, paste=0.0, erase=1.0, mirror=1.0)
    assert lab.tolist() == [NOTUMOR, NOTUMOR, NOTUMOR, TUMOUR]
    assert torch.isnan(bx[:2]).all()
    flipped = x[0].flip(-1)
    assert torch.allclose(out[0, 16:20, 8:14], flipped[16:20, 8:14], atol=1e-6)


def test_padding_keeps_the_whole_slice_and_maps_boxes():
    wide = np.zeros((50, 100), dtype=np.uint8)
    wide[:, :10] = 200  # a band at the left edge that a centre crop would cut away
    img = Image.fromarray(wide)
    padded = prepare(img, 64, "pad")
    assert padded.shape == (64, 64) and padded[:, :5].max() == 200
    assert prepare(img, 64, "crop")[:, :5].max() == 0
    assert padded[:15].max() == 0 and padded[-15:].max() == 0  # black bands above and below
    prep = Preprocessing(img_size=64, fit="pad")
    left, top, side = prep.input_window((100, 50))
    assert (left, top, side) == (0.0, -25.0, 100.0)
    assert boxes_in_prepared((0.0, 0.0, 0.1, 1.0), 100, 50, "pad") == pytest.approx((0.0, 0.25, 0.1, 0.75))
    assert Preprocessing.from_dict({"img_size": 64}).fit == "crop"  # older checkpoints cropped


def test_training_with_a_second_source(sample_dir, tmp_path):
    """A run on the sample plus a FLAIR-like source: the split records the source by patient, the
    run reports 'tumour or not' per source, and the checkpoint pads to a square."""
    data = tmp_path / "data"
    shutil.copytree(sample_dir, data, ignore=shutil.ignore_patterns("*.md"))
    boxes = write_boxes_file(data, tmp_path / "boxes.tsv")
    extra = make_source(tmp_path / "flair", patients=6, per_patient=2)
    out = tmp_path / "run"
    assert cli_main(["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--img-size", "32",
                     "--batch-size", "8", "--device", "cpu", "--warmup-epochs", "1", "--boxes", str(boxes),
                     "--source", str(extra), "--source-balance", "1", "--erase-mirror", "0.5",
                     "--val-fraction", "0.34"]) == 0
    split = json.loads((out / "split.json").read_text())
    recorded = split["sources"]["flair"]
    assert recorded["train"] and recorded["val"]
    images = split_images(split, data, {}, [extra], "val")
    assert {im.source for im in images} >= {"flair"}
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "val_detect_flair/glioma" in header and "val_detect_flair/notumor" in header
    from braintumor.training.checkpoint import load_checkpoint

    ck = load_checkpoint(out / "last.safetensors")
    assert ck.preprocessing.fit == "pad"
    assert "flair/notumor" in ck.meta["val_tumour_or_not"]


def test_a_split_without_the_source_is_refused(tmp_path):
    extra = make_source(tmp_path / "flair")
    with pytest.raises(DataError, match="records no 'flair' images"):
        split_images({"train": [], "val": []}, tmp_path, {}, [extra], "val")
