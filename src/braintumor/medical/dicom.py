"""DICOM: one frame or every frame of a file as 8-bit grayscale, from the pixel data alone.

Display rules: modality LUT or rescale slope/intercept, then the window centre/width in the file
(first value when there are several, per-frame values in enhanced multi-frame files), else the VOI
LUT, else 8-bit data as stored, else the percentile window of the frame
(:data:`braintumor.medical.window.PERCENTILES`). MONOCHROME1 is inverted; RGB, YBR and PALETTE
COLOR become luminance. Non-square pixels are made square. Only the image pixel, modality LUT and
VOI LUT modules are read; no other header value is kept.

Nothing is inflated or decoded before its size is known to fit the current budget
(:mod:`braintumor.limits`): a data set in the Deflated transfer syntax is inflated once, counting,
and refused as soon as it passes the budget's memory (a 500 KB file can inflate to a gigabyte);
a frame is decoded only when its rows x columns x samples fit the pixel, aspect and memory limits,
whatever the encapsulated (compressed) bytes would expand to.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image

from .. import formats, limits
from ..errors import ImageError, UnsupportedImageError
from .quiet import quiet
from .window import dicom_window, gray, percentile_window, rgb_to_gray, square_pixels, window


DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian
# explicit-VR value representations with a 4-byte value length (PS3.5 7.1.2)
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
INFLATE_CHUNK = 1 << 20
# Image.info key: the pixels may show patient text (a DICOM marked BurnedInAnnotation YES, or a
# secondary capture). Such a scan is answered with a notice, and its pixels are never kept.
BURNED_IN_KEY = "braintumor_burned_in_text"
BURNED_IN_NOTICE = ("This DICOM file says patient text may be drawn into its pixels (burned-in annotation "
                    "or a secondary capture). It was analysed, but its pixels are never kept with feedback "
                    "or exported; remove the text before sharing the image or this report.")
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # and its multi-frame kinds, .7.1 to .7.4


def burned_in_text(ds) -> bool:
    """Whether a data set's pixels may carry burned-in text: the file says so (BurnedInAnnotation
    YES) or it is a secondary capture (a screenshot or scanned film, where text drawn into the
    picture is the rule). See :data:`braintumor.imaging.BURNED_IN_KEY`."""
    said = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    sop = str(ds.get("SOPClassUID", "") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "")
              or "")
    return said == "YES" or sop == SECONDARY_CAPTURE or sop.startswith(SECONDARY_CAPTURE + ".")


def file_meta(data: bytes, start: int) -> tuple[str | None, int]:
    """The TransferSyntaxUID of the file meta group (group 0002, explicit VR little endian) that
    begins at ``start``, and the offset where the group ends: where the data set, deflated or not,
    begins. (None, start) where there is no such group."""
    pos, ts = start, None
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4:pos + 6]
        if vr in LONG_VRS:
            if pos + 12 > len(data):
                break
            length, header = struct.unpack_from("<I", data, pos + 8)[0], 12
        else:
            length, header = struct.unpack_from("<H", data, pos + 6)[0], 8
        value = data[pos + header:pos + header + length]
        if element == 0x0010:
            ts = value.rstrip(b"\0 ").decode("ascii", "replace")
        pos += header + length
    return ts, pos


def inflated_size(deflated: bytes, limit: int) -> int | None:
    """The size of a raw deflate stream once inflated, counted a megabyte at a time (never held
    whole); None as soon as it passes ``limit``."""
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    total, data = 0, deflated
    while data and not d.eof:
        total += len(d.decompress(data, INFLATE_CHUNK))
        if total > limit:
            return None
        data = d.unconsumed_tail
    return total


def _first(value: Any) -> float | None:
    """The first number of a possibly multi-valued element."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _frame_value(ds, index: int, sequence: str, keyword: str) -> Any:
    """A value at the top level, else in the per-frame or shared functional groups (enhanced MR)."""
    if keyword in ds:
        return ds[keyword].value
    for groups_kw, i in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(groups_kw)
        if groups is None or len(groups) <= i:
            continue
        seq = groups[i].get(sequence)
        if seq and keyword in seq[0]:
            return seq[0][keyword].value
    return None


