"""Intensities to 8-bit display pixels: the windows DICOM and NIfTI files carry, the robust
percentile window used when they carry none, square pixels.

:data:`PERCENTILES` is also the window :mod:`braintumor.imaging` gives signed and float arrays, so
that a scan's values are windowed alike whichever way they arrive.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..limits import check_image

PERCENTILES = (0.5, 99.5)  # robust window when a file carries none


STRIP_VALUES = 1 << 20  # values windowed at a time: float temporaries of a strip, not of a volume


def window(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values from ``lo`` to ``hi`` onto 0..255, a strip of the first axis at a time."""
    out = np.zeros(arr.shape, np.uint8)
    if not hi > lo or not arr.size:
        return out
    scale = 255.0 / (hi - lo)
    step = max(1, STRIP_VALUES * arr.shape[0] // arr.size)
    for i in range(0, arr.shape[0], step):
        out[i:i + step] = np.clip((arr[i:i + step] - lo) * scale, 0, 255).round()
    return out


def percentile_window(arr: np.ndarray) -> tuple[float, float]:
    arr = np.asarray(arr)
    if arr.size > 2_000_000:  # a regular subsample is plenty for two percentiles (and no copy of a volume)
        every = np.arange(0, arr.size, arr.size // 1_000_000)
        flat = arr[np.unravel_index(every, arr.shape)].astype(np.float32)
    else:
        flat = arr.astype(np.float32).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(flat, PERCENTILES)
    return float(lo), float(hi)


def dicom_window(arr: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """The VOI window of DICOM PS3.3 C.11.2.1.2 to 0..255."""
    if function == "SIGMOID":
        out = 255.0 / (1.0 + np.exp(-4.0 * (arr - center) / width))
    elif function == "LINEAR_EXACT":
        out = (arr - center) / width * 255.0 + 127.5
    else:  # LINEAR
        w = max(width - 1.0, 1e-6)
        out = ((arr - (center - 0.5)) / w + 0.5) * 255.0
    return np.clip(out, 0, 255).round().astype(np.uint8)


def square_pixels(img: Image.Image, dy: float | None, dx: float | None, name: str = "scan") -> Image.Image:
    """Resample so that pixels are square (dy: spacing between rows, dx: between columns). The
    size it would resample to is checked against the pixel and aspect limits first
    (:func:`braintumor.limits.check_image`)."""
    try:
        dy, dx = float(dy), float(dx)
    except (TypeError, ValueError):
        return img
    if not (dy > 0 and dx > 0) or abs(dy / dx - 1) < 0.01 or not 0.1 <= dy / dx <= 10:
        return img
    w, h = img.size
    size = (w, round(h * dy / dx)) if dy > dx else (round(w * dx / dy), h)
    check_image(*size, name, what="the image at its pixel spacing")
    return img.resize(size, Image.BILINEAR)


def gray(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="L")


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return np.asarray(Image.fromarray(np.ascontiguousarray(rgb), "RGB").convert("L"))
    lum = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return window(lum, *percentile_window(lum))
