"""A simulated site: does ``braintumor finetune`` on a few of its labelled scans repair the model?

The site's scans are the validation images of a split file (the shipped model never trained on
them) passed through a fixed "other scanner" transform:

- lower in-plane resolution (down to 45% of the side, then back up, bilinear),
- a different contrast weighting (gamma 0.55 on intensities in [0, 1]),
- a smooth multiplicative bias field (a tilted plane plus a quadratic bowl, 0.65x to 1.35x),
- Rician noise (magnitude of the signal plus complex Gaussian noise, sigma 7 grey levels).

The site's images are split by near-duplicate group (the audit's method) into an adaptation pool
and a test part. For each adaptation size (50, 100, 300 by default) a class-stratified draw from the
pool goes to ``braintumor finetune``; the adapted model and the starting model are both measured
on the same test part: accuracy, macro-F1, missed tumours (tumours answered "no tumour") and the
decisions. Also the time fine-tuning took (training, recalibration and the before/after figures on
its own validation part). Writes ``OUT/site_adaptation.json`` and ``OUT/site_adaptation.png``.

    python benchmarks/site_adaptation.py [--model FILE] [--sizes 50 100 300] [--epochs 8]

Needs ``../shared/data/brain-tumor-mri/Training``; skips (exit 0, one line on stderr) where it is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import REPO, SPLIT, TRAINING, require  # noqa: E402


def site_transform(gray: Image.Image, seed: int) -> Image.Image:
    """The simulated scanner: resolution, contrast weighting, bias field and Rician noise."""
    rng = np.random.default_rng(seed)
    w, h = gray.size
    low = gray.resize((max(8, int(w * 0.45)), max(8, int(h * 0.45))), Image.BILINEAR)
    x = np.asarray(low.resize((w, h), Image.BILINEAR), dtype=np.float64) / 255.0
    x = x ** 0.55
    yy, xx = np.mgrid[0:h, 0:w]
    u, v = (xx / max(1, w - 1)) * 2 - 1, (yy / max(1, h - 1)) * 2 - 1
    angle = rng.uniform(0, 2 * np.pi)
    field = 1.0 + 0.2 * (np.cos(angle) * u + np.sin(angle) * v) + 0.15 * (1 - (u ** 2 + v ** 2))
    x = np.clip(x * field, 0, None) * 255.0
    sigma = 7.0
    x = np.sqrt((x + rng.normal(0, sigma, x.shape)) ** 2 + rng.normal(0, sigma, x.shape) ** 2)
    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8), "L")


def build_site(data: Path, val: list[str], out: Path) -> Path:
    from braintumor.progress import progress
    from braintumor.imaging import load_image

    root = out / "site"
    done = root / ".complete"
    if done.is_file() and int(done.read_text()) == len(val):
        return root
    bar = progress(total=len(val), desc="site scans")
    for i, rel in enumerate(val):
        target = root / Path(rel).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        site_transform(load_image(data / rel), seed=i).save(target)
        bar.update()
    bar.close()
    done.write_text(str(len(val)))
    return root


def stratified(rels: list[str], n: int, seed: int) -> list[str]:
    """``n`` of ``rels`` with the classes in their proportions (at least one of each)."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[str]] = {}
    for r in rels:
        by_class.setdefault(r.split("/")[0], []).append(r)
    total = len(rels)
    picked: list[str] = []
    for c, items in sorted(by_class.items()):
        k = max(1, round(n * len(items) / total))
        picked += [items[i] for i in rng.permutation(len(items))[:k]]
    return sorted(picked[:n] if len(picked) > n else picked)


