"""Bounded decoding: every input's work is checked from its header before it is done (pixels,
aspect, memory), after every resize step, and the hostile files that once cost gigabytes (a thin
PNG, a deflated DICOM bomb, a NIfTI at the voxel limit, a large RGBA image) are refused in well
under a second or decoded in a bounded amount of memory. The files are built here."""

from __future__ import annotations

import gzip
import io
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")

from pydicom import uid  # noqa: E402

from braintumor import limits  # noqa: E402
from braintumor.imaging import ImageError, load_image  # noqa: E402
from braintumor.medical.dicom import file_meta  # noqa: E402


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def refused(data, name: str, words: str, budget: limits.Budget = limits.LIBRARY) -> float:
    """Seconds it took ``load_image`` to refuse ``data`` with ``words`` in its message."""
    start = time.perf_counter()
    with limits.budget(budget), pytest.raises(ImageError, match=words):
        load_image(data, name)
    return time.perf_counter() - start


def dicom(pixels: np.ndarray, transfer_syntax=uid.ExplicitVRLittleEndian, spacing=None, **kw) -> bytes:
    from test_medical import dicom_bytes

    return dicom_bytes(pixels, transfer_syntax=transfer_syntax, spacing=spacing, **kw)


def deflate_bomb(head: bytes, mib: int) -> bytes:
    """``head`` then ``mib`` MiB of zeros as one raw deflate stream, built in milliseconds (after a
    full flush, a deflated MiB of zeros is the same bytes every time)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return first + block * mib + c.flush()


# ---------------------------------------------------------------------------------- 2-D images


def test_a_thin_png_is_refused_from_its_header():
    thin = png(Image.new("L", (1, 80_000)))
    assert len(thin) < 1000
    assert refused(thin, "thin.png", r"^thin\.png: the image is 1x80000 pixels, one side over 20 times") < 0.5
    wide = png(Image.new("L", (80_000, 2)))
    assert refused(wide, "wide.png", "one side over 20 times") < 0.5
    # as an array or a PIL image too: the library's every entry point
    assert refused(np.zeros((5, 200), np.uint8), "a", "over 20 times") < 0.5
    assert load_image(np.zeros((10, 200), np.uint8)).size == (200, 10)  # 20:1 is still a slice


def test_the_service_budget_refuses_what_the_library_reads():
    big = png(Image.new("L", (5000, 4000)))  # 20 megapixels of zeros: 20 KB
    assert load_image(big, "big.png").size == (5000, 4000)
    assert refused(big, "big.png", "over the 16 megapixel limit", limits.SERVICE) < 0.5
    # the memory a decoded image needs, not only its pixels: 16-bit RGBA is 8 bytes a pixel
    rgba16 = np.zeros((3000, 4000, 4), np.uint16)
    assert refused(rgba16, "a", r"would need about .* MB of memory",
                   limits.Budget(pixels=16_000_000, aspect=20, memory=128 << 20)) < 0.5


def test_large_colour_images_are_converted_a_strip_at_a_time():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (1500, 2000, 4), dtype=np.uint8)
    tracemalloc.start()
    try:
        gray = np.asarray(load_image(rgba))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # a float64 copy of the whole image would be 72 MB, its RGB part 72 MB more
    assert peak < 24 << 20, f"{peak / 2**20:.0f} MB"
    lum = (rgba[..., :3].astype(np.float64) * (rgba[..., 3:] / 255.0)) @ [0.299, 0.587, 0.114]
    assert np.abs(gray.astype(int) - np.clip(lum.round(), 0, 255)).max() <= 1


def test_heat_maps_of_thin_images_resample_only_what_lies_on_the_image():
    """With fit="pad" the network's square is the longer side squared: 4000 x 4000 floats for a
    200 x 4000 image, of which only a twentieth is on it."""
    from braintumor.inference.cam import heatmap_on_image
    from braintumor.inference.preprocess import Preprocessing

    heat = np.random.default_rng(1).random((224, 224)).astype(np.float32)
    pad = Preprocessing(img_size=224, fit="pad")
    tracemalloc.start()
    try:
        out = heatmap_on_image(heat, (200, 4000), pad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (4000, 200) and out.max() > 0
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MB"  # the whole square: 64 MB


def test_a_thin_image_within_the_limits_is_answered_by_crop_and_pad_models(predictor):
    """At the aspect limit a crop model scales the shorter side to the input: 20 times the input's
    area, no more."""
    from braintumor.inference.preprocess import Preprocessing, prepare

    img = Image.fromarray(np.random.default_rng(2).integers(0, 255, (40, 800), np.uint8))
    for fit in ("crop", "pad"):
        assert prepare(img, 224, fit).shape == (224, 224)
        assert Preprocessing(img_size=224, fit=fit).input_window(img.size)[2] > 0
    r = predictor.explain(img)
    assert r["heatmap"].shape == (40, 800) and r["overlay"].size[0] <= 1024


# --------------------------------------------------------------------------------------- DICOM


def test_a_deflated_dicom_bomb_is_refused_before_it_is_inflated():
    legit = dicom(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64), uid.DeflatedExplicitVRLittleEndian)
    ts, start = file_meta(legit, 132)
    assert ts == uid.DeflatedExplicitVRLittleEndian
    assert np.asarray(load_image(legit, "ok.dcm")).shape == (64, 64)  # a real deflated file still reads
    bomb = legit[:start] + deflate_bomb(b"", 1024)  # 1 GiB once inflated
    assert len(bomb) < 2 << 20
    assert refused(bomb, "bomb.dcm", r"^bomb\.dcm: the deflated DICOM data set is over 256 MB once inflated",
                   limits.SERVICE) < 2.0
    # a huge element declared inside the deflated data set: the same count stops it
    element = b"\xe0\x7f\x10\x00OB\x00\x00" + (0x7FFFFFF0).to_bytes(4, "little")
    huge = legit[:start] + deflate_bomb(element, 512)
    assert refused(huge, "upload", "over 256 MB once inflated", limits.SERVICE) < 2.0


def test_a_dicom_frame_is_decoded_only_within_the_budget():
    frame = np.zeros((600, 800), np.uint8)
    small = limits.Budget(pixels=400_000, aspect=20, memory=256 << 20)
    assert refused(dicom(frame), "f.dcm", r"the DICOM frame is 800x600 pixels, over the 0\.4 megapixel", small) < 1
    thin = dicom(np.zeros((2, 400), np.uint8))
    assert refused(thin, "thin.dcm", "one side over 20 times") < 1
    # rows x columns are what the header says, whatever the (encapsulated) bytes would expand to
    rle = dicom(np.zeros((8, 8), np.uint16), uid.RLELossless, encoded=[b"\0" * 64],
                fields={"Rows": 60000, "Columns": 60000})
    assert refused(rle, "rle.dcm", "60000x60000 pixels, over the 50 megapixel limit") < 1


def test_pixels_made_square_are_checked_before_resampling():
    frame = np.zeros((800, 800), np.uint8)
    data = dicom(frame, spacing=(2.0, 1.0))  # rows twice as far apart: 800 x 1600 once square
    assert load_image(data, "s.dcm").size == (800, 1600)
    budget = limits.Budget(pixels=1_000_000, aspect=20, memory=256 << 20)
    assert refused(data, "s.dcm", "at its pixel spacing is 800x1600 pixels", budget) < 1


# --------------------------------------------------------------------------------------- NIfTI


def test_a_nifti_over_the_service_memory_is_refused_from_its_header():
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((512, 512, 400))
    hdr.set_data_dtype(np.int16)
    hdr["vox_offset"], hdr["magic"] = 352, b"n+1"
    small = gzip.compress(hdr.binaryblock + b"\0" * 4 + b"\0" * 64)
    # 100 million voxels: within the library's limits, over what one upload may cost the service
    words = r"512x512x400 volume would need about 700 MB of memory, over the 256 MB one input may use"
    assert refused(small, "v.nii.gz", words, limits.SERVICE) < 0.5
    assert refused(small, "v.nii.gz", "truncated") < 2  # the library reads on, and finds the file short
