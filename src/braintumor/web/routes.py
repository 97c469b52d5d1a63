"""Routes: the page, the JSON API, and the handlers that keep every failure a short JSON answer.

``POST /api/predict`` reads the upload from memory through :func:`braintumor.imaging.load_image`
(the one way any input becomes pixels), asks the Predictor for the answer and the Grad-CAM overlay,
and answers JSON; every error, expected or not, is ``{"error": "..."}`` with a 4xx status (or a 500
without details), and only the exception's type is logged.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import math
import re
import struct
import time
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from PIL import Image
from werkzeug.exceptions import HTTPException

from .. import __version__, formats
from ..cam_methods import CAM_LABELS, CAM_METHODS, DEFAULT_CAM_METHOD
from ..errors import ToolError
from ..imaging import load_image
from ..inference.cam import heat_levels
from .state import current_predictor
from .forms import ApiError, file_name, flag, integer
from .feedback_api import remember
from .headers import CSP, security_headers as headers_for  # noqa: F401 (CSP re-exported)
from .openapi import spec
from .work import gate, heavy

log = logging.getLogger("braintumor.web")

bp = Blueprint("api", __name__, url_prefix="/api")

ORIGINAL_MAX_SIDE = 512  # the "original" image in an answer is at most this many pixels a side
# Null in every answer that has them: what an image not analysed lacks, and what may be unknown.
ANSWER_NULLS = {"label", "confidence", "probabilities", "predictions", "box", "box_score", "ood_score"}


def init_app(app: Flask) -> None:
    from . import feedback_api, origin, samples_api, work

    work.init_app(app)
    origin.init_app(app)
    app.register_blueprint(bp)
    app.register_blueprint(samples_api.bp)
    feedback_api.init_app(app)
    app.add_url_rule("/", "index", index)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(ToolError, image_error)  # ImageError and every other ToolError
    app.register_error_handler(ApiError, api_error)
    app.register_error_handler(Exception, unexpected_error)
    app.after_request(security_headers)


# ---------------------------------------------------------------------------------------- page


def index() -> str:
    p = current_predictor()
    from .feedback_api import service

    return render_template("index.html", model=model_summary(p), classes=class_display(p.classes),
                           cam_methods=[{"name": m, "label": CAM_LABELS.get(m, m)} for m in CAM_METHODS],
                           default_cam_method=DEFAULT_CAM_METHOD, accept=formats.accept_attribute(),
                           max_bytes=current_app.config["MAX_CONTENT_LENGTH"], version=__version__,
                           feedback=service() is not None, has_index=getattr(p, "index", None) is not None)


OTHER_COLOUR = (100, 116, 139)  # a class the display table does not know


def class_display(classes: Any) -> list[dict]:
    """The model's classes in its order, each with the name a person reads and its colour
    (:data:`braintumor.config.CLASS_NAMES` and ``CLASS_COLOURS``, which the PDF report uses too)."""
    from ..config import CLASS_COLOURS, CLASS_NAMES

    return [{"label": str(c), "name": CLASS_NAMES.get(c, str(c)),
             "colour": "#{:02x}{:02x}{:02x}".format(*CLASS_COLOURS.get(c, OTHER_COLOUR))} for c in classes]


# ----------------------------------------------------------------------------------------- API


@bp.get("/health")
def health() -> Response:
    p = current_predictor()
    from .feedback_api import service

    # No "model loaded" flag: the app is built around a loaded Predictor, so one that answers has it.
    # Answered on a thread of its own, never behind heavy requests (braintumor.web.work).
    return jsonify(status="ok", version=__version__, model=model_summary(p), feedback=service() is not None,
                   work=gate().status())


@bp.get("/model")
def model() -> Response:
    from ..inference.model_file import public_meta

    p = current_predictor()
    return jsonify(
        **model_summary(p),
        classes=list(p.classes),
        input_size=int(p.preprocessing.img_size),
        preprocessing=jsonable(p.preprocessing.to_dict()),
        cam_methods=list(CAM_METHODS),
        card=jsonable(public_meta(p.meta or {})),
        limits={"max_upload_bytes": int(current_app.config["MAX_CONTENT_LENGTH"]),
                **current_app.config["BUDGET"].describe()},
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(spec())


@dataclass
class Upload:
    """A scan posted to /api/predict or /api/report, decoded, with the request's options."""

    data: bytes
    image: Image.Image
    explain: bool
    tta: bool
    cam_method: str
    slice_index: int | None
    similar: int
    overlay: bool = True  # the heat map laid over the scan as a PNG; without it the client colours heatmap_png
    raw: bool = False  # also the model's probabilities as computed ("raw_probabilities"), even when not analysed


