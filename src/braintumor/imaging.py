"""Reading images of any kind into one form: an 8-bit single-channel PIL image.

Every entry point (training cache, evaluation, Predictor, CLI, web app) reads pixels through
:func:`load_image`, so a scan gives the same pixels whichever way it arrives.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from struct import error as struct_error
from typing import IO, Any, Iterator, Union

import numpy as np
from PIL import Image, ImageChops, ImageMode, ImageOps, UnidentifiedImageError

from . import formats, limits
from .medical.dicom import BURNED_IN_KEY, BURNED_IN_NOTICE  # noqa: F401 (re-exported)
from .errors import MAX_PIXELS, ImageError, UnsupportedImageError  # noqa: F401 (re-exported)
from .medical.window import PERCENTILES


ImageInput = Union[str, os.PathLike, bytes, bytearray, IO[bytes], Image.Image, np.ndarray]
COLOUR_KEY = "braintumor_colour"  # Image.info key: the share of the picture that was in colour
COLOUR_CHROMA = 24  # grey levels: a pixel whose channels differ by more than this is in colour


def colour_share(rgb: np.ndarray) -> float:
    """The share of an (H, W, 3) picture's pixels whose channels differ by more than
    :data:`COLOUR_CHROMA` grey levels (of 255), on at most about 128 x 128 of them. The
    out-of-distribution gate reads it: brain MRI slices are grey."""
    a = np.asarray(rgb)
    step = max(1, max(a.shape[:2]) // 128)
    if a.dtype == np.uint8 and a.size:  # 8-bit (most pictures): channel by channel, in integers (50x faster)
        r, g, b = (a[::step, ::step, i].astype(np.int16) for i in range(3))
        chroma = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
        return float((chroma > COLOUR_CHROMA).mean())
    a = a[::step, ::step, :3].astype(np.float64)  # every step-th pixel: no copy of the whole image
    if a.size and a.max() > 255:  # wider than 8 bits
        a = a * (255.0 / a.max())
    return float(((a.max(axis=2) - a.min(axis=2)) > COLOUR_CHROMA).mean()) if a.size else 0.0


def _with_colour(gray: Image.Image, share: float) -> Image.Image:
    gray.info[COLOUR_KEY] = share
    return gray


EXIF_ORIENTATION = 0x0112
STRIP_PIXELS = 1 << 18  # pixels converted at a time: float copies of a strip, never of a whole image
SAMPLE_PIXELS = 2_000_000  # larger images take their percentile window from a regular subsample


def _strips(rows: int, row_pixels: int) -> Iterator[slice]:
    """Slices of consecutive rows of about :data:`STRIP_PIXELS` pixels each."""
    step = max(1, STRIP_PIXELS // max(1, row_pixels))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


def _value_window(arr: np.ndarray) -> tuple[float, float]:
    """The values that map to 0 and 255 (see :func:`_to_uint8`)."""
    if np.issubdtype(arr.dtype, np.integer) and arr.size and arr.min() >= 0:
        top = float(arr.max())
        bits = next((b for b in (8, 10, 12, 16) if top < 2 ** b), None)
        return 0.0, float(2 ** bits - 1) if bits else top
    flat = arr.reshape(-1)
    if flat.size > SAMPLE_PIXELS:
        flat = flat[:: flat.size // (SAMPLE_PIXELS // 2)]
    a = flat.astype(np.float64)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(v) for v in np.percentile(a, PERCENTILES))
    return lo, hi


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale any numeric array to uint8.

    Unsigned integers keep their meaning: the value range of the smallest common bit depth that
    holds the data (8, 10, 12 or 16 bits) maps to 0..255, so a 16-bit copy of an 8-bit image gives
    the same pixels. Signed and float data get the robust percentile window DICOM and NIfTI files
    get when they carry none (0.5-99.5, :data:`braintumor.medical.window.PERCENTILES`; taken from a
    regular subsample of images over 2 megapixels). The work is done a strip of rows at a time."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    lo, hi = _value_window(arr)
    if hi <= lo:
        hi = lo + 1.0
    out = np.empty(arr.shape, np.uint8)
    row = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
    for rows in _strips(arr.shape[0], row):
        a = arr[rows].astype(np.float64)
        if not np.isfinite(a).all():
            a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        out[rows] = np.clip((a - lo) * (255.0 / (hi - lo)), 0, 255).round()
    return out


LUMA = np.array([0.299, 0.587, 0.114])


def _pil_colour_to_gray(img: Image.Image) -> Image.Image:
    """An 8-bit RGB or RGBA image -> luminance (ITU-R 601-2), RGBA composited onto black, in
    Pillow's C code: no copy of the image beyond the grey result (within one grey level of the
    float formula of :func:`_channels_to_gray`)."""
    gray = img.convert("L")
    if img.mode == "RGBA":
        gray = ImageChops.multiply(gray, img.getchannel("A"))
    return gray


def _channels_to_gray(arr: np.ndarray) -> np.ndarray:
    """(H, W, 3 or 4) -> (H, W) luminance, RGBA composited onto black: 8-bit sources as 8-bit
    PIL images are (:func:`_pil_colour_to_gray`); others a strip at a time, of the source's integer
    type (rounded; 16-bit computed in float32), or float64 for float sources."""
    src = arr.dtype
    if src == np.uint8:
        mode = "RGBA" if arr.shape[-1] == 4 else "RGB"
        return np.asarray(_pil_colour_to_gray(Image.fromarray(np.ascontiguousarray(arr), mode)))
    integer = np.issubdtype(src, np.integer)
    work = np.float32 if integer and src.itemsize <= 2 else np.float64
    luma = LUMA.astype(work)
    out = np.empty(arr.shape[:2], src if integer else np.float64)
    full = 1.0
    if arr.shape[-1] == 4:
        full = 255.0 if src == np.uint8 else max(float(arr[..., 3].max()), 1.0)
    for rows in _strips(arr.shape[0], arr.shape[1]):
        part = arr[rows].astype(work)
        rgb = part[..., :3] * (part[..., 3:4] / work(full)) if arr.shape[-1] == 4 else part
        g = rgb @ luma
        out[rows] = np.clip(g.round(), 0, None) if integer else g
    return out


def _unit_floats_to_uint8(arr: np.ndarray) -> np.ndarray:
    out = np.empty(arr.shape, np.uint8)
    for rows in _strips(arr.shape[0], arr.shape[1]):
        out[rows] = np.clip(arr[rows] * 255.0, 0, 255).round()
    return out


def array_to_gray(arr: np.ndarray, name: str = "array") -> Image.Image:
    """A 2-D (H, W) or 3-D (H, W, C) array to an 8-bit grayscale image."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # channels-first input
    if arr.ndim == 3:
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
        elif arr.shape[-1] not in (3, 4):
            raise ImageError(f"an image array needs 1, 3 or 4 channels, got shape {arr.shape}")
    if arr.ndim not in (2, 3):
        raise ImageError(f"an image array must be 2-D or 3-D, got shape {arr.shape}")
    limits.check_image(arr.shape[1], arr.shape[0], name, arr.dtype.itemsize * (arr.shape[2] if arr.ndim == 3 else 1))
    share = colour_share(arr) if arr.ndim == 3 else 0.0
    if arr.ndim == 3:
        arr = _channels_to_gray(arr)  # of the source's value scale
    if arr.dtype.kind == "f" and arr.size and 0 <= arr.min() and arr.max() <= 1.0:
        arr = _unit_floats_to_uint8(arr)  # float images in [0, 1]
    return _with_colour(Image.fromarray(_to_uint8(arr), mode="L"), share)


