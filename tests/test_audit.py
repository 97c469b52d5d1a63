"""``braintumor audit`` and the near-duplicate method under it (braintumor.data.dedup)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from braintumor.data import audit, dedup
from braintumor.cli import main
from conftest import synthetic_scan

SAMPLE = Path(__file__).parent / "data" / "sample"
GLIOMA, GLIOMA2 = SAMPLE / "glioma" / "Tr-gl_0118.jpg", SAMPLE / "glioma" / "Tr-gl_0255.jpg"
MENINGIOMA, NOTUMOR = SAMPLE / "meningioma" / "Tr-me_0218.jpg", SAMPLE / "notumor" / "Tr-no_0781.jpg"
PITUITARY = SAMPLE / "pituitary" / "Tr-pi_0631.jpg"


def gray(path: Path) -> Image.Image:
    return Image.open(path).convert("L")


def shifted(img: Image.Image, dx: int, dy: int) -> Image.Image:
    out = Image.new("L", img.size, 0)
    out.paste(img, (dx, dy))
    return out


def gained(img: Image.Image, gain: float, offset: float) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32) * gain + offset
    return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8))


ALTERED = {  # name -> (source, change): each must be found as a near-duplicate of its source
    "flipped.png": (GLIOMA, lambda im: im.transpose(Image.FLIP_LEFT_RIGHT)),
    "reencoded.jpg": (MENINGIOMA, None),  # saved at JPEG quality 35 below
    "half.png": (GLIOMA2, lambda im: im.resize((im.width // 2, im.height // 2), Image.BICUBIC)),
    "double.png": (NOTUMOR, lambda im: im.resize((im.width * 2, im.height * 2), Image.LANCZOS)),
    "shifted.png": (MENINGIOMA, lambda im: shifted(im, -9, 7)),
    "darker.png": (GLIOMA2, lambda im: gained(im, 0.8, -10)),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Class folders with one example of every kind, and distinct images around them."""
    root = tmp_path_factory.mktemp("audit") / "data"
    for c in ("glioma", "meningioma", "notumor", "pituitary"):
        (root / c).mkdir(parents=True)
    for src in (GLIOMA, GLIOMA2, MENINGIOMA, NOTUMOR, PITUITARY):
        shutil.copy(src, root / src.parent.name / src.name)
    shutil.copy(GLIOMA, root / "glioma" / "copy-of-0118.jpg")  # exact copy
    for name, (src, change) in ALTERED.items():
        dst = root / src.parent.name / name
        if change is None:
            gray(src).save(dst, "JPEG", quality=35)
        else:
            change(gray(src)).save(dst)
    gray(PITUITARY).resize((180, 180)).save(root / "notumor" / "pituitary-filed-as-notumor.png")
    (root / "notumor" / "broken.jpg").write_bytes(GLIOMA.read_bytes()[:300])
    (root / "notumor" / "notes.txt").write_text("not an image\n")
    return root


@pytest.fixture(scope="module")
def result(dataset) -> audit.Audit:
    return audit.audit(dataset, show_progress=False)


def pair_map(a: audit.Audit) -> dict[frozenset, audit.Pair]:
    f = a.folder.files
    return {frozenset((f[p.a], f[p.b])): p for p in a.pairs}


def test_exact_copy_is_exact(result):
    p = pair_map(result)[frozenset(("glioma/Tr-gl_0118.jpg", "glioma/copy-of-0118.jpg"))]
    assert p.kind == "exact" and p.similarity == pytest.approx(1.0)
    assert not p.conflict


@pytest.mark.parametrize("name", sorted(ALTERED))
def test_altered_copy_is_near_duplicate(result, name):
    src, _ = ALTERED[name]
    pairs = pair_map(result)
    key = frozenset((f"{src.parent.name}/{src.name}", f"{src.parent.name}/{name}"))
    assert key in pairs, f"{name} not found as a near-duplicate of {src.name}"
    assert pairs[key].kind == "near" and pairs[key].similarity >= result.threshold


def test_label_conflict(result):
    d = audit.to_dict(result)
    assert d["conflicts"] == ["notumor/pituitary-filed-as-notumor.png", "pituitary/Tr-pi_0631.jpg"]
    assert d["per_class"]["pituitary"]["conflicts"] == 1 and d["per_class"]["glioma"]["conflicts"] == 0


