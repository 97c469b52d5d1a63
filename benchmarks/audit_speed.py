"""Time ``braintumor audit TRAINING --against OTHERS``: the 5,708 Training images against 1,311 others.

The 1,311 others are made here, in a temporary folder, in the four class folders: ``--distinct``
of them are Training images turned on their side (transposed: a picture that nothing in Training
is alike, with the same sizes and grey levels), the rest are altered copies of random Training
images (JPEG quality 30-90, resized, shifted, gain/offset, flipped, or all at once, as in
``audit_quality.py``). The command runs as a user runs it, in a fresh process, and the script
prints its wall time (the aim: at most 60 s on two cores), then how the pair search
scales: its time and the number of candidate pairs the k-d tree proposes for growing subsets of
the fingerprints, against the n^2/2 pairs a full comparison would check.

    python benchmarks/audit_speed.py [--data DIR] [--others 1311] [--distinct 300] [--seed 0]

Skips (exit 0, one line on stderr) when the Training folder is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import TRAINING, require  # noqa: E402
from audit_quality import KINDS, alter  # noqa: E402


def make_others(train: Path, out: Path, n: int, distinct: int, seed: int) -> dict[str, int]:
    """Write ``n`` images into ``out/<class>/``; returns how many of each sort."""
    from braintumor.data.folders import list_samples

    samples = list_samples(train)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(samples), n, replace=False)
    counts: dict[str, int] = {}
    kinds = [k for k in KINDS if k != "gamma"]
    for k, idx in enumerate(picks):
        s = samples[idx]
        with Image.open(s.path) as raw:
            img = raw.copy()
        if k < distinct:
            img, quality, sort = img.transpose(Image.TRANSPOSE), 90, "distinct (transposed)"
        else:
            sort = kinds[int(rng.integers(len(kinds)))]
            img, quality, _ = alter(img, sort, rng)
        dst = out / s.path.parent.name / f"other_{k:05d}.{'jpg' if quality else 'png'}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        img.save(dst, "JPEG", quality=quality) if quality else img.save(dst, "PNG")
        counts[sort] = counts.get(sort, 0) + 1
    return counts


def scaling(fp, sizes: list[int], threshold: float, seed: int) -> list[tuple[int, float, int, int]]:
    """(n, seconds, candidate pairs checked, pairs found) of the within-set pair search on random
    subsets; the time is the best of three (a busy machine adds noise, never speed)."""
    from scipy.spatial import cKDTree

    from braintumor.data import dedup

    rng = np.random.default_rng(seed)
    radius = float(np.sqrt(2.0 - 2.0 * threshold)) + 1e-6
    rows = []
    for n in sizes:
        idx = np.sort(rng.choice(len(fp.paths), n, replace=False))
        a, af = fp.vectors[idx], fp.flipped[idx]
        proj = dedup._projection(a)
        tree = cKDTree(a @ proj.T)
        candidates = sum(len(js) for q in (a, af) for js in cKDTree(q @ proj.T).query_ball_tree(tree, radius))
        times = []
        for _ in range(3):
            t = time.perf_counter()
            found = dedup._similar_pairs(a, af, None, threshold)
            times.append(time.perf_counter() - t)
        rows.append((n, min(times), candidates, len(found)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(TRAINING), help="a class-folder Training root")
    parser.add_argument("--others", type=int, default=1311, help="images in the second folder")
    parser.add_argument("--distinct", type=int, default=300, help="of which pictures alike to nothing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-scaling", action="store_true", help="only time the command")
    args = parser.parse_args(argv)
    data = require(args.data, TRAINING, option="--data")

    from braintumor.data import dedup
    from braintumor.data.audit import read_folder

    print(f"CPU cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory() as tmp:
        others = Path(tmp) / "others"
        counts = make_others(data, others, args.others, args.distinct, args.seed)
        print(f"others: {args.others} images: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        env = dict(os.environ, BRAINTUMOR_NO_PROGRESS="1")
        cmd = [sys.executable, "-m", "braintumor", "audit", str(data), "--against", str(others), "--json"]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            print(proc.stderr.strip())
            return 1
        d = json.loads(proc.stdout)
        c = d["counts"]
        print(f"braintumor audit {data.name} --against others --json: {wall:.1f} s wall "
              f"({d['summary']['images']} vs {d['against_summary']['images']} images)")
        print(f"  found: {c['groups']} groups within, {c['cross']['against_images']} of the others with a twin "
              f"in {data.name} (altered copies: {args.others - counts.get('distinct (transposed)', 0)}), "
              f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.no_scaling:
        return 0

    t = time.perf_counter()
    fp = read_folder(data).fp
    n_all = len(fp.paths)
    print(f"\nfingerprints of {n_all} images: {time.perf_counter() - t:.1f} s "
          f"({1000 * (time.perf_counter() - t) / n_all:.2f} ms per image)")
    print(f"{'n':>6}{'pair search s':>15}{'candidates':>12}{'pairs found':>13}{'all pairs n^2/2':>17}")
    rows = scaling(fp, [n_all // 8, n_all // 4, n_all // 2, n_all], dedup.DEFAULT_THRESHOLD, args.seed)
    for n, dt, cand, found in rows:
        print(f"{n:>6}{dt:>15.2f}{cand:>12,}{found:>13,}{n * (n - 1) // 2:>17,}")
    (n0, t0, c0, _), (n1, t1, c1, _) = rows[0], rows[-1]
    grow = np.log(n1 / n0)
    print(f"from {n0} to {n1} images, time grows as n^{np.log(t1 / t0) / grow:.2f} and candidates as "
          f"n^{np.log(c1 / c0) / grow:.2f} (all pairs: n^2). On random subsets of one folder the true "
          "pairs themselves grow as n^2 (each image finds more of its twins as the subset grows); in a "
          "folder that grows with new patients they grow as n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
