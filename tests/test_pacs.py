"""The round trip through a real PACS: a series stored in Orthanc (with its DICOMweb plugin) is
read by ``braintumor pacs`` (QIDO-RS, WADO-RS), answered, and its structured report stored back
into the same study (STOW-RS), where QIDO-RS finds it with the findings the JSON answer gave.
Orthanc runs as a plain process on a free loopback port with a temporary storage folder; the tests
skip where it is not installed (Debian: ``apt-get install orthanc orthanc-dicomweb``)."""

from __future__ import annotations

import glob
import io
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import box_checkpoint
from dicom_series import PATIENT_NAME, mr_series

PLUGIN_GLOBS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so*")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """The DICOMweb root of a fresh Orthanc, e.g. http://127.0.0.1:PORT/dicom-web."""
    exe = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
    plugins = [p for g in PLUGIN_GLOBS for p in sorted(glob.glob(g))]
    if exe is None or not plugins:
        pytest.skip("Orthanc with its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)")
    folder = tmp_path_factory.mktemp("orthanc")
    port = free_port()
    config = {
        "Name": "braintumor-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "Plugins": [plugins[0]],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (folder / "config.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "wb")
    proc = subprocess.Popen([exe, str(folder / "config.json")], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/dicom-web/studies", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("Orthanc did not start:\n" + (folder / "orthanc.log").read_text()[-2000:])
                time.sleep(0.2)
        yield base + "/dicom-web"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def glioma_model(tmp_path_factory) -> Path:
    return box_checkpoint(tmp_path_factory.mktemp("g") / "says-glioma.safetensors", always=0)


def test_a_study_goes_to_orthanc_and_its_report_comes_back_into_the_same_study(orthanc, glioma_model, capsys):
    import pydicom
    from dicomweb_client.api import DICOMwebClient

    from braintumor.cli import main
    from braintumor.studies import read_sr

    files = mr_series(24, size=96)
    datasets = [pydicom.dcmread(io.BytesIO(f)) for f in files]
    study_uid = str(datasets[0].StudyInstanceUID)
    web = DICOMwebClient(orthanc)
    web.store_instances(datasets=datasets[::-1])  # stored in reverse order
    code = main(["pacs", "--url", orthanc, "--study", study_uid, "--store", "--json", "--model", str(glioma_model)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    answer = json.loads(captured.out)
    assert "stored 1 structured report(s) in the study" in captured.err
    assert PATIENT_NAME not in captured.out and study_uid not in captured.out
    (series,) = answer["series"]
    assert series["ordering"] == "position" and [a["instance_number"] for a in series["slices"]] == list(range(1, 25))

    reports = web.search_for_series(study_instance_uid=study_uid, search_filters={"Modality": "SR"})
    assert len(reports) == 1
    sr_series = reports[0]["0020000E"]["Value"][0]
    (instance,) = web.search_for_instances(study_instance_uid=study_uid, series_instance_uid=sr_series)
    sr = web.retrieve_instance(study_instance_uid=study_uid, series_instance_uid=sr_series,
                               sop_instance_uid=instance["00080018"]["Value"][0])
    assert str(sr.StudyInstanceUID) == study_uid
    by_number = {int(d.InstanceNumber): str(d.SOPInstanceUID) for d in datasets}
    found = read_sr(sr)
    assert len(found) == 24
    for a, f in zip(series["slices"], found):
        assert (f["index"], f["label"], f["decision"]) == (a["index"], a["label"], a["decision"])
        assert f["box"] == pytest.approx(a["box"], abs=1e-3)
        assert f["sop_instance_uid"] == by_number[a["instance_number"]]

    # answered again, the report already in the study is left out (not an image series)
    assert main(["pacs", "--url", orthanc, "--study", study_uid, "--json", "--model", str(glioma_model)]) == 0
    assert json.loads(capsys.readouterr().out)["n_series"] == 1


def test_pacs_command_errors_are_one_line(orthanc, glioma_model, capsys):
    from braintumor.cli import main

    assert main(["pacs", "--url", orthanc, "--study", "1.2.3.4.5", "--model", str(glioma_model)]) == 2
    assert "no series in this study" in capsys.readouterr().err
    dead = f"http://127.0.0.1:{free_port()}/dicom-web"
    assert main(["pacs", "--url", dead, "--study", "1.2.3", "--model", str(glioma_model)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not reach the DICOMweb server" in err
    assert main(["pacs", "--url", orthanc, "--study", "not-a-uid"]) == 2
    assert "--study must be a DICOM UID" in capsys.readouterr().err
