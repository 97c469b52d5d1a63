"""The errors of reading and answering a study. Each is a :class:`braintumor.errors.ToolError`: one
line for a person, exit status 2 on the command line, a 4xx in the web API."""

from __future__ import annotations

from ..errors import ImageError, ToolError


class StudyError(ImageError):
    """A study that cannot be answered: no image in it, a series that cannot be read (400)."""

    status = 400


class StudyTooLarge(StudyError):
    """A study over one of the limits of :mod:`braintumor.studies.limits`: files, bytes, slices or
    decoded pixels (413)."""

    status = 413


class ArchiveError(StudyError):
    """A .zip that is refused unread: damaged, encrypted, nested archives, names outside the
    archive (400)."""


class PacsError(ToolError):
    """A DICOMweb server that cannot be reached or refuses a request; the message names the step
    (search, retrieve, store) and the HTTP status, never a header value."""


__all__ = ["StudyError", "StudyTooLarge", "ArchiveError", "PacsError"]
