"""Hostile requests against a running service: time and memory each one costs, and health under load.

Starts ``braintumor serve --feedback DB`` on a free 127.0.0.1 port (or targets ``--url`` with
``--pid``), builds hostile files here and sends each alone, then hostile connections. Every probe
prints its status, the seconds until the answer, how far the server's resident memory rose above
where it stood before (its peak, from /proc/PID/status VmHWM, reset before each probe) and whether
the server started a child process meanwhile (polled from /proc/PID/task/*/children), and the
table at the end repeats them. The probes come in groups:

  uploads         thin images, deflated DICOM bombs, a huge DICOM frame header, NIfTI headers at
                  the voxel limit, large valid images at and past the pixel limit
  refused         formats never decoded: EPS with a PostScript infinite loop (named .png and
                  .eps), FITS (plain and gzipped), QOI, DDS, GIF, PDF, ICO, JPEG 2000, PSD, SVG
  scans           progressive JPEGs of 4000 x 4000 with 10,000 scans and at the scan limit
  worst           the costliest file of each decoded format at the pixel limit (PNG, JPEG baseline
                  and progressive, BMP, TIFF in four compressions and three sample types, WebP)
  parsers         headers that make a decoder loop before a pixel is read (TIFF strips and pages,
                  JPEG segments, PNG chunks)
  feedback        a 65 KB JSON body of escaped quotes, a lone surrogate in a comment
  dicom           a DICOM marked BurnedInAnnotation YES: answered with a privacy notice
  echo            errors must not repeat what the client sent nor name library internals
  origin          a cross-site post, a post for a foreign Host
  together        8 large uploads at once
  health          health checks while heavy requests fill the queue and 110 idle connections wait
  slow-headers    300 connections sending their headers one byte every 3 s, health polled
  stalled-bodies  24 connections sending 30 MB of a 31 MB body, then nothing

    python benchmarks/hostile.py                     # every group, shipped model (a few minutes)
    python benchmarks/hostile.py --quick             # the quick groups only (no connection floods)
    python benchmarks/hostile.py --only refused,scans,feedback
    python benchmarks/hostile.py --url http://127.0.0.1:5000/ --pid 12345   # started with --feedback DB

Exit status 0 when every probe got the status it should within its time (--max-s seconds unless a
probe says less), the memory rose at most --max-mb MB, no child process appeared and every health
check took under a second; 1 otherwise.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from PIL import Image, features

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from load import SAMPLE, Client, free_port  # noqa: E402

MIB = 1 << 20
UPLOAD_ROOM = 16 * MIB - 64 * 1024  # the largest file that fits the 16 MB upload with its form around it
SIDE = 4000  # 4000 x 4000: the service's 16-megapixel limit
SCRIPT = "<script>alert(1)</script>"


# ------------------------------------------------------------------------------ hostile files


def png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **({"optimize": True} if not kw else kw))
    return buf.getvalue()


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` grey pixels, with a little pixel data."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(bytes(64)))
            + png_chunk(b"IEND", b""))


def png_adam7(width: int, height: int) -> bytes:
    """An interlaced (Adam7) PNG of 16-bit RGBA zeros: the costliest pixel layout PNG has (seven
    passes to merge, 8 bytes a pixel inflated), in a small file."""
    c = zlib.compressobj(6)
    parts = []
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)):
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            parts.append(c.compress(bytes(1 + 8 * w) * h))  # filter byte + 8 bytes a pixel, each row
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts) + c.flush())
            + png_chunk(b"IEND", b""))


def png_chunks(count: int) -> bytes:
    """A small PNG with ``count`` empty private chunks before its pixels."""
    data = png(Image.new("L", (64, 64)))
    at = data.index(b"IDAT") - 4
    return data[:at] + png_chunk(b"abCd", b"") * count + data[at:]


def jpeg_segments(count: int) -> bytes:
    """A small JPEG with ``count`` empty APP1 segments after its start."""
    data = encoded(Image.new("L", (64, 64)), "JPEG")
    return data[:2] + b"\xff\xe1\x00\x02" * count + data[2:]


def with_scans(progressive: bytes, scans: int) -> bytes:
    """A progressive JPEG with its last scan repeated until it holds ``scans`` scans: still a JPEG
    its decoder reads, and every scan is one more pass over all the image's blocks."""
    have = progressive.count(b"\xff\xda")
    last = progressive.rindex(b"\xff\xda")
    return progressive[:-2] + progressive[last:-2] * max(0, scans - have) + progressive[-2:]


