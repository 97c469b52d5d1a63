"""The answer object: what the JSON API, ``predict --json``, the CSV, the PDF report and the page
say about one scan, described once (:data:`SCHEMAS`, referenced by the OpenAPI document).

Every answer leads with ``headline`` ("Glioma", "Uncertain: refer" or "Not analysed"), then
``decision`` and ``reason``, then (uncertain answers) ``could_be``, the classes it could be in words.

An image **not analysed** (``decision: "rejected"``: the out-of-distribution gate refused it) was not
judged, so it has no class, no confidence and no probabilities: ``label``, ``confidence``,
``probabilities``, ``predictions``, ``box`` and ``box_score`` are ``null`` in JSON and blank in CSV,
and it carries no heat-map target, no similar cases and no votes. A script that wants what the
network computed anyway asks for it (``raw=true`` on the API, ``--raw`` on the command line) and gets
``raw_probabilities``: the model's calibrated probabilities for every image, rejected ones
included, named raw because they are not an answer.

Nothing here imports PyTorch or Flask.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

from ..cam_methods import CAM_METHODS
from ..config import CLASSES
from .decision import could_be, headline

# What an image not analysed never carries: null in JSON, blank in CSV.
NOT_JUDGED = ("label", "confidence", "probabilities", "predictions", "box", "box_score")
# ... and what it leaves out altogether: what explains or supports a class it was never given.
LEFT_OUT_WHEN_REJECTED = ("target", "cam_method", "cam_caption", "members", "agreement", "similar",
                          "near_copy", "seen_before", "seen_before_notice")
# The Predictor's pictures and arrays: not part of an answer.
PICTURES = ("heatmap", "heatmap_input", "overlay")
LEAD = ("headline", "decision", "reason", "could_be")


def answer(result: dict, classes: Sequence[str], raw: bool = False) -> dict:
    """The answer object of one Predictor result (``predict`` or ``explain``), keys in reading order:
    what it leads with, then the class and the probabilities (null when not analysed), then the rest
    the Predictor gave. ``raw`` adds ``raw_probabilities``."""
    decision = result.get("decision", "classified")
    rejected = decision == "rejected"
    probs = result.get("probabilities") or {}
    out: dict[str, Any] = {"headline": headline(result), "decision": decision, "reason": str(result.get("reason", ""))}
    if could_be(result):
        out["could_be"] = could_be(result)
    out["prediction_set"] = [str(c) for c in result.get("prediction_set", [])]
    if rejected:
        out.update(dict.fromkeys(NOT_JUDGED))
    else:
        out["label"] = str(result["label"])
        out["confidence"] = float(result["confidence"])
        out["probabilities"] = {str(c): float(probs[c]) for c in classes}
        out["predictions"] = [{"label": str(c), "probability": float(probs[c])} for c in classes]
        out["box"] = result.get("box")
        out["box_score"] = result.get("box_score")
    if raw:
        out["raw_probabilities"] = {str(c): float(probs[c]) for c in classes}
    skip = set(out) | set(PICTURES) | {"probabilities"} | (set(LEFT_OUT_WHEN_REJECTED) if rejected else set())
    for key, value in result.items():
        if key not in skip:
            out[key] = value
    return out


# --------------------------------------------------------------------------------------- CSV


def csv_columns(classes: Sequence[str], raw: bool = False) -> list[str]:
    """The CSV's header: file, headline, decision and reason lead; ``raw_<class>`` with ``raw``."""
    return ["file", *LEAD, "label", "confidence", *classes, "prediction_set", "rejection",
            "box_x0", "box_y0", "box_x1", "box_y1", "box_score", *(f"raw_{c}" for c in classes if raw), "error"]


def _number(value: Any, digits: int = 6) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def csv_row(a: dict, classes: Sequence[str], raw: bool = False) -> list[str]:
    """One answer (``answer()`` with its ``file``) as a CSV row of :func:`csv_columns`: blank where
    the answer has null."""
    probs = a.get("probabilities") or {}
    raws = a.get("raw_probabilities") or {}
    return [a["file"], *(a.get(k) or "" for k in LEAD), a.get("label") or "", _number(a.get("confidence")),
            *(_number(probs.get(c)) for c in classes), " ".join(a.get("prediction_set", [])),
            a.get("rejection") or "", *(str(v) for v in (a.get("box") or [""] * 4)), _number(a.get("box_score")),
            *(_number(raws.get(c)) for c in classes if raw), ""]


