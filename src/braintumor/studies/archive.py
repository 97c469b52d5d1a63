"""A study sent as one .zip: its entries read safely, or the archive refused unread.

Before anything is inflated the archive's directory is checked: the number of entries, the sum of
their declared sizes (against :class:`~braintumor.studies.limits.StudyLimits`), names that would
point outside the archive (absolute, ``..``, a drive letter), encrypted entries, compression other
than stored or deflated, and archives inside the archive. While inflating, the bytes actually
produced are counted again, so a directory that lies about sizes gains nothing. Entries are named
in messages by their position only: names in PACS exports often hold a patient's name.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import PurePosixPath

from .errors import ArchiveError
from .limits import StudyLimits

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
# other archives inside the archive: refused, never opened
NESTED_SUFFIXES = (".zip", ".jar", ".7z", ".rar", ".tar", ".tgz", ".tar.gz", ".bz2", ".xz", ".zst")
NESTED_MAGIC = ZIP_MAGIC + (b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
CHUNK = 1 << 20
SKIPPED_DIRS = {"__MACOSX"}


def is_zip(data: bytes) -> bool:
    return data[:4] in ZIP_MAGIC


def _outside(name: str) -> bool:
    """Whether an entry's name points outside the folder it would be unpacked into."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified) or "\0" in unified:
        return True
    return ".." in PurePosixPath(unified).parts


def _nested(name: str, head: bytes) -> bool:
    lower = name.lower()
    return lower.endswith(NESTED_SUFFIXES) or head.startswith(NESTED_MAGIC)


def _skipped(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return any(p in SKIPPED_DIRS for p in parts) or (bool(parts) and parts[-1].startswith("."))


def read_zip(data: bytes, label: str, limits: StudyLimits) -> list[tuple[bytes, str]]:
    """(bytes, label) of every file in a .zip, in the archive's order; ``label`` is
    ``"<label> entry N"``. ArchiveError or StudyTooLarge, before any entry is inflated, for an
    archive that is refused."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise ArchiveError(f"{label}: the .zip is damaged and cannot be read") from None
    limits.check_files(len(infos))
    files = [(n, i) for n, i in enumerate(infos, 1) if not i.is_dir() and not _skipped(i.filename)]
    limits.check_bytes(sum(i.file_size for _, i in files))
    for n, info in files:
        if _outside(info.filename):
            raise ArchiveError(f"{label}: entry {n} is named outside the archive (an absolute path or '..'); "
                               "the archive is refused")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{label}: entry {n} is encrypted; send the archive without a password")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(f"{label}: entry {n} is compressed in a way this service does not read; "
                               "use ordinary (deflate) compression")
        if _nested(info.filename, b""):
            raise ArchiveError(f"{label}: entry {n} is an archive inside the archive; send one .zip of "
                               "DICOM or NIfTI files")
    out: list[tuple[bytes, str]] = []
    total = 0
    try:
        for n, info in files:
            parts = []
            with zf.open(info) as f:
                while chunk := f.read(CHUNK):
                    total += len(chunk)
                    limits.check_bytes(total)
                    parts.append(chunk)
            body = b"".join(parts)
            if _nested(info.filename, body[:8]):
                raise ArchiveError(f"{label}: entry {n} is an archive inside the archive; send one .zip "
                                   "of DICOM or NIfTI files")
            out.append((body, f"{label} entry {n}"))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError):
        raise ArchiveError(f"{label}: the .zip is damaged (an entry cannot be inflated)") from None
    return out


__all__ = ["is_zip", "read_zip"]
