"""``braintumor fit-gate``: fit a checkpoint's out-of-distribution gate on the validation slices of
every source and store it in the checkpoint (:func:`braintumor.training.gate_fit.fit_into_checkpoint`)."""

from __future__ import annotations

from pathlib import Path

from ..config import BACKENDS

NOT_MRI = "model/not-mri.tsv"


def configure(p) -> None:
    p.add_argument("--model", default=None, metavar="FILE", help="checkpoint to fit in place "
                   "(default: the shipped model, whose manifest SHA-256 is then updated)")
    p.add_argument("--data", required=True, help="the main Training folder the split refers to")
    p.add_argument("--split", required=True, metavar="FILE", help="split.json with 'train', 'val' (and 'sources')")
    p.add_argument("--source", action="append", default=[], metavar="DIR",
                   help="another source folder (class sub-folders); its train/val files come from the split's "
                        "'sources' entry of the same name, or from a split by patient; repeat for several")
    p.add_argument("--not-mri", default=None, metavar="FILE",
                   help=f"images under --data that are not MRI, 'file<TAB>kind' (default: {NOT_MRI} when it exists)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="fit on the outputs of this inference engine (default auto: as served)")
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    import json

    from ..inference import shipped
    from ..errors import UsageError
    from ..training.gate_fit import fit_into_checkpoint

    for option, path, is_dir in (("--split", args.split, False), ("--data", args.data, True),
                                 *(("--source", s, True) for s in args.source)):
        if not (Path(path).is_dir() if is_dir else Path(path).is_file()):
            raise UsageError(f"{option}: no such {'folder' if is_dir else 'file'}: {path}")
    not_mri = args.not_mri or (NOT_MRI if Path(NOT_MRI).is_file() else None)
    if not_mri is not None and not Path(not_mri).is_file():
        raise UsageError(f"--not-mri: no such file: {not_mri}")
    if args.backend != "torch":
        from ..inference.backends import give_cores_to_onnx

        give_cores_to_onnx()
    path = args.model or shipped.default_model_path()
    out = fit_into_checkpoint(path, args.data, args.split, args.source, not_mri, args.backend, args.seed)
    print(json.dumps(out, indent=2))
    return 0