def test_unreadable_and_ignored(result):
    assert [p for p, _ in result.folder.unreadable] == ["notumor/broken.jpg"]
    assert "damaged or truncated" in result.folder.unreadable[0][1]
    assert result.folder.ignored == ["notumor/notes.txt"]


def test_different_images_are_not_flagged(result):
    """The five distinct source scans never pair with each other (nor with copies of the others)."""
    groups = [set(g) for g in audit.to_dict(result)["within"]]
    sources = [f"{p.parent.name}/{p.name}" for p in (GLIOMA, GLIOMA2, MENINGIOMA, NOTUMOR, PITUITARY)]
    for s in sources:
        (mine,) = [g for g in groups if s in g]
        assert not (mine - {s}) & set(sources), f"{s} grouped with another distinct scan: {mine}"


def test_twelve_sample_scans_are_distinct():
    a = audit.audit(SAMPLE, show_progress=False)
    assert len(a.folder.files) == 12 and a.pairs == [] and a.groups == []


def test_descriptor_separates_generated_scans():
    """Generated scans: a resized, shifted, flipped and re-encoded copy matches; other seeds do not."""
    import io

    base = Image.fromarray(synthetic_scan(1, 160))
    buf = io.BytesIO()
    shifted(base.transpose(Image.FLIP_LEFT_RIGHT).resize((120, 120)), 6, -4).save(buf, "JPEG", quality=50)
    v, f = dedup.descriptor(base)
    w, _ = dedup.descriptor(Image.open(io.BytesIO(buf.getvalue())))
    assert max(float(v @ w), float(f @ w)) >= dedup.DEFAULT_THRESHOLD
    for seed in (2, 3, 4):
        o, _ = dedup.descriptor(Image.fromarray(synthetic_scan(seed, 160)))
        assert max(float(v @ o), float(f @ o)) < dedup.DEFAULT_THRESHOLD, seed


def test_json_shape_with_against(dataset, tmp_path, capsys):
    other = tmp_path / "other"
    (other / "glioma").mkdir(parents=True)
    (other / "meningioma").mkdir()
    shutil.copy(GLIOMA, other / "glioma" / "same-bytes.jpg")
    gray(GLIOMA2).transpose(Image.FLIP_LEFT_RIGHT).save(other / "glioma" / "flip.jpg", quality=60)
    shutil.copy(PITUITARY, other / "meningioma" / "mislabelled.jpg")
    shutil.copy(SAMPLE / "meningioma" / "Tr-me_0820.jpg", other / "meningioma" / "new.jpg")
    assert main(["audit", str(dataset), "--against", str(other), "--json"]) == 0
    out = capsys.readouterr().out
    d = json.loads(out)  # exactly one object: json.loads refuses trailing text
    assert out.count("\n") == 1
    for key in ("within", "cross", "conflicts", "unreadable"):
        assert isinstance(d[key], list)
    for group in d["within"]:
        assert len(group) >= 2 and all((dataset / p).is_file() for p in group)
    assert d["unreadable"] == ["notumor/broken.jpg"]
    for item in d["cross"]:
        assert item["kind"] in ("exact", "near")
        assert (dataset / item["a"]).is_file() and (other / item["b"]).is_file()
    by_b: dict[str, set] = {}
    for item in d["cross"]:
        by_b.setdefault(item["b"], set()).add((item["a"], item["kind"]))
    assert ("glioma/Tr-gl_0118.jpg", "exact") in by_b["glioma/same-bytes.jpg"]
    assert ("glioma/copy-of-0118.jpg", "exact") in by_b["glioma/same-bytes.jpg"]
    assert ("glioma/Tr-gl_0255.jpg", "near") in by_b["glioma/flip.jpg"]
    assert "meningioma/new.jpg" not in by_b
    assert d["against_conflicts"] == ["meningioma/mislabelled.jpg"]
    assert "pituitary/Tr-pi_0631.jpg" in d["conflicts"]
    assert d["against_per_class"]["glioma"] == {"images": 2, "exact": 1, "near": 1, "with_twin": 2,
                                                "conflicts": 0, "unreadable": 0}
    assert d["counts"]["cross"]["against_images"] == 3


