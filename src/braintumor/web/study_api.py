"""Studies through the API: ``POST /api/study`` answers the series sent (several 'file' parts, or
one .zip) as JSON, ``POST /api/study/sr`` answers them as DICOM Structured Reports (one series:
application/dicom; several: a .zip of one report per series).

Both run as heavy work (:mod:`braintumor.web.work`) under the service's limits: each slice under
the per-image budget, the study under :data:`braintumor.studies.limits.SERVICE` (files, bytes once
unpacked, slices, decoded pixels). A refused study is a 4xx with one line (the .zip's entries are
named by position only). Client file names are never read, used or logged.
"""

from __future__ import annotations

import io
import logging
import zipfile

from flask import Blueprint, Flask, Response, jsonify, request

from .forms import ApiError, flag
from .state import current_predictor
from .work import heavy

log = logging.getLogger("braintumor.web")

bp = Blueprint("study", __name__, url_prefix="/api")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _read():
    """The study posted: its series read under the service's limits, and its answer."""
    from ..studies import SERVICE, answer_study, read_study

    uploads = request.files.getlist("file")
    if not uploads:
        raise ApiError(400, "no file was sent: put the DICOM or NIfTI files (or one .zip of them) in "
                            "multipart form fields named 'file'")
    tta = flag("tta", False)
    items = [(u.read(), f"upload {n}") for n, u in enumerate(uploads, 1)]
    log.info("%s: %d files, %d bytes", request.path.rsplit("/", 1)[-1], len(items), sum(len(d) for d, _ in items))
    study = read_study(items, SERVICE)
    return study, answer_study(current_predictor(), study, tta=tta)


@bp.post("/study")
@heavy  # on a worker, under the service's budget
def study() -> Response:
    _, answer = _read()
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


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


STUDY_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"},
                 "description": "the study's DICOM files or NIfTI volumes (one part each), or one .zip of them"},
        "tta": {"type": "boolean", "default": False, "description": "test-time augmentation (6x the work)"},
    },
}
SLICE = {
    "type": "object",
    "required": ["index", "blank"],
    "properties": {
        "index": {"type": "integer", "minimum": 0, "description": "place in anatomical order"},
        "instance_number": {"type": "integer"},
        "frame": {"type": "integer", "minimum": 1, "description": "frame of a multi-frame file"},
        "position_mm": {"type": "number", "description": "ImagePositionPatient along the slice normal"},
        "blank": {"type": "boolean"},
        "headline": {"type": "string"},
        "label": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
        "decision": {"type": "string", "enum": ["classified", "uncertain", "rejected"]},
        "reason": {"type": "string"},
        "prediction_set": {"type": "array", "items": {"type": "string"}},
        "box": {"type": "array", "nullable": True, "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                "description": "[x0, y0, x1, y1] of the tumour in the stored image's pixels"},
        "error": {"type": "string"},
    },
}
ANSWER = {
    "type": "object",
    "required": ["headline", "decision", "reason"],
    "properties": {
        "headline": {"type": "string"},
        "label": {"type": "string", "nullable": True},
        "decision": {"type": "string", "enum": ["classified", "uncertain", "rejected"]},
        "kind": {"type": "string", "enum": ["tumour", "uncertain", "notumor", "not analysed"]},
        "reason": {"type": "string"},
        "series": {"type": "integer"},
    },
}
SERIES = {
    "type": "object",
    "required": ["series", "kind", "n_slices", "ordering", "summary", "most_suspicious", "answer", "slices"],
    "properties": {
        "series": {"type": "integer", "minimum": 1},
        "kind": {"type": "string", "enum": ["dicom", "nifti"]},
        "modality": {"type": "string"},
        "series_number": {"type": "integer"},
        "n_slices": {"type": "integer", "minimum": 1},
        "ordering": {"type": "string", "enum": ["position", "instance number", "file order", "volume"]},
        "analysed": {"type": "integer", "minimum": 0},
        "summary": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}}},
        "summary_text": {"type": "object", "additionalProperties": {"type": "string"}},
        "uncertain": {"type": "array", "items": {"type": "integer"}},
        "not_analysed": {"type": "array", "items": {"type": "integer"}},
        "blank": {"type": "array", "items": {"type": "integer"}},
        "most_suspicious": {"type": "array", "items": {"type": "object"}},
        "answer": ANSWER,
        "slices": {"type": "array", "items": SLICE},
    },
}
STUDY = {
    "type": "object",
    "required": ["model", "answer", "n_series", "n_slices", "series", "skipped", "notice"],
    "properties": {
        "model": {"$ref": "#/components/schemas/ModelSummary"},
        "answer": ANSWER,
        "n_series": {"type": "integer", "minimum": 1},
        "n_slices": {"type": "integer", "minimum": 1},
        "series": {"type": "array", "items": SERIES},
        "skipped": {"type": "array", "items": {"type": "object", "required": ["reason", "files"], "properties": {
            "reason": {"type": "string"}, "files": {"type": "integer", "minimum": 1}}}},
        "notice": {"type": "string"},
    },
}
ERRORS = {
    "400": _error("no 'file', no DICOM or NIfTI image in what was sent, a damaged or refused .zip (encrypted, "
                  "nested archives, names outside it), or a slice over the pixel, aspect or memory limit"),
    "403": _error("a cross-site request, or a Host this server does not answer for"),
    "405": _error("method not allowed"),
    "413": _error("the upload is over 16 MB, the form has over 64 fields, or the study is over the limits of "
                  "files (1,000), bytes once unpacked (256 MB), slices (400) or decoded pixels (100 megapixel)"),
    "415": _error("a slice this service cannot decode"),
    "500": _error("an unexpected failure (no details are given)"),
    "503": _error("the server is busy; try again after Retry-After seconds"),
}


def openapi_paths() -> dict:
    """The OpenAPI description of this file's routes, for :func:`braintumor.web.openapi.spec`."""
    body = {"required": True, "content": {"multipart/form-data": {"schema": STUDY_FORM}}}
    return {
        "/api/study": {"post": {
            "summary": "answer a study: every slice of every DICOM series (or NIfTI volume), a summary per series",
            "description": "DICOM files are grouped by series and put in anatomical order (ImagePositionPatient "
                           "along the slice normal, else InstanceNumber). No patient data, date, UID or file "
                           "name is in the answer.",
            "requestBody": body,
            "responses": {"200": {"description": "the study's answer",
                                  "content": {"application/json": {"schema": STUDY}}}, **ERRORS},
        }},
        "/api/study/sr": {"post": {
            "summary": "the study's answer as DICOM Structured Reports (Comprehensive 3D SR, TID 1500)",
            "description": "One report per DICOM series, in the study of its images. One series: the report "
                           "itself; several: a .zip with series-N.sr.dcm for each.",
            "requestBody": body,
            "responses": {"200": {"description": "the report(s)",
                                  "content": {"application/dicom": {}, "application/zip": {}}}, **ERRORS},
        }},
    }
