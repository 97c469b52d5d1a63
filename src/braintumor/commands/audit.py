"""``braintumor audit``: duplicates, near-duplicates and label conflicts of a folder
(:mod:`braintumor.data.audit`)."""

from __future__ import annotations

import argparse
import json
import sys

from ..data import dedup


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="class-folder root or a folder of images")
    p.add_argument("--against", metavar="DIR2", default=None,
                   help="a second folder (e.g. a test set) to look for twins of DIR's images in")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout, nothing else")
    p.add_argument("--report", metavar="OUT", default=None,
                   help="write full lists (CSV), summary.json and contact_sheet.png into this folder")
    p.add_argument("--threshold", type=float, default=dedup.DEFAULT_THRESHOLD,
                   help=f"similarity from which two images count as near-duplicates "
                        f"(default {dedup.DEFAULT_THRESHOLD})")
    p.add_argument("--examples", type=int, default=8, help="pairs per kind on the contact sheet (default 8)")


def run(args: argparse.Namespace) -> int:
    from ..data.audit import audit, to_dict
    from ..data.audit_report import format_table, write_report

    result = audit(args.dir, args.against, args.threshold)
    d = to_dict(result)
    if args.report:
        written = write_report(result, args.report, max(1, args.examples))
        print(f"report: {len(written)} files in {args.report}", file=sys.stderr)
    if args.json:
        print(json.dumps(d))
    else:
        print(format_table(d))
    return 0
