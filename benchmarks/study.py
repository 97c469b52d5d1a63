"""Time one study: 40 MR slices as DICOM files, in shuffled order, through everything ``braintumor
study --sr`` does: reading and ordering the series, answering every slice with the shipped model,
the series summary, and the DICOM Structured Report (built and written as bytes).

The slices are the package's sample scans (real MRI, CC0) at 512 x 512, stored as 16-bit MR images
of one series with positions 5 mm apart; the model is loaded once, before the clock starts. Prints
the seconds of each step for each run, then the median of the runs' totals (the aim: at most 5 s on
two cores).

    python benchmarks/study.py [--slices 40] [--size 512] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import REPO  # noqa: E402

SAMPLES = REPO / "src" / "braintumor" / "sample"


def series_files(n: int, size: int) -> list[bytes]:
    """``n`` DICOM MR slices of one series made from the sample scans, 5 mm apart (written by the
    tests' own series maker, ``tests/dicom_series.py``)."""
    from pydicom import uid

    sys.path.insert(0, str(REPO / "tests"))
    from dicom_series import mr_slice

    scans = sorted(SAMPLES.glob("*/*.jpg"))
    study, series, frame = uid.generate_uid(), uid.generate_uid(), uid.generate_uid()
    out = []
    for k in range(n):
        img = Image.open(scans[k % len(scans)]).convert("L").resize((size, size), Image.BILINEAR)
        pixels = np.asarray(img).astype(np.uint16) * 8
        out.append(mr_slice(pixels, study, series, k + 1, (-120.0, -120.0, -100.0 + 5.0 * k),
                            series_number=1, spacing=(0.47, 0.47), frame_uid=frame))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=40)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    from braintumor.inference.predictor import Predictor
    from braintumor.studies import answer_study, read_study, sr_bytes, study_reports

    files = series_files(args.slices, args.size)
    items = [(f, f"slice{i}.dcm") for i, f in enumerate(files)]
    random.Random(0).shuffle(items)
    t = time.perf_counter()
    predictor = Predictor.load()
    print(f"model {predictor.name} {predictor.version} ({predictor.backend}) loaded in "
          f"{time.perf_counter() - t:.2f} s; {args.slices} slices of {args.size} x {args.size}")
    predictor.predict_batch([Image.new("L", (64, 64))])  # warm the runtime up
    totals = []
    for run in range(1, args.runs + 1):
        t0 = time.perf_counter()
        study = read_study(items)
        t1 = time.perf_counter()
        answer = answer_study(predictor, study)
        t2 = time.perf_counter()
        reports = [sr_bytes(ds) for _, ds in study_reports(study, answer)]
        t3 = time.perf_counter()
        totals.append(t3 - t0)
        s = answer["series"][0]
        print(f"run {run}: read and order {t1 - t0:.2f} s, answer and summary {t2 - t1:.2f} s, "
              f"structured report {t3 - t2:.2f} s ({len(reports[0]) // 1024} KB), total {t3 - t0:.2f} s; "
              f"ordered by {s['ordering']}, {s['analysed']} slices analysed, series answer: "
              f"{s['answer']['headline']}")
    print(f"median total: {statistics.median(totals):.2f} s for {args.slices} slices")


if __name__ == "__main__":
    main()
