"""NIfTI: the axial slices of a 3-D NIfTI-1 or NIfTI-2 volume (.nii or .nii.gz) as 8-bit grayscale.

Reoriented to RAS with ``nibabel.as_closest_canonical``; slice ``k`` is the k-th axial slice from
the feet up, shown as a radiology viewer shows it (anterior up, the patient's right on the image's
left). Window: the header's cal_min/cal_max, else 8-bit data as stored, else the percentile window
(:data:`braintumor.medical.window.PERCENTILES`) of the whole volume, so that slices compare.

The header is read first, and only the header is inflated from a .nii.gz before the volume's
declared size is checked: a file of a megabyte can declare gigabytes of zeros, and it is refused
without spending seconds inflating them. No more of a gzip stream is inflated than the header says
the file holds.
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from typing import NamedTuple

import numpy as np
from PIL import Image

from .. import formats, limits
from ..errors import ImageError, UnsupportedImageError
from .quiet import quiet
from .window import gray, percentile_window, square_pixels, window

MAX_VOXELS = 200_000_000  # larger volumes are refused (memory)
MAX_NIFTI_BYTES = 2 << 30  # limit on a decompressed .nii.gz, header included (a gzip bomb stops here)
HEADER_BYTES = 540  # a NIfTI-2 header; a NIfTI-1 header is the first 348 of them

# Bytes per voxel of each NIfTI datatype code, as nibabel reads them (bitpix only for unknown codes).
_DATATYPE_BYTES = {1: 1, 2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4,
                   1024: 8, 1280: 8, 1536: 16, 1792: 16, 2048: 32, 2304: 4}


class DeclaredSize(NamedTuple):
    """What a NIfTI header says the file holds."""

    shape: tuple[int, ...]  # dim[1..dim[0]], trailing axes of 1 left out
    voxels: int
    nbytes: int  # header and extensions (up to vox_offset) plus the voxel data


def declared_size(head: bytes) -> DeclaredSize | None:
    """The size a NIfTI-1 (``n+1``) or NIfTI-2 (``n+2``) header declares, read the way nibabel
    reads it (byte order guessed from dim[0], vox_offset raised to the header's end); None for
    anything else or a header cut short."""
    if len(head) >= 348 and head[344:348] == b"n+1\x00":
        hdr_size, dim_fmt, dim_at, type_at, offset_fmt, offset_at = 348, "8h", 40, 70, "f", 108
    elif len(head) >= 540 and head[4:8] == b"n+2\x00":
        hdr_size, dim_fmt, dim_at, type_at, offset_fmt, offset_at = 540, "8q", 16, 12, "q", 168
    else:
        return None
    native, swapped = ("<", ">") if sys.byteorder == "little" else (">", "<")
    dim0 = struct.unpack_from(native + dim_fmt[1], head, dim_at)[0]
    if dim0 == 0:
        order = swapped if struct.unpack_from(swapped + "i", head, 0)[0] == hdr_size else native
    else:
        order = native if 1 <= dim0 <= 7 else swapped
    dims = struct.unpack_from(order + dim_fmt, head, dim_at)
    datatype, bitpix = struct.unpack_from(order + "2h", head, type_at)
    vox_offset = struct.unpack_from(order + offset_fmt, head, offset_at)[0]
    shape = tuple(max(int(d), 0) for d in dims[1 : 1 + min(max(int(dims[0]), 0), 7)])
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    voxels = math.prod(shape)
    itemsize = _DATATYPE_BYTES.get(int(datatype), max(int(bitpix), 8) // 8)
    offset = max(int(vox_offset) if math.isfinite(vox_offset) else 0, hdr_size + 4)
    return DeclaredSize(shape, voxels, offset + voxels * itemsize)


# Bytes per voxel of reading a volume besides its data: the float32 copy the window is computed on,
# and the 8-bit volume it gives.
WORK_PER_VOXEL = 5


def refuse_oversized(size: DeclaredSize, name: str, gz: bool) -> None:
    """ImageError for a volume over :data:`MAX_VOXELS`, a .nii.gz over :data:`MAX_NIFTI_BYTES`
    once decompressed, or one whose reading needs more memory than the current budget allows
    (:mod:`braintumor.limits`), by its header alone."""
    if size.voxels > MAX_VOXELS:
        raise ImageError(f"{name}: {'x'.join(map(str, size.shape))} voxels is over the "
                         f"{MAX_VOXELS // 1_000_000} million voxel limit")
    if gz and size.nbytes > MAX_NIFTI_BYTES:
        raise ImageError(f"{name}: over {MAX_NIFTI_BYTES >> 30} GiB once decompressed")
    limits.check_memory(size.nbytes + WORK_PER_VOXEL * size.voxels, name,
                        f"the {'x'.join(map(str, size.shape))} volume")


def _inflate(data: bytes, name: str, limit: int) -> bytes:
    """At most ``limit`` bytes of a gzip stream; fewer only where the stream ends."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        raw = d.decompress(data, limit)
    except zlib.error:
        raise ImageError(f"{name}: the gzip stream is damaged") from None
    if len(raw) < limit and not d.eof:
        raise ImageError(f"{name}: the .nii.gz file is truncated")
    return raw


class Nifti:
    """A 3-D NIfTI-1 or NIfTI-2 volume in RAS orientation, windowed to uint8 once."""

    def __init__(self, data: bytes, name: str):
        import nibabel as nib

        self.name = name
        gz = data[:2] == formats.GZIP_MAGIC
        head = _inflate(data, name, HEADER_BYTES) if gz else data[:HEADER_BYTES]
        if head[344:348] == b"ni1\x00":
            raise UnsupportedImageError(f"{name}: a NIfTI header of a .hdr/.img pair; send a single .nii "
                                        "or .nii.gz file")
        if len(head) >= 348 and head[344:348] == b"n+1\x00":
            cls = nib.Nifti1Image
        elif head[4:8] == b"n+2\x00":
            cls = nib.Nifti2Image
        elif len(head) < 348:
            raise ImageError(f"{name}: too short for a NIfTI file (a truncated header)")
        else:
            raise UnsupportedImageError(f"{name}: not a NIfTI file (no NIfTI-1 or NIfTI-2 header), "
                                        "although named like one")
        size = declared_size(head)
        if size is not None:
            refuse_oversized(size, name, gz)
        if not gz:
            raw = data
        elif len(head) < HEADER_BYTES:
            raw = head  # the whole stream
        else:  # no more than the header says the file holds (1 byte more: the stream's end is checked)
            raw = _inflate(data, name, (size.nbytes if size else MAX_NIFTI_BYTES) + 1)
        try:
            with quiet():
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
            with quiet():
                proxy = img.dataobj
                plain = (dtype == np.uint8 and float(getattr(proxy, "slope", 1.0)) == 1.0
                         and float(getattr(proxy, "inter", 0.0)) == 0.0)
                voxels = np.asarray(proxy) if plain else img.get_fdata(dtype=np.float32)
                img = cls(voxels.reshape(shape), img.affine, img.header)
                canon = nib.as_closest_canonical(img)
                self.volume = self._display(np.asarray(canon.dataobj), canon.header, plain)
                self.zooms = tuple(float(z) for z in canon.header.get_zooms()[:3])
        except ImageError:
            raise
        except Exception:
            raise ImageError(f"{name}: the NIfTI voxel data cannot be read; the file is damaged") from None
        self.slices = self.volume.shape[2]

    @staticmethod
    def _display(vol: np.ndarray, hdr, plain: bool) -> np.ndarray:
        """cal_min/cal_max, else 8-bit data as stored (``plain``), else the percentile window."""
        lo, hi = float(hdr["cal_min"]), float(hdr["cal_max"])
        if hi > lo:
            return window(vol.astype(np.float32, copy=False), lo, hi)
        if plain:
            return np.ascontiguousarray(vol, dtype=np.uint8)
        return window(vol, *percentile_window(vol))

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
        return square_pixels(gray(view), self.zooms[1], self.zooms[0], self.name)

    def all_slices(self) -> list[Image.Image]:
        return [self.slice(k) for k in range(self.slices)]
