"""Finding labelled images on disk: a folder of class folders, as :class:`Sample` (path, label)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .. import formats
from ..config import CLASSES


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int

    def rel(self, root: Path) -> str:
        return self.path.relative_to(root).as_posix()


def resolve_root(data: str | Path, part: str) -> Path:
    """A class-folder root: ``data`` itself, or ``data/<part>`` (Training or Testing)."""
    root = Path(data)
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"not a folder: {root}")
    for candidate in (part, part.lower()):
        sub = root / candidate
        if sub.is_dir() and not (root / CLASSES[0]).is_dir():
            return sub
    return root


def list_samples(root: str | Path, classes: tuple[str, ...] = CLASSES, require_all: bool = True) -> list[Sample]:
    """All images and DICOM files (:func:`braintumor.formats.is_slice_file`) under ``root/<class>/``,
    in class order then name order.

    Raises DataError for no class folders, unknown class folders or, with ``require_all`` (training
    from scratch needs every class), a missing or empty class."""
    root = Path(root)
    subdirs = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subdirs:
        raise DataError(f"{root} has no class folders; expected {', '.join(classes)}")
    unknown = [d for d in subdirs if d not in classes]
    if unknown:
        raise DataError(
            f"{root}: unknown class folder(s) {', '.join(unknown)}; expected {', '.join(classes)}"
        )
    missing = [c for c in classes if c not in subdirs]
    if missing and require_all:
        raise DataError(f"{root}: class folder(s) missing: {', '.join(missing)}")
    samples = []
    for label, cls in enumerate(classes):
        inside = (root / cls).rglob("*") if cls in subdirs else ()
        files = sorted(p for p in inside if formats.is_slice_file(p))
        if not files and require_all:
            raise DataError(f"{root / cls}: the class folder holds no images")
        samples.extend(Sample(p, label) for p in files)
    if not samples:
        raise DataError(f"{root}: no images in the class folders {', '.join(subdirs)}")
    return samples
