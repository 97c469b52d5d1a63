"""The OpenAPI description of the study routes (:mod:`braintumor.web.study_api`): their forms,
answers and refusals, for :func:`braintumor.web.openapi.spec`. It is a module of its own so that
imports go one way: :mod:`braintumor.web.routes` imports the OpenAPI document, and the study
routes use the routes' answer builder (``/api/study/slice`` answers as ``/api/predict`` does)."""

from __future__ import annotations

THUMBNAIL_SIDE = 128  # a slice's thumbnail (thumbnails=true) is at most this many pixels a side


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
STUDY_ANSWER_FORM = {"allOf": [STUDY_FORM, {"type": "object", "properties": {
    "thumbnails": {"type": "boolean", "default": False,
                   "description": "a small PNG of every slice in its answer ('thumbnail')"}}}]}
SLICE_FORM = {"allOf": [STUDY_FORM, {
    "type": "object",
    "required": ["series", "index"],
    "properties": {
        "series": {"type": "integer", "minimum": 1, "description": "the series, as numbered in the study's answer"},
        "index": {"type": "integer", "minimum": 0, "description": "the slice's place in anatomical order"},
        "cam_method": {"type": "string", "description": "the heat map's method, as for /api/predict"},
    }}]}
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
        "thumbnail": {"type": "string", "pattern": "^data:image/png;base64,",
                      "description": "with thumbnails=true: PNG of the slice as the model saw it, at most "
                                     f"{THUMBNAIL_SIDE} pixels a side"},
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


SLICE_ANSWER = {"allOf": [{"$ref": "#/components/schemas/Prediction"}, {
    "type": "object",
    "required": ["series", "index"],
    "properties": {
        "series": {"type": "integer", "minimum": 1},
        "index": {"type": "integer", "minimum": 0},
        "instance_number": {"type": "integer"},
        "frame": {"type": "integer", "minimum": 1},
        "position_mm": {"type": "number"},
    }}]}


def openapi_paths() -> dict:
    """The OpenAPI description of this file's routes, for :func:`braintumor.web.openapi.spec`."""
    body = {"required": True, "content": {"multipart/form-data": {"schema": STUDY_FORM}}}
    form = {"required": True, "content": {"multipart/form-data": {"schema": STUDY_ANSWER_FORM}}}
    return {
        "/api/study": {"post": {
            "summary": "answer a study: every slice of every DICOM series (or NIfTI volume), a summary per series",
            "description": "DICOM files are grouped by series and put in anatomical order (ImagePositionPatient "
                           "along the slice normal, else InstanceNumber). No patient data, date, UID or file "
                           "name is in the answer. With thumbnails=true each slice has a small PNG of its "
                           "pixels.",
            "requestBody": form,
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
        "/api/study/slice": {"post": {
            "summary": "one slice of a study, with its heat map and box, as /api/predict answers one scan",
            "description": "The same files as /api/study, and which slice ('series', 'index'). The heat map "
                           "comes as grey levels (heatmap_png) at the size of 'original'; 'box' is in the "
                           "pixels of the slice as the model saw it (image_size). No patient data, date, UID "
                           "or file name is in the answer.",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": SLICE_FORM}}},
            "responses": {"200": {"description": "the slice's answer",
                                  "content": {"application/json": {"schema": SLICE_ANSWER}}},
                          **ERRORS, "400": _error("as for /api/study, and no such series or slice")},
        }},
    }


__all__ = ["openapi_paths", "THUMBNAIL_SIDE"]
