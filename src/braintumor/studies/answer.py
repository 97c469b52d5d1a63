"""Every slice of every series answered, and what the slices say together.

Each series' slices go through the predictor in batches (``Predictor.predict_batch``, the code
every answer runs). Per series: each slice's answer in anatomical order, the slices that show each
class (:func:`braintumor.inference.volume` ranges such as ``"3-5, 9"``), the most suspicious slices first
(highest probability of a tumour of any kind), and one answer with its reason. The study's answer is
that of its most telling series: a tumour before an uncertain series, before no tumour, before a
series that could not be analysed.

Nothing from a file's header is in an answer but a slice's InstanceNumber, its position along the
slice normal in millimetres, and a series' modality and SeriesNumber; no name, ID, date, UID or
file path.
"""

from __future__ import annotations

from typing import Any


from ..inference.volume import _ranges
from .series import Series, Study

BATCH = 32
MOST_SUSPICIOUS = 5  # slices listed first in a series' answer
NOTICE = "For research and teaching, not for diagnosis."
KEPT = ("headline", "label", "confidence", "probabilities", "decision", "reason", "prediction_set")
RANK = {"tumour": 3, "uncertain": 2, "notumor": 1, "not analysed": 0}


def _no_tumour() -> str:
    from ..inference.decision import NO_TUMOUR

    return NO_TUMOUR


def _name(label: str) -> str:
    from ..inference.decision import headline

    return headline({"label": label, "decision": "classified"})


def stored_box(box: list | None, image_size: tuple[int, int], rows: int, cols: int) -> list[float] | None:
    """A box in pixels of the image the model saw (square pixels) in pixels of the stored image
    (its rows and columns), as [x0, y0, x1, y1]."""
    if box is None:
        return None
    w, h = image_size
    sx, sy = cols / w, rows / h
    x0, y0, x1, y1 = (float(v) for v in box)
    return [round(min(max(x0 * sx, 0.0), cols), 1), round(min(max(y0 * sy, 0.0), rows), 1),
            round(min(max(x1 * sx, 0.0), cols), 1), round(min(max(y1 * sy, 0.0), rows), 1)]


def _slice_answer(index: int, s: Any, r: dict) -> dict:
    out: dict[str, Any] = {"index": index}
    if s.instance_number is not None:
        out["instance_number"] = s.instance_number
    if s.frame is not None:
        out["frame"] = s.frame
    if s.position is not None:
        out["position_mm"] = round(s.position, 2)
    out["blank"] = len(set(s.image.getextrema())) == 1
    if "error" in r:
        out["error"] = r["error"]
        return out
    out.update({k: r[k] for k in KEPT if k in r})
    out["box"] = stored_box(r.get("box"), s.image.size, s.rows, s.cols)
    if r.get("burned_in_text"):
        out["burned_in_text"] = True
    return out


def _tumour_probability(a: dict) -> float:
    return 1.0 - float(a["probabilities"].get(_no_tumour(), 0.0))


def summarise(slices: list[dict], classes: list[str]) -> dict:
    """What a series' slice answers say together: ``analysed`` (slices answered, neither blank nor
    refused), ``summary`` (class -> the classified slices showing it) with ``summary_text``,
    ``uncertain``, ``not_analysed``, ``blank``, ``most_suspicious`` and ``answer``
    (``headline``, ``label``, ``decision``, ``reason``)."""
    blank = [a["index"] for a in slices if a["blank"]]
    not_analysed = [a["index"] for a in slices if not a["blank"] and ("error" in a or a["decision"] == "rejected")]
    analysed = [a for a in slices if not a["blank"] and "error" not in a and a["decision"] != "rejected"]
    summary = {c: [a["index"] for a in analysed if a["decision"] == "classified" and a["label"] == c]
               for c in classes}
    uncertain = [a["index"] for a in analysed if a["decision"] == "uncertain"]
    ranked = sorted(analysed, key=lambda a: (-_tumour_probability(a), a["index"]))
    most = [{"index": a["index"], "headline": a["headline"], "label": a["label"],
             "tumour_probability": round(_tumour_probability(a), 4)} for a in ranked[:MOST_SUSPICIOUS]]
    return {
        "analysed": len(analysed),
        "summary": summary,
        "summary_text": {c: _ranges(ix) for c, ix in summary.items() if ix},
        "uncertain": uncertain,
        "not_analysed": not_analysed,
        "blank": blank,
        "most_suspicious": most,
        "answer": _series_answer(analysed, summary, uncertain, not_analysed, blank, len(slices)),
    }


