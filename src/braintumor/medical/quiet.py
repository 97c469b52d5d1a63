"""Keeping header values out of warnings, logs and error messages while pydicom and nibabel read."""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator

from ..errors import ImageError

_quiet_lock = threading.RLock()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Read with pydicom and nibabel without letting their warnings or log records out: some quote
    header values (an invalid UID, a patient name in a bad character set, every element read when
    pydicom's debug log is on). Header values are not validated while reading either.

    ``catch_warnings`` changes process-wide state, hence the lock around every read."""
    from pydicom.config import disable_value_validation

    loggers = [logging.getLogger(n) for n in ("pydicom", "nibabel", "nibabel.global")]
    with _quiet_lock, warnings.catch_warnings(), disable_value_validation():
        warnings.simplefilter("ignore")
        disabled = [lg.disabled for lg in loggers]
        for lg in loggers:
            lg.disabled = True
        try:
            yield
        finally:
            for lg, d in zip(loggers, disabled):
                lg.disabled = d


@contextlib.contextmanager
def guard(name: str) -> Iterator[None]:
    """Whatever goes wrong inside pydicom or nibabel becomes an ImageError naming only the file:
    their own messages may quote header values, so they are never passed on."""
    try:
        yield
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{name}: the image is too large to read in memory") from None
    except Exception:
        raise ImageError(f"{name}: the file is damaged, or not a DICOM or NIfTI file that can be read"
                         ) from None
