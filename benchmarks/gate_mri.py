"""How often the out-of-distribution gate refuses real brain MRI slices: as they are, and as they
may arrive changed (framed, annotated, cropped, padded, turned, re-contrasted, shrunk and
re-compressed).

    python benchmarks/gate_mri.py [--model FILE] [--backend auto] [--n N] [--seed 1] [--non-mri]
                                  [--data DIR] [--split FILE] [--source DIR]...

The validation split of every source (``model/split.json``; the head CT slices that
``model/not-mri.tsv`` lists left out), each slice sent as it is and once changed by each of
:data:`braintumor.training.gate_negatives.MRI_VARIANTS` (random strength, the same for the same ``--seed``):

- ``white frame``, ``grey frame``: a margin around the slice or a line over its edge;
- ``annotated``: burnt-in names, IDs, dates, sequence and window text, a scale bar, arrows;
- ``framed and annotated``: both;
- ``tight crop`` (into or right around the head), ``loose crop`` (more dark ground, off centre);
- ``odd aspect``: padded to a picture 1.3-2.2 times as wide or tall, black, dark or white;
- ``rotated 90``: turned by 90 degrees, sometimes mirrored;
- ``gamma`` (0.45-2.2), ``contrast`` (x0.5-1.6, shifted);
- ``small JPEG``: shrunk to 80-200 px and saved at JPEG quality 20-70.

The refused share is printed per variant, per source and per class, and per source/class for
every variant, with what the refusals said; the target is at most 1% of any class of any source.
With ``--non-mri`` the images of ``benchmarks/ood_set.py`` (seed 1) are sent too, and the refused
share per origin printed: what must stay refused. Everything goes through
``Predictor.predict_batch``, the served path. Skips (exit 0, one line on stderr) when the data or
the split file are missing.

The Training images with a row in ``tumour-boxes/training-boxes.tsv`` come from the figshare
collection (axial, coronal and sagittal contrast T1); that file names no view, so figures per view
are not given; ``figshare`` vs ``other`` rows split the main source by collection instead.
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
BOXES = SHARED_DATA / "tumour-boxes" / "training-boxes.tsv"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--backend", default="auto", help="Predictor backend (default: auto, as users get)")
    ap.add_argument("--n", type=int, default=0, help="changed copies of at most N slices per variant "
                                                     "(a random, fixed subset; default 0: every slice)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the changes and of the subset")
    ap.add_argument("--non-mri", action="store_true", help="also send benchmarks/ood_set.py (seed 1)")
    ap.add_argument("--data", default=str(TRAINING), help="the Training folder")
    ap.add_argument("--split", default=str(SPLIT))
    ap.add_argument("--source", action="append", default=None, metavar="DIR",
                    help="another source folder (default: ../shared/data/tcga-lgg and br35h where present)")
    args = ap.parse_args()
    data = require(args.data, TRAINING, option="--data")
    split_file = require(args.split, SPLIT, file=True, option="--split")
    sources = [Path(s) for s in args.source] if args.source else [s for s in SOURCES if s.is_dir()]

    import ood_eval
    import ood_set

    from braintumor.imaging import load_image
    from braintumor.inference.predictor import Predictor
    from braintumor.training.gate_negatives import MRI_VARIANTS, mri_variant

    predictor = Predictor.load(args.model, backend=args.backend)
    split = json.loads(split_file.read_text())
    not_mri = {line.split("\t")[0] for line in ood_set.NOT_MRI.read_text().splitlines()[1:]} \
        if ood_set.NOT_MRI.is_file() else set()
    slices = ood_eval.real_slices(data, split, sources, not_mri)
    figshare = {line.split("\t")[0] for line in BOXES.read_text().splitlines()[1:]} if BOXES.is_file() else set()
    print(f"model {predictor.name} {predictor.version}, backend {predictor.backend}; {len(slices)} validation "
          f"MRI slices of {1 + len(sources)} sources", flush=True)

    def collection(source: str, path: Path) -> str | None:
        if source != "main" or not figshare:
            return None
        return "figshare" if f"{path.parent.name}/{path.name}" in figshare else "other"

    rng = np.random.default_rng(args.seed)
    subset = np.sort(rng.choice(len(slices), args.n, replace=False)) if 0 < args.n < len(slices) \
        else np.arange(len(slices))
    grays = [load_image(p) for _, _, p in slices]
    table: dict[tuple[str, str], list[bool]] = defaultdict(list)  # (variant, group) -> refused
    said: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)
    t0 = time.perf_counter()
    for v, variant in enumerate(("as is", *MRI_VARIANTS)):
        idx = np.arange(len(slices)) if variant == "as is" else subset
        images = [grays[i] if variant == "as is"
                  else mri_variant(np.random.default_rng([args.seed, int(i), v]), grays[i], variant) for i in idx]
        results = predictor.predict_batch(images, batch_size=32)
        for i, r in zip(idx, results):
            source, cls, path = slices[i]
            hit = r["decision"] == "rejected"
            groups = ["all", f"source {source}", f"class {cls}", f"{source}/{cls}"]
            coll = collection(source, path)
            if coll:
                groups.append(f"main {coll}/{cls}")
            for g in groups:
                table[variant, g].append(hit)
            if hit:
                said[variant][r.get("rejection", "?")] += 1
                if len(examples[variant]) < 6:
                    examples[variant].append(f"{source}/{path.name}")
        print(f"  {variant:<22}{len(idx):>5} slices sent", flush=True)
    seconds = time.perf_counter() - t0

    variants = ("as is", *MRI_VARIANTS)
    groups = sorted({g for _, g in table if g != "all"}, key=lambda g: (not g.startswith("source"),
                                                                          not g.startswith("class"), g))
    print("\nreal slices refused, % (n refused), per variant (target: at most 1% of any class of any source):")
    width = max(len(g) for g in groups) + 2
    print(f"  {'variant':<22}{'all':>13}   said (refusals); e.g.")
    for variant in variants:
        v = table[variant, "all"]
        print(f"  {variant:<22}{100 * np.mean(v):6.2f}% ({sum(v):>3})   "
              f"{', '.join(f'{k} {n}' for k, n in said[variant].most_common(4))}"
              + (f"; {', '.join(examples[variant][:3])}" if examples[variant] else ""))
    print("\nper group (rows) and variant (columns), % refused:")
    short = {"as is": "as is", "white frame": "white", "grey frame": "grey", "annotated": "text",
             "framed and annotated": "fr+text", "tight crop": "tight", "loose crop": "loose",
             "odd aspect": "aspect", "rotated 90": "rot90", "gamma": "gamma", "contrast": "contr",
             "small JPEG": "jpeg"}
    print(f"  {'group':<{width}}{'n':>5}" + "".join(f"{short.get(v, v)[:7]:>8}" for v in variants))
    for g in [*groups, "all"]:
        n = len(table["as is", g])
        print(f"  {g:<{width}}{n:>5}" + "".join(f"{100 * np.mean(table[v, g]):8.1f}" if table[v, g] else f"{'-':>8}"
                                              for v in variants))
    changed = [x for v in MRI_VARIANTS for x in table[v, "all"]]
    worst = max(((100 * np.mean(table[v, g]), v, g) for v in variants for g in groups
                 if g.count("/") == 1 and not g.startswith("main ") and len(table[v, g]) >= 50), default=None)
    print(f"\nall changed copies: {100 * np.mean(changed):.2f}% refused ({sum(changed)} of {len(changed)})")
    if worst:
        print(f"worst source/class with at least 50 slices: {worst[2]}, {worst[1]}: {worst[0]:.1f}%")
    print(f"{len(changed) + len(slices)} images in {seconds:.0f} s")

    if args.non_mri:
        items = ood_set.build(1)
        outs = predictor.predict_batch([im for _, _, im, _ in items], batch_size=32, errors="return")
        tally: dict[str, list[bool]] = defaultdict(list)
        for (kind, name, _, origin), r in zip(items, outs):
            if "error" not in r:
                tally[origin].append(r["decision"] == "rejected")
                tally[f"{origin}/{kind}"].append(r["decision"] == "rejected")
        print("\nnot brain MRI (benchmarks/ood_set.py, seed 1), refused:")
        for key in sorted(tally, key=lambda k: ("/" in k, k)):
            v = tally[key]
            print(f"  {key:<30}{sum(v):>4} of {len(v):>4}  {100 * np.mean(v):5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
