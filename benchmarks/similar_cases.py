"""Similar cases on the leakage-free split: precision@5 and the near-copy flag.

The index holds the split's training images (embedded by the model, as ``braintumor index`` does);
the queries are:

- the validation images: precision@5 (share of the 5 neighbours with the query's true class), for
  all of them and for those with no twin among the training images; and the near-copy flag against
  the audit's own answer (``dedup.cross_pairs`` at full precision between the validation and the
  training images: the split was drawn with an earlier descriptor, so some validation slices have
  a near twin, mostly the neighbouring slice of the same scan): recall and false flags;
- altered copies of training images (exact, JPEG quality 40, resized 0.6x, mirrored, all three): the
  flag's recall (the twin must be among the answers and flagged).

    python benchmarks/similar_cases.py [--model FILE] [--limit N]

Needs ``../shared/data/brain-tumor-mri/Training``; skips (exit 0, one line on stderr) where it is missing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import REPO, SPLIT, TRAINING, require  # noqa: E402


def alterations(gray: Image.Image) -> dict[str, Image.Image]:
    def jpeg(img: Image.Image, q: int = 40) -> Image.Image:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q)
        return Image.open(io.BytesIO(buf.getvalue())).convert("L")

    w, h = gray.size
    small = gray.resize((max(16, int(w * 0.6)), max(16, int(h * 0.6))), Image.BILINEAR)
    return {"exact": gray, "jpeg q40": jpeg(gray), "resized 0.6x": small, "mirrored": ImageOps.mirror(gray),
            "all three": jpeg(ImageOps.mirror(small))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(TRAINING))
    ap.add_argument("--split", default=str(SPLIT))
    ap.add_argument("--model", default=None)
    ap.add_argument("--copies", type=int, default=300, help="training images to alter (default 300)")
    ap.add_argument("--limit", type=int, default=0, help="at most N validation queries")
    ap.add_argument("--out", default=str(REPO / "runs" / "similar-cases"))
    args = ap.parse_args(argv)
    data = require(args.data, TRAINING, option="--data")

    from braintumor.data import progress
    from braintumor.imaging import load_image
    from braintumor.inference.predictor import Predictor
    from braintumor.inference.similar import build_index

    split = json.loads(Path(args.split).read_text())
    out = Path(args.out)
    (out / "train").mkdir(parents=True, exist_ok=True)
    for rel in split["train"]:  # the index's folder: links to the training images
        target = out / "train" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.symlink((data / rel).resolve(), target)
    p = Predictor.load(args.model)
    t0 = time.perf_counter()
    index_path = out / "train-index.safetensors"
    if not index_path.is_file():
        build_index(p, out / "train", p.classes).save(index_path)
    p.attach_index(index_path)
    index_s = time.perf_counter() - t0

    val = split["val"][: args.limit] if args.limit else split["val"]
    from braintumor.dedup import cross_pairs, fingerprint_files

    fp_val = fingerprint_files([data / r for r in val])
    fp_train = fingerprint_files([data / r for r in split["train"]])
    twins: dict[str, set[str]] = {}
    for i, j, _, _ in cross_pairs(fp_val, fp_train):
        twins.setdefault(val[i], set()).add(split["train"][j])
    hits, flags = [], []
    t0 = time.perf_counter()
    bar = progress(total=len(val), desc="validation queries")
    for rel in val:
        found = p.similar(data / rel, k=5)
        hits.append(np.mean([s["label"] == rel.split("/")[0] for s in found]))
        flags.append(any(s["near_copy"] for s in found))
        bar.update()
    bar.close()
    query_ms = 1000 * (time.perf_counter() - t0) / max(1, len(val))

    rng = np.random.default_rng(0)
    chosen = sorted(rng.choice(split["train"], min(args.copies, len(split["train"])), replace=False).tolist())
    recall: dict[str, list[bool]] = {}
    bar = progress(total=len(chosen), desc="altered copies")
    for rel in chosen:
        for kind, img in alterations(load_image(data / rel)).items():
            found = p.similar(img, k=5)
            recall.setdefault(kind, []).append(any(s["near_copy"] and s["id"] == rel for s in found))
        bar.update()
    bar.close()

    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "model": p.name, "sha256": p.sha256, "index_images": len(p.index),
        "index_file_mb": round(index_path.stat().st_size / 1e6, 1), "index_seconds": round(index_s, 1),
        "validation_queries": len(val), "precision_at_5": float(np.mean(hits)),
        "precision_at_5_by_class": {c: float(np.mean([h for h, r in zip(hits, val) if r.startswith(c + "/")]))
                                    for c in p.classes},
        "precision_at_5_no_twin": float(np.mean([h for h, r in zip(hits, val) if r not in twins])),
        "validation_with_a_training_twin": len(twins),
        "near_copy_recall_validation": float(np.mean([f for f, r in zip(flags, val) if r in twins])) if twins else None,
        "near_copy_false_flags": int(sum(f for f, r in zip(flags, val) if r not in twins)),
        "near_copy_false_flag_rate": float(np.mean([f for f, r in zip(flags, val) if r not in twins])),
        "near_copy_recall": {k: float(np.mean(v)) for k, v in recall.items()}, "copies": len(chosen),
        "ms_per_query": round(query_ms, 1),
    }
    (out / "similar_cases.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
