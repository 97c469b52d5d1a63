"""What a request reads from the app it runs in: the Predictor the app serves."""

from __future__ import annotations

from typing import Any

from flask import current_app

from . import EXTENSION


def current_predictor() -> Any:
    """The Predictor the current app serves."""
    return current_app.extensions[EXTENSION]
