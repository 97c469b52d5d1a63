"""``braintumor predict``: classify image files and folders, optionally with Grad-CAM pictures.

    braintumor predict FILE_OR_DIR... [--model FILE]... [--json | --csv] [--raw] [--explain OUTDIR]
                       [--cam-method NAME] [--tta] [--batch-size N] [--slice N]

Every output gives the answer object of :mod:`braintumor.inference.answer` per file (an image not analysed
has no class, confidence or probabilities; ``--raw`` adds the model's probabilities as computed).
Unreadable files are listed with their reason and the others go on (exit code 1 when any failed);
bad arguments (a missing path, an unusable model file) give one line on stderr and exit code 2.
Nothing heavy is imported until :func:`run`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from .. import cam_methods
from .. import formats
from ..config import BACKEND_HELP, BACKENDS

CAM_METHODS = tuple(cam_methods.CAM_METHODS)  # from the torch-free list, so ``--help`` stays quick
PROGRESS_MIN = 10  # show a progress bar from this many files on


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR",
                   help="image files (JPEG, PNG, BMP, TIFF, DICOM, NIfTI) or folders to walk")
    p.add_argument("--model", action="append", metavar="FILE", default=None,
                   help="checkpoint (default: the model shipped with the package); "
                        "repeat for an ensemble (probabilities averaged)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object on stdout, nothing else")
    fmt.add_argument("--csv", action="store_true", help="CSV on stdout")
    p.add_argument("--raw", action="store_true",
                   help="with --json or --csv: also the model's probabilities as computed (raw_probabilities, "
                        "raw_<class> columns), even for an image not analysed")
    p.add_argument("--explain", metavar="OUTDIR", default=None,
                   help="write one PNG per image: the scan and its Grad-CAM overlay side by side")
    p.add_argument("--similar", type=int, default=0, metavar="K",
                   help="also give the K most similar indexed scans (and whether one is a near copy)")
    p.add_argument("--index", default=None, metavar="FILE",
                   help="similar-case index to use (default: the one shipped for the shipped model)")
    p.add_argument("--report", metavar="OUTDIR", default=None,
                   help="write a one-page PDF case report per image into OUTDIR")
    p.add_argument("--cam-method", default="gradcam", choices=CAM_METHODS,
                   help="heat-map method for --explain (default: gradcam)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average over a flip and small shifts (6x the work)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per batch (default: 32)")
    p.add_argument("--slice", type=int, default=None, metavar="N",
                   help="slice (or frame) of DICOM/NIfTI volumes (default: the middle one)")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)


def _usage(message: str) -> Exception:
    from ..errors import UsageError

    return UsageError(message)


def collect_files(paths: list[str]) -> list[tuple[Path, str]]:
    """(file, name for the figure) for every file named or found by walking the folders named.

    In a folder, the scan files of :func:`braintumor.formats.is_scan_file`; a file named on the
    command line is always taken (a wrong kind is reported when read)."""
    found: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if formats.is_scan_file(p))
            if not inside:
                raise _usage(f"no images found in {path}")
            found.extend((p, p.relative_to(path).as_posix()) for p in inside)
        elif path.exists():
            found.append((path, path.name))
        else:
            raise _usage(f"no such file or folder: {path}")
    return found


def _sha256(path: str) -> str:
    """The file's SHA-256: with it the similar-case search finds an exact copy of the file, from the
    image already decoded (the file is read, not decoded, again)."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _figure_name(name: str, used: set[str]) -> str:
    suffix = formats.suffix_of(name)
    stem = name[: len(name) - len(suffix)].replace("/", "__") or "image"
    out, k = f"{stem}.png", 2
    while out in used:
        out, k = f"{stem}-{k}.png", k + 1
    used.add(out)
    return out