def bytes_per_pixel(mode: str) -> int:
    """Bytes of one decoded pixel of a PIL image mode."""
    try:
        m = ImageMode.getmode(mode)
    except KeyError:
        return 4
    return len(m.bands) * int(m.typestr[-1])


def pil_to_gray(img: Image.Image, name: str = "image") -> Image.Image:
    """Any PIL image to 8-bit grayscale, EXIF orientation applied, alpha composited on black."""
    limits.check_image(img.width, img.height, name, bytes_per_pixel(img.mode))
    if getattr(img, "is_animated", False) and getattr(img, "n_frames", 1) > 1:
        raise UnsupportedImageError(
            f"the image has {img.n_frames} frames (animated or multi-page); send a single image"
        )
    try:
        if img.getexif().get(EXIF_ORIENTATION, 1) != 1:  # (exif_transpose copies even when it need not)
            img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not stop a readable image
        pass
    if img.mode == "L":
        return img.copy()
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return array_to_gray(np.asarray(img), name)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        return _with_colour(_pil_colour_to_gray(rgba), _pil_colour_share(rgba))
    share = _pil_colour_share(img) if img.mode != "1" else 0.0
    return _with_colour(img.convert("L"), share)


def _pil_colour_share(img: Image.Image) -> float:
    """:func:`colour_share` of a PIL image, on a reduced copy (RGB and RGBA are reduced before
    anything else is copied)."""
    step = max(1, max(img.size) // 128)
    small = img.reduce(step) if img.mode in ("RGB", "RGBA") else img.convert("RGB").reduce(step)
    return colour_share(np.asarray(small.convert("RGB")))


ACCEPTED_WORDS = "JPEG, PNG, BMP, TIFF, WebP, DICOM or NIfTI"


def _open_pil(fp: IO[bytes], name: str, fmt: str) -> Image.Image:
    """Decode ``fp`` with the one Pillow decoder of ``fmt`` (never any other: Pillow would
    otherwise try every format it knows, EPS through Ghostscript among them)."""
    try:
        with Image.open(fp, formats=(fmt,)) as img:
            # the header's size, before a pixel is decoded
            limits.check_image(img.width, img.height, name, bytes_per_pixel(img.mode))
            if getattr(img, "is_animated", False):  # never n_frames: TIFF's reads every page
                raise UnsupportedImageError(f"{name}: the image has several frames (animated or multi-page); "
                                            "send a single image")
            img.load()
            return pil_to_gray(img, name)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise UnsupportedImageError(f"{name}: not a readable {fmt} image") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: too many pixels (a possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct_error, MemoryError):
        # the decoder's own words name its internals; say what it means for the user
        raise ImageError(f"{name}: the {fmt} image is damaged or truncated") from None


def decode_picture(data: bytes, name: str = "upload") -> Image.Image:
    """Decode a picture whose first bytes announce one of :data:`braintumor.formats.PICTURE_FORMATS`
    with that format's decoder alone; anything else is refused before a decoder sees a byte."""
    fmt = formats.picture_format(data)
    if fmt is None:
        what = formats.refused_format(data)
        raise UnsupportedImageError(f"{name}: " + (f"{what}, not " if what else "not ")
                                    + f"an image or scan this tool reads ({ACCEPTED_WORDS})")
    scans = formats.jpeg_scans(data) if fmt == "JPEG" else 0
    if scans > formats.MAX_JPEG_SCANS:
        raise UnsupportedImageError(
            f"{name}: a progressive JPEG of {scans:,} scans (at most "
            f"{formats.MAX_JPEG_SCANS} are decoded); save it again as an ordinary JPEG or PNG")
    if fmt == "JPEG" and formats.jpeg_segments(data) > formats.MAX_JPEG_SEGMENTS:
        raise UnsupportedImageError(f"{name}: the JPEG lists over {formats.MAX_JPEG_SEGMENTS:,} header segments "
                                    "before its pixels; save it again as an ordinary JPEG or PNG")
    if fmt == "PNG" and formats.png_chunks(data) > formats.MAX_PNG_CHUNKS:
        raise UnsupportedImageError(f"{name}: the PNG holds over {formats.MAX_PNG_CHUNKS:,} chunks; save it "
                                    "again as an ordinary PNG")
    if fmt == "TIFF":
        listed, implied, more_pages = formats.tiff_first_page(data)
        if more_pages:
            raise UnsupportedImageError(f"{name}: the image has several frames (a multi-page TIFF); "
                                        "send a single image")
        if listed > implied:
            raise ImageError(f"{name}: the TIFF lists {listed:,} strips or tiles where its size holds "
                             f"{implied:,} (a damaged file)")
    return _open_pil(io.BytesIO(data), name, fmt)


def read_bytes(data: bytes, name: str = "upload", slice_index: int | None = None) -> Image.Image:
    """Decode image bytes into 8-bit grayscale; DICOM and NIfTI are recognised by content, and
    ``slice_index`` picks a slice (or frame) of a volume (default: the middle one)."""
    if not data:
        raise ImageError(f"{name}: the file is empty")
    from . import medical

    if medical.looks_medical(data, name):
        return medical.read_medical_bytes(data, name, slice_index)
    return decode_picture(data, name)


def load_image(image: ImageInput, name: str | None = None, slice_index: int | None = None) -> Image.Image:
    """Load a path, bytes, binary file object, PIL image or numpy array as 8-bit grayscale.

    ``slice_index`` applies to DICOM multi-frame files and NIfTI volumes."""
    if isinstance(image, Image.Image):
        return pil_to_gray(image)
    if isinstance(image, np.ndarray):
        return array_to_gray(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return read_bytes(bytes(image), name or "image", slice_index)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        label = name or str(path)
        if not path.is_file():
            raise ImageError(f"{label}: no such file")
        return read_bytes(path.read_bytes(), label, slice_index)
    if hasattr(image, "read"):
        return read_bytes(image.read(), name or getattr(image, "name", "file"), slice_index)
    raise TypeError(f"cannot read an image from {type(image).__name__}")


def has_burned_in_text(image: Image.Image) -> bool:
    """Whether a decoded image may show patient text (see :data:`BURNED_IN_KEY`)."""
    return bool(getattr(image, "info", {}).get(BURNED_IN_KEY))


def describe(image: Any) -> str:
    """A short name for an input, for messages."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    return type(image).__name__
