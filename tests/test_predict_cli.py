"""``braintumor predict``: table, JSON and CSV output, --explain pictures, errors and exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from braintumor import CLASSES
from braintumor.cli import main
from braintumor.commands.predict import CAM_METHODS, collect_files


def _run(capsys, *argv):
    if "--backend" not in argv:
        argv = (*argv, "--backend", "torch")  # no ONNX export per test; test_json_matches_... uses auto
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module", autouse=True)
def isolated(tmp_path_factory):
    """A private model cache; torch's thread count restored afterwards (ONNX Runtime sets it to 1)."""
    import os

    import torch

    old, threads = os.environ.get("BRAINTUMOR_CACHE"), torch.get_num_threads()
    os.environ["BRAINTUMOR_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    torch.set_num_threads(threads)
    if old is None:
        del os.environ["BRAINTUMOR_CACHE"]
    else:
        os.environ["BRAINTUMOR_CACHE"] = old


@pytest.fixture()
def mixed_dir(tmp_path, sample_files):
    """Two real scans (one in a sub-folder), a damaged JPEG, a text file that is not walked."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.jpg").write_bytes(sample_files[0][0].read_bytes())
    (tmp_path / "sub" / "b.png").write_bytes(_png(sample_files[4][0]))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def _png(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).save(buf, format="PNG")
    return buf.getvalue()


def test_json_has_one_result_per_scan(capsys, random_checkpoint, sample_dir):
    code, out, err = _run(capsys, sample_dir, "--model", random_checkpoint, "--json", "--backend", "torch")
    assert code == 0
    doc = json.loads(out)  # exactly one JSON object on stdout
    assert set(doc) == {"model", "results", "errors"} and doc["errors"] == []
    assert doc["model"]["name"] == "random-r18-64" and doc["model"]["version"] and len(doc["model"]["sha256"]) == 64
    assert len(doc["results"]) == 12
    for r in doc["results"]:
        assert set(r) >= {"file", "label", "confidence", "probabilities"}
        assert Path(r["file"]).is_file() and list(r["probabilities"]) == list(CLASSES)
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-6 and r["label"] in CLASSES


def test_json_matches_the_python_api(capsys, random_checkpoint, sample_files):
    from braintumor import Predictor

    path = sample_files[6][0]
    code, out, _ = _run(capsys, path, "--model", random_checkpoint, "--json", "--backend", "torch")
    want = Predictor.load(random_checkpoint, backend="torch").predict(path)
    got = json.loads(out)["results"][0]
    assert code == 0 and got["label"] == want["label"]
    assert abs(got["confidence"] - want["confidence"]) < 1e-6


def test_unreadable_files_are_listed_and_the_others_go_on(capsys, random_checkpoint, mixed_dir):
    code, out, err = _run(capsys, mixed_dir, "--model", random_checkpoint, "--json")
    assert code == 1
    doc = json.loads(out)
    assert sorted(Path(r["file"]).name for r in doc["results"]) == ["a.jpg", "b.png"]
    assert [Path(e["file"]).name for e in doc["errors"]] == ["broken.jpg"]
    assert "damaged" in doc["errors"][0]["error"] or "not an image" in doc["errors"][0]["error"]


def test_table_output_and_errors_on_stderr(capsys, random_checkpoint, mixed_dir):
    code, out, err = _run(capsys, mixed_dir, "--model", random_checkpoint)
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[0].split() == ["file", "answer", "confidence", *CLASSES]
    assert "a.jpg" in lines[1] + lines[2] and "b.png" in lines[1] + lines[2]
    assert lines[-1].startswith("model random-r18-64, version ")
    assert "broken.jpg" in err and "Traceback" not in err


def test_csv_output(capsys, random_checkpoint, mixed_dir):
    code, out, _ = _run(capsys, mixed_dir, "--model", random_checkpoint, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 1 and len(rows) == 3
    ok = [r for r in rows if not r["error"]]
    assert len(ok) == 2 and all(r["label"] in CLASSES for r in ok)
    assert all(abs(sum(float(r[c]) for c in CLASSES) - 1) < 1e-4 for r in ok)
    assert all(r["decision"] in ("classified", "uncertain", "rejected") for r in ok)
    assert [Path(r["file"]).name for r in rows if r["error"]] == ["broken.jpg"]


def test_explain_writes_one_picture_per_image(capsys, random_checkpoint, mixed_dir, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("explain")
    code, out, _ = _run(capsys, mixed_dir, "--model", random_checkpoint, "--json", "--explain", outdir,
                        "--cam-method", "hirescam")
    assert code == 1
    pngs = sorted(p.name for p in outdir.iterdir())
    assert pngs == ["a.png", "sub__b.png"]

    for r in json.loads(out)["results"]:
        assert Path(r["explanation"]).is_file()
    img = np.asarray(Image.open(outdir / "a.png"))
    assert img.shape[1] == 2 * 256 + 8 and img.shape[2] == 3


def test_tta_and_batch_size_options(capsys, random_checkpoint, sample_dir, monkeypatch):
    from braintumor.inference.predictor import Predictor

    batches = []
    real = Predictor.predict_batch

    def counted(self, images, *args, **kwargs):  # the real call, with the batch sizes written down
        images = list(images)
        batches.append(len(images))
        return real(self, images, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict_batch", counted)
    code, out, _ = _run(capsys, sample_dir, "--model", random_checkpoint, "--json", "--tta", "--batch-size", "5")
    results = json.loads(out)["results"]
    assert code == 0 and len(results) == 12 and batches == [5, 5, 2]
    p = Predictor.load(random_checkpoint, backend="torch")
    with_tta = [p.predict(r["file"], tta=True)["probabilities"] for r in results]
    without = [p.predict(r["file"])["probabilities"] for r in results]
    for r, a, b in zip(results, with_tta, without):
        assert r["probabilities"] == pytest.approx(a, abs=1e-6)  # the answer is the TTA one
        assert max(abs(a[c] - b[c]) for c in a) > 1e-4  # which differs from the plain one


def test_an_ensemble_from_repeated_model_options(capsys, random_checkpoint, second_checkpoint, sample_files):
    path = sample_files[0][0]
    _, one, _ = _run(capsys, path, "--model", random_checkpoint, "--json")
    _, two, _ = _run(capsys, path, "--model", second_checkpoint, "--json")
    code, both, _ = _run(capsys, path, "--model", random_checkpoint, "--model", second_checkpoint, "--json")
    a, b, ab = (json.loads(x)["results"][0] for x in (one, two, both))
    assert code == 0 and [m["name"] for m in ab["members"]] == ["random-r18-64", "second"]
    for c in CLASSES:  # the ensemble's probabilities are the mean of its members'
        assert ab["probabilities"][c] == pytest.approx((a["probabilities"][c] + b["probabilities"][c]) / 2, abs=1e-6)
    assert max(abs(a["probabilities"][c] - b["probabilities"][c]) for c in CLASSES) > 1e-3  # two real members


@pytest.mark.parametrize("argv, message", [
    (["/no/such/scan.jpg"], "no such file or folder"),
    (["{sample}", "--batch-size", "0"], "--batch-size"),
    (["{empty}"], "no images found"),
    (["{sample}", "--explain", "{file}/heatmaps"], "Not a directory"),  # an output folder under a file
])
def test_bad_arguments_exit_2_with_one_line(capsys, random_checkpoint, sample_dir, tmp_path, argv, message):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    argv = [a.format(sample=sample_dir, empty=tmp_path / "empty", file=tmp_path / "notes.txt") for a in argv]
    (tmp_path / "empty").mkdir()
    code, out, err = _run(capsys, *argv, "--model", random_checkpoint)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_model_file_exits_2(capsys, sample_dir, tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"garbage")
    code, _, err = _run(capsys, sample_dir, "--model", bad)
    assert code == 2 and "model.safetensors" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, sample_dir, "--model", tmp_path / "missing.safetensors")
    assert code == 2 and "not found" in err


def test_json_and_csv_together_are_refused(capsys, random_checkpoint, sample_dir):
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(sample_dir), "--json", "--csv"])
    assert exc.value.code == 2


def test_folders_walk_image_and_medical_suffixes_and_dicom_without_suffix(tmp_path):
    for name in ("a.JPG", "b.png", "c.nii.gz", "d.nii", "e.dcm", "f.tiff", "g.txt", ".hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "IM0001").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 10)
    (tmp_path / "README").write_bytes(b"plain text, not DICOM" * 10)
    names = [name for _, name in collect_files([str(tmp_path)])]
    assert names == sorted(["IM0001", "a.JPG", "b.png", "c.nii.gz", "d.nii", "e.dcm", "f.tiff"])


def test_cam_method_choices_match_the_cam_module():
    from braintumor.inference.cam import CAM_METHODS as IN_CAM

    assert tuple(IN_CAM) == CAM_METHODS


def test_configuring_every_command_imports_nothing_heavy():
    code = ("import sys; import braintumor.cli as m; m.build_parser(); "
            "print(sorted(k for k in ('torch', 'braintumor.inference.predictor', 'pytorch_grad_cam', 'flask', 'onnxruntime') "
            "if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tumour_boxes_in_json_csv_and_pictures(capsys, mixed_dir, tmp_path):
    from conftest import box_checkpoint

    ck = box_checkpoint(tmp_path / "box.safetensors", always=1)
    code, out, _ = _run(capsys, mixed_dir, "--model", ck, "--csv")
    rows = [r for r in csv.DictReader(io.StringIO(out)) if not r["error"]]
    assert rows and all(r["label"] == "meningioma" for r in rows)
    for r in rows:
        x0, y0, x1, y1 = (int(r[k]) for k in ("box_x0", "box_y0", "box_x1", "box_y1"))
        assert 0 <= x0 <= x1 and 0 <= y0 <= y1
    outdir = tmp_path / "pics"
    code, out, _ = _run(capsys, mixed_dir, "--model", ck, "--json", "--explain", outdir)
    results = json.loads(out)["results"]
    assert all(len(r["box"]) == 4 for r in results)
    img = np.asarray(Image.open(outdir / "a.png").convert("RGB")).astype(int)
    green = (img[..., 1] > 200) & (img[..., 0] < 60) & (img[..., 2] < 60)
    assert green.sum() > 50  # the box is drawn on the pictures


def test_a_rejected_image_leads_with_not_analysed_and_shows_no_probabilities(capsys, random_checkpoint, tmp_path):
    Image.new("L", (200, 200), 0).save(tmp_path / "black.png")
    code, out, _ = _run(capsys, tmp_path / "black.png", "--model", random_checkpoint)
    row = out.splitlines()[1]
    assert code == 0 and "Not analysed" in row and "notumor" not in row and "glioma" not in row
    assert row.split()[-5:] == ["-"] * 5  # no confidence, no probabilities
    assert "black.png: Not analysed. The image is blank" in out


def test_only_unreadable_files_print_no_empty_table(capsys, random_checkpoint, tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    code, out, err = _run(capsys, tmp_path / "bad.jpg", "--model", random_checkpoint)
    assert code == 1 and out == "" and "cannot read" in err and "bad.jpg" in err


def test_explain_and_report_say_where_they_wrote(capsys, random_checkpoint, sample_files, tmp_path):
    code, out, err = _run(capsys, sample_files[0][0], "--model", random_checkpoint, "--json",
                          "--explain", tmp_path / "pics", "--report", tmp_path / "pdfs")
    assert code == 0 and json.loads(out)["results"][0]["explanation"]
    assert f"wrote 1 picture to {tmp_path / 'pics'}" in err and f"wrote 1 PDF report to {tmp_path / 'pdfs'}" in err
