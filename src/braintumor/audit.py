"""``braintumor audit``: exact copies, near-duplicates, label conflicts and unreadable files in an image
folder, and twins between two folders (a test set leaking into a training set).

    braintumor audit DIR [--against DIR2] [--json] [--report OUT] [--threshold T]

DIR and DIR2 are class-folder roots (``DIR/<class>/...``) or plain folders of images; a root that
holds ``Training/`` (and ``Testing/``) is read as ``Training`` (against ``Testing``). The detection
is :mod:`braintumor.dedup`, the same method the training split groups near-duplicates with.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import dedup, formats

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
        from .config import CLASSES

        seen = set(self.classes) | {cls_of(p) for p, _ in self.unreadable}
        known = [c for c in CLASSES if c in seen]
        return known + sorted(c for c in seen if c not in known and c != NO_CLASS) + (
            [NO_CLASS] if NO_CLASS in seen and self.has_classes else [])


def _data_error(message: str) -> Exception:
    """braintumor.data.DataError (one line, exit 2), imported late: braintumor.data imports torch."""
    from .data import DataError

    return DataError(message)


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
        raise _data_error(f"{what} not found: {root}")
    if not root.is_dir():
        raise _data_error(f"not a folder: {root}")
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
    from .data import progress

    if not 0.0 < threshold <= 1.0:
        raise _data_error(f"--threshold must be in (0, 1], got {threshold}")
    root = resolve(path)
    other = resolve(against, "--against folder") if against is not None else None
    if other is None:
        root, other = split_root(root)
    bar = progress if show_progress else None
    folder = read_folder(root, bar, "fingerprint " + root.name)
    if not folder.files and not folder.unreadable:
        raise _data_error(f"{root}: no image files found")
    theirs = None
    if other is not None:
        theirs = read_folder(other, bar, "fingerprint " + other.name)
        if not theirs.files and not theirs.unreadable:
            raise _data_error(f"{other}: no image files found")
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


def _table(rows: list[tuple[str, list[str]]], header: list[str]) -> list[str]:
    w0 = max(len(r[0]) for r in rows) + 2
    widths = [max(len(h), *(len(r[1][k]) for r in rows)) + 2 for k, h in enumerate(header)]
    lines = [" " * w0 + "".join(f"{h:>{w}}" for h, w in zip(header, widths))]
    lines += [f"{name:<{w0}}" + "".join(f"{v:>{w}}" for v, w in zip(vals, widths)) for name, vals in rows]
    return lines


def _n(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _counts_line(counter: dict) -> str:
    items = list(counter.items())
    if not items:
        return "none"
    text = ", ".join(f"{k} {v:,}" for k, v in items[:4])
    return text + (f", {len(items) - 4} more" if len(items) > 4 else "")


def format_table(d: dict) -> str:
    """The terminal report, from :func:`to_dict`'s object."""
    s, c = d["summary"], d["counts"]
    pc = d["per_class"]
    names = list(pc)
    header = (names + ["total"]) if s["classes"] else ["total"]

    def row(label: str, key: str) -> tuple[str, list[str]]:
        vals = [pc[n][key] for n in names]
        return label, ([f"{v:,}" for v in vals] if s["classes"] else []) + [f"{sum(vals):,}"]

    lines = [f"audit of {d['dir']}: {_n(s['images'], 'image')}"
             + (f" in {len(s['classes'])} class folders" if s["classes"] else " (no class folders)")
             + f", near-duplicate threshold {d['threshold']}",
             f"sizes: {_counts_line(s['sizes'])}; modes: {_counts_line(s['modes'])}"
             + (f"; {s['ignored']} other files ignored" if s["ignored"] else ""), ""]
    rows = [row("images", "images"), row("with an exact copy (same bytes)", "exact"),
            row("with a near-duplicate", "near"), row("in a label conflict", "conflicts"),
            row("unreadable", "unreadable"), row("left when each group keeps one", "one_per_group")]
    if d["against"]:
        rows.append(row("with a twin in --against", "in_against"))
    lines += _table(rows, header)
    lines += ["", f"{c['exact']['redundant']:,} redundant exact copies in {c['exact']['groups']:,} groups; "
              f"{c['near']['pairs']:,} near-duplicate pairs; {c['groups']:,} groups in all; "
              f"{c['one_per_group']:,} images ({c['one_per_group'] / max(c['images'], 1):.1%}) left when each "
              "group keeps one",
              f"near-duplicate: similarity >= {d['threshold']} (re-encoded, resized, shifted, flipped or "
              f"re-contrasted copies, and neighbouring slices); {c['near']['images_099']:,} images have one "
              f">= {SAME_PICTURE} (the same picture)"]
    if d["against"]:
        ag, ac = d["against_summary"], d["against_per_class"]
        an = list(ac)
        lines += ["", f"against {d['against']}: {_n(ag['images'], 'image')}"
                  + (f" in {len(ag['classes'])} class folders" if ag["classes"] else " (no class folders)")]
        header2 = (an + ["total"]) if ag["classes"] else ["total"]

        def row2(label: str, key: str) -> tuple[str, list[str]]:
            vals = [ac[n][key] for n in an]
            return label, ([f"{v:,}" for v in vals] if ag["classes"] else []) + [f"{sum(vals):,}"]

        rows2 = [row2("images", "images"), row2("with an exact twin in DIR", "exact"),
                 row2("with a near twin only", "near"), row2("with any twin in DIR", "with_twin"),
                 row2("filed under another class", "conflicts"), row2("unreadable", "unreadable")]
        lines += _table(rows2, header2)
        cc = c["cross"]
        lines += ["", f"{cc['against_images']:,} of {ag['images']:,} images in --against "
                  f"({cc['against_fraction']:.1%}) have a twin in DIR"
                  + (": accuracy measured on them partly measures memory" if cc["against_images"] else "")]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- report
