"""DICOM and NIfTI input: pixels, orientation, slices, bad files, and no patient data let out.

Every file here is built in the test from the shipped sample scans with pydicom and nibabel."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")

from pydicom import uid  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402

from braintumor import medical  # noqa: E402
from braintumor.inference import volume  # noqa: E402
from braintumor.imaging import ImageError, UnsupportedImageError, load_image  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
MARKER = "ZQXPRIVATE7731"
IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "AccessionNumber",
               "StudyDate", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
               "ReferringPhysicianName")
ONE_PER_CLASS = ("glioma/Tr-gl_0255.jpg", "meningioma/Tr-me_0820.jpg", "notumor/Tr-no_0781.jpg",
                 "pituitary/Tr-pi_1122.jpg")


# ------------------------------------------------------------------------------------ builders


def scan(sample_dir: Path, rel: str) -> np.ndarray:
    """A sample scan as the (224, 224) uint8 pixels any reader gives for its PNG."""
    return np.asarray(load_image(sample_dir / rel))


def dicom_bytes(pixels: np.ndarray, *, photometric: str = "MONOCHROME2", slope=None, intercept=None,
                window=None, preamble: bool = True, fields: dict | None = None,
                transfer_syntax=uid.ExplicitVRLittleEndian, encoded: list[bytes] | None = None,
                spacing=None, extra=None) -> bytes:
    """A DICOM MR file; ``pixels`` is (H, W), (frames, H, W) or (H, W, 3) for RGB; ``encoded``
    holds compressed frames (encapsulated). The marker is not a valid UID or date: build quietly."""
    with pydicom.config.disable_value_validation():
        return _dicom_bytes(pixels, photometric=photometric, slope=slope, intercept=intercept,
                            window=window, preamble=preamble, fields=fields,
                            transfer_syntax=transfer_syntax, encoded=encoded, spacing=spacing, extra=extra)


def _dicom_bytes(pixels, *, photometric, slope, intercept, window, preamble, fields, transfer_syntax,
                 encoded, spacing, extra) -> bytes:
    arr = np.asarray(pixels)
    rgb = photometric == "RGB"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = uid.MRImageStorage
    meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = uid.MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    frames = arr.shape[0] if arr.ndim == 3 and not rgb else 1
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = arr.shape[:2] if rgb else arr.shape[-2:]
    ds.SamplesPerPixel = 3 if rgb else 1
    if rgb:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if spacing is not None:
        ds.PixelSpacing = list(spacing)
    for keyword, value in (fields or {}).items():
        setattr(ds, keyword, value)
    if extra:
        extra(ds)
    if encoded is not None:
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
    elif arr.size:
        ds.PixelData = arr.tobytes()
    buf = io.BytesIO()
    if preamble:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    else:  # a raw data set: no preamble, no file meta group
        del ds.file_meta
        pydicom.dcmwrite(buf, ds, implicit_vr=False, little_endian=True)
    return buf.getvalue()


def nifti_bytes(volume: np.ndarray, affine=None, gz: bool = False, header_setup=None) -> bytes:
    img = nib.Nifti1Image(volume, np.eye(4) if affine is None else affine)
    if header_setup:
        header_setup(img.header)
    raw = img.to_bytes()
    return gzip.compress(raw) if gz else raw


def ras_voxels(pixels: np.ndarray) -> np.ndarray:
    """The RAS voxel plane [x, y] that a radiology viewer shows as ``pixels`` (rows, columns)."""
    return pixels[::-1, ::-1].T


def arr(img: Image.Image) -> np.ndarray:
    assert img.mode == "L"
    return np.asarray(img)


@pytest.fixture(scope="module")
def three(sample_dir) -> list[np.ndarray]:
    return [scan(sample_dir, r) for r in ONE_PER_CLASS[:3]]


# ------------------------------------------------------------------------------------ DICOM


@pytest.mark.parametrize("preamble", [True, False], ids=["file", "raw-dataset"])
def test_dicom_pixels_equal_the_png(sample_dir, tmp_path, preamble):
    pixels = scan(sample_dir, ONE_PER_CLASS[0])
    data = dicom_bytes(pixels, preamble=preamble)
    assert (data[128:132] == b"DICM") is preamble
    png = tmp_path / "scan.png"
    Image.fromarray(pixels).save(png)
    dcm = tmp_path / ("scan.dcm" if preamble else "IM0001")
    dcm.write_bytes(data)
    assert medical.looks_medical(data, dcm.name)
    assert np.array_equal(arr(load_image(dcm)), arr(load_image(png)))
    assert np.array_equal(arr(load_image(data)), pixels)  # bytes without a name


def test_dicom_label_equals_png_label(predictor, sample_dir, tmp_path):
    for rel in ONE_PER_CLASS:
        pixels = scan(sample_dir, rel)
        png, dcm = tmp_path / "s.png", tmp_path / "s.dcm"
        Image.fromarray(pixels).save(png)
        dcm.write_bytes(dicom_bytes(pixels))
        a, b = predictor.predict(dcm), predictor.predict(png)
        assert a["label"] == b["label"]
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)
        c = predictor.predict(dcm.read_bytes())  # bytes, no name: recognised by content
        assert c["label"] == b["label"]


def test_monochrome1_is_inverted(sample_dir):
    pixels = scan(sample_dir, ONE_PER_CLASS[1])
    img = load_image(dicom_bytes(255 - pixels, photometric="MONOCHROME1"), "m1.dcm")
    assert np.array_equal(arr(img), pixels)


def test_16bit_rescale_and_window_from_the_file(sample_dir):
    pixels = scan(sample_dir, ONE_PER_CLASS[2])
    stored = pixels.astype(np.uint16) * 10 + 1000  # stored values; slope/intercept give 5 * pixels
    # DICOM linear window with centre 638 and width 1276 maps 5 * p exactly back to p
    one = dicom_bytes(stored, slope=0.5, intercept=-500, window=(638, 1276))
    assert np.array_equal(arr(load_image(one, "w.dcm")), pixels)
    several = dicom_bytes(stored, slope=0.5, intercept=-500, window=([638, 40], [1276, 80]))
    assert np.array_equal(arr(load_image(several, "w.dcm")), pixels)  # the first window is used
    signed = dicom_bytes((pixels.astype(np.int16) - 128) * 4, slope=0.25, intercept=128, window=(128, 256))
    assert np.abs(arr(load_image(signed, "s.dcm")).astype(int) - pixels).max() <= 1


def test_16bit_without_window_uses_a_percentile_window(sample_dir):
    pixels = scan(sample_dir, ONE_PER_CLASS[2])
    stored = pixels.astype(np.uint16) * 12 + 300
    got = arr(load_image(dicom_bytes(stored, slope=2.0, intercept=-100), "p.dcm")).astype(int)
    values = stored * 2.0 - 100
    lo, hi = np.percentile(values, [0.5, 99.5])
    want = np.clip(np.round((values - lo) * 255 / (hi - lo)), 0, 255)
    assert np.abs(got - want).max() <= 1
    assert got.min() == 0 and got.max() == 255


def test_multiframe_dicom(sample_dir, three):
    stack = np.stack(three)
    data = dicom_bytes(stack)
    assert np.array_equal(arr(load_image(data, "mf.dcm")), three[1])  # the middle frame
    for i in range(3):
        assert np.array_equal(arr(load_image(data, "mf.dcm", slice_index=i)), three[i])
    assert [arr(im).tobytes() for im in medical.read_volume(data, "mf.dcm")] == [p.tobytes() for p in three]
    assert medical.count_slices(data, "mf.dcm") == 3
    with pytest.raises(ImageError, match=r"mf\.dcm: slice 3 is out of range; the file has 3 frames"):
        load_image(data, "mf.dcm", slice_index=3)


def test_enhanced_multiframe_uses_functional_groups(three):
    stored = np.stack(three).astype(np.uint16) * 10 + 1000

    def groups(ds):
        item = Dataset()
        pvt, voi = Dataset(), Dataset()
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = 0.5, -500, "US"
        voi.WindowCenter, voi.WindowWidth = 638, 1276
        item.PixelValueTransformationSequence = [pvt]
        item.FrameVOILUTSequence = [voi]
        ds.SharedFunctionalGroupsSequence = [item]

    data = dicom_bytes(stored, extra=groups)
    assert np.array_equal(arr(load_image(data, "e.dcm", slice_index=2)), three[2])


def test_rgb_dicom_becomes_luminance(sample_dir):
    rgb = np.asarray(Image.open(sample_dir / "glioma/Tr-gl_0118.jpg").convert("RGB"))
    img = load_image(dicom_bytes(rgb, photometric="RGB"), "rgb.dcm")
    assert np.array_equal(arr(img), np.asarray(Image.fromarray(rgb).convert("L")))


def test_non_square_pixels_are_made_square(three):
    img = load_image(dicom_bytes(three[0], spacing=(1.0, 0.5)), "a.dcm")  # rows 1 mm apart
    assert img.size == (224, 448)


def _encode(pixels: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **kw)
    return buf.getvalue()


def _decodable(ts) -> bool:
    from pydicom.pixels import get_decoder

    return get_decoder(ts).is_available


@pytest.mark.parametrize("name", ["JPEGBaseline8Bit", "JPEG2000Lossless", "JPEG2000Lossless-16bit",
                                  "RLELossless"])
def test_compressed_dicom(three, name):
    ts = getattr(uid, name.split("-")[0])
    if not _decodable(ts):
        pytest.skip(f"no pydicom decoder for {name} here")
    pixels = three[0]
    if name == "RLELossless":
        ds = pydicom.dcmread(io.BytesIO(dicom_bytes(pixels)))
        ds.compress(uid.RLELossless)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        data, want = buf.getvalue(), pixels
    elif name == "JPEG2000Lossless-16bit":  # MR is 12 to 16 bits; window as in the 16-bit test
        stored = pixels.astype(np.uint16) * 10 + 1000
        code = _encode(stored, "JPEG2000", irreversible=False, no_jp2=True)
        data = dicom_bytes(stored, transfer_syntax=ts, encoded=[code], slope=0.5, intercept=-500,
                           window=(638, 1276))
        want = pixels
    elif name == "JPEG2000Lossless":
        data = dicom_bytes(pixels, transfer_syntax=ts,
                           encoded=[_encode(pixels, "JPEG2000", irreversible=False, no_jp2=True)])
        want = pixels
    else:
        jpeg = _encode(pixels, "JPEG", quality=90)
        data = dicom_bytes(pixels, transfer_syntax=ts, encoded=[jpeg])
        want = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"))
    assert np.array_equal(arr(load_image(data, "c.dcm")), want)


def test_unsupported_compression_is_a_clear_error(three):
    if _decodable(uid.JPEGLosslessSV1):
        pytest.skip("a JPEG Lossless decoder is installed here")
    data = dicom_bytes(three[0], transfer_syntax=uid.JPEGLosslessSV1, encoded=[b"\xff\xd8" + b"\0" * 64])
    with pytest.raises(UnsupportedImageError) as e:
        load_image(data, "ct.dcm")
    msg = str(e.value)
    assert msg.startswith("ct.dcm: the DICOM pixel data is compressed as JPEG Lossless")
    assert "cannot decode" in msg and "python-gdcm" in msg and "\n" not in msg
    assert e.value.status == 415


def test_bad_dicom_files(three, sample_dir):
    good = dicom_bytes(three[0])
    no_pixels = dicom_bytes(np.zeros((0, 0), np.uint8))
    no_image = r"^report\.dcm: the DICOM file holds no image \(no pixel data\)"
    with pytest.raises(UnsupportedImageError, match=no_image):
        load_image(no_pixels, "report.dcm")
    with pytest.raises(ImageError, match=r"^cut\.dcm: the DICOM pixel data cannot be decoded; the file is "
                                         r"damaged or truncated"):
        load_image(good[: len(good) - 5000], "cut.dcm")
    with pytest.raises(ImageError, match=r"^head\.dcm: .*(truncated|damaged)"):
        load_image(good[:300], "head.dcm")
    with pytest.raises(UnsupportedImageError, match=r"^notes\.dcm: not a DICOM file"):
        load_image(b"Patient notes, not an image\n" * 20, "notes.dcm")
    # a file that lies about its extension is read by its content
    assert np.array_equal(arr(load_image(good, "scan.jpg")), three[0])
    png = io.BytesIO()
    Image.fromarray(three[1]).save(png, "PNG")
    assert np.array_equal(arr(load_image(png.getvalue(), "scan.dcm")), three[1])
    with pytest.raises(ImageError, match=r"^one\.dcm: slice 1 is out of range; the file has 1 frame$"):
        load_image(good, "one.dcm", slice_index=1)


# ------------------------------------------------------------------------------------ NIfTI


@pytest.mark.parametrize("gz", [False, True], ids=["nii", "nii.gz"])
def test_nifti_slices_equal_the_pngs(three, gz):
    data = nifti_bytes(np.stack([ras_voxels(p) for p in three], axis=2), gz=gz)
    name = "brain.nii.gz" if gz else "brain.nii"
    assert medical.looks_medical(data, name) and medical.looks_medical(data, "upload")
    assert np.array_equal(arr(load_image(data, name)), three[1])  # the middle slice by default
    for k in range(3):
        assert np.array_equal(arr(load_image(data, name, slice_index=k)), three[k])
    assert [arr(im).tobytes() for im in medical.read_volume(data, name)] == [p.tobytes() for p in three]
    out_of_range = r"slice 3 is out of range; the volume has 3 axial slices \(0 to 2\)$"
    with pytest.raises(ImageError, match=out_of_range):
        load_image(data, name, slice_index=3)


def test_nifti_is_shown_in_radiological_orientation():
    # RAS voxels: x grows to the patient's right, y to the front, z to the head
    vol = np.zeros((40, 30, 5), np.uint8)
    vol[30:, 20:, :] = 200  # right and anterior
    vol[:5, :5, 4] = 100  # left and posterior, in the top slice only
    img = arr(load_image(nifti_bytes(vol), "o.nii", slice_index=4))
    assert img.shape == (30, 40)  # rows: anterior to posterior; columns: right to left
    assert (img[:10, :10] == 200).all() and (img[10:, :] != 200).all()  # front-right: top-left
    assert (img[-5:, -5:] == 100).all()  # back-left: bottom-right
    assert (arr(load_image(nifti_bytes(vol), "o.nii", slice_index=0))[-5:, -5:] == 0).all()  # feet first


@pytest.mark.parametrize("axcodes", [("L", "P", "S"), ("L", "A", "S"), ("R", "A", "I"), ("P", "S", "R"),
                                     ("S", "L", "A")])
def test_nifti_orientation_does_not_depend_on_storage(three, axcodes):
    from nibabel.orientations import axcodes2ornt, ornt_transform

    ras = nib.Nifti1Image(np.stack([ras_voxels(p) for p in three], axis=2), np.diag([0.9, 0.9, 0.9, 1]))
    stored = ras.as_reoriented(ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(axcodes)))
    assert nib.aff2axcodes(stored.affine) == axcodes
    data = stored.to_bytes()
    for k in range(3):
        assert np.array_equal(arr(load_image(data, "o.nii", slice_index=k)), three[k])


def test_nifti_float_volume_one_window_for_all_slices(three):
    vol = np.stack([ras_voxels(p) for p in three], axis=2).astype(np.float32) * 3.5 - 40
    data = nifti_bytes(vol)
    slices = [arr(im) for im in medical.read_volume(data, "f.nii")]
    lo, hi = np.percentile(vol, [0.5, 99.5])
    for k, p in enumerate(three):
        want = np.clip(np.round((p * 3.5 - 40 - lo) * 255 / (hi - lo)), 0, 255)
        assert np.abs(slices[k].astype(int) - want).max() <= 1
        assert np.array_equal(arr(load_image(data, "f.nii", slice_index=k)), slices[k])
    # integer voxels with scl_slope/scl_inter: the window is over the scaled values
    for dtype, slope, inter in ((np.int16, 0.5, 3.0), (np.uint8, 2.0, 0.0)):
        stored = np.stack([ras_voxels(p) for p in three], axis=2).astype(dtype)
        img = nib.Nifti1Image(stored, np.eye(4))
        img.header.set_slope_inter(slope, inter)
        real = three[2] * slope + inter
        lo, hi = np.percentile(stored * slope + inter, [0.5, 99.5])
        want = np.clip(np.round((real - lo) * 255 / (hi - lo)), 0, 255)
        got = arr(load_image(img.to_bytes(), "s.nii", slice_index=2)).astype(int)
        assert np.abs(got - want).max() <= 1, dtype
    # the header's display range wins over the percentiles
    def display_range(h):
        h["cal_min"], h["cal_max"] = -40, 852.5

    shown = nifti_bytes(vol, header_setup=display_range)
    assert np.abs(arr(load_image(shown, "c.nii", slice_index=0)).astype(int) - three[0]).max() <= 1


def test_nifti_non_square_voxels(three):
    vol = np.stack([ras_voxels(p) for p in three], axis=2)
    img = load_image(nifti_bytes(vol, affine=np.diag([1.0, 2.0, 3.0, 1.0])), "a.nii")
    assert img.size == (224, 448)  # y voxels are 2 mm: twice the rows


def test_bad_nifti_files(three):
    vol = np.stack([ras_voxels(p) for p in three], axis=2)
    with pytest.raises(UnsupportedImageError, match=r"^flat\.nii: a 2-D NIfTI image \(224x224\)"):
        load_image(nifti_bytes(three[0]), "flat.nii")
    with pytest.raises(UnsupportedImageError, match=r"^one\.nii: a 2-D NIfTI image \(224x224x1\)"):
        load_image(nifti_bytes(vol[:, :, :1]), "one.nii")
    with pytest.raises(UnsupportedImageError, match=r"^fmri\.nii\.gz: a 4-D NIfTI \(224x224x3x2"):
        load_image(nifti_bytes(np.stack([vol, vol], axis=3), gz=True), "fmri.nii.gz")
    ok = load_image(nifti_bytes(vol[..., None]), "t1.nii")  # a trailing axis of 1 is still 3-D
    assert np.array_equal(arr(ok), three[1])
    data = nifti_bytes(vol)
    with pytest.raises(ImageError, match=r"^cut\.nii: the NIfTI file is truncated"):
        load_image(data[: len(data) // 2], "cut.nii")
    with pytest.raises(ImageError, match=r"^cut\.nii\.gz: the \.nii\.gz file is truncated"):
        load_image(gzip.compress(data)[:4000], "cut.nii.gz")
    with pytest.raises(UnsupportedImageError, match=r"^fake\.nii: not a NIfTI file"):
        load_image(b"#!/bin/sh\necho not a volume\n" * 30, "fake.nii")
    assert np.array_equal(arr(load_image(data, "volume.png", slice_index=0)), three[0])  # content wins


def nifti_header(shape: tuple[int, ...], dtype=np.uint8, nifti2: bool = False,
                 endianness: str = "<") -> bytes:
    """A single-file NIfTI header declaring ``shape`` voxels of ``dtype``, with the 4-byte extension
    flag: what comes before the voxel data."""
    hdr = (nib.Nifti2Header if nifti2 else nib.Nifti1Header)(endianness=endianness)
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr["vox_offset"] = 544 if nifti2 else 352
    hdr["magic"] = b"n+2" if nifti2 else b"n+1"
    return hdr.binaryblock + b"\0" * 4


def gzip_bomb(head: bytes, zeros: int) -> bytes:
    """``head`` followed by ``zeros`` zero bytes as a gzip stream, built in milliseconds: deflate
    blocks of one MiB of zeros are the same bytes every time after a full flush, so one is repeated.
    The stream's 8-byte trailer (a CRC over every byte) is left out; nothing past the header should
    be inflated anyway."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    mib = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return b"\x1f\x8b\x08\x00\0\0\0\0\x02\xff" + first + mib * (zeros >> 20) + c.flush()


