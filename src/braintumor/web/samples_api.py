"""The scans shipped with the package, for "Try a sample scan": ``GET /api/samples`` lists them with
their true class, ``GET /api/samples/<class>/<name>`` sends one. Only names in that list are served
(nothing else on the disk can be reached through these routes)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Response, jsonify, send_file

from .forms import ApiError

bp = Blueprint("samples", __name__, url_prefix="/api")
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample"
MIMETYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


@lru_cache(maxsize=1)
def catalogue() -> dict[tuple[str, str], Path]:
    """(class, file name) -> path of every shipped sample scan."""
    out = {}
    for path in sorted(SAMPLE_DIR.glob("*/*")):
        if path.suffix.lower() in MIMETYPES and path.is_file():
            out[(path.parent.name, path.name)] = path
    return out


@bp.get("/samples")
def list_samples() -> Response:
    items = [{"label": label, "name": name, "url": f"api/samples/{label}/{name}"}
             for (label, name) in catalogue()]
    return jsonify(samples=items, source="Brain Tumor MRI Dataset (Masoud Nickparvar), CC0-1.0")


@bp.get("/samples/<label>/<name>")
def sample(label: str, name: str) -> Response:
    path = catalogue().get((label, name))
    if path is None:
        raise ApiError(404, "there is no sample scan of that name; GET /api/samples lists them")
    return send_file(path, mimetype=MIMETYPES[path.suffix.lower()], max_age=3600)
