"""How much work one input may cost, checked from its header before the work is done.

A few bytes can describe an enormous image: a 748-byte PNG of 1 x 80,000 pixels becomes 224 x 17.9
million pixels when its shorter side is scaled to the network's input, a deflated DICOM of 500 KB
inflates to a gigabyte, a NIfTI header can declare a volume of any size. Every reader therefore
asks the current :class:`Budget` before it decodes, inflates or resizes:

* ``pixels``: the most pixels a 2-D image may have, as decoded and after every resize step
  (non-square DICOM pixels made square, a NIfTI slice shown at its voxel spacing);
* ``aspect``: the most one side may exceed the other, so that scaling an image to the network's
  square input (the longer side for ``fit="pad"``, the shorter for ``fit="crop"``) stays small;
* ``memory``: the bytes that decoding one input may need, estimated from its header (the decoded
  raster and its grey copies; a DICOM data set once inflated and the frame once decoded; a NIfTI
  volume's voxels and their float copies).

The library and the command line read under :data:`LIBRARY` (files a person chose). The web service
reads each request's upload under :data:`SERVICE`, a tighter budget (``with limits.budget(SERVICE):``),
so that no single request can take the host's memory. The budget lives in a context variable: each
request thread sees its own.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

from .errors import MAX_PIXELS, ImageError

MIB = 1 << 20


@dataclass(frozen=True)
class Budget:
    """Limits on the work of one input (see the module's description)."""

    pixels: int
    aspect: float
    memory: int  # bytes

    def describe(self) -> dict:
        return {"max_pixels": self.pixels, "max_aspect": self.aspect, "max_decode_bytes": self.memory}


LIBRARY = Budget(pixels=MAX_PIXELS, aspect=20.0, memory=2048 * MIB)
SERVICE = Budget(pixels=16_000_000, aspect=20.0, memory=256 * MIB)

# Bytes of working memory per pixel of a decoded 2-D image besides its raster: the 8-bit grey copy,
# and the float32 heat map over the whole image with its resampled piece (explain).
GRAY_WORK_PER_PIXEL = 10

_current: ContextVar[Budget] = ContextVar("braintumor_budget", default=LIBRARY)


def current() -> Budget:
    """The budget the calling thread reads under."""
    return _current.get()


@contextmanager
def budget(b: Budget) -> Iterator[Budget]:
    """Read under ``b`` inside the ``with`` block (in this thread or task only)."""
    token = _current.set(b)
    try:
        yield b
    finally:
        _current.reset(token)


def megapixels(n: int) -> str:
    return f"{n / 1_000_000:g} megapixel"


def in_mib(n: int) -> str:
    return f"{n / MIB:,.0f} MB"


def check_image(width: int, height: int, name: str, bytes_per_pixel: float = 1.0,
                what: str = "the image") -> None:
    """ImageError unless a ``width`` x ``height`` image of ``bytes_per_pixel`` (as decoded) fits
    the current budget: its pixels, its aspect and the memory its decoding needs."""
    b = current()
    w, h = int(width), int(height)
    if w < 1 or h < 1:
        raise ImageError(f"{name}: {what} is empty ({w}x{h} pixels)")
    if w * h > b.pixels:
        raise ImageError(f"{name}: {what} is {w}x{h} pixels, over the {megapixels(b.pixels)} limit "
                         "(a possible decompression bomb); send a smaller image")
    if max(w, h) > b.aspect * min(w, h):
        raise ImageError(f"{name}: {what} is {w}x{h} pixels, one side over {b.aspect:g} times the "
                         "other; an MRI slice is not so thin (crop it to the slice)")
    check_memory(w * h * (bytes_per_pixel + GRAY_WORK_PER_PIXEL), name, what)


def check_memory(nbytes: float, name: str, what: str = "the file") -> None:
    """ImageError when decoding would need more than the current budget's memory."""
    limit = current().memory
    if nbytes > limit:
        raise ImageError(f"{name}: decoding {what} would need about {in_mib(int(nbytes))} of memory, "
                         f"over the {in_mib(limit)} one input may use; send a smaller file")


__all__ = ["Budget", "LIBRARY", "SERVICE", "current", "budget", "check_image", "check_memory"]