def _series_answer(analysed: list[dict], summary: dict, uncertain: list[int], not_analysed: list[int],
                   blank: list[int], total: int) -> dict:
    none = _no_tumour()
    tumours = {c: ix for c, ix in summary.items() if c != none and ix}
    by_index = {a["index"]: a for a in analysed}
    if tumours:
        best = max(tumours, key=lambda c: (len(tumours[c]), max(by_index[i]["confidence"] for i in tumours[c])))
        top = max(tumours[best], key=lambda i: by_index[i]["confidence"])
        reason = (f"{_name(best)} on {len(tumours[best])} of {len(analysed)} analysed slices "
                  f"({_ranges(tumours[best])}); most confident on slice {top} "
                  f"({by_index[top]['confidence']:.0%})")
        others = [f"{_name(c)} on {_ranges(ix)}" for c, ix in tumours.items() if c != best]
        if others:
            reason += "; also " + ", ".join(others)
        return {"headline": _name(best), "label": best, "decision": "classified", "kind": "tumour",
                "reason": reason + "."}
    suspect = [i for i in uncertain if set(by_index[i].get("prediction_set") or []) - {none}]
    if suspect:
        classes = sorted({c for i in suspect for c in by_index[i]["prediction_set"] if c != none})
        return {"headline": "Uncertain: refer", "label": None, "decision": "uncertain", "kind": "uncertain",
                "reason": (f"No slice is classified as a tumour, but {len(suspect)} of {len(analysed)} analysed "
                           f"slices ({_ranges(suspect)}) could show {' or '.join(_name(c) for c in classes)}; "
                           "have the series read by a radiologist.")}
    if analysed:
        note = f"; {len(uncertain)} uncertain" if uncertain else ""
        return {"headline": _name(none), "label": none, "decision": "classified" if not uncertain else "uncertain",
                "kind": "notumor",
                "reason": f"No tumour on any of the {len(analysed)} analysed slices{note}."}
    return {"headline": "Not analysed", "label": None, "decision": "rejected", "kind": "not analysed",
            "reason": (f"None of the {total} slices could be analysed: {len(blank)} blank, "
                       f"{len(not_analysed)} refused by the image checks (not a brain MRI slice the model "
                       "was made for).")}


def answer_series(predictor: Any, series: Series, number: int, batch_size: int = BATCH,
                  tta: bool = False) -> dict:
    """One series' answer (see the module's description); ``number`` is its place in the study."""
    images = [s.image for s in series.slices]
    results = predictor.predict_batch(images, batch_size=batch_size, tta=tta, errors="return")
    slices = [_slice_answer(i, s, r) for i, (s, r) in enumerate(zip(series.slices, results))]
    classes = list(predictor.classes)
    out: dict[str, Any] = {"series": number, "kind": series.kind}
    if series.modality:
        out["modality"] = series.modality
    if series.series_number is not None:
        out["series_number"] = series.series_number
    out["n_slices"] = len(slices)
    out["ordering"] = series.ordering
    out.update(summarise(slices, classes))
    out["slices"] = slices
    return out


def study_answer(series: list[dict]) -> dict:
    """The study's answer: that of its most telling series, with which series it is."""
    best = max(series, key=lambda s: (RANK[s["answer"]["kind"]], -s["series"]))
    answer = dict(best["answer"])
    others = [s["series"] for s in series if s is not best and RANK[s["answer"]["kind"]] == RANK[answer["kind"]]]
    where = f"Series {best['series']}" + (f" (and series {', '.join(map(str, others))})" if others else "")
    answer["series"] = best["series"]
    answer["reason"] = f"{where}: {answer['reason']}"
    return answer


def model_summary(predictor: Any) -> dict:
    return {"name": predictor.name, "version": str(predictor.version), "sha256": predictor.sha256}


def answer_study(predictor: Any, study: Study, batch_size: int = BATCH, tta: bool = False) -> dict:
    """The answer to a whole study: ``model``, ``answer`` (the study's), ``series`` (each series'
    answer, its slices in anatomical order), ``skipped`` (files left out, counted by reason) and
    ``notice``."""
    series = [answer_series(predictor, s, n, batch_size, tta) for n, s in enumerate(study.series, 1)]
    return {
        "model": model_summary(predictor),
        "answer": study_answer(series),
        "n_series": len(series),
        "n_slices": sum(s["n_slices"] for s in series),
        "series": series,
        "skipped": [{"reason": r, "files": n} for r, n in study.skipped.items()],
        "notice": NOTICE,
    }


__all__ = ["answer_study", "answer_series", "summarise", "study_answer", "stored_box", "NOTICE"]
