"""``braintumor audit``: exact copies, near-duplicates, label conflicts and unreadable files in an image
folder, and twins between two folders (a test set leaking into a training set).

    braintumor audit DIR [--against DIR2] [--json] [--report OUT] [--threshold T]

DIR and DIR2 are class-folder roots (``DIR/<class>/...``) or plain folders of images; a root that
holds ``Training/`` (and ``Testing/``) is read as ``Training`` (against ``Testing``). The detection
is :mod:`braintumor.data.dedup`, the same method the training split groups near-duplicates with.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import dedup
from .. import formats
from ..errors import DataError

NO_CLASS = "(no class)"  # the class of an image that does not sit in a class folder
SAME_PICTURE = 0.99  # near-duplicates from this similarity are counted apart: the same picture


# ---------------------------------------------------------------------------------------- reading
@dataclass
class Folder:
    """The readable images of one folder and their fingerprints."""

    root: Path
    files: list[str]  # readable images, paths relative to root (posix)
    classes: list[str]  # class folder of each readable image, or NO_CLASS
    fp: dedup.Fingerprints
    unreadable: list[tuple[str, str]]  # (relative path, reason)
    ignored: list[str]  # files that are not images (notes, CSVs, ...)

    @property
    def has_classes(self) -> bool:
        return any(c != NO_CLASS for c in self.classes)

    @property
    def class_names(self) -> list[str]:
        """Class folders in the order of the package's classes first, then by name."""
        from ..config import CLASSES

        seen = set(self.classes) | {cls_of(p) for p, _ in self.unreadable}
        known = [c for c in CLASSES if c in seen]
        return known + sorted(c for c in seen if c not in known and c != NO_CLASS) + (
            [NO_CLASS] if NO_CLASS in seen and self.has_classes else [])


def cls_of(rel: str) -> str:
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else NO_CLASS


