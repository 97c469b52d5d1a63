"""Files to series: DICOM files grouped by SeriesInstanceUID and put in anatomical order, NIfTI
volumes one series each, every slice decoded by :mod:`braintumor.medical` (the same display rules
and per-image limits as one slice sent alone).

Order within a DICOM series: by ImagePositionPatient projected on the slice normal (the cross
product of ImageOrientationPatient's row and column directions), where every slice has both and
they share one orientation; else by InstanceNumber where every slice has one; else in the order the
files came. For a transverse series the first slice is the one nearest the feet, as in a NIfTI
volume. A multi-frame (enhanced) file gives one slice per frame, placed by its per-frame position.

The UIDs, positions and numbers read here are kept for ordering and for the structured report
(:mod:`braintumor.studies.sr`, which must point at the images); answers carry only the slice's
place, its InstanceNumber and its position in millimetres. A header copy without pixel data is kept
per file for the report's evidence; nothing else of a header is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
from PIL import Image

from ..errors import ImageError, UnsupportedImageError
from .archive import is_zip, read_zip
from .errors import StudyError
from .limits import LIBRARY, StudyLimits

SAME_ORIENTATION = 1e-3  # direction cosines that differ by less are one orientation
NOT_SCAN = "not a DICOM or NIfTI file"
NOT_IMAGE = "not an image this tool reads (a report, a DICOMDIR, an unsupported kind)"
UNREADABLE = "damaged or unreadable"
COPY = "a second copy of an image (the same SOPInstanceUID)"


@dataclass
class Slice:
    image: Image.Image  # 8-bit grey, square pixels: what the model sees
    rows: int  # the stored image's pixel grid, which the report's coordinates refer to
    cols: int
    instance_number: int | None = None
    position: float | None = None  # mm along the slice normal
    orientation: tuple[float, ...] | None = None
    frame: int | None = None  # 1-based frame of a multi-frame file
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None


@dataclass
class Series:
    kind: str  # "dicom" or "nifti"
    slices: list[Slice]
    ordering: str = "file order"  # "position", "instance number", "file order" or "volume"
    modality: str | None = None
    series_number: int | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    headers: list = field(default_factory=list)  # pydicom data sets without pixel data, one per file


@dataclass
class Study:
    series: list[Series]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> files
    problems: list[tuple[str, str]] = field(default_factory=list)  # (label, message) of files skipped

    @property
    def n_slices(self) -> int:
        return sum(len(s.slices) for s in self.series)


def _int(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _floats(value, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def _place(ipp: tuple[float, ...] | None, iop: tuple[float, ...] | None) -> float | None:
    if ipp is None or iop is None:
        return None
    normal = np.cross(iop[:3], iop[3:])
    return float(np.dot(ipp, normal)) if np.linalg.norm(normal) > 0.5 else None


def order_slices(slices: list[Slice]) -> tuple[list[Slice], str]:
    """The slices in anatomical order, and how the order was found ("position", "instance
    number" or "file order")."""
    first = slices[0].orientation if slices else None
    if slices and all(s.position is not None and s.orientation is not None
                      and np.allclose(s.orientation, first, atol=SAME_ORIENTATION) for s in slices):
        key = [(s.position, s.instance_number or 0, s.frame or 0) for s in slices]
        return [s for _, s in sorted(zip(key, slices), key=lambda t: t[0])], "position"
    if slices and all(s.instance_number is not None for s in slices):
        key = [(s.instance_number, s.frame or 0) for s in slices]
        return [s for _, s in sorted(zip(key, slices), key=lambda t: t[0])], "instance number"
    return list(slices), "file order"


class _Reader:
    """Reads files one at a time into series, counting slices and pixels against the limits."""

    def __init__(self, limits: StudyLimits):
        self.limits = limits
        self.slices = 0
        self.pixels = 0
        self.dicom: dict[str | None, Series] = {}
        self.nifti: list[Series] = []
        self.seen: set[str] = set()  # SOPInstanceUIDs read
        self.study = Study([])

    def skip(self, reason: str, label: str, message: str | None = None) -> None:
        self.study.skipped[reason] = self.study.skipped.get(reason, 0) + 1
        if message:
            self.study.problems.append((label, message))

    def count(self, slices: int, pixels: int) -> None:
        self.slices += slices
        self.pixels += pixels
        self.limits.check_slices(self.slices)
        self.limits.check_pixels(self.pixels)

    def add(self, data: bytes, label: str) -> None:
        from ..medical.detect import kind

        found = kind(data, label)
        if found is None:
            self.skip(NOT_SCAN, label)
            return
        try:
            if found == "nifti":
                self.add_nifti(data, label)
            else:
                self.add_dicom(data, label)
        except UnsupportedImageError as exc:
            self.skip(NOT_IMAGE, label, str(exc))
        except StudyError:
            raise
        except ImageError as exc:
            self.skip(UNREADABLE, label, str(exc))

    def add_nifti(self, data: bytes, label: str) -> None:
        from ..medical.nifti import Nifti
        from ..medical.quiet import guard

        with guard(label):
            vol = Nifti(data, label)
            self.count(vol.slices, 0)  # its pixels are bounded by the per-image budget, and counted once decoded
            images = vol.all_slices()
        self.count(0, sum(im.width * im.height for im in images))
        slices = [Slice(im, im.height, im.width) for im in images]
        self.nifti.append(Series("nifti", slices, "volume"))

    def add_dicom(self, data: bytes, label: str) -> None:
        from ..medical.dicom import Dicom, _frame_value
        from ..medical.quiet import guard, quiet

        with guard(label):
            vol = Dicom(data, label)
            ds = vol.ds
            with quiet():
                meta = getattr(ds, "file_meta", None)
                sop_class = str(ds.get("SOPClassUID", "") or getattr(meta, "MediaStorageSOPClassUID", "") or "")
                sop_instance = str(ds.get("SOPInstanceUID", "")
                                   or getattr(meta, "MediaStorageSOPInstanceUID", "") or "")
                series_uid = str(ds.get("SeriesInstanceUID", "") or "") or None
                study_uid = str(ds.get("StudyInstanceUID", "") or "") or None
                instance_number = _int(ds.get("InstanceNumber"))
                modality = str(ds.get("Modality", "") or "").strip() or None
                series_number = _int(ds.get("SeriesNumber"))
                places = []
                for i in range(vol.frames):
                    ipp = _floats(_frame_value(ds, i, "PlanePositionSequence", "ImagePositionPatient"), 3)
                    iop = _floats(_frame_value(ds, i, "PlaneOrientationSequence", "ImageOrientationPatient"), 6)
                    places.append((_place(ipp, iop), iop))
            if sop_instance and sop_instance in self.seen:
                self.skip(COPY, label, f"{label}: {COPY}")
                return
            self.seen.add(sop_instance)
            self.count(vol.frames, vol.rows * vol.cols * vol.frames)  # before any pixel is decoded
            images = vol.all_frames()
            with quiet():
                del ds[vol.pixel_keyword]  # the header stays, for the report's evidence
        series = self.dicom.get(series_uid)
        if series is None:
            series = self.dicom[series_uid] = Series("dicom", [], modality=modality, series_number=series_number,
                                                     study_uid=study_uid, series_uid=series_uid)
        multi = vol.frames > 1
        for i, (image, (position, orientation)) in enumerate(zip(images, places)):
            series.slices.append(Slice(image, vol.rows, vol.cols, instance_number, position, orientation,
                                       i + 1 if multi else None, sop_class or None, sop_instance or None))
        series.headers.append(ds)

    def finish(self) -> Study:
        dicom = sorted(self.dicom.values(), key=lambda s: (s.series_number is None, s.series_number or 0))
        for s in dicom:
            s.slices, s.ordering = order_slices(s.slices)
        self.study.series = dicom + self.nifti
        return self.study


def read_study(items: Iterable[tuple[bytes, str]], limits: StudyLimits = LIBRARY) -> Study:
    """The series of a study from ``(bytes, label)`` items: DICOM and NIfTI files, or .zip archives
    of them (:func:`braintumor.studies.archive.read_zip`). ``label`` names an item in messages.

    Files that are not DICOM or NIfTI, or hold no image, or cannot be read, are skipped and counted
    by reason (``Study.skipped``; their messages in ``Study.problems``). StudyTooLarge when the
    study passes ``limits``; StudyError when no file holds an image. Each slice is decoded under the
    current per-image budget (:mod:`braintumor.limits`)."""
    files: list[tuple[bytes, str]] = []
    total = 0
    for data, label in items:
        unpacked = read_zip(data, label, limits) if is_zip(data) else [(data, label)]
        files.extend(unpacked)
        total += sum(len(d) for d, _ in unpacked)
        limits.check_files(len(files))
        limits.check_bytes(total)
    reader = _Reader(limits)
    for data, label in files:
        reader.add(data, label)
    study = reader.finish()
    if not study.series:
        reasons = "; ".join(f"{n} {r}" for r, n in study.skipped.items()) or "no files"
        first = f"; the first: {study.problems[0][1]}" if study.problems else ""
        raise StudyError(f"no DICOM or NIfTI image was found in what was sent ({reasons}){first}")
    return study


__all__ = ["Slice", "Series", "Study", "read_study", "order_slices"]
