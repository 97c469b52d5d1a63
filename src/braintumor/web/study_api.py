"""Studies through the API: ``POST /api/study`` answers the series sent (several 'file' parts, or
one .zip) as JSON (with ``thumbnails=true``, a small picture of every slice), ``POST /api/study/sr``
answers them as DICOM Structured Reports (one series: application/dicom; several: a .zip of one
report per series), and ``POST /api/study/slice`` answers one slice of the study sent (``series``,
``index``) as ``/api/predict`` answers one scan: the picture, the heat map and the box.

Both run as heavy work (:mod:`braintumor.web.work`) under the service's limits: each slice under
the per-image budget, the study under :data:`braintumor.studies.limits.SERVICE` (files, bytes once
unpacked, slices, decoded pixels). A refused study is a 4xx with one line (the .zip's entries are
named by position only). Client file names are never read, used or logged. The routes' OpenAPI
description is :mod:`braintumor.web.study_openapi` (``openapi_paths``, also importable from here).
"""

from __future__ import annotations

import io
import logging
import time
import zipfile

from flask import Blueprint, Flask, Response, jsonify, request
from PIL import Image

from .forms import ApiError, flag, integer
from .state import current_predictor
from .study_openapi import THUMBNAIL_SIDE, openapi_paths  # noqa: F401 (openapi_paths: this file's routes described)
from .work import heavy

log = logging.getLogger("braintumor.web")

bp = Blueprint("study", __name__, url_prefix="/api")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _study():
    """The study posted, its series read under the service's limits."""
    from ..studies import SERVICE, read_study

    uploads = request.files.getlist("file")
    if not uploads:
        raise ApiError(400, "no file was sent: put the DICOM or NIfTI files (or one .zip of them) in "
                            "multipart form fields named 'file'")
    items = [(u.read(), f"upload {n}") for n, u in enumerate(uploads, 1)]
    log.info("%s: %d files, %d bytes", request.path.rsplit("/", 1)[-1], len(items), sum(len(d) for d, _ in items))
    return read_study(items, SERVICE)


def _read():
    """The study posted and its answer."""
    from ..studies import answer_study

    tta = flag("tta", False)
    study = _study()
    return study, answer_study(current_predictor(), study, tta=tta)


def thumbnail(image) -> str:
    """A slice's picture (what the model saw) at most :data:`THUMBNAIL_SIDE` pixels a side, as a
    PNG data URL: pixels only, nothing of the file's header."""
    from .routes import png_data_url

    small = image.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.BILINEAR)
    return png_data_url(small)


@bp.post("/study")
@heavy  # on a worker, under the service's budget
def study() -> Response:
    thumbnails = flag("thumbnails", False)
    study, answer = _read()
    if thumbnails:
        for s, a in zip(study.series, answer["series"]):
            for sl, out in zip(s.slices, a["slices"]):
                out["thumbnail"] = thumbnail(sl.image)
    return jsonify(answer)


@bp.post("/study/slice")
@heavy
def study_slice() -> Response:
    """One slice of the study sent, answered as ``/api/predict`` answers one scan (the heat map as
    grey levels in ``heatmap_png``, the box in the pixels of ``original``'s image), with its place."""
    from ..cam_methods import CAM_METHODS, DEFAULT_CAM_METHOD
    from .routes import build_answer, ms

    t0 = time.perf_counter()
    number, index = integer("series"), integer("index")
    if number is None or index is None:
        raise ApiError(400, "say which slice: 'series' (1 for the first series, as in the study's answer) and "
                            "'index' (its place in anatomical order, 0 for the first)")
    cam_method = (request.form.get("cam_method") or DEFAULT_CAM_METHOD).strip().lower()
    if cam_method not in CAM_METHODS:
        raise ApiError(400, f"unknown cam_method; choose one of {', '.join(CAM_METHODS)}")
    tta = flag("tta", False)
    study = _study()
    if not 1 <= number <= len(study.series):
        raise ApiError(400, f"the study sent has {len(study.series)} series: 'series' must be 1 to "
                            f"{len(study.series)}")
    slices = study.series[number - 1].slices
    if not 0 <= index < len(slices):
        raise ApiError(400, f"series {number} has {len(slices)} slices: 'index' must be 0 to {len(slices) - 1}")
    sl = slices[index]
    p = current_predictor()
    t1 = time.perf_counter()
    result = p.explain(sl.image, cam_method=cam_method, overlay=False, tta=tta)
    t2 = time.perf_counter()
    answer = build_answer(p, sl.image, result)
    answer.update({"series": number, "index": index})
    for key, value in (("instance_number", sl.instance_number), ("frame", sl.frame)):
        if value is not None:
            answer[key] = value
    if sl.position is not None:
        answer["position_mm"] = round(sl.position, 2)
    answer["timing_ms"] = {"preprocess": ms(t1 - t0), "predict": ms(t2 - t1),
                           "encode": ms(time.perf_counter() - t2), "total": ms(time.perf_counter() - t0)}
    return jsonify(answer)


@bp.post("/study/sr")
@heavy
def study_sr() -> Response:
    from ..studies import StudyError, sr_bytes, study_reports

    study, answer = _read()
    reports = study_reports(study, answer)
    if not reports:
        raise StudyError("no DICOM series was sent: a structured report can only refer to DICOM images")
    if len(reports) == 1:
        number, ds = reports[0]
        return Response(sr_bytes(ds), mimetype="application/dicom",
                        headers={"Content-Disposition": f'attachment; filename="series-{number}.sr.dcm"'})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for number, ds in reports:
            zf.writestr(f"series-{number}.sr.dcm", sr_bytes(ds))
    return Response(buf.getvalue(), mimetype="application/zip",
                    headers={"Content-Disposition": 'attachment; filename="study-sr.zip"'})