def timed_refusal(data: bytes, name: str, message: str) -> float:
    start = time.perf_counter()
    with pytest.raises(ImageError, match=message):
        load_image(data, name)
    return time.perf_counter() - start


@pytest.mark.parametrize("nifti2", [False, True], ids=["nifti1", "nifti2"])
def test_an_oversized_nifti_is_refused_from_its_header(nifti2):
    huge = nifti_header((4096, 4096, 256), nifti2=nifti2)
    limit = r"4096x4096x256 voxels is over the 200 million voxel limit$"
    # a header declaring 4 G voxels and a few bytes of data: plain and gzipped
    assert timed_refusal(huge + b"\0" * 64, "huge.nii", r"^huge\.nii: " + limit) < 1.0
    small = gzip.compress(huge + b"\0" * 64)
    assert len(small) < 1000
    assert timed_refusal(small, "huge.nii.gz", r"^huge\.nii\.gz: " + limit) < 1.0
    # the same header before 1 GiB of zeros: 1 MB on disk, seconds of work to inflate
    bomb = gzip_bomb(huge, 1 << 30)
    assert len(bomb) < 2 << 20
    assert timed_refusal(bomb, "bomb.nii.gz", r"^bomb\.nii\.gz: " + limit) < 1.0
    assert timed_refusal(bomb, "upload", r"^upload: " + limit) < 1.0  # recognised by content
    # under the voxel limit, but over 2 GiB of voxel data once decompressed
    wide = nifti_header((1024, 1024, 160), np.complex128, nifti2=nifti2)
    assert timed_refusal(gzip.compress(wide + b"\0" * 64), "wide.nii.gz",
                         r"^wide\.nii\.gz: over 2 GiB once decompressed$") < 1.0


