"""How an audit (:mod:`braintumor.data.audit`) is shown: the terminal table, and the report folder of
``braintumor audit --report OUT`` (CSV lists, ``summary.json`` and ``contact_sheet.png`` with example
pairs of every kind)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from .audit import SAME_PICTURE, Audit, Folder, Pair, cls_of, to_dict
from ..errors import DataError


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

    from ..imaging import ImageError, load_image

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
        raise DataError(f"--report: {out} exists and is not a folder")
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
