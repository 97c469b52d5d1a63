"""Reading images of any kind into one form: an 8-bit single-channel PIL image.

Every entry point (training cache, evaluation, Predictor, CLI, web app) reads pixels through
:func:`load_image`, so a scan gives the same pixels whichever way it arrives.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import MAX_PIXELS, ImageError, UnsupportedImageError  # noqa: F401 (re-exported)
from .medical.window import PERCENTILES


ImageInput = Union[str, os.PathLike, bytes, bytearray, IO[bytes], Image.Image, np.ndarray]


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale any numeric array to uint8.

    Unsigned integers keep their meaning: the value range of the smallest common bit depth that
    holds the data (8, 10, 12 or 16 bits) maps to 0..255, so a 16-bit copy of an 8-bit image gives
    the same pixels. Signed and float data get the robust percentile window DICOM and NIfTI files
    get when they carry none (0.5-99.5, :data:`braintumor.medical.window.PERCENTILES`)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    a = arr.astype(np.float64)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    if np.issubdtype(arr.dtype, np.integer) and a.size and a.min() >= 0:
        top = float(a.max())
        bits = next((b for b in (8, 10, 12, 16) if top < 2 ** b), None)
        lo, hi = 0.0, float(2 ** bits - 1) if bits else top
    else:
        lo, hi = (float(v) for v in np.percentile(a, PERCENTILES))
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((a - lo) * (255.0 / (hi - lo)), 0, 255).round().astype(np.uint8)


def array_to_gray(arr: np.ndarray) -> Image.Image:
    """A 2-D (H, W) or 3-D (H, W, C) array to an 8-bit grayscale image."""
    arr = np.asarray(arr)
    src = arr.dtype
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # channels-first input
    if arr.ndim == 3:
        if arr.shape[-1] == 4:  # RGBA: alpha composited onto black
            full = 255.0 if src == np.uint8 else max(float(arr[..., 3].max()), 1.0)
            arr = arr[..., :3].astype(np.float64) * (arr[..., 3:4].astype(np.float64) / full)
        if arr.shape[-1] == 3:
            arr = arr.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        elif arr.shape[-1] == 1:
            arr = arr[..., 0]
        else:
            raise ImageError(f"an image array needs 1, 3 or 4 channels, got shape {arr.shape}")
    if arr.ndim != 2:
        raise ImageError(f"an image array must be 2-D or 3-D, got shape {arr.shape}")
    if arr.dtype.kind == "f" and np.issubdtype(src, np.integer):
        arr = np.clip(arr.round(), 0, None).astype(src)  # keep the source's value scale
    elif arr.dtype.kind == "f" and arr.size and 0 <= arr.min() and arr.max() <= 1.0:
        arr = np.clip(arr * 255.0, 0, 255).round().astype(np.uint8)  # float images in [0, 1]
    return Image.fromarray(_to_uint8(arr), mode="L")


def pil_to_gray(img: Image.Image) -> Image.Image:
    """Any PIL image to 8-bit grayscale, EXIF orientation applied, alpha composited on black."""
    if img.width * img.height > MAX_PIXELS:
        raise ImageError(
            f"the image is {img.width}x{img.height} pixels, over the {MAX_PIXELS // 1_000_000} "
            "megapixel limit (a possible decompression bomb)"
        )
    if getattr(img, "is_animated", False) and getattr(img, "n_frames", 1) > 1:
        raise UnsupportedImageError(
            f"the image has {img.n_frames} frames (animated or multi-page); send a single image"
        )
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not stop a readable image
        pass
    if img.mode == "L":
        return img.copy()
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return array_to_gray(np.asarray(img))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return array_to_gray(np.asarray(img.convert("RGBA")))
    return img.convert("L")


def _open_pil(fp: IO[bytes], name: str) -> Image.Image:
    try:
        with Image.open(fp) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(
                    f"{name}: {img.width}x{img.height} pixels is over the "
                    f"{MAX_PIXELS // 1_000_000} megapixel limit (a possible decompression bomb)"
                )
            if getattr(img, "n_frames", 1) > 1:
                raise UnsupportedImageError(
                    f"{name}: the image has {img.n_frames} frames (animated or multi-page); "
                    "send a single image"
                )
            img.load()
            return pil_to_gray(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise UnsupportedImageError(f"{name}: not an image or scan this tool reads (JPEG, PNG, BMP, TIFF, DICOM or NIfTI)") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: too many pixels (a possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name}: the image is damaged or truncated ({exc})") from None


def read_bytes(data: bytes, name: str = "upload", slice_index: int | None = None) -> Image.Image:
    """Decode image bytes into 8-bit grayscale; DICOM and NIfTI are recognised by content, and
    ``slice_index`` picks a slice (or frame) of a volume (default: the middle one)."""
    if not data:
        raise ImageError(f"{name}: the file is empty")
    from . import medical

    if medical.looks_medical(data, name):
        return medical.read_medical_bytes(data, name, slice_index)
    return _open_pil(io.BytesIO(data), name)


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


def describe(image: Any) -> str:
    """A short name for an input, for messages."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    return type(image).__name__
