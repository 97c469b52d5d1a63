"""Opt-in feedback: the SQLite store, POST /api/feedback, many writers at once, a killed server,
and ``braintumor feedback list|stats|export``."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.request import Request, urlopen

import numpy as np
import pytest
from PIL import Image

from braintumor.inference import feedback as fb


def answer(**over) -> fb.Answer:
    base = dict(answer_id="a1", model_name="m", model_version="1", model_sha256="ab" * 32, predicted="glioma",
                decision="classified", probabilities={"glioma": 0.9, "meningioma": 0.05, "notumor": 0.03,
                                                      "pituitary": 0.02},
                image_sha256="cd" * 32, created=time.time())
    base.update(over)
    return fb.Answer(**base)


# ------------------------------------------------------------------------------------- store


def test_new_database_has_the_current_schema_in_wal_mode(tmp_path):
    con = fb.connect(tmp_path / "f.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == fb.SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = {r[1] for r in con.execute("PRAGMA table_info(feedback)")}
    assert {"model_sha256", "predicted", "corrected", "probabilities", "image_sha256", "image_png",
            "decision", "comment"} <= cols
    assert not {"filename", "file_name", "patient"} & cols


def test_an_old_database_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(fb.MIGRATIONS[0])
    old.execute("PRAGMA user_version = 1")
    old.execute("INSERT INTO feedback (created, answer_id, model_name, model_version, model_sha256, predicted,"
                " corrected, probabilities, image_sha256) VALUES ('t', 'x', 'm', '1', 's', 'glioma', 'notumor',"
                " '{}', 'h')")
    old.commit()
    old.close()
    con = fb.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == fb.SCHEMA_VERSION
    [row] = list(fb.rows(con))
    assert (row["predicted"], row["corrected"], row["decision"]) == ("glioma", "notumor", "")


def test_newer_or_foreign_databases_are_refused(tmp_path):
    newer = tmp_path / "newer.db"
    c = sqlite3.connect(newer)
    c.execute(f"PRAGMA user_version = {fb.SCHEMA_VERSION + 1}")
    c.close()
    with pytest.raises(fb.FeedbackError, match="newer"):
        fb.connect(newer)
    foreign = tmp_path / "foreign.db"
    c = sqlite3.connect(foreign)
    c.execute("CREATE TABLE invoices (id INTEGER)")
    c.close()
    with pytest.raises(fb.FeedbackError, match="something else"):
        fb.connect(foreign)
    text = tmp_path / "text.db"
    text.write_text("not a database at all, just some text " * 50)
    with pytest.raises(fb.FeedbackError, match="not a feedback database"):
        fb.connect(text)


def test_record_checks_the_class_and_the_comment(tmp_path):
    con = fb.connect(tmp_path / "f.db")
    with pytest.raises(fb.FeedbackError, match="unknown class"):
        fb.record(con, answer(), "tumour")
    with pytest.raises(fb.FeedbackError, match="longer"):
        fb.record(con, answer(), "glioma", "x" * (fb.MAX_COMMENT + 1))
    assert con.execute("SELECT count(*) FROM feedback").fetchone()[0] == 0


def test_kept_pixels_carry_no_metadata(tmp_path):
    img = Image.fromarray(np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8), "L")
    png = fb.png_bytes(img)
    back = Image.open(io.BytesIO(png))
    assert np.array_equal(np.asarray(back), np.asarray(img))
    assert not back.info.get("exif") and not getattr(back, "text", {})


def test_recent_answers_keep_no_image_and_expire():
    types = {f.name: f.type for f in dataclasses.fields(fb.Answer)}
    assert not any("bytes" in str(t) or "Image" in str(t) or "ndarray" in str(t) for t in types.values())
    recent = fb.RecentAnswers(limit=2, ttl_s=60)
    for i in range(3):
        recent.add(answer(answer_id=str(i)))
    assert recent.get("0") is None and recent.get("2") is not None  # the oldest went first
    recent.add(answer(answer_id="old", created=time.time() - 120))
    assert recent.get("old") is None


# --------------------------------------------------------------------------------------- API


@pytest.fixture()
def feedback_app(predictor, tmp_path):
    from braintumor.web import create_app

    db = tmp_path / "feedback.db"
    return create_app({"FEEDBACK_DB": str(db)}, predictor=predictor), db


def predict(client, data: bytes, filename: str = "scan.jpg") -> dict:
    r = client.post("/api/predict", data={"file": (io.BytesIO(data), filename), "explain": "false"},
                    content_type="multipart/form-data")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def send(client, data: bytes | None = None, filename: str = "scan.jpg", **fields):
    form = {k: str(v) for k, v in fields.items()}
    if data is not None:
        form["file"] = (io.BytesIO(data), filename)
    return client.post("/api/feedback", data=form, content_type="multipart/form-data")


def test_feedback_is_off_unless_asked_for(predictor, sample_files):
    from braintumor.web import create_app

    client = create_app(predictor=predictor).test_client()
    assert client.get("/api/health").get_json()["feedback"] is False
    assert "Was this right?" not in client.get("/").get_data(as_text=True)
    r = send(client, id="x", label="glioma")
    assert r.status_code == 404 and "--feedback" in r.get_json()["error"]


def test_feedback_without_consent_keeps_no_image(feedback_app, sample_files):
    app, db = feedback_app
    client = app.test_client()
    assert "Was this right?" in client.get("/").get_data(as_text=True)
    data = sample_files[0][0].read_bytes()
    a = predict(client, data, "Patient_Jane_Doe.jpg")
    r = send(client, id=a["id"], label="meningioma", comment="looks extra-axial", keep_image="false")
    assert r.status_code == 201 and r.get_json()["image_kept"] is False
    con = sqlite3.connect(db)
    rows = con.execute("SELECT predicted, corrected, comment, image_sha256, image_png, model_sha256,"
                       " probabilities FROM feedback").fetchall()
    assert len(rows) == 1
    predicted, corrected, comment, sha, png, model_sha, probs = rows[0]
    assert (predicted, corrected, comment) == (a["label"], "meningioma", "looks extra-axial")
    assert sha == hashlib.sha256(data).hexdigest() and png is None
    assert model_sha == a["model"]["sha256"]
    assert json.loads(probs) == pytest.approx({p["label"]: p["probability"] for p in a["predictions"]})
    assert b"Jane" not in db.read_bytes() and not any(b"Jane" in p.read_bytes() for p in db.parent.glob("*"))


def test_feedback_with_consent_keeps_the_pixels_only(feedback_app, sample_files):
    from braintumor.imaging import load_image

    app, db = feedback_app
    client = app.test_client()
    path = sample_files[3][0]
    data = path.read_bytes()
    a = predict(client, data)
    r = send(client, data, "Patient_Jane_Doe.jpg", id=a["id"], label=sample_files[3][1], keep_image="true")
    assert r.status_code == 201 and r.get_json()["image_kept"] is True
    [(png,)] = sqlite3.connect(db).execute("SELECT image_png FROM feedback").fetchall()
    kept = Image.open(io.BytesIO(png))
    assert kept.format == "PNG"
    assert np.array_equal(np.asarray(kept), np.asarray(load_image(path)))
    assert b"Jane" not in db.read_bytes()


def test_consent_with_another_scan_is_refused(feedback_app, sample_files):
    app, db = feedback_app
    client = app.test_client()
    a = predict(client, sample_files[0][0].read_bytes())
    r = send(client, sample_files[1][0].read_bytes(), id=a["id"], label="glioma", keep_image="true")
    assert r.status_code == 400 and "not the one" in r.get_json()["error"]
    r = send(client, id=a["id"], label="glioma", keep_image="true")
    assert r.status_code == 400 and "no scan was sent" in r.get_json()["error"]
    assert sqlite3.connect(db).execute("SELECT count(*) FROM feedback").fetchone()[0] == 0


@pytest.mark.parametrize("fields, status, words", [
    ({"label": "glioma"}, 400, "no answer id"),
    ({"id": "nope", "label": "glioma"}, 404, "no recent answer"),
    ({"id": "ANSWER"}, 400, "no class"),
    ({"id": "ANSWER", "label": "astrocytoma"}, 400, "unknown class"),
    ({"id": "ANSWER", "label": "glioma", "keep_image": "perhaps"}, 400, "true or false"),
    ({"id": "ANSWER", "label": "glioma", "comment": "x" * 3000}, 400, "longer"),
])
def test_malformed_feedback_gets_a_4xx_json(feedback_app, sample_files, fields, status, words):
    app, db = feedback_app
    client = app.test_client()
    a = predict(client, sample_files[0][0].read_bytes())
    fields = {k: (a["id"] if v == "ANSWER" else v) for k, v in fields.items()}
    r = send(client, **fields)
    assert r.status_code == status and words in r.get_json()["error"]
    assert sqlite3.connect(db).execute("SELECT count(*) FROM feedback").fetchone()[0] == 0


def test_feedback_answers_match_the_openapi_document(feedback_app, sample_files):
    from test_web import conforms

    app, _ = feedback_app
    client = app.test_client()
    doc = client.get("/api/openapi.json").get_json()
    a = predict(client, sample_files[0][0].read_bytes())
    assert conforms(a, {"$ref": "#/components/schemas/Prediction"}, doc) == [] and a["id"]
    op = doc["paths"]["/api/feedback"]["post"]
    for r in (send(client, id=a["id"], label="glioma"), send(client, id="nope", label="glioma"),
              send(client, id=a["id"], label="x")):
        schema = op["responses"][str(r.status_code)]["content"]["application/json"]["schema"]
        assert conforms(r.get_json(), schema, doc) == [], r.get_json()
    assert set(doc["components"]["schemas"]["FeedbackForm"]["properties"]) == {"id", "label", "comment",
                                                                               "keep_image", "file"}


def test_feedback_as_json(feedback_app, sample_files):
    app, db = feedback_app
    client = app.test_client()
    a = predict(client, sample_files[0][0].read_bytes())
    r = client.post("/api/feedback", json={"id": a["id"], "label": "notumor", "keep_image": False})
    assert r.status_code == 201
    r = client.post("/api/feedback", data="{not json", content_type="application/json")
    assert r.status_code == 400 and "JSON object" in r.get_json()["error"]
    assert sqlite3.connect(db).execute("SELECT corrected FROM feedback").fetchall() == [("notumor",)]


def test_eight_clients_posting_400_answers_leave_400_rows(predictor, sample_files, tmp_path):
    from braintumor.web import create_app
    from braintumor.web.serve import BackgroundServer

    db = tmp_path / "many.db"
    scans = [p.read_bytes() for p, _ in sample_files]
    errors: list[str] = []

    def client(k: int, url: str) -> None:
        for i in range(50):
            data = scans[(k + i) % len(scans)]
            body, ctype = multipart({"explain": "false"}, data)
            a = json.load(urlopen(Request(url + "api/predict", body, {"Content-Type": ctype}), timeout=60))
            body, ctype = multipart({"id": a["id"], "label": "glioma", "comment": f"client {k} #{i}",
                                     "keep_image": "true" if i % 5 == 0 else "false"},
                                    data if i % 5 == 0 else None)
            try:
                urlopen(Request(url + "api/feedback", body, {"Content-Type": ctype}), timeout=60)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

    with BackgroundServer(create_app({"FEEDBACK_DB": str(db)}, predictor=predictor)) as srv:
        threads = [threading.Thread(target=client, args=(k, srv.url)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM feedback").fetchone()[0] == 400
    assert con.execute("SELECT count(DISTINCT comment) FROM feedback").fetchone()[0] == 400
    assert con.execute("SELECT count(*) FROM feedback WHERE image_png IS NOT NULL").fetchone()[0] == 80


def multipart(fields: dict, data: bytes | None) -> tuple[bytes, str]:
    boundary = "----braintumor-test-boundary"
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    if data is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="s.jpg"\r\n'
                     f"Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_killed_server_leaves_a_readable_database(random_checkpoint, sample_files, tmp_path):
    db = tmp_path / "killed.db"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "braintumor", "serve", "--model", str(random_checkpoint),
                             "--port", str(port), "--feedback", str(db), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(120):
            try:
                urlopen(url + "api/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(proc.stderr.read().decode()[-2000:])
                time.sleep(0.5)
        data = sample_files[0][0].read_bytes()
        stored = []

        def post_quietly(i: int) -> None:
            try:
                post_one(i)
            except OSError:  # the server was killed mid-request
                pass

        def post_one(i: int) -> None:
            body, ctype = multipart({"explain": "false"}, data)
            a = json.load(urlopen(Request(url + "api/predict", body, {"Content-Type": ctype}), timeout=30))
            body, ctype = multipart({"id": a["id"], "label": "notumor", "keep_image": "true"}, data)
            urlopen(Request(url + "api/feedback", body, {"Content-Type": ctype}), timeout=30)
            stored.append(i)

        for i in range(10):
            post_one(i)
        busy = [threading.Thread(target=lambda: [post_quietly(100 + j) for j in range(20)]) for _ in range(3)]
        for t in busy:
            t.start()
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)  # mid-write, no clean-up of any kind
        proc.wait(10)
        for t in busy:
            t.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    n = con.execute("SELECT count(*) FROM feedback").fetchone()[0]
    assert n >= len(stored) >= 10  # every answered post is there
    assert all(Image.open(io.BytesIO(png)).size for (png,) in con.execute("SELECT image_png FROM feedback"))


# --------------------------------------------------------------------------------------- CLI


def test_feedback_command_lists_summarises_and_exports(tmp_path, capsys):
    from braintumor.cli import main
    from braintumor.data.folders import list_samples

    db = tmp_path / "f.db"
    con = fb.connect(db)
    img = Image.fromarray(np.full((32, 32), 100, np.uint8), "L")
    fb.record(con, answer(answer_id="1", image_sha256="1" * 64), "glioma", "right")
    fb.record(con, answer(answer_id="2", image_sha256="2" * 64), "meningioma", "wrong, kept", img)
    fb.record(con, answer(answer_id="3", image_sha256="3" * 64, predicted="notumor", model_sha256="ef" * 32),
              "pituitary", "", img)
    con.close()

    assert main(["feedback", "list", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "wrong, kept" in out and "3 corrections" in out
    assert main(["feedback", "stats", "--db", str(db), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["n"], s["agreed"]) == (3, 1)
    assert {r["corrected"]: r["agreement"] for r in s["by_class"]} == {"glioma": 1.0, "meningioma": 0.0,
                                                                         "pituitary": 0.0}
    assert sorted(r["n"] for r in s["by_model"]) == [1, 2]
    assert main(["feedback", "stats", "--db", str(db)]) == 0
    assert "model right" in capsys.readouterr().out

    out_dir = tmp_path / "export"
    assert main(["feedback", "export", str(out_dir), "--db", str(db)]) == 0
    assert "exported 2 scans" in capsys.readouterr().out
    assert sorted(p.parent.name for p in out_dir.rglob("*.png")) == ["meningioma", "pituitary"]
    samples = list_samples(out_dir, require_all=False)  # what evaluate and finetune read
    assert sorted(s.label for s in samples) == [1, 3]

    assert main(["feedback", "stats", "--db", str(tmp_path / "missing.db")]) == 2
    assert "no such feedback database" in capsys.readouterr().err


# ------------------------------------------------------------------- tools that cannot surprise


def run_cli(*argv: str) -> tuple[int, str, str]:
    """The feedback command in-process: exit status, stdout, stderr."""
    import contextlib

    from braintumor.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_reading_commands_leave_a_foreign_or_empty_file_byte_identical(tmp_path):
    foreign = tmp_path / "other-program.sqlite"
    c = sqlite3.connect(foreign)
    c.execute("CREATE TABLE invoices (id INTEGER, amount REAL)")
    c.execute("INSERT INTO invoices VALUES (1, 9.5)")
    c.commit()
    c.close()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    text = tmp_path / "notes.db"
    text.write_text("not a database\n")
    before = snapshot(tmp_path)
    for path, words in ((foreign, "something else"), (empty, "empty file"), (text, "not an SQLite file")):
        for action in (["list"], ["stats"], ["export", str(tmp_path / "out")]):
            code, out, err = run_cli("feedback", *action, "--db", str(path))
            assert code == 2 and out == "" and words in err and len(err.strip().splitlines()) == 1, (action, err)
    assert snapshot(tmp_path) == before  # not switched to WAL, not made a feedback database, no -wal/-shm
    assert not (tmp_path / "out").exists()


def test_reading_commands_never_write_to_a_feedback_database(tmp_path):
    db = tmp_path / "f.db"
    con = fb.connect(db)
    fb.record(con, answer(), "notumor", "c")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    (tmp_path / "f.db-wal").unlink(missing_ok=True)
    (tmp_path / "f.db-shm").unlink(missing_ok=True)
    os.chmod(db, 0o444)  # a read-only file still reads
    try:
        before = db.read_bytes()
        assert run_cli("feedback", "list", "--db", str(db))[0] == 0
        assert run_cli("feedback", "stats", "--db", str(db))[0] == 0
        assert db.read_bytes() == before
    finally:
        os.chmod(db, 0o644)


def test_one_correction_per_answer_the_later_replaces_the_earlier(tmp_path):
    con = fb.connect(tmp_path / "f.db")
    img = Image.fromarray(np.full((32, 32), 100, np.uint8), "L")
    first = fb.record(con, answer(answer_id="a"), "meningioma", "first look", img)
    again = fb.record(con, answer(answer_id="a"), "notumor", "second look")
    fb.record(con, answer(answer_id="b", image_sha256="ee" * 32), "glioma")
    assert again == first
    listed = list(fb.rows(con))
    assert [(r["corrected"], r["comment"], r["has_image"]) for r in listed] == [
        ("notumor", "second look", False), ("glioma", "", False)]  # unticked: the pixels are gone too
    s = fb.stats(con)
    assert (s["n"], s["agreed"]) == (2, 1)


def test_an_old_database_with_repeated_answers_counts_each_answer_once(tmp_path):
    path = tmp_path / "v2.db"
    old = sqlite3.connect(path)
    for m in fb.MIGRATIONS[:2]:
        old.executescript(m)
    old.execute("PRAGMA user_version = 2")
    for i, label in enumerate(("glioma", "notumor", "notumor")):
        old.execute("INSERT INTO feedback (created, answer_id, model_name, model_version, model_sha256, predicted,"
                    " corrected, probabilities, image_sha256) VALUES (?, 'same', 'm', '1', 's', 'glioma', ?,"
                    " '{}', 'h')", (f"2026-01-0{i + 1}", label))
    old.commit()
    old.close()
    code, out, _ = run_cli("feedback", "stats", "--db", str(path), "--json")  # read-only: not migrated
    assert code == 0 and json.loads(out)["n"] == 1 and json.loads(out)["agreed"] == 0
    con = fb.connect(path)  # the server migrates: the latest correction stays
    assert [r["corrected"] for r in fb.rows(con)] == ["notumor"]


def test_the_api_replaces_a_repeated_correction(feedback_app, sample_files):
    app, db = feedback_app
    client = app.test_client()
    a = predict(client, sample_files[0][0].read_bytes())
    for label in ("glioma", "meningioma", "pituitary"):
        assert send(client, id=a["id"], label=label).status_code == 201
    rows = list(fb.rows(fb.open_readonly(db)))
    assert [r["corrected"] for r in rows] == ["pituitary"]


def test_export_writes_a_fresh_folder_with_each_scan_under_its_latest_label(tmp_path):
    db = tmp_path / "f.db"
    con = fb.connect(db)
    img = Image.fromarray(np.full((32, 32), 100, np.uint8), "L")
    fb.record(con, answer(answer_id="1", image_sha256="1" * 64), "meningioma", "", img)
    fb.record(con, answer(answer_id="2", image_sha256="1" * 64), "glioma", "relabelled, not sent again")
    fb.record(con, answer(answer_id="3", image_sha256="3" * 64), "pituitary", "", img)
    con.close()
    out = tmp_path / "export"
    code, stdout, _ = run_cli("feedback", "export", str(out), "--db", str(db))
    assert code == 0 and "exported 2 scans" in stdout
    assert sorted(str(p.relative_to(out).parent) for p in out.rglob("*.png")) == ["glioma", "pituitary"]
    # a folder used before is refused, and left as it was
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    code, stdout, err = run_cli("feedback", "export", str(out), "--db", str(db))
    assert code == 2 and "not empty" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    # into a file: one line, exit 2, the file untouched
    target = tmp_path / "a-file.txt"
    target.write_text("keep me")
    code, _, err = run_cli("feedback", "export", str(target), "--db", str(db))
    assert code == 2 and "is a file" in err and target.read_text() == "keep me"
    # an empty folder is filled; nothing of the build is left beside it
    (tmp_path / "empty").mkdir()
    assert run_cli("feedback", "export", str(tmp_path / "empty"), "--db", str(db))[0] == 0
    assert len(list((tmp_path / "empty").rglob("*.png"))) == 2
    assert not [p for p in tmp_path.iterdir() if ".export-" in p.name]
    # a folder that cannot be made: one line, exit 2
    code, _, err = run_cli("feedback", "export", str(tmp_path / "no" / "such" / "out"), "--db", str(db))
    assert code == 2 and "no such folder" in err and len(err.strip().splitlines()) == 1


def test_terminal_output_escapes_control_characters(tmp_path):
    db = tmp_path / "f.db"
    con = fb.connect(db)
    forged = "ok\x1b[2J\x1b]0;owned\x07\n  999  2026-01-01 forged row\r\u202eevil"
    fb.record(con, answer(answer_id="x", model_name="m\x1b[31m"), "glioma", forged)
    con.close()
    code, out, _ = run_cli("feedback", "list", "--db", str(db))
    assert code == 0
    assert not any(ch in out.replace("\n", "") for ch in "\x1b\x07\r\u202e")
    lines = out.splitlines()
    assert len(lines) == 3 and "\\x1b[2J" in lines[1] and "\\n" in lines[1]  # header, the row, the count
    code, out, _ = run_cli("feedback", "stats", "--db", str(db))
    assert code == 0 and "\x1b" not in out and "m\\x1b[31m" in out
    code, out, _ = run_cli("feedback", "list", "--db", str(db), "--json")
    assert json.loads(out)[0]["comment"] == forged and "\x1b" not in out  # JSON escapes them itself


def test_not_sure_and_not_a_brain_mri_slice_are_kept_but_never_exported(tmp_path):
    con = fb.connect(tmp_path / "f.db")
    img = Image.fromarray(np.full((32, 32), 100, np.uint8), "L")
    fb.record(con, answer(answer_id="1", image_sha256="1" * 64), "unsure", "", img)
    fb.record(con, answer(answer_id="2", image_sha256="2" * 64), "not-mri", "a photograph", img)
    fb.record(con, answer(answer_id="3", image_sha256="3" * 64), "meningioma", "", img)
    assert [r[0] for r in con.execute("SELECT corrected FROM feedback ORDER BY id")] == ["unsure", "not-mri", "meningioma"]
    counts = fb.export(con, tmp_path / "out")
    assert counts["meningioma"] == 1 and sum(counts.values()) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["meningioma"]
    with pytest.raises(fb.FeedbackError):
        fb.record(con, answer(answer_id="4"), "maybe")


@pytest.mark.parametrize("fields", [{"BurnedInAnnotation": "YES"},
                                    {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}])
def test_a_scan_with_burned_in_text_is_answered_with_a_notice_and_its_pixels_never_kept(feedback_app, fields):
    """A DICOM that says its pixels may show patient text: the answer and the PDF say so, and
    feedback refuses to keep its pixels (the correction itself is still stored without them)."""
    from pypdf import PdfReader

    from conftest import synthetic_scan
    from test_medical import dicom_bytes

    app, db = feedback_app
    client = app.test_client()
    data = dicom_bytes(synthetic_scan(3, 128).astype(np.uint16) * 16, fields=fields)
    a = predict(client, data, "scan.dcm")
    assert a["burned_in_text"] is True and "burned-in" in a["privacy_notice"]
    r = send(client, data, "scan.dcm", id=a["id"], label="glioma", keep_image="true")
    assert r.status_code == 400 and "never kept" in r.get_json()["error"]
    assert sqlite3.connect(db).execute("SELECT count(*) FROM feedback").fetchone()[0] == 0
    r = send(client, id=a["id"], label="glioma", keep_image="false")
    assert r.status_code == 201 and r.get_json()["image_kept"] is False
    pdf = client.post("/api/report", data={"file": (io.BytesIO(data), "scan.dcm")},
                      content_type="multipart/form-data")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "patient text may be drawn into its pixels" in " ".join(text.split())
    plain = predict(client, dicom_bytes(synthetic_scan(3, 128).astype(np.uint16) * 16), "plain.dcm")
    assert "burned_in_text" not in plain and "privacy_notice" not in plain
