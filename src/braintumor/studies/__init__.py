"""Studies: DICOM series and NIfTI volumes answered slice by slice, summarised per series, and
written back as DICOM Structured Reports.

* :mod:`.series`: files (or .zip archives of them) grouped into series by SeriesInstanceUID and
  put in anatomical order, every slice decoded by :mod:`braintumor.medical`;
* :mod:`.answer`: every slice answered in batches, the slices that show each class, the most
  suspicious slices first, one answer per series and one for the study;
* :mod:`.sr`: one Comprehensive 3D SR (TID 1500) per series, and reading one back;
* :mod:`.dicomweb`: a study read from a DICOMweb server (QIDO-RS, WADO-RS) and its reports stored
  back into it (STOW-RS);
* :mod:`.archive`, :mod:`.inputs`, :mod:`.limits`, :mod:`.errors`: .zip archives read safely,
  files and folders, the limits of one study, its errors.

Nothing is imported until used: pydicom, highdicom and dicomweb-client load inside the functions.
"""

from __future__ import annotations

_EXPORTS = {
    "read_study": "series", "Study": "series", "Series": "series", "order_slices": "series",
    "answer_study": "answer", "build_sr": "sr", "sr_bytes": "sr", "read_sr": "sr",
    "read_paths": "inputs", "StudyLimits": "limits", "LIBRARY": "limits", "SERVICE": "limits",
    "StudyError": "errors", "StudyTooLarge": "errors", "ArchiveError": "errors", "PacsError": "errors",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'braintumor.studies' has no attribute {name!r}")


def study_reports(study, answer: dict) -> list[tuple[int, object]]:
    """(series number, SR data set) for every DICOM series of an answered study."""
    from .sr import build_sr

    return [(a["series"], build_sr(s, a, answer["model"])) for s, a in zip(study.series, answer["series"])
            if s.kind == "dicom"]


__all__ = sorted(_EXPORTS) + ["study_reports"]
