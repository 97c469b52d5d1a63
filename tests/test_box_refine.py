"""The box refiner: it learns to move a disturbed box onto the tumour, it is stored in the checkpoint,
the Predictor applies it to the box head's box, and ``fit-refiner`` changes nothing else."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from braintumor.training.box_refine import BoxRefiner, disturb, refine_boxes, windows
from braintumor.training.box_refit import train_refiner
from braintumor.training.checkpoint import load_checkpoint, save_checkpoint
from braintumor.cli import main as cli_main
from braintumor.training.localize import box_iou, decode_boxes
from braintumor.inference.predictor import Predictor, box_in_image
from conftest import box_checkpoint, write_boxes_file


def bright_squares(n: int, size: int = 96, seed: int = 0):
    """Grey discs, each with one bright rectangle (the "tumour") whose box is known exactly."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, boxes = [], []
    for _ in range(n):
        img = np.where((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.45 * size) ** 2, 70.0, 0.0)
        w, h = rng.integers(10, 30, 2)
        x0, y0 = rng.integers(15, size - 15 - 30, 2)
        img[y0:y0 + h, x0:x0 + w] = 220.0
        img += rng.normal(0, 5, img.shape)
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        boxes.append([x0 / size, y0 / size, (x0 + w) / size, (y0 + h) / size])
    return torch.from_numpy(np.stack(images)), torch.tensor(boxes, dtype=torch.float32)


def test_a_fresh_refiner_keeps_the_box():
    px, boxes = bright_squares(4)
    out = BoxRefiner().eval()(px, boxes)
    assert torch.allclose(out, boxes, atol=1e-5)


def test_each_stage_corrects_the_box_before_it():
    px, boxes = bright_squares(3)
    refiner = BoxRefiner(stages=2).eval()
    with torch.no_grad():
        refiner.stages[0].net[-1].bias.copy_(torch.tensor([0.0, 0.0, 0.1, 0.0]))  # widen
        refiner.stages[1].net[-1].bias.copy_(torch.tensor([0.0, 0.1, 0.0, 0.0]))  # lower the top
        first = refiner.stages[0](px, boxes)
        out = refiner(px, boxes)
    assert torch.allclose(out, refiner.stages[1](px, first))
    assert (first[:, 2] > boxes[:, 2]).all() and (out[:, 1] > boxes[:, 1]).all()


def test_later_stages_learn_from_smaller_errors():
    boxes = bright_squares(200)[1]
    err = [(disturb(boxes, torch.Generator().manual_seed(0), k) - boxes).abs().mean() for k in (0, 1)]
    assert err[1] < 0.6 * err[0]


def test_windows_hold_the_box_and_have_a_minimum_size():
    boxes = torch.tensor([[0.4, 0.4, 0.5, 0.45], [0.45, 0.45, 0.46, 0.46]])
    win = windows(boxes)
    assert (win[:, :2] <= boxes[:, :2]).all() and (win[:, 2:] >= boxes[:, 2:]).all()
    side = win[:, 2:] - win[:, :2]
    assert torch.allclose(side[0], torch.tensor([0.25, 0.25]))  # 2.5 x the longer side
    assert torch.allclose(side[1], torch.tensor([48 / 224, 48 / 224]))  # the minimum


def test_the_refiner_learns_to_move_disturbed_boxes_onto_the_tumour():
    tr_px, tr_box = bright_squares(384, seed=1)
    va_px, va_box = bright_squares(96, seed=2)
    refiner = train_refiner(tr_px, tr_box, epochs=12, batch=64, lr=3e-3, stages=1)
    first = disturb(va_box, torch.Generator().manual_seed(5))
    before = box_iou(first, va_box).mean()
    after = box_iou(refine_boxes(refiner, va_px.numpy(), first), va_box).mean()
    assert after > before + 0.15, (float(before), float(after))


def _with_refiner(path, seed=3):
    """``path`` (a box checkpoint) with a refiner whose last layer is random, so that it moves boxes."""
    ck = load_checkpoint(path)
    model = ck.build()
    torch.manual_seed(seed)
    model.box_refiner = BoxRefiner(stages=2)
    with torch.no_grad():
        for stage in model.box_refiner.stages:
            stage.net[-1].weight.normal_(0, 0.05)
            stage.net[-1].bias.copy_(torch.tensor([-0.05, -0.05, 0.05, 0.05]))
    model.box_refiner.eval()
    out = path.with_name(path.stem + "-refined.safetensors")
    save_checkpoint(out, model, ck.arch, ck.preprocessing, ck.classes, dict(ck.meta))
    return out


@pytest.mark.parametrize("backend", ["torch", "int8"])
def test_the_predictor_answers_with_the_refined_box(tmp_path, sample_files, backend):
    base = box_checkpoint(tmp_path / "box.safetensors", always=0)
    refined = _with_refiner(base)
    ck = load_checkpoint(refined)
    assert ck.has_box_refiner and ck.refiner_stages == 2 and not load_checkpoint(base).has_box_refiner
    img = Image.open(sample_files[0][0]).convert("L")
    r = Predictor.load(refined, backend=backend).predict(img)
    head_only = Predictor.load(base, backend=backend).predict(img)
    # What the refiner gives for the head's own box, in pixels of the image.
    model = ck.build()
    prep = ck.preprocessing
    pixels = prep.pixels(img)[None]
    with torch.inference_mode():
        from braintumor.training.network_parts import split_network

        body, _ = split_network(model, ck.arch)
        centre, sides = model.box_head(body(prep.normalize(torch.from_numpy(pixels))))
        frac, _ = decode_boxes(centre, sides)
    expected = box_in_image(refine_boxes(model.box_refiner, pixels, frac)[0].tolist(), img.size, prep)
    assert r["box"] is not None and r["box"] != head_only["box"]
    assert all(abs(a - b) <= 2 for a, b in zip(r["box"], expected)), (r["box"], expected)