def test_a_big_endian_header_is_sized_too():
    block = nifti_header((4096, 4096, 256), endianness=">")
    assert struct.unpack(">i", block[:4])[0] == 348
    assert timed_refusal(gzip.compress(block + b"\0" * 64), "be.nii.gz",
                         r"^be\.nii\.gz: 4096x4096x256 voxels is over the 200 million voxel limit$") < 1.0


def test_a_normal_volume_still_reads_with_its_header_checked_first(three):
    vol = np.stack([ras_voxels(p) for p in three], axis=2)
    for gz in (False, True):
        data = nifti_bytes(vol, gz=gz)
        slices = medical.read_volume(data, "v.nii.gz" if gz else "v.nii")
        assert [arr(im).tobytes() for im in slices] == [p.tobytes() for p in three]
    # bytes after the voxel data are not inflated: this stream has no end, and reading on past the
    # voxel data would find it truncated
    raw = nifti_bytes(vol)
    extra = gzip_bomb(raw, 64 << 20)
    assert np.array_equal(arr(load_image(extra, "extra.nii.gz", slice_index=2)), three[2])
    # a NIfTI-2 volume
    img = nib.Nifti2Image(vol, np.eye(4))
    for data in (img.to_bytes(), gzip.compress(img.to_bytes())):
        assert np.array_equal(arr(load_image(data, "v2.nii", slice_index=0)), three[0])


