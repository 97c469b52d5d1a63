"""The OpenAPI 3.0 description of the JSON API, served at ``/api/openapi.json``.

``tests/test_web.py`` keeps it true: every route of the app is described here, and every answer the
tests receive is checked against the schema given for its path, method and status.
"""

from __future__ import annotations

from .. import __version__
from ..cam_methods import CAM_METHODS, DEFAULT_CAM_METHOD
from ..inference.answer import SCHEMAS as ANSWER_SCHEMAS
from ..config import CLASSES
from .study_openapi import openapi_paths as study_paths


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(description: str, ref: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


DATA_URL = {"type": "string", "pattern": "^data:image/png;base64,"}

SCHEMAS: dict = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "what was wrong, in plain words"}},
    },
    "ModelSummary": {
        "type": "object",
        "required": ["name", "version", "sha256"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "sha256": {"type": "string", "description": "SHA-256 of the checkpoint file(s)"},
        },
    },
    "Health": {
        "type": "object",
        "description": "an app always serves a loaded model (it is built around one), so an answer "
                       "means the service is up and its model is ready",
        "required": ["status", "version", "model"],
        "properties": {
            "status": {"type": "string", "enum": ["ok"]},
            "version": {"type": "string", "description": "version of the braintumor package"},
            "model": {"$ref": "#/components/schemas/ModelSummary"},
            "feedback": {"type": "boolean", "description": "whether this server collects feedback"},
            "work": {
                "type": "object",
                "description": "the heavy-work gate: scans analysed at once (workers), how many may wait "
                               "(queue), and how many are running and waiting now",
                "required": ["workers", "queue", "running", "waiting"],
                "properties": {k: {"type": "integer", "minimum": 0}
                               for k in ("workers", "queue", "running", "waiting")},
            },
        },
        "additionalProperties": False,
    },
    "FeedbackStored": {
        "type": "object",
        "required": ["stored", "feedback_id", "image_kept"],
        "properties": {
            "stored": {"type": "boolean", "enum": [True]},
            "feedback_id": {"type": "integer", "description": "the row in the feedback database"},
            "image_kept": {"type": "boolean", "description": "whether the scan's pixels were kept (consent)"},
        },
    },
    "ModelInfo": {
        "type": "object",
        "required": ["name", "version", "sha256", "classes", "input_size", "preprocessing",
                     "cam_methods", "card", "limits"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "sha256": {"type": "string"},
            "classes": {"type": "array", "items": {"type": "string"}, "example": list(CLASSES)},
            "input_size": {"type": "integer", "description": "side of the square network input"},
            "preprocessing": {"type": "object", "description": "img_size, resize_ratio, mean, std"},
            "cam_methods": {"type": "array", "items": {"type": "string", "enum": list(CAM_METHODS)}},
            "card": {"type": "object", "description": "the model card: validation and test figures, "
                                                      "calibration, training run"},
            "limits": {
                "type": "object",
                "description": "what one upload may be: its bytes, its pixels (as decoded and after "
                               "every resize step), how much longer one side may be than the other, and "
                               "the memory decoding it may need (estimated from its header)",
                "required": ["max_upload_bytes", "max_pixels", "max_aspect", "max_decode_bytes"],
                "properties": {"max_upload_bytes": {"type": "integer"}, "max_pixels": {"type": "integer"},
                               "max_aspect": {"type": "number"}, "max_decode_bytes": {"type": "integer"}},
            },
        },
    },
    # The answer itself (braintumor.inference.answer: the same in the API, predict --json, the CSV and the
    # PDF) and what the API adds to it: the pictures, the model, the image's size, id and timings.
    **ANSWER_SCHEMAS,
    "Prediction": {"allOf": [{"$ref": "#/components/schemas/Answer"}, {
        "type": "object",
        "required": ["gradcam", "original", "model", "timing_ms", "image_size"],
        "properties": {
            "gradcam": {**DATA_URL, "nullable": True,
                        "description": "PNG of the heat map over the scan; null when explain=false or "
                                       "overlay=false, and for an image not analysed"},
            "original": {**DATA_URL, "description": "PNG of the scan as shown beside the heat map"},
            "heatmap_png": {**DATA_URL,
                            "description": "with explain and overlay=false: the heat map alone, 8-bit grey "
                                           "PNG at the size of 'original' (0: nothing, 255: the strongest); "
                                           "the page colours it with the jet colour map and lays it over "
                                           "the scan half and half, as 'gradcam' would show it"},
            "model": {"$ref": "#/components/schemas/ModelSummary"},
            "timing_ms": {
                "type": "object",
                "description": "milliseconds on the server: preprocess = reading and decoding the upload; "
                               "predict = the model call (the forward pass; with explain on, also the heat "
                               "map, computed from the same forward pass's features, and its overlay; with "
                               "similar, the similar-case search); encode = turning the images into PNG "
                               "data URLs and the answer into plain values; total = the whole request",
                "required": ["preprocess", "predict", "encode", "total"],
                "properties": {k: {"type": "number", "minimum": 0}
                               for k in ("preprocess", "predict", "encode", "total")},
            },
            "image_size": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2,
                           "maxItems": 2, "description": "width and height of the image as uploaded"},
            "id": {"type": "string", "description": "this answer's id, for POST /api/feedback"},
            "cam_caption": {"type": "string", "description": "what the heat map shows"},
        },
        "additionalProperties": True,
    }]},
}