def error_row(file: str, error: str, classes: Sequence[str], raw: bool = False) -> list[str]:
    columns = csv_columns(classes, raw)
    return [file, *([""] * (len(columns) - 2)), error]


def from_csv_row(row: dict, classes: Sequence[str]) -> dict:
    """A CSV row read back (``csv.DictReader``) as the answer fields it holds: blank is null. What
    the tests validate against the schema, and a script may use."""
    def num(key):
        return float(row[key]) if row.get(key) else None

    out: dict[str, Any] = {k: row[k] for k in ("file", *LEAD) if row.get(k)}
    out["prediction_set"] = row["prediction_set"].split()
    out["label"] = row["label"] or None
    out["confidence"] = num("confidence")
    out["probabilities"] = {c: num(c) for c in classes} if row.get(classes[0]) else None
    out["predictions"] = ([{"label": c, "probability": p} for c, p in out["probabilities"].items()]
                          if out["probabilities"] else None)  # the same numbers as a list, as in JSON
    box = [row[f"box_{k}"] for k in ("x0", "y0", "x1", "y1")]
    out["box"] = [int(v) for v in box] if all(box) else None
    out["box_score"] = num("box_score")
    if row.get("rejection"):
        out["rejection"] = row["rejection"]
    if row.get(f"raw_{classes[0]}"):
        out["raw_probabilities"] = {c: num(f"raw_{c}") for c in classes}
    return out


# ----------------------------------------------------------------------------------- schema

NUMBER_0_1 = {"type": "number", "minimum": 0, "maximum": 1}
NULL = {"nullable": True, "enum": [None], "description": "null: an image not analysed was not judged"}


def _probabilities(description: str) -> dict:
    return {"type": "object", "description": description, "required": list(CLASSES),
            "properties": {c: NUMBER_0_1 for c in CLASSES}}


LEADING = {
    "file": {"type": "string", "description": "predict only: the file as named on the command line (or found "
                                              "in a folder named there)"},
    "headline": {"type": "string", "description": "what the answer leads with: the class (\"Glioma\"), "
                                                  "\"Uncertain: refer\" or \"Not analysed\""},
    "decision": {"type": "string", "enum": ["classified", "uncertain", "rejected"],
                 "description": "classified: one class fits; uncertain: refer to a radiologist; rejected: "
                                "the image was not analysed"},
    "reason": {"type": "string", "description": "why, in short sentences"},
    "could_be": {"type": "string", "description": "an uncertain answer: the classes it could be, in words"},
    "prediction_set": {"type": "array", "items": {"type": "string", "enum": list(CLASSES)},
                       "description": "the classes that cannot be ruled out, most probable first (conformal "
                                      "set); empty for an image not analysed"},
    "raw_probabilities": _probabilities(
        "only when asked for (raw=true, --raw): the model's calibrated probabilities as computed, also for "
        "an image not analysed; not an answer"),
    "ood_score": {"type": "number", "nullable": True,
                  "description": "the out-of-distribution gate's score (over 1: out of distribution); null "
                                 "where the model has no fitted gate"},
}

