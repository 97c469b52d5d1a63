"""How well the out-of-distribution gate refuses what is not a brain MRI slice, and how rarely it
refuses real slices.

    python benchmarks/ood_eval.py [--model FILE] [--backend auto] [--seed 1] [--data DIR] [--split FILE]
                                  [--source DIR]... [--robustness N]

Real slices: the validation split of every source (``model/split.json``'s ``val`` under ``--data``,
and each ``--source`` folder's files that the split records under ``sources``), without the CT
slices that ``model/not-mri.tsv`` lists (they are counted with the CT); the rejected share is
printed per class and per source. Not brain MRI: ``benchmarks/ood_set.py`` (seed 1: none of its
generated pictures is among the gate's negatives), printed per kind and per origin, with what each
rejection said. Everything goes through ``Predictor.predict_batch``, the served path. Skips (exit 0,
one line on stderr) when the data or the split file are missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import SHARED_DATA, SPLIT, TRAINING, require  # noqa: E402

SOURCES = (SHARED_DATA / "tcga-lgg", SHARED_DATA / "br35h")


def real_slices(data: Path, split: dict, sources: list[Path], not_mri: set[str]) -> list[tuple[str, str, Path]]:
    """(source, class, path) of every validation slice that is MRI."""
    out = [("main", r.split("/")[0], data / r) for r in split["val"] if r not in not_mri]
    for folder in sources:
        entry = (split.get("sources") or {}).get(folder.name)
        if not entry:
            print(f"  {folder.name}: the split records no validation files for it; left out", file=sys.stderr)
            continue
        out += [(folder.name, r.split("/")[0], folder / r) for r in entry["val"]]
    return out


def robustness(predictor, files: list[Path], n: int) -> None:
    """False rejections of validation slices sent with changes a real scan may come with."""
    import io

    from PIL import Image, ImageEnhance

    from braintumor.imaging import load_image

    def jpeg(g, q):
        buf = io.BytesIO()
        g.save(buf, "JPEG", quality=q)
        return Image.open(io.BytesIO(buf.getvalue()))

    changes = {
        "as is": lambda g: g,
        "upscaled to 512 px": lambda g: g.resize((512, 512), Image.BICUBIC),
        "downscaled to 128 px": lambda g: g.resize((128, 128), Image.BILINEAR),
        "JPEG quality 40": lambda g: jpeg(g, 40),
        "rotated 10 degrees": lambda g: g.rotate(10, resample=Image.BILINEAR),
        "mirrored": lambda g: g.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "contrast x0.8": lambda g: ImageEnhance.Contrast(g).enhance(0.8),
        "brightness x1.2": lambda g: ImageEnhance.Brightness(g).enhance(1.2),
        "padded with black": lambda g: Image.fromarray(np.pad(np.asarray(g), g.width // 5)),
        "cropped to 85%": lambda g: g.crop((g.width * 0.075, g.height * 0.075, g.width * 0.925, g.height * 0.925)),
    }
    rng = np.random.default_rng(0)
    grays = [load_image(files[i]) for i in rng.choice(len(files), min(n, len(files)), replace=False)]
    print(f"\n{len(grays)} validation slices with changes a real scan may come with:")
    for name, change in changes.items():
        rs = predictor.predict_batch([change(g) for g in grays], batch_size=32)
        print(f"  {name:<22}{100 * np.mean([r['decision'] == 'rejected' for r in rs]):>6.1f}% rejected", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--backend", default="auto", help="Predictor backend (default: auto, as users get)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the generated part of the set (not 0: the gate's)")
    ap.add_argument("--data", default=str(TRAINING), help="the Training folder")
    ap.add_argument("--split", default=str(SPLIT))
    ap.add_argument("--source", action="append", default=None, metavar="DIR",
                    help="another source folder (default: ../shared/data/tcga-lgg and br35h where present)")
    ap.add_argument("--robustness", type=int, default=0, metavar="N",
                    help="also re-send N validation slices resized, re-compressed, re-contrasted, ... (default: 0)")
    args = ap.parse_args()
    data = require(args.data, TRAINING, option="--data")
    split_file = require(args.split, SPLIT, file=True, option="--split")
    sources = [Path(s) for s in args.source] if args.source else [s for s in SOURCES if s.is_dir()]

    import ood_set

    from braintumor.inference.ood import OodGate
    from braintumor.inference.predictor import Predictor

    predictor = Predictor.load(args.model, backend=args.backend)
    gate = OodGate.from_meta(predictor.checkpoints[0].meta.get("ood"))
    if not gate.fitted or gate.legacy:
        print("the checkpoint's gate is missing or was fitted by an earlier version: braintumor fit-gate")
        return 1
    split = json.loads(split_file.read_text())
    not_mri = {line.split("\t")[0] for line in ood_set.NOT_MRI.read_text().splitlines()[1:]} \
        if ood_set.NOT_MRI.is_file() else set()
    slices = real_slices(data, split, sources, not_mri)
    print(f"model {predictor.name} {predictor.version}, backend {predictor.backend}; {len(slices)} validation "
          f"MRI slices of {1 + len(sources)} sources", flush=True)
    t0 = time.perf_counter()
    results = predictor.predict_batch([p for _, _, p in slices], batch_size=32)
    seconds = time.perf_counter() - t0
    rejected = defaultdict(list)
    for (source, cls, path), r in zip(slices, results):
        hit = r["decision"] == "rejected"
        rejected[f"class {cls}"].append(hit)
        rejected[f"source {source}"].append(hit)
        rejected[f"{source}/{cls}"].append(hit)
        if hit:
            print(f"  rejected: {source}/{path.name}: {r['reason']}")
    print("\nreal slices rejected (target: at most 1% of any class and any source):")
    for key in sorted(rejected):
        v = rejected[key]
        print(f"  {key:<24}{sum(v):>4} of {len(v):>4}  {100 * np.mean(v):5.2f}%")
    allv = [x for k, v in rejected.items() if k.startswith("source ") for x in v]
    print(f"  {'all':<24}{sum(allv):>4} of {len(allv):>4}  {100 * np.mean(allv):5.2f}%")

    items = ood_set.build(args.seed)
    outs = predictor.predict_batch([im for _, _, im, _ in items], batch_size=32, errors="return")
    table: dict[tuple[str, str], list] = defaultdict(list)
    for (kind, name, _, origin), r in zip(items, outs):
        table[(kind, origin)].append((name, r))
    print(f"\nnot brain MRI slices ({len(items)}; benchmarks/ood_set.py, seed {args.seed}):")
    print(f"  {'kind':<16}{'origin':<11}{'n':>4}{'rejected':>10}   said (rejections)                  accepted")
    totals = Counter()
    for (kind, origin), rows in sorted(table.items()):
        ok = [(n, r) for n, r in rows if "error" not in r]
        hit = [r for _, r in ok if r["decision"] == "rejected"]
        said = Counter(r.get("rejection", "?") for r in hit)
        missed = [n for n, r in ok if r["decision"] != "rejected"]
        totals[origin, "n"] += len(ok)
        totals[origin, "hit"] += len(hit)
        print(f"  {kind:<16}{origin:<11}{len(ok):>4}{100 * len(hit) / max(len(ok), 1):>9.1f}%   "
              f"{', '.join(f'{k} {v}' for k, v in said.most_common(3)):<35}{', '.join(missed[:4])}"
              + (f" (+{len(missed) - 4})" if len(missed) > 4 else "")
              + (f"  unreadable: {len(rows) - len(ok)}" if len(rows) > len(ok) else ""))
    for origin in ("held-out", "dataset", "generated", "checks"):
        if totals[origin, "n"]:
            print(f"  {'all ' + origin:<27}{totals[origin, 'n']:>4}{100 * totals[origin, 'hit'] / totals[origin, 'n']:>9.1f}%")

    import matplotlib.cbook as cbook

    with cbook.get_sample_data("s1045.ima.gz") as f:  # a sagittal brain MRI from elsewhere: should pass
        mri = np.frombuffer(f.read(), np.uint16).reshape(256, 256)
    r = predictor.predict(mri)
    print(f"\nmatplotlib's sagittal brain MRI (s1045.ima): {r['decision']} ({r.get('reason')})")
    print(f"validation inference: {seconds:.0f} s for {len(slices)} slices")
    if args.robustness:
        robustness(predictor, [p for _, _, p in slices], args.robustness)
    return 0


if __name__ == "__main__":
    sys.exit(main())
