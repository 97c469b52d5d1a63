"""The PDF case report: POST /api/report, ``predict --report DIR``; its text read back with pypdf,
its page rendered to PNG with poppler's pdftoppm, and no patient data or file name in it."""

from __future__ import annotations

import io
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

pypdf = pytest.importorskip("pypdf", reason="pypdf is not installed (pip install -e .[test])")

A4 = (595.28, 841.89)  # points


def read(pdf: bytes) -> tuple[pypdf.PdfReader, str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def all_bytes(pdf: bytes) -> bytes:
    """The file with every compressed stream inflated, to search for strings anywhere in it."""
    out = [pdf]
    for chunk in pdf.split(b"stream")[1:]:
        body = chunk.split(b"endstream")[0].lstrip(b"\r\n")
        try:
            out.append(zlib.decompress(body))
        except zlib.error:
            pass
    return b"".join(out)


@pytest.fixture()
def client(predictor):
    from braintumor.web import create_app

    return create_app(predictor=predictor).test_client()


def post_report(client, data: bytes, filename: str, **fields):
    form = {"file": (io.BytesIO(data), filename), **{k: str(v) for k, v in fields.items()}}
    return client.post("/api/report", data=form, content_type="multipart/form-data")


def test_report_is_one_a4_page_with_the_answer_and_the_model(client, predictor, sample_files):
    from braintumor import __version__
    from braintumor.imaging import load_image
    from braintumor.inference.report import NAMES

    path, _ = sample_files[0]
    r = post_report(client, path.read_bytes(), "Patient_Jane_Doe_1957.jpg")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert "attachment" in r.headers["Content-Disposition"] and "Jane" not in r.headers["Content-Disposition"]
    reader, text = read(r.data)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == pytest.approx(A4, abs=0.5)
    expected = predictor.explain(load_image(path))
    lines = text.splitlines()
    lead = next(i for i, line in enumerate(lines) if "Grad-CAM: where the model looked for" in line)
    assert expected["decision"] != "rejected" and lines[lead + 1].startswith(expected["headline"])
    if expected["decision"] == "classified":
        assert expected["headline"] == NAMES[expected["label"]]
    for cls, p in expected["probabilities"].items():
        assert f"{100 * p:.1f}%" in text
    assert predictor.sha256 in text.replace(" ", "").replace("\n", "") or predictor.sha256 in text
    assert f"braintumor {__version__}" in text and "not for diagnosis" in text.lower()
    assert len(reader.pages[0].images) == 2  # the scan and the heat map
    assert "Similar cases" not in text and "similar=" not in text  # none asked for: no section, no note
    assert b"Jane" not in all_bytes(r.data)  # the uploaded file's name is not printed


def test_report_prints_a_title_only_when_given(client, sample_files):
    path, _ = sample_files[1]
    _, text = read(post_report(client, path.read_bytes(), "x.jpg", title="Teaching case 12").data)
    assert "Teaching case 12" in text
    _, text = read(post_report(client, path.read_bytes(), "x.jpg", explain="false").data)
    assert "Teaching case" not in text and "No heat map was computed" in text


def test_report_of_an_identified_dicom_holds_no_patient_data(client, sample_dir):
    from test_medical import MARKER, identified_dicom, scan

    data = identified_dicom(scan(sample_dir, "glioma/Tr-gl_0255.jpg"))
    r = post_report(client, data, f"{MARKER}.dcm")
    assert r.status_code == 200
    reader, text = read(r.data)
    assert MARKER not in text and MARKER.encode() not in all_bytes(r.data)
    assert MARKER not in str(reader.metadata)


def test_report_errors_are_json(client):
    r = client.post("/api/report", data={}, content_type="multipart/form-data")
    assert r.status_code == 400 and "file" in r.get_json()["error"]
    r = post_report(client, b"not an image at all", "x.jpg")
    assert r.status_code in (400, 415) and r.get_json()["error"]


def test_predict_report_writes_one_pdf_per_image(random_checkpoint, sample_dir, tmp_path, capsys):
    import json

    from braintumor.cli import main

    out = tmp_path / "reports"
    assert main(["predict", str(sample_dir / "glioma"), "--model", str(random_checkpoint), "--report",
                 str(out), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    pdfs = sorted(out.glob("*.pdf"))
    assert len(pdfs) == len(results) == 3
    assert sorted(Path(r["report"]).name for r in results) == [p.name for p in pdfs]
    for r in results:
        reader, text = read(Path(r["report"]).read_bytes())
        assert len(reader.pages) == 1 and "case report" in text


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils (pdftoppm) is not installed")
def test_report_page_renders_to_png(client, sample_files, tmp_path):
    import numpy as np
    from PIL import Image

    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(post_report(client, sample_files[2][0].read_bytes(), "x.jpg").data)
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-singlefile", str(pdf), str(tmp_path / "page")], check=True)
    page = Image.open(tmp_path / "page.png")
    assert page.size == (pytest.approx(413, abs=2), pytest.approx(585, abs=2))  # A4 at 50 dpi
    assert len(np.unique(np.asarray(page.convert("L")))) > 50  # pictures and text, not a blank page


def test_a_rejected_scan_is_reported_as_not_analysed_with_its_reason_only(client):
    import io as _io

    from PIL import Image

    buf = _io.BytesIO()
    Image.new("L", (300, 300), 0).save(buf, format="PNG")
    reader, text = read(post_report(client, buf.getvalue(), "black.png").data)
    assert "Not analysed" in text and "The image is blank" in text
    assert "Probabilities" not in text and "Similar cases" not in text and "%" not in text.split("Not analysed")[1].split("Model:")[0]
    assert "Heat map" not in text and "Grad-CAM" not in text and len(reader.pages[0].images) == 1  # the scan alone


def test_an_uncertain_answer_leads_with_uncertain_refer_and_the_classes_it_could_be():
    from PIL import Image

    from braintumor.inference.report import case_report

    result = {"label": "notumor", "confidence": 0.556, "decision": "uncertain", "headline": "Uncertain: refer",
              "prediction_set": ["notumor", "glioma"], "reason": "No tumour is the most likely answer, but a tumour "
              "cannot be ruled out.", "probabilities": {"glioma": 0.3, "meningioma": 0.1, "notumor": 0.556, "pituitary": 0.044}}
    _, text = read(case_report(result, Image.new("L", (200, 200), 60), {"name": "m", "version": "1", "sha256": "0" * 64}, "0"))
    lines = text.splitlines()
    lead = next(i for i, line in enumerate(lines) if line.startswith("Uncertain: refer"))
    assert lines[lead + 1] == "It could be No tumour or Glioma." and "55.6%" not in lines[lead]
    assert "Have the scan read by a radiologist." in " ".join(lines)  # the page's referral, in its words


UNCERTAIN = {"label": "notumor", "confidence": 0.556, "decision": "uncertain", "headline": "Uncertain: refer",
             "prediction_set": ["notumor", "glioma"], "reason": "A tumour cannot be ruled out.",
             "probabilities": {"glioma": 0.3, "meningioma": 0.1, "notumor": 0.556, "pituitary": 0.044}}
SIMILAR = [{"id": "tcga-lgg/glioma/TCGA_HT_7692_19960724_17.png", "label": "glioma", "similarity": 0.93,
            "closeness": 97, "trained": True, "match": None, "near_copy": False},
           {"id": "notumor/Tr-no_0112.jpg", "label": "notumor", "similarity": 0.88, "closeness": 55,
            "trained": True, "match": "neighbouring slice", "near_copy": False}]


def clinician_report(similar=None) -> bytes:
    from PIL import Image

    from braintumor.inference.report import case_report

    return case_report(UNCERTAIN, Image.new("L", (200, 200), 60), {"name": "m", "version": "1", "sha256": "0" * 64},
                       "0", similar=similar)


def test_similar_cases_read_as_collection_class_and_closeness_in_words_never_paths():
    _, text = read(clinician_report(SIMILAR))
    flat = " ".join(text.split())
    assert "TCGA-LGG, Glioma: very close" in flat
    assert "Brain Tumor MRI Dataset, No tumour: close, a neighbouring slice, which the model was trained on" in flat
    assert "very close means closer than 90 in 100 indexed scans" in flat  # the scale, in words
    assert ".png" not in flat and ".jpg" not in flat and "TCGA_HT" not in flat and "closeness 97" not in flat
    assert "similar=" not in flat and "--similar" not in flat


def test_no_similar_cases_section_when_none_were_asked_for():
    _, text = read(clinician_report())
    assert "Similar cases" not in text and "similar=" not in text and "Not asked for" not in text


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils' pdftoppm is not installed")
def test_the_clinician_s_report_renders(tmp_path):
    """The uncertain report with similar cases, drawn by poppler: one A4 page with text on it.
    ``python tests/test_report.py OUT.png`` writes the same page for a person to look at."""
    import numpy as np
    from PIL import Image

    page = render(clinician_report(SIMILAR), tmp_path / "page")
    assert page.size == (pytest.approx(413, abs=2), pytest.approx(585, abs=2))
    grey = np.asarray(page.convert("L"))
    assert (grey < 128).sum() > 5000  # text drawn, not a blank page
    assert isinstance(Image.open(page.filename), Image.Image)


def render(pdf: bytes, stem: Path, dpi: int = 50):
    from PIL import Image

    stem.with_suffix(".pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-singlefile", str(stem.with_suffix(".pdf")), str(stem)],
                   check=True)
    return Image.open(stem.with_suffix(".png"))


if __name__ == "__main__":
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "report-page.png")
    print(render(clinician_report(SIMILAR), out.with_suffix(""), dpi=100).filename)
