"""Does the model look at the tumour? Source robustness, heat maps and boxes on the validation split.

Everything goes through :class:`braintumor.Predictor` (the path users get, int8 by default), on the
validation images of a split file, with the radiologist boxes of the figshare collection
(``../shared/data/tumour-boxes``). It prints and writes (``--out``/explain_quality.json):

- accuracy and macro-F1; accuracy on the tumour images that are *not* figshare slices (the tumour
  images without a box row);
- style swap: each image given the intensity distribution of a random validation image of the
  other source (exact histogram matching); the share of labels unchanged and the accuracy;
- pointing game (heat-map maximum within 15 px of the box, at the network's 224 px input) and
  energy-in-box ratio (share of heat-map mass in the box / the box's share of the image), per class
  and per CAM method, beside a fixed Gaussian at the image centre;
- the tumour box of each answer against the radiologist box: mean IoU and share with IoU >= 0.5
  (an answer without a box counts as IoU 0), also for boxes under 32 x 32 px at 224 px (one cell of
  the last block's grid) and the larger ones;
- tumour erased: each boxed tumour slice with its box (plus 15% a side) inpainted away (OpenCV
  Telea); the share still given a tumour label as ``classified``. Training with boxes erases
  tumours by inpainting too (``--erase-fill``), so the same figure for an erasure that training
  never shows is printed beside it: the region blurred away (a Gaussian of a third of the box side);
- decisions: rejections per class, and tumours answered "no tumour" as ``classified``.

    python benchmarks/explain_quality.py [--model FILE] [--backend auto] [--limit N]

Skips (exit 0, one line on stderr) when the Training folder or the boxes file is missing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import REPO, SPLIT, TRAINING, TUMOUR_BOXES, require  # noqa: E402

if TYPE_CHECKING:
    from PIL import Image

TOLERANCE = 15  # pixels at 224 px
METHODS = ("gradcam", "gradcam++", "hirescam", "eigencam")


def centre_gaussian(size: int, sigma: float = 0.25) -> np.ndarray:
    u = (np.arange(size) + 0.5) / size - 0.5
    g = np.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2 * sigma ** 2))
    return (g / g.max()).astype(np.float32)


def pointing_and_energy(heat: np.ndarray, box: np.ndarray) -> tuple[bool, float]:
    """box: x0, y0, x1, y1 in pixels of the (S, S) heat map."""
    s = heat.shape[0]
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    cx, cy = x + 0.5, y + 0.5
    dx = max(box[0] - cx, 0.0, cx - box[2])
    dy = max(box[1] - cy, 0.0, cy - box[3])
    hit = bool(np.hypot(dx, dy) <= TOLERANCE * s / 224)
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    inside = float(heat[y0:y1, x0:x1].sum())
    total = float(heat.sum())
    area = max(1, (y1 - y0) * (x1 - x0)) / (s * s)
    return hit, (inside / total / area) if total > 0 else 0.0


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def load_gray(path: Path):
    from braintumor.imaging import load_image

    return load_image(path)


def style_swapped(grays, figshare: np.ndarray, seed: int = 0):
    """Each image given the histogram of a random image of the other source."""
    import torch
    from PIL import Image

    from braintumor.training.source_aug import match_histograms

    rng = np.random.default_rng(seed)
    other = {True: np.flatnonzero(~figshare), False: np.flatnonzero(figshare)}
    out = []
    g = torch.Generator().manual_seed(seed)
    for i, im in enumerate(grays):
        pool = other[bool(figshare[i])]
        ref = grays[int(rng.choice(pool))].resize(im.size, Image.BILINEAR)
        a = torch.from_numpy(np.asarray(im, dtype=np.float32))[None]
        b = torch.from_numpy(np.asarray(ref, dtype=np.float32))[None]
        m = match_histograms(a, b, g)[0].numpy()
        out.append(Image.fromarray(np.clip(m, 0, 255).astype(np.uint8), "L"))
    return out


def erase_tumour(gray, box_px, method: str = "telea") -> "Image.Image":
    """The slice with its box (plus 15% a side) erased: inpainted (``telea``) or blurred away
    (``blur``: the region replaced by the image under a Gaussian of a third of the box side)."""
    import cv2
    from PIL import Image

    arr = np.asarray(gray, dtype=np.uint8).copy()
    x0, y0, x1, y1 = box_px
    mx, my = 0.15 * (x1 - x0), 0.15 * (y1 - y0)
    mask = np.zeros_like(arr)
    h, w = arr.shape
    mask[max(0, int(y0 - my)):min(h, int(np.ceil(y1 + my))), max(0, int(x0 - mx)):min(w, int(np.ceil(x1 + mx)))] = 255
    if method == "blur":
        sigma = max(1.0, max(x1 - x0, y1 - y0) / 3)
        blurred = cv2.GaussianBlur(arr, (0, 0), sigma)
        return Image.fromarray(np.where(mask > 0, blurred, arr).astype(np.uint8), "L")
    return Image.fromarray(cv2.inpaint(arr, mask, 5, cv2.INPAINT_TELEA), "L")


def mirror_erase(gray, box_px) -> "Image.Image | None":
    """The slice with its box (plus 35% a side) covered by the same place of the slice mirrored left
    to right (healthy tissue of the other hemisphere of the same scan), or None where the mirrored
    region would hold the tumour itself."""
    from PIL import Image

    arr = np.asarray(gray, dtype=np.float32)
    h, w = arr.shape
    x0, y0, x1, y1 = box_px
    mx, my = 0.35 * (x1 - x0), 0.35 * (y1 - y0)
    gx0, gx1 = max(0, int(x0 - mx)), min(w, int(np.ceil(x1 + mx)))
    gy0, gy1 = max(0, int(y0 - my)), min(h, int(np.ceil(y1 + my)))
    if not (w - gx1 >= x1 or w - gx0 <= x0):
        return None
    out = arr.copy()
    out[gy0:gy1, gx0:gx1] = arr[:, ::-1][gy0:gy1, gx0:gx1]
    return Image.fromarray(out.clip(0, 255).astype(np.uint8), "L")


def nearest_training_similarity(val_paths, train_paths) -> np.ndarray:
    """For each validation image, the cosine similarity of the audit's descriptor (mirror images
    included) to its nearest training image: how far it lies from what the model trained on."""
    from braintumor.progress import progress
    from braintumor.data.dedup import fingerprint_files

    v = fingerprint_files(val_paths, progress=progress)
    t = fingerprint_files(train_paths, progress=progress)
    best = np.full(len(v.paths), -1.0, dtype=np.float32)
    for start in range(0, len(t.paths), 2048):
        tv, tf = t.vectors[start:start + 2048], t.flipped[start:start + 2048]
        best = np.maximum(best, np.maximum(v.vectors @ tv.T, v.vectors @ tf.T).max(1))
    found = dict(zip(v.paths, best))
    return np.array([found.get(str(p), np.nan) for p in val_paths])


FAR_BINS = (0.0, 0.7, 0.8, 0.9)  # nearest-training similarity bins (the split keeps every val image < 0.9)


def default_sources() -> list[str]:
    """The other collections in ../shared/data that a split may record."""
    from _common import SHARED_DATA

    return [str(SHARED_DATA / n) for n in ("tcga-lgg", "br35h") if (SHARED_DATA / n).is_dir()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(TRAINING))
    ap.add_argument("--boxes", default=str(TUMOUR_BOXES))
    ap.add_argument("--split", default=str(SPLIT))
    ap.add_argument("--source", dest="sources", action="append", default=None, metavar="FOLDER",
                    help="another collection the split records (default: those of ../shared/data the split has)")
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "int8"])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--limit", type=int, default=0, help="at most N validation images (quick look)")
    ap.add_argument("--no-far", action="store_true", help="skip the distance-to-training figures")
    ap.add_argument("--out", default=str(REPO / "docs" / "model"))
    args = ap.parse_args(argv)
    data = require(args.data, TRAINING, option="--data")
    require(args.boxes, TUMOUR_BOXES, file=True, option="--boxes")

    from braintumor import Predictor
    from braintumor.training.box_supervision import boxes_in_prepared, read_boxes
    from braintumor.progress import progress
    from braintumor.metrics import summarize
    from braintumor.data.sources import MAIN_BOXED, NOTUMOR, TUMOUR, label_name, split_images

    predictor = Predictor.load(args.model, backend=args.backend)
    classes = predictor.classes
    prep = predictor.preprocessing
    S = prep.img_size
    split = json.loads(Path(args.split).read_text())
    boxes = read_boxes(args.boxes)
    recorded = split.get("sources") or {}
    sources = args.sources if args.sources is not None else [f for f in default_sources() if Path(f).name in recorded]
    val_images = split_images(split, data, boxes, sources, "val")
    if args.limit:
        rng = np.random.default_rng(0)
        val_images = [val_images[i] for i in sorted(rng.choice(len(val_images), min(args.limit, len(val_images)),
                                                                replace=False))]
    y = np.array([im.label for im in val_images])
    src = np.array([im.source for im in val_images])
    nt = NOTUMOR
    figshare = src == MAIN_BOXED
    t0 = time.perf_counter()
    grays = [load_gray(im.path) for im in progress(val_images, desc="read")]

    def answers(images, desc):
        out = []
        for i in progress(range(0, len(images), 64), desc=desc, unit="batch"):
            out += predictor.predict_batch(images[i:i + 64], batch_size=64)
        return out

    base = answers(grays, "predict")
    probs = np.array([[r["probabilities"][c] for c in classes] for r in base])
    pred = probs.argmax(1)
    known = y >= 0
    s = summarize(probs[known], y[known], classes)
    report: dict = {"model": predictor.name, "sha256": predictor.sha256, "backend": predictor.backend,
                    "n_val": len(val_images), "accuracy": s["accuracy"], "macro_f1": s["macro_f1"],
                    "sources": [Path(f).name for f in sources]}
    dec = np.array([r["decision"] for r in base])
    is_tumour, said_tumour = y != nt, pred != nt
    right = np.where(known, pred == y, said_tumour)
    rows = {}
    for name in sorted(set(src.tolist())):
        for lab in sorted(set(y[src == name].tolist())):
            sel = (src == name) & (y == lab)
            rows[f"{name}/{label_name(lab)}"] = {
                "n": int(sel.sum()),
                "accuracy": float(right[sel].mean()),
                "tumour_or_not": float((said_tumour[sel] == is_tumour[sel]).mean()),
                "classified": float((dec[sel] == "classified").mean()),
                "uncertain": float((dec[sel] == "uncertain").mean()),
                "rejected": float((dec[sel] == "rejected").mean()),
                "confident_errors": int((sel & ~right & (dec == "classified")).sum()),
            }
    report["per_source"] = rows
    worst = min(rows, key=lambda k: rows[k]["tumour_or_not"])
    report["worst_source"] = {"name": worst, "tumour_or_not": rows[worst]["tumour_or_not"]}
    other_tumour = is_tumour & ~figshare
    report["non_figshare_tumour"] = {"n": int(other_tumour.sum()),
                                     "accuracy": float(right[other_tumour].mean()) if other_tumour.any() else None,
                                     "said_notumor": int((pred[other_tumour] == nt).sum())}
    two = np.isin(src, [MAIN_BOXED, "kaggle-other"])  # the style swap mixes the main folder's two sources
    swapped = answers(style_swapped([grays[i] for i in np.flatnonzero(two)], figshare[two]), "style swap")
    sp = np.array([classes.index(r["label"]) for r in swapped])
    p2, y2, f2 = pred[two], y[two], figshare[two]
    report["style_swap"] = {"unchanged": float((sp == p2).mean()), "accuracy": float((sp == y2).mean()),
                            "unchanged_figshare": float((sp == p2)[f2].mean()),
                            "unchanged_other": float((sp == p2)[~f2].mean())}
    report["decisions"] = {
        "rejected_per_class": {label_name(k): float((dec[y == k] == "rejected").mean()) for k in sorted(set(y.tolist()))},
        "referred_per_class": {label_name(k): float((dec[y == k] == "uncertain").mean()) for k in sorted(set(y.tolist()))},
        "tumour_called_notumor": int((is_tumour & (pred == nt)).sum()),
        "tumour_called_notumor_classified": int((is_tumour & (pred == nt) & (dec == "classified")).sum()),
        "confident_errors": int((~right & (dec == "classified")).sum()),
    }
    if not args.no_far:
        train_paths = [im.path for im in split_images(split, data, boxes, sources, "train")]
        near = nearest_training_similarity([im.path for im in val_images], train_paths)
        far = {}
        for lo, hi in zip(FAR_BINS, FAR_BINS[1:] + (1.01,)):
            sel = (near >= lo) & (near < hi)
            far[f"{lo:.1f}-{min(hi, 1.0):.1f}"] = {"n": int(sel.sum()),
                                                   "accuracy": float(right[sel].mean()) if sel.any() else None,
                                                   "confident_errors": int((sel & ~right & (dec == "classified")).sum())}
        report["far_from_training"] = far
    # heat maps, boxes and counterfactuals on the boxed tumour slices of every source
    boxed = np.flatnonzero(np.array([im.box is not None for im in val_images]) & is_tumour & known)
    gauss = centre_gaussian(S)
    methods = [m for m in args.methods.split(",") if m]
    tumour_names = [c for c in classes if c != "notumor"]
    point = {m: {c: [] for c in tumour_names} for m in methods + ["centre_gaussian"]}
    energy = {m: {c: [] for c in tumour_names} for m in methods + ["centre_gaussian"]}
    point_src: dict[str, list] = {}
    ious, areas, iou_src, examples = [], [], [], []
    erased: dict[str, list] = {"telea": [], "blur": [], "mirror": []}
    for i in progress(boxed, desc="explain", unit="img"):
        g, im = grays[i], val_images[i]
        frac = boxes_in_prepared(im.box, *g.size, prep.fit)
        bx = np.array(frac) * S
        c = classes[y[i]]
        hit, en = pointing_and_energy(gauss, bx)
        point["centre_gaussian"][c].append(hit)
        energy["centre_gaussian"][c].append(en)
        e_first = None
        for m in methods:
            e = predictor.explain(g, cam_method=m)
            e_first = e_first or e
            hit, en = pointing_and_energy(e["heatmap_input"], bx)
            point[m][c].append(hit)
            energy[m][c].append(en)
            if m == methods[0]:
                point_src.setdefault(im.source, []).append(hit)
        w, h = g.size
        true_px = [im.box[0] * w, im.box[1] * h, im.box[2] * w, im.box[3] * h]
        b = base[i].get("box")
        ious.append(iou(b, true_px) if b is not None else 0.0)
        iou_src.append(im.source)
        areas.append((bx[2] - bx[0]) * (bx[3] - bx[1]))  # at the network's input size
        if len(examples) < 12 and i % 7 == 0:
            examples.append((g, e_first if methods else None, true_px, b, c))
        for how, rows_ in erased.items():
            img = mirror_erase(g, true_px) if how == "mirror" else erase_tumour(g, true_px, how)
            if img is None:
                continue
            r = predictor.predict(img)
            rows_.append((r["label"] != "notumor", r["decision"], r["confidence"], im.source))

    def summary(d):
        out = {c: float(np.mean(v)) if v else None for c, v in d.items()}
        allv = [x for v in d.values() for x in v]
        out["all"] = float(np.mean(allv)) if allv else None
        return out

    report["pointing"] = {m: summary(point[m]) for m in point}
    report["pointing_per_source"] = {k: {"n": len(v), "hit": float(np.mean(v))} for k, v in point_src.items()}
    report["energy_in_box"] = {m: summary(energy[m]) for m in energy}
    ious_a = np.array(ious)

    def box_summary(v):
        return {"n": int(len(v)), "mean_iou": float(v.mean()) if len(v) else None,
                "iou_at_least_0.5": float((v >= 0.5).mean()) if len(v) else None}

    report["box"] = box_summary(ious_a)
    # Small tumours are where the overlap is lost: boxes under one cell of the last block's grid
    # (32 x 32 px at 224) apart from the rest.
    small = np.array(areas) < (S / 7) ** 2
    report["box"]["smaller_than_a_cell"] = box_summary(ious_a[small])
    report["box"]["the_rest"] = box_summary(ious_a[~small])
    report["box"]["per_source"] = {k: box_summary(ious_a[np.array(iou_src) == k]) for k in sorted(set(iou_src))}

    def erased_summary(rows_):
        kept = [t for t, d, _, _ in rows_ if t and d == "classified"]
        out = {"n": len(rows_), "tumour_label": float(np.mean([t for t, _, _, _ in rows_])) if rows_ else None,
               "tumour_label_classified": len(kept) / len(rows_) if rows_ else None,
               "median_confidence": float(np.median([c for _, _, c, _ in rows_])) if rows_ else None}
        out["per_source"] = {k: {"n": sum(1 for r in rows_ if r[3] == k),
                                 "tumour_label_classified": float(np.mean([t and d == "classified"
                                                                           for t, d, _, s_ in rows_ if s_ == k]))}
                             for k in sorted({r[3] for r in rows_})}
        return out

    report["tumour_erased"] = erased_summary(erased["telea"])
    report["tumour_blurred"] = erased_summary(erased["blur"])
    report["tumour_mirrored"] = erased_summary(erased["mirror"])
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["machine"] = f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "explain_quality.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, examples, out / "explain_quality.png")
    print(format_report(report))
    return 0


def plot(r: dict, examples: list, path: Path) -> None:
    """Pointing game per class and method beside the centre Gaussian, and example answers: the
    radiologist's box (green) and the model's (cyan) over the heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = ["glioma", "meningioma", "pituitary", "all"]
    methods = list(r["pointing"])
    n_ex = len(examples)
    fig = plt.figure(figsize=(14, 4 + 2.4 * ((n_ex + 5) // 6)))
    ax = fig.add_axes([0.06, 1 - 3.2 / fig.get_figheight(), 0.9, 2.6 / fig.get_figheight()])
    w = 0.8 / len(methods)
    for k, m in enumerate(methods):
        vals = [100 * (r["pointing"][m].get(c) or 0) for c in classes]
        ax.bar([i + k * w for i in range(len(classes))], vals, w, label=m,
               color="#9ca3af" if m == "centre_gaussian" else None)
    ax.set_xticks([i + 0.4 - w / 2 for i in range(len(classes))], classes)
    ax.axhline(90, color="k", lw=0.8, ls="--")
    ax.set_ylabel("pointing game (%)")
    ax.set_ylim(0, 100)
    ax.legend(ncol=len(methods), fontsize=8, loc="lower right")
    ax.set_title(f"{r['model']}: heat-map maximum within 15 px of the radiologist box (validation)")
    for j, (g, e, true_px, box, c) in enumerate(examples):
        a = fig.add_subplot((n_ex + 5) // 6 + 2, 6, 12 + j + 1)
        a.imshow(e["overlay"] if e is not None else g, cmap="gray")
        sx = (e["overlay"].size[0] / g.size[0]) if e is not None else 1.0
        x0, y0, x1, y1 = (v * sx for v in true_px)
        a.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", lw=1.5))
        if box is not None:
            x0, y0, x1, y1 = (v * sx for v in box)
            a.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="cyan", lw=1.5, ls="--"))
        a.set_title(c, fontsize=8)
        a.axis("off")
    fig.savefig(path, dpi=80)
    plt.close(fig)


def format_report(r: dict) -> str:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    lines = [f"model {r['model']} ({r['backend']}), {r['n_val']} validation images, {r['seconds']} s",
             f"accuracy {pct(r['accuracy'])}  macro-F1 {r['macro_f1']:.4f}"]
    if r.get("per_source"):
        lines += ["", f"{'source/class':<24}{'n':>6}{'accuracy':>10}{'tumour?':>10}{'classif.':>10}"
                      f"{'uncert.':>10}{'rejected':>10}{'conf.err':>10}"]
        for k, v in r["per_source"].items():
            lines.append(f"{k:<24}{v['n']:>6}{pct(v['accuracy']):>10}{pct(v['tumour_or_not']):>10}"
                         f"{pct(v['classified']):>10}{pct(v['uncertain']):>10}{pct(v['rejected']):>10}"
                         f"{v['confident_errors']:>10}")
        lines.append(f"worst source (tumour or not): {r['worst_source']['name']} "
                     f"{pct(r['worst_source']['tumour_or_not'])}")
    if r.get("far_from_training"):
        lines.append("nearest training image (descriptor similarity): " + ", ".join(
            f"{k}: {pct(v['accuracy'])} of {v['n']} ({v['confident_errors']} confident errors)"
            for k, v in r["far_from_training"].items() if v["n"]))
    lines += ["",
             f"non-figshare tumour images: {r['non_figshare_tumour']['n']}, accuracy "
             f"{pct(r['non_figshare_tumour']['accuracy'])}, said no tumour {r['non_figshare_tumour']['said_notumor']}",
             f"style swap: labels unchanged {pct(r['style_swap']['unchanged'])} (figshare "
             f"{pct(r['style_swap']['unchanged_figshare'])}, other {pct(r['style_swap']['unchanged_other'])}), "
             f"accuracy {pct(r['style_swap']['accuracy'])}",
             "", f"{'pointing game':<18}" + "".join(f"{c:>12}" for c in ("glioma", "meningioma", "pituitary", "all"))]
    for m, row in r["pointing"].items():
        lines.append(f"{m:<18}" + "".join(f"{pct(row.get(c)):>12}" for c in ("glioma", "meningioma", "pituitary", "all")))
    lines += ["", f"{'energy in box':<18}" + "".join(f"{c:>12}" for c in ("glioma", "meningioma", "pituitary", "all"))]
    for m, row in r["energy_in_box"].items():
        lines.append(f"{m:<18}" + "".join(f"{'-' if row.get(c) is None else format(row[c], '.2f') + 'x':>12}"
                                          for c in ("glioma", "meningioma", "pituitary", "all")))
    b, e, d = r["box"], r["tumour_erased"], r["decisions"]
    lines += ["", f"tumour box: mean IoU {b['mean_iou']:.3f}, IoU >= 0.5 for {pct(b['iou_at_least_0.5'])} of {b['n']}",
              *[f"  {name}: IoU >= 0.5 for {pct(b[key]['iou_at_least_0.5'])} of {b[key]['n']}"
                for key, name in (("smaller_than_a_cell", "boxes under 32 x 32 px (one cell)"),
                                  ("the_rest", "larger boxes")) if b.get(key, {}).get("n")],
              *[f"  {k}: IoU >= 0.5 for {pct(v['iou_at_least_0.5'])} of {v['n']}"
                for k, v in b.get("per_source", {}).items()],
              *[f"pointing ({list(r['pointing'])[0]}) on {k}: {pct(v['hit'])} of {v['n']}"
                for k, v in r.get("pointing_per_source", {}).items()],
              f"tumour erased: tumour label {pct(e['tumour_label'])}, as classified {pct(e['tumour_label_classified'])}"
              f" (median confidence {e['median_confidence']:.3f}) of {e['n']}",
              *([f"tumour covered by the other hemisphere: tumour label {pct(r['tumour_mirrored']['tumour_label'])}, "
                 f"as classified {pct(r['tumour_mirrored']['tumour_label_classified'])} of {r['tumour_mirrored']['n']}"]
                if r.get("tumour_mirrored", {}).get("n") else []),
              *([f"tumour blurred away: tumour label {pct(r['tumour_blurred']['tumour_label'])}, as classified "
                 f"{pct(r['tumour_blurred']['tumour_label_classified'])} (median confidence "
                 f"{r['tumour_blurred']['median_confidence']:.3f})"] if r.get("tumour_blurred") else []),
              "rejected per class: " + ", ".join(f"{c} {pct(v)}" for c, v in d["rejected_per_class"].items()),
              "referred per class: " + ", ".join(f"{c} {pct(v)}" for c, v in d["referred_per_class"].items()),
              f"tumours answered no tumour: {d['tumour_called_notumor']}, of them classified "
              f"{d['tumour_called_notumor_classified']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
