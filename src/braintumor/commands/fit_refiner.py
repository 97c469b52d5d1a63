"""``braintumor fit-refiner``: fit the box refiner of a checkpoint with a box head
(:func:`braintumor.training.box_refit.fit_refiner`)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError
from .fit_boxes import box_fitting_inputs, check_box_fitting_inputs


def configure(p) -> None:
    box_fitting_inputs(p, "checkpoint with a box head")
    p.add_argument("--epochs", type=int, default=15, help="epochs over the training split's boxed images, a stage (15)")
    p.add_argument("--stages", type=int, default=2, help="refinement stages, each correcting the box before it (2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--from", dest="reuse", default=None, metavar="FILE",
                   help="take the refiner of this checkpoint instead of fitting one (only scores it)")
    p.add_argument("--out", default=None, metavar="FILE", help="write here instead of in place")


def run(args) -> int:
    from ..training.box_refit import fit_refiner

    check_box_fitting_inputs(args)
    if args.reuse is not None and not Path(args.reuse).is_file():
        raise FileNotFoundError(f"--from: no such file: {args.reuse}")
    if args.epochs < 1 or args.stages < 1:
        raise UsageError("--epochs and --stages must be at least 1")
    print(json.dumps(fit_refiner(args.model, args.data, args.boxes, args.split, args.epochs, args.seed,
                                 out=args.out, reuse=args.reuse, stages=args.stages), indent=2))
    return 0