def _reason(message: str, file: str) -> str:
    """An error message without the file name that load_image puts in front."""
    prefix = f"{file}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise _usage("--batch-size must be at least 1")
    files = collect_files(args.paths)
    for option, folder in (("--explain", args.explain), ("--report", args.report)):
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            raise _usage(f"{option}: {folder} exists and is not a folder")
    outdir = Path(args.explain) if args.explain else None
    reportdir = Path(args.report) if args.report else None

    from PIL import Image

    from ..inference.cam import explanation_figure
    from ..inference.predictor import display_pixels
    from ..inference.answer import answer
    from ..progress import progress
    from ..imaging import ImageError, load_image
    from ..inference.predictor import Predictor

    predictor = Predictor.load(args.model if args.model else None, backend=args.backend)
    if predictor.backend != "torch":
        from ..inference.backends import give_cores_to_onnx

        give_cores_to_onnx()
    if args.index:
        predictor.attach_index(args.index)
    if not 0 <= args.similar <= 100:
        raise _usage("--similar must be between 0 and 100")
    if args.similar and predictor.index is None:
        raise _usage("--similar: no similar-case index for this model; build one with "
                     "'braintumor index DIR --out FILE' and pass --index FILE")
    results: list[dict] = []
    errors: list[dict] = []
    used: set[str] = set()
    for folder in (outdir, reportdir):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    used_reports: set[str] = set()

    bar = progress(total=len(files), desc="predict", disable=True if len(files) < PROGRESS_MIN else None)
    try:
        for start in range(0, len(files), args.batch_size):
            chunk = files[start:start + args.batch_size]
            grays, names = [], []
            for path, name in chunk:
                try:
                    grays.append(load_image(path, slice_index=args.slice))
                    names.append((str(path), name))
                except (ImageError, OSError) as exc:
                    errors.append({"file": str(path), "error": _reason(str(exc), str(path))})
            if args.explain or args.report:
                preds = []
                for gray, (file, name) in zip(grays, names):
                    e = predictor.explain(gray, cam_method=args.cam_method, tta=args.tta, similar=args.similar,
                                          sha256=_sha256(file) if args.similar else None)
                    extra = {}
                    if reportdir is not None:
                        from .. import __version__
                        from ..inference.report import case_report

                        target = reportdir / (_figure_name(name, used_reports)[:-4] + ".pdf")
                        target.write_bytes(case_report(e, gray, {"name": predictor.name, "version": predictor.version,
                                                                 "sha256": predictor.sha256}, __version__,
                                                             similar=e.get("similar")))
                        extra["report"] = str(target)
                    if outdir is None:
                        preds.append({k: v for k, v in e.items() if k not in ("heatmap", "heatmap_input", "overlay")}
                                     | extra)
                        continue
                    scan = display_pixels(gray)
                    rejected = e.get("decision") == "rejected"  # no heat map for an image not analysed
                    fig = explanation_figure(
                        scan, Image.fromarray(scan).convert("RGB") if rejected else e["overlay"], _lead(e),
                        f"{name} - {e['reason'] if rejected else _caption(e)} - not for diagnosis",
                        box=e.get("box"), image_size=gray.size)
                    target = outdir / _figure_name(name, used)
                    fig.save(target)
                    preds.append({k: v for k, v in e.items() if k not in ("heatmap", "heatmap_input", "overlay")}
                                 | extra | {"explanation": str(target)})
            else:
                preds = predictor.predict_batch(grays, batch_size=args.batch_size, tta=args.tta, similar=args.similar,
                                                sha256=[_sha256(f) for f, _ in names] if args.similar else None)
            for (file, _), r in zip(names, preds):
                results.append({"file": file, **answer(r, predictor.classes, raw=args.raw)})
            bar.update(len(chunk))
    finally:
        bar.close()

    classes = predictor.classes
    model = {"name": predictor.name, "version": predictor.version, "sha256": predictor.sha256}
    if args.json:
        print(json.dumps({"model": model, "results": results, "errors": errors}))
    elif args.csv:
        sys.stdout.write(format_csv(results, errors, classes, raw=args.raw))
    elif results:
        print(format_table(results, classes))
        for r in results:
            if r.get("decision", "classified") != "classified":
                print(f"{r['file']}: {r['headline']}. {r['reason']}")
            if r.get("seen_before_notice"):
                print(f"{r['file']}: {r['seen_before_notice']}")
            if r.get("similar"):
                from ..inference.similar import case_words

                print(f"{r['file']}: similar cases, most similar first: "
                      + "; ".join(f"{s['id']} ({case_words(s)})" for s in r["similar"]))
        print(f"model {model['name']}, version {model['version']}")
    for folder, key, what in ((outdir, "explanation", "picture"), (reportdir, "report", "PDF report")):
        written = sum(key in r for r in results)
        if folder is not None:
            print(f"braintumor predict: wrote {written} {what}{'' if written == 1 else 's'} to {folder}",
                  file=sys.stderr)
    if not args.json and not args.csv:
        for e in errors:
            print(f"braintumor predict: cannot read {e['file']}: {e['error']}", file=sys.stderr)
    return 1 if errors else 0


def _lead(r: dict) -> str:
    """What an answer leads with: the class and its probability, or the headline and the classes."""
    from ..inference.decision import could_be

    if r.get("decision", "classified") == "classified":
        return f"{r['headline']}  {r['confidence']:.1%}"
    return r["headline"] + (f": {could_be(r)}" if could_be(r) else "")


def _caption(r: dict) -> str:
    from ..cam_methods import caption
    from ..config import CLASS_NAMES

    return caption(r["cam_method"], CLASS_NAMES.get(r["target"], r["target"]))


def format_table(results: list[dict], classes: tuple[str, ...]) -> str:
    """One row per answer (:func:`braintumor.inference.answer.answer`), leading as every answer does: the
    class, "Uncertain: refer" with the classes it could be, or "Not analysed" (no probabilities:
    the image was not judged)."""
    header = ["file", "answer", "confidence", *classes]
    rows = []
    for r in results:
        probs = r.get("probabilities") or {}
        rows.append([r["file"], _lead(r).split("  ")[0],
                     f"{r['confidence']:.4f}" if r.get("decision", "classified") == "classified" else "-",
                     *(f"{probs[c]:.4f}" if probs else "-" for c in classes)])
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [f"{v:<{w}}" if i < 2 else f"{v:>{w}}" for i, (v, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_csv(results: list[dict], errors: list[dict], classes: tuple[str, ...], raw: bool = False) -> str:
    """The answers as CSV (:func:`braintumor.inference.answer.csv_columns`): file, headline, decision and
    reason lead; blank where the answer has null (an image not analysed has no class, confidence
    or probabilities); an ``error`` column for files that could not be read."""
    from ..inference.answer import csv_columns, csv_row, error_row

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(csv_columns(classes, raw))
    for r in results:
        w.writerow(csv_row(r, classes, raw))
    for e in errors:
        w.writerow(error_row(e["file"], e["error"], classes, raw))
    return buf.getvalue()