def _write_csv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def examples(a: Audit, per_kind: int = 8) -> list[tuple[str, list[tuple[Path, Path, str]]]]:
    """Pairs of files to show, per kind, the worst first: (title, [(left, right, caption)])."""
    f, g = a.folder, a.against

    def item(p: Pair, other: Folder) -> tuple[Path, Path, str]:
        return (f.root / f.files[p.a], other.root / other.files[p.b], f"{p.kind} {p.similarity:.3f}")

    group_of = {i: k for k, grp in enumerate(a.groups) for i in grp}
    copies = Counter(f.fp.sha256)

    def one_each(pairs, key, group=lambda p: group_of[p.a]) -> list[Pair]:
        """Sorted by key, one pair per group: a sheet of eight views of one cluster says little."""
        out, seen = [], set()
        for p in sorted(pairs, key=key):
            if group(p) not in seen:
                seen.add(group(p))
                out.append(p)
        return out

    plain = [p for p in a.pairs if p.kind == "near" and not p.conflict]
    sections = [
        ("label conflicts: the same picture under two classes (most alike first)",
         sorted((p for p in a.pairs if p.conflict), key=lambda p: -p.similarity), f),
        ("exact copies (most copies first)",
         one_each([p for p in a.pairs if p.kind == "exact"], lambda p: -copies[f.fp.sha256[p.a]],
                  lambda p: f.fp.sha256[p.a]), f),
        ("near-duplicates (most alike first)", one_each(plain, lambda p: -p.similarity), f),
        ("near-duplicates closest to the threshold (least alike first)", one_each(plain, lambda p: p.similarity), f),
    ]
    if g is not None:
        twin = [p for p in a.cross if not p.conflict]
        sections += [
            ("DIR and --against: twins under two classes",
             sorted((p for p in a.cross if p.conflict), key=lambda p: -p.similarity), g),
            ("DIR and --against: twins (exact first, then most alike)",
             one_each(twin, lambda p: (p.kind != "exact", -p.similarity), lambda p: p.b), g),
            ("DIR and --against: twins closest to the threshold",
             one_each([p for p in twin if p.kind == "near"], lambda p: p.similarity, lambda p: p.b), g),
        ]
    return [(title, [item(p, other) for p in ps[:per_kind]]) for title, ps, other in sections if ps]


