"""DICOM and NIfTI input. Recognised by content, never by extension alone.

Every entry point reads images through :func:`braintumor.imaging.read_bytes`, which hands DICOM and
NIfTI bytes to :func:`read_medical_bytes`; the result is an ordinary 8-bit grayscale PIL image made
from the pixel array alone, so nothing from a file's header (patient name, IDs, dates, UIDs,
institution, NIfTI ``descrip``) can reach an answer, a log line or a written file. Error messages name
only the file name the user gave, never a header value, and the warnings and log records that
pydicom and nibabel emit while reading (some quote header values) are swallowed.

Display rules, the same for one slice and for a whole volume:

* DICOM: modality LUT or rescale slope/intercept, then the window centre/width in the file (first
  value when there are several, per-frame values in enhanced multi-frame files), else the VOI LUT,
  else 8-bit data as stored, else a 0.5-99.5 percentile window of the frame. MONOCHROME1 is
  inverted; RGB, YBR and PALETTE COLOR become luminance. Non-square pixels are made square.
* NIfTI: reoriented to RAS with ``nibabel.as_closest_canonical``; slice ``k`` is the k-th axial
  slice from the feet up, shown as a radiology viewer shows it (anterior up, the patient's right on
  the image's left). Window: the header's cal_min/cal_max, else 8-bit data as stored, else a
  0.5-99.5 percentile window of the whole volume (so that slices compare).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from .errors import MAX_PIXELS, ImageError, UnsupportedImageError

PERCENTILES = (0.5, 99.5)  # robust window when a file carries none
MAX_VOXELS = 200_000_000  # larger volumes are refused (memory)
MAX_NIFTI_BYTES = 2 << 30  # limit on a decompressed .nii.gz (a gzip bomb stops here)
BATCH = 32  # slices per predict_batch call in predict_volume

_GZIP = b"\x1f\x8b"
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")
_DICOM_NAMES = (".dcm", ".dicom", ".dic")
_NIFTI_NAMES = (".nii", ".nii.gz")

Source = Union[bytes, bytearray, memoryview, str, os.PathLike]


# ----------------------------------------------------------------------------------------------
# recognising the formats


def _basename(name: str) -> str:
    return Path(str(name)).name.lower()


def _no_extension(name: str) -> bool:
    """No extension, or a numeric one as in UID-named files (``1.3.12.2.1107.5.2.30``)."""
    suffix = Path(_basename(name)).suffix
    return suffix == "" or suffix[1:].isdigit()


def _nifti_magic(head: bytes) -> bool:
    return head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] == b"n+2\x00"


def _gunzip_head(data: bytes, n: int = 600) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:65536], n)
    except zlib.error:
        return b""


def _raw_dicom(data: bytes) -> bool:
    """A DICOM data set without the 128-byte preamble: starts with a group 0002 or 0008 element."""
    if len(data) < 12 or data[0:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    vr = data[4:6]
    if vr.isalpha() and vr.isupper():  # explicit VR
        return True
    length = int.from_bytes(data[4:8], "little")  # implicit VR: a plausible value length
    return length < min(len(data), 1 << 16)


def _kind(data: bytes, name: str) -> str | None:
    """"dicom", "nifti" or None, from the content first and the name only where content is silent."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if _nifti_magic(data[:348]):
        return "nifti"
    if data[:2] == _GZIP and _nifti_magic(_gunzip_head(data)):
        return "nifti"
    base = _basename(name)
    if (base.endswith(_DICOM_NAMES) or _no_extension(base)) and _raw_dicom(data):
        return "dicom"
    if data.startswith(_IMAGE_MAGIC):
        return None  # an ordinary image, whatever its name says
    if base.endswith(_DICOM_NAMES):
        return "dicom"  # named DICOM but is not one: the reader says so
    if base.endswith(_NIFTI_NAMES):
        return "nifti"
    return None


def looks_medical(data: bytes, name: str = "") -> bool:
    """True for DICOM (with or without the preamble) or NIfTI (.nii, .nii.gz) bytes, and for a file
    named like one that is not an ordinary image (so that the error names what it should be)."""
    return _kind(data, name) is not None


# ----------------------------------------------------------------------------------------------
# keeping header values out of warnings and logs


_quiet_lock = threading.RLock()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
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


# ----------------------------------------------------------------------------------------------
# intensities


