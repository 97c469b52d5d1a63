"""The example answers in docs/predict.md, from a real run of the shipped model through the web API.

    python scripts/doc_examples.py           # rewrite the examples in docs/predict.md
    python scripts/doc_examples.py --check   # exit 1 when they differ from what the service answers now

Each example sits between ``<!-- example NAME -->`` and ``<!-- /example -->`` as a JSON block:
the answer of ``POST /api/predict`` for one input (the photograph's with ``raw=true``), with the images and the hash shortened and the
timings and the answer's id left out (they change on every run). ``tests/test_doc_examples.py``
checks that the documented answers are the service's; run this again after the model changes.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "predict.md"
SAMPLE = REPO / "tests" / "data" / "sample"
BLOCK = re.compile(r"<!-- example (?P<name>[\w-]+) -->\n```json\n(?P<body>.*?)\n```\n<!-- /example -->", re.S)


def inputs() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, file name) of each documented input."""
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        portrait = f.read()
    return {"glioma": ((SAMPLE / "glioma" / "Tr-gl_0118.jpg").read_bytes(), "scan.jpg"),
            "photograph": (portrait, "portrait.jpg")}


FIELDS = {"photograph": {"raw": "true"}}  # form fields beyond explain=false


def shorten(answer: dict) -> dict:
    """An answer as the docs show it: no timings, no real id, images and digests cut short, numbers rounded."""
    out = {}
    for k, v in answer.items():
        if k == "timing_ms":
            continue
        if k == "id":
            v = "(a new id for every answer)"
        if isinstance(v, str) and v.startswith("data:image/"):
            v = v[:30] + "..."
        out[k] = v
    out["model"] = {**answer["model"], "sha256": answer["model"]["sha256"][:12] + "..."}
    return json.loads(json.dumps(out), parse_float=lambda s: round(float(s), 4))


def answers(predictor=None) -> dict[str, dict]:
    """The service's answers now (the shipped model unless ``predictor``), shortened."""
    from braintumor.inference.predictor import Predictor
    from braintumor.web import create_app

    client = create_app(predictor=predictor or Predictor.load()).test_client()
    out = {}
    for name, (data, filename) in inputs().items():
        r = client.post("/api/predict", data={"file": (io.BytesIO(data), filename), "explain": "false",
                                              **FIELDS.get(name, {})},
                        content_type="multipart/form-data")
        out[name] = shorten(r.get_json())
    return out


def documented(text: str | None = None) -> dict[str, dict]:
    return {m["name"]: json.loads(m["body"]) for m in BLOCK.finditer(text or DOC.read_text())}


def write(found: dict[str, dict]) -> None:
    def block(m):
        return (f"<!-- example {m['name']} -->\n```json\n{json.dumps(found[m['name']], indent=2)}\n```\n"
                "<!-- /example -->")

    DOC.write_text(BLOCK.sub(block, DOC.read_text()))


def main() -> int:
    now = answers()
    if "--check" in sys.argv:
        same = documented() == now
        print("docs/predict.md's examples are the service's answers" if same else
              "docs/predict.md's examples differ: run python scripts/doc_examples.py")
        return 0 if same else 1
    write(now)
    print(f"wrote {len(now)} examples into {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