class Dicom:
    """An open DICOM data set; only the image pixel, modality LUT and VOI LUT modules are read."""

    def __init__(self, data: bytes, name: str):
        import pydicom
        from pydicom.dataset import FileMetaDataset
        from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

        self.name = name
        has_preamble = formats.dicom_preamble(data)
        if not has_preamble and not formats.raw_dicom(data):
            raise UnsupportedImageError(f"{name}: not a DICOM file (no DICOM header), "
                                        "although named like one")
        ts, start = file_meta(data, 132 if has_preamble else 0)
        if ts == DEFLATED:
            try:
                size = inflated_size(data[start:], limits.current().memory)
            except zlib.error:
                raise ImageError(f"{name}: the deflated DICOM data set is damaged") from None
            if size is None:
                limit = limits.current().memory
                raise ImageError(f"{name}: the deflated DICOM data set is over {limits.in_mib(limit)} once "
                                 "inflated (a possible decompression bomb)")
            limits.check_memory(2 * size, name, "the deflated DICOM data set")
        try:
            with quiet():
                ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
                self.pixel_keyword = next(
                    (k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds), None)
                encapsulated = bool(self.pixel_keyword) and ds[self.pixel_keyword].is_undefined_length
        except Exception:
            raise ImageError(f"{name}: the DICOM file is damaged or truncated and cannot be read") from None
        if self.pixel_keyword is None:
            raise UnsupportedImageError(
                f"{name}: the DICOM file holds no image (no pixel data); it may be a report, "
                "a presentation state or a truncated file")
        meta = getattr(ds, "file_meta", None)
        if meta is None or "TransferSyntaxUID" not in meta:
            # a raw data set: its encoding is the one the reader found
            if encapsulated:
                raise UnsupportedImageError(
                    f"{name}: compressed DICOM pixel data without a file header saying how it is "
                    "compressed; export the image again with its DICOM file header")
            implicit, little = ds.original_encoding
            ds.file_meta = meta = meta if meta is not None else FileMetaDataset()
            meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit
                                      else ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        self.ds = ds
        with quiet():
            self._check_decoder(meta.TransferSyntaxUID)
        try:
            with quiet():
                self.rows, self.cols = int(ds.Rows), int(ds.Columns)
                self.frames = int(_first(ds.get("NumberOfFrames")) or 1)
                self.photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
                self.bits_stored = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
                self.signed = int(ds.get("PixelRepresentation") or 0) == 1
                samples = max(1, int(ds.get("SamplesPerPixel") or 1))
                allocated = max(1, int(ds.get("BitsAllocated") or 16))
        except Exception:
            raise ImageError(f"{name}: the DICOM image description (rows, columns, bits) is missing "
                             "or damaged") from None
        if self.rows < 1 or self.cols < 1 or self.frames < 1:
            raise ImageError(f"{name}: the DICOM file describes an empty image")
        # one decoded frame, and its float64 values on the way to display pixels
        frame_bytes = samples * -(-allocated // 8) + 8 * (1 if samples == 1 else samples)
        limits.check_image(self.cols, self.rows, name, frame_bytes, what="the DICOM frame")

    def _check_decoder(self, ts) -> None:
        from pydicom import uid
        from pydicom.pixels import get_decoder

        known = ts in uid.AllTransferSyntaxes  # a UID's name only where it is a standard one
        label = ts.name if known else "an unknown transfer syntax"
        try:
            available = get_decoder(ts).is_available
        except NotImplementedError:
            available = False
        if available:
            return
        if ts in (uid.JPEGLossless, uid.JPEGLosslessSV1) or ts in uid.JPEGLSTransferSyntaxes:
            hint = "install python-gdcm, or pylibjpeg with pylibjpeg-libjpeg (GPL), to read it"
        elif known and "HTJ2K" in ts.keyword:
            hint = "install pylibjpeg with pylibjpeg-openjpeg to read it"
        else:
            hint = "export it uncompressed (Explicit VR Little Endian) to read it here"
        raise UnsupportedImageError(f"{self.name}: the DICOM pixel data is compressed as {label}, "
                                    f"which this installation cannot decode; {hint}")

    def _frame_index(self, slice_index: int | None) -> int:
        if slice_index is None:
            return self.frames // 2
        i = int(slice_index)
        if not 0 <= i < self.frames:
            what = "frame" if self.frames == 1 else f"frames (0 to {self.frames - 1})"
            raise ImageError(f"{self.name}: slice {i} is out of range; the file has {self.frames} {what}")
        return i

    def frame(self, slice_index: int | None = None) -> Image.Image:
        from pydicom.pixels import pixel_array

        i = self._frame_index(slice_index)
        try:
            with quiet():
                arr = pixel_array(self.ds, index=i)
                img = self._display(arr, i)
                if burned_in_text(self.ds):
                    img.info[BURNED_IN_KEY] = True
        except ImageError:
            raise
        except Exception:
            raise ImageError(f"{self.name}: the DICOM pixel data cannot be decoded; the file is "
                             "damaged or truncated") from None
        return img

    def all_frames(self) -> list[Image.Image]:
        return [self.frame(i) for i in range(self.frames)]

    def _display(self, arr: np.ndarray, i: int) -> Image.Image:
        from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

        ds, pi = self.ds, self.photometric
        if pi == "PALETTE COLOR" and arr.ndim == 2:
            out = rgb_to_gray(apply_color_lut(arr, ds))
        elif arr.ndim == 3:  # RGB (YBR is converted to RGB by pydicom)
            out = rgb_to_gray(arr)
        elif arr.ndim == 2 and pi in ("MONOCHROME1", "MONOCHROME2"):
            out = self._monochrome(arr, i, apply_modality_lut, apply_voi_lut)
            if pi == "MONOCHROME1":
                out = 255 - out
        else:
            raise UnsupportedImageError(f"{self.name}: DICOM images with this photometric interpretation "
                                        "are not supported (MONOCHROME1/2, RGB, YBR, PALETTE COLOR are)")
        spacing = _frame_value(ds, i, "PixelMeasuresSequence", "PixelSpacing")
        dy, dx = (spacing[0], spacing[1]) if spacing is not None and len(spacing) == 2 else (None, None)
        return square_pixels(gray(out), dy, dx, self.name)

    def _monochrome(self, arr: np.ndarray, i: int, apply_modality_lut, apply_voi_lut) -> np.ndarray:
        ds = self.ds
        slope = _first(_frame_value(ds, i, "PixelValueTransformationSequence", "RescaleSlope"))
        intercept = _first(_frame_value(ds, i, "PixelValueTransformationSequence", "RescaleIntercept"))
        if "ModalityLUTSequence" in ds:
            values = apply_modality_lut(arr, ds).astype(np.float64)
        else:
            values = arr.astype(np.float64)
            if slope is not None and slope != 0:
                values *= slope
            if intercept:
                values += intercept
        center = _first(_frame_value(ds, i, "FrameVOILUTSequence", "WindowCenter"))
        width = _first(_frame_value(ds, i, "FrameVOILUTSequence", "WindowWidth"))
        if center is not None and width is not None and width >= 1:
            function = str(_frame_value(ds, i, "FrameVOILUTSequence", "VOILUTFunction") or "LINEAR")
            return dicom_window(values, center, width, function.strip().upper())
        if "VOILUTSequence" in ds:
            lut = apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float64)
            return window(lut, float(lut.min()), float(lut.max()))
        plain = ("ModalityLUTSequence" not in ds and slope in (None, 1.0) and not intercept
                 and arr.dtype.kind in "ui" and not self.signed and self.bits_stored <= 8)
        if plain:  # 8-bit data as stored, as a PNG of the same pixels would be read
            return arr.astype(np.uint8)
        return window(values, *percentile_window(values))