def _window(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if not hi > lo:
        return np.zeros(arr.shape, np.uint8)
    return np.clip((arr - lo) * (255.0 / (hi - lo)), 0, 255).round().astype(np.uint8)


def _percentile_window(arr: np.ndarray) -> tuple[float, float]:
    flat = np.asarray(arr, dtype=np.float32).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 0.0
    if flat.size > 2_000_000:  # a regular subsample is plenty for two percentiles
        flat = flat[:: flat.size // 1_000_000]
    lo, hi = np.percentile(flat, PERCENTILES)
    return float(lo), float(hi)


def _dicom_window(arr: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """The VOI window of DICOM PS3.3 C.11.2.1.2 to 0..255."""
    if function == "SIGMOID":
        out = 255.0 / (1.0 + np.exp(-4.0 * (arr - center) / width))
    elif function == "LINEAR_EXACT":
        out = (arr - center) / width * 255.0 + 127.5
    else:  # LINEAR
        w = max(width - 1.0, 1e-6)
        out = ((arr - (center - 0.5)) / w + 0.5) * 255.0
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _square_pixels(img: Image.Image, dy: float | None, dx: float | None) -> Image.Image:
    """Resample so that pixels are square (dy: spacing between rows, dx: between columns)."""
    try:
        dy, dx = float(dy), float(dx)
    except (TypeError, ValueError):
        return img
    if not (dy > 0 and dx > 0) or abs(dy / dx - 1) < 0.01 or not 0.1 <= dy / dx <= 10:
        return img
    w, h = img.size
    size = (w, round(h * dy / dx)) if dy > dx else (round(w * dx / dy), h)
    return img.resize(size, Image.BILINEAR)


def _gray(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="L")


def _rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return np.asarray(Image.fromarray(np.ascontiguousarray(rgb), "RGB").convert("L"))
    lum = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return _window(lum, *_percentile_window(lum))


# ----------------------------------------------------------------------------------------------
# DICOM


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


class _Dicom:
    """An open DICOM data set; only the image pixel, modality LUT and VOI LUT modules are read."""

    def __init__(self, data: bytes, name: str):
        import pydicom
        from pydicom.dataset import FileMetaDataset
        from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

        self.name = name
        has_preamble = len(data) >= 132 and data[128:132] == b"DICM"
        if not has_preamble and not _raw_dicom(data):
            raise UnsupportedImageError(f"{name}: not a DICOM file (no DICOM header), "
                                        "although named like one")
        try:
            with _quiet():
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
        with _quiet():
            self._check_decoder(meta.TransferSyntaxUID)
        try:
            with _quiet():
                self.rows, self.cols = int(ds.Rows), int(ds.Columns)
                self.frames = int(_first(ds.get("NumberOfFrames")) or 1)
                self.photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
                self.bits_stored = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
                self.signed = int(ds.get("PixelRepresentation") or 0) == 1
        except Exception:
            raise ImageError(f"{name}: the DICOM image description (rows, columns, bits) is missing "
                             "or damaged") from None
        if self.rows < 1 or self.cols < 1 or self.frames < 1:
            raise ImageError(f"{name}: the DICOM file describes an empty image")
        if self.rows * self.cols > MAX_PIXELS:
            raise ImageError(f"{name}: {self.cols}x{self.rows} pixels is over the "
                             f"{MAX_PIXELS // 1_000_000} megapixel limit")

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
            with _quiet():
                arr = pixel_array(self.ds, index=i)
                img = self._display(arr, i)
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
            out = _rgb_to_gray(apply_color_lut(arr, ds))
        elif arr.ndim == 3:  # RGB (YBR is converted to RGB by pydicom)
            out = _rgb_to_gray(arr)
        elif arr.ndim == 2 and pi in ("MONOCHROME1", "MONOCHROME2"):
            out = self._monochrome(arr, i, apply_modality_lut, apply_voi_lut)
            if pi == "MONOCHROME1":
                out = 255 - out
        else:
            raise UnsupportedImageError(f"{self.name}: DICOM images with this photometric interpretation "
                                        "are not supported (MONOCHROME1/2, RGB, YBR, PALETTE COLOR are)")
        spacing = _frame_value(ds, i, "PixelMeasuresSequence", "PixelSpacing")
        dy, dx = (spacing[0], spacing[1]) if spacing is not None and len(spacing) == 2 else (None, None)
        return _square_pixels(_gray(out), dy, dx)

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
            return _dicom_window(values, center, width, function.strip().upper())
        if "VOILUTSequence" in ds:
            lut = apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float64)
            return _window(lut, float(lut.min()), float(lut.max()))
        plain = ("ModalityLUTSequence" not in ds and slope in (None, 1.0) and not intercept
                 and arr.dtype.kind in "ui" and not self.signed and self.bits_stored <= 8)
        if plain:  # 8-bit data as stored, as a PNG of the same pixels would be read
            return arr.astype(np.uint8)
        return _window(values, *_percentile_window(values))


# ----------------------------------------------------------------------------------------------
# NIfTI


def _gunzip(data: bytes, name: str) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        raw = d.decompress(data, MAX_NIFTI_BYTES + 1)
    except zlib.error:
        raise ImageError(f"{name}: the gzip stream is damaged") from None
    if len(raw) > MAX_NIFTI_BYTES:
        raise ImageError(f"{name}: over {MAX_NIFTI_BYTES >> 30} GiB once decompressed")
    if not d.eof:
        raise ImageError(f"{name}: the .nii.gz file is truncated")
    return raw


class _Nifti:
    """A 3-D NIfTI-1 or NIfTI-2 volume in RAS orientation, windowed to uint8 once."""

    def __init__(self, data: bytes, name: str):
        import nibabel as nib

        self.name = name
        raw = _gunzip(data, name) if data[:2] == _GZIP else data
        if raw[344:348] == b"ni1\x00":
            raise UnsupportedImageError(f"{name}: a NIfTI header of a .hdr/.img pair; send a single .nii "
                                        "or .nii.gz file")
        if len(raw) >= 348 and raw[344:348] == b"n+1\x00":
            cls = nib.Nifti1Image
        elif raw[4:8] == b"n+2\x00":
            cls = nib.Nifti2Image
        elif len(raw) < 348:
            raise ImageError(f"{name}: too short for a NIfTI file (a truncated header)")
        else:
            raise UnsupportedImageError(f"{name}: not a NIfTI file (no NIfTI-1 or NIfTI-2 header), "
                                        "although named like one")
        try:
            with _quiet():
                img = cls.from_bytes(raw)
                shape = tuple(int(s) for s in img.shape)
                dtype = img.header.get_data_dtype()
                offset = int(img.header.get_data_offset())
        except Exception:
            raise ImageError(f"{name}: the NIfTI header is damaged") from None
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) < 3 or (len(shape) == 3 and shape[2] == 1):
            raise UnsupportedImageError(f"{name}: a 2-D NIfTI image ({'x'.join(map(str, shape))}); this "
                                        "tool reads 3-D volumes of axial slices (send a 2-D scan as "
                                        "PNG, JPEG or DICOM)")
        if len(shape) > 3:
            raise UnsupportedImageError(
                f"{name}: a {len(shape)}-D NIfTI ({'x'.join(map(str, shape))}: several volumes, as in "
                "fMRI or diffusion); send one 3-D volume (e.g. fslroi IN OUT 0 1)")
        if dtype.fields is not None or dtype.kind not in "uifb":
            raise UnsupportedImageError(f"{name}: NIfTI voxels of type {dtype} are not supported "
                                        "(RGB or complex); send a grayscale volume")
        voxels = int(np.prod(shape))
        if voxels > MAX_VOXELS:
            raise ImageError(f"{name}: {'x'.join(map(str, shape))} voxels is over the "
                             f"{MAX_VOXELS // 1_000_000} million voxel limit")
        if len(raw) < offset + voxels * dtype.itemsize:
            raise ImageError(f"{name}: the NIfTI file is truncated (its voxel data is incomplete)")
        try:
            with _quiet():
                proxy = img.dataobj
                plain = (dtype == np.uint8 and float(getattr(proxy, "slope", 1.0)) == 1.0
                         and float(getattr(proxy, "inter", 0.0)) == 0.0)
                voxels = np.asarray(proxy) if plain else img.get_fdata(dtype=np.float32)
                img = cls(voxels.reshape(shape), img.affine, img.header)
                canon = nib.as_closest_canonical(img)
                self.volume = self._window(np.asarray(canon.dataobj), canon.header, plain)
                self.zooms = tuple(float(z) for z in canon.header.get_zooms()[:3])
        except ImageError:
            raise
        except Exception:
            raise ImageError(f"{name}: the NIfTI voxel data cannot be read; the file is damaged") from None
        self.slices = self.volume.shape[2]

    @staticmethod
    def _window(vol: np.ndarray, hdr, plain: bool) -> np.ndarray:
        """cal_min/cal_max, else 8-bit data as stored (``plain``), else the percentile window."""
        lo, hi = float(hdr["cal_min"]), float(hdr["cal_max"])
        if hi > lo:
            return _window(vol.astype(np.float32), lo, hi)
        if plain:
            return np.ascontiguousarray(vol, dtype=np.uint8)
        return _window(vol, *_percentile_window(vol))

    def _slice_index(self, slice_index: int | None) -> int:
        if slice_index is None:
            return self.slices // 2
        k = int(slice_index)
        if not 0 <= k < self.slices:
            raise ImageError(f"{self.name}: slice {k} is out of range; the volume has {self.slices} "
                             f"axial slices (0 to {self.slices - 1})")
        return k

    def slice(self, slice_index: int | None = None) -> Image.Image:
        k = self._slice_index(slice_index)
        # RAS voxels [x, y]: x grows to the patient's right, y to the front. A radiology viewer puts
        # the front at the top and the patient's right on the left: rows = -y, columns = -x.
        view = self.volume[:, :, k].T[::-1, ::-1]
        return _square_pixels(_gray(view), self.zooms[1], self.zooms[0])

    def all_slices(self) -> list[Image.Image]:
        return [self.slice(k) for k in range(self.slices)]


# ----------------------------------------------------------------------------------------------
# public API


@contextlib.contextmanager
def _guard(name: str) -> Iterator[None]:
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


def _open(data: bytes, name: str) -> _Dicom | _Nifti:
    kind = _kind(data, name)
    if kind == "nifti":
        return _Nifti(data, name)
    if kind == "dicom":
        return _Dicom(data, name)
    raise UnsupportedImageError(f"{name}: not a DICOM or NIfTI file")


def read_medical_bytes(data: bytes, name: str = "upload", slice_index: int | None = None) -> Image.Image:
    """One slice of a DICOM or NIfTI file as an 8-bit grayscale image: a DICOM frame (default: the
    middle frame of a multi-frame file) or an axial NIfTI slice (default: the middle one)."""
    with _guard(name):
        vol = _open(bytes(data), name)
        return vol.frame(slice_index) if isinstance(vol, _Dicom) else vol.slice(slice_index)


def _read_source(source: Source, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "upload"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise ImageError(f"{label}: no such file")
        return path.read_bytes(), label
    if hasattr(source, "read"):
        return source.read(), name or getattr(source, "name", "file")
    raise TypeError(f"cannot read a volume from {type(source).__name__}")


def read_volume(source: Source, name: str | None = None) -> list[Image.Image]:
    """Every slice of a DICOM (its frames) or NIfTI volume (its axial slices, feet to head), each
    exactly as :func:`read_medical_bytes` gives it with that ``slice_index``."""
    data, label = _read_source(source, name)
    if not data:
        raise ImageError(f"{label}: the file is empty")
    with _guard(label):
        vol = _open(data, label)
        return vol.all_frames() if isinstance(vol, _Dicom) else vol.all_slices()


def count_slices(source: Source, name: str | None = None) -> int:
    """How many slices ``slice_index`` can choose from (1 for a single-frame DICOM)."""
    data, label = _read_source(source, name)
    if not data:
        raise ImageError(f"{label}: the file is empty")
    with _guard(label):
        vol = _open(data, label)
        return vol.frames if isinstance(vol, _Dicom) else vol.slices


def _ranges(indices: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    parts, start = [], None
    for a, b in zip(indices, indices[1:] + [None]):
        start = a if start is None else start
        if b != a + 1:
            parts.append(f"{start}-{a}" if a != start else str(a))
            start = None
    return ", ".join(parts)


def predict_volume(predictor: Any, source: Source, name: str | None = None, **options: Any) -> dict:
    """Classify every slice of a DICOM or NIfTI volume.

    ``predictor`` is anything with ``predict(image)`` (and, used when present, ``predict_batch``)
    returning ``{"label", "confidence", "probabilities"}``, such as :class:`braintumor.Predictor`;
    ``options`` (e.g. ``tta=True``) are passed on to it.
    Returns ``{"file", "n_slices", "slices": [{"index", "label", "confidence", "probabilities"}],
    "blank": [indices], "summary": {label: [indices]}, "summary_text": {label: "3-5, 9"}}``; slices
    that hold one value only (the air above the head) are listed in ``blank`` and left out of
    ``summary``. Nothing from the file's header is in it.
    """
    data, label = _read_source(source, name)
    if not data:
        raise ImageError(f"{label}: the file is empty")
    images = read_volume(data, label)
    blank = [i for i, im in enumerate(images) if len(set(im.getextrema())) == 1]
    batch = getattr(predictor, "predict_batch", None)
    results: list[dict] = []
    for start in range(0, len(images), BATCH):
        chunk = images[start : start + BATCH]
        if batch is not None:
            results.extend(batch(chunk, **options))
        else:
            results.extend(predictor.predict(im, **options) for im in chunk)
    classes = list(getattr(predictor, "classes", None) or results[0]["probabilities"])
    slices, summary = [], {c: [] for c in classes}
    for i, r in enumerate(results):
        slices.append({"index": i, "label": r["label"], "confidence": float(r["confidence"]),
                       "probabilities": {k: float(v) for k, v in r["probabilities"].items()}})
        if i not in blank:
            summary.setdefault(r["label"], []).append(i)
    return {
        "file": label,
        "n_slices": len(images),
        "slices": slices,
        "blank": blank,
        "summary": summary,
        "summary_text": {c: _ranges(ix) for c, ix in summary.items() if ix},
    }


__all__ = ["looks_medical", "read_medical_bytes", "read_volume", "count_slices", "predict_volume",
           "PERCENTILES"]
