"""Similar cases and "seen before" on the model's own split: does the notice tell the truth?

    python benchmarks/similar_cases.py [--model FILE] [--index FILE] [--copies 300] [--limit N]

The index is the model's (the shipped one for the shipped model, or ``--index``, built by
``braintumor index ... --split model/split.json``: it knows which scans the model trained on).
Queries, each through ``Predictor.predict_batch(similar=5)``, the served path:

- the twelve sample scans shipped with the package (validation images): the notice must not fire;
- the validation images: precision@5 (share of the 5 neighbours with the query's class), and how
  often each notice fires on those with **no training image within pixel correlation 0.90** (the
  largest Pearson correlation of the 64 x 64 grey image, or its mirror image, with any training
  image): the same-picture notice ("near copy") must fire on at most 2% of them;
- 300 training images sent again exact, re-encoded (JPEG quality 40), resized (0.6x), mirrored and
  all three: the same-picture notice must fire on at least 95% of the exact and re-encoded copies.

Needs ``../shared/data/brain-tumor-mri/Training``; skips (exit 0, one line on stderr) where it is missing.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import REPO, SPLIT, TRAINING, require  # noqa: E402

CORRELATION = 0.90  # "no training image within correlation 0.90"


def alterations(gray: Image.Image) -> dict[str, Image.Image]:
    def jpeg(img: Image.Image, q: int = 40) -> Image.Image:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q)
        return Image.open(io.BytesIO(buf.getvalue())).convert("L")

    w, h = gray.size
    small = gray.resize((max(16, int(w * 0.6)), max(16, int(h * 0.6))), Image.BILINEAR)
    return {"exact": gray, "jpeg q40": jpeg(gray), "resized 0.6x": small, "mirrored": ImageOps.mirror(gray),
            "all three": jpeg(ImageOps.mirror(small))}


def pixels64(gray: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The image at 64 x 64, centred and scaled to unit length, and the same of its mirror image."""
    def unit(img):
        a = np.asarray(img.resize((64, 64), Image.BILINEAR), dtype=np.float32).ravel()
        a = a - a.mean()
        return a / max(float(np.linalg.norm(a)), 1e-6)

    return unit(gray), unit(ImageOps.mirror(gray))


def notices(results: list[dict]) -> dict[str, float]:
    n = max(len(results), 1)
    return {"same picture": sum(r.get("seen_before") == "same picture" for r in results) / n,
            "neighbouring slice": sum(r.get("seen_before") == "neighbouring slice" for r in results) / n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(TRAINING))
    ap.add_argument("--split", default=str(SPLIT))
    ap.add_argument("--model", default=None)
    ap.add_argument("--index", default=None, help="the index to use (default: the shipped model's)")
    ap.add_argument("--copies", type=int, default=300, help="training images to alter (default 300)")
    ap.add_argument("--limit", type=int, default=0, help="at most N validation queries")
    args = ap.parse_args(argv)
    data = require(args.data, TRAINING, option="--data")

    from braintumor.imaging import load_image
    from braintumor.inference.predictor import Predictor

    split = json.loads(Path(args.split).read_text())
    p = Predictor.load(args.model)
    if args.index:
        p.attach_index(args.index)
    if p.index is None:
        print("no similar-case index for this model: braintumor index DIR --split FILE --out FILE, then --index FILE")
        return 1
    print(f"model {p.name} {p.version}; index of {len(p.index)} scans, {int(p.index.trained.sum())} trained on",
          flush=True)

    samples = sorted((REPO / "tests" / "data" / "sample").rglob("*.jpg"))
    rs = p.predict_batch(samples, similar=5)
    fired = ", ".join(f"{s.name}: {r['seen_before']}" for s, r in zip(samples, rs) if r.get("seen_before"))
    print(f"\nthe {len(samples)} sample scans: notices {notices(rs)} ({fired or 'none'})")

    train = [load_image(data / r) for r in split["train"]]
    tp = np.stack([pixels64(g)[0] for g in train])
    val_rels = split["val"][: args.limit] if args.limit else split["val"]
    t0 = time.perf_counter()
    results = p.predict_batch([data / r for r in val_rels], similar=5)
    ms = 1000 * (time.perf_counter() - t0) / max(len(val_rels), 1)
    free = []
    for rel in val_rels:
        a, m = pixels64(load_image(data / rel))
        free.append(float(np.maximum(tp @ a, tp @ m).max()) < CORRELATION)
    free = np.array(free)
    hits = [np.mean([s["label"] == rel.split("/")[0] for s in r["similar"]]) if r["similar"] else np.nan
            for rel, r in zip(val_rels, results)]
    print(f"\n{len(val_rels)} validation scans: precision@5 {np.nanmean(hits):.3f} (rejected scans have none); "
          f"{int(free.sum())} have no training image within correlation {CORRELATION}")
    on_free = [r for r, f in zip(results, free) if f]
    on_rest = [r for r, f in zip(results, free) if not f]
    print(f"  notices on those {int(free.sum())} (target: same picture at most 2%): "
          + ", ".join(f"{k} {100 * v:.1f}%" for k, v in notices(on_free).items()))
    print(f"  notices on the other {len(on_rest)}: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in notices(on_rest).items()))

    rng = np.random.default_rng(0)
    chosen = sorted(rng.choice(len(split["train"]), min(args.copies, len(split["train"])), replace=False).tolist())
    copies: dict[str, list[Image.Image]] = {}
    for i in chosen:
        for kind, img in alterations(train[i]).items():
            copies.setdefault(kind, []).append(img)
    print(f"\n{len(chosen)} training images sent again (target: same-picture notice on at least 95% of exact "
          "and re-encoded copies):")
    for kind, imgs in copies.items():
        rs = p.predict_batch(imgs, similar=5)
        found = [any(s["match"] == "same picture" and s["id"] == split["train"][i] for s in r["similar"])
                 for i, r in zip(chosen, rs)]
        print(f"  {kind:<14} same-picture notice {100 * notices(rs)['same picture']:5.1f}%, "
              f"neighbouring-slice notice {100 * notices(rs)['neighbouring slice']:5.1f}%, "
              f"the image itself found {100 * np.mean(found):5.1f}%", flush=True)
    print(f"\n{ms:.0f} ms a validation query (prediction and search, batches of 32)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