SCHEMAS["Samples"] = {
    "type": "object",
    "required": ["samples", "source"],
    "properties": {
        "samples": {"type": "array", "items": {
            "type": "object", "required": ["label", "name", "url"],
            "properties": {"label": {"type": "string", "enum": list(CLASSES)}, "name": {"type": "string"},
                           "url": {"type": "string"}}}},
        "source": {"type": "string"},
    },
}

SCHEMAS["FeedbackForm"] = {
    "type": "object",
    "required": ["id", "label"],
    "properties": {
        "id": {"type": "string", "description": "the id of the answer being corrected"},
        "label": {"type": "string", "enum": list(CLASSES), "description": "the class the scan really shows"},
        "comment": {"type": "string", "maxLength": 2000},
        "keep_image": {"type": "boolean", "default": False,
                       "description": "keep the scan's pixels to improve the model (consent)"},
        "file": {"type": "string", "format": "binary", "description": "the same scan, only with keep_image"},
    },
}

PREDICT_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "JPEG, PNG, BMP, TIFF, DICOM or NIfTI; at most 16 MB and 16 megapixels, "
                                "one side at most 20 times the other, one frame"},
        "explain": {"type": "boolean", "default": True, "description": "compute the Grad-CAM heat map"},
        "overlay": {"type": "boolean", "default": True,
                    "description": "with explain: also draw the heat map over the scan ('gradcam', a PNG); "
                                   "false sends only 'heatmap_png' for the client to colour (faster)"},
        "cam_method": {"type": "string", "default": DEFAULT_CAM_METHOD, "enum": list(CAM_METHODS)},
        "tta": {"type": "boolean", "default": False,
                "description": "test-time augmentation: average the probabilities over six views of the "
                               "network's input (the image, its mirror image, and four copies shifted by 4% "
                               "of its side up, down, left and right); the heat map stays that of the image"},
        "slice": {"type": "integer",
                  "description": "slice of a NIfTI volume or frame of a DICOM file (default: the middle one)"},
        "similar": {"type": "integer", "minimum": 0, "maximum": 20, "default": 0,
                    "description": "also answer the K most similar indexed scans (where the server has an index)"},
        "raw": {"type": "boolean", "default": False,
                "description": "also answer 'raw_probabilities': the model's calibrated probabilities as "
                               "computed, even for an image not analysed (for scripts; not an answer)"},
    },
}

GET_ERRORS = {"405": _error("method not allowed")}
# Every POST: refused from another site or for a host this server does not answer for, or (the
# heavy ones) when the queue is full.
POST_ERRORS = {
    "403": _error("a cross-site request (Origin, Referer or Sec-Fetch-Site of another site), or a Host "
                  "this server does not answer for"),
    "405": _error("method not allowed"),
    "500": _error("an unexpected failure (no details are given)"),
}
BUSY = {"503": {**_error("the server is busy: every worker is analysing a scan and the queue is full; "
                         "try again after Retry-After seconds"),
                "headers": {"Retry-After": {"schema": {"type": "integer"},
                                            "description": "seconds to wait before trying again"}}}}
