"""The error types every layer raises, in one module that imports nothing of the package, so
that any module can raise them without importing the command line or the image reader.

- :class:`UsageError`: bad arguments or unusable input on the command line (one line on stderr,
  exit status 2).
- :class:`ImageError` (HTTP 400) and :class:`UnsupportedImageError` (HTTP 415): an input that
  cannot be used as an image; their messages are meant for a person.
"""

from __future__ import annotations

MAX_PIXELS = 50_000_000  # larger images are refused (ImageError) as possible decompression bombs


class UsageError(Exception):
    """Bad arguments or unusable input: one line on stderr, exit code 2."""


class ImageError(ValueError):
    """An input that cannot be used as an image; the message is meant for a person."""

    status = 400  # HTTP status for the web API


class UnsupportedImageError(ImageError):
    """A readable file of a kind this tool does not take (animated, multi-page, unknown format)."""

    status = 415
