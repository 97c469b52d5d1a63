"""``braintumor train``: train a classifier on a folder of class sub-folders
(:func:`braintumor.training.train.main`, configured by :class:`braintumor.config.TrainConfig`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder with class sub-folders, or a root with Training/")
    p.add_argument("--out", default="runs/default", help="run folder (default: runs/default)")
    p.add_argument("--arch", default="resnet18",
                   help="resnet18, resnet34, resnet50, efficientnet_b0 or efficientnet_lite0 (ImageNet weights "
                        "from an installed package, offline)")
    p.add_argument("--pretrained", default="none", help="none, imagenet, or a weights FILE")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--resize-ratio", type=float, default=None,
                   help="validation: resize to the input size times this, then centre-crop (1: the whole slice; "
                        "the ImageNet recipe's 256/224 crops its edges)")
    p.add_argument("--crop-scale", type=float, default=None, metavar="MIN",
                   help="training: the smallest share of the slice a random crop keeps (0.6; ImageNet recipe 0.08)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--warmup-epochs", type=int, default=None)
    p.add_argument("--patience", type=int, default=None, help="early stopping patience (0: off)")
    p.add_argument("--keep-epochs", action="store_true", default=None,
                   help="save every epoch's weights too (epoch-NNN.safetensors), so that a model can be "
                        "chosen by its worst source afterwards, not only by validation loss")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds: after epoch 1, shorten the schedule to end in time")
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--ema-decay", type=float, default=None, help="EMA of weights (0: off)")
    p.add_argument("--cutmix", "--mixup", dest="mixup", type=float, default=None,
                   help="probability of a CutMix batch (a patch of another image, labels mixed by area); "
                        "--mixup is the older name of the same option")
    p.add_argument("--val-fraction", type=float, default=None)
    p.add_argument("--split-file", default=None, help="reuse a split.json from another run")
    p.add_argument("--max-images", type=int, default=None, help="use a random subset (debugging)")
    p.add_argument("--workers", type=int, default=None, help="processes that decode images once")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 mixed precision on CUDA, and on CPUs with native bfloat16 (default: on)")
    p.add_argument("--fit", choices=["pad", "crop"], default=None,
                   help="make a slice square by padding (the whole slice is seen; default) or by a centre crop")
    p.add_argument("--source", dest="sources", action="append", default=None, metavar="FOLDER",
                   help="another collection to train on: class folders (tumour/ for an unknown type, "
                        "trained as 'one of the tumour classes'), optional boxes.tsv and manifest.tsv with "
                        "a patient column; split by patient (repeatable)")
    p.add_argument("--source-balance", type=float, default=None, metavar="POWER",
                   help="draws per source within a class proportional to its size to this power "
                        "(0: as the data are, the default; 1: every source equally)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="start from all weights of a braintumor checkpoint (fine-tuning)")
    p.add_argument("--freeze-early", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the early blocks fixed (about 2x faster on a CPU); on by default with "
                        "--pretrained, --no-freeze-early trains the whole network")
    g = p.add_argument_group("tumour boxes", "teach where the tumour is and break the source-class link")
    g.add_argument("--boxes", default=None, metavar="TSV",
                   help="radiologist boxes (file xc yc w h): adds a box head, the CAM-in-box loss, "
                        "tumour copy-paste, style mixing and MRI artefacts")
    g.add_argument("--cam-loss", type=float, default=None, help="weight of the CAM-in-box loss (1)")
    g.add_argument("--box-loss", type=float, default=None, help="weight of the box head's loss (1)")
    g.add_argument("--paste", type=float, default=None, help="share of no-tumour images given a tumour (0.3)")
    g.add_argument("--erase", type=float, default=None, help="share of tumour images with it covered (0.12)")
    g.add_argument("--erase-fill", type=float, default=None,
                   help="share of covered tumours inpainted instead of covered with healthy tissue (0)")
    g.add_argument("--erase-mirror", type=float, default=None,
                   help="share of covered tumours covered by the other hemisphere of the same slice (0)")
    g.add_argument("--style-mix", type=float, default=None, help="share given the other source's histogram (0.3)")
    g.add_argument("--artefacts", type=float, default=None, help="how often each TorchIO artefact applies (0.3)")


def run(args: argparse.Namespace) -> int:
    from ..config import TrainConfig
    from ..training.models import get_arch
    from ..training.train import main

    spec = get_arch(args.arch)  # an unknown name is refused before any work
    saved = Path(args.out) / "config.json"
    if args.resume and saved.is_file():
        cfg = TrainConfig.from_json(saved.read_text())
        cfg.resume = True
        if args.epochs:
            cfg.epochs = args.epochs
    else:
        overrides = {k: getattr(args, k) for k in (
            "epochs", "img_size", "batch_size", "lr", "weight_decay", "warmup_epochs", "patience",
            "time_budget", "keep_epochs", "label_smoothing", "amp",
            "ema_decay", "mixup", "val_fraction", "split_file", "max_images", "workers", "init", "freeze_early", "boxes",
            "cam_loss", "box_loss", "paste", "erase", "erase_fill", "erase_mirror", "style_mix", "artefacts",
            "fit", "source_balance", "resize_ratio")}
        if args.crop_scale is not None:
            overrides["crop_scale"] = (args.crop_scale, 1.0)
        if args.pretrained != "none":  # the input scaling the weights were trained with ([-1, 1] for Lite)
            overrides.update(mean=spec.mean, std=spec.std)
        if args.init:  # fine-tuning keeps the checkpoint's input scaling (and its fit, unless --fit says)
            from ..inference.model_file import read_header

            prep = read_header(args.init).get("preprocessing") or {}
            overrides.update({k: tuple(prep[k]) for k in ("mean", "std") if k in prep})
            if overrides.get("fit") is None and prep.get("fit"):
                overrides["fit"] = prep["fit"]
        if args.sources:
            overrides["sources"] = tuple(str(Path(s).resolve()) for s in args.sources)
        cfg = TrainConfig.recipe(args.pretrained, data=args.data, out=args.out, arch=args.arch,
                                 device=args.device, seed=args.seed, resume=args.resume, **overrides)
    result = main(cfg)
    if result:
        print(json.dumps(result, indent=2))
    return 0

