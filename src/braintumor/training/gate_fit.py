"""Fitting the out-of-distribution gate of a checkpoint (:mod:`braintumor.inference.ood`), offline.

    braintumor fit-gate --model M --data TRAINING --split split.json [--source DIR]... [--not-mri FILE]

What is fitted, from the served forward pass (:meth:`braintumor.Predictor.outputs`) on the split's
slices of every source (the main folder's ``train``/``val``, and each extra source's files that
``split.json`` records under ``sources``, or a split by patient made here when it records none):

- the **classifier** of what an image looks like (brain MRI, photograph, document, graphic, CT,
  X-ray, ultrasound, pattern): one hidden layer of :data:`HIDDEN` units on the gate's inputs,
  trained (PyTorch, full batch, class-balanced) on the *training* slices of every source against
  the negatives of :mod:`braintumor.training.gate_negatives` and the slices the dataset holds that are not MRI
  (``model/not-mri.tsv``: head CT filed as "no tumour" or "meningioma"), those of the training
  split only. The training slices count twice as brain MRI: as they are, and once changed the
  way real slices arrive (:data:`braintumor.training.gate_negatives.MRI_VARIANTS`: framed, annotated, cropped,
  padded to odd aspects, turned by 90 degrees, re-contrasted, shrunk and re-compressed; one
  random change each, seed :data:`VARIANTS_SEED`), so that a frame, burnt-in text or a coronal or
  sagittal orientation is not taken for a photograph or a page;
- two **Gaussians**: the network's penultimate features and the gate's image statistics of the
  training slices (not-MRI slices left out; the image statistics' Gaussian with the changed
  copies too);
- the **scales** (99th percentiles, the classifier's median too) and the **threshold** on the
  *validation* slices: the largest split-conformal 99% quantile over the groups (each class of
  each source), the slices that the size, blank, colour or classifier checks already refuse
  counting against each group's budget. The validation CT slices are not counted as MRI: they
  are reported apart, as what they are.

The whole command is deterministic for a given machine and seed, and reruns in a few minutes on two
CPU cores; run it again whenever the model changes.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from ..inference import ood

HIDDEN = 32  # hidden units of the gate's classifier
EPOCHS = 600
NEGATIVES_SEED = 0  # benchmarks/ood_set.py draws its pictures with other seeds
VARIANTS_SEED = 0  # of the changed copies of the training slices (benchmarks/gate_mri.py uses seed 1)
MAIN = "main"  # the name of the main data folder's group
THRESHOLD_MARGIN = 1.05  # the threshold a little above the largest per-group quantile


@dataclass
class SourceSplit:
    """One source's images: its folder and the training and validation files (relative to it)."""

    name: str
    root: Path
    train: list[str]
    val: list[str]