ANALYSED = {
    "type": "object",
    "description": "a classified or uncertain answer",
    "required": ["headline", "decision", "reason", "prediction_set", "label", "confidence", "probabilities",
                 "predictions", "box"],
    "properties": {
        **LEADING,
        "decision": {"type": "string", "enum": ["classified", "uncertain"]},
        "label": {"type": "string", "enum": list(CLASSES), "description": "the most likely class"},
        "confidence": {**NUMBER_0_1, "description": "its calibrated probability"},
        "probabilities": _probabilities("every class's calibrated probability, in class order"),
        "predictions": {
            "type": "array", "minItems": len(CLASSES), "maxItems": len(CLASSES),
            "description": "the same probabilities as a list, one entry per class in class order",
            "items": {"type": "object", "required": ["label", "probability"],
                      "properties": {"label": {"type": "string", "enum": list(CLASSES)},
                                     "probability": NUMBER_0_1}}},
        "box": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 4, "maxItems": 4,
                "nullable": True,
                "description": "the tumour's box [x0, y0, x1, y1] in pixels of the image as given; null "
                               "for no tumour or a model without a box head"},
        "box_score": {**NUMBER_0_1, "nullable": True,
                      "description": "the box head's confidence that a tumour centre is in the image"},
        "target": {"type": "string", "description": "the class the heat map explains (with a heat map)"},
        "cam_method": {"type": "string", "enum": list(CAM_METHODS),
                       "description": "the heat map method (with a heat map)"},
        "similar": {"type": "array", "description": "when asked for: the most similar indexed scans, most "
                                                    "similar first",
                    "items": {"type": "object", "required": ["id", "label", "similarity", "closeness", "trained",
                                                             "match", "near_copy"],
                              "properties": {"id": {"type": "string"}, "label": {"type": "string"},
                                             "similarity": {"type": "number"},
                                             "closeness": {"type": "integer", "minimum": 0, "maximum": 100,
                                                           "description": "the share of indexed scans (%) whose "
                                                           "own nearest other picture is less similar"},
                                             "trained": {"type": "boolean",
                                                         "description": "the model trained on this scan"},
                                             "match": {"type": "string", "nullable": True,
                                                       "enum": ["same picture", "neighbouring slice", None]},
                                             "near_copy": {"type": "boolean",
                                                           "description": "the same picture, and trained on"},
                                             "thumbnail": {"type": "string", "nullable": True}}}},
        "seen_before": {"type": "string", "nullable": True, "enum": ["same picture", "neighbouring slice", None],
                        "description": "with similar cases: the model trained on this picture, or on a scan "
                                       "with nearly the same view"},
        "seen_before_notice": {"type": "string", "description": "the notice that says so, in words"},
        "near_copy": {"type": "boolean", "description": "with similar cases: the model trained on this very "
                                                       "picture"},
        "members": {"type": "array", "description": "with several models: each model's vote",
                    "items": {"type": "object", "required": ["name", "label", "confidence"],
                              "properties": {"name": {"type": "string"}, "label": {"type": "string"},
                                             "confidence": NUMBER_0_1}}},
        "agreement": {"type": "integer", "minimum": 0,
                      "description": "how many of the models agree with the combined answer"},
        "burned_in_text": {"type": "boolean",
                           "description": "the DICOM file says patient text may be drawn into its pixels "
                                          "(BurnedInAnnotation YES, or a secondary capture); present only then"},
        "privacy_notice": {"type": "string",
                           "description": "with burned_in_text: the notice in words (the pixels are never "
                                          "kept with feedback or exported)"},
    },
    "additionalProperties": True,
}

REJECTED = {
    "type": "object",
    "description": "an image not analysed: no class, no confidence, no probabilities",
    "required": ["headline", "decision", "reason", "prediction_set", "rejection", *NOT_JUDGED],
    "properties": {
        **LEADING,
        "headline": {"type": "string", "enum": ["Not analysed"]},
        "decision": {"type": "string", "enum": ["rejected"]},
        "prediction_set": {"type": "array", "maxItems": 0},
        "rejection": {"type": "string", "description": "which check refused it (docs/ood.md)"},
        **{k: NULL for k in NOT_JUDGED},
        **{k: {**NULL, "description": "never given for an image not analysed"} for k in LEFT_OUT_WHEN_REJECTED
           if k not in ("cam_caption",)},
    },
    "additionalProperties": True,
}

# The schemas, OpenAPI 3.0 style; ``Answer`` is one of the two. The OpenAPI document
# (braintumor.web.openapi) holds them under components/schemas.
SCHEMAS = {"Answer": {"description": "one answer, the same in the API, predict --json, the CSV (blank for "
                                     "null) and the PDF report; it leads with headline, decision and reason",
                      "oneOf": [{"$ref": "#/components/schemas/AnalysedAnswer"},
                                {"$ref": "#/components/schemas/RejectedAnswer"}]},
           "AnalysedAnswer": ANALYSED, "RejectedAnswer": REJECTED}


def json_schema(name: str = "Answer") -> dict:
    """A schema of :data:`SCHEMAS` as plain JSON Schema (draft 2020-12): ``nullable`` becomes a
    ``null`` type and the references point into ``$defs``. What a client validates an answer with."""
    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(v) for v in node]
        if not isinstance(node, dict):
            return node
        node = {k: convert(v) for k, v in node.items()}
        if "$ref" in node:
            node["$ref"] = node["$ref"].replace("#/components/schemas/", "#/$defs/")
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        return node

    out = convert(copy.deepcopy(SCHEMAS[name]))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **out,
            "$defs": {k: convert(v) for k, v in SCHEMAS.items()}}
