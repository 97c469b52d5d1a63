"""``braintumor feedback list|stats|export``: read the corrections a server collected.

``export DIR`` writes the scans kept with consent as class folders (by the corrected class), which
``train``, ``evaluate``, ``audit`` and ``finetune`` read like any labelled data set.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "stats", "export"], help="what to do")
    p.add_argument("dir", nargs="?", default=None, help="export: the folder to write class folders into")
    p.add_argument("--db", required=True, metavar="DB", help="the feedback database (serve --feedback DB)")
    p.add_argument("--json", action="store_true", help="list and stats: JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from .. import feedback as fb
    from ..errors import UsageError

    if not Path(args.db).is_file():
        raise UsageError(f"no such feedback database: {args.db}")
    try:
        con = fb.connect(args.db)
    except fb.FeedbackError as exc:
        raise UsageError(str(exc)) from None
    try:
        if args.action == "list":
            items = list(fb.rows(con))
            if args.json:
                print(json.dumps(items, indent=2))
            else:
                print(f"{'id':>5}  {'created':<25} {'model':<28} {'predicted':<11} {'corrected':<11} image  comment")
                for r in items:
                    model = f"{r['model_name']} {r['model_version']}"[:28]
                    print(f"{r['id']:>5}  {r['created']:<25} {model:<28} {r['predicted']:<11} "
                          f"{r['corrected']:<11} {'kept' if r['has_image'] else '-':<6} {r['comment'][:60]}")
                print(f"{len(items)} corrections")
        elif args.action == "stats":
            s = fb.stats(con)
            if args.json:
                print(json.dumps(s, indent=2))
            else:
                print(format_stats(s))
        else:
            if not args.dir:
                raise UsageError("export needs a folder: braintumor feedback export DIR --db DB")
            counts = fb.export(con, args.dir)
            total = sum(counts.values())
            print(f"exported {total} scans kept with consent into {args.dir}: "
                  + ", ".join(f"{c} {n}" for c, n in counts.items()))
    finally:
        con.close()
    return 0


def format_stats(s: dict) -> str:
    if not s["n"]:
        return "no feedback yet"
    lines = [f"{s['n']} answers given feedback; the model was right on {s['agreed']} "
             f"({100 * s['agreement']:.1f}%)", "", "by the class the scan really shows:",
             f"  {'class':<12} {'n':>5} {'model right':>12} {'scans kept':>11}"]
    for r in s["by_class"]:
        lines.append(f"  {r['corrected']:<12} {r['n']:>5} {100 * r['agreement']:>11.1f}% {r['images_kept']:>11}")
    lines += ["", "by model:", f"  {'model':<36} {'sha256':<14} {'n':>5} {'model right':>12}"]
    for r in s["by_model"]:
        lines.append(f"  {r['model'][:36]:<36} {r['model_sha256'][:12]:<14} {r['n']:>5} {100 * r['agreement']:>11.1f}%")
    return "\n".join(lines)
