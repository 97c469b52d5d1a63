"""The web app through Flask's test client (and once through waitress): every route, every error,
the security headers, uploads kept in memory, and the OpenAPI description kept true."""

from __future__ import annotations

import base64
import html.parser
import http.client
import io
import json
import logging
import re
import socket
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from braintumor.config import CLASSES
from conftest import synthetic_scan

WEB = Path(__file__).resolve().parents[1] / "src" / "braintumor" / "web"


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def app(predictor):
    from braintumor.web import create_app

    return create_app(predictor=predictor)


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def scan_bytes(sample_files) -> bytes:
    return sample_files[0][0].read_bytes()


def post(client, data: bytes | None, filename: str = "scan.jpg", **fields):
    form = {k: str(v) for k, v in fields.items()}
    if data is not None:
        form["file"] = (io.BytesIO(data), filename)
    return client.post("/api/predict", data=form, content_type="multipart/form-data")


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def png_file(width: int, height: int, pixel_data: bytes | None = None) -> bytes:
    """A PNG file whose header claims width x height 8-bit grey pixels, followed by ``pixel_data``
    (default: a little valid zlib data): a decompression bomb, or a damaged image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64) if pixel_data is None else pixel_data
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def frames(fmt: str) -> bytes:
    """A two-frame image: an animated GIF or a two-page TIFF."""
    a, b = (Image.fromarray(synthetic_scan(s, 64)) for s in (1, 2))
    buf = io.BytesIO()
    a.save(buf, format=fmt, save_all=True, append_images=[b])
    return buf.getvalue()


def decode_data_url(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


# --------------------------------------------------------------------------- factory and import


def test_nothing_happens_at_import():
    code = ("import sys, braintumor.web, braintumor.web.serve; a = 'flask' in sys.modules; "
            "import braintumor.web.routes; "
            "print(a, 'torch' in sys.modules, hasattr(braintumor.web, 'app'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]  # the CLI parser does not pay for Flask


def test_factory_loads_the_model_it_is_given(random_checkpoint):
    from braintumor.web import create_app

    app = create_app({"MODEL_PATHS": [str(random_checkpoint)]})
    body = app.test_client().get("/api/health").get_json()
    assert body["status"] == "ok" and "model_loaded" not in body  # an app always has its model
    assert body["model"]["name"] == "random-r18-64"
    assert len(body["model"]["sha256"]) == 64


def test_factory_refuses_a_missing_checkpoint(tmp_path):
    from braintumor.training.checkpoint import CheckpointError
    from braintumor.web import create_app

    with pytest.raises(CheckpointError, match="not found"):
        create_app({"MODEL_PATHS": [str(tmp_path / "missing.safetensors")]})


# ------------------------------------------------------------------------------- the answers


def test_predict_answers_with_probabilities_heat_map_and_timing(client, predictor, sample_files):
    from braintumor.imaging import load_image

    path = sample_files[5][0]
    resp = post(client, path.read_bytes(), "scan.jpg")
    assert resp.status_code == 200
    body = resp.get_json()
    assert [p["label"] for p in body["predictions"]] == list(CLASSES)
    probs = np.array([p["probability"] for p in body["predictions"]])
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    assert body["label"] == CLASSES[int(probs.argmax())]
    assert body["confidence"] == pytest.approx(probs.max())
    # the same numbers as the Python API on the same image
    direct = predictor.predict(load_image(path))
    assert probs == pytest.approx([direct["probabilities"][c] for c in CLASSES], abs=1e-9)
    size = load_image(path).size  # the heat map covers the whole scan as uploaded
    heat, original = decode_data_url(body["gradcam"]), decode_data_url(body["original"])
    assert heat.size == original.size == size == tuple(body["image_size"])
    assert heat.mode == "RGB" and original.mode == "L"
    assert body["box"] is None  # this model has no box head
    assert body["model"] == {"name": predictor.name, "version": predictor.version, "sha256": predictor.sha256}
    t = body["timing_ms"]
    assert set(t) == {"preprocess", "predict", "encode", "total"}
    assert t["total"] >= t["predict"] > 0 and t["preprocess"] >= 0 and t["encode"] > 0
    assert t["total"] + 0.2 >= t["preprocess"] + t["predict"] + t["encode"]  # disjoint (each rounded)
    assert body["target"] == body["label"] and body["cam_method"] == "gradcam"


def test_predict_without_heat_map(client, scan_bytes):
    body = post(client, scan_bytes, explain="false").get_json()
    assert body["gradcam"] is None
    assert set(body["timing_ms"]) == {"preprocess", "predict", "encode", "total"}
    assert decode_data_url(body["original"]).mode == "L"
    assert "target" not in body


def test_each_timing_times_what_it_names(predictor, scan_bytes, monkeypatch):
    """A slow model call shows in "predict" and slow PNG encoding in "encode", each only there."""
    import time

    from braintumor.web import create_app, routes

    class Slow:  # the real predictor, a little slower
        def __getattr__(self, name):
            return getattr(predictor, name)

        def explain(self, image, **kw):
            time.sleep(0.3)
            return predictor.explain(image, **kw)

    encode = routes.png_data_url

    def slow_png(img):
        time.sleep(0.4)
        return encode(img)

    monkeypatch.setattr(routes, "png_data_url", slow_png)
    t = post(create_app(predictor=Slow()).test_client(), scan_bytes).get_json()["timing_ms"]
    assert t["predict"] >= 300 and t["encode"] >= 800  # two images: the heat map and the original
    assert t["total"] + 0.2 >= t["preprocess"] + t["predict"] + t["encode"]


def test_grey_png_holds_the_same_pixels():
    """The server's own grey PNG encoder (the answer's "original" and "heatmap_png"): what a PNG
    reader decodes is the array given, at any shape, edges and wrap-around of the row filter included."""
    from braintumor.web.routes import grey_png, png_data_url

    rng = np.random.default_rng(0)
    for shape in [(1, 1), (1, 7), (9, 1), (224, 224), (37, 301)]:
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        img = Image.open(io.BytesIO(grey_png(pixels)))
        img.load()  # checks every chunk's CRC
        assert img.format == "PNG" and img.mode == "L" and img.size == shape[::-1]
        assert np.array_equal(np.asarray(img), pixels)
    img = decode_data_url(png_data_url(Image.fromarray(pixels, "L")))
    assert np.array_equal(np.asarray(img), pixels)


def test_predict_options_change_the_answer(client, scan_bytes):
    plain = post(client, scan_bytes).get_json()
    tta = post(client, scan_bytes, tta="yes").get_json()
    assert tta["predictions"] != plain["predictions"]  # averaged over six views
    eigen = post(client, scan_bytes, cam_method="eigencam").get_json()
    assert eigen["cam_method"] == "eigencam" and eigen["gradcam"] != plain["gradcam"]
    assert eigen["predictions"] == plain["predictions"]


def test_predict_passes_through_later_result_keys(predictor, scan_bytes):
    """Keys a Predictor adds (decision, reason, prediction_set) reach the JSON as plain values."""
    from braintumor.web import create_app

    class Abstaining:  # the real predictor, with the decision fields it adds to its results
        def __getattr__(self, name):
            return getattr(predictor, name)

        def explain(self, image, **kw):
            return {**predictor.explain(image, **kw), "decision": "uncertain",
                    "prediction_set": ("glioma", "meningioma"), "reason": "two classes are plausible",
                    "score": np.float32(0.25)}

    body = post(create_app(predictor=Abstaining()).test_client(), scan_bytes).get_json()
    assert body["decision"] == "uncertain"
    assert body["prediction_set"] == ["glioma", "meningioma"]
    assert body["reason"] == "two classes are plausible"
    assert body["score"] == 0.25


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("make, filename, status, words", [
    (lambda: b"", "empty.jpg", 400, "empty"),
    (lambda: b"this is a letter, not a scan\n" * 20, "notes.txt", 415, "not an image"),
    (lambda: (Path(__file__).parent / "data/sample/glioma/Tr-gl_0118.jpg").read_bytes()[:2500],
     "cut.jpg", 400, "truncated"),
    (lambda: png_file(32, 32, b"not zlib data" * 8), "corrupt.png", 400, "damaged"),
    (lambda: png_file(8000, 7000), "bomb.png", 400, "megapixel"),
    (lambda: frames("GIF"), "anim.gif", 415, "a GIF picture, not an image"),
    (lambda: frames("TIFF"), "pages.tif", 415, "frames"),
])
def test_bad_images_get_a_json_error(client, make, filename, status, words):
    resp = post(client, make(), filename)
    assert resp.status_code == status, resp.get_json()
    assert resp.is_json and words in resp.get_json()["error"]
    assert "Traceback" not in resp.get_data(as_text=True)


# A PostScript program that loops for ever: Pillow's EPS reader would hand it to Ghostscript.
EPS_LOOP = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n"
            b"{ 1 1 add pop } loop\nshowpage\n%%EOF\n")


@pytest.mark.parametrize("data, filename, words", [
    (EPS_LOOP, "scan.eps", "a PostScript document"),
    (EPS_LOOP, "scan.png", "a PostScript document"),  # whatever its name says
    (b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n", "report.jpg", "a PDF document"),
    (b"SIMPLE  =                    T" + b" " * 2850, "image.fits", "a FITS file"),
    (b"qoif\x00\x00\x10\x00\x00\x00\x10\x00\x03\x00" + b"\x00" * 64, "a.png", "a QOI picture"),
    (b"DDS |\x00\x00\x00" + b"\x00" * 120, "a.jpg", "a DDS texture"),
])
def test_formats_off_the_allow_list_are_refused_before_any_decoder(client, monkeypatch, data, filename, words):
    """Refused from the first bytes with 415, and no child process (Ghostscript) is ever started."""
    import os

    started = []

    def no_child(*args, **kwargs):
        started.append(args)
        raise AssertionError("a child process was started while answering a request")

    monkeypatch.setattr(subprocess, "Popen", no_child)
    monkeypatch.setattr(os, "posix_spawn", no_child, raising=False)
    monkeypatch.setattr(os, "fork", no_child)
    resp = post(client, data, filename)
    assert resp.status_code == 415, resp.get_json()
    assert words in resp.get_json()["error"] and not started


def test_a_progressive_jpeg_with_thousands_of_scans_is_refused_unread(client):
    """Each scan of a progressive JPEG is a full decoding pass: a file that claims thousands is
    refused from its bytes. Here a real progressive JPEG's scans are repeated (the file stays a
    valid-looking JPEG to its decoder)."""
    buf = io.BytesIO()
    Image.fromarray(synthetic_scan(1, 64)).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    first = data.index(b"\xff\xda")
    body, end = data[first:-2], data[-2:]
    resp = post(client, data[:first] + body * 50 + end, "scan.jpg")
    assert resp.status_code == 415 and "progressive JPEG" in resp.get_json()["error"]
    assert post(client, data, "scan.jpg").status_code == 200  # the ordinary progressive file is read


def test_missing_file_field(client):
    resp = client.post("/api/predict", data={"explain": "true"}, content_type="multipart/form-data")
    assert resp.status_code == 400
    assert "'file'" in resp.get_json()["error"]
    assert client.post("/api/predict").status_code == 400  # no body at all


@pytest.mark.parametrize("field, value, words", [
    ("explain", "perhaps", "true or false"),
    ("tta", "2", "true or false"),
    ("cam_method", "magic", "unknown cam_method"),
    ("slice", "middle", "whole number"),
])
def test_bad_fields(client, scan_bytes, field, value, words):
    resp = post(client, scan_bytes, **{field: value})
    assert resp.status_code == 400 and words in resp.get_json()["error"]


def nifti_volume(slices: list[np.ndarray]) -> bytes:
    """A NIfTI volume (identity affine) whose axial slice k the reader shows as ``slices[k]``."""
    nib = pytest.importorskip("nibabel")
    voxels = np.stack([s[::-1, ::-1].T for s in slices], axis=2)  # rows, columns -> RAS x, y
    return nib.Nifti1Image(voxels, np.eye(4)).to_bytes()


def test_slice_picks_the_slice_of_a_volume(client, scan_bytes, sample_files):
    from braintumor.imaging import load_image

    slices = [np.asarray(load_image(sample_files[i][0]).resize((96, 96))) for i in (0, 4, 8)]
    data = nifti_volume(slices)
    answers = []
    for k in range(3):
        resp = post(client, data, "brain.nii", slice=k, explain="false")
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        assert np.array_equal(np.asarray(decode_data_url(body["original"])), slices[k])  # slice k answered
        assert body["image_size"] == [96, 96]
        answers.append(body)
    probs = [tuple(p["probability"] for p in a["predictions"]) for a in answers]
    assert len(set(probs)) == 3  # three different scans, three different answers
    middle = post(client, data, "brain.nii", explain="false").get_json()
    assert middle["predictions"] == answers[1]["predictions"]  # no slice: the middle one
    for k in (3, -1):
        resp = post(client, data, "brain.nii", slice=k)
        assert resp.status_code == 400
        assert resp.get_json()["error"].endswith(
            f"slice {k} is out of range; the volume has 3 axial slices (0 to 2)")
    # a 2-D image has one slice: the field is read, then the image answers as usual
    assert post(client, scan_bytes, slice="0").status_code == 200


def test_upload_over_16_mb_gets_413_json(client):
    resp = post(client, b"\0" * (16 * 1024 * 1024 + 1), "huge.png")
    assert resp.status_code == 413
    assert "16 MB" in resp.get_json()["error"]


def test_wrong_method_and_unknown_route(client):
    resp = client.get("/api/predict")
    assert resp.status_code == 405 and resp.is_json
    assert "POST" in resp.get_json()["error"] and "POST" in resp.headers["Allow"]
    assert client.post("/api/health").status_code == 405
    assert client.delete("/").status_code == 405
    resp = client.get("/api/nothing-here")
    assert resp.status_code == 404 and "nothing at this address" in resp.get_json()["error"]
    assert "nothing-here" not in resp.get_json()["error"]  # what was sent is never echoed


def test_unexpected_failure_is_a_bare_500_and_the_service_keeps_answering(predictor, scan_bytes, caplog):
    from braintumor.web import create_app

    class Failing:  # the real predictor, whose explain breaks once
        calls = 0

        def __getattr__(self, name):
            return getattr(predictor, name)

        def explain(self, image, **kw):
            Failing.calls += 1
            if Failing.calls == 1:
                raise RuntimeError("secret detail /home/patient-jones")
            return predictor.explain(image, **kw)

    client = create_app(predictor=Failing()).test_client()
    with caplog.at_level(logging.INFO, logger="braintumor.web"):
        resp = post(client, scan_bytes)
    assert resp.status_code == 500 and resp.is_json
    text = resp.get_data(as_text=True) + caplog.text
    assert "secret" not in text and "patient-jones" not in text and "Traceback" not in text
    assert "RuntimeError" in caplog.text
    assert post(client, scan_bytes).status_code == 200


# --------------------------------------------------------------------- privacy and headers


def test_uploads_never_touch_the_disk(client, monkeypatch):
    import tempfile

    import werkzeug.formparser

    def refuse(*a, **k):
        raise AssertionError("an upload was about to be written to a temporary file")

    for mod in (tempfile, werkzeug.formparser):
        for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile"):
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, refuse)
    big = png((np.random.default_rng(0).random((900, 900)) * 255).astype(np.uint8))
    assert len(big) > 600 * 1024  # over werkzeug's 500 KB spooling threshold
    assert post(client, big, "big.png", explain="false").status_code == 200


def test_uploads_are_logged_by_size_and_type_only(client, scan_bytes, caplog):
    with caplog.at_level(logging.DEBUG):
        post(client, scan_bytes, "jones-mary-1961.jpg")
        post(client, b"not an image", "jones-mary-1961.txt")
    assert f"{len(scan_bytes)} bytes" in caplog.text
    assert "jones" not in caplog.text and "not an image" not in caplog.text.replace("UnsupportedImageError", "")


def test_errors_name_the_file_the_user_sent_and_the_log_does_not(client, caplog):
    """The message names the upload by its base name, sanitised (no folder of the client's machine,
    no control characters, a sane length, its suffix kept); the log never holds it."""
    broken = b"\x89PNG\r\n\x1a\n damaged"
    with caplog.at_level(logging.DEBUG):
        resp = post(client, broken, "/Users/jones/scan\x07 3\u202e.png")
        message = resp.get_json()["error"]
        assert resp.status_code in (400, 415) and message.startswith("scan 3.png: "), message
        assert "jones" not in message and "upload" not in message and "\x07" not in message
        long = post(client, broken, "/home/jones/" + "x" * 500 + ".png").get_json()["error"]
        name = long.split(": ", 1)[0]
        assert name.endswith("....png") and len(name) <= 80 and "/" not in name and "jones" not in long
        assert post(client, broken, "../../").get_json()["error"].startswith("upload: ")
    assert "scan 3" not in caplog.text and "xxxx" not in caplog.text and "jones" not in caplog.text
    from braintumor.web.forms import file_name

    assert file_name("C:\\Users\\jones\\scan 3.png") == "scan 3.png"  # a browser that sends the whole path


def test_security_headers(client, scan_bytes):
    for resp in (client.get("/"), client.get("/api/health"), post(client, scan_bytes),
                 client.get("/api/nothing"), client.get("/static/app.js")):
        csp = resp.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in csp and "http" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "Server" not in resp.headers
    assert client.get("/api/health").headers["Cache-Control"] == "no-store"


# ------------------------------------------------------------------------------------ the page


def test_page_and_its_assets_are_served_locally(client):
    resp = client.get("/")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert "For research and teaching, not for diagnosis" in html
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+=", html) and "style=" not in html  # no inline handlers/styles
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # no CDN
    for asset in ("app.js", "style.css", "vendor/chart.umd.js"):
        r = client.get(f"/static/{asset}")
        assert r.status_code == 200 and len(r.data) > 1000
        assert not re.search(rb"(src|href)\s*=\s*[\"'](https?:)?//", r.data)
    assert b"Chart.js v4" in client.get("/static/vendor/chart.umd.js").data
    assert "MIT License" in (WEB / "static" / "vendor" / "chart.js-LICENSE.md").read_text()
    js = client.get("/static/app.js").get_data(as_text=True)
    for colour in ("#ef4444", "#f59e0b", "#10b981", "#6366f1"):
        assert colour in html and colour not in js  # the server renders the classes' colours
    assert "Pituitary tumour" not in js and "Grad-CAM++" not in js  # and their names and the methods


class PageData(html.parser.HTMLParser):
    """What the page renders for its script: the attributes of #app and the heat map menu's options."""

    def __init__(self, text: str):
        super().__init__()
        self.app: dict = {}
        self.options: list[dict] = []
        self._in_select = False
        self._option: dict | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == "app":
            self.app = a
        elif tag == "select" and a.get("id") == "cam_method":
            self._in_select = True
        elif tag == "option" and self._in_select:
            self._option = {"value": a.get("value"), "selected": "selected" in a, "label": ""}
            self.options.append(self._option)

    def handle_endtag(self, tag):
        if tag == "select":
            self._in_select = False
        elif tag == "option":
            self._option = None

    def handle_data(self, data):
        if self._option is not None:
            self._option["label"] += data