def contact_sheet(sections: list[tuple[str, list[tuple[Path, Path, str]]]], thumb: int = 128,
                  per_row: int = 4) -> "Image.Image":
    """One PNG-ready image: a titled block per kind, each example two thumbnails side by side."""
    from PIL import Image, ImageDraw, ImageFont

    from .imaging import ImageError, load_image

    font = ImageFont.load_default(size=11)
    title_font = ImageFont.load_default(size=15)
    gap, cap = 10, 30
    tile_w, tile_h = 2 * thumb + 4, thumb + cap
    width = per_row * (tile_w + gap) + gap
    heights = [26 + ((len(items) + per_row - 1) // per_row) * (tile_h + gap) for _, items in sections]
    sheet = Image.new("RGB", (width, max(sum(heights) + gap, 40)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if not sections:
        draw.text((gap, gap), "nothing found", fill=(0, 0, 0), font=title_font)
    y = gap

    def fit(text: str, room: int) -> str:
        while text and draw.textlength(text, font=font) > room:
            text = "…" + text[2:]
        return text

    for (title, items), h in zip(sections, heights):
        draw.text((gap, y), title, fill=(0, 0, 0), font=title_font)
        for k, (left, right, caption) in enumerate(items):
            x0 = gap + (k % per_row) * (tile_w + gap)
            y0 = y + 26 + (k // per_row) * (tile_h + gap)
            for m, path in enumerate((left, right)):
                try:
                    im = load_image(path)
                    im.thumbnail((thumb, thumb))
                except ImageError:
                    im = Image.new("L", (thumb, thumb), 128)
                sheet.paste(im.convert("RGB"), (x0 + m * (thumb + 4) + (thumb - im.width) // 2,
                                                y0 + (thumb - im.height) // 2))
            names = f"{path_label(left)} | {path_label(right)}"
            draw.text((x0, y0 + thumb + 2), caption, fill=(160, 0, 0), font=font)
            draw.text((x0, y0 + thumb + 15), fit(names, tile_w), fill=(0, 0, 0), font=font)
        y += h
    return sheet


def path_label(p: Path) -> str:
    return f"{p.parent.name}/{p.name}"


def write_report(a: Audit, out: str | Path, per_kind: int = 8) -> list[Path]:
    """Write the full lists as CSV, ``summary.json`` and ``contact_sheet.png`` into ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise _data_error(f"--report: {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    f, g = a.folder, a.against
    group_of = {i: k for k, grp in enumerate(a.groups) for i in grp}
    twins = {}
    for p in a.cross:
        twins.setdefault(p.a, []).append(p.b)
    rows = []
    for i, rel in enumerate(f.files):
        (w, h), mode = f.fp.sizes[i], f.fp.modes[i]
        rows.append(["dir", rel, f.classes[i], w, h, mode, f.fp.sha256[i], group_of.get(i, ""),
                     len(twins.get(i, [])), "ok", ""])
    rows += [["dir", rel, cls_of(rel), "", "", "", "", "", "", "unreadable", why] for rel, why in f.unreadable]
    if g is not None:
        for j, rel in enumerate(g.files):
            (w, h), mode = g.fp.sizes[j], g.fp.modes[j]
            rows.append(["against", rel, g.classes[j], w, h, mode, g.fp.sha256[j], "", "", "ok", ""])
        rows += [["against", rel, cls_of(rel), "", "", "", "", "", "", "unreadable", why]
                 for rel, why in g.unreadable]
    paths = [out / n for n in ("files.csv", "pairs.csv", "groups.csv", "conflicts.csv", "unreadable.csv",
                               "summary.json", "contact_sheet.png")]
    _write_csv(paths[0], ["folder", "path", "class", "width", "height", "mode", "sha256", "group",
                          "twins_in_against", "status", "error"], rows)
    pair_rows = [["within", p.kind, f.files[p.a], f.classes[p.a], f.files[p.b], f.classes[p.b],
                  f"{p.similarity:.4f}", int(p.conflict)] for p in a.pairs]
    if g is not None:
        pair_rows += [["cross", p.kind, f.files[p.a], f.classes[p.a], g.files[p.b], g.classes[p.b],
                       f"{p.similarity:.4f}", int(p.conflict)] for p in a.cross]
    header = ["scope", "kind", "a", "class_a", "b", "class_b", "similarity", "conflict"]
    _write_csv(paths[1], header, pair_rows)
    _write_csv(paths[2], ["group", "size", "kind", "path", "class"],
               [[k, len(grp), "exact" if len({f.fp.sha256[i] for i in grp}) == 1 else "near", f.files[i],
                 f.classes[i]] for k, grp in enumerate(a.groups) for i in grp])
    _write_csv(paths[3], header, [r for r in pair_rows if r[-1]])
    bad = [["dir", p, why] for p, why in f.unreadable]
    if g is not None:
        bad += [["against", p, why] for p, why in g.unreadable]
    _write_csv(paths[4], ["folder", "path", "error"], bad)
    paths[5].write_text(json.dumps(to_dict(a), indent=1) + "\n")
    contact_sheet(examples(a, per_kind)).save(paths[6])
    return paths