def test_plain_folders_without_classes(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    shutil.copy(GLIOMA, a / "one.jpg")
    shutil.copy(PITUITARY, a / "two.jpg")
    gray(GLIOMA).save(a / "one-again.png")
    gray(PITUITARY).transpose(Image.FLIP_LEFT_RIGHT).save(b / "two-flipped.png")
    shutil.copy(MENINGIOMA, b / "three.jpg")
    assert main(["audit", str(a), "--against", str(b), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["within"] == [["one-again.png", "one.jpg"]]
    assert d["conflicts"] == [] and d["summary"]["classes"] is None
    assert [(c["a"], c["b"], c["kind"]) for c in d["cross"]] == [("two.jpg", "two-flipped.png", "near")]
    assert main(["audit", str(a)]) == 0
    table = capsys.readouterr().out
    assert "(no class folders)" in table and "glioma" not in table


def test_table_counts_per_class(dataset, capsys):
    assert main(["audit", str(dataset)]) == 0
    out = capsys.readouterr().out
    rows = {line[:35].strip(): line[35:].split() for line in out.splitlines()
            if line.startswith(("images", "with", "in a", "unread"))}
    assert rows["images"] == ["6", "3", "3", "1", "13"]
    assert rows["with an exact copy (same bytes)"] == ["2", "0", "0", "0", "2"]
    assert rows["in a label conflict"] == ["0", "0", "1", "1", "2"]
    assert rows["unreadable"] == ["0", "0", "1", "0", "1"]


def test_report_files(dataset, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["audit", str(dataset), "--report", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for name in ("files.csv", "pairs.csv", "groups.csv", "conflicts.csv", "unreadable.csv", "summary.json",
                 "contact_sheet.png"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "pairs.csv")))
    assert len(rows) == len(d["pairs"]) and {r["kind"] for r in rows} == {"exact", "near"}
    conflicts = list(csv.DictReader(open(out / "conflicts.csv")))
    assert {(r["class_a"], r["class_b"]) for r in conflicts} == {("notumor", "pituitary")}
    files = list(csv.DictReader(open(out / "files.csv")))
    assert len(files) == 14 and sum(r["status"] == "unreadable" for r in files) == 1
    assert json.loads((out / "summary.json").read_text())["within"] == d["within"]
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.width >= 500 and sheet.height >= 300


@pytest.mark.parametrize("make", ["missing", "file", "empty"])
def test_bad_dir_exit_2_one_line(tmp_path, capsys, make):
    target = tmp_path / "x"
    if make == "file":
        target.write_text("hello")
    elif make == "empty":
        target.mkdir()
    assert main(["audit", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("braintumor audit: error:") and "\n" not in err


def test_dataset_root_reads_training_against_testing(tmp_path):
    for part, src in (("Training", GLIOMA), ("Testing", GLIOMA)):
        (tmp_path / part / "glioma").mkdir(parents=True)
        shutil.copy(src, tmp_path / part / "glioma" / "x.jpg")
    a = audit.audit(tmp_path, show_progress=False)
    assert a.folder.root.name == "Training" and a.against.root.name == "Testing"
    assert [(p.kind, p.conflict) for p in a.cross] == [("exact", False)]


def test_dicom_is_fingerprinted_and_matches_its_jpeg(tmp_path):
    """A DICOM file (which PIL cannot open) is read, not listed unreadable, and pairs with its JPEG."""
    import io

    import pydicom
    from pydicom import uid
    from pydicom.dataset import Dataset, FileMetaDataset

    pixels = np.asarray(gray(PITUITARY)).astype(np.uint16) * 16  # 12-bit data, as scanners store it
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = uid.MRImageStorage
    meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = uid.MRImageStorage, meta.MediaStorageSOPInstanceUID, "MR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.tobytes()
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    (tmp_path / "scan.dcm").write_bytes(buf.getvalue())
    shutil.copy(PITUITARY, tmp_path / "scan.jpg")
    a = audit.audit(tmp_path, show_progress=False)
    assert a.folder.unreadable == [] and sorted(a.folder.fp.modes) == ["DICOM", "RGB"]
    assert [(a.folder.files[p.a], a.folder.files[p.b], p.kind) for p in a.pairs] == [
        ("scan.dcm", "scan.jpg", "near")]
