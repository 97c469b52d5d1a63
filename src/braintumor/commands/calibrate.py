"""``braintumor calibrate``: fit temperature, conformal scores, the out-of-distribution gate and
the no-tumour rule of a checkpoint on its split (:func:`braintumor.training.calibration.calibrate`)."""

from __future__ import annotations

from pathlib import Path

from ..config import BACKENDS

DEFAULT_COVERAGE = 0.95  # braintumor.inference.decision.DEFAULT_COVERAGE (kept here: --help loads no numpy)
NOTUMOR_REFERRAL = (0.05, 0.10)  # braintumor.training.calibration.NOTUMOR_REFERRAL, for the same reason


def configure(p) -> None:
    p.add_argument("--model", default=None, metavar="FILE", help="checkpoint to calibrate in place "
                   "(default: the shipped model, whose manifest SHA-256 is then updated)")
    p.add_argument("--data", required=True, help="the Training folder the split refers to")
    p.add_argument("--split", required=True, metavar="FILE", help="split.json with 'train' and 'val'")
    p.add_argument("--source", dest="sources", action="append", default=[], metavar="FOLDER",
                   help="another collection the split records (split.json 'sources'): its validation "
                        "slices count too (repeatable; as given to braintumor train --source)")
    p.add_argument("--boxes", default=None, metavar="TSV",
                   help="the radiologist boxes file: names the main folder's sources in the summary")
    p.add_argument("--coverage", type=float, default=DEFAULT_COVERAGE, help="default 0.95")
    p.add_argument("--notumor-referral", type=float, default=NOTUMOR_REFERRAL[1], metavar="SHARE",
                   help="the most of the validation 'no tumour' answers that the no-tumour rule may refer to "
                        "keep missed tumours from being classified (default 0.10; at least 0.05 always are)")
    p.add_argument("--ood-train-limit", type=int, default=0, metavar="N",
                   help="not used (kept so that older command lines still run): the gate fits on every slice")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="fit on the outputs of this inference engine (default auto: as served)")


def run(args) -> int:
    import json

    from ..inference import shipped
    from ..training.calibration import calibrate
    from ..errors import UsageError

    if not 0 < args.coverage < 1:
        raise UsageError("--coverage must be between 0 and 1")
    if not NOTUMOR_REFERRAL[0] <= args.notumor_referral < 1:
        raise UsageError("--notumor-referral must be at least 0.05 and below 1")
    if not Path(args.split).is_file():
        raise UsageError(f"no such split file: {args.split}")
    if not Path(args.data).is_dir():
        raise UsageError(f"no such folder: {args.data}")
    if args.backend != "torch":
        from ..inference.backends import give_cores_to_onnx

        give_cores_to_onnx()  # this process only runs its forward passes through ONNX Runtime
    path = args.model or shipped.default_model_path()
    for folder in args.sources:
        if not Path(folder).is_dir():
            raise UsageError(f"no such folder: {folder}")
    from .fit_gate import NOT_MRI

    out = calibrate(path, args.data, args.split, args.coverage, args.ood_train_limit, backend=args.backend,
                    sources=args.sources, boxes=args.boxes, not_mri=NOT_MRI if Path(NOT_MRI).is_file() else None,
                    notumor_referral=(NOTUMOR_REFERRAL[0], args.notumor_referral))
    print(json.dumps(out, indent=2))
    return 0
