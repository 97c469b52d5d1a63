"""How well the audit's near-duplicate test finds altered copies, and how rarely it flags distinct images.

Recall: ``--n`` Training images are drawn at random; each gets one altered copy per kind
(re-encoded as JPEG at quality 30-90, resized 0.5x-2x, shifted 2-6 % with black padding, changed in
gain (0.7-1.3) and offset (-25..25), given a gamma curve (0.6-1.6), flipped left-right, and all of
these at once but gamma: flipped or not, resized, shifted, gain/offset, JPEG), written to a temporary folder and
audited against the Training folder, exactly as ``braintumor audit COPIES --against Training`` does.
A copy counts as flagged when it has any twin in Training, and as found when one of its twins is its
own source or a byte-identical copy of it.

False flags: pictures of one class are checked against the other three classes only. Apart from
label conflicts (which the audit reports as such and which are left out here when byte-identical),
an image of one class has nothing alike in the others: a different patient, usually a different
scan. Every image flagged there is a false flag. The script also prints how many flags a mixed
query set like the held-back Testing half would get, and how many of them would be false.

    python benchmarks/audit_quality.py [--data DIR] [--n 300] [--seed 0] [--threshold T]

Skips (exit 0, one line on stderr) when the Training folder is missing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import TRAINING, require  # noqa: E402

SAME_PICTURE = 0.99  # cross-class flags from here on were checked by eye: the same picture
KINDS = ("jpeg", "resize", "shift", "intensity", "gamma", "flip", "all")


# ---------------------------------------------------------------- alterations
def resize(img: Image.Image, factor: float, rng: np.random.Generator) -> Image.Image:
    method = [Image.BILINEAR, Image.BICUBIC, Image.LANCZOS, Image.BOX][int(rng.integers(4))]
    w, h = img.size
    return img.resize((max(16, round(w * factor)), max(16, round(h * factor))), method)


def shift(img: Image.Image, dx: int, dy: int) -> Image.Image:
    """Move the picture by (dx, dy) pixels on a canvas of the same size, padding with black."""
    out = Image.new(img.mode, img.size, 0)
    out.paste(img, (dx, dy))
    return out


def intensity(img: Image.Image, gain: float, offset: float) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32) * gain + offset
    return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), img.mode)


def alter(img: Image.Image, kind: str, rng: np.random.Generator) -> tuple[Image.Image, int, str]:
    """An altered copy of ``img``: (image, JPEG quality to save it with or 0 for PNG, description)."""
    if kind == "jpeg":
        q = int(rng.integers(30, 91))
        return img, q, f"quality {q}"
    if kind == "resize":
        f = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        return resize(img, f, rng), 0, f"x{f:.2f}"
    if kind == "shift":
        w, h = img.size
        dx, dy = (int(round(s * rng.uniform(0.02, 0.06) * n)) for s, n in
                  zip(rng.choice([-1, 1], 2), (w, h)))
        return shift(img, dx, dy), 0, f"dx {dx} dy {dy}"
    if kind == "intensity":
        g, o = float(rng.uniform(0.7, 1.3)), float(rng.uniform(-25, 25))
        return intensity(img, g, o), 0, f"gain {g:.2f} offset {o:+.0f}"
    if kind == "gamma":  # a contrast curve, as between two exports of one scan
        g = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
        arr = (np.asarray(img, dtype=np.float32) / 255.0) ** g * 255.0
        return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), img.mode), 0, f"gamma {g:.2f}"
    if kind == "flip":
        return img.transpose(Image.FLIP_LEFT_RIGHT), 0, "flipped"
    if kind == "all":
        parts = []
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
            parts.append("flipped")
        for k in ("resize", "shift", "intensity"):
            img, _, d = alter(img, k, rng)
            parts.append(d)
        q = int(rng.integers(30, 91))
        parts.append(f"quality {q}")
        return img, q, ", ".join(parts)
    raise ValueError(kind)


def write_copies(sources: list[str], kinds, out: Path, seed: int) -> list[tuple[str, str, str, str]]:
    """Write one altered copy per source and kind under ``out/<kind>/``: (kind, source, copy, change)."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind in kinds:
        (out / kind).mkdir(parents=True, exist_ok=True)
        for k, src in enumerate(sources):
            with Image.open(src) as raw:
                img = raw.convert("L") if raw.mode not in ("L", "RGB") else raw.copy()
            copy, quality, desc = alter(img, kind, rng)
            dst = out / kind / f"{k:05d}.{'jpg' if quality else 'png'}"
            if quality:
                copy.save(dst, "JPEG", quality=quality)
            else:
                copy.save(dst, "PNG")
            rows.append((kind, src, str(dst), desc))
    return rows


# ---------------------------------------------------------------- measurement
def subset(fp, idx):
    from braintumor.data.dedup import Fingerprints

    idx = list(idx)
    return Fingerprints([fp.paths[i] for i in idx], [fp.sha256[i] for i in idx], fp.vectors[idx],
                        fp.flipped[idx], [], [fp.sizes[i] for i in idx], [fp.modes[i] for i in idx])


