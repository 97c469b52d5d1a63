"""The example answers in docs/predict.md are what the service answers now (scripts/doc_examples.py
writes them from a real run; rerun it after the model changes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "doc_examples.py"


@pytest.fixture(scope="module")
def examples():
    spec = importlib.util.spec_from_file_location("doc_examples", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_show_the_answers_the_service_gives(examples):
    shown = examples.documented()
    assert set(shown) == {"glioma", "photograph"}
    now = examples.answers()
    for name, answer in now.items():
        doc = shown[name]
        assert set(doc) == set(answer), name  # every field the service sends, and no other
        for key in ("label", "confidence", "decision", "headline", "reason", "prediction_set", "box", "could_be",
                    "rejection", "probabilities", "predictions"):
            assert (doc.get(key) is None) == (answer.get(key) is None), (name, key)
        for key in ("label", "decision", "headline", "reason", "prediction_set", "box", "could_be", "rejection"):
            assert doc.get(key) == answer.get(key), (name, key)
        for a, b in zip(doc["predictions"] or [], answer["predictions"] or []):
            assert a["label"] == b["label"] and a["probability"] == pytest.approx(b["probability"], abs=2e-3)
        for key in ("probabilities", "raw_probabilities"):
            assert (doc.get(key) or {}) == pytest.approx(answer.get(key) or {}, abs=2e-3), (name, key)
    assert shown["glioma"]["decision"] == "classified" and shown["photograph"]["decision"] == "rejected"
    assert {"decision", "reason", "box", "headline", "id"} <= set(shown["glioma"])
    rejected = shown["photograph"]  # not analysed: no class, confidence or probabilities, raw ones on request
    assert rejected["label"] is None and rejected["confidence"] is None and rejected["probabilities"] is None
    assert set(rejected["raw_probabilities"]) == {"glioma", "meningioma", "notumor", "pituitary"}