def test_page_offers_the_cam_methods(client):
    from braintumor.cam_methods import CAM_LABELS, CAM_METHODS, DEFAULT_CAM_METHOD

    options = PageData(client.get("/").get_data(as_text=True)).options
    assert [o["value"] for o in options] == list(CAM_METHODS)
    assert [o["label"].strip() for o in options] == [CAM_LABELS[m] for m in CAM_METHODS]
    assert [o["value"] for o in options if o["selected"]] == [DEFAULT_CAM_METHOD]
    assert set(CAM_LABELS) == set(CAM_METHODS) and CAM_LABELS["gradcam++"] == "Grad-CAM++"


def test_page_class_data_is_the_models(client, predictor):
    from braintumor.config import CLASS_COLOURS as COLOURS, CLASS_NAMES as NAMES

    classes = json.loads(PageData(client.get("/").get_data(as_text=True)).app["data-classes"])
    assert [c["label"] for c in classes] == list(predictor.classes) == list(CLASSES)
    assert {c["label"]: c["name"] for c in classes} == NAMES  # the PDF report's names and colours
    assert all(c["colour"] == "#{:02x}{:02x}{:02x}".format(*COLOURS[c["label"]]) for c in classes)
    assert [c["colour"] for c in classes] == ["#ef4444", "#f59e0b", "#10b981", "#6366f1"]


