"""Link the slices that calibrate the int8 graph's activation ranges into one folder, drawn from the
training part of ``model/split.json`` (never a validation slice): 10 of each class of the Training
half, 8 TCGA-LGG gliomas, 8 TCGA-LGG healthy slices and 8 Br35H tumours, 64 in all, the same
every time (seeded).

    python scripts/calibration_slices.py OUTDIR [--data DIR] [--tcga DIR] [--br35h DIR]
    BRAINTUMOR_CALIBRATION=OUTDIR braintumor export
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def draw(paths: list[str], n: int, rng: random.Random) -> list[str]:
    return sorted(rng.sample(sorted(paths), min(n, len(paths))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--split", default=str(REPO / "model" / "split.json"))
    ap.add_argument("--data", default=str(SHARED / "brain-tumor-mri" / "Training"))
    ap.add_argument("--tcga", default=str(SHARED / "tcga-lgg"))
    ap.add_argument("--br35h", default=str(SHARED / "br35h"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    split = json.loads(Path(args.split).read_text())
    rng = random.Random(args.seed)
    chosen: list[tuple[str, Path]] = []
    for cls in ("glioma", "meningioma", "notumor", "pituitary"):
        own = [p for p in split["train"] if p.split("/")[0] == cls]
        chosen += [("training", Path(args.data) / p) for p in draw(own, 10, rng)]
    tcga = split["sources"]["tcga-lgg"]["train"]
    for cls in ("glioma", "notumor"):
        chosen += [("tcga-lgg", Path(args.tcga) / p) for p in draw([p for p in tcga if p.startswith(cls + "/")], 8, rng)]
    chosen += [("br35h", Path(args.br35h) / p) for p in draw(split["sources"]["br35h"]["train"], 8, rng)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, (source, path) in enumerate(chosen):
        if not path.is_file():
            raise SystemExit(f"missing: {path}")
        link = out / f"{i:02d}-{source}-{path.parent.name}-{path.name}"
        if not link.exists():
            link.symlink_to(path.resolve())
    print(f"{len(chosen)} calibration slices in {out}")


if __name__ == "__main__":
    main()