def read_upload() -> Upload:
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "no file was sent: put the image in the multipart form field 'file'")
    explain = flag("explain", True)
    tta = flag("tta", False)
    slice_index = integer("slice")
    cam_method = (request.form.get("cam_method") or DEFAULT_CAM_METHOD).strip().lower()
    if cam_method not in CAM_METHODS:
        raise ApiError(400, f"unknown cam_method; choose one of {', '.join(CAM_METHODS)}")
    similar = integer("similar") or 0
    if not 0 <= similar <= 20:
        raise ApiError(400, "the field 'similar' must be between 0 and 20")
    data = upload.read()
    log.info("%s: %d bytes, %s", request.path.rsplit("/", 1)[-1], len(data), content_kind(upload.mimetype))
    # Error messages name the file as the client called it (its base name, sanitised); the log
    # above and the error handler below never see it.
    image = load_image(data, file_name(upload.filename), slice_index)  # ImageError -> 400/415 with a message
    return Upload(data, image, explain, tta, cam_method, slice_index, similar, flag("overlay", True),
                  flag("raw", False))


def answer_upload(p: Any, u: Upload) -> dict:
    """The Predictor's answer; the similar cases come from the same forward pass (the upload's
    SHA-256 finds an exact copy), with thumbnails."""
    kw: dict[str, Any] = {"tta": u.tta}
    if u.similar:
        if getattr(p, "index", None) is None:
            raise ApiError(400, "this server has no similar-case index; leave out 'similar'")
        kw.update(similar=u.similar, sha256=hashlib.sha256(u.data).hexdigest())
    result = p.explain(u.image, cam_method=u.cam_method, overlay=u.overlay, **kw) if u.explain \
        else p.predict(u.image, **kw)
    for s in result.get("similar") or []:
        thumb = p.index.thumbnail(s["id"])
        s["thumbnail"] = ("data:image/jpeg;base64," + base64.b64encode(thumb).decode("ascii")) if thumb else None
    return result


@bp.post("/predict")
@heavy  # on a worker, under the service's budget
def predict() -> Response:
    t0 = time.perf_counter()
    u = read_upload()
    p = current_predictor()
    t1 = time.perf_counter()
    result = answer_upload(p, u)
    t2 = time.perf_counter()
    answer = build_answer(p, u.image, result, raw=u.raw)
    t3 = time.perf_counter()
    answer["id"] = uuid.uuid4().hex  # what feedback on this answer refers to
    remember(answer["id"], p, result, hashlib.sha256(u.data).hexdigest(), u.slice_index)
    # The forward pass and the heat map are one Predictor call (the heat map reuses the forward
    # pass's features), so "predict" is that whole call and "encode" the PNG and base64 work.
    answer["timing_ms"] = {
        "preprocess": ms(t1 - t0),
        "predict": ms(t2 - t1),
        "encode": ms(t3 - t2),
        "total": ms(time.perf_counter() - t0),
    }
    return jsonify(answer)


@bp.post("/report")
@heavy
def report() -> Response:
    """The same form as /api/predict; the answer as a one-page PDF. The file's name is printed only
    when the form's 'title' field gives one."""
    from ..inference.report import case_report

    u = read_upload()
    u.overlay = True  # the report prints the heat map over the scan
    title = (request.form.get("title") or "").strip()[:120] or None
    p = current_predictor()
    result = answer_upload(p, u)
    pdf = case_report(result, u.image, model_summary(p), __version__, title=title,
                      similar=result.get("similar"))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="braintumor-report-{stamp}.pdf"'})


def build_answer(p: Any, image: Image.Image, result: dict, raw: bool = False) -> dict:
    """The JSON answer: the answer object (:func:`braintumor.inference.answer.answer`, leading with
    ``headline``; no class, confidence or probabilities for an image not analysed) with the
    pictures, the model and the image's size. A rejected scan gets no heat map."""
    from ..inference.answer import answer as answer_object
    from ..cam_methods import caption
    from ..config import CLASS_NAMES

    rejected = result.get("decision") == "rejected"
    if rejected:
        result = {k: v for k, v in result.items() if k not in ("overlay", "heatmap", "heatmap_input")}
    overlay = result.get("overlay")
    original = display_original(p, image, overlay)
    answer: dict[str, Any] = {}
    for key, value in answer_object(result, p.classes, raw=raw).items():
        value = jsonable(value)
        if value is not None or key in ANSWER_NULLS:
            answer[key] = value
    answer.update({
        "gradcam": png_data_url(overlay) if overlay is not None else None,
        "original": png_data_url(original),
        "model": model_summary(p),
        "image_size": [int(image.size[0]), int(image.size[1])],  # the box is in these pixels
    })
    if overlay is None and result.get("heatmap") is not None:
        # The heat map alone, 8-bit grey at the size of "original", for the client to colour (the
        # page lays it over the scan with the same jet colours and blend): a fraction of the cost
        # of drawing and encoding the coloured overlay here.
        w, h = original.size
        answer["heatmap_png"] = png_data_url(Image.fromarray(heat_levels(result["heatmap"], (h, w)), "L"))
    if result.get("cam_method") and not rejected:
        target = str(result.get("target") or result["label"])
        answer["cam_caption"] = caption(result["cam_method"], CLASS_NAMES.get(target, target))
    return answer