def test_page_class_data_follows_the_model(predictor):
    from braintumor.web import create_app

    class Other:  # the real predictor with other classes, in another order
        classes = ("pituitary", "glioma", "artefact")

        def __getattr__(self, name):
            return getattr(predictor, name)

    text = create_app(predictor=Other()).test_client().get("/").get_data(as_text=True)
    classes = json.loads(PageData(text).app["data-classes"])
    assert [c["label"] for c in classes] == ["pituitary", "glioma", "artefact"]
    assert classes[0] == {"label": "pituitary", "name": "Pituitary tumour", "colour": "#6366f1"}
    assert classes[2] == {"label": "artefact", "name": "artefact", "colour": "#64748b"}


def test_model_route(client, predictor):
    body = client.get("/api/model").get_json()
    assert body["classes"] == list(CLASSES)
    assert body["input_size"] == predictor.preprocessing.img_size == 64
    assert body["card"]["name"] == "random-r18-64"
    assert "gradcam" in body["cam_methods"]
    assert body["limits"]["max_upload_bytes"] == 16 * 1024 * 1024


# --------------------------------------------------------------------------------- OpenAPI


def resolve(schema: dict, doc: dict) -> dict:
    while "$ref" in schema:
        node = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def conforms(value, schema: dict, doc: dict, where: str = "$") -> list[str]:
    """Problems of ``value`` against an OpenAPI 3.0 schema (the subset the spec uses)."""
    schema = resolve(schema, doc)
    if "allOf" in schema:
        return [p for sub in schema["allOf"] for p in conforms(value, sub, doc, where)]
    if "oneOf" in schema:
        each = [conforms(value, sub, doc, where) for sub in schema["oneOf"]]
        fitting = sum(not e for e in each)
        return [] if fitting == 1 else [f"{where}: fits {fitting} of oneOf: {each}"]
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null"]
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int,
             "number": (int, float)}
    kind = schema.get("type")
    if kind and (not isinstance(value, kinds[kind]) or (kind in ("integer", "number") and isinstance(value, bool))):
        return [f"{where}: {type(value).__name__} is not {kind}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where}: does not match {schema['pattern']}")
    if "minimum" in schema and value < schema["minimum"] or "maximum" in schema and value > schema["maximum"]:
        problems.append(f"{where}: {value} out of range")
    if kind == "object":
        problems += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        for k, sub in schema.get("properties", {}).items():
            if k in value:
                problems += conforms(value[k], sub, doc, f"{where}.{k}")
        if schema.get("additionalProperties") is False:
            problems += [f"{where}: extra {k}" for k in value if k not in schema.get("properties", {})]
    if kind == "array":
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            problems.append(f"{where}: {len(value)} items")
        problems += [p for i, v in enumerate(value) for p in conforms(v, schema.get("items", {}), doc, f"{where}[{i}]")]
    return problems


