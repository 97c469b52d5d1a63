"""Training images from several collections, each image with its source, patient group and box.

The Brain Tumor MRI Dataset ties class to source: every glioma and nearly every meningioma and
pituitary image is a figshare contrast-enhanced T1 slice, and no no-tumour image is. A model trained
on it alone can name "tumour or not" from the look of the scan. Other collections break that link
when they show both classes from the same scans (TCGA-LGG: glioma and healthy FLAIR slices of the
same patients) or tumours from the source the no-tumour images come from (Br35H).

A *source folder* holds class folders (any of :data:`braintumor.config.CLASSES`, and ``tumour`` for
tumours of unknown type, trained with a partial label: "one of the tumour classes"), and optionally

- ``boxes.tsv``: tumour boxes, ``file xc yc w h`` with ``file`` relative to the folder;
- ``manifest.tsv``: a ``file`` and a ``patient`` column; slices of one patient stay on one side of
  the split (neighbouring slices of a scan are near-duplicates).

Images of the main data folder are named by source too: those with a radiologist box (figshare) and
the rest (the collections the no-tumour images come from).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import formats
from ..config import CLASSES
from ..errors import BoxesError, DataError

TUMOUR = -1  # label of a tumour of unknown type: the partial label "one of the tumour classes"
TUMOUR_FOLDER = "tumour"
NOTUMOR = CLASSES.index("notumor")
TUMOUR_CLASSES = tuple(i for i, c in enumerate(CLASSES) if c != "notumor")
MAIN_BOXED = "figshare"  # main-folder images with a radiologist box
MAIN_OTHER = "kaggle-other"  # main-folder images without one (Br35H and SARTAJ no-tumour slices, ...)


@dataclass(frozen=True)
class SourceImage:
    path: Path
    rel: str  # the path relative to its source folder (as the split records it)
    label: int  # index into CLASSES, or TUMOUR
    source: str
    group: str  # images of one group (patient) never straddle the split
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1, fractions of the stored image


def label_name(label: int) -> str:
    return "tumour" if label == TUMOUR else CLASSES[label]


def read_boxes(path: str | Path) -> dict[str, tuple[float, float, float, float]]:
    """``file xc yc w h`` rows (YOLO form, fractions of the stored image) -> {file: (x0, y0, x1, y1)}."""
    path = Path(path)
    if not path.is_file():
        raise BoxesError(f"boxes file not found: {path}")
    out = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        need = {"file", "xc", "yc", "w", "h"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise BoxesError(f"{path}: expected tab-separated columns {' '.join(sorted(need))}")
        for i, row in enumerate(reader, start=2):
            try:
                xc, yc, w, h = (float(row[k]) for k in ("xc", "yc", "w", "h"))
            except (TypeError, ValueError):
                raise BoxesError(f"{path}:{i}: not a number in {row}") from None
            out[row["file"]] = (xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2)
    return out


def list_source(folder: str | Path, name: str | None = None) -> list[SourceImage]:
    """Every image of a source folder (see the module's docstring), in class then name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"source folder not found: {folder}")
    name = name or folder.name
    known = {c: i for i, c in enumerate(CLASSES)} | {TUMOUR_FOLDER: TUMOUR}
    subdirs = sorted(d.name for d in folder.iterdir() if d.is_dir() and d.name in known)
    if not subdirs:
        raise DataError(f"{folder}: no class folders ({', '.join(known)})")
    boxes = read_boxes(folder / "boxes.tsv") if (folder / "boxes.tsv").is_file() else {}
    patients = {}
    if (folder / "manifest.tsv").is_file():
        with open(folder / "manifest.tsv", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            if reader.fieldnames and {"file", "patient"} <= set(reader.fieldnames):
                patients = {row["file"]: row["patient"] for row in reader if row.get("patient")}
    out = []
    for sub in subdirs:
        for p in sorted(q for q in (folder / sub).rglob("*") if formats.is_slice_file(q)):
            rel = p.relative_to(folder).as_posix()
            out.append(SourceImage(p, rel, known[sub], name, f"{name}:{patients.get(rel, rel)}", boxes.get(rel)))
    if not out:
        raise DataError(f"{folder}: the class folders hold no images")
    return out


def main_folder_sources(rels: list[str], boxes: dict) -> list[str]:
    """The source of each main-folder image (relative paths): boxed (figshare) or not."""
    return [MAIN_BOXED if r in boxes else MAIN_OTHER for r in rels]


def split_source(images: list[SourceImage], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Whole groups (patients) to validation, about ``val_fraction`` of each class's images; returns
    the training and validation files, relative to the source folder."""
    from .split import group_split

    if not images:
        return [], []
    groups = {g: k for k, g in enumerate(sorted({im.group for im in images}))}
    labels = np.array([im.label + 1 for im in images], dtype=np.int64)  # TUMOUR (-1) -> 0 for bincount
    is_val = group_split(labels, np.array([groups[im.group] for im in images]), val_fraction, seed)
    rel = [im.rel for im in images]
    return [r for r, v in zip(rel, is_val) if not v], [r for r, v in zip(rel, is_val) if v]


def sampling_weights(labels: np.ndarray, sources: list[str], power: float) -> np.ndarray:
    """Per-image draw weights that keep each class's share of draws and give each source within a
    class a share proportional to its size to the power ``1 - power`` (``power`` 0: as the data are;
    1: every source of a class equally often; 0.5: by the square root of its size, between the two,
    without drawing a small source's few images many times over). Sums to the number of images."""
    labels = np.asarray(labels)
    src = np.asarray(sources)
    w = np.zeros(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        in_c = labels == c
        names, counts = np.unique(src[in_c], return_counts=True)
        share = counts.astype(np.float64) ** (1.0 - power)
        share = share / share.sum() * in_c.sum()  # the class keeps its natural number of draws
        for name, n, s in zip(names, counts, share):
            w[in_c & (src == name)] = s / n
    return w * len(labels) / w.sum()


def split_images(split: dict, root: str | Path, boxes: dict, folders=(), part: str = "val") -> list[SourceImage]:
    """The images of one part ("train" or "val") of a split file's contents: the main folder's
    (under ``root``, with ``boxes`` keyed by their relative path) and those of each source folder
    that the split records under ``sources``."""
    root = Path(root)
    out = []
    for r in split[part]:
        cls = r.split("/")[0]
        if cls not in CLASSES:
            raise DataError(f"the split lists {r}, which is in no class folder ({', '.join(CLASSES)})")
        out.append(SourceImage(root / r, r, CLASSES.index(cls), MAIN_BOXED if r in boxes else MAIN_OTHER,
                               r, boxes.get(r)))
    for folder in folders:
        images = list_source(folder)
        name = images[0].source
        recorded = (split.get("sources") or {}).get(name)
        if recorded is None:
            raise DataError(f"the split records no {name!r} images: use the split.json of a run trained "
                            f"with --source {folder}")
        by_rel = {im.rel: im for im in images}
        missing = [r for r in recorded[part] if r not in by_rel]
        if missing:
            raise DataError(f"the split lists {len(missing)} images not in {folder}, e.g. {missing[0]}")
        out.extend(by_rel[r] for r in recorded[part])
    return out
