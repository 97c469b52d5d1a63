"""DICOM and NIfTI input. Recognised by content, never by extension alone.

Every entry point reads images through :func:`braintumor.imaging.read_bytes`, which hands DICOM and
NIfTI bytes to :func:`read_medical_bytes`; the result is an ordinary 8-bit grayscale PIL image made
from the pixel array alone, so nothing from a file's header (patient name, IDs, dates, UIDs,
institution, NIfTI ``descrip``) can reach an answer, a log line or a written file. Error messages name
only the file name the user gave, never a header value, and the warnings and log records that
pydicom and nibabel emit while reading (some quote header values) are swallowed.

Display rules, the same for one slice and for a whole volume (:mod:`.dicom`, :mod:`.nifti`):

* DICOM: modality LUT or rescale slope/intercept, then the window centre/width in the file (first
  value when there are several, per-frame values in enhanced multi-frame files), else the VOI LUT,
  else 8-bit data as stored, else a 0.5-99.5 percentile window of the frame. MONOCHROME1 is
  inverted; RGB, YBR and PALETTE COLOR become luminance. Non-square pixels are made square.
* NIfTI: reoriented to RAS with ``nibabel.as_closest_canonical``; slice ``k`` is the k-th axial
  slice from the feet up, shown as a radiology viewer shows it (anterior up, the patient's right on
  the image's left). Window: the header's cal_min/cal_max, else 8-bit data as stored, else a
  0.5-99.5 percentile window of the whole volume (so that slices compare).

Modules: :mod:`.detect` (which bytes are DICOM or NIfTI), :mod:`.dicom`, :mod:`.nifti`,
:mod:`.window` (intensities to 8-bit pixels) and :mod:`.quiet` (no header value in warnings, logs
or errors). Classifying every slice of a volume is :func:`braintumor.inference.volume.predict_volume`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from PIL import Image

from ..errors import ImageError, UnsupportedImageError
from .detect import kind, looks_medical
from .dicom import Dicom
from .nifti import MAX_NIFTI_BYTES, MAX_VOXELS, Nifti
from .quiet import guard
from .window import PERCENTILES

Source = Union[bytes, bytearray, memoryview, str, os.PathLike]


def _open(data: bytes, name: str) -> Dicom | Nifti:
    found = kind(data, name)
    if found == "nifti":
        return Nifti(data, name)
    if found == "dicom":
        return Dicom(data, name)
    raise UnsupportedImageError(f"{name}: not a DICOM or NIfTI file")


def read_medical_bytes(data: bytes, name: str = "upload", slice_index: int | None = None) -> Image.Image:
    """One slice of a DICOM or NIfTI file as an 8-bit grayscale image: a DICOM frame (default: the
    middle frame of a multi-frame file) or an axial NIfTI slice (default: the middle one)."""
    with guard(name):
        vol = _open(bytes(data), name)
        return vol.frame(slice_index) if isinstance(vol, Dicom) else vol.slice(slice_index)


def read_source(source: Source, name: str | None = None) -> tuple[bytes, str]:
    """(bytes, name for messages) of bytes, a path or a binary file object; an empty file is an
    ImageError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "upload"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise ImageError(f"{label}: no such file")
        data = path.read_bytes()
    elif hasattr(source, "read"):
        data, label = source.read(), name or getattr(source, "name", "file")
    else:
        raise TypeError(f"cannot read a volume from {type(source).__name__}")
    if not data:
        raise ImageError(f"{label}: the file is empty")
    return data, label


def read_volume(source: Source, name: str | None = None) -> list[Image.Image]:
    """Every slice of a DICOM (its frames) or NIfTI volume (its axial slices, feet to head), each
    exactly as :func:`read_medical_bytes` gives it with that ``slice_index``."""
    data, label = read_source(source, name)
    with guard(label):
        vol = _open(data, label)
        return vol.all_frames() if isinstance(vol, Dicom) else vol.all_slices()


def count_slices(source: Source, name: str | None = None) -> int:
    """How many slices ``slice_index`` can choose from (1 for a single-frame DICOM)."""
    data, label = read_source(source, name)
    with guard(label):
        vol = _open(data, label)
        return vol.frames if isinstance(vol, Dicom) else vol.slices


__all__ = ["looks_medical", "read_medical_bytes", "read_source", "read_volume", "count_slices",
           "PERCENTILES", "MAX_VOXELS", "MAX_NIFTI_BYTES", "Source"]
