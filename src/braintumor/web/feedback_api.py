"""``POST /api/feedback``: a person's correction of an answer, stored only where the server was
started with a feedback database (``braintumor serve --feedback DB``).

The server remembers a summary of each recent answer (model, probabilities, the SHA-256 of the
uploaded bytes; never the image) under the answer's ``id``. A correction names that id, the right
class, an optional comment and ``keep_image``. With ``keep_image`` the page sends the scan again in
the same request; the server checks that its SHA-256 is the answer's, decodes it through the one
image reader and keeps only the pixels. Without it, no image is read and none is kept.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from ..inference import feedback as fb
from ..imaging import has_burned_in_text, load_image
from . import MAX_JSON_BYTES, MAX_JSON_DEPTH
from .state import current_predictor
from .forms import ApiError, file_name, text_field, truthy
from .work import run_heavy

FEEDBACK = "braintumor.feedback"  # key in app.extensions

bp = Blueprint("feedback", __name__, url_prefix="/api")


class FeedbackService:
    """The database path, one connection per request thread, and the recent answers."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        fb.connect(self.path).close()  # create or migrate now: a bad path fails at start-up
        self.answers = fb.RecentAnswers()
        self._local = threading.local()

    def connection(self):
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = fb.connect(self.path)
        return con


def init_app(app: Flask) -> None:
    path = app.config.get("FEEDBACK_DB")
    if path:
        app.extensions[FEEDBACK] = FeedbackService(path)
    app.register_blueprint(bp)


def service() -> FeedbackService | None:
    return current_app.extensions.get(FEEDBACK)


def remember(answer_id: str, p: Any, result: dict, image_sha256: str,
             slice_index: int | None = None) -> None:
    """Keep the summary of an answer for feedback (only where feedback is on)."""
    svc = service()
    if svc is None:
        return
    probs = {str(k): float(v) for k, v in result["probabilities"].items()}
    svc.answers.add(fb.Answer(answer_id=answer_id, model_name=str(p.name), model_version=str(p.version),
                              model_sha256=str(p.sha256), predicted=str(result["label"]),
                              decision=str(result.get("decision") or "classified"),
                              probabilities=probs, image_sha256=image_sha256, created=time.time(),
                              slice_index=slice_index))


@bp.post("/feedback")
def post_feedback() -> Response:
    svc = service()
    if svc is None:
        raise ApiError(404, "feedback is off on this server; start it with --feedback DB to collect it")
    form = json_form() if request.is_json else request.form
    answer_id = text_field("id", form.get("id"))
    corrected = text_field("label", form.get("label")).lower()
    comment = text_field("comment", form.get("comment"))
    keep_image = truthy("keep_image", form.get("keep_image"))
    if not answer_id:
        raise ApiError(400, "no answer id: send the 'id' of the answer you correct")
    if not corrected:
        raise ApiError(400, "no class: send 'label', the class the scan really shows")
    answer = svc.answers.get(answer_id)
    if answer is None:
        raise ApiError(404, "no recent answer has this id (answers are remembered for 24 hours "
                            "and not across restarts); analyse the scan again")
    image = None
    if keep_image:
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "keep_image is true but no scan was sent: put it in the form field 'file'")
        data = upload.read()
        if fb.sha256_hex(data) != answer.image_sha256:
            raise ApiError(400, "the scan sent is not the one this answer was about")
        # decoding is heavy work: on a worker, under the service's budget
        image = run_heavy(load_image, data, file_name(upload.filename), answer.slice_index)
        if has_burned_in_text(image):
            raise ApiError(400, "this scan may show patient text drawn into its pixels (burned-in annotation "
                                "or a secondary capture), so its pixels are never kept; send the correction "
                                "with keep_image false")
    try:
        row = fb.record(svc.connection(), answer, corrected, comment, image, current_app_classes())
    except fb.FeedbackError as exc:
        raise ApiError(400, str(exc)) from None
    resp = jsonify(stored=True, feedback_id=row, image_kept=image is not None)
    resp.status_code = 201
    return resp


# Where a JSON text's strings begin and end: a quote not escaped. Backslashes are taken in
# pairs so that an escaped backslash before a quote is seen as one.
_QUOTE_OR_ESCAPE = re.compile(rb'\\.|"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(raw: bytes) -> int:
    """How deeply a JSON text nests its arrays and objects (brackets inside strings aside), in one
    pass that never backtracks: time linear in the body, whatever it holds."""
    depth = deepest = 0
    outside, start = True, 0
    for m in _QUOTE_OR_ESCAPE.finditer(raw):
        if m.group() != b'"':
            continue  # an escape: inside a string it hides the next character; outside it is invalid JSON
        if outside:  # brackets between the last string and this one
            for b in _BRACKET.finditer(raw, start, m.start()):
                depth += 1 if b.group() in (b"[", b"{") else -1
                deepest = max(deepest, depth)
        else:
            start = m.end()
        outside = not outside
    if outside:
        for b in _BRACKET.finditer(raw, start):
            depth += 1 if b.group() in (b"[", b"{") else -1
            deepest = max(deepest, depth)
    return deepest


def json_form() -> dict:
    """The JSON object of a correction, its size and nesting checked before it is parsed."""
    if (request.content_length or 0) > MAX_JSON_BYTES:
        raise ApiError(413, f"the JSON body is over {MAX_JSON_BYTES // 1024} KB; a correction is an id, "
                            "a label, a comment of at most 2,000 characters and keep_image")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_JSON_BYTES:  # a body without a declared length
        raise ApiError(413, f"the JSON body is over {MAX_JSON_BYTES // 1024} KB")
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels; send one flat object: "
                            "id, label, comment and keep_image")
    try:
        form = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "the body is not valid JSON; send a JSON object with id, label, comment and "
                            "keep_image") from None
    if not isinstance(form, dict):
        raise ApiError(400, "the body is not a JSON object; send id, label, comment and keep_image")
    return form


def current_app_classes() -> list[str]:
    return list(current_predictor().classes)
