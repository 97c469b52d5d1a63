"""Tumour boxes: the box head, the CAM-in-box loss, source-breaking augmentation, training with
boxes, and boxes and whole-image heat maps in the Predictor's answers."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from braintumor.training import localize, source_aug
from braintumor.training.box_supervision import BoxesError, boxes_in_prepared, read_boxes
from braintumor.inference.cam import heatmap_on_image
from braintumor.training.checkpoint import load_checkpoint
from braintumor.cli import main as cli_main
from braintumor.inference.predictor import Predictor, box_in_image
from braintumor.training.transforms import Augment, Preprocessing
from conftest import box_checkpoint, write_boxes_file


# ----------------------------------------------------------------------------- box head and losses


def test_decode_takes_the_best_cell_and_its_side_distances():
    centre = torch.full((1, 7, 7), -5.0)
    centre[0, 2, 3] = 4.0  # row 2, column 3: centre at (3.5/7, 2.5/7)
    sides = torch.zeros(1, 4, 7, 7)
    sides[0, :, 2, 3] = torch.tensor([0.1, 0.05, 0.2, 0.15])
    boxes, score = localize.decode_boxes(centre, sides)
    cx, cy = 3.5 / 7, 2.5 / 7
    assert torch.allclose(boxes[0], torch.tensor([cx - 0.1, cy - 0.05, cx + 0.2, cy + 0.15]), atol=1e-6)
    assert score[0] == pytest.approx(torch.sigmoid(torch.tensor(4.0)).item())


def test_box_head_learns_a_box_from_features():
    """A few hundred steps on fixed features: the box loss must steer the head to the boxes."""
    torch.manual_seed(0)
    n = 16
    boxes = torch.rand(n, 2) * 0.5
    boxes = torch.cat([boxes, boxes + 0.2 + 0.2 * torch.rand(n, 2)], 1).clamp(max=1)
    feats = torch.zeros(n, 8, 7, 7)
    for i, b in enumerate(boxes):  # features that mark where the box is
        cx, cy = int((b[0] + b[2]) / 2 * 7), int((b[1] + b[3]) / 2 * 7)
        feats[i, 0, cy, cx] = 1.0
        feats[i, 1:5, cy, cx] = b * 4
    head = localize.BoxHead(8, 32)
    opt = torch.optim.Adam(head.parameters(), 1e-2)
    has = torch.ones(n, dtype=torch.bool)
    first = None
    for _ in range(300):
        loss = localize.box_loss(*head(feats), boxes, has)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred, _ = localize.decode_boxes(*head(feats))
    assert float(loss.detach()) < first / 3
    assert float(localize.box_iou(pred, boxes).mean()) > 0.6


def test_box_iou_and_boxes_from_masks():
    a = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    assert localize.box_iou(a, a).item() == pytest.approx(1.0)
    assert localize.box_iou(a, torch.tensor([[0.25, 0.0, 0.75, 0.5]])).item() == pytest.approx(1 / 3)
    masks = torch.zeros(2, 10, 10)
    masks[0, 2:5, 3:8] = 1
    boxes, has = localize.boxes_from_masks(masks)
    assert has.tolist() == [True, False]
    assert torch.allclose(boxes[0], torch.tensor([0.3, 0.2, 0.8, 0.5]))


def test_cell_targets_use_the_pointing_tolerance_and_never_leave_a_box_empty():
    boxes = torch.tensor([[0.43, 0.43, 0.57, 0.57], [0.01, 0.01, 0.03, 0.03]])
    cells = localize.cell_targets(boxes, torch.tensor([True, True]), 7, 7)
    assert cells[0, 3, 3] and cells[0].sum() == 1  # the box holds the centre cell only
    assert cells[1, 0, 0] and cells[1].sum() == 1  # a tiny box in a corner: its nearest cell
    none = localize.cell_targets(boxes, torch.tensor([False, False]), 7, 7)
    assert not none.any()


def test_cam_loss_is_low_when_the_evidence_is_in_the_box():
    cells = torch.zeros(1, 7, 7, dtype=torch.bool)
    cells[0, 1, 1] = True
    weight = torch.eye(2, 4)  # class 0 reads feature channel 0
    inside = torch.zeros(1, 4, 7, 7)
    inside[0, 0, 1, 1] = 5.0
    outside = torch.zeros(1, 4, 7, 7)
    outside[0, 0, 5, 5] = 5.0
    has, y = torch.tensor([True]), torch.tensor([0])
    low = localize.cam_loss(inside, weight, y, cells, has)
    high = localize.cam_loss(outside, weight, y, cells, has)
    assert float(low) < 0.5 < float(high)
    assert float(localize.cam_loss(outside, weight, y, cells, torch.tensor([False]))) == 0.0


# ----------------------------------------------------------------------------- augmentation


def _batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 32, 32, generator=g) * 0.5 + 0.25
    x[0, 8:16, 8:16] = 1.0  # a bright "tumour"
    labels = torch.tensor([0, 2, 2, 3])
    boxes = torch.tensor([[0.25, 0.25, 0.5, 0.5], [float("nan")] * 4, [float("nan")] * 4, [0.5, 0.5, 0.75, 0.75]])
    return x, labels, boxes


def test_paste_makes_tumour_images_of_the_donors_class_at_the_donors_place():
    x, labels, boxes = _batch()
    out, lab, bx = source_aug.copy_paste(x, labels, boxes, torch.Generator().manual_seed(1), paste=1.0, erase=0.0)
    for i in (1, 2):  # the two no-tumour images
        assert lab[i] in (0, 3)
        donor = 0 if lab[i] == 0 else 3
        assert torch.equal(bx[i], boxes[donor])
        m = source_aug.soft_box(boxes[donor:donor + 1], 32)[0]
        assert torch.equal(out[i][m == 0], x[i][m == 0])  # nothing changes outside the patch
        assert not torch.equal(out[i], x[i])
    assert torch.equal(out[0], x[0]) and lab[0] == 0


def test_erase_covers_the_tumour_and_makes_the_label_no_tumour():
    x, labels, boxes = _batch()
    out, lab, bx = source_aug.copy_paste(x, labels, boxes, torch.Generator().manual_seed(1), paste=0.0, erase=1.0)
    assert lab.tolist() == [2, 2, 2, 2]
    assert torch.isnan(bx[[0, 3], 0]).all()
    assert out[0, 10:14, 10:14].mean() < 0.9  # the bright blob is gone


def test_erase_by_inpainting_fills_the_tumour_from_its_surroundings():
    x, labels, boxes = _batch()
    x[0] = 0.4  # flat tissue around a bright tumour: inpainting gives back the tissue's level
    x[0, 8:16, 8:16] = 1.0
    out, lab, bx = source_aug.copy_paste(x, labels, boxes, torch.Generator().manual_seed(1), paste=0.0,
                                         erase=1.0, fill=1.0)
    assert lab.tolist() == [2, 2, 2, 2] and torch.isnan(bx[[0, 3], 0]).all()
    assert abs(float(out[0, 8:16, 8:16].mean()) - 0.4) < 0.02  # filled from the tissue, no blob left
    assert torch.equal(out[0, :, 24:], x[0, :, 24:])  # far from the box nothing changes
    # without fill the healthy tissue of a no-tumour image covers it instead
    other, _, _ = source_aug.copy_paste(x, labels, boxes, torch.Generator().manual_seed(1), paste=0.0, erase=1.0)
    assert not torch.allclose(other[0], out[0])


def test_match_histograms_gives_the_reference_values_in_the_images_order():
    g = torch.Generator().manual_seed(0)
    x, ref = torch.rand(2, 16, 16, generator=g), torch.rand(2, 16, 16, generator=g) ** 3
    out = source_aug.match_histograms(x, ref, g)
    assert torch.equal(out.flatten(1).sort(1).values, ref.flatten(1).sort(1).values)
    assert torch.equal(out.flatten(1).argsort(1), x.flatten(1).argsort(1))


def test_style_mix_swaps_only_between_sources():
    g = torch.Generator().manual_seed(0)
    x = torch.stack([torch.full((8, 8), 0.2), torch.full((8, 8), 0.8)]) + 0.01 * torch.rand(2, 8, 8, generator=g)
    out = source_aug.style_mix(x, torch.tensor([True, False]), g, p=1.0)
    assert out[0].mean() > 0.7 and out[1].mean() < 0.3
    same = source_aug.style_mix(x, torch.tensor([True, True]), g, p=1.0)  # no image of the other source
    assert torch.equal(same, x)


def test_mri_artefacts_keep_shape_and_range_and_change_the_image():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 32, 32)
    out = source_aug.MriArtefacts(p=1.0)(x)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert not torch.allclose(out, x)


def test_augment_moves_masks_with_the_image():
    x = torch.zeros(2, 32, 32, dtype=torch.uint8)
    x[:, 4:12, 4:12] = 255
    masks = (x > 0).float()
    img, m = Augment(32, rotation=20.0)(x, torch.Generator().manual_seed(3), masks=masks)
    assert img.shape == (2, 1, 32, 32) and m.shape == (2, 32, 32)
    bright = img[:, 0] > 0.5
    agree = ((m > 0.5) == bright).float().mean()
    assert agree > 0.97


# ----------------------------------------------------------------------------- boxes file and mapping


def test_read_boxes_and_errors(tmp_path):
    f = tmp_path / "b.tsv"
    f.write_text("file\txc\tyc\tw\th\nglioma/a.jpg\t0.5\t0.4\t0.2\t0.1\n")
    assert read_boxes(f)["glioma/a.jpg"] == pytest.approx((0.4, 0.35, 0.6, 0.45))
    with pytest.raises(BoxesError, match="not found"):
        read_boxes(tmp_path / "missing.tsv")
    f.write_text("file,xc,yc\n")
    with pytest.raises(BoxesError, match="columns"):
        read_boxes(f)
    f.write_text("file\txc\tyc\tw\th\na.jpg\tx\t0\t0\t0\n")
    with pytest.raises(BoxesError, match="not a number"):
        read_boxes(f)


def test_boxes_map_between_the_image_and_the_networks_square():
    # a 300 x 200 image: the network sees its centre 200 x 200 square (x from 50 to 250)
    assert boxes_in_prepared((0.5, 0.0, 0.75, 0.5), 300, 200) == pytest.approx((0.5, 0.0, 0.875, 0.5))
    prep = Preprocessing(img_size=64)
    assert box_in_image((0.0, 0.0, 1.0, 1.0), (300, 200), prep) == [50, 0, 250, 200]
    assert box_in_image((0.5, 0.0, 0.875, 0.5), (300, 200), prep) == [150, 0, 225, 100]
    heat = np.ones((64, 64), np.float32)
    full = heatmap_on_image(heat, (300, 200), prep)
    assert full.shape == (200, 300)
    assert full[:, :46].max() == 0 and full[:, 254:].max() == 0 and full[5:195, 60:240].min() > 0.99


# ----------------------------------------------------------------------------- training and answers


def test_training_with_boxes_gives_a_checkpoint_with_a_box_head(sample_dir, tmp_path, random_checkpoint):
    boxes = write_boxes_file(sample_dir, tmp_path / "boxes.tsv")
    out = tmp_path / "run"
    args = ["train", "--data", sample_dir, "--out", out, "--epochs", "2", "--img-size", "64", "--batch-size", "4",
            "--device", "cpu", "--warmup-epochs", "1", "--boxes", boxes, "--init", random_checkpoint,
            "--freeze-early", "--artefacts", "0.5"]
    assert cli_main([str(a) for a in args]) == 0
    ck = load_checkpoint(out / "last.safetensors")
    assert ck.has_box_head
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 2 and {"cam_loss", "box_loss", "val_box_iou", "val_cam_pointing"} <= set(rows[0])
    assert float(rows[0]["box_loss"]) > 0
    # frozen early layers kept the initial weights, the rest moved
    init = load_checkpoint(random_checkpoint).state_dict
    assert torch.equal(ck.state_dict["layer1.0.conv1.weight"].float(), init["layer1.0.conv1.weight"].float())
    assert not torch.equal(ck.state_dict["layer4.0.conv1.weight"].float(), init["layer4.0.conv1.weight"].float())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["boxes"] == str(boxes) and cfg["freeze_early"] is True


@pytest.fixture(scope="module")
def pituitary_checkpoint(tmp_path_factory):
    return box_checkpoint(tmp_path_factory.mktemp("boxck") / "box.safetensors", always=3)


def test_answers_carry_a_box_in_image_pixels(pituitary_checkpoint, sample_files):
    p = Predictor.load(pituitary_checkpoint, backend="torch")
    img = Image.open(sample_files[0][0]).convert("L").resize((300, 200))
    r = p.predict(img)
    assert r["label"] == "pituitary" and 0 <= r["box_score"] <= 1
    x0, y0, x1, y1 = r["box"]
    assert all(isinstance(v, int) for v in r["box"])
    assert 50 <= x0 <= x1 <= 250 and 0 <= y0 <= y1 <= 200  # within the square the network sees
    e = p.explain(img)
    assert e["box"] == r["box"] and e["heatmap"].shape == (200, 300)
    batch = p.predict_batch([img, img])
    assert [b["box"] for b in batch] == [r["box"], r["box"]]


def test_no_tumour_answers_have_no_box(tmp_path, sample_files):
    path = box_checkpoint(tmp_path / "nt.safetensors", always=2)
    r = Predictor.load(path, backend="torch").predict(sample_files[0][0])
    assert r["label"] == "notumor" and r["box"] is None and r["box_score"] is not None


def test_no_box_without_a_box_head(random_checkpoint, sample_files):
    r = Predictor.load(random_checkpoint, backend="torch").predict(sample_files[0][0])
    assert r["box"] is None and r["box_score"] is None


def test_fit_boxes_refits_only_the_box_head(sample_dir, tmp_path):

    ck_path = box_checkpoint(tmp_path / "ck.safetensors", size=64)
    files = sorted(p for p in sample_dir.rglob("*.jpg"))
    rels = [f"{p.parent.name}/{p.name}" for p in files]
    split = {"train": rels[::2], "val": rels[1::2]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    boxes = write_boxes_file(sample_dir, tmp_path / "boxes.tsv")
    out = tmp_path / "refit.safetensors"
    args = ["fit-boxes", "--model", ck_path, "--data", sample_dir, "--boxes", boxes, "--split",
            tmp_path / "split.json", "--passes", "2", "--epochs", "5", "--lr", "3e-3", "--out", out]
    assert cli_main([str(a) for a in args]) == 0
    before, after = load_checkpoint(ck_path), load_checkpoint(out)
    for k, v in before.state_dict.items():
        same = torch.equal(v, after.state_dict[k])
        assert same != k.startswith("box_head."), k  # only the box head changed
    loc = after.meta["localization"]
    assert loc["val"]["n"] > 0 and 0 <= loc["val"]["mean_iou"] <= 1
    assert cli_main(["fit-boxes", "--model", str(tmp_path / "none.safetensors"), "--data", str(sample_dir),
                     "--boxes", str(boxes), "--split", str(tmp_path / "split.json")]) == 2