def read_not_mri(path: str | Path | None) -> dict[str, str]:
    """``file kind [note]`` rows (tab-separated, a header line) -> {file: kind}; kinds are those of
    :data:`braintumor.training.gate_negatives.KINDS`."""
    if path is None:
        return {}
    from .gate_negatives import KINDS

    out = {}
    for i, line in enumerate(Path(path).read_text().splitlines()[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or parts[1] not in KINDS:
            raise DataError(f"{path}:{i}: expected 'file<TAB>kind' with a kind among {', '.join(KINDS)}")
        out[parts[0]] = parts[1]
    return out


def source_splits(data: str | Path, split_file: str | Path, sources: Sequence[str | Path] = (),
                  seed: int = 0) -> list[SourceSplit]:
    """The main folder's split and every extra source's (from ``split.json``'s ``sources``, or a
    split by patient when it has none for that source)."""
    try:
        split = json.loads(Path(split_file).read_text())
        out = [SourceSplit(MAIN, Path(data), list(split["train"]), list(split["val"]))]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{split_file}: not a split file with 'train' and 'val' lists ({exc})") from None
    recorded = split.get("sources") or {}
    for folder in sources:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"source folder not found: {folder}")
        entry = recorded.get(folder.name)
        if entry:
            out.append(SourceSplit(folder.name, folder, list(entry["train"]), list(entry["val"])))
        else:
            from ..data.sources import list_source, split_source

            train, val = split_source(list_source(folder), float(split.get("val_fraction", 0.15)), seed)
            out.append(SourceSplit(folder.name, folder, train, val))
    return out


def _class_of(rel: str) -> str:
    return rel.split("/")[0]


def train_classifier(x: np.ndarray, y: np.ndarray, kinds: Sequence[str], seed: int = 0,
                     hidden: int = HIDDEN, epochs: int = EPOCHS) -> ood.KindClassifier:
    """A one-hidden-layer classifier of ``kinds`` (index 0 = brain MRI) on standardised ``x``,
    class-balanced (square-root inverse frequency), full-batch Adam with weight decay."""
    import torch

    x = np.asarray(x, dtype=np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    counts = np.bincount(y, minlength=len(kinds)).astype(np.float64)
    weight = np.sqrt(counts.sum() / np.maximum(counts, 1) / len(kinds))
    gen = torch.Generator().manual_seed(seed)
    xt = torch.tensor((x - mean) / std, dtype=torch.float32)
    yt = torch.tensor(np.asarray(y), dtype=torch.long)
    w1 = torch.nn.Parameter(torch.randn(x.shape[1], hidden, generator=gen) * (2 / x.shape[1]) ** 0.5)
    b1 = torch.nn.Parameter(torch.zeros(hidden))
    w2 = torch.nn.Parameter(torch.randn(hidden, len(kinds), generator=gen) * (1 / hidden) ** 0.5)
    b2 = torch.nn.Parameter(torch.zeros(len(kinds)))
    opt = torch.optim.Adam([w1, b1, w2, b2], lr=1e-2, weight_decay=1e-3)
    cw = torch.tensor(weight, dtype=torch.float32)
    for _ in range(epochs):
        opt.zero_grad()
        logits = torch.relu(xt @ w1 + b1) @ w2 + b2
        torch.nn.functional.cross_entropy(logits, yt, weight=cw).backward()
        opt.step()
    f32 = lambda t: t.detach().numpy().astype(np.float32).astype(np.float64)  # noqa: E731 - as stored
    return ood.KindClassifier(tuple(kinds), mean.astype(np.float32).astype(np.float64),
                              std.astype(np.float32).astype(np.float64), f32(w1), f32(b1), f32(w2), f32(b2))


@functools.lru_cache(maxsize=2)
def negative_inputs(seed: int = NEGATIVES_SEED) -> tuple[np.ndarray, list[str]]:
    """The gate inputs and kinds of the generated negatives (:func:`braintumor.training.gate_negatives.training_set`;
    about 15 s on two cores, kept for the process)."""
    from ..imaging import load_image
    from .gate_negatives import training_set

    items = training_set(seed)
    grays = [load_image(img) for _, _, img in items]
    return ood.gate_inputs(grays), [kind for kind, _, _ in items]


def mri_variant_inputs(files: Sequence[str | Path], seed: int = VARIANTS_SEED) -> np.ndarray:
    """The gate inputs of one changed copy of each brain MRI slice in ``files``: the changes of
    :data:`braintumor.training.gate_negatives.MRI_VARIANTS` in turn, each with its own random strength, read the
    way a served image is (:func:`braintumor.imaging.load_image`). About 5 ms a slice."""
    from ..imaging import load_image
    from .gate_negatives import MRI_VARIANTS, mri_variant

    out = []
    for start in range(0, len(files), 256):
        grays = []
        for i in range(start, min(start + 256, len(files))):
            rng = np.random.default_rng([seed, i])
            grays.append(load_image(mri_variant(rng, load_image(files[i]), MRI_VARIANTS[i % len(MRI_VARIANTS)])))
        out.append(ood.gate_inputs(grays))
    return np.concatenate(out) if out else np.zeros((0, 61))


def training_mri_files(splits: Sequence[SourceSplit], not_mri: dict[str, str] | None = None) -> list[Path]:
    """The training split's brain MRI slices of every source (the not-MRI slices left out)."""
    not_mri = not_mri or {}
    return [s.root / rel for s in splits for rel in s.train if not (s.name == MAIN and rel in not_mri)]


@dataclass
class GateData:
    """What fitting reads for every slice of the splits: its ``split`` (train or val), ``group``
    (source/class), ``kind`` (``mri`` or what :func:`read_not_mri` says it is), the network's pooled
    ``features``, the gate's ``inputs``, the original ``sizes`` and the network pixels' ``std``."""

    split: np.ndarray
    group: np.ndarray
    kind: np.ndarray
    features: np.ndarray
    inputs: np.ndarray
    sizes: np.ndarray
    std: np.ndarray


def collect(predictor, splits: Sequence[SourceSplit], not_mri: dict[str, str] | None = None,
            batch_size: int = 32) -> GateData:
    """One served forward pass over every slice of ``splits`` (:meth:`Predictor.outputs`)."""
    not_mri = not_mri or {}
    rows: list[tuple[str, str, str]] = []
    files = []
    for s in splits:
        for part, rels in (("train", s.train), ("val", s.val)):
            for rel in rels:
                kind = (not_mri.get(rel) if s.name == MAIN else None) or ood.MRI
                rows.append((part, f"{s.name}/{_class_of(rel)}", kind))
                files.append(s.root / rel)
    if not any(r[0] == "val" for r in rows):
        raise DataError("the validation split is empty")
    out = predictor.outputs(files, batch_size, errors="return", show_progress=True, desc="gate")
    idx = out["index"]
    if len(idx) < len(files):
        missing = [str(files[i]) for i in sorted(set(range(len(files))) - set(idx.tolist()))][:3]
        raise DataError(f"{len(files) - len(idx)} images could not be read, e.g. {', '.join(missing)}")
    split, group, kind = (np.array([r[k] for r in rows])[idx] for k in range(3))
    return GateData(split, group, kind, out["features"][0], out["gate"], out["sizes"], out["std"][0])


def fit_gate(data: GateData, negatives: tuple[np.ndarray, Sequence[str]], rate: float = ood.FALSE_REJECTION,
             seed: int = 0, variants: np.ndarray | None = None) -> ood.OodGate:
    """The gate from collected slices, the negatives' (inputs, kinds) and the gate inputs of changed
    copies of training MRI slices (:func:`mri_variant_inputs`; see the module's docstring)."""
    from .gate_negatives import KINDS

    kinds = (ood.MRI, *KINDS)
    neg_x, neg_kinds = negatives
    mri = data.kind == ood.MRI
    train, val = data.split == "train", data.split == "val"
    variants = np.zeros((0, data.inputs.shape[1])) if variants is None else np.asarray(variants, dtype=np.float64)
    x = np.concatenate([data.inputs[train], variants, neg_x])
    y = np.array([kinds.index(k) for k in data.kind[train]] + [0] * len(variants)
                 + [kinds.index(k) for k in neg_kinds])
    classifier = train_classifier(x, y, kinds, seed)

    features = ood.Gaussian.fit(data.features[train & mri], ood.SHRINK_FEATURES)
    stats = ood.Gaussian.fit(np.concatenate([data.inputs[train & mri], variants]), ood.SHRINK_STATS)
    v = val & mri
    df, ds = features.distance(data.features[v]), stats.distance(data.inputs[v])
    probs = classifier.probabilities(data.inputs[v])
    ks = ood.kind_score(probs)
    sf, ss = float(np.quantile(df, 0.99)), float(np.quantile(ds, 0.99))
    kmid, ktop = float(np.median(ks)), float(np.quantile(ks, 0.99))
    raw = np.maximum.reduce([df / sf, ds / ss, (ks - kmid) / max(ktop - kmid, 1e-9)])
    failed = ((data.sizes[v].min(axis=1) < ood.MIN_SIDE) | (data.std[v] < ood.BLANK_STD)
              | (ood.colours_of(data.inputs[v]) > ood.COLOUR_MAX) | (probs.argmax(1) != 0))
    raw = np.where(failed, np.inf, raw)
    groups = data.group[v]
    per_group = {g: ood.conformal_quantile(raw[groups == g], rate, midpoint=True) for g in np.unique(groups)}
    finite = [t for t in per_group.values() if np.isfinite(t)]
    if not finite:
        raise DataError("the size, blank, colour and classifier checks alone reject more than the allowed share "
                        "of the validation slices of every group")
    # A group over its budget already is reported, not made worse. A group too small for its
    # quantile (under 1 / rate slices) is bounded by its largest score: the margin keeps the slice
    # that defines it from flipping with the last digits of another batch (int8 ranges per batch).
    threshold = float(max(finite)) * THRESHOLD_MARGIN
    rejected = raw > threshold
    info = {
        "fitted_on": {
            "classifier": f"training split: {int((train & mri).sum())} MRI slices of {len(np.unique(data.group))} "
                          f"groups and {len(variants)} changed copies of them (seed {VARIANTS_SEED}), "
                          f"{int((train & ~mri).sum())} not-MRI slices of the dataset and {len(neg_kinds)} "
                          f"generated negatives (seed {NEGATIVES_SEED})",
            "gaussians": f"training split, {int((train & mri).sum())} MRI slices (image statistics: and "
                         f"{len(variants)} changed copies)",
            "threshold": f"validation split, {int(v.sum())} MRI slices in {len(per_group)} groups",
        },
        "false_rejection_target": rate,
        "val_rejected": round(float(rejected.mean()), 5),
        "val_rejected_per_group": {g: round(float(rejected[groups == g].mean()), 5) for g in per_group},
        "val_groups_n": {g: int((groups == g).sum()) for g in per_group},
        "over_budget": sorted(str(g) for g, t in per_group.items() if not np.isfinite(t)),
    }
    gate = ood.OodGate(features, stats, classifier, sf, ss, (kmid, ktop), threshold, info=info)
    vn = val & ~mri
    if vn.any():
        caught = (gate.scores(None, data.features[vn], data.inputs[vn]) > 1) | \
            (classifier.probabilities(data.inputs[vn]).argmax(1) != 0)
        info["val_not_mri_rejected"] = f"{int(caught.sum())} of {int(vn.sum())}"
    return gate


def fit(predictor, splits: Sequence[SourceSplit], not_mri: dict[str, str] | None = None,
        rate: float = ood.FALSE_REJECTION, seed: int = 0, batch_size: int = 32) -> ood.OodGate:
    """The gate of ``predictor``'s first model, fitted on ``splits`` (see the module's docstring)."""
    data = collect(predictor, splits, not_mri, batch_size)
    return fit_gate(data, negative_inputs(), rate, seed, mri_variant_inputs(training_mri_files(splits, not_mri)))


def fit_into_checkpoint(path: str | Path, data: str | Path, split_file: str | Path,
                        sources: Sequence[str | Path] = (), not_mri: str | Path | None = None,
                        backend: str = "auto", seed: int = 0, batch_size: int = 32) -> dict:
    """Fit the gate of the checkpoint at ``path`` and store it in its metadata (weights kept; for
    the shipped checkpoint the manifest's SHA-256 follows). Returns the stored entry without its
    arrays, and the new SHA-256."""
    from ..inference.predictor import Predictor

    path = Path(path)
    predictor = Predictor.load(path, backend=backend)
    gate = fit(predictor, source_splits(data, split_file, sources, seed), read_not_mri(not_mri), seed=seed,
               batch_size=batch_size)
    return {"ood": gate.describe(), **store(path, ood=gate.to_meta())}


def store(path: Path, **entries) -> dict:
    """Write metadata entries into a checkpoint, keeping its permissions; for the package's own
    checkpoint, its manifest's SHA-256 too."""
    from ..inference import shipped
    from .checkpoint import update_meta

    mode = path.stat().st_mode & 0o777
    digest = update_meta(path, **entries)
    path.chmod(mode | 0o444)
    try:
        is_shipped = path.resolve() == shipped.default_model_path().resolve()
    except Exception:  # noqa: BLE001 - no manifest: not the shipped model
        is_shipped = False
    if is_shipped:
        mpath = shipped.weights_dir() / shipped.MANIFEST
        manifest = json.loads(mpath.read_text())
        manifest["sha256"] = digest
        mpath.write_text(json.dumps(manifest, indent=2) + "\n")
    return {"sha256": digest, "shipped": is_shipped}