def test_fit_refiner_adds_only_the_refiner(sample_dir, tmp_path):
    ck_path = box_checkpoint(tmp_path / "ck.safetensors", size=64)
    rels = [f"{p.parent.name}/{p.name}" for p in sorted(sample_dir.rglob("*.jpg"))]
    (tmp_path / "split.json").write_text(json.dumps({"train": rels[::2], "val": rels[1::2]}))
    boxes = write_boxes_file(sample_dir, tmp_path / "boxes.tsv")
    out = tmp_path / "refined.safetensors"
    args = ["fit-refiner", "--model", ck_path, "--data", sample_dir, "--boxes", boxes, "--split",
            tmp_path / "split.json", "--epochs", "2", "--out", out]
    assert cli_main([str(a) for a in args]) == 0
    before, after = load_checkpoint(ck_path), load_checkpoint(out)
    assert set(after.state_dict) - set(before.state_dict) == {k for k in after.state_dict
                                                               if k.startswith("box_refiner.")}
    for k, v in before.state_dict.items():
        assert torch.equal(v, after.state_dict[k]), k
    fig = after.meta["box_refiner"]
    assert fig["val"]["n"] > 0 and 0 <= fig["val"]["mean_iou"] <= 1 and "val_box_head" in fig
    assert Predictor.load(out, backend="torch").predict(sample_dir / rels[0])["label"]
    # --from takes that refiner into another network without fitting, and scores it there
    other = box_checkpoint(tmp_path / "other.safetensors", size=64, seed=7)
    reused = tmp_path / "reused.safetensors"
    assert cli_main([str(a) for a in ["fit-refiner", "--model", other, "--data", sample_dir, "--boxes", boxes,
                                      "--split", tmp_path / "split.json", "--from", out, "--out", reused]]) == 0
    got = load_checkpoint(reused)
    for k, v in after.state_dict.items():
        if k.startswith("box_refiner."):
            assert torch.equal(v, got.state_dict[k]), k
    assert torch.equal(got.state_dict["fc.weight"], load_checkpoint(other).state_dict["fc.weight"])
    assert "taken from refined.safetensors" in got.meta["box_refiner"]["method"]


def test_fit_refiner_refuses_what_it_cannot_use(sample_dir, tmp_path, random_checkpoint, capsys):
    rels = [f"{p.parent.name}/{p.name}" for p in sorted(sample_dir.rglob("*.jpg"))]
    (tmp_path / "split.json").write_text(json.dumps({"train": rels[::2], "val": rels[1::2]}))
    boxes = write_boxes_file(sample_dir, tmp_path / "boxes.tsv")
    common = ["--data", str(sample_dir), "--boxes", str(boxes), "--split", str(tmp_path / "split.json")]
    assert cli_main(["fit-refiner", "--model", str(tmp_path / "none.safetensors"), *common]) == 2
    assert "no such file" in capsys.readouterr().err
    code = cli_main(["fit-refiner", "--model", str(random_checkpoint), *common])
    assert code != 0 and "no box head" in capsys.readouterr().err
    box = box_checkpoint(tmp_path / "box.safetensors", size=64)
    code = cli_main(["fit-refiner", "--model", str(box), *common, "--from", str(box)])
    assert code != 0 and "no box refiner" in capsys.readouterr().err


def test_training_from_a_checkpoint_keeps_its_refiner(sample_dir, tmp_path):
    """The refiner reads pixels, not features, so a run that starts from a checkpoint keeps it."""
    refined = _with_refiner(box_checkpoint(tmp_path / "box.safetensors", size=64))
    out = tmp_path / "run"
    args = ["train", "--data", sample_dir, "--out", out, "--epochs", "1", "--img-size", "64", "--batch-size", "4",
            "--device", "cpu", "--warmup-epochs", "0", "--init", refined, "--freeze-early"]
    assert cli_main([str(a) for a in args]) == 0
    start, trained = load_checkpoint(refined), load_checkpoint(out / "last.safetensors")
    keys = [k for k in start.state_dict if k.startswith("box_refiner.")]
    assert keys and trained.has_box_refiner
    for k in keys:
        assert torch.equal(start.state_dict[k].float(), trained.state_dict[k].float()), k
    assert not torch.equal(start.state_dict["fc.weight"].float(), trained.state_dict["fc.weight"].float())


def test_fit_boxes_keeps_the_refiner(sample_dir, tmp_path):
    refined = _with_refiner(box_checkpoint(tmp_path / "box.safetensors", size=64))
    rels = [f"{p.parent.name}/{p.name}" for p in sorted(sample_dir.rglob("*.jpg"))]
    (tmp_path / "split.json").write_text(json.dumps({"train": rels[::2], "val": rels[1::2]}))
    boxes = write_boxes_file(sample_dir, tmp_path / "boxes.tsv")
    out = tmp_path / "refit.safetensors"
    args = ["fit-boxes", "--model", refined, "--data", sample_dir, "--boxes", boxes, "--split",
            tmp_path / "split.json", "--passes", "1", "--epochs", "2", "--out", out]
    assert cli_main([str(a) for a in args]) == 0
    before, after = load_checkpoint(refined), load_checkpoint(out)
    keys = [k for k in before.state_dict if k.startswith("box_refiner.")]
    assert keys and all(torch.equal(before.state_dict[k], after.state_dict[k]) for k in keys)
