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

    from braintumor.source_aug import match_histograms

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(TRAINING))
    ap.add_argument("--boxes", default=str(TUMOUR_BOXES))
    ap.add_argument("--split", default=str(SPLIT))
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "int8"])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--limit", type=int, default=0, help="at most N validation images (quick look)")
    ap.add_argument("--out", default=str(REPO / "docs" / "model"))
    args = ap.parse_args(argv)
    data = require(args.data, TRAINING, option="--data")
    require(args.boxes, TUMOUR_BOXES, file=True, option="--boxes")

    from braintumor.box_training import boxes_in_prepared, read_boxes
    from braintumor.data import progress
    from braintumor.metrics import summarize
    from braintumor.inference.predictor import Predictor

    predictor = Predictor.load(args.model, backend=args.backend)
    classes = predictor.classes
    prep = predictor.preprocessing
    S = prep.img_size
    split = json.loads(Path(args.split).read_text())
    val = split["val"]
    if args.limit:
        rng = np.random.default_rng(0)
        val = sorted(rng.choice(val, min(args.limit, len(val)), replace=False).tolist())
    boxes = read_boxes(args.boxes)
    y = np.array([classes.index(r.split("/")[0]) for r in val])
    nt = classes.index("notumor")
    figshare = np.array([r in boxes for r in val])
    t0 = time.perf_counter()
    grays = [load_gray(data / r) for r in progress(val, desc="read")]

    def answers(images, desc):
        out = []
        for i in progress(range(0, len(images), 64), desc=desc, unit="batch"):
            out += predictor.predict_batch(images[i:i + 64], batch_size=64)
        return out

    base = answers(grays, "predict")
    probs = np.array([[r["probabilities"][c] for c in classes] for r in base])
    pred = probs.argmax(1)
    s = summarize(probs, y, classes)
    report: dict = {"model": predictor.name, "sha256": predictor.sha256, "backend": predictor.backend,
                    "n_val": len(val), "accuracy": s["accuracy"], "macro_f1": s["macro_f1"]}
    other_tumour = (y != nt) & ~figshare
    report["non_figshare_tumour"] = {"n": int(other_tumour.sum()),
                                     "accuracy": float((pred[other_tumour] == y[other_tumour]).mean())
                                     if other_tumour.any() else None,
                                     "said_notumor": int((pred[other_tumour] == nt).sum())}
    swapped = answers(style_swapped(grays, figshare), "style swap")
    sp = np.array([classes.index(r["label"]) for r in swapped])
    report["style_swap"] = {"unchanged": float((sp == pred).mean()), "accuracy": float((sp == y).mean()),
                            "unchanged_figshare": float((sp == pred)[figshare].mean()),
                            "unchanged_other": float((sp == pred)[~figshare].mean())}
    # decisions
    dec = np.array([r["decision"] for r in base])
    report["decisions"] = {
        "rejected_per_class": {c: float((dec[y == k] == "rejected").mean()) for k, c in enumerate(classes)},
        "referred_per_class": {c: float((dec[y == k] == "uncertain").mean()) for k, c in enumerate(classes)},
        "tumour_called_notumor": int(((y != nt) & (pred == nt)).sum()),
        "tumour_called_notumor_classified": int(((y != nt) & (pred == nt) & (dec == "classified")).sum()),
    }
    # heat maps and boxes on boxed tumour slices
    boxed = np.flatnonzero(figshare & (y != nt))
    gauss = centre_gaussian(S)
    methods = [m for m in args.methods.split(",") if m]
    point = {m: {c: [] for c in classes if c != "notumor"} for m in methods + ["centre_gaussian"]}
    energy = {m: {c: [] for c in classes if c != "notumor"} for m in methods + ["centre_gaussian"]}
    ious, areas, examples = [], [], []
    erased: dict[str, list] = {"telea": [], "blur": []}
    for i in progress(boxed, desc="explain", unit="img"):
        g = grays[i]
        frac = boxes_in_prepared(boxes[val[i]], *g.size)
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
        w, h = g.size
        side = min(w, h)
        left, top = (w - side) / 2, (h - side) / 2
        true_px = [left + frac[0] * side, top + frac[1] * side, left + frac[2] * side, top + frac[3] * side]
        b = base[i].get("box")
        ious.append(iou(b, true_px) if b is not None else 0.0)
        areas.append((bx[2] - bx[0]) * (bx[3] - bx[1]))  # at the network's input size
        if len(examples) < 12 and i % 7 == 0:
            examples.append((g, e_first if methods else None, true_px, b, c))
        for how, rows in erased.items():
            r = predictor.predict(erase_tumour(g, true_px, how))
            rows.append((r["label"] != "notumor", r["decision"], r["confidence"]))

    def summary(d):
        out = {c: float(np.mean(v)) if v else None for c, v in d.items()}
        allv = [x for v in d.values() for x in v]
        out["all"] = float(np.mean(allv)) if allv else None
        return out

    report["pointing"] = {m: summary(point[m]) for m in point}
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
    def erased_summary(rows):
        kept = [t for t, d, _ in rows if t and d == "classified"]
        return {"n": len(rows), "tumour_label": float(np.mean([t for t, _, _ in rows])) if rows else None,
                "tumour_label_classified": len(kept) / len(rows) if rows else None,
                "median_confidence": float(np.median([c for _, _, c in rows])) if rows else None}

    report["tumour_erased"] = erased_summary(erased["telea"])
    report["tumour_blurred"] = erased_summary(erased["blur"])
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
             f"accuracy {pct(r['accuracy'])}  macro-F1 {r['macro_f1']:.4f}",
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
              f"tumour erased: tumour label {pct(e['tumour_label'])}, as classified {pct(e['tumour_label_classified'])}"
              f" (median confidence {e['median_confidence']:.3f}) of {e['n']}",
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
