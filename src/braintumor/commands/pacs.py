"""``braintumor pacs``: answer a study held by a DICOMweb server (a PACS such as Orthanc), and store
the structured reports back into it.

    braintumor pacs --url URL --study UID [--store] [--json] [--sr OUTDIR] [--model FILE]...

QIDO-RS finds the study's image series, WADO-RS fetches them, the answer is printed as by
``braintumor study``; with ``--store`` one Structured Report per series goes back into the same
study with STOW-RS. A server that cannot be reached or refuses gives one line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from .study import add_answer_options


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, metavar="URL",
                   help="the server's DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web")
    p.add_argument("--study", required=True, metavar="UID", help="StudyInstanceUID of the study to answer")
    p.add_argument("--store", action="store_true",
                   help="store one DICOM Structured Report per series into the same study (STOW-RS)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for each request (default: 60)")
    add_answer_options(p)


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..studies import answer_study, read_study, study_reports
    from ..studies.dicomweb import client, fetch_study, store
    from .study import load_predictor, report

    uid = args.study.strip()
    if not uid or len(uid) > 64 or not all(c.isdigit() or c == "." for c in uid):
        raise UsageError("--study must be a DICOM UID (digits and dots, at most 64 characters)")
    predictor = load_predictor(args)
    web = client(args.url, args.timeout)
    study = read_study(fetch_study(web, uid))
    answer = answer_study(predictor, study, batch_size=args.batch_size, tta=args.tta)
    report(study, answer, args)
    if args.store:
        reports = [ds for _, ds in study_reports(study, answer)]
        if reports:
            store(web, uid, reports)
        print(f"stored {len(reports)} structured report(s) in the study", file=sys.stderr)
    return 0