def test_openapi_describes_every_route(app, client):
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    served = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        served[path] = {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {path: set(ops) for path, ops in doc["paths"].items()}
    assert served == documented


def test_openapi_matches_every_answer(client, scan_bytes):
    doc = client.get("/api/openapi.json").get_json()
    calls = [
        ("get", "/", lambda: client.get("/")),
        ("get", "/api/health", lambda: client.get("/api/health")),
        ("get", "/api/model", lambda: client.get("/api/model")),
        ("get", "/api/openapi.json", lambda: client.get("/api/openapi.json")),
        ("post", "/api/predict", lambda: post(client, scan_bytes)),
        ("post", "/api/predict", lambda: post(client, scan_bytes, explain="0", tta="1")),
        ("post", "/api/predict", lambda: post(client, None)),
        ("post", "/api/predict", lambda: post(client, b"GIF89a not really")),
        ("post", "/api/predict", lambda: post(client, b"\0" * (17 << 20))),
        ("post", "/api/predict", lambda: post(client, scan_bytes, cam_method="x")),
        ("get", "/api/predict", lambda: client.get("/api/predict")),
        ("post", "/api/model", lambda: client.post("/api/model")),
        ("post", "/api/feedback", lambda: client.post("/api/feedback", data={"id": "x", "label": "glioma"})),
        ("get", "/api/samples", lambda: client.get("/api/samples")),
        ("get", "/api/samples/{label}/{name}", lambda: client.get("/api/samples/glioma/Tr-gl_0118.jpg")),
        ("get", "/api/samples/{label}/{name}", lambda: client.get("/api/samples/glioma/..%2F..%2Fcli.py")),
    ]
    seen = set()
    for method, path, call in calls:
        resp = call()
        ops = doc["paths"][path]
        op = ops.get(method) or next(iter(ops.values()))  # a 405 is documented on the path's operation
        documented = op["responses"].get(str(resp.status_code))
        assert documented, f"{method.upper()} {path} answered {resp.status_code}, not in the spec"
        media = documented.get("content", {})
        assert resp.mimetype in media, f"{path} {resp.status_code}: {resp.mimetype} not in {list(media)}"
        schema = media[resp.mimetype].get("schema")
        if schema:
            problems = conforms(resp.get_json(), schema, doc)
            assert not problems, f"{method.upper()} {path} {resp.status_code}: {problems}"
        seen.add(resp.status_code)
    assert {200, 400, 405, 413, 415} <= seen
    # the request fields the spec names are the ones the route reads
    fields = doc["paths"]["/api/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(fields["properties"]) == {"file", "explain", "overlay", "cam_method", "tta", "slice", "similar", "raw"}
    from braintumor.inference.cam import CAM_METHODS

    assert fields["properties"]["cam_method"]["enum"] == list(CAM_METHODS)


def test_openapi_and_model_route_name_the_cam_methods(client):
    from braintumor import cam_methods
    from braintumor.inference import cam

    methods = list(cam_methods.CAM_METHODS)
    doc = client.get("/api/openapi.json").get_json()
    form = doc["paths"]["/api/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["cam_method"]["enum"] == methods
    assert form["properties"]["cam_method"]["default"] == cam_methods.DEFAULT_CAM_METHOD
    report = doc["paths"]["/api/report"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert report["allOf"][0]["properties"]["cam_method"]["enum"] == methods
    assert doc["components"]["schemas"]["AnalysedAnswer"]["properties"]["cam_method"]["enum"] == methods
    assert client.get("/api/model").get_json()["cam_methods"] == methods
    assert cam.CAM_METHODS is cam_methods.CAM_METHODS  # the module that computes reads the same list


def test_health_answer_conforms_to_the_spec(client):
    doc = client.get("/api/openapi.json").get_json()
    schema = doc["paths"]["/api/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    body = client.get("/api/health").get_json()
    assert conforms(body, schema, doc) == []
    assert set(body) == set(resolve(schema, doc)["properties"])  # every field documented, and given
    assert conforms({**body, "model_loaded": True}, schema, doc)  # an undocumented field is caught
    assert conforms({k: v for k, v in body.items() if k != "model"}, schema, doc)


def test_sample_scans_are_listed_and_served_and_nothing_else(client):
    from braintumor.imaging import load_image

    listed = client.get("/api/samples").get_json()["samples"]
    assert len(listed) == 12 and {s["label"] for s in listed} == {"glioma", "meningioma", "notumor", "pituitary"}
    for s in listed[:2]:
        r = client.get("/" + s["url"])
        assert r.status_code == 200 and r.mimetype == "image/jpeg"
        assert load_image(r.data, s["name"]).size[0] > 100  # a real scan
    for bad in ("glioma/nope.jpg", "glioma/..%2F..%2Fweights%2Fmanifest.json", "../cli.py", "x/y"):
        r = client.get("/api/samples/" + bad)
        assert r.status_code == 404 and "error" in r.get_json()


def test_conforms_catches_a_wrong_answer(client, scan_bytes):
    """The checker above is not a rubber stamp."""
    doc = client.get("/api/openapi.json").get_json()
    good = post(client, scan_bytes, explain="false").get_json()
    schema = {"$ref": "#/components/schemas/Prediction"}
    assert conforms(good, schema, doc) == []
    assert conforms({**good, "predictions": good["predictions"][:3]}, schema, doc)
    assert conforms({k: v for k, v in good.items() if k != "timing_ms"}, schema, doc)
    assert conforms({**good, "confidence": "high"}, schema, doc)


# ---------------------------------------------------------------- the real server (waitress)


def raw_request(url: str, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def multipart(data: bytes, filename: str = "scan.jpg") -> tuple[bytes, dict]:
    b = "----braintumortest"
    body = (f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={b}"}


def test_waitress_server_headers_limits_and_concurrent_answers(app, sample_files):
    from braintumor.web.serve import MAX_BODY_BYTES, BackgroundServer

    with BackgroundServer(app) as srv:
        adj = srv.server.adj
        assert adj.inbuf_overflow > adj.max_request_body_size == MAX_BODY_BYTES  # bodies stay in memory
        status, headers, body = raw_request(srv.url, "GET", "/api/health")
        assert status == 200 and "Server" not in headers and "Via" not in headers
        assert json.loads(body)["status"] == "ok"
        status, headers, body = raw_request(srv.url, "POST", "/api/predict", *multipart(b"\0" * (17 << 20)))
        assert status == 413 and "16 MB" in json.loads(body)["error"]

        images = [p.read_bytes() for p, _ in sample_files[:6]]
        alone = [json.loads(raw_request(srv.url, "POST", "/api/predict", *multipart(d))[2]) for d in images]
        results: dict[int, dict] = {}

        def worker(k: int) -> None:
            status, _, body = raw_request(srv.url, "POST", "/api/predict", *multipart(images[k % 6]))
            results[k] = json.loads(body) if status == 200 else {"status": status}

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for k in range(12):
            got = {key: v for key, v in results[k].items() if key not in ("timing_ms", "id")}
            assert got == {key: v for key, v in alone[k % 6].items() if key not in ("timing_ms", "id")}


# ------------------------------------------------------------------------------------ the CLI


def test_serve_cli_refuses_bad_arguments(capsys, tmp_path, random_checkpoint):
    from braintumor.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--port", "http"])
    assert exc.value.code == 2 and "not a port number" in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path / "nope.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]
    with socket.socket() as busy:  # a port already taken: one line, exit 2
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--model", str(random_checkpoint), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_serve_cli_says_where_and_which_model(random_checkpoint):
    """`braintumor serve` in a subprocess: start-up lines, then a real answer on the printed port."""
    import time

    proc = subprocess.Popen([sys.executable, "-m", "braintumor", "serve", "--port", "0", "--workers", "2",
                             "--model", str(random_checkpoint)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "listening on" in line:
                break
        text = "".join(lines)
        assert "random-r18-64" in text
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+/)", text).group(1)
        status, headers, body = raw_request(url, "GET", "/api/health")
        assert status == 200 and json.loads(body)["model"]["name"] == "random-r18-64"
        assert "Server" not in headers
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_predict_gives_the_tumour_box_in_pixels_of_the_upload(tmp_path, sample_files):
    from braintumor.inference.predictor import Predictor
    from braintumor.web import create_app
    from conftest import box_checkpoint

    p = Predictor.load(box_checkpoint(tmp_path / "box.safetensors", always=0), backend="torch")
    client = create_app(predictor=p).test_client()
    img = Image.open(sample_files[0][0]).convert("L").resize((320, 240))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    body = post(client, buf.getvalue(), "scan.png").get_json()
    assert body["image_size"] == [320, 240]
    direct = p.predict(img)
    assert body["label"] == "glioma" and body["box"] == direct["box"] and body["box"] is not None
    x0, y0, x1, y1 = body["box"]
    assert 0 <= x0 <= x1 <= 320 and 0 <= y0 <= y1 <= 240
    assert 40 <= x0 and x1 <= 280  # inside the centre square the network sees
    assert decode_data_url(body["gradcam"]).size == (320, 240)
