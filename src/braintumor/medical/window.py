"""Intensities to 8-bit display pixels: the windows DICOM and NIfTI files carry, the robust
percentile window used when they carry none, square pixels.

:data:`PERCENTILES` is also the window :mod:`braintumor.imaging` gives signed and float arrays, so
that a scan's values are windowed alike whichever way they arrive.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

PERCENTILES = (0.5, 99.5)  # robust window when a file carries none


def window(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if not hi > lo:
        return np.zeros(arr.shape, np.uint8)
    return np.clip((arr - lo) * (255.0 / (hi - lo)), 0, 255).round().astype(np.uint8)


def percentile_window(arr: np.ndarray) -> tuple[float, float]:
    flat = np.asarray(arr, dtype=np.float32).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 0.0
    if flat.size > 2_000_000:  # a regular subsample is plenty for two percentiles
        flat = flat[:: flat.size // 1_000_000]
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


def square_pixels(img: Image.Image, dy: float | None, dx: float | None) -> Image.Image:
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


def gray(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="L")


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return np.asarray(Image.fromarray(np.ascontiguousarray(rgb), "RGB").convert("L"))
    lum = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return window(lum, *percentile_window(lum))