def bmp_rle8(width: int, height: int) -> bytes:
    """An 8-bit run-length-encoded BMP of zeros: 34 bytes a row for 4000 pixels."""
    row = b"\xff\x00" * (width // 255) + (bytes([width % 255, 0]) if width % 255 else b"") + b"\x00\x00"
    pixels = row * height + b"\x00\x01"
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    offset = 14 + 40 + len(palette)
    return (b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
            + palette + pixels)


def _tiff_entry(tag: int, kind: int, count: int, value: int) -> bytes:
    return struct.pack("<HHII", tag, kind, count, value)  # kind 3: SHORT, 4: LONG


def tiff_strips(count: int, side: int = 16) -> bytes:
    """A small uncompressed grey TIFF whose first page lists ``count`` strips, all the same bytes."""
    pixels = bytes(side)
    offsets_at = 8 + len(pixels)
    counts_at = offsets_at + 2 * count
    ifd_at = counts_at + 2 * count
    entries = [_tiff_entry(256, 4, 1, side), _tiff_entry(257, 4, 1, side), _tiff_entry(258, 3, 1, 8),
               _tiff_entry(259, 3, 1, 1), _tiff_entry(262, 3, 1, 1), _tiff_entry(273, 3, count, offsets_at),
               _tiff_entry(277, 3, 1, 1), _tiff_entry(278, 4, 1, 1), _tiff_entry(279, 3, count, counts_at)]
    return (b"II*\x00" + struct.pack("<I", ifd_at) + pixels + struct.pack("<H", 8) * count
            + struct.pack("<H", side) * count + struct.pack("<H", len(entries)) + b"".join(entries) + bytes(4))


def tiff_pages(count: int, side: int = 16) -> bytes:
    """A TIFF of ``count`` pages of ``side`` x ``side`` grey pixels, all the same bytes, each page's
    directory pointing to the next."""
    pixels_at = 8
    out = bytearray(b"II*\x00" + struct.pack("<I", 8 + side * side) + bytes(side * side))
    for k in range(count):
        entries = [_tiff_entry(256, 4, 1, side), _tiff_entry(257, 4, 1, side), _tiff_entry(258, 3, 1, 8),
                   _tiff_entry(259, 3, 1, 1), _tiff_entry(262, 3, 1, 1), _tiff_entry(273, 4, 1, pixels_at),
                   _tiff_entry(278, 4, 1, side), _tiff_entry(279, 4, 1, side * side)]
        following = len(out) + 2 + 12 * len(entries) + 4 if k < count - 1 else 0
        out += struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", following)
    return bytes(out)


def eps() -> bytes:
    """An encapsulated PostScript file whose program never ends (Ghostscript would spin on it)."""
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n%%EndComments\n"
            b"{ } loop\nshowpage\n%%EOF\n")


def dos_eps(ps: bytes) -> bytes:
    """The same PostScript behind the binary EPS header (magic, offset and length, no preview)."""
    return b"\xc5\xd0\xd3\xc6" + struct.pack("<IIIIIIH", 30, len(ps), 0, 0, 0, 0, 0xFFFF) + ps


def fits(side: int) -> bytes:
    """A FITS image of ``side`` x ``side`` bytes (header cards of 80 characters, 2880-byte blocks)."""
    cards = ("SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    2",
             f"NAXIS1  = {side:>20}", f"NAXIS2  = {side:>20}", "END")
    head = "".join(c.ljust(80) for c in cards).ljust(2880).encode("ascii")
    return head + bytes(side * side + (-side * side) % 2880)


