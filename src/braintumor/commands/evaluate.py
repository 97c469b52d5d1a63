"""``braintumor evaluate``: metrics of a model on a labelled folder, through the served code
(:func:`braintumor.inference.evaluate.evaluate`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import BACKEND_HELP, BACKENDS
from ..errors import UsageError


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder with class sub-folders, or a root with Testing/")
    p.add_argument("--model", default=None, action="append", metavar="FILE",
                   help="checkpoint (default: the model shipped with the package); repeat for an ensemble")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP + "; as served by default")
    p.add_argument("--tta", action="store_true", help="average over mirrored and shifted views, as predict --tta")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout, nothing else")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="where the torch backend runs (auto: a GPU when there is one)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--split", default=None, metavar="FILE",
                   help="evaluate only the 'val' images of this split.json (paths under --data)")


def run(args: argparse.Namespace) -> int:
    from ..inference.evaluate import evaluate, format_report

    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    model = args.model[0] if args.model and len(args.model) == 1 else args.model
    if args.split and not Path(args.split).is_file():
        raise UsageError(f"no such split file: {args.split}")
    if args.backend != "torch":
        from ..inference.backends import give_cores_to_onnx

        give_cores_to_onnx()  # this process only answers through ONNX Runtime (see braintumor.inference.backends)
    report = evaluate(args.data, model, backend=args.backend, device=args.device, batch_size=args.batch_size,
                      tta=args.tta, show_progress=not args.json, split=args.split)
    print(json.dumps(report) if args.json else format_report(report))
    return 0

