"""``braintumor feedback list|stats|export``: read the corrections a server collected.

``export DIR`` writes the scans kept with consent as class folders (by the corrected class), which
``train``, ``evaluate``, ``audit`` and ``finetune`` read like any labelled data set.

The database is opened read-only: nothing here writes to it, migrates it or changes its journal
mode, and a file that is not a feedback database is refused as it is. Every failure is one line
and exit status 2. Text that came from the web (comments) or from the file is printed with its
control characters escaped, so no comment can move the cursor, recolour or forge lines of the
operator's terminal.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import unicodedata


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "stats", "export"], help="what to do")
    p.add_argument("dir", nargs="?", default=None,
                   help="export: a new or empty folder to write class folders into")
    p.add_argument("--db", required=True, metavar="DB", help="the feedback database (serve --feedback DB)")
    p.add_argument("--json", action="store_true", help="list and stats: JSON instead of a table")


def printable(value: object) -> str:
    """``value`` as text safe for a terminal: control and format characters (escape sequences,
    newlines, carriage returns, bidirectional overrides) written as ``\\n``, ``\\x1b``, ``\\u202e``."""
    out = []
    for ch in str(value):
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch) or
                       (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"))
        else:
            out.append(ch)
    return "".join(out)


def run(args: argparse.Namespace) -> int:
    from ..inference import feedback as fb
    from ..errors import UsageError

    if args.action == "export" and not args.dir:
        raise UsageError("export needs a folder: braintumor feedback export DIR --db DB")
    try:
        con = fb.open_readonly(args.db)
    except fb.FeedbackError as exc:
        raise UsageError(printable(exc)) from None
    try:
        if args.action == "list":
            show_list(list(fb.rows(con)), args.json)
        elif args.action == "stats":
            s = fb.stats(con)
            print(json.dumps(s, indent=2) if args.json else format_stats(s))
        else:
            counts = fb.export(con, args.dir)
            total = sum(counts.values())
            print(f"exported {total} scans kept with consent into {printable(args.dir)}: "
                  + ", ".join(f"{printable(c)} {n}" for c, n in counts.items()))
    except fb.FeedbackError as exc:
        raise UsageError(printable(exc)) from None
    except sqlite3.Error as exc:
        raise UsageError(f"{printable(args.db)} cannot be read ({printable(exc)})") from None
    except OSError as exc:
        where = exc.filename if exc.filename else args.dir
        raise UsageError(f"cannot write {printable(where)}: {printable(exc.strerror or exc)}") from None
    finally:
        con.close()
    return 0


def show_list(items: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(items, indent=2))  # JSON escapes every control character itself
        return
    print(f"{'id':>5}  {'created':<25} {'model':<28} {'predicted':<11} {'corrected':<11} image  comment")
    for r in items:
        model = printable(f"{r['model_name']} {r['model_version']}")[:28]
        print(f"{r['id']:>5}  {printable(r['created']):<25} {model:<28} {printable(r['predicted']):<11} "
              f"{printable(r['corrected']):<11} {'kept' if r['has_image'] else '-':<6} "
              f"{printable(r['comment'])[:60]}")
    print(f"{len(items)} corrections")


def format_stats(s: dict) -> str:
    if not s["n"]:
        return "no feedback yet"
    lines = [f"{s['n']} answers given feedback; the model was right on {s['agreed']} "
             f"({100 * s['agreement']:.1f}%)", "", "by the class the scan really shows:",
             f"  {'class':<12} {'n':>5} {'model right':>12} {'scans kept':>11}"]
    for r in s["by_class"]:
        lines.append(f"  {printable(r['corrected']):<12} {r['n']:>5} {100 * r['agreement']:>11.1f}% "
                     f"{r['images_kept']:>11}")
    lines += ["", "by model:", f"  {'model':<36} {'sha256':<14} {'n':>5} {'model right':>12}"]
    for r in s["by_model"]:
        lines.append(f"  {printable(r['model'])[:36]:<36} {printable(r['model_sha256'])[:12]:<14} {r['n']:>5} "
                     f"{100 * r['agreement']:>11.1f}%")
    return "\n".join(lines)
