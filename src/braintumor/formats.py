"""Which files this tool takes: the accepted file names, and the first bytes that say what a file
is when its name says nothing.

One list for every place that decides: the training folders (:mod:`braintumor.data.folders`), the audit,
``braintumor predict`` walking a folder, the web form's suffix and the page's ``accept`` attribute,
and the DICOM/NIfTI reader's recognition (:mod:`braintumor.medical.detect`).

* A *slice file* is what a training folder holds: a 2-D image or a DICOM file, by its name.
* A *scan file* is anything the tool reads: a slice file, a NIfTI volume, or a file with no
  extension (or a numeric one, as DICOM files named by their UID are) whose content is DICOM (with
  or without the 128-byte preamble), NIfTI (plain or gzipped) or an image of an accepted kind.

Pictures are decoded only when their first bytes are one of :data:`PICTURE_FORMATS` (PNG, JPEG,
BMP, TIFF, and WebP, which is decoded by content though no name is accepted for it), and then
only by that format's decoder (:func:`picture_format`): Pillow reads two dozen other formats,
some slowly and one (EPS, through Ghostscript) by running an interpreter on the bytes, so nothing
else ever reaches it. Only the standard library is imported here, so that the command line's
``--help`` stays fast.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Union

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom", ".dic")
NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
SLICE_SUFFIXES: tuple[str, ...] = IMAGE_SUFFIXES + DICOM_SUFFIXES
SCAN_SUFFIXES: tuple[str, ...] = SLICE_SUFFIXES + NIFTI_SUFFIXES

# Media types offered beside the suffixes in the page's file picker (some systems filter by type).
MEDIA_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/bmp", "image/tiff", "application/dicom")

# First bytes of the accepted image kinds: JPEG, PNG, BMP, TIFF (little- and big-endian).
IMAGE_MAGIC: tuple[bytes, ...] = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"II*\x00", b"MM\x00*")
# The picture formats that are decoded (Pillow's names), each known by its first bytes; WebP is
# decoded by content although its name is not accepted. Nothing else reaches a decoder.
PICTURE_FORMATS: dict[str, tuple[bytes, ...]] = {
    "JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",), "BMP": (b"BM",),
    "TIFF": (b"II*\x00", b"MM\x00*"), "WEBP": (),  # RIFF....WEBP, see picture_format
}
# What Pillow may be asked to open anywhere in the tool (``Image.open(..., formats=DECODED)``):
# never all of its formats, some of which run external programs (EPS: Ghostscript).
DECODED: tuple[str, ...] = tuple(PICTURE_FORMATS)
# Formats that are recognised only to say what they are when refused (never decoded).
REFUSED_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"%!PS", "a PostScript document"), (b"\xc5\xd0\xd3\xc6", "a PostScript document"),
    (b"%PDF", "a PDF document"), (b"SIMPLE  =", "a FITS file"), (b"GIF8", "a GIF picture"),
    (b"\x00\x00\x01\x00", "an icon"), (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 picture"),
    (b"\xffO\xffQ", "a JPEG 2000 picture"), (b"qoif", "a QOI picture"), (b"DDS ", "a DDS texture"),
    (b"PK\x03\x04", "a zip archive"), (b"{", "a JSON or text file"), (b"<", "an HTML, XML or SVG file"),
)
# A progressive JPEG is decoded once per scan: more scans than this are refused before decoding
# (encoders write about 10; a hostile file can hold thousands, each costing a full pass).
MAX_JPEG_SCANS = 64
# Items a picture lists that Pillow reads one by one in Python before its pixels: JPEG marker
# segments before the first scan, PNG chunks, the strips or tiles of a TIFF page. Encoders write
# tens (a 16 MB PNG in 8 KB IDAT chunks: about 2,000); a hostile file lists millions, each
# costing time and a Python object before the image's size is even checked.
MAX_JPEG_SEGMENTS = 1024
MAX_PNG_CHUNKS = 16_384


GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 4096  # how much of a file the content check reads

PathLike = Union[str, os.PathLike]


# ------------------------------------------------------------------------------------------ names


def _basename(name: str | os.PathLike) -> str:
    return Path(str(name)).name.lower()


def suffix_of(name: str | os.PathLike) -> str:
    """The longest accepted suffix ``name`` ends with, lower-case (``"a.NII.GZ"`` -> ``".nii.gz"``),
    or ``""`` when it ends with none."""
    base = _basename(name)
    return max((s for s in SCAN_SUFFIXES if base.endswith(s)), key=len, default="")


def has_no_extension(name: str | os.PathLike) -> bool:
    """No extension, or a numeric one as in UID-named files (``1.3.12.2.1107.5.2.30``): names that
    say nothing about the content."""
    suffix = Path(_basename(name)).suffix
    return suffix == "" or suffix[1:].isdigit()


def is_hidden(name: str | os.PathLike) -> bool:
    return _basename(name).startswith(".")


# ---------------------------------------------------------------------------------------- content


def dicom_preamble(head: bytes) -> bool:
    """A DICOM file: 128 bytes of preamble, then ``DICM``."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def raw_dicom(head: bytes) -> bool:
    """A DICOM data set without the 128-byte preamble: starts with a group 0002 or 0008 element."""
    if len(head) < 12 or head[0:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    vr = head[4:6]
    if vr.isalpha() and vr.isupper():  # explicit VR
        return True
    length = int.from_bytes(head[4:8], "little")  # implicit VR: a plausible value length
    return length < min(len(head), 1 << 16)


def nifti_magic(head: bytes) -> bool:
    """A NIfTI-1 (single file ``n+1`` or header of a pair ``ni1``) or NIfTI-2 header."""
    return head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] == b"n+2\x00"