def qoi(side: int) -> bytes:
    """A QOI picture of ``side`` x ``side`` RGBA pixels, all one run-length code after another."""
    n = side * side
    runs = b"\xfd" * (n // 62) + (bytes([0xC0 + n % 62 - 1]) if n % 62 else b"")
    return b"qoif" + struct.pack(">IIBB", side, side, 4, 0) + runs + bytes(7) + b"\x01"


def dds(side: int) -> bytes:
    """A DXT1 DDS texture of ``side`` x ``side`` pixels (half a byte a pixel)."""
    pixel_format = struct.pack("<II4s5I", 32, 0x4, b"DXT1", 0, 0, 0, 0, 0)
    head = (struct.pack("<7I", 124, 0x81007, side, side, side * side // 2, 0, 0) + bytes(44) + pixel_format
            + struct.pack("<5I", 0x1000, 0, 0, 0, 0))
    return b"DDS " + head + bytes(side * side // 2)


def psd(side: int) -> bytes:
    return b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, side, side, 8, 3) + bytes(64)


def jpeg2000() -> bytes:
    if features.check("jpg_2000"):
        return encoded(Image.new("L", (256, 256)), "JPEG2000")
    return b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(64)


def deflate_bomb(head: bytes, mib: int) -> bytes:
    """``head`` then ``mib`` MiB of zeros as one raw deflate stream (a full-flushed deflated MiB of
    zeros is the same bytes every time, so it is built in milliseconds)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(MIB)) + c.flush(zlib.Z_FULL_FLUSH)
    return first + block * mib + c.flush()


def dicom(rows: int, cols: int, transfer_syntax: str, pixel_data: bytes | None, encapsulated: bool = False,
          bits: int = 8, fields: dict | None = None) -> bytes:
    """A DICOM MR image; ``fields`` are further attributes (``BurnedInAnnotation="YES"``)."""
    import pydicom
    from pydicom import uid
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate

    meta = FileMetaDataset()
    instance = uid.generate_uid()
    for key, value in dict(MediaStorageSOPClassUID=uid.MRImageStorage, MediaStorageSOPInstanceUID=instance,
                           TransferSyntaxUID=transfer_syntax).items():
        setattr(meta, key, value)
    ds = Dataset()
    ds.file_meta = meta
    for key, value in dict(SOPClassUID=uid.MRImageStorage, SOPInstanceUID=instance, Modality="MR", Rows=rows,
                           Columns=cols, SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2",
                           BitsAllocated=bits, BitsStored=bits, HighBit=bits - 1, PixelRepresentation=0,
                           **(fields or {})).items():
        setattr(ds, key, value)
    if pixel_data is not None:
        ds.PixelData = encapsulate([pixel_data]) if encapsulated else pixel_data
        if encapsulated:
            ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def deflated_dicom_bomb(gib: int) -> bytes:
    """A deflated DICOM whose data set inflates to ``gib`` GiB."""
    from pydicom import uid

    from braintumor.medical.dicom import file_meta

    legit = dicom(8, 8, uid.DeflatedExplicitVRLittleEndian, bytes(64))
    _, start = file_meta(legit, 132)
    return legit[:start] + deflate_bomb(b"", gib << 10)


def nifti_header(shape: tuple[int, ...], dtype) -> bytes:
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr["vox_offset"], hdr["magic"] = 352, b"n+1"
    return hdr.binaryblock + b"\0" * 4


def nifti_gz_bomb(shape: tuple[int, ...], dtype) -> bytes:
    """A .nii.gz whose header declares ``shape`` and whose stream holds that many zero bytes."""
    itemsize = np.dtype(dtype).itemsize
    mib = -(-int(np.prod(shape)) * itemsize // MIB)
    return b"\x1f\x8b\x08\x00\0\0\0\0\x02\xff" + deflate_bomb(nifti_header(shape, dtype), mib)


def valid_nifti(shape: tuple[int, int, int]) -> bytes:
    import nibabel as nib

    vol = np.zeros(shape, np.int16)
    c = [s // 2 for s in shape]
    vol[c[0] - 40:c[0] + 40, c[1] - 50:c[1] + 50, :] = 800
    return gzip.compress(nib.Nifti1Image(vol, np.eye(4)).to_bytes(), 6)


def scan(side: int, noise: int, seed: int = 0) -> Image.Image:
    """A grey ``side`` x ``side`` picture: a bright ellipse on black with uniform noise of
    +-``noise`` levels (noise is what makes compressed formats work hardest)."""
    y, x = np.ogrid[:side, :side]
    inside = ((x - side / 2) / (0.4 * side)) ** 2 + ((y - side / 2) / (0.45 * side)) ** 2 < 1
    img = np.where(inside, 120, 10).astype(np.int16)
    if noise:
        img += np.random.default_rng(seed).integers(-noise, noise + 1, (side, side), dtype=np.int16)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def largest_that_fits(encode, side: int = SIDE) -> bytes:
    """``encode`` of the noisiest :func:`scan` whose file fits the upload limit (and that the
    encoder manages: libwebp gives up on 16 megapixels of strong noise)."""
    for noise in (40, 12, 3, 0):
        try:
            data = encode(scan(side, noise))
        except (ValueError, OSError):
            continue
        if len(data) <= UPLOAD_ROOM:
            return data
    return data


# ------------------------------------------------------------------------------------- probes


@dataclass
class Upload:
    """One hostile file, sent alone to /api/predict."""

    what: str
    name: str
    data: bytes
    expect: tuple[int, ...] = ()  # statuses that pass; empty: 200 or any 4xx
    max_s: float | None = None  # seconds allowed (default: --max-s)


def uploads() -> list[Upload]:
    from pydicom import uid

    rgba = Image.new("RGBA", (7000, 7000))
    big = Image.new("L", (SIDE, SIDE))
    big.paste(255, (1000, 1000, 3000, 3000))
    rgba_ok = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 255))
    rgba_ok.paste((200, 200, 200, 255), (1000, 1000, 3000, 3000))
    rng = np.random.default_rng(0)
    return [
        Upload("thin PNG 1 x 80,000", "thin.png", png(Image.new("L", (1, 80_000)))),
        Upload("thin PNG 80,000 x 1", "wide.png", png(Image.new("L", (80_000, 1)))),
        Upload("thin PNG 2 x 2,000,000", "thin2.png", png(Image.new("L", (2, 2_000_000)))),
        Upload("RGBA PNG 7000 x 7000 (49 MP)", "rgba.png", png(rgba)),
        Upload("RGBA PNG 4000 x 4000 (16 MP)", "rgba16.png", png(rgba_ok)),
        Upload("grey PNG 4000 x 4000 (16 MP)", "grey16.png", png(big)),
        Upload("PNG header 60000 x 60000", "bomb.png", png_header(60000, 60000)),
        Upload("deflated DICOM, 1 GiB inflated", "bomb.dcm", deflated_dicom_bomb(1)),
        Upload("deflated DICOM, 8 GiB inflated", "bomb8.dcm", deflated_dicom_bomb(8)),
        Upload("DICOM RLE frame header 60000 x 60000", "rle.dcm",
               dicom(60000, 60000, uid.RLELossless, b"\0" * 64, encapsulated=True, bits=16)),
        Upload("DICOM 16-bit 2800 x 2800 native (valid)", "big.dcm",
               dicom(2800, 2800, uid.ExplicitVRLittleEndian, np.zeros((2800, 2800), np.uint16).tobytes(), bits=16)),
        Upload("NIfTI at the voxel limit (200 M voxels)", "limit.nii.gz", nifti_gz_bomb((1000, 1000, 200), np.uint8)),
        Upload("NIfTI 512 x 512 x 400 int16 (header)", "big.nii.gz",
               gzip.compress(nifti_header((512, 512, 400), np.int16) + b"\0" * 64)),
        Upload("NIfTI 256 x 256 x 160 int16 (valid)", "ok.nii.gz", valid_nifti((256, 256, 160))),
        Upload("16 MB of noise named .png", "noise.png", rng.integers(0, 256, UPLOAD_ROOM, np.uint8).tobytes()),
    ]


def refused() -> list[Upload]:
    """Formats that are never decoded, most of them named .png: the first bytes decide."""
    ps = eps()
    big_fits = fits(SIDE)
    quick = dict(expect=(415,), max_s=1.0)
    return [
        Upload("EPS, PostScript infinite loop, named .png", "scan.png", ps, **quick),
        Upload("EPS, PostScript infinite loop, named .eps", "scan.eps", ps, expect=(400, 415), max_s=1.0),
        Upload("binary (DOS) EPS, infinite loop, named .jpg", "scan.jpg", dos_eps(ps), **quick),
        Upload("FITS 4000 x 4000", "scan.png", big_fits, **quick),
        Upload("FITS 4000 x 4000 gzipped", "scan.fits.gz", gzip.compress(big_fits, 1), **quick),
        Upload("QOI 4000 x 4000", "scan.png", qoi(SIDE), **quick),
        Upload("DDS DXT1 4000 x 4000", "scan.png", dds(SIDE), **quick),
        Upload("GIF 4000 x 4000", "scan.png", encoded(Image.new("L", (SIDE, SIDE)), "GIF"), **quick),
        Upload("PDF", "scan.png", encoded(Image.new("L", (64, 64)), "PDF"), **quick),
        Upload("ICO 256 x 256", "scan.png", encoded(Image.new("RGBA", (256, 256)), "ICO"), **quick),
        Upload("JPEG 2000", "scan.png", jpeg2000(), **quick),
        Upload("PSD 4000 x 4000 (header)", "scan.png", psd(SIDE), **quick),
        Upload("SVG", "scan.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="4000" height="4000"/>', **quick),
    ]


def scans() -> list[Upload]:
    """Progressive JPEGs: 10,000 scans (each a full pass over 250,000 blocks), and at the limit."""
    from braintumor.formats import MAX_JPEG_SCANS

    flat = encoded(Image.new("L", (SIDE, SIDE), 60), "JPEG", progressive=True, quality=90)
    return [
        Upload("progressive JPEG 4000 x 4000, 10,000 scans", "scan.jpg", with_scans(flat, 10_000),
               expect=(415,), max_s=2.0),
        Upload(f"progressive JPEG 4000 x 4000, {MAX_JPEG_SCANS + 1} scans", "scan.jpg",
               with_scans(flat, MAX_JPEG_SCANS + 1), expect=(415,), max_s=2.0),
        Upload(f"progressive JPEG 4000 x 4000 flat, {MAX_JPEG_SCANS} scans", "scan.jpg",
               with_scans(flat, MAX_JPEG_SCANS), expect=(200,)),
    ]


def worst() -> list[Upload]:
    """The costliest file of each decoded format at 16 megapixels, within the 16 MB upload."""
    from braintumor.formats import MAX_JPEG_SCANS

    ok = dict(expect=(200,))
    progressive = largest_that_fits(lambda im: with_scans(encoded(im, "JPEG", progressive=True, quality=95),
                                                          MAX_JPEG_SCANS))
    rgb = Image.merge("RGB", [scan(SIDE, 40, seed) for seed in range(3)])
    files = [
        Upload("PNG grey 4000 x 4000, incompressible noise", "noise16.png",
               png(Image.fromarray(np.random.default_rng(1).integers(0, 256, (SIDE, SIDE), np.uint8)),
                   compress_level=1), **ok),
        Upload("PNG 16-bit RGBA Adam7-interlaced 4000 x 4000", "adam7.png", png_adam7(SIDE, SIDE), **ok),
        Upload("PNG grey 894 x 17,880 (aspect 20, 16 MP)", "tall.png", png(Image.new("L", (894, 17_880))), **ok),
        Upload("JPEG baseline grey 4000 x 4000, noise", "base.jpg",
               largest_that_fits(lambda im: encoded(im, "JPEG", quality=95)), **ok),
        Upload("JPEG baseline RGB 4:4:4 4000 x 4000, noise", "rgb.jpg",
               encoded(rgb, "JPEG", quality=75, subsampling=0), **ok),
        Upload("JPEG CMYK 4000 x 4000", "cmyk.jpg", encoded(scan(SIDE, 3).convert("CMYK"), "JPEG", quality=90), **ok),
        Upload(f"JPEG progressive 4000 x 4000, noise, {MAX_JPEG_SCANS} scans", "prog.jpg", progressive, **ok),
        Upload("BMP 8-bit 4000 x 4000", "scan.bmp", encoded(scan(SIDE, 40), "BMP"), **ok),
        Upload("BMP 8-bit RLE 4000 x 4000", "rle.bmp", bmp_rle8(SIDE, SIDE), **ok),
    ]
    for compression in ("tiff_deflate", "tiff_lzw", "packbits", "jpeg"):
        files.append(Upload(f"TIFF grey 4000 x 4000, {compression}", f"{compression}.tif",
                            largest_that_fits(lambda im: encoded(im, "TIFF", compression=compression)), **ok))
    files += [
        Upload("TIFF float32 4000 x 4000, deflate", "float.tif",
               encoded(Image.fromarray(np.asarray(scan(SIDE, 0), np.float32)), "TIFF", compression="tiff_deflate"),
               **ok),
        Upload("TIFF 16-bit grey 4000 x 4000, deflate", "i16.tif",
               encoded(Image.fromarray(np.asarray(scan(SIDE, 0), np.uint16) * 200), "TIFF",
                       compression="tiff_deflate"), **ok),
        Upload("WebP lossy 4000 x 4000, noise", "scan.webp",
               largest_that_fits(lambda im: encoded(im, "WEBP", quality=95, method=0)), **ok),
        Upload("WebP lossless 4000 x 4000", "lossless.webp",
               largest_that_fits(lambda im: encoded(im, "WEBP", lossless=True, quality=0, method=0)), **ok),
    ]
    return files


def parsers() -> list[Upload]:
    """Headers that Pillow reads item by item in Python before a pixel is decoded (and before the
    service sees the image's size): sized to show the cost without holding the server for minutes."""
    return [
        Upload("TIFF 16 x 16 listing 2,000,000 strips", "strips.tif", tiff_strips(2_000_000)),
        Upload("TIFF of 30,000 pages", "pages.tif", tiff_pages(30_000)),
        Upload("JPEG with 4,000,000 empty APP1 segments", "segments.jpg", jpeg_segments(4_000_000)),
        Upload("PNG with 1,390,000 empty chunks", "chunks.png", png_chunks(1_390_000)),
    ]


UPLOAD_GROUPS = {"uploads": uploads, "refused": refused, "scans": scans, "worst": worst, "parsers": parsers}


# --------------------------------------------------------------------- what the server costs


class Memory:
    """Resident memory of the server process, from /proc (Linux)."""

    def __init__(self, pid: int | None):
        self.pid = pid

    def _status(self, key: str) -> float:
        if self.pid is None:
            return float("nan")
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0  # kB -> MB
        return float("nan")

    def rss(self) -> float:
        return self._status("VmRSS")

    def reset_peak(self) -> bool:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to VmRSS
            return True
        except OSError:
            return False

    def peak(self) -> float:
        return self._status("VmHWM")


def children(pid: int | None) -> set[int]:
    """The server's child processes now (/proc/PID/task/*/children, Linux)."""
    kids: set[int] = set()
    if pid is not None:
        for f in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                kids.update(int(k) for k in f.read_text().split())
            except OSError:  # a thread that ended meanwhile
                pass
    return kids


class Watch:
    """The server over one probe: how far its memory peak rose and which child processes it started
    (polled every 20 ms, so that a decoder's short-lived interpreter is seen too)."""

    def __init__(self, mem: Memory):
        self.mem = mem
        self.rise = 0.0
        self.children: set[int] = set()

    def __enter__(self) -> "Watch":
        self.before = self.mem.rss()
        self.mem.reset_peak()
        self._known = children(self.mem.pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.children |= children(self.mem.pid) - self._known

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.children |= children(self.mem.pid) - self._known
        rise = self.mem.peak() - self.before  # NaN without a process id
        self.rise = max(0.0, rise) if rise == rise else rise  # the peak restarts at the RSS, never below


class Results:
    """Every probe's line as it runs, and the table of them all at the end."""

    def __init__(self):
        self.rows: list[tuple] = []
        self.ok = True

    def add(self, probe: str, status, seconds: float, watch: Watch | None, good: bool, note: str = "",
            size: int | None = None) -> None:
        self.ok &= good
        rise = watch.rise if watch is not None else float("nan")
        child = ("yes " + ",".join(map(str, sorted(watch.children)))) if watch and watch.children else "no"
        self.rows.append((probe, status, seconds, rise, child, good))
        shown = "" if size is None else f"{size:,}"
        print(f"{probe:<48} {shown:>11} {status!s:>6} {seconds:>6.2f} {rise:>7.0f} {child:>5}  "
              f"{'' if good else 'FAIL '}{note}", flush=True)

    def table(self) -> None:
        print("\n| probe | status | seconds | memory rise MB | child process |\n|---|---|---:|---:|---|")
        for probe, status, seconds, rise, child, good in self.rows:
            print(f"| {probe} | {status}{'' if good else ' (FAIL)'} | {seconds:.2f} | {rise:.0f} | {child} |")


# ------------------------------------------------------------------------------- the requests


def send(client: Client, name: str, data: bytes, headers: dict | None = None,
         fields: dict | None = None) -> tuple[int, dict, float]:
    return client.predict(name, data, {"explain": "true", **(fields or {})}, headers)


def timed(client: Client, method: str, path: str, body: bytes | None = None,
          headers: dict | None = None) -> tuple[int, bytes, float]:
    t0 = time.perf_counter()
    try:
        status, raw = client.request(method, path, body, headers)
    except OSError as exc:
        status, raw = 0, f"{type(exc).__name__}".encode()
    return status, raw, time.perf_counter() - t0


def error_of(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("error", ""))
    except (ValueError, AttributeError):
        return raw[:80].decode("latin-1")


def run_uploads(client: Client, mem: Memory, files: list[Upload], args, out: Results) -> None:
    for up in files:
        with Watch(mem) as w:
            try:
                status, answer, elapsed = send(client, up.name, up.data)
            except OSError as exc:
                status, answer, elapsed = 0, {"error": type(exc).__name__}, float("nan")
        shown = answer.get("error") or f"{answer.get('label')} ({answer.get('decision', 'classified')})"
        right = status in up.expect if up.expect else (status == 200 or 400 <= status < 500)
        good = (right and elapsed <= (up.max_s or args.max_s) and not w.rise > args.max_mb
                and not w.children)
        out.add(up.what, status, elapsed, w, good, shown, len(up.data))


def run_feedback(client: Client, mem: Memory, out: Results) -> None:
    """The body that once held a backtracking expression for 19 s, and a lone surrogate."""
    escaped = b'"' + b'\\"' * 32_700
    surrogate = b'{"id": "x", "label": "glioma", "comment": "\\ud800"}'
    for what, body in (("feedback: 65 KB JSON of escaped quotes", escaped),
                       ("feedback: lone surrogate in the comment", surrogate)):
        with Watch(mem) as w:
            status, raw, elapsed = timed(client, "POST", "/api/feedback", body, {"Content-Type": "application/json"})
        out.add(what, status, elapsed, w, status == 400 and elapsed < 1.0, error_of(raw), len(body))


def run_dicom(client: Client, mem: Memory, out: Results) -> None:
    from pydicom import uid

    pixels = np.asarray(scan(256, 8), np.uint8)
    data = dicom(256, 256, uid.ExplicitVRLittleEndian, pixels.tobytes(), fields={"BurnedInAnnotation": "YES"})
    with Watch(mem) as w:
        status, answer, elapsed = send(client, "scan.dcm", data)
    notice = answer.get("privacy_notice")
    out.add("DICOM with BurnedInAnnotation YES", status, elapsed, w, status == 200 and bool(notice),
            f"privacy_notice: {notice}" if notice else f"no privacy_notice: {answer.get('error', '')}", len(data))


def run_echo(client: Client, mem: Memory, out: Results) -> None:
    """Errors name what was wrong in the service's words: never the client's field values or path,
    never a library's internals, never a folder of the client's machine (an error may repeat the
    base name of the client's own file to that client, as JSON the page shows as text)."""
    internals = ("Traceback", "PIL", "Pillow", "site-packages", "zlib", "libjpeg", "Error:")
    damaged = png(Image.new("L", (64, 64)))[:-40] + bytes(20)
    probes = (
        ("error echo: <script> in cam_method", SCRIPT, lambda: send(client, "scan.png", damaged,
                                                                   fields={"cam_method": SCRIPT})),
        ("error echo: <script> in a 404 path", SCRIPT, lambda: timed(client, "GET", "/api/" + SCRIPT)),
        ("error echo: folder in the file name, damaged PNG", "patient",
         lambda: send(client, "/home/patient/scan.png", damaged)),
    )
    for what, sent, request in probes:
        with Watch(mem) as w:
            status, answer, elapsed = request()
        raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        text = raw.decode("utf-8", "replace")
        leaked = [word for word in (sent,) + internals if word in text]
        out.add(what, status, elapsed, w, 400 <= status < 500 and not leaked,
                f"leaks {leaked}: {error_of(raw)}" if leaked else error_of(raw))


def run_origin(client: Client, mem: Memory, sample: bytes, out: Results) -> None:
    for what, headers in (("cross-site post (Origin: https://evil.example)", {"Origin": "https://evil.example"}),
                          ("foreign Host (Host: evil.example)", {"Host": "evil.example",
                                                                 "Origin": "http://evil.example"})):
        with Watch(mem) as w:
            status, answer, elapsed = send(client, "scan.jpg", sample, headers)
        out.add(what, status, elapsed, w, status == 403, answer.get("error", ""))


def run_together(client: Client, mem: Memory, out: Results) -> None:
    rgba = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 255))
    rgba.paste((200, 200, 200, 255), (1000, 1000, 3000, 3000))
    for what, name, data in (("8 at once: RGBA PNG 4000 x 4000", "rgba16.png", png(rgba)),
                             ("8 at once: thin PNG 1 x 80,000", "thin.png", png(Image.new("L", (1, 80_000))))):
        with Watch(mem) as w, ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda _: send(client, name, data), range(8)))
        statuses = sorted({st for st, _, _ in got})
        worst = max(t for _, _, t in got)
        out.add(what, "/".join(map(str, statuses)), worst, w, all(st < 500 for st in statuses),
                f"slowest of 8 {worst:.2f} s")


