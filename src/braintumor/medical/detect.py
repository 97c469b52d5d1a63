"""Recognising DICOM and NIfTI: by content first, by name only where the content is silent.

The signatures themselves (the DICOM preamble, a raw DICOM data set, the NIfTI magic, gzip) and the
accepted names are :mod:`braintumor.formats`, the one list every part of the tool uses.
"""

from __future__ import annotations

from .. import formats


def kind(data: bytes, name: str) -> str | None:
    """"dicom", "nifti" or None (an ordinary image, or not a scan at all)."""
    if formats.dicom_preamble(data):
        return "dicom"
    if formats.nifti_magic(data[:348]) or formats.gzipped_nifti(data):
        return "nifti"
    suffix = formats.suffix_of(name)
    named_dicom = suffix in formats.DICOM_SUFFIXES
    if (named_dicom or formats.has_no_extension(name)) and formats.raw_dicom(data):
        return "dicom"
    if formats.picture_format(data) is not None:
        return None  # an ordinary image, whatever its name says
    if named_dicom:
        return "dicom"  # named DICOM but is not one: the reader says so
    if suffix in formats.NIFTI_SUFFIXES:
        return "nifti"
    return None


def looks_medical(data: bytes, name: str = "") -> bool:
    """True for DICOM (with or without the preamble) or NIfTI (.nii, .nii.gz) bytes, and for a file
    named like one that is not an ordinary image (so that the error names what it should be)."""
    return kind(data, name) is not None