def gunzip_head(data: bytes, n: int = 600) -> bytes:
    """The first ``n`` decompressed bytes of a gzip stream (fewer when it is shorter), or ``b""``
    when the stream is damaged; never more is inflated."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:65536], n)
    except zlib.error:
        return b""


def gzipped_nifti(head: bytes) -> bool:
    return head[:2] == GZIP_MAGIC and nifti_magic(gunzip_head(head))


def picture_format(head: bytes) -> str | None:
    """The decodable picture format the first bytes announce (a key of :data:`PICTURE_FORMATS`),
    or None: the only format the decoder is then allowed to try."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((f for f, magics in PICTURE_FORMATS.items() if magics and head.startswith(magics)), None)


def refused_format(head: bytes) -> str | None:
    """What a refused file is, in words, where its first bytes say ("a PostScript document")."""
    return next((what for magic, what in REFUSED_FORMATS if head.startswith(magic)), None)


def jpeg_scans(data: bytes) -> int:
    """How many scans (start-of-scan markers) a JPEG's bytes hold: a linear count that never
    decodes. Entropy-coded data escapes every 0xFF byte, so the pair FF DA appears only as the
    marker (or inside an embedded thumbnail, which makes this an upper bound)."""
    return data.count(b"\xff\xda")


def jpeg_segments(data: bytes, limit: int = MAX_JPEG_SEGMENTS) -> int:
    """How many marker segments (and fill bytes) come before a JPEG's first scan, counted up to
    ``limit + 1``: a walk from length to length that never reads more than ``limit`` headers."""
    pos, n = 2, 0
    while pos + 4 <= len(data) and n <= limit and data[pos] == 0xFF:
        marker = data[pos + 1]
        n += 1
        if marker == 0xDA:  # start of scan: the decoder's C code reads the rest
            break
        if marker == 0xFF:  # a fill byte
            pos += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return n


def png_chunks(data: bytes, limit: int = MAX_PNG_CHUNKS) -> int:
    """How many chunks a PNG holds, counted up to ``limit + 1`` (Pillow reads each in Python)."""
    pos, n = 8, 0
    while pos + 8 <= len(data) and n <= limit:
        n += 1
        if data[pos + 4:pos + 8] == b"IEND":
            break
        pos += 12 + int.from_bytes(data[pos:pos + 4], "big")
    return n


def tiff_first_page(data: bytes) -> tuple[int, int, bool]:
    """Of a TIFF's first page: the strips or tiles it lists, how many its size implies, and
    whether another page follows (read from the one directory, never walking the others)."""
    order = "<" if data[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, ifd)
        tags: dict[int, tuple[int, int]] = {}
        for k in range(count):
            tag, kind, n, value = struct.unpack_from(order + "HHII", data, ifd + 2 + 12 * k)
            if kind == 3 and n == 1:  # a SHORT sits in the first two bytes of the value field
                (value,) = struct.unpack_from(order + "H", data, ifd + 2 + 12 * k + 8)
            tags[tag] = (n, value)
        (following,) = struct.unpack_from(order + "I", data, ifd + 2 + 12 * count)
    except struct.error:
        return 0, 0, False  # a damaged file: its decoder says so
    value = lambda tag, default: tags[tag][1] if tag in tags else default  # noqa: E731
    width, height = max(1, value(256, 1)), max(1, value(257, 1))
    planes = value(277, 1) if value(284, 1) == 2 else 1
    if 324 in tags:  # tiles
        tw, th = max(1, value(322, width)), max(1, value(323, height))
        listed, implied = tags[324][0], -(-width // tw) * -(-height // th) * planes
    else:
        rows = max(1, min(value(278, height), height))
        listed, implied = tags.get(273, (0, 0))[0], -(-height // rows) * planes
    return listed, implied, following != 0



def content_kind(head: bytes) -> str | None:
    """``"dicom"``, ``"nifti"`` or ``"image"`` (an accepted image kind) from a file's first bytes,
    else None."""
    if dicom_preamble(head) or raw_dicom(head):
        return "dicom"
    if nifti_magic(head) or gzipped_nifti(head):
        return "nifti"
    if head.startswith(IMAGE_MAGIC):
        return "image"
    return None


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(HEAD_BYTES)


# ------------------------------------------------------------------------------------- predicates


def is_slice_file(path: PathLike) -> bool:
    """A 2-D slice as training folders hold them: a regular, not hidden file named as an image
    (JPEG, PNG, BMP, TIFF) or DICOM file."""
    p = Path(path)
    return not is_hidden(p) and suffix_of(p) in SLICE_SUFFIXES and p.is_file()


def is_scan_file(path: PathLike) -> bool:
    """Any file this tool reads, found in a folder: a regular, not hidden file with an accepted
    suffix (images, DICOM, NIfTI), or one with no or a numeric extension whose first bytes are
    DICOM, NIfTI or an accepted image. A file without extension that cannot be opened counts, so
    that reading it reports why."""
    p = Path(path)
    if is_hidden(p) or not p.is_file():
        return False
    if suffix_of(p):
        return True
    if not has_no_extension(p):
        return False  # notes.txt, labels.csv: not scans
    try:
        head = _head(p)
    except OSError:
        return True
    return content_kind(head) is not None


def accept_attribute() -> str:
    """The value of the web page's ``<input type="file" accept="...">``: the media types, then
    every accepted suffix."""
    return ",".join(MEDIA_TYPES + SCAN_SUFFIXES)


__all__ = ["IMAGE_SUFFIXES", "DICOM_SUFFIXES", "NIFTI_SUFFIXES", "SLICE_SUFFIXES", "SCAN_SUFFIXES",
           "DECODED", "suffix_of", "has_no_extension", "content_kind", "picture_format", "refused_format", "jpeg_scans",
           "is_slice_file", "is_scan_file",
           "accept_attribute"]
