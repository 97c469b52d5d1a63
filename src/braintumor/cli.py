"""The ``braintumor`` command. Each sub-command lives in its own module with ``configure`` and ``run``;
this file only wires them, so that ``braintumor --help`` imports nothing heavy."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from . import __version__
from .errors import UsageError  # noqa: F401 (re-exported: braintumor.cli.UsageError)

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("braintumor.cli", "train a classifier on a folder of class sub-folders"),
    "evaluate": ("braintumor.cli", "metrics of a model on a labelled folder"),
    "audit": ("braintumor.audit", "find duplicates, near-duplicates and label conflicts"),
    "predict": ("braintumor.predict_cli", "classify images, with Grad-CAM heat maps"),
    "serve": ("braintumor.web.serve", "start the web app and JSON API"),
    "calibrate": ("braintumor.calibration", "fit temperature, referral and the OOD gate on a split"),
    "fit-boxes": ("braintumor.box_refit", "refit a checkpoint's tumour-box head on its frozen features"),
    "index": ("braintumor.index_cli", "embed a labelled folder into a similar-case index for a model"),
    "feedback": ("braintumor.feedback_cli", "list, summarise or export the corrections a server collected"),
    "finetune": ("braintumor.finetune", "adapt a model to a site's labelled scans on this machine"),
}


def configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder with class sub-folders, or a root with Training/")
    p.add_argument("--out", default="runs/default", help="run folder (default: runs/default)")
    p.add_argument("--arch", default="resnet18", help="resnet18, resnet34, resnet50 or efficientnet_b0")
    p.add_argument("--pretrained", default="none", help="none, imagenet, or a weights FILE")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--warmup-epochs", type=int, default=None)
    p.add_argument("--patience", type=int, default=None, help="early stopping patience (0: off)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds: after epoch 1, shorten the schedule to end in time")
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--ema-decay", type=float, default=None, help="EMA of weights (0: off)")
    p.add_argument("--mixup", type=float, default=None, help="probability of a CutMix batch")
    p.add_argument("--val-fraction", type=float, default=None)
    p.add_argument("--split-file", default=None, help="reuse a split.json from another run")
    p.add_argument("--max-images", type=int, default=None, help="use a random subset (debugging)")
    p.add_argument("--workers", type=int, default=None, help="processes that decode images once")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 mixed precision on CUDA, and on CPUs with native bfloat16 (default: on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="start from all weights of a braintumor checkpoint (fine-tuning)")
    p.add_argument("--freeze-early", action="store_true", default=None,
                   help="with --init: keep the early blocks fixed (about 2x faster on a CPU)")
    g = p.add_argument_group("tumour boxes", "teach where the tumour is and break the source-class link")
    g.add_argument("--boxes", default=None, metavar="TSV",
                   help="radiologist boxes (file xc yc w h): adds a box head, the CAM-in-box loss, "
                        "tumour copy-paste, style mixing and MRI artefacts")
    g.add_argument("--cam-loss", type=float, default=None, help="weight of the CAM-in-box loss (1)")
    g.add_argument("--box-loss", type=float, default=None, help="weight of the box head's loss (1)")
    g.add_argument("--paste", type=float, default=None, help="share of no-tumour images given a tumour (0.3)")
    g.add_argument("--erase", type=float, default=None, help="share of tumour images with it covered (0.12)")
    g.add_argument("--style-mix", type=float, default=None, help="share given the other source's histogram (0.3)")
    g.add_argument("--artefacts", type=float, default=None, help="how often each TorchIO artefact applies (0.3)")


def run_train(args: argparse.Namespace) -> int:
    from .config import TrainConfig
    from .models import get_arch
    from .train import main

    get_arch(args.arch)
    saved = Path(args.out) / "config.json"
    if args.resume and saved.is_file():
        cfg = TrainConfig.from_json(saved.read_text())
        cfg.resume = True
        if args.epochs:
            cfg.epochs = args.epochs
    else:
        overrides = {k: getattr(args, k) for k in (
            "epochs", "img_size", "batch_size", "lr", "weight_decay", "warmup_epochs", "patience",
            "time_budget", "label_smoothing", "amp",
            "ema_decay", "mixup", "val_fraction", "split_file", "max_images", "workers", "init", "freeze_early", "boxes",
            "cam_loss", "box_loss", "paste", "erase", "style_mix", "artefacts")}
        cfg = TrainConfig.recipe(args.pretrained, data=args.data, out=args.out, arch=args.arch,
                                 device=args.device, seed=args.seed, resume=args.resume, **overrides)
    result = main(cfg)
    if result:
        print(json.dumps(result, indent=2))
    return 0


def configure_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder with class sub-folders, or a root with Testing/")
    p.add_argument("--model", default=None, help="checkpoint (default: the model shipped with the package)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout, nothing else")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--batch-size", type=int, default=64)


def run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, format_report

    report = evaluate(args.data, args.model, args.device, args.batch_size)
    print(json.dumps(report) if args.json else format_report(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="braintumor", description=(
        "Brain MRI tumour classifier (glioma, meningioma, notumor, pituitary) with Grad-CAM. "
        "For research and teaching, not for diagnosis."))
    parser.add_argument("--version", action="version", version=f"braintumor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_command=name, _module=module)
        if module == "braintumor.cli":
            globals()[f"configure_{name}"](p)
        else:
            try:
                importlib.import_module(module).configure(p)
            except ImportError as exc:  # an optional part that is not installed
                p.set_defaults(_missing=str(exc))
    return parser


def known_errors() -> tuple[type[BaseException], ...]:
    from .checkpoint import CheckpointError
    from .data import DataError
    from .imaging import ImageError
    from .models import WeightsError

    return (UsageError, DataError, CheckpointError, WeightsError, ImageError, ValueError, FileNotFoundError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_missing", None):
        print(f"braintumor {args._command}: unavailable ({args._missing})", file=sys.stderr)
        return 2
    try:
        if args._module == "braintumor.cli":
            return globals()[f"run_{args._command}"](args)
        return importlib.import_module(args._module).run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except known_errors() as exc:
        print(f"braintumor {args._command}: error: {exc}", file=sys.stderr)
        return 2


def entry() -> None:
    sys.exit(main())