def display_original(p: Any, image: Image.Image, overlay: Image.Image | None) -> Image.Image:
    """The whole scan as shown beside the overlay (which covers the whole scan too): at the
    overlay's size, otherwise at most ORIGINAL_MAX_SIDE a side."""
    if overlay is not None:
        return image.resize(overlay.size, Image.BILINEAR) if overlay.size != image.size else image
    if max(image.size) <= ORIGINAL_MAX_SIDE:
        return image  # shown as it is: nothing to copy
    img = image.copy()
    img.thumbnail((ORIGINAL_MAX_SIDE, ORIGINAL_MAX_SIDE), Image.BILINEAR)
    return img


# ----------------------------------------------------------------------------------- helpers


def model_summary(p: Any) -> dict:
    return {"name": str(p.name), "version": str(p.version), "sha256": str(p.sha256)}


def png_data_url(img: Image.Image) -> str:
    if img.mode == "L":
        data = grey_png(np.asarray(img))
    else:
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)  # 4-5x faster than the default level, ~25% larger
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def grey_png(pixels: np.ndarray) -> bytes:
    """(H, W) uint8 grey levels as an 8-bit greyscale PNG, written here rather than by Pillow: every
    row with the "Up" filter (the difference from the row above: a scan and a heat map change
    little from one row to the next), deflated at level 1 with run-length matching. Twice as fast
    as Pillow's encoder at its fastest level, which tries every filter on every row, and about as
    large on scans and heat maps."""
    a = np.asarray(pixels, dtype=np.uint8)
    h, w = a.shape
    rows = np.empty((h, w + 1), dtype=np.uint8)
    rows[:, 0] = 2  # filter type Up; the first row's "row above" is zeros
    rows[0, 1:] = a[0]
    np.subtract(a[1:], a[:-1], out=rows[1:, 1:])  # modulo 256, as PNG defines it
    deflate = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    idat = deflate.compress(rows.data) + deflate.flush()
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit grey, deflate, no interlace
    return PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def content_kind(mimetype: str | None) -> str:
    """The declared content type, reduced to a safe token for the log."""
    m = (mimetype or "").lower()
    return m if re.fullmatch(r"[a-z0-9.+-]{1,40}/[a-z0-9.+-]{1,60}", m) else "unknown type"


def jsonable(value: Any) -> Any:
    """Plain JSON values from numpy scalars, arrays, tuples and dicts; None for anything else
    (images, tensors), so that an answer can always be serialised."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, dict):
        out = {str(k): jsonable(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None or value[k] is None}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray) and value.size <= 64:
        return jsonable(value.tolist())
    return None


# ------------------------------------------------------------------------ errors and headers


def error_response(status: int, message: str) -> Response:
    resp = jsonify(error=message)
    resp.status_code = status
    return resp


HTTP_MESSAGES = {
    400: "the request could not be read",
    404: "there is nothing at this address; the API is described at /api/openapi.json",
    405: "{method} is not allowed on {path}; use {allowed}",
    413: "the upload is larger than the {limit} MB limit; send a smaller image",
}
# A body within the upload limit whose form is too large: a text field over MAX_FORM_MEMORY_SIZE or
# more than MAX_FORM_PARTS fields.
FORM_TOO_LARGE = ("the form is too large: a text field is over {field_kb} KB or there are over {parts} "
                  "fields; send the scan in 'file' and short values in the other fields")


def http_error(exc: HTTPException) -> Response:
    code = exc.code or 500
    template = HTTP_MESSAGES.get(code)
    cfg = current_app.config
    if code == 413 and (request.content_length or 0) <= cfg["MAX_CONTENT_LENGTH"]:
        template = FORM_TOO_LARGE
    if template:
        allowed = ", ".join(sorted(set(getattr(exc, "valid_methods", None) or []) - {"HEAD", "OPTIONS"}))
        message = template.format(path=request.path[:200], method=request.method, allowed=allowed or "GET",
                                  limit=cfg["MAX_CONTENT_LENGTH"] // (1024 * 1024),
                                  field_kb=cfg["MAX_FORM_MEMORY_SIZE"] // 1024, parts=cfg["MAX_FORM_PARTS"])
    else:
        message = (exc.description or exc.name or "error").strip()
    resp = error_response(code, message)
    for key, value in exc.get_headers():
        if key.lower() not in ("content-type", "content-length"):
            resp.headers[key] = value  # e.g. Allow on a 405
    return resp


def image_error(exc: ToolError) -> Response:
    """An input the tool cannot use (ImageError: 400 or 415; any other ToolError: its status): the
    message is for a person; the log keeps only the type."""
    log.info("refused a request: %s", type(exc).__name__)
    return error_response(getattr(exc, "status", 400), str(exc))


def api_error(exc: ApiError) -> Response:
    resp = error_response(exc.status, str(exc))
    resp.headers.update(exc.headers)
    return resp


def unexpected_error(exc: Exception) -> Response:
    # Only the type: messages and tracebacks may hold pieces of the upload.
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.path[:200])
    return error_response(500, "the server could not process this request; the error was logged")


def security_headers(resp: Response) -> Response:
    resp.headers.update(headers_for(request.path))
    return resp