# ------------------------------------------------------------------------------------ volumes


def test_predict_volume_per_slice_and_summary(predictor, three):
    vol = np.stack([np.zeros((224, 224), np.uint8)] + [ras_voxels(p) for p in three], axis=2)
    data = nifti_bytes(vol, gz=True)
    out = volume.predict_volume(predictor, data, "brain.nii.gz")
    assert out["file"] == "brain.nii.gz" and out["n_slices"] == 4
    assert [s["index"] for s in out["slices"]] == [0, 1, 2, 3]
    assert out["blank"] == [0]
    for s, p in zip(out["slices"][1:], three):
        alone = predictor.predict(Image.fromarray(p))
        assert s["label"] == alone["label"]
        assert s["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-6)
    assert list(out["summary"]) == list(predictor.classes)
    listed = sorted(i for ix in out["summary"].values() for i in ix)
    assert listed == [1, 2, 3]
    for label, ix in out["summary"].items():
        assert all(out["slices"][i]["label"] == label for i in ix)
    json.dumps(out)  # plain JSON

    frames = volume.predict_volume(predictor, dicom_bytes(np.stack(three)), "mf.dcm")
    assert [s["label"] for s in frames["slices"]] == [s["label"] for s in out["slices"][1:]]


def test_predict_volume_with_a_plain_predict_object(three):
    class Threshold:  # anything with predict(image)
        def predict(self, image):
            bright = float(np.asarray(image).mean()) > 40
            label = "glioma" if bright else "notumor"
            return {"label": label, "confidence": 1.0, "probabilities": {"glioma": float(bright),
                                                                        "notumor": float(not bright)}}

    vol = np.stack([ras_voxels(p) for p in three] + [np.full((224, 224), 10, np.uint8)], axis=2)
    out = volume.predict_volume(Threshold(), nifti_bytes(vol))
    means = [p.mean() > 40 for p in three]
    assert out["summary"]["glioma"] == [i for i, b in enumerate(means) if b]
    assert out["blank"] == [3] and 3 not in out["summary"].get("notumor", [])
    assert volume._ranges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"


# ------------------------------------------------------------------------------------ privacy


def identified_dicom(pixels: np.ndarray, with_pixels: bool = True, preamble: bool = True) -> bytes:
    """A DICOM whose identifying fields (file meta included, as in real files) hold the marker."""
    fields = {k: MARKER for k in IDENTIFYING}
    fields["StudyDescription"] = f"brain of {MARKER}"

    def meta(ds):
        ds.file_meta.MediaStorageSOPInstanceUID = MARKER

    return dicom_bytes(pixels if with_pixels else np.zeros((0, 0), np.uint8), fields=fields,
                       preamble=preamble, extra=meta)


def assert_clean(blob: bytes | str, where: str) -> None:
    """No form of the marker in ``blob``, nor in the images it carries as base64 data URLs."""
    import base64
    import re

    if isinstance(blob, str):
        blob = blob.encode("utf-8", "surrogateescape")
    for form in (MARKER.encode(), MARKER.encode("utf-16-le"), MARKER.lower().encode()):
        assert form not in blob, f"patient data in {where}"
    for b64 in re.findall(rb"base64,([A-Za-z0-9+/=]+)", blob):
        assert_clean(base64.b64decode(b64), f"an image in {where}")


def test_marker_file_really_holds_the_marker(three):
    data = identified_dicom(three[0])
    assert data.count(MARKER.encode()) >= len(IDENTIFYING)
    with pydicom.config.disable_value_validation():
        ds = pydicom.dcmread(io.BytesIO(data))
        assert str(ds.PatientName) == MARKER and ds.StudyInstanceUID == MARKER


def test_no_patient_data_from_the_python_api(predictor, three, tmp_path, caplog, recwarn):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "identified.dcm"
    path.write_bytes(identified_dicom(three[0]))
    raw = identified_dicom(three[1], preamble=False)
    blobs = [repr(predictor.predict(raw)), load_image(raw).tobytes()]
    r = predictor.predict(path)
    e = predictor.explain(path.read_bytes())
    blobs += [repr(r), repr({k: v for k, v in e.items() if k not in ("overlay", "heatmap")})]
    buf = io.BytesIO()
    e["overlay"].save(buf, "PNG")
    blobs += [buf.getvalue(), e["heatmap"].tobytes(), repr(e["overlay"].info)]
    img = load_image(path)
    blobs += [repr(img.info), img.tobytes()]
    blobs.append(json.dumps(volume.predict_volume(predictor, path)))
    with pytest.raises(ImageError) as err:  # an error names the file, nothing from inside it
        load_image(identified_dicom(three[0], with_pixels=False), "no-pixels.dcm")
    blobs.append(str(err.value))
    nii = nifti_bytes(np.stack([ras_voxels(p) for p in three], axis=2),
                      header_setup=lambda h: h.__setitem__("descrip", MARKER.encode()))
    blobs.append(json.dumps(volume.predict_volume(predictor, nii, "identified.nii")))
    blobs += [caplog.text, "\n".join(str(w.message) for w in recwarn)]
    for i, blob in enumerate(blobs):
        assert_clean(blob, f"output {i}")


def test_no_patient_data_in_logs_even_with_pydicom_debugging(three, caplog):
    # an application that turned on pydicom's debug log would see every element read, values included
    caplog.set_level(logging.DEBUG)
    pydicom.config.debug(True, default_handler=False)
    try:
        for data in (identified_dicom(three[0]), identified_dicom(three[0], preamble=False)):
            caplog.clear()
            assert np.array_equal(arr(load_image(data, "identified.dcm")), three[0])
            assert_clean(caplog.text, "the log")
        with pytest.raises(ImageError):
            load_image(identified_dicom(three[0], with_pixels=False), "no-pixels.dcm")
        assert_clean(caplog.text, "the log")
    finally:
        pydicom.config.debug(False, default_handler=False)
    assert logging.getLogger("pydicom").disabled is False  # left as it was


def _cli_available() -> bool:
    return (SRC / "braintumor" / "commands" / "predict.py").is_file()


@pytest.mark.skipif(not _cli_available(), reason="braintumor predict is not written yet")
def test_no_patient_data_from_the_cli(random_checkpoint, three, tmp_path):
    good, bad = tmp_path / "in" / "identified.dcm", tmp_path / "in" / "no-pixels.dcm"
    good.parent.mkdir()
    good.write_bytes(identified_dicom(three[0]))
    bad.write_bytes(identified_dicom(three[0], with_pixels=False))
    out = tmp_path / "explain"
    env = {**os.environ, "BRAINTUMOR_NO_PROGRESS": "1", "PYTHONWARNINGS": "always"}
    proc = subprocess.run(
        [sys.executable, "-m", "braintumor", "predict", str(good), str(bad),
         "--model", str(random_checkpoint), "--json", "--explain", str(out)],
        capture_output=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr.decode()  # one file failed, the other went on
    answer = json.loads(proc.stdout)
    assert [r["file"] for r in answer["results"]] == [str(good)]
    assert [e["file"] for e in answer["errors"]] == [str(bad)]
    assert "no pixel data" in answer["errors"][0]["error"]
    assert_clean(proc.stdout, "stdout")
    assert_clean(proc.stderr, "stderr")
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written, "--explain wrote nothing"
    for p in written:
        assert_clean(p.read_bytes(), str(p))
        assert_clean(p.name, "a file name")


def _web_available() -> bool:
    return (SRC / "braintumor" / "web" / "__init__.py").is_file()


@pytest.mark.skipif(not _web_available(), reason="the web app is not written yet")
def test_no_patient_data_from_the_web_api(predictor, three, caplog):
    from braintumor.web import create_app

    caplog.set_level(logging.DEBUG)
    client = create_app(predictor=predictor).test_client()
    answers = []
    for filename, data, form in [
        ("identified.dcm", identified_dicom(three[0]), {}),
        ("IM0001", identified_dicom(three[0], preamble=False), {"explain": "false"}),
        ("no-pixels.dcm", identified_dicom(three[0], with_pixels=False), {}),
        ("identified.dcm", identified_dicom(three[0]), {"slice": "4"}),
    ]:
        resp = client.post("/api/predict", data={"file": (io.BytesIO(data), filename), **form},
                           content_type="multipart/form-data")
        answers.append(resp)
        assert_clean(resp.get_data(), f"the answer for {filename}")
        assert_clean(str(resp.headers), f"the headers for {filename}")
    ok, plain, no_pixels, out_of_range = answers
    assert ok.status_code == 200 and ok.get_json()["gradcam"].startswith("data:image/png;base64,")
    assert plain.status_code == 200
    assert ok.get_json()["label"] == predictor.predict(Image.fromarray(three[0]))["label"]
    assert no_pixels.status_code == 415 and "no pixel data" in no_pixels.get_json()["error"]
    assert out_of_range.status_code == 400 and "out of range" in out_of_range.get_json()["error"]
    assert_clean(caplog.text, "the log")
