"""Calibration and referral of a checkpoint on its validation split, measured out of sample.

    python benchmarks/calibration_report.py [--model FILE] [--data DIR] [--split FILE]
                                            [--repeats 50] [--png docs/reliability.png] [--json]

The checkpoint's temperature and conformal scores are fitted on the whole validation split
(``braintumor calibrate``); numbers measured on the data they were fitted on would flatter
them. So every number below is **cross-fitted**: the validation split is cut into random halves
(``--repeats`` times); the temperature and the conformal quantile are fitted on one half and
measured on the other, and the other way round; means and standard deviations over the repeats are
printed. The reliability diagram shows the raw probabilities and the 2-fold cross-fitted calibrated
ones (each image calibrated by the half it was not in).

Printed: ECE (15 bins) and NLL before and after temperature scaling; for conformal coverages 0.90,
0.95 (the default), 0.98 and 0.99, and for confidence thresholds 0.90, 0.95 and 0.99: the coverage
of the sets, the share of scans referred (decision "uncertain"), the accuracy of the scans not
referred, and the accuracy over all scans. Skips (exit 0, one line on stderr) when the Training
folder or the split file is missing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import REPO, SPLIT, TRAINING, require  # noqa: E402


def confidence_policy(logits, labels, threshold: float, repeats: int, seed: int = 0) -> dict:
    """Cross-fitted numbers of the confidence-threshold policy (temperature fitted on the other half)."""
    from braintumor.training import calibration as cal
    from braintumor.inference import decision

    rng = np.random.default_rng(seed)
    n = len(labels)
    rows = []
    for _ in range(repeats):
        perm = rng.permutation(n)
        for fit, test in ((perm[: n // 2], perm[n // 2:]), (perm[n // 2:], perm[: n // 2])):
            p = decision.softmax(logits[test], cal.fit_temperature(logits[fit], labels[fit]))
            y = labels[test]
            dec = [decision.decide(pi, tuple(range(p.shape[1])), None, decision.DecisionPolicy(min_confidence=threshold))
                   for pi in p]
            referred = np.array([d["decision"] != "classified" for d in dec])
            covered = np.array([yi in d["prediction_set"] for yi, d in zip(y, dec)])
            keep = ~referred
            rows.append((covered.mean(), referred.mean(),
                         (p[keep].argmax(1) == y[keep]).mean() if keep.any() else np.nan))
    r = np.array(rows)
    return {"coverage_shown": float(r[:, 0].mean()), "referral_rate": float(r[:, 1].mean()),
            "accuracy_classified": float(np.nanmean(r[:, 2]))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--data", default=str(TRAINING), help="the Training folder the split refers to")
    ap.add_argument("--split", default=str(SPLIT), help="split.json with 'val'")
    ap.add_argument("--repeats", type=int, default=50, help="random halvings (default: 50)")
    ap.add_argument("--png", default=str(REPO / "docs" / "reliability.png"), help="reliability diagram")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args()

    data = require(args.data, TRAINING, option="--data")
    split = require(args.split, SPLIT, file=True, option="--split")

    import torch

    from braintumor.training import calibration as cal
    from braintumor.inference import decision
    from braintumor.inference import shipped
    from braintumor.metrics import expected_calibration_error, reliability
    from braintumor.training.plots import reliability_diagram

    ck = shipped.load(args.model)
    val = json.loads(split.read_text())["val"]
    labels = np.array([ck.classes.index(r.split("/")[0]) for r in val])
    t0 = time.perf_counter()
    out = cal.network_outputs(ck, [data / r for r in val], desc="validation")
    logits = out["logits"]
    seconds = time.perf_counter() - t0

    stored_t = ck.temperature
    refit_t = cal.fit_temperature(logits, labels)
    raw = decision.softmax(logits)
    report: dict = {
        "model": {"name": ck.name, "sha256": ck.sha256, "stored_temperature": stored_t,
                  "temperature_refit_on_all_val": round(refit_t, 6)},
        "n": int(len(labels)),
        "in_sample": {"ece_before": expected_calibration_error(raw, labels),
                      "ece_after": expected_calibration_error(decision.softmax(logits, refit_t), labels),
                      "accuracy": float((raw.argmax(1) == labels).mean())},
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "inference_seconds": round(seconds, 1),
        "conformal": {},
        "confidence": {},
    }
    first = None
    for coverage in (0.90, 0.95, 0.98, 0.99):
        res = cal.crossfit(logits, labels, coverage=coverage, repeats=args.repeats)
        report["conformal"][str(coverage)] = res["summary"]
        if coverage == 0.95:
            first = res["oof_probs"]
    for threshold in (0.90, 0.95, 0.99):
        report["confidence"][str(threshold)] = confidence_policy(logits, labels, threshold, args.repeats)

    png = Path(args.png)
    png.parent.mkdir(parents=True, exist_ok=True)
    curves = {}
    for name, probs in (("raw (T = 1)", raw), ("temperature-scaled, cross-fitted", first)):
        c, acc, conf, cnt = reliability(probs, labels)
        curves[name] = (c, acc, conf, cnt, expected_calibration_error(probs, labels))
    reliability_diagram(curves, png)
    report["png"] = str(png)

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    s95 = report["conformal"]["0.95"]

    def ms(d, k, pct=False):
        m, sd = d[k]["mean"], d[k]["std"]
        return f"{100 * m:.2f}% +/- {100 * sd:.2f}" if pct else f"{m:.4f} +/- {sd:.4f}"

    print(f"model {ck.name} ({ck.sha256[:12]}), validation split: {report['n']} images "
          f"({report['machine']}, inference {seconds:.0f} s)")
    print(f"temperature stored {stored_t:.4f}; refit on all of val {refit_t:.4f}; accuracy "
          f"{100 * report['in_sample']['accuracy']:.2f}%")
    print(f"\ncross-fitted over {args.repeats} random halvings (fit on one half, measure on the other):")
    print(f"  ECE (15 bins)  before {ms(s95, 'ece_before')}   after {ms(s95, 'ece_after')}")
    print(f"  NLL            before {ms(s95, 'nll_before')}   after {ms(s95, 'nll_after')}")
    print(f"  temperature    {ms(s95, 'temperature')}")
    print("\nreferral, cross-fitted:")
    print(f"  {'policy':<22}{'set coverage':>14}{'LAC coverage':>14}{'referred':>10}{'acc. not referred':>19}{'acc. all':>10}")
    for k, v in report["conformal"].items():
        print(f"  {'conformal ' + k:<22}{100 * v['coverage_shown']['mean']:>13.2f}%{100 * v['coverage_lac']['mean']:>13.2f}%"
              f"{100 * v['referral_rate']['mean']:>9.2f}%{100 * v['accuracy_classified']['mean']:>18.2f}%"
              f"{100 * v['accuracy_all']['mean']:>9.2f}%")
    for k, v in report["confidence"].items():
        print(f"  {'confidence >= ' + k:<22}{100 * v['coverage_shown']:>13.2f}%{'':>14}"
              f"{100 * v['referral_rate']:>9.2f}%{100 * v['accuracy_classified']:>18.2f}%")
    print("\n  set coverage: the true class is in the prediction_set shown (classified: the label);")
    print("  LAC coverage: the raw conformal set (may be empty), the quantity conformal prediction guarantees.")
    print(f"\nreliability diagram: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
