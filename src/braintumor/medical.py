"""DICOM and NIfTI input (see issue 8). Recognised by content, never by extension alone."""

from __future__ import annotations

from PIL import Image

from .imaging import UnsupportedImageError


def looks_medical(data: bytes, name: str = "") -> bool:
    """True for DICOM (``DICM`` preamble) or NIfTI (gzip or n+1 magic) bytes."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return True
    if len(data) >= 348 and data[344:348] in (b"n+1\x00", b"ni1\x00"):
        return True
    return name.lower().endswith((".nii", ".nii.gz")) and data[:2] == b"\x1f\x8b"


def read_medical_bytes(data: bytes, name: str = "upload", slice_index: int | None = None) -> Image.Image:
    raise UnsupportedImageError(f"{name}: DICOM and NIfTI input is not supported yet")
