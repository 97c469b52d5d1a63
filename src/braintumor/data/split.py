"""A validation split that does not leak: near-duplicates are grouped and groups never straddle it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import dedup
from .folders import Sample

SPLIT_THRESHOLD = 0.90  # looser than the audit's flag: neighbouring slices are kept together too


@dataclass
class Split:
    train: list[str]  # paths relative to the data root
    val: list[str]
    groups: int
    conflicts_removed: list[str] = field(default_factory=list)
    unreadable: list[list[str]] = field(default_factory=list)  # [path, reason], left out
    threshold: float = SPLIT_THRESHOLD
    seed: int = 0
    val_fraction: float = 0.15
    # More collections (braintumor.data.sources), each split by patient: {name: {"train": [...], "val": [...]}}
    # with paths relative to that collection's folder
    sources: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1)

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        return cls(**json.loads(Path(path).read_text()))


def group_split(labels: np.ndarray, groups: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation items: whole groups, about ``val_fraction`` of each class.

    A group counts towards the class most of its members have."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(labels), dtype=bool)
    members: dict[int, np.ndarray] = {}
    for g in np.unique(groups):
        members[int(g)] = np.flatnonzero(groups == g)
    by_class: dict[int, list[int]] = {}
    for g, idx in members.items():
        major = int(np.bincount(labels[idx]).argmax())
        by_class.setdefault(major, []).append(g)
    for cls, gs in sorted(by_class.items()):
        target = round(val_fraction * int((labels == cls).sum()))
        if val_fraction > 0 and len(gs) >= 2:
            target = max(1, target)  # small folders: at least one group of each class
        order = rng.permutation(len(gs))
        taken = 0
        for k in order:
            idx = members[gs[k]]
            if taken >= target:
                break
            if taken + len(idx) > target * 1.05 + 1:  # skip a group that would overshoot
                continue
            is_val[idx] = True
            taken += len(idx)
    return is_val


def make_split(samples: list[Sample], root: Path, val_fraction: float = 0.15, seed: int = 0,
               threshold: float = SPLIT_THRESHOLD, progress=None) -> Split:
    """Fingerprint, group near-duplicates, drop label conflicts, split groups by class."""
    fp = dedup.fingerprint_files([s.path for s in samples], progress=progress)
    by_path = {str(s.path): s.label for s in samples}
    labels = np.array([by_path[p] for p in fp.paths], dtype=np.int64)
    pairs = dedup.near_pairs(fp, threshold)
    conflicted = set()  # near-duplicates (at the audit's threshold) filed under two classes
    for (i, j), sim in pairs.items():
        if labels[i] != labels[j] and sim >= dedup.DEFAULT_THRESHOLD:
            conflicted.update((i, j))
    groups = dedup.groups_from_pairs(len(fp.paths), pairs.keys())
    is_val = group_split(labels, groups, val_fraction, seed)
    rel = [Path(p).relative_to(root).as_posix() for p in fp.paths]
    keep = [i for i in range(len(rel)) if i not in conflicted]
    return Split(
        train=[rel[i] for i in keep if not is_val[i]],
        val=[rel[i] for i in keep if is_val[i]],
        groups=int(groups.max()) + 1 if len(groups) else 0,
        conflicts_removed=sorted(rel[i] for i in conflicted),
        unreadable=[[Path(p).relative_to(root).as_posix(), why] for p, why in fp.unreadable],
        threshold=threshold,
        seed=seed,
        val_fraction=val_fraction,
    )