def list_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(candidate images, other files) under root, recursively, in name order; hidden ones skipped."""
    images, other = [], []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        (images if formats.is_scan_file(p) else other).append(p)
    return images, other


def resolve(path: str | Path, what: str = "folder") -> Path:
    root = Path(path)
    if not root.exists():
        raise DataError(f"{what} not found: {root}")
    if not root.is_dir():
        raise DataError(f"not a folder: {root}")
    return root


def split_root(root: Path) -> tuple[Path, Path | None]:
    """A dataset root holding Training/ (and Testing/) and nothing else: (Training, Testing or None)."""
    subs = {d.name.lower(): d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
    loose = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")
             and formats.is_scan_file(p)]
    if "training" in subs and not loose and set(subs) <= {"training", "testing"}:
        return subs["training"], subs.get("testing")
    return root, None


def read_folder(root: Path, progress=None, desc: str = "fingerprint") -> Folder:
    """Fingerprint every image under ``root``; unreadable files are listed, not raised."""
    images, other = list_files(root)
    bar = (lambda it, desc=desc: progress(it, desc=desc)) if progress else None
    fp = dedup.fingerprint_files(images, progress=bar)
    rel = [Path(p).relative_to(root).as_posix() for p in fp.paths]
    bad = [(Path(p).relative_to(root).as_posix(), why) for p, why in fp.unreadable]
    return Folder(root, rel, [cls_of(r) for r in rel], fp, bad,
                  [p.relative_to(root).as_posix() for p in other])


# ---------------------------------------------------------------------------------------- finding
@dataclass
class Pair:
    a: int  # index into the first folder's files
    b: int  # index into the same folder (within) or into the other one (cross)
    kind: str  # "exact" (same bytes) or "near"
    similarity: float
    conflict: bool = False  # filed under two different classes


@dataclass
class Audit:
    folder: Folder
    against: Folder | None
    threshold: float
    pairs: list[Pair]  # within folder, a < b
    groups: list[list[int]]  # connected components of pairs, largest first
    cross: list[Pair] = field(default_factory=list)

    # sets of indices into folder.files
    def exact_images(self) -> set[int]:
        return {i for p in self.pairs if p.kind == "exact" for i in (p.a, p.b)}

    def near_images(self) -> set[int]:
        return {i for p in self.pairs if p.kind == "near" for i in (p.a, p.b)}

    def conflict_images(self) -> set[int]:
        out = {i for p in self.pairs if p.conflict for i in (p.a, p.b)}
        return out | {p.a for p in self.cross if p.conflict}

    def redundant(self) -> int:
        """Images that could go while keeping one of each group."""
        return sum(len(g) - 1 for g in self.groups)


def _kind(sha: list[str], i: int, j: int) -> str:
    return "exact" if sha[i] == sha[j] else "near"


def find(folder: Folder, against: Folder | None = None,
         threshold: float = dedup.DEFAULT_THRESHOLD) -> Audit:
    """Pairs and groups within ``folder``, and pairs between it and ``against``."""
    fp, cls = folder.fp, folder.classes
    pairs = []
    for (i, j), s in dedup.near_pairs(fp, threshold).items():
        i, j = min(i, j), max(i, j)
        conflict = cls[i] != cls[j] and NO_CLASS not in (cls[i], cls[j])
        pairs.append(Pair(i, j, _kind(fp.sha256, i, j), min(float(s), 1.0), conflict))
    pairs.sort(key=lambda p: (p.a, p.b))
    ids = dedup.groups_from_pairs(len(fp.paths), [(p.a, p.b) for p in pairs])
    members: dict[int, list[int]] = {}
    for i, g in enumerate(ids):
        members.setdefault(int(g), []).append(i)
    groups = sorted((m for m in members.values() if len(m) > 1), key=lambda m: (-len(m), m[0]))
    cross = []
    if against is not None:
        for i, j, kind, s in dedup.cross_pairs(fp, against.fp, threshold):
            ca, cb = cls[i], against.classes[j]
            cross.append(Pair(i, j, kind, min(float(s), 1.0), ca != cb and NO_CLASS not in (ca, cb)))
    return Audit(folder, against, threshold, pairs, groups, cross)


def audit(path: str | Path, against: str | Path | None = None, threshold: float = dedup.DEFAULT_THRESHOLD,
          show_progress: bool = True) -> Audit:
    """Read, fingerprint and compare: the whole audit, as the command runs it."""
    from ..progress import progress

    if not 0.0 < threshold <= 1.0:
        raise DataError(f"--threshold must be in (0, 1], got {threshold}")
    root = resolve(path)
    other = resolve(against, "--against folder") if against is not None else None
    if other is None:
        root, other = split_root(root)
    bar = progress if show_progress else None
    folder = read_folder(root, bar, "fingerprint " + root.name)
    if not folder.files and not folder.unreadable:
        raise DataError(f"{root}: no image files found")
    theirs = None
    if other is not None:
        theirs = read_folder(other, bar, "fingerprint " + other.name)
        if not theirs.files and not theirs.unreadable:
            raise DataError(f"{other}: no image files found")
    return find(folder, theirs, threshold)


# ---------------------------------------------------------------------------------------- summaries
def folder_summary(f: Folder) -> dict:
    sizes = Counter(f"{w}x{h}" for w, h in f.fp.sizes)
    return {
        "path": str(f.root),
        "files": len(f.files) + len(f.unreadable),
        "images": len(f.files),
        "unreadable": len(f.unreadable),
        "ignored": len(f.ignored),
        "classes": {c: f.classes.count(c) for c in f.class_names} if f.has_classes else None,
        "sizes": dict(sizes.most_common()),
        "modes": dict(Counter(f.fp.modes).most_common()),
    }


def per_class(a: Audit) -> dict[str, dict[str, int]]:
    """Counts of images per class (class folders of DIR; NO_CLASS for a plain folder)."""
    f = a.folder
    sets = {"exact": a.exact_images(), "near": a.near_images(), "conflicts": a.conflict_images(),
            "in_against": {p.a for p in a.cross}}
    in_group = {i for g in a.groups for i in g}
    keep = {g[0] for g in a.groups}  # one kept per group
    names = f.class_names if f.has_classes else [NO_CLASS]
    out = {}
    for c in names:
        idx = [i for i, k in enumerate(f.classes) if k == c]
        row = {"images": len(idx)}
        row.update({k: sum(i in s for i in idx) for k, s in sets.items()})
        row["one_per_group"] = sum(1 for i in idx if i not in in_group or i in keep)
        row["unreadable"] = sum(1 for p, _ in f.unreadable if cls_of(p) == c)
        out[c] = row
    return out


def against_per_class(a: Audit) -> dict[str, dict[str, int]]:
    """For each class of DIR2: its images, and how many have an exact / only a near twin in DIR."""
    g = a.against
    exact = {p.b for p in a.cross if p.kind == "exact"}
    near = {p.b for p in a.cross if p.kind == "near"} - exact
    conflict = {p.b for p in a.cross if p.conflict}
    out = {}
    for c in (g.class_names if g.has_classes else [NO_CLASS]):
        idx = [j for j, k in enumerate(g.classes) if k == c]
        out[c] = {"images": len(idx), "exact": sum(j in exact for j in idx),
                  "near": sum(j in near for j in idx), "with_twin": sum(j in exact or j in near for j in idx),
                  "conflicts": sum(j in conflict for j in idx),
                  "unreadable": sum(1 for p, _ in g.unreadable if cls_of(p) == c)}
    return out


def to_dict(a: Audit) -> dict:
    """The JSON object of ``--json`` (and ``summary.json`` in a report)."""
    f, g = a.folder, a.against
    exact_groups = {}
    for i, s in enumerate(f.fp.sha256):
        exact_groups.setdefault(s, []).append(i)
    n_exact_groups = sum(len(v) > 1 for v in exact_groups.values())
    out = {
        "dir": str(f.root),
        "against": str(g.root) if g else None,
        "threshold": a.threshold,
        "summary": folder_summary(f),
        "against_summary": folder_summary(g) if g else None,
        "counts": {
            "images": len(f.files),
            "exact": {"images": len(a.exact_images()), "groups": n_exact_groups,
                      "redundant": sum(len(v) - 1 for v in exact_groups.values())},
            "near": {"images": len(a.near_images()),
                     "images_099": len({i for p in a.pairs if p.kind == "near" and p.similarity >= SAME_PICTURE
                                        for i in (p.a, p.b)}),
                     "pairs": sum(p.kind == "near" for p in a.pairs)},
            "groups": len(a.groups),
            "redundant": a.redundant(),
            "one_per_group": len(f.files) - a.redundant(),
            "conflicts": len(a.conflict_images()),
            "unreadable": len(f.unreadable),
        },
        "per_class": per_class(a),
        "within": [[f.files[i] for i in grp] for grp in a.groups],
        "pairs": [{"a": f.files[p.a], "b": f.files[p.b], "kind": p.kind, "similarity": round(p.similarity, 4),
                   "conflict": p.conflict} for p in a.pairs],
        "cross": [],
        "conflicts": sorted(f.files[i] for i in a.conflict_images()),
        "unreadable": [p for p, _ in f.unreadable],
        "errors": {p: why for p, why in f.unreadable},
    }
    if g is not None:
        out["cross"] = [{"a": f.files[p.a], "b": g.files[p.b], "kind": p.kind,
                         "similarity": round(p.similarity, 4), "conflict": p.conflict} for p in a.cross]
        twins = {p.b for p in a.cross}
        out["counts"]["cross"] = {
            "pairs": len(a.cross), "exact_pairs": sum(p.kind == "exact" for p in a.cross),
            "dir_images": len({p.a for p in a.cross}), "against_images": len(twins),
            "against_fraction": round(len(twins) / max(len(g.files), 1), 4),
            "conflicts": len({p.b for p in a.cross if p.conflict}),
        }
        out["against_per_class"] = against_per_class(a)
        out["against_conflicts"] = sorted({g.files[p.b] for p in a.cross if p.conflict})
        out["against_unreadable"] = [p for p, _ in g.unreadable]
        out["errors_against"] = {p: why for p, why in g.unreadable}
    return out