def recall(train_fp, copies, threshold: float, progress=None) -> dict:
    from braintumor.data import dedup

    copy_fp = dedup.fingerprint_files([c[2] for c in copies], progress=progress)
    assert not copy_fp.unreadable, copy_fp.unreadable
    pos = {p: i for i, p in enumerate(train_fp.paths)}
    sha = train_fp.sha256
    matches: dict[int, list[tuple[int, float]]] = {}
    for i, j, _kind, s in dedup.cross_pairs(train_fp, copy_fp, threshold):
        matches.setdefault(j, []).append((i, s))
    result = {}
    for kind in dict.fromkeys(c[0] for c in copies):
        rows = [j for j, c in enumerate(copies) if c[0] == kind]
        flagged = found = 0
        missed = []
        for j in rows:
            src = pos[copies[j][1]]
            m = matches.get(j, [])
            flagged += bool(m)
            ok = any(i == src or sha[i] == sha[src] for i, _ in m)
            found += ok
            if not ok:
                missed.append((copies[j], max((s for _, s in m), default=None)))
        result[kind] = {"n": len(rows), "flagged": flagged, "found": found, "missed": missed}
    return result


def false_flags(train_fp, labels: np.ndarray, threshold: float) -> dict:
    """Images of each class flagged against the other classes (byte-identical conflicts left out)."""
    from braintumor.data import dedup

    out = {}
    for c in np.unique(labels):
        others, mine = np.flatnonzero(labels != c), np.flatnonzero(labels == c)
        other_sha = {train_fp.sha256[i] for i in others}
        mine = np.array([i for i in mine if train_fp.sha256[i] not in other_sha])
        pairs = dedup.cross_pairs(subset(train_fp, others), subset(train_fp, mine), threshold)
        flagged = {j for _, j, _, _ in pairs}
        best: dict[int, tuple[float, int]] = {}
        for i, j, _, s in pairs:
            if s > best.get(j, (-1.0, -1))[0]:
                best[j] = (s, int(others[i]))
        out[int(c)] = {"n": len(mine), "flagged": len(flagged),
                       "examples": sorted(((s, int(mine[j]), o) for j, (s, o) in best.items()), reverse=True)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(TRAINING), help="a class-folder Training root")
    parser.add_argument("--n", type=int, default=300, help="sources per kind of change (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=None, help="default: dedup.DEFAULT_THRESHOLD")
    parser.add_argument("--show-missed", type=int, default=5, help="list this many misses per kind")
    args = parser.parse_args(argv)
    data = require(args.data, TRAINING, option="--data")

    from braintumor.data import dedup
    from braintumor.data.folders import list_samples
    from braintumor.progress import progress

    threshold = dedup.DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    samples = list_samples(data)
    t0 = time.perf_counter()
    train_fp = dedup.fingerprint_files([s.path for s in samples], progress=progress)
    label_of = {str(s.path): s.label for s in samples}
    labels = np.array([label_of[p] for p in train_fp.paths])
    rng = np.random.default_rng(args.seed)
    sources = [train_fp.paths[i] for i in rng.choice(len(train_fp.paths), args.n, replace=False)]

    print(f"threshold {threshold}, {len(train_fp.paths)} Training images, {args.n} sources per kind, "
          f"seed {args.seed}")
    print()
    print(f"{'change':<12}{'flagged':>10}{'found source':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        copies = write_copies(sources, KINDS, Path(tmp), args.seed + 1)
        rec = recall(train_fp, copies, threshold, progress)
        for kind, r in rec.items():
            print(f"{kind:<12}{r['flagged'] / r['n']:>10.1%}{r['found'] / r['n']:>14.1%}")
        tot_f = sum(r["flagged"] for r in rec.values())
        tot = sum(r["n"] for r in rec.values())
        print(f"{'overall':<12}{tot_f / tot:>10.1%}{sum(r['found'] for r in rec.values()) / tot:>14.1%}")
        if args.show_missed:
            for kind, r in rec.items():
                for (k, src, _dst, desc), best in r["missed"][: args.show_missed]:
                    b = "no twin" if best is None else f"flagged elsewhere at {best:.3f}"
                    print(f"  missed {kind}: {Path(src).parent.name}/{Path(src).name} ({desc}): {b}")

    ff = false_flags(train_fp, labels, threshold)
    print()
    print("false flags: each class against the other three (different pictures)")
    n_neg = sum(v["n"] for v in ff.values())
    n_ff = sum(v["flagged"] for v in ff.values())
    from braintumor.config import CLASSES

    for c, v in ff.items():
        print(f"  {CLASSES[c]:<12}{v['flagged']:>5} of {v['n']:>5}  ({v['flagged'] / max(v['n'], 1):.2%})")
    rate = n_ff / max(n_neg, 1)
    print(f"  {'overall':<12}{n_ff:>5} of {n_neg:>5}  ({rate:.2%})")
    flags = sorted((e for v in ff.values() for e in v["examples"]), reverse=True)
    same = sum(s >= SAME_PICTURE for s, _, _ in flags)
    rate_diff = (n_ff - same) / max(n_neg, 1)
    print(f"  of these, {same} at similarity >= {SAME_PICTURE}: one picture filed under two classes (label "
          f"conflicts, look at them below); {n_ff - same} below ({rate_diff:.2%})")
    for s, i, o in flags[:12]:
        print(f"    {s:.3f}  {Path(train_fp.paths[i]).parent.name}/{Path(train_fp.paths[i]).name}"
              f"  ~  {Path(train_fp.paths[o]).parent.name}/{Path(train_fp.paths[o]).name}")
    rec_all = tot_f / tot
    print()
    print("a Testing-like mix (1,311 images, half with a twin in Training, half with nothing alike):")
    for label, r in (("label conflicts left out", rate_diff), ("every cross-class flag false", rate)):
        flagged_twins, flagged_distinct = 655.5 * rec_all, 655.5 * r
        share = flagged_distinct / max(flagged_twins + flagged_distinct, 1e-9)
        print(f"  twins flagged {rec_all:.1%} (need >= 95%), false share of flags {share:.2%} "
              f"(need <= 2%) [{label}]")
    print(f"[{time.perf_counter() - t0:.0f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
