"""``braintumor fit-boxes``: refit a checkpoint's tumour-box head on its frozen features
(:mod:`braintumor.training.box_refit`)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError


def box_fitting_inputs(p, model_help: str) -> None:
    """The arguments every box-fitting command takes: the checkpoint, the data, boxes and split."""
    p.add_argument("--model", required=True, metavar="FILE", help=model_help)
    p.add_argument("--data", required=True, help="the Training folder the split refers to")
    p.add_argument("--boxes", required=True, metavar="TSV", help="radiologist boxes (file xc yc w h)")
    p.add_argument("--split", required=True, metavar="FILE", help="split.json with 'train' and 'val'")


def check_box_fitting_inputs(args) -> None:
    """Each named file and the data folder exist (a clear message and exit status 2 otherwise)."""
    for name in ("model", "boxes", "split"):
        if not Path(getattr(args, name)).is_file():
            raise FileNotFoundError(f"--{name}: no such file: {getattr(args, name)}")
    if not Path(args.data).is_dir():
        raise FileNotFoundError(f"--data: no such folder: {args.data}")


def configure(p) -> None:
    box_fitting_inputs(p, "checkpoint whose box head is refitted")
    p.add_argument("--passes", type=int, default=3, help="augmented passes over the training images (3)")
    p.add_argument("--epochs", type=int, default=60, help="epochs over the cached features (60)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", default=None, metavar="FILE", help="write here instead of in place")


def run(args) -> int:
    from ..training.box_refit import refit_box_head

    check_box_fitting_inputs(args)
    if args.passes < 1 or args.epochs < 1:
        raise UsageError("--passes and --epochs must be at least 1")
    print(json.dumps(refit_box_head(args.model, args.data, args.boxes, args.split, args.passes, args.epochs,
                                    args.lr, out=args.out), indent=2))
    return 0
