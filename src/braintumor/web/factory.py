"""The application factory: ``create_app`` builds the Flask app around one loaded Predictor."""

from __future__ import annotations

import io
import os
from typing import IO, Any

from flask import Flask, Request

from .. import limits
from . import EXTENSION, MAX_FIELD_BYTES, MAX_FORM_PARTS, MAX_UPLOAD_BYTES
from .state import current_predictor  # noqa: F401 (re-exported)


class InMemoryRequest(Request):
    """A request whose uploaded files live in memory.

    Werkzeug spools files over 500 KB to a temporary file; scans are medical data and stay in
    memory instead (the 16 MB request limit bounds the size)."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        return io.BytesIO()


def create_app(config: dict | None = None, predictor: Any = None) -> Flask:
    """Build the app. ``config`` entries override the defaults (``MODEL_PATHS``: None for the
    shipped model, or a list of checkpoints for an ensemble; ``FEEDBACK_DB``: a database file to
    collect corrections in, off by default; ``WORKERS``, ``QUEUE``: heavy requests at once and
    waiting, :mod:`braintumor.web.work`; ``ALLOWED_HOSTS``: host names posts may name,
    :mod:`braintumor.web.origin`); ``predictor`` skips loading."""
    app = Flask("braintumor.web")  # templates/ and static/ beside this file
    app.request_class = InMemoryRequest
    app.json.sort_keys = False  # keep answers in the documented order
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_FIELD_BYTES,  # one text field (a comment is at most 2,000 characters)
        MAX_FORM_PARTS=MAX_FORM_PARTS,
        MODEL_PATHS=None,
        FEEDBACK_DB=None,  # path of the SQLite feedback database; None: feedback is off
        BUDGET=limits.SERVICE,  # what decoding one upload may cost (braintumor.limits)
        WORKERS=None,  # None: the cores this process may use
        QUEUE=None,  # None: braintumor.web.work.DEFAULT_QUEUE
        ALLOWED_HOSTS=None,  # None: braintumor.web.origin.LOCAL_NAMES
    )
    if config:
        app.config.update(config)
    if predictor is None:
        from ..inference.predictor import Predictor

        paths = app.config["MODEL_PATHS"]
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        predictor = Predictor.load([str(p) for p in paths] if paths else None)
    # The Predictor keeps no per-call state and puts no hook on the shared network, so the
    # request threads call it side by side (measured faster than one call at a time on 2 cores).
    app.extensions[EXTENSION] = predictor

    from . import routes, study_api

    routes.init_app(app)
    study_api.init_app(app)
    return app
