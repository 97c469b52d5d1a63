"""The web app: a Flask JSON API and a drag-and-drop page, built by an application factory.

Nothing happens at import. ``create_app()`` loads the model once (or takes an injected
``Predictor``), registers the routes, the JSON error handlers and the security headers::

    from braintumor.web import create_app
    app = create_app({"MODEL_PATHS": ["runs/a/best.safetensors"]})

Uploads stay in memory: they are never written to disk and never logged beyond size and type.
"""

from __future__ import annotations

MAX_UPLOAD_BYTES = 16 * 1024 * 1024  # larger requests get 413
MAX_FIELD_BYTES = 256 * 1024  # a form's text field (not the file; over 2 x the parser's 64 KB reads); larger get 413
MAX_FORM_PARTS = 64  # fields in one form; more get 413
MAX_JSON_BYTES = 64 * 1024  # a JSON body (a correction); larger get 413
MAX_JSON_DEPTH = 16  # nesting of a JSON body; deeper get 400
EXTENSION = "braintumor"  # key of the Predictor in app.extensions

__all__ = ["EXTENSION", "MAX_UPLOAD_BYTES", "MAX_FIELD_BYTES", "MAX_FORM_PARTS", "MAX_JSON_BYTES",
           "MAX_JSON_DEPTH", "create_app", "current_predictor"]


def __getattr__(name: str):
    # Flask is imported on first use, so that ``braintumor --help`` stays quick.
    if name in ("create_app", "InMemoryRequest"):
        from . import factory

        return getattr(factory, name)
    if name == "current_predictor":
        from . import state

        return state.current_predictor
    raise AttributeError(f"module 'braintumor.web' has no attribute {name!r}")
