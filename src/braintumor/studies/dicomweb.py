"""A study read from a DICOMweb server and its reports stored back, with dicomweb-client.

QIDO-RS finds the study's series (those of image modalities: reports, presentation states, key
objects and segmentations are left out) and each series' instances; WADO-RS fetches the instances;
STOW-RS stores the structured reports into the same study. The number of instances is checked
against the study's limits before any is fetched. Messages name the step and the HTTP status, never
a UID or a header value.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from .errors import PacsError, StudyError
from .limits import LIBRARY, StudyLimits

NOT_IMAGES = {"SR", "KO", "PR", "SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "DOC", "REG", "FID",
              "PLAN", "AU", "ECG", "HD"}
SERIES_UID, SOP_UID, MODALITY = "0020000E", "00080018", "00080060"
DEFAULT_TIMEOUT_S = 60.0
RETRIES, RETRY_WAIT_MS = 3, 500


def _value(item: dict, tag: str) -> str | None:
    values = (item.get(tag) or {}).get("Value") or []
    return str(values[0]) if values else None


def client(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """A DICOMweb client of the server at ``url`` (its QIDO, WADO and STOW root)."""
    from dicomweb_client.api import DICOMwebClient

    if not url.startswith(("http://", "https://")):
        raise PacsError("the DICOMweb URL must start with http:// or https://")
    logging.getLogger("dicomweb_client").setLevel(logging.WARNING)  # its info records name UIDs
    web = DICOMwebClient(url=url.rstrip("/"), timeout=timeout_s)
    # a busy server (429, 503, 504) and a refused connection are tried again, 3 times in all, after
    # 1 and 2 s: an unreachable server is said so in seconds, not the half minute of the defaults
    web.set_http_retry_params(max_attempts=RETRIES, wait_exponential_multiplier=RETRY_WAIT_MS)
    return web


def _call(step: str, fn, *args, **kwargs):
    """``fn(...)``, its failures as a PacsError naming ``step``."""
    import requests

    try:
        return fn(*args, **kwargs)
    except requests.exceptions.HTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        raise PacsError(f"the DICOMweb server refused to {step} (HTTP {status})") from None
    except requests.exceptions.RequestException:
        raise PacsError(f"could not reach the DICOMweb server to {step}") from None
    except (ValueError, KeyError, TypeError):
        raise PacsError(f"the DICOMweb server's answer to {step} cannot be read") from None


def fetch_study(web: Any, study_uid: str, limits: StudyLimits = LIBRARY) -> list[tuple[bytes, str]]:
    """(bytes, label) of every instance of the study's image series, as DICOM files."""
    series = _call("search the study's series", web.search_for_series, study_instance_uid=study_uid) or []
    images = [s for s in series if (_value(s, MODALITY) or "").upper() not in NOT_IMAGES and _value(s, SERIES_UID)]
    if not series:
        raise StudyError("the DICOMweb server has no series in this study (is the study UID right?)")
    if not images:
        raise StudyError("the study holds no image series (only reports or other non-image objects)")
    found: list[tuple[str, str, str]] = []
    for n, s in enumerate(images, 1):
        series_uid = _value(s, SERIES_UID)
        instances = _call("search a series' instances", web.search_for_instances,
                          study_instance_uid=study_uid, series_instance_uid=series_uid) or []
        found.extend((series_uid, _value(i, SOP_UID), f"series {n} instance {m}")
                     for m, i in enumerate(instances, 1) if _value(i, SOP_UID))
        limits.check_files(len(found))
    out, total = [], 0
    for series_uid, sop_uid, label in found:
        ds = _call("retrieve an instance", web.retrieve_instance, study_instance_uid=study_uid,
                   series_instance_uid=series_uid, sop_instance_uid=sop_uid)
        data = _file_bytes(ds)
        total += len(data)
        limits.check_bytes(total)
        out.append((data, label))
    return out


def _file_bytes(ds: Any) -> bytes:
    from ..medical.quiet import quiet

    buf = io.BytesIO()
    with quiet():
        ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def store(web: Any, study_uid: str, reports: list) -> None:
    """Store the reports (pydicom data sets) into the study with STOW-RS."""
    _call("store the reports", web.store_instances, datasets=reports, study_instance_uid=study_uid)


__all__ = ["client", "fetch_study", "store", "NOT_IMAGES"]
