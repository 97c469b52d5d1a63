"""``braintumor index DIR --out FILE``: embed a labelled folder into a similar-case index for a
model (:mod:`braintumor.inference.similar`)."""

from __future__ import annotations

from pathlib import Path


def configure(p) -> None:
    p.add_argument("data", metavar="DIR", help="labelled scans: one sub-folder per class")
    p.add_argument("--out", required=True, metavar="FILE", help="the index file to write (.safetensors)")
    p.add_argument("--model", default=None, metavar="FILE", help="checkpoint (default: the shipped model)")
    p.add_argument("--batch-size", type=int, default=32)


def run(args) -> int:
    from ..errors import UsageError
    from ..inference.predictor import Predictor
    from ..inference.similar import build_index

    if not Path(args.data).is_dir():
        raise UsageError(f"no such folder: {args.data}")
    p = Predictor.load(args.model)
    index = build_index(p, args.data, p.classes, args.batch_size)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    index.save(args.out)
    size = Path(args.out).stat().st_size
    print(f"indexed {len(index)} scans of {args.data} with model {p.name} ({str(p.sha256)[:12]}) into "
          f"{args.out} ({size / 1e6:.1f} MB)")
    return 0
