"""How well the out-of-distribution gate separates brain MRI slices from everything else.

    python benchmarks/ood_eval.py [--model FILE] [--backend auto] [--seed 0] [--data DIR] [--split FILE]

In-distribution: the validation MRI slices of ``model/split.json`` (read from ``--data``, the
Training folder; the benchmark skips, exit 0 with one line on stderr, when it or the split file is
missing). Out-of-distribution:
``benchmarks/ood_set.py`` (library photographs, drawn documents and screenshots, SYNTHETIC
radiographs and CT, noise, blank, tiny and heavily cropped images), plus two groups of real files
found on the machine, reported apart:

- ``real-dicom``: the DICOM test files that ship with pydicom (head and spine CT, abdominal CT,
  ultrasound, an abdominal MRI, a whole-body scan);
- ``system``: screenshots, charts and icons that Debian packages install under /usr/share.

Everything goes through ``Predictor.predict_batch`` (the backend users get by default), so the
numbers are those of the real pipeline. Printed: AUROC of the gate's score (inputs refused by the
size or blank check count as the most out-of-distribution), the share of each category rejected at
the shipped threshold -- the split-conformal 99% quantile of the validation scores, so at most 1% of
the validation slices are rejected -- the validation false-rejection rate (in sample, and
cross-fitted: threshold from one half of the validation split, rejection measured on the other),
and what the gate costs next to a prediction. A second real brain MRI from elsewhere (matplotlib's
sagittal sample ``s1045.ima``) is reported as a should-accept check.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import REPO, SPLIT, TRAINING, require  # noqa: E402
import ood_set  # noqa: E402

REAL_DICOM = ("693_J2KI", "CT_small", "J2K_pixelrep_mismatch", "JPEG2000", "examples_jpeg2k",
              "examples_overlay", "examples_palette", "examples_rgb_color", "examples_ybr_color",
              "liver_1frame", "image_dfl")
CHECK_FAILED = 1e6  # score of an input refused by the size or blank check


def auroc(neg: np.ndarray, pos: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted half."""
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([neg, pos]))
    n0, n1 = len(neg), len(pos)
    return float((r[n0:].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def real_files() -> list[tuple[str, str, object]]:
    items: list[tuple[str, str, object]] = []
    try:
        from pydicom.data import get_testdata_file

        for name in REAL_DICOM:
            path = get_testdata_file(f"{name}.dcm")
            if path:
                items.append(("real-dicom", name, Path(path)))
    except ImportError:
        pass
    files = sorted(glob.glob("/usr/share/doc/**/*.png", recursive=True))
    files += sorted(glob.glob("/usr/share/icons/Adwaita/512x512/*/*.png"))[:30]
    items += [("system", Path(f).name, Path(f)) for f in files]
    return items


def gate_score(r: dict) -> float:
    """The gate's score of a result; inputs refused by the size or blank check rank above all."""
    from braintumor.inference.ood import ATYPICAL

    if r.get("decision") == "rejected" and not str(r.get("reason", "")).startswith(ATYPICAL):
        return CHECK_FAILED
    return float(r["ood_score"])


def benign_changes() -> dict:
    """Changes a real scan may come with that do not make it out of distribution."""
    from PIL import Image, ImageEnhance

    def jpeg(g, q):
        buf = io.BytesIO()
        g.save(buf, "JPEG", quality=q)
        return Image.open(io.BytesIO(buf.getvalue()))

    def bits12(g):
        a = np.asarray(g).astype(np.uint16) * 16
        return a + np.random.default_rng(0).integers(0, 16, a.shape).astype(np.uint16)

    return {
        "as is": lambda g: g,
        "upscaled to 512 px": lambda g: g.resize((512, 512), Image.BICUBIC),
        "downscaled to 128 px": lambda g: g.resize((128, 128), Image.BILINEAR),
        "JPEG quality 40": lambda g: jpeg(g, 40),
        "rotated 10 degrees": lambda g: g.rotate(10, resample=Image.BILINEAR),
        "mirrored": lambda g: g.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "contrast x0.8": lambda g: ImageEnhance.Contrast(g).enhance(0.8),
        "brightness x1.2": lambda g: ImageEnhance.Brightness(g).enhance(1.2),
        "12-bit array": bits12,
        "padded with black": lambda g: Image.fromarray(np.pad(np.asarray(g), g.width // 5)),
        "cropped to 85%": lambda g: g.crop((g.width * 0.075, g.height * 0.075, g.width * 0.925, g.height * 0.925)),
    }


def robustness(predictor, val: list[Path], n: int) -> None:
    """False rejections (and referrals) of validation slices sent with benign changes."""
    from braintumor.imaging import load_image

    rng = np.random.default_rng(0)
    picks = [val[i] for i in rng.choice(len(val), min(n, len(val)), replace=False)]
    grays = [load_image(p) for p in picks]
    print(f"\n{len(grays)} validation slices with benign changes:")
    print(f"  {'change':<22}{'rejected':>10}{'uncertain':>11}{'median score':>14}")
    for name, change in benign_changes().items():
        rs = predictor.predict_batch([change(g) for g in grays], batch_size=32)
        rej = np.mean([r["decision"] == "rejected" for r in rs])
        unc = np.mean([r["decision"] == "uncertain" for r in rs])
        print(f"  {name:<22}{100 * rej:>9.1f}%{100 * unc:>10.1f}%{np.median([r['ood_score'] for r in rs]):>14.2f}",
              flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--backend", default="auto", help="Predictor backend (default: auto, as users get)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the generated set")
    ap.add_argument("--data", default=str(TRAINING), help="the Training folder")
    ap.add_argument("--split", default=str(SPLIT))
    ap.add_argument("--repeats", type=int, default=200, help="halvings for the cross-fitted rate")
    ap.add_argument("--robustness", type=int, default=300, metavar="N",
                    help="validation slices re-sent with benign changes (resized, re-compressed, "
                         "re-contrasted, ...) to measure false rejections; 0: skip (default: 300)")
    args = ap.parse_args()
    data = require(args.data, TRAINING, option="--data")
    split = require(args.split, SPLIT, file=True, option="--split")

    from braintumor.inference import ood
    from braintumor.inference.predictor import Predictor

    predictor = Predictor.load(args.model, backend=args.backend)
    gate = ood.OodGate.from_meta(predictor.checkpoints[0].meta.get("ood"))
    if not gate.fitted:
        print("the checkpoint has no out-of-distribution statistics (braintumor calibrate)")
        return 1
    val = [data / r for r in json.loads(split.read_text())["val"]]
    print(f"model {predictor.name}, backend {predictor.backend}; {len(val)} validation slices", flush=True)
    t0 = time.perf_counter()
    id_results = predictor.predict_batch(val, batch_size=32)
    id_seconds = time.perf_counter() - t0
    id_scores = np.array([gate_score(r) for r in id_results])
    id_rejected = np.array([r["decision"] == "rejected" for r in id_results])

    items = ood_set.build(args.seed, mri=val) + real_files()
    images = [im for _, _, im in items]
    cats = np.array([c for c, _, _ in items])
    names = [n for _, n, _ in items]
    print(f"{len(items)} out-of-distribution images", flush=True)
    results = predictor.predict_batch(images, batch_size=32, errors="return")
    unreadable = [n for n, r in zip(names, results) if "error" in r]
    keep = np.array(["error" not in r for r in results])
    scores = np.array([gate_score(r) if "error" not in r else np.nan for r in results])
    rejected = np.array([r.get("decision") == "rejected" for r in results])

    generated = keep & ~np.isin(cats, ["real-dicom", "system"])
    print("\nout-of-distribution images rejected at the shipped threshold (<= 1% of validation slices):")
    print(f"  {'category':<14}{'n':>5}{'rejected':>10}{'AUROC':>8}   accepted")
    for c in dict.fromkeys(cats):
        m = keep & (cats == c)
        missed = [n for n, mm, rj in zip(names, m, rejected) if mm and not rj]
        print(f"  {c:<14}{m.sum():>5}{100 * rejected[m].mean():>9.1f}%{auroc(id_scores, scores[m]):>8.4f}   "
              f"{', '.join(missed[:6])}{' ...' if len(missed) > 6 else ''}")
    print(f"  {'generated set':<14}{generated.sum():>5}{100 * rejected[generated].mean():>9.1f}%"
          f"{auroc(id_scores, scores[generated]):>8.4f}   (targets: AUROC >= 0.99, rejected >= 95%)")
    real = keep & np.isin(cats, ["real-dicom", "system"])
    if real.any():
        print(f"  {'real files':<14}{real.sum():>5}{100 * rejected[real].mean():>9.1f}%"
              f"{auroc(id_scores, scores[real]):>8.4f}")
    print(f"  {'all':<14}{keep.sum():>5}{100 * rejected[keep].mean():>9.1f}%{auroc(id_scores, scores[keep]):>8.4f}")
    if unreadable:
        print(f"  unreadable (not counted): {', '.join(unreadable)}")

    # validation false rejections: in sample, and with the threshold fitted on the other half
    raw = np.where(id_scores >= CHECK_FAILED, np.inf, id_scores * gate.threshold)
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(args.repeats):
        perm = rng.permutation(len(raw))
        a, b = perm[: len(raw) // 2], perm[len(raw) // 2:]
        t = ood.conformal_quantile(raw[a], ood.FALSE_REJECTION, midpoint=True)
        rates.append((raw[b] > t).mean())
    print(f"\nvalidation slices rejected: {100 * id_rejected.mean():.2f}% ({id_rejected.sum()} of {len(val)}, "
          f"in sample); cross-fitted {100 * np.mean(rates):.2f}% +/- {100 * np.std(rates):.2f}")
    print("  reasons:", {r["reason"][:40]: sum(x["reason"] == r["reason"] for x in id_results)
                         for r in id_results if r["decision"] == "rejected"})

    # a real brain MRI from elsewhere should pass
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("s1045.ima.gz") as f:
        mri = np.frombuffer(f.read(), np.uint16).reshape(256, 256)
    r = predictor.predict(mri)
    print(f"\nmatplotlib's sagittal brain MRI (s1045.ima): {r['decision']} (score {r['ood_score']:.2f})")

    if args.robustness:
        robustness(predictor, val, args.robustness)

    # cost of the gate next to a prediction
    prep = predictor.preprocessing
    sample = sorted((REPO / "tests" / "data" / "sample").rglob("*.jpg"))
    from braintumor.imaging import load_image

    grays = [load_image(p) for p in sample]
    pixels = np.stack([prep.pixels(g) for g in grays])
    feats = np.random.default_rng(0).normal(size=(len(grays), gate.features.mean.shape[0]))
    t0 = time.perf_counter()
    for _ in range(10):
        gate.check([g.size for g in grays], pixels, feats)
    gate_ms = (time.perf_counter() - t0) / (10 * len(grays)) * 1000
    t0 = time.perf_counter()
    for g in grays:
        predictor.predict(g)
    predict_ms = (time.perf_counter() - t0) / len(grays) * 1000
    print(f"gate: {gate_ms:.2f} ms per image; a whole predict() (gate included): {predict_ms:.1f} ms "
          f"(batch-1, backend {predictor.backend}); validation inference {id_seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
