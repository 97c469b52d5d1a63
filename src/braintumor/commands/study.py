"""``braintumor study``: answer DICOM series and NIfTI volumes slice by slice, with a summary per
series and a DICOM Structured Report per series.

    braintumor study PATH... [--json] [--sr OUTDIR] [--model FILE]... [--batch-size N] [--tta]

PATH: DICOM files, folders of them (walked recursively), .zip archives, NIfTI volumes. Files that
are not DICOM or NIfTI images are skipped and counted (each named on stderr with its reason).
Bad arguments, or nothing to answer, give one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import BACKEND_HELP, BACKENDS


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="DICOM files, folders of them, .zip archives or NIfTI volumes of one study")
    add_answer_options(p)


def add_answer_options(p: argparse.ArgumentParser) -> None:
    """The options ``study`` and ``pacs`` share."""
    p.add_argument("--json", action="store_true", help="one JSON object on stdout, nothing else")
    p.add_argument("--sr", metavar="OUTDIR", default=None,
                   help="write one DICOM Structured Report per DICOM series into OUTDIR")
    p.add_argument("--model", action="append", metavar="FILE", default=None,
                   help="checkpoint (default: the model shipped with the package); repeat for an ensemble")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="slices per batch (default: 32)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation (6x the work)")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)


def load_predictor(args: argparse.Namespace):
    from ..errors import UsageError
    from ..inference.predictor import Predictor

    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    return Predictor.load(args.model if args.model else None, backend=args.backend)


def render(answer: dict) -> str:
    """The answer as text: the study's answer, then each series, its classes' slices and its most
    suspicious slices."""
    a = answer["answer"]
    lines = [f"Study: {a['headline']}. {a['reason']}"]
    for s in answer["series"]:
        what = " ".join(x for x in (s.get("modality"), f"series {s['series_number']}"
                                    if s.get("series_number") is not None else None) if x)
        lines.append("")
        lines.append(f"Series {s['series']} ({what or s['kind']}, {s['n_slices']} slices, ordered by "
                     f"{s['ordering']}): {s['answer']['headline']}. {s['answer']['reason']}")
        for label, text in s["summary_text"].items():
            lines.append(f"  {label}: slices {text}")
        for key, name in (("uncertain", "uncertain"), ("not_analysed", "not analysed"), ("blank", "blank")):
            if s[key]:
                from ..inference.volume import _ranges

                lines.append(f"  {name}: slices {_ranges(s[key])}")
        if s["most_suspicious"]:
            lines.append("  most suspicious: " + ", ".join(
                f"slice {m['index']} ({m['headline']}, tumour {m['tumour_probability']:.0%})"
                for m in s["most_suspicious"]))
    for skipped in answer["skipped"]:
        lines.append(f"skipped {skipped['files']} file(s): {skipped['reason']}")
    m = answer["model"]
    lines.append(f"model: {m['name']} {m['version']}. {answer['notice']}")
    return "\n".join(lines)


def write_reports(study, answer: dict, outdir: str) -> list[Path]:
    """One report per DICOM series in ``outdir`` (series-N.dcm); the paths written."""
    from ..studies import sr_bytes, study_reports

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for number, ds in study_reports(study, answer):
        path = out / f"series-{number}.sr.dcm"
        path.write_bytes(sr_bytes(ds))
        written.append(path)
    return written


def report(study, answer: dict, args: argparse.Namespace) -> None:
    """Print the answer (and the files skipped, on stderr); write the reports with ``--sr``."""
    for label, message in study.problems:
        print(f"skipped {message if message.startswith(label) else label + ': ' + message}", file=sys.stderr)
    print(json.dumps(answer, indent=1) if args.json else render(answer))
    if args.sr:
        written = write_reports(study, answer, args.sr)
        print(f"wrote {len(written)} structured report(s) to {args.sr}" if written
              else "no DICOM series: no structured report written", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from ..studies import answer_study, read_paths, read_study

    predictor = load_predictor(args)
    study = read_study(read_paths(args.paths))
    answer = answer_study(predictor, study, batch_size=args.batch_size, tta=args.tta)
    report(study, answer, args)
    return 0