def health_checks(url: str, seconds: float, every: float) -> list[tuple[int, float]]:
    """(status, seconds) of a health check every ``every`` seconds for ``seconds``."""
    client = Client(url, timeout=10)
    checks = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        status, _, elapsed = timed(client, "GET", "/api/health")
        checks.append((status, elapsed))
        time.sleep(max(0.0, every - elapsed))
    return checks


def add_health(out: Results, what: str, checks: list[tuple[int, float]], w: Watch, note: str) -> None:
    worst = max(t for _, t in checks)
    median = sorted(t for _, t in checks)[len(checks) // 2]
    statuses = sorted({s for s, _ in checks})
    out.add(what, "/".join(map(str, statuses)), worst, w, all(s == 200 and t < 1.0 for s, t in checks),
            f"{len(checks)} health checks, median {1000 * median:.0f} ms, worst {1000 * worst:.0f} ms; {note}")


def run_health(client: Client, mem: Memory, url: str, clients: int, idle: int, out: Results) -> None:
    """Health while ``clients`` heavy requests are sent over and over and ``idle`` connections are
    held open without a byte."""
    u = urlsplit(url)
    big = Image.new("L", (SIDE, SIDE))
    big.paste(255, (1000, 1000, 3000, 3000))
    heavy = png(big)
    stop = threading.Event()
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def hammer() -> None:
        while not stop.is_set():
            try:
                status, _, _ = send(client, "grey16.png", heavy)
            except OSError:
                status = 0
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    with Watch(mem) as w:
        sockets = [socket.create_connection((u.hostname, u.port), timeout=10) for _ in range(idle)]
        with ThreadPoolExecutor(clients) as pool:
            for _ in range(clients):
                pool.submit(hammer)
            time.sleep(3.0)  # let the queue fill
            checks = health_checks(url, 5.0, 0.5)
            stop.set()
        for s in sockets:
            s.close()
    add_health(out, f"health: {clients} heavy clients, {idle} idle conns", checks, w,
               "heavy: " + ", ".join(f"{n} x {s}" for s, n in sorted(statuses.items())))


def closed_by_peer(s: socket.socket) -> bool:
    """Whether the server closed this connection, or answered it (and closes it next)."""
    poll = select.poll()
    poll.register(s, select.POLLIN)
    return bool(poll.poll(0))  # readable (an answer, or the end), or hung up


def run_slow_headers(mem: Memory, url: str, conns: int, hold: float, every: float, out: Results) -> None:
    """``conns`` connections that send their request headers one byte every ``every`` seconds (a
    connection the server closes is opened again at once) while /api/health is asked every second."""
    u = urlsplit(url)
    start = f"GET /api/health HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nX-Slow: ".encode()
    counts = {"opened": 0, "closed by the server": 0, "refused": 0}

    def connect() -> socket.socket | None:
        try:
            s = socket.create_connection((u.hostname, u.port), timeout=5)
            s.sendall(start)
            counts["opened"] += 1
            return s
        except OSError:
            counts["refused"] += 1
            return None

    stop = threading.Event()

    def drip(socks: list) -> None:
        k = 0
        while not stop.wait(every / conns):
            i = k % conns
            k += 1
            s = socks[i]
            try:
                if s is None or closed_by_peer(s):
                    raise ConnectionError
                s.send(b"a")
            except OSError:
                if s is not None:
                    counts["closed by the server"] += 1
                    s.close()
                socks[i] = connect()

    with Watch(mem) as w:
        socks = [connect() for _ in range(conns)]
        dripper = threading.Thread(target=drip, args=(socks,), daemon=True)
        dripper.start()
        checks = health_checks(url, hold, 1.0)
        stop.set()
        dripper.join()
        still = sum(1 for s in socks if s is not None and not closed_by_peer(s))
        for s in socks:
            if s is not None:
                s.close()
    add_health(out, f"health: {conns} slow-header connections, {hold:.0f} s", checks, w,
               ", ".join(f"{v} {k}" for k, v in counts.items()) + f", {still} open at the end")


def run_stalled_bodies(mem: Memory, url: str, conns: int, wait: float, max_mb: float, out: Results) -> None:
    """``conns`` connections each declare a 31 MB body, send 30 MB of it and then nothing for up to
    ``wait`` seconds: how much the server holds, and when it lets go."""
    u = urlsplit(url)
    declared, sent_size, chunk = 31 * MIB, 30 * MIB, bytes(256 * 1024)
    head = (f"POST /api/predict HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
            f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {declared}\r\n\r\n").encode()
    sent = [0] * conns
    socks: list[socket.socket | None] = [None] * conns

    def upload(i: int) -> None:
        try:
            s = socks[i] = socket.create_connection((u.hostname, u.port), timeout=20)
            s.sendall(head)
            while sent[i] < sent_size:
                sent[i] += s.send(chunk[:sent_size - sent[i]])
        except OSError:  # closed by the server while sending
            pass

    with Watch(mem) as w:
        t0 = time.monotonic()
        with ThreadPoolExecutor(conns) as pool:
            list(pool.map(upload, range(conns)))
        sending_s = time.monotonic() - t0
        open_at_stall = [i for i, s in enumerate(socks) if s is not None and not closed_by_peer(s)]
        held = sum(sent[i] for i in open_at_stall)
        rss_at_stall = mem.rss() - w.before
        closed_at: dict[int, float] = {}
        health: list[tuple[int, float]] = []
        rss_later = float("nan")
        while time.monotonic() - t0 < wait and len(closed_at) < len(open_at_stall):
            time.sleep(0.5)
            for i in open_at_stall:
                if i not in closed_at and closed_by_peer(socks[i]):
                    closed_at[i] = time.monotonic() - t0
            if closed_at and rss_later != rss_later:  # the first closed: what the server holds then
                time.sleep(1.0)
                rss_later = mem.rss() - w.before
            if not health:
                health = health_checks(url, 0.1, 1.0)
        for s in socks:
            if s is not None:
                s.close()
    complete = sum(1 for n in sent if n >= sent_size)
    seconds: dict[int, int] = {}
    for t in closed_at.values():
        seconds[round(t)] = seconds.get(round(t), 0) + 1
    when = ", ".join(f"{n} after {t} s" for t, n in sorted(seconds.items())) or "none"
    good = not w.rise > max_mb and all(st == 200 and t < 1.0 for st, t in health)
    out.add(f"{conns} stalled bodies (30 of 31 MB each)", f"{len(open_at_stall)} open", sending_s, w, good,
            f"{complete} of {conns} sent their 30 MB in {sending_s:.1f} s ({conns - complete} cut off while "
            f"sending); at the stall {len(open_at_stall)} open, {held / MIB:,.0f} MB sent on them, server RSS "
            f"{rss_at_stall:+.0f} MB; closed (seconds from the first byte): {when}; RSS {rss_later:+.0f} MB a "
            f"second after the first closed; a health check meanwhile "
            f"{1000 * health[0][1] if health else float('nan'):.0f} ms")


# --------------------------------------------------------------------------------- the server


def start_server(models: list[str], feedback_db: Path, startup_timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """``braintumor serve`` with feedback on, on a free loopback port, once it answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "braintumor", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--feedback", str(feedback_db)] + [a for m in models for a in ("--model", m)]
    log = tempfile.TemporaryFile(mode="w+")  # a pipe nobody reads would fill up and stop the server
    proc = subprocess.Popen(cmd, env={**os.environ, "BRAINTUMOR_NO_PROGRESS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=log, text=True)
    url = f"http://127.0.0.1:{port}/"
    give_up = time.monotonic() + startup_timeout
    while proc.poll() is None and time.monotonic() < give_up:
        if timed(Client(url, timeout=5), "GET", "/api/health")[0] == 200:
            return proc, url
        time.sleep(0.25)
    log.seek(0)
    proc.kill()
    raise SystemExit(f"hostile.py: the server did not start: {log.read().strip()[-2000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL where the server is still there 15 s later."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


GROUPS = ("uploads", "refused", "scans", "worst", "parsers", "feedback", "dicom", "echo", "origin", "together",
          "health", "slow-headers", "stalled-bodies")
QUICK = ("uploads", "refused", "scans", "feedback", "dicom", "echo", "origin")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="groups:\n" + __doc__.split("groups:\n\n", 1)[-1].split("\n\n")[0])
    ap.add_argument("--url", default=None, help="a running server (default: start one here)")
    ap.add_argument("--pid", type=int, default=None, help="with --url: the server's process id, for its memory")
    ap.add_argument("--model", action="append", default=[], metavar="FILE",
                    help="checkpoint for the server started here (default: the shipped model)")
    ap.add_argument("--only", default=None, metavar="GROUPS", help=f"comma-separated groups of {', '.join(GROUPS)}")
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--max-s", type=float, default=2.0, help="seconds a probe may take (default: 2)")
    ap.add_argument("--max-mb", type=float, default=500.0, help="MB the memory may rise (default: 500)")
    ap.add_argument("--clients", type=int, default=24, help="heavy clients during the health check")
    ap.add_argument("--idle", type=int, default=110, help="idle connections during the health check")
    ap.add_argument("--slow", type=int, default=300, help="slow-header connections (default: 300)")
    ap.add_argument("--slow-hold", type=float, default=30.0, help="seconds they are held (default: 30)")
    ap.add_argument("--stalled", type=int, default=24, help="stalled uploads (default: 24)")
    ap.add_argument("--stall-wait", type=float, default=35.0,
                    help="seconds to watch the stalled uploads for the server to close them (default: 35)")
    args = ap.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(QUICK if args.quick else GROUPS)
    unknown = sorted(set(chosen) - set(GROUPS))
    if unknown:
        ap.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")

    t_build = time.perf_counter()
    files = {g: UPLOAD_GROUPS[g]() for g in GROUPS if g in chosen and g in UPLOAD_GROUPS}
    print(f"built {sum(map(len, files.values()))} hostile files in {time.perf_counter() - t_build:.0f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    proc = None
    url, pid = args.url, args.pid
    out = Results()
    with tempfile.TemporaryDirectory() as tmp:
        if url is None:
            proc, url = start_server(args.model, Path(tmp) / "feedback.sqlite")
            pid = proc.pid
        mem = Memory(pid)
        try:
            client = Client(url, timeout=120)
            status, raw = client.request("GET", "/api/health")
            info = json.loads(raw) if status == 200 else {}
            model = info.get("model", {})
            print(f"server {url}  pid {pid}  model {model.get('name')} {model.get('version')}  "
                  f"work {info.get('work')}  feedback {info.get('feedback')}")
            sample = sorted(SAMPLE.rglob("*.jpg"))[0].read_bytes()
            send(client, "scan.jpg", sample)  # warm
            print(f"\n{'probe':<48} {'bytes':>11} {'status':>6} {'s':>6} {'rise MB':>7} {'child':>5}  answer")
            runs = {
                "feedback": lambda: run_feedback(client, mem, out),
                "dicom": lambda: run_dicom(client, mem, out),
                "echo": lambda: run_echo(client, mem, out),
                "origin": lambda: run_origin(client, mem, sample, out),
                "together": lambda: run_together(client, mem, out),
                "health": lambda: run_health(client, mem, url, args.clients, args.idle, out),
                "slow-headers": lambda: run_slow_headers(mem, url, args.slow, args.slow_hold, 3.0, out),
                "stalled-bodies": lambda: run_stalled_bodies(mem, url, args.stalled, args.stall_wait, args.max_mb, out),
            }
            for group in (g for g in GROUPS if g in chosen):
                print(f"-- {group}", flush=True)
                if group in files:
                    run_uploads(client, mem, files[group], args, out)
                else:
                    runs[group]()
        finally:
            if proc is not None:
                stop_server(proc)
    out.table()
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("all within the limits" if out.ok else "SOME PROBES FAILED")
    return 0 if out.ok else 1


if __name__ == "__main__":
    sys.exit(main())