def link_folder(root: Path, rels: list[str], out: Path) -> Path:
    for r in rels:
        target = out / r
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(root / r, target)
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["images"] for r in result["adapted"]]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    before = result["before"]
    axes[0].axhline(100 * before["accuracy"], color="grey", ls="--", label="shipped model")
    axes[0].plot(sizes, [100 * r["after"]["accuracy"] for r in result["adapted"]], "o-", label="fine-tuned")
    axes[0].set(xlabel="site scans used to adapt", ylabel="accuracy on the site's test part (%)")
    axes[1].axhline(before["missed tumours"], color="grey", ls="--", label="shipped model")
    axes[1].plot(sizes, [r["after"]["missed tumours"] for r in result["adapted"]], "o-", color="C3",
                 label="fine-tuned")
    axes[1].set(xlabel="site scans used to adapt", ylabel=f"missed tumours (of {before['tumours']})")
    from matplotlib.ticker import NullFormatter

    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("A simulated site (other-scanner transform): fine-tuning on its labelled scans", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(TRAINING))
    ap.add_argument("--split", default=str(SPLIT))
    ap.add_argument("--model", default=None, help="checkpoint to adapt (default: the shipped model)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 300])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--limit", type=int, default=0, help="use only this many validation images (a quick look)")
    ap.add_argument("--out", default=str(REPO / "runs" / "site-adaptation"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    data = require(args.data, TRAINING, option="--data")
    from braintumor.inference import shipped
    from braintumor.cli import main as cli
    from braintumor.data.folders import list_samples
    from braintumor.training.finetune import site_figures
    from braintumor.data.split import make_split

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    val = json.loads(Path(args.split).read_text())["val"]
    if args.limit:
        rng = np.random.default_rng(args.seed)
        val = sorted(rng.choice(val, args.limit, replace=False).tolist())
    model = Path(args.model) if args.model else shipped.default_model_path()
    site = build_site(data, val, out)
    samples = list_samples(site)
    parts = make_split(samples, site, val_fraction=0.5, seed=args.seed)
    pool, test = parts.train, parts.val
    print(f"site: {len(samples)} scans; adaptation pool {len(pool)}, test part {len(test)} "
          f"({parts.groups} near-duplicate groups)", file=sys.stderr)
    before = site_figures(model, site, test, "shipped model on the test part")
    adapted = []
    for n in args.sizes:
        if n > len(pool):
            print(f"site_adaptation: skip {n}: the pool holds {len(pool)}", file=sys.stderr)
            continue
        chosen = stratified(pool, n, args.seed + n)
        folder = link_folder(site, chosen, out / f"adapt-{n}")
        run_dir = out / f"run-{n}"
        t0 = time.perf_counter()
        code = cli(["finetune", "--data", str(folder), "--model", str(model), "--epochs", str(args.epochs),
                    "--out", str(run_dir), "--seed", str(args.seed), "--json"])
        seconds = time.perf_counter() - t0
        if code != 0:
            print(f"site_adaptation: finetune on {n} images failed ({code})", file=sys.stderr)
            return code
        after = site_figures(run_dir / "last.safetensors", site, test, f"adapted on {n}, test part")
        adapted.append({"images": len(chosen), "finetune_seconds": round(seconds, 1),
                        "model": str(run_dir / "last.safetensors"), "after": after})

    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "model": str(model), "transform": "site_transform (see the module docstring)",
        "site_scans": len(samples), "pool": len(pool), "test": len(test), "epochs": args.epochs,
        "before": before, "adapted": adapted,
    }
    (out / "site_adaptation.json").write_text(json.dumps(result, indent=2) + "\n")
    if adapted:
        plot(result, out / "site_adaptation.png")
    print(f"test part: {len(test)} site scans ({before['tumours']} with a tumour); {result['machine']}")
    print(f"{'adapted on':<14}{'finetune s':>11}{'accuracy':>10}{'macro-F1':>10}{'missed':>8}{'classified':>11}"
          f"{'referred':>9}{'rejected':>9}")
    rows = [("shipped model", None, before)] + [(f"{r['images']} scans", r["finetune_seconds"], r["after"])
                                                for r in adapted]
    for name, secs, f in rows:
        d = f["decisions"]
        print(f"{name:<14}{'-' if secs is None else f'{secs:.0f}':>11}{100 * f['accuracy']:>9.1f}%"
              f"{f['macro_f1']:>10.3f}{f['missed tumours']:>8d}{d['classified']:>11d}{d['uncertain']:>9d}"
              f"{d['rejected']:>9d}")
    print(f"wrote {out / 'site_adaptation.json'}" + (f" and {out / 'site_adaptation.png'}" if adapted else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
