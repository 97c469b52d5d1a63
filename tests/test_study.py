"""Studies: DICOM files grouped into series and put in anatomical order, every slice answered and
summarised, NIfTI volumes alike, the limits of one study (.zip archives included), the command
``braintumor study`` and ``POST /api/study``."""

from __future__ import annotations

import io
import json
import random
import zipfile

import numpy as np
import pytest
from pydicom import uid

from conftest import synthetic_scan
from dicom_series import (PATIENT_ID, PATIENT_NAME, STUDY_DATE, enhanced_mr, header, mark_of, mr_series, mr_slice,
                          zipped)

from braintumor.studies import (
    ArchiveError, StudyError, StudyLimits, StudyTooLarge, answer_study, read_study,
)
from braintumor.studies.archive import read_zip


def items(files: list[bytes], shuffle: int | None = None) -> list[tuple[bytes, str]]:
    out = [(f, f"/secret/path/file{i}.dcm") for i, f in enumerate(files)]
    if shuffle is not None:
        random.Random(shuffle).shuffle(out)
    return out



def marked_encrypted(data: bytes) -> bytes:
    """A one-entry .zip with its entry marked encrypted (bit 0 of the flags, in the local header and
    in the central directory)."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = out.index(signature) + offset
        out[at] |= 0x1
    return bytes(out)


@pytest.fixture(scope="module")
def series24() -> list[bytes]:
    return mr_series(24)


# ------------------------------------------------------------------------------------- ordering


def test_shuffled_files_come_back_in_anatomical_order(series24):
    study = read_study(items(series24, shuffle=3))
    (s,) = study.series
    assert s.ordering == "position" and s.kind == "dicom" and s.modality == "MR"
    assert [x.instance_number for x in s.slices] == list(range(1, 25))
    positions = [x.position for x in s.slices]
    assert positions == sorted(positions) and positions[1] - positions[0] == pytest.approx(5.0)
    assert [mark_of(x.image) for x in s.slices] == list(range(24))  # each slice with its own pixels


def test_position_wins_over_instance_numbers_and_oblique_slices_order_along_their_normal():
    tilt = np.deg2rad(25)
    oblique = (1.0, 0.0, 0.0, 0.0, float(np.cos(tilt)), float(-np.sin(tilt)))
    files = mr_series(10, orientation=oblique)
    # renumber backwards: the InstanceNumber now disagrees with the position
    study_uid, series_uid = str(header(files[0]).StudyInstanceUID), str(header(files[0]).SeriesInstanceUID)
    normal = np.cross(oblique[:3], oblique[3:])
    files = [mr_slice(synthetic_scan(k, 64).astype(np.uint16), study_uid, series_uid, 10 - k,
                      tuple(np.array([0.0, 0.0, 0.0]) + 5.0 * k * normal), oblique) for k in range(10)]
    (s,) = read_study(items(files, shuffle=1)).series
    assert s.ordering == "position"
    assert [x.instance_number for x in s.slices] == list(range(10, 0, -1))


def test_without_positions_instance_numbers_order_and_without_both_the_files_order():
    (s,) = read_study(items(mr_series(8, positions=False), shuffle=2)).series
    assert s.ordering == "instance number" and [x.instance_number for x in s.slices] == list(range(1, 9))
    files = mr_series(5, positions=False, instance_numbers=False)
    (s,) = read_study(items(files)).series
    assert s.ordering == "file order" and [mark_of(x.image) for x in s.slices] == list(range(5))


def test_frames_of_a_multi_frame_file_are_ordered_by_their_own_positions():
    order = [2, 3, 5, 0, 4, 1]  # frame f + 1 holds slice order[f]
    (s,) = read_study([(enhanced_mr(order), "enhanced.dcm")]).series
    assert s.ordering == "position" and [mark_of(x.image) for x in s.slices] == list(range(6))
    assert [x.frame for x in s.slices] == [order.index(k) + 1 for k in range(6)]


def test_files_of_two_series_are_grouped_and_others_skipped_and_counted():
    study_uid = uid.generate_uid()
    a, b = mr_series(6, study_uid=study_uid, series_number=2), mr_series(4, study_uid=study_uid, series_number=5)
    mixed = items(a + b, shuffle=4) + [(b"plain text, not a scan", "notes.txt"), (a[0], "copy.dcm")]
    study = read_study(mixed)
    assert [len(s.slices) for s in study.series] == [6, 4]
    assert [s.series_number for s in study.series] == [2, 5]
    assert study.skipped == {"not a DICOM or NIfTI file": 1,
                             "a second copy of an image (the same SOPInstanceUID)": 1}


def test_nothing_readable_is_a_study_error():
    with pytest.raises(StudyError, match="no DICOM or NIfTI image"):
        read_study([(b"hello", "a.txt")])


# ------------------------------------------------------------------------------------- answers


def test_every_slice_is_answered_in_order_with_a_summary_and_nothing_identifying(predictor, series24):
    study = read_study(items(series24, shuffle=5))
    answer = answer_study(predictor, study, batch_size=7)
    (s,) = answer["series"]
    assert answer["n_slices"] == 24 and s["n_slices"] == 24 and s["ordering"] == "position"
    assert [a["index"] for a in s["slices"]] == list(range(24))
    assert [a["instance_number"] for a in s["slices"]] == list(range(1, 25))
    # the same answers as one slice at a time
    alone = [predictor.predict(x.image) for x in study.series[0].slices]
    assert [a["label"] for a in s["slices"]] == [r["label"] for r in alone]
    assert [a["confidence"] for a in s["slices"]] == pytest.approx([r["confidence"] for r in alone], abs=1e-6)
    # the summary lists each classified slice under its class, and the most suspicious first
    for label, indices in s["summary"].items():
        assert all(s["slices"][i]["label"] == label and s["slices"][i]["decision"] == "classified" for i in indices)
    p = [1 - a["probabilities"]["notumor"] for a in s["slices"] if a["decision"] != "rejected"]
    if s["most_suspicious"]:
        assert s["most_suspicious"][0]["tumour_probability"] == pytest.approx(max(p), abs=1e-4)
    assert answer["answer"]["series"] == 1 and answer["answer"]["reason"].startswith("Series 1: ")
    text = json.dumps(answer)
    hdr = header(series24[0])
    for secret in (PATIENT_NAME, PATIENT_ID, STUDY_DATE, "ACC555", "/secret/path", str(hdr.StudyInstanceUID),
                   str(hdr.SeriesInstanceUID), str(hdr.SOPInstanceUID)):
        assert secret not in text


def test_series_answer_names_the_tumour_slices(tmp_path, series24):
    from conftest import box_checkpoint
    from braintumor.inference.predictor import Predictor

    glioma = Predictor.load(box_checkpoint(tmp_path / "says-glioma.safetensors", always=0))
    answer = answer_study(glioma, read_study(items(series24[:6])))
    (s,) = answer["series"]
    assert s["summary"]["glioma"] == list(range(6)) and s["summary_text"] == {"glioma": "0-5"}
    assert s["answer"]["headline"] == "Glioma" and s["answer"]["label"] == "glioma"
    assert "Glioma on 6 of 6 analysed slices (0-5)" in s["answer"]["reason"]
    assert all(a["box"] is not None and len(a["box"]) == 4 for a in s["slices"])


def test_boxes_are_in_the_stored_pixels_of_non_square_pixel_images(tmp_path):
    from conftest import box_checkpoint
    from braintumor.inference.predictor import Predictor

    glioma = Predictor.load(box_checkpoint(tmp_path / "g.safetensors", always=0))
    files = mr_series(3, size=96, spacing=(0.9, 0.45))  # rows twice as far apart as columns
    study = read_study(items(files))
    x = study.series[0].slices[0]
    assert x.image.size == (96, 192) and (x.rows, x.cols) == (96, 96)
    a = answer_study(glioma, study)["series"][0]["slices"][0]
    seen = glioma.predict(x.image)["box"]
    assert a["box"] == pytest.approx([seen[0], seen[1] / 2, seen[2], seen[3] / 2], abs=0.051)


def test_a_real_mr_file_and_a_nifti_volume(predictor):
    from pydicom.data import get_testdata_file

    from test_medical import nifti_bytes

    mr = open(get_testdata_file("MR_small.dcm"), "rb").read()
    volume = np.stack([synthetic_scan(k, 64) for k in range(12)], axis=-1).astype(np.int16)
    study = read_study([(mr, "MR_small.dcm"), (nifti_bytes(volume, gz=True), "brain.nii.gz")])
    kinds = [(s.kind, len(s.slices), s.ordering) for s in study.series]
    assert kinds == [("dicom", 1, "position"), ("nifti", 12, "volume")]
    answer = answer_study(predictor, study)
    assert [s["n_slices"] for s in answer["series"]] == [1, 12]
    assert "instance_number" not in answer["series"][1]["slices"][0]


# ------------------------------------------------------------------------------------- limits


def test_study_limits_on_files_bytes_slices_and_pixels(series24):
    roomy = dict(files=100, bytes=1 << 30, slices=100, pixels=10**9)
    with pytest.raises(StudyTooLarge, match="files"):
        read_study(items(series24), StudyLimits(**{**roomy, "files": 10}))
    with pytest.raises(StudyTooLarge, match="MB"):
        read_study(items(series24), StudyLimits(**{**roomy, "bytes": 100_000}))
    with pytest.raises(StudyTooLarge, match="slices"):
        read_study(items(series24), StudyLimits(**{**roomy, "slices": 20}))
    with pytest.raises(StudyTooLarge, match="megapixel"):
        read_study(items(series24), StudyLimits(**{**roomy, "pixels": 96 * 96 * 10}))
    assert StudyTooLarge("x").status == 413


def test_zip_read_and_refused_before_inflating(series24):
    roomy = StudyLimits(files=100, bytes=1 << 30, slices=100, pixels=10**9)
    ok = zipped({f"PATIENT NAME/s{i}.dcm": f for i, f in enumerate(series24)} | {"__MACOSX/._x": b"junk"})
    (s,) = read_study([(ok, "study.zip")], roomy).series
    assert len(s.slices) == 24
    bomb = zipped({"big.dcm": b"\0" * (50 << 20)})  # 50 MB of zeros in about 50 KB
    assert len(bomb) < 200_000
    with pytest.raises(StudyTooLarge, match="MB"):
        read_zip(bomb, "bomb.zip", StudyLimits(files=100, bytes=10 << 20, slices=100, pixels=10**9))
    with pytest.raises(StudyTooLarge, match="files"):
        read_zip(zipped({f"{i}.dcm": b"x" for i in range(101)}), "many.zip", roomy)
    for name in ("../../etc/evil.dcm", "/abs/evil.dcm", "C:\\evil.dcm", "a/../../evil.dcm"):
        with pytest.raises(ArchiveError, match="outside"):
            read_zip(zipped({name: series24[0]}), "up.zip", roomy)
    with pytest.raises(ArchiveError, match="archive inside"):
        read_zip(zipped({"inner.zip": ok}), "nested.zip", roomy)
    with pytest.raises(ArchiveError, match="archive inside"):
        read_zip(zipped({"inner.bin": ok}), "nested.zip", roomy)  # found by content
    with pytest.raises(ArchiveError, match="encrypted"):
        read_zip(marked_encrypted(zipped({"a.dcm": series24[0]})), "locked.zip", roomy)
    with pytest.raises(ArchiveError, match="damaged"):
        read_zip(ok[: len(ok) // 2], "cut.zip", roomy)


# ------------------------------------------------------------------------------------- CLI


def test_study_command_prints_json_and_writes_a_report_per_series(tmp_path, random_checkpoint, capsys, series24):
    from braintumor.cli import main

    folder = tmp_path / "dicom"
    folder.mkdir()
    for i, f in enumerate(series24[:10]):
        (folder / f"IM{9 - i:04d}").write_bytes(f)  # names in reverse anatomical order
    (folder / "readme.txt").write_text("not a scan")
    out = tmp_path / "sr"
    code = main(["study", str(folder), "--json", "--sr", str(out), "--model", str(random_checkpoint)])
    captured = capsys.readouterr()
    assert code == 0
    answer = json.loads(captured.out)
    assert [a["instance_number"] for a in answer["series"][0]["slices"]] == list(range(1, 11))
    assert answer["skipped"] == [{"reason": "not a DICOM or NIfTI file", "files": 1}]
    assert str(tmp_path) not in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["series-1.sr.dcm"]
    code = main(["study", str(folder), "--model", str(random_checkpoint)])
    text = capsys.readouterr().out
    assert code == 0 and text.startswith("Study: ") and "Series 1 (MR series 3, 10 slices, ordered by position)" in text


def test_study_command_refuses_a_missing_path_with_one_line(capsys, tmp_path):
    from braintumor.cli import main

    assert main(["study", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().startswith("braintumor study: error: no such file or folder")


# ------------------------------------------------------------------------------------- API


@pytest.fixture(scope="module")
def client(predictor):
    from braintumor.web import create_app

    return create_app(predictor=predictor).test_client()


def post(client, path: str, files: list[tuple[bytes, str]], **fields):
    data = {"file": [(io.BytesIO(b), name) for b, name in files], **fields}
    return client.post(path, data=data, content_type="multipart/form-data")


def test_api_study_answers_files_and_a_zip_alike(client, series24):
    files = items(series24[:12], shuffle=7)
    by_files = post(client, "/api/study", files)
    assert by_files.status_code == 200, by_files.get_json()
    body = by_files.get_json()
    assert [a["instance_number"] for a in body["series"][0]["slices"]] == list(range(1, 13))
    by_zip = post(client, "/api/study", [(zipped({f"x/{i}.dcm": b for i, (b, _) in enumerate(files)}), "s.zip")])
    assert by_zip.status_code == 200
    assert [a["label"] for a in by_zip.get_json()["series"][0]["slices"]] == \
        [a["label"] for a in body["series"][0]["slices"]]
    for secret in (PATIENT_NAME, PATIENT_ID, "/secret/path"):
        assert secret not in by_files.get_data(as_text=True)


def test_api_study_refusals_are_4xx_with_one_line(client, series24):
    from braintumor.studies.limits import SERVICE

    cases = [
        (client.post("/api/study", data={}, content_type="multipart/form-data"), 400, "no file"),
        (post(client, "/api/study", [(b"not a scan", "a.txt")]), 400, "no DICOM or NIfTI image"),
        (post(client, "/api/study", [(zipped({"../evil.dcm": series24[0]}), "a.zip")]), 400, "outside"),
        (post(client, "/api/study", [(zipped({"in.zip": zipped({"a.dcm": series24[0]})}), "a.zip")]), 400,
         "archive inside"),
        (post(client, "/api/study", [(zipped({f"{i}": b"" for i in range(SERVICE.files + 1)}), "a.zip")]), 413,
         "files"),
        (post(client, "/api/study", [(zipped({"big.dcm": b"\0" * (SERVICE.bytes + 1)}), "a.zip")]), 413, "MB"),
        (post(client, "/api/study/sr", [(b"not a scan", "a.txt")]), 400, "no DICOM or NIfTI image"),
    ]
    for resp, status, words in cases:
        assert resp.status_code == status, resp.get_json()
        message = resp.get_json()["error"]
        assert words in message and "\n" not in message and "Traceback" not in message


def test_api_study_sr_gives_one_report_or_a_zip_of_them(client, series24):
    import pydicom

    one = post(client, "/api/study/sr", items(series24[:4]))
    assert one.status_code == 200 and one.mimetype == "application/dicom"
    ds = pydicom.dcmread(io.BytesIO(one.data))
    assert ds.Modality == "SR" and ds.StudyInstanceUID == header(series24[0]).StudyInstanceUID
    study_uid = uid.generate_uid()
    two = mr_series(3, study_uid=study_uid, series_number=1) + mr_series(2, study_uid=study_uid, series_number=2)
    both = post(client, "/api/study/sr", items(two))
    assert both.status_code == 200 and both.mimetype == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(both.data)).namelist()
    assert names == ["series-1.sr.dcm", "series-2.sr.dcm"]


def test_study_command_and_reports_run_without_pytorch(tmp_path, series24):
    from test_light import run_cli

    folder = tmp_path / "series"
    folder.mkdir()
    for i, f in enumerate(series24[:4]):
        (folder / f"{i}.dcm").write_bytes(f)
    r = run_cli(["study", str(folder), "--json", "--sr", str(tmp_path / "sr")], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["n_slices"] == 4 and (tmp_path / "sr" / "series-1.sr.dcm").is_file()


def test_api_study_answers_match_their_openapi_description(client, series24):
    from test_web import conforms

    from braintumor.web.openapi import spec
    from braintumor.web.study_api import openapi_paths

    doc = spec()
    doc["paths"].update(openapi_paths())
    responses = doc["paths"]["/api/study"]["post"]["responses"]
    ok = post(client, "/api/study", items(series24[:3]))
    refused = post(client, "/api/study", [(b"not a scan", "a.txt")])
    for resp in (ok, refused):
        schema = responses[str(resp.status_code)]["content"]["application/json"]["schema"]
        assert conforms(resp.get_json(), schema, doc) == []


def test_api_study_thumbnails_show_each_slice_in_anatomical_order(client, series24):
    import base64

    from PIL import Image

    files = items(series24[:6], shuffle=4)
    plain = post(client, "/api/study", files).get_json()
    assert not any("thumbnail" in s for s in plain["series"][0]["slices"])
    resp = post(client, "/api/study", files, thumbnails="true")
    assert resp.status_code == 200, resp.get_json()
    slices = resp.get_json()["series"][0]["slices"]
    pictures = [Image.open(io.BytesIO(base64.b64decode(s["thumbnail"].split(",", 1)[1]))) for s in slices]
    assert all(s["thumbnail"].startswith("data:image/png;base64,") for s in slices)
    assert all(max(p.size) <= 128 for p in pictures)
    assert [mark_of(p) for p in pictures] == list(range(6))
    assert [s["label"] for s in slices] == [s["label"] for s in plain["series"][0]["slices"]]
    for secret in (PATIENT_NAME, PATIENT_ID, "/secret/path"):
        assert secret not in resp.get_data(as_text=True)


def test_api_study_slice_answers_one_slice_with_its_heat_map(client, series24):
    import base64

    from PIL import Image

    from test_web import conforms

    from braintumor.web.openapi import spec

    files = items(series24[:6], shuffle=2)
    study = post(client, "/api/study", files).get_json()
    resp = post(client, "/api/study/slice", files, series="1", index="4")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    want = study["series"][0]["slices"][4]
    assert (body["series"], body["index"], body["instance_number"]) == (1, 4, 5)
    assert body["position_mm"] == want["position_mm"] and body["label"] == want["label"]
    original = Image.open(io.BytesIO(base64.b64decode(body["original"].split(",", 1)[1])))
    heat = Image.open(io.BytesIO(base64.b64decode(body["heatmap_png"].split(",", 1)[1])))
    assert mark_of(original) == 4 and heat.size == original.size and heat.mode == "L"
    assert body["image_size"] == list(original.size)
    for secret in (PATIENT_NAME, PATIENT_ID, "/secret/path", STUDY_DATE, str(header(series24[4]).SOPInstanceUID)):
        assert secret not in resp.get_data(as_text=True)
    doc = spec()
    schema = doc["paths"]["/api/study/slice"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert conforms(body, schema, doc) == []

    for fields, words in (({"series": "2", "index": "0"}, "'series' must be 1 to 1"),
                          ({"series": "1", "index": "6"}, "'index' must be 0 to 5"),
                          ({"series": "1"}, "say which slice"),
                          ({"series": "1", "index": "0", "cam_method": "x"}, "unknown cam_method")):
        refused = post(client, "/api/study/slice", files, **fields)
        assert refused.status_code == 400 and words in refused.get_json()["error"], refused.get_json()
    refused = post(client, "/api/study/slice", [(b"not a scan", "a.txt")], series="1", index="0")
    assert refused.status_code == 400 and "no DICOM or NIfTI image" in refused.get_json()["error"]