UPLOAD_ERRORS = {
    "400": _error("missing field, bad field value, empty or damaged image, over the pixel, aspect or "
                  "memory limit (see /api/model limits)"),
    "413": _error("the upload is over 16 MB, or a text field is over 256 KB, or the form has over 64 fields"),
    "415": _error("not an image this service reads, or an animated/multi-page one"),
}


def spec() -> dict:
    """The OpenAPI document (a fresh dict each call)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "braintumor",
            "version": __version__,
            "description": "Brain MRI slice classification (glioma, meningioma, notumor, pituitary) "
                           "with Grad-CAM heat maps. For research and teaching, not for diagnosis.",
        },
        "paths": {
            "/": {"get": {
                "summary": "the drag-and-drop page",
                "responses": {"200": {"description": "HTML page", "content": {"text/html": {}}},
                              **GET_ERRORS},
            }},
            "/api/health": {"get": {
                "summary": "liveness: the service answers and its model is loaded",
                "responses": {"200": _json("the service is up", "Health"), **GET_ERRORS},
            }},
            "/api/model": {"get": {
                "summary": "the model served: classes, input size and its model card's figures",
                "responses": {"200": _json("the model", "ModelInfo"), **GET_ERRORS},
            }},
            "/api/openapi.json": {"get": {
                "summary": "this document",
                "responses": {"200": {"description": "OpenAPI 3.0 document",
                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                              **GET_ERRORS},
            }},
            "/api/predict": {"post": {
                "summary": "classify one MRI slice and explain the answer with a heat map",
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": PREDICT_FORM}}},
                "responses": {"200": _json("the answer", "Prediction"), **UPLOAD_ERRORS, **POST_ERRORS, **BUSY},
            }},
            "/api/report": {"post": {
                "summary": "the answer for one MRI slice as a one-page A4 PDF case report",
                "description": "The same form as /api/predict, plus 'title' (printed on the report; the "
                               "uploaded file's name is never printed unless given here).",
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "allOf": [PREDICT_FORM, {"type": "object", "properties": {
                        "title": {"type": "string", "maxLength": 120,
                                  "description": "a line printed under the heading"}}}]}}}},
                "responses": {"200": {"description": "the PDF", "content": {"application/pdf": {}}},
                              **UPLOAD_ERRORS, **POST_ERRORS, **BUSY},
            }},
            "/api/samples": {"get": {
                "summary": "the sample scans shipped with the package, with their true class",
                "responses": {"200": _json("the list", "Samples"), **GET_ERRORS},
            }},
            "/api/samples/{label}/{name}": {"get": {
                "summary": "one sample scan",
                "parameters": [{"name": "label", "in": "path", "required": True, "schema": {"type": "string"}},
                               {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the image",
                                      "content": {"image/jpeg": {}, "image/png": {}}},
                              "404": _error("no sample scan of that name"), **GET_ERRORS},
            }},
            "/api/feedback": {"post": {
                "summary": "correct an answer (only where the server runs with --feedback DB)",
                "description": "Stores the model, the predicted and the corrected class, the probabilities, "
                               "the comment and the SHA-256 of the uploaded file. The scan's pixels are kept "
                               "only with keep_image, and then the same file must be sent again in 'file' "
                               "(checked by its SHA-256). Answers are remembered for 24 hours.",
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {"$ref": "#/components/schemas/FeedbackForm"}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/FeedbackForm"}},
                }},
                "responses": {
                    "201": _json("stored (a later correction of the same answer replaces the earlier one)",
                                 "FeedbackStored"),
                    "400": _error("missing id or class, unknown class, bad keep_image, a different scan, "
                                  "JSON that is not one object or nests deeper than 16 levels"),
                    "404": _error("feedback is off on this server, or no recent answer has this id"),
                    "413": _error("the upload is over 16 MB, a text field over 256 KB, over 64 form fields, "
                                  "or a JSON body over 64 KB"),
                    **POST_ERRORS, **BUSY,
                },
            }},
            **study_paths(),
        },
        "components": {"schemas": SCHEMAS},
    }
