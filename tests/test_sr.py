"""DICOM Structured Reports of a series' answers: valid (dciodvfy reports no error), in the study of
the images, and read back by highdicom with, for every slice, the class, decision, probability and
box that the JSON answer gave."""

from __future__ import annotations

import copy
import io
import shutil
import subprocess

import pydicom
import pytest

from conftest import box_checkpoint
from dicom_series import enhanced_mr, header, mr_series

from braintumor.studies import answer_study, build_sr, read_sr, read_study, sr_bytes, study_reports
from braintumor.studies.sr import FINDINGS, SERIES_DESCRIPTION


@pytest.fixture(scope="module")
def glioma(tmp_path_factory):
    """A model that answers glioma, with a tumour box, for every slice."""
    from braintumor.inference.predictor import Predictor

    return Predictor.load(box_checkpoint(tmp_path_factory.mktemp("g") / "says-glioma.safetensors", always=0))


@pytest.fixture(scope="module")
def series24():
    return mr_series(24, size=128, spacing=(0.9, 0.6))  # non-square pixels: boxes are scaled back


def dciodvfy_errors(data: bytes, tmp_path) -> list[str]:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    path = tmp_path / "report.dcm"
    path.write_bytes(data)
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    assert any("Comprehensive3DSR" in line for line in lines), lines[:20]  # it recognised the IOD
    return [line for line in lines if line.startswith("Error")]


def reread(ds) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(sr_bytes(ds)))


def assert_same_findings(answer_series: dict, found: list[dict], series) -> None:
    slices = [a for a in answer_series["slices"] if "label" in a]
    assert [f["index"] for f in found] == [a["index"] for a in slices]
    for a, f in zip(slices, found):
        assert f["label"] == a["label"]
        assert f["decision"] == a["decision"]
        assert f["probability"] == pytest.approx(a["confidence"], abs=1e-6)
        assert f["box"] == (pytest.approx(a["box"], abs=1e-3) if a["box"] else None)
        assert f["sop_instance_uid"] == series.slices[a["index"]].sop_instance_uid


def test_report_of_a_24_slice_series_is_valid_and_reads_back_every_slice(glioma, series24, tmp_path):
    study = read_study([(f, f"f{i}") for i, f in enumerate(reversed(series24))])
    answer = answer_study(glioma, study)
    ((number, ds),) = study_reports(study, answer)
    data = sr_bytes(ds)
    assert dciodvfy_errors(data, tmp_path) == []
    back = pydicom.dcmread(io.BytesIO(data))
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    src = header(series24[0])
    assert back.StudyInstanceUID == src.StudyInstanceUID and back.SeriesInstanceUID != src.SeriesInstanceUID
    assert back.PatientID == src.PatientID  # the report belongs to the patient's study
    assert back.SeriesDescription == SERIES_DESCRIPTION and "not for diagnosis" in back.SeriesDescription
    assert back.CompletionFlag == "PARTIAL" and back.VerificationFlag == "UNVERIFIED"
    evidence = {str(i.ReferencedSOPInstanceUID) for e in back.CurrentRequestedProcedureEvidenceSequence
                for s in e.ReferencedSeriesSequence for i in s.ReferencedSOPSequence}
    assert evidence == {str(header(f).SOPInstanceUID) for f in series24}
    found = read_sr(back)
    assert len(found) == 24 and all(f["box"] is not None for f in found)
    assert_same_findings(answer["series"][0], found, study.series[0])
    model = answer["model"]  # the algorithm identification
    for value in (model["name"], model["version"], "SHA-256 " + model["sha256"], FINDINGS["glioma"][0]):
        assert value.encode() in data


def test_no_tumour_uncertain_and_refused_slices_read_back_too(glioma, series24, tmp_path):
    study = read_study([(f, f"f{i}") for i, f in enumerate(series24[:6])])
    answer = copy.deepcopy(answer_study(glioma, study))
    slices = answer["series"][0]["slices"]
    slices[0].update(label="notumor", decision="classified", box=None)  # an absent finding
    slices[1].update(label="meningioma", decision="uncertain")
    slices[2].update(label="pituitary", decision="rejected", box=None)
    ds = build_sr(study.series[0], answer["series"][0], answer["model"])
    assert dciodvfy_errors(sr_bytes(ds), tmp_path) == []
    found = read_sr(reread(ds))
    assert_same_findings(answer["series"][0], found, study.series[0])
    assert [f["label"] for f in found[:3]] == ["notumor", "meningioma", "pituitary"]


def test_report_of_a_real_mr_file(glioma, tmp_path):
    from pydicom.data import get_testdata_file

    data = open(get_testdata_file("MR_small.dcm"), "rb").read()
    study = read_study([(data, "MR_small.dcm")])
    answer = answer_study(glioma, study)
    ((_, ds),) = study_reports(study, answer)
    assert dciodvfy_errors(sr_bytes(ds), tmp_path) == []
    found = read_sr(reread(ds))
    assert_same_findings(answer["series"][0], found, study.series[0])
    assert found[0]["box"] is not None


def test_the_frames_of_a_multi_frame_file_are_referenced_by_number(glioma, tmp_path):
    order = [4, 0, 3, 1, 2]
    study = read_study([(enhanced_mr(order), "enhanced.dcm")])
    answer = answer_study(glioma, study)
    ((_, ds),) = study_reports(study, answer)
    assert dciodvfy_errors(sr_bytes(ds), tmp_path) == []
    found = read_sr(reread(ds))
    assert_same_findings(answer["series"][0], found, study.series[0])
    assert [f["frame"] for f in found] == [order.index(k) + 1 for k in range(5)]
    assert [f["frame"] for f in found] == [a["frame"] for a in answer["series"][0]["slices"]]


def test_a_nifti_volume_has_no_report(predictor):
    import numpy as np

    from braintumor.studies import StudyError
    from test_medical import nifti_bytes

    study = read_study([(nifti_bytes(np.zeros((32, 32, 3), np.int16) + 5), "v.nii")])
    answer = answer_study(predictor, study)
    assert study_reports(study, answer) == []
    with pytest.raises(StudyError, match="NIfTI"):
        build_sr(study.series[0], answer["series"][0], answer["model"])
