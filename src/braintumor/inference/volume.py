"""Classifying every slice of a DICOM or NIfTI volume, with a summary of which slices look like
which class. The slices are read by :mod:`braintumor.medical`; the answers come from a predictor."""

from __future__ import annotations

from typing import Any

from ..medical import Source, read_source, read_volume

BATCH = 32  # slices per predict_batch call


def _ranges(indices: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    parts, start = [], None
    for a, b in zip(indices, indices[1:] + [None]):
        start = a if start is None else start
        if b != a + 1:
            parts.append(f"{start}-{a}" if a != start else str(a))
            start = None
    return ", ".join(parts)


def predict_volume(predictor: Any, source: Source, name: str | None = None, **options: Any) -> dict:
    """Classify every slice of a DICOM or NIfTI volume.

    ``predictor`` is anything with ``predict(image)`` (and, used when present, ``predict_batch``)
    returning ``{"label", "confidence", "probabilities"}``, such as :class:`braintumor.Predictor`;
    ``options`` (e.g. ``tta=True``) are passed on to it.
    Returns ``{"file", "n_slices", "slices": [{"index", "label", "confidence", "probabilities"}],
    "blank": [indices], "summary": {label: [indices]}, "summary_text": {label: "3-5, 9"}}``; slices
    that hold one value only (the air above the head) are listed in ``blank`` and left out of
    ``summary``. Nothing from the file's header is in it.
    """
    data, label = read_source(source, name)
    images = read_volume(data, label)
    blank = [i for i, im in enumerate(images) if len(set(im.getextrema())) == 1]
    batch = getattr(predictor, "predict_batch", None)
    results: list[dict] = []
    for start in range(0, len(images), BATCH):
        chunk = images[start : start + BATCH]
        if batch is not None:
            results.extend(batch(chunk, **options))
        else:
            results.extend(predictor.predict(im, **options) for im in chunk)
    classes = list(getattr(predictor, "classes", None) or results[0]["probabilities"])
    slices, summary = [], {c: [] for c in classes}
    for i, r in enumerate(results):
        slices.append({"index": i, "label": r["label"], "confidence": float(r["confidence"]),
                       "probabilities": {k: float(v) for k, v in r["probabilities"].items()}})
        if i not in blank:
            summary.setdefault(r["label"], []).append(i)
    return {
        "file": label,
        "n_slices": len(images),
        "slices": slices,
        "blank": blank,
        "summary": summary,
        "summary_text": {c: _ranges(ix) for c, ix in summary.items() if ix},
    }


__all__ = ["predict_volume", "BATCH"]
