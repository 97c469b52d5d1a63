"""``braintumor index DIR [--source DIR]... --split FILE --out FILE``: embed labelled folders into a
similar-case index for a model, marking the scans the model trained on
(:mod:`braintumor.inference.similar`). Run it again whenever the model's weights change."""

from __future__ import annotations

from pathlib import Path


def configure(p) -> None:
    p.add_argument("data", metavar="DIR", help="labelled scans: one sub-folder per class (the main Training folder)")
    p.add_argument("--out", required=True, metavar="FILE", help="the index file to write (.safetensors)")
    p.add_argument("--model", default=None, metavar="FILE", help="checkpoint (default: the shipped model)")
    p.add_argument("--split", default=None, metavar="FILE",
                   help="the model's split.json: its 'train' files (and each source's) are marked as trained on, "
                        "which the near-copy notice needs (without it no scan counts as trained on)")
    p.add_argument("--source", action="append", default=[], metavar="DIR",
                   help="another labelled folder (its ids start with its name); repeat for several")
    p.add_argument("--batch-size", type=int, default=32)


def run(args) -> int:
    import json
    import os

    from safetensors import SafetensorError

    from ..errors import UsageError
    from ..inference.predictor import Predictor
    from ..inference.similar import Folder, build_index

    for folder in (args.data, *args.source):
        if not Path(folder).is_dir():
            raise UsageError(f"no such folder: {folder}")
    split: dict = {}
    if args.split:
        try:
            split = json.loads(Path(args.split).read_text())
            split["train"]
        except (OSError, ValueError, KeyError, TypeError):
            raise UsageError(f"--split: not a split file with a 'train' list: {args.split}") from None
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out: {out} is a folder; give the index file's name")
    # checked before the work, not after it
    folder = next((f for f in (out.parent, *out.parent.parents) if f.exists()), Path("."))
    if not folder.is_dir():
        raise UsageError(f"--out: {folder} is not a folder")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--out: cannot write into {folder}")
    sources = split.get("sources") or {}
    folders = [Folder(Path(args.data), "", frozenset(split.get("train", [])))]
    for src in args.source:
        name = Path(src).name
        folders.append(Folder(Path(src), name, frozenset((sources.get(name) or {}).get("train", []))))
    p = Predictor.load(args.model)
    index = build_index(p, folders, p.classes, args.batch_size)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        index.save(out)
    except SafetensorError as exc:  # the file system refused what os.access allowed (root, /proc)
        raise UsageError(f"--out: cannot write {out}: {str(exc).splitlines()[0][:200]}") from None
    size = Path(args.out).stat().st_size
    print(f"indexed {len(index)} scans ({int(index.trained.sum())} trained on) with model {p.name} "
          f"(weights {p.weights_digest[:12]}) into {args.out} ({size / 1e6:.1f} MB)")
    return 0
