"""One answer object (braintumor.inference.answer) in every output: the JSON API, ``predict --json`` and the
CSV are validated against its JSON Schema, and an image not analysed has no class, confidence or
probabilities in any of them (null in JSON, blank in CSV) unless raw probabilities are asked for."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")

from braintumor.inference.answer import SCHEMAS, answer, csv_columns, from_csv_row, json_schema  # noqa: E402
from braintumor.config import CLASSES  # noqa: E402

NOT_JUDGED = ("label", "confidence", "probabilities", "predictions", "box", "box_score")


def problems(value: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(json_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(value)]


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


BLANK = png(Image.new("L", (200, 200), 0))  # refused by every gate: "The image is blank"


@pytest.fixture(scope="module")
def client(predictor):
    from braintumor.web import create_app

    return create_app(predictor=predictor).test_client()


def post(client, data: bytes, name: str = "scan.png", **fields):
    form = {"file": (io.BytesIO(data), name), "explain": "false", **{k: str(v) for k, v in fields.items()}}
    return client.post("/api/predict", data=form, content_type="multipart/form-data")


def cli(capsys, *argv) -> str:
    from braintumor.cli import main

    assert main(["predict", *map(str, argv), "--backend", "torch"]) == 0
    return capsys.readouterr().out


# ------------------------------------------------------------------------------ the schema


def test_the_schema_is_valid_json_schema_and_the_openapi_document_references_it(client):
    jsonschema.Draft202012Validator.check_schema(json_schema())
    doc = client.get("/api/openapi.json").get_json()
    assert doc["components"]["schemas"]["Answer"] == SCHEMAS["Answer"]
    assert {"$ref": "#/components/schemas/Answer"} in doc["components"]["schemas"]["Prediction"]["allOf"]


def test_the_schema_refuses_a_rejected_answer_with_a_class():
    rejected = {"headline": "Not analysed", "decision": "rejected", "reason": "This is a colour picture.",
                "prediction_set": [], "rejection": "colour", **dict.fromkeys(NOT_JUDGED)}
    assert problems(rejected) == []
    assert problems({**rejected, "label": "notumor", "confidence": 0.987})
    assert problems({**rejected, "probabilities": dict(zip(CLASSES, (0.25,) * 4))})
    assert problems({k: v for k, v in rejected.items() if k != "label"})  # null, not left out


# -------------------------------------------------------------------------------- the API


def test_every_api_answer_is_an_answer_object(client, sample_files):
    for data in (sample_files[0][0].read_bytes(), BLANK):
        body = post(client, data).get_json()
        assert problems(body) == [], body.get("decision")
        assert list(body)[:3] == ["headline", "decision", "reason"]  # it leads with what it is


def test_a_rejected_api_answer_has_no_class_confidence_or_probabilities(client):
    body = post(client, BLANK).get_json()
    assert body["decision"] == "rejected" and body["headline"] == "Not analysed"
    assert all(body[k] is None for k in NOT_JUDGED)
    assert "raw_probabilities" not in body and "target" not in body


def test_raw_probabilities_only_when_asked_for_and_also_for_a_rejected_image(client, predictor, sample_files):
    from braintumor.imaging import load_image

    body = post(client, BLANK, raw="true").get_json()
    assert body["label"] is None and problems(body) == []
    direct = predictor.predict(load_image(BLANK))["probabilities"]
    assert body["raw_probabilities"] == pytest.approx(direct)
    scan = post(client, sample_files[1][0].read_bytes(), raw="true").get_json()
    assert scan["raw_probabilities"] == pytest.approx(scan["probabilities"])
    assert "raw_probabilities" not in post(client, sample_files[1][0].read_bytes()).get_json()


def test_an_uncertain_api_answer_leads_with_the_classes_it_could_be(predictor, sample_files):
    from braintumor.web import create_app

    class Referring:  # the real predictor, its answers made uncertain
        def __getattr__(self, name):
            return getattr(predictor, name)

        def predict(self, image, **kw):
            return {**predictor.predict(image, **kw), "decision": "uncertain",
                    "prediction_set": ["notumor", "glioma"], "reason": "A tumour cannot be ruled out."}

    body = post(create_app(predictor=Referring()).test_client(), sample_files[2][0].read_bytes()).get_json()
    assert problems(body) == []
    assert list(body)[:5] == ["headline", "decision", "reason", "could_be", "prediction_set"]
    assert body["headline"] == "Uncertain: refer" and body["could_be"] == "No tumour or Glioma"


# -------------------------------------------------------------------------- the command line


@pytest.fixture()
def scans(tmp_path, sample_files):
    (tmp_path / "blank.png").write_bytes(BLANK)
    (tmp_path / "scan.jpg").write_bytes(sample_files[0][0].read_bytes())
    return tmp_path


def test_predict_json_gives_the_api_s_answer_object(capsys, random_checkpoint, scans, client):
    results = {r["file"].rsplit("/", 1)[-1]: r for r in
               json.loads(cli(capsys, scans, "--model", random_checkpoint, "--json"))["results"]}
    for r in results.values():
        assert problems(r) == [], r["file"]
    assert all(results["blank.png"][k] is None for k in NOT_JUDGED)
    api = post(client, (scans / "scan.jpg").read_bytes()).get_json()
    same = set(api) & set(results["scan.jpg"])
    assert {"headline", "decision", "reason", "label", "confidence", "probabilities", "predictions"} <= same
    assert results["scan.jpg"]["predictions"] == [{"label": c, "probability": pytest.approx(
        results["scan.jpg"]["probabilities"][c])} for c in CLASSES]


def test_predict_csv_rows_lead_with_the_headline_and_leave_a_rejected_image_blank(capsys, random_checkpoint,
                                                                                  scans):
    out = cli(capsys, scans, "--model", random_checkpoint, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert out.splitlines()[0].split(",")[:4] == ["file", "headline", "decision", "reason"]
    assert out.splitlines()[0].split(",") == csv_columns(CLASSES)
    for row in rows:
        assert problems(from_csv_row(row, CLASSES)) == [], row["file"]
    blank = next(r for r in rows if r["file"].endswith("blank.png"))
    assert blank["headline"] == "Not analysed" and blank["decision"] == "rejected"
    assert all(blank[k] == "" for k in ("label", "confidence", *CLASSES, "box_x0"))


def test_predict_raw_gives_the_model_s_probabilities_clearly_named(capsys, random_checkpoint, scans):
    rows = list(csv.DictReader(io.StringIO(cli(capsys, scans, "--model", random_checkpoint, "--csv", "--raw"))))
    blank = next(r for r in rows if r["file"].endswith("blank.png"))
    assert blank["label"] == "" and sum(float(blank[f"raw_{c}"]) for c in CLASSES) == pytest.approx(1, abs=1e-5)
    assert problems(from_csv_row(blank, CLASSES)) == []
    results = json.loads(cli(capsys, scans, "--model", random_checkpoint, "--json", "--raw"))["results"]
    blank = next(r for r in results if r["file"].endswith("blank.png"))
    assert blank["probabilities"] is None and set(blank["raw_probabilities"]) == set(CLASSES)


def test_answer_leaves_out_what_supports_a_class_for_an_image_not_analysed():
    result = {"label": "notumor", "confidence": 0.987, "probabilities": dict(zip(CLASSES, (0.01, 0.002, 0.987, 0.001))),
              "decision": "rejected", "reason": "This looks like a page of text.", "prediction_set": [],
              "rejection": "document", "target": "notumor", "cam_method": "gradcam", "box": None, "box_score": 0.7,
              "members": [{"name": "a", "label": "notumor", "confidence": 0.9}], "agreement": 1, "ood_score": 4.2}
    a = answer(result, CLASSES)
    assert a["headline"] == "Not analysed" and a["ood_score"] == 4.2 and a["rejection"] == "document"
    assert all(a[k] is None for k in NOT_JUDGED)
    assert not {"target", "cam_method", "members", "agreement", "raw_probabilities"} & set(a)
    assert answer(result, CLASSES, raw=True)["raw_probabilities"]["notumor"] == 0.987
