"""Synthetic MR series for the study tests: full DICOM files (patient, study, series, position),
made with pydicom from the scan-like images of ``conftest.synthetic_scan``. Patient values are
markers that the tests look for in every answer (they must never appear there)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pydicom
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from conftest import synthetic_scan

PATIENT_NAME = "Secretname^Patientmarker"
PATIENT_ID = "PID-7Q3XK9"
STUDY_DATE = "19990817"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def new_dataset(sop_class: str) -> Dataset:
    """An empty data set of ``sop_class`` with its file meta (explicit VR little endian) and UIDs."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    return ds


def mr_slice(pixels: np.ndarray, study_uid: str, series_uid: str, instance: int | None,
             position: tuple[float, float, float] | None, orientation=AXIAL, series_number: int = 3,
             spacing=(0.9, 0.9), frame_uid: str | None = None) -> bytes:
    ds = new_dataset(uid.MRImageStorage)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = PATIENT_NAME, PATIENT_ID, "19500101", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = STUDY_DATE, "101500", "1", "ACC555"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.SeriesNumber, ds.Manufacturer = "MR", series_number, "test"
    ds.FrameOfReferenceUID = frame_uid or uid.generate_uid()
    ds.PositionReferenceIndicator = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "2D"
    ds.EchoTime, ds.RepetitionTime, ds.EchoTrainLength = 12, 500, 1
    ds.SliceThickness = 5
    if instance is not None:
        ds.InstanceNumber = instance
    if position is not None:
        ds.ImagePositionPatient = list(position)
        ds.ImageOrientationPatient = list(orientation)
    ds.PixelSpacing = list(spacing)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def mr_series(n: int = 24, size: int = 96, seed: int = 0, study_uid: str | None = None,
              orientation=AXIAL, positions: bool = True, instance_numbers: bool = True,
              series_number: int = 3, spacing=(0.9, 0.9)) -> list[bytes]:
    """``n`` slices of one series, 5 mm apart along the slice normal, in anatomical order (the
    first nearest the feet for a transverse series); slice k shows ``synthetic_scan(seed + k)``
    with a bright mark in its top row at column 4k + 1 (:func:`mark_of`), so that each slice can be
    told from its pixels."""
    study_uid = study_uid or uid.generate_uid()
    series_uid, frame_uid = uid.generate_uid(), uid.generate_uid()
    normal = np.cross(orientation[:3], orientation[3:])
    out = []
    for k in range(n):
        pixels = synthetic_scan(seed + k, size).astype(np.uint16) * 4
        col = (4 * k) % (size - 3) + 1
        pixels[1:4, col:col + 3] = 4000
        pos = tuple(float(v) for v in np.array([-100.0, -120.0, -60.0]) + 5.0 * k * normal) if positions else None
        out.append(mr_slice(pixels, study_uid, series_uid, k + 1 if instance_numbers else None, pos,
                            orientation, series_number, spacing, frame_uid))
    return out


def header(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def mark_of(image) -> int:
    """Which slice of :func:`mr_series` an 8-bit image (the display of a slice) is."""
    row = np.asarray(image)[2]
    return int(np.argmax(row)) // 4


def enhanced_mr(order: list[int], size: int = 64) -> bytes:
    """One multi-frame (Enhanced MR) file whose frames are stored in ``order``: frame f + 1 holds the
    slice ``order[f]``, 5 mm apart along z, each slice marked as in :func:`mr_series`."""
    ds = new_dataset(uid.EnhancedMRImageStorage)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid.generate_uid(), uid.generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality, ds.InstanceNumber, ds.SeriesNumber = PATIENT_NAME, PATIENT_ID, "MR", 1, 1
    frames, per_frame = [], []
    for k in order:
        pixels = synthetic_scan(k, size).astype(np.uint16) * 4
        pixels[1:4, 4 * k + 1:4 * k + 4] = 4000
        frames.append(pixels)
        position = Dataset()
        position.ImagePositionPatient = [0.0, 0.0, 5.0 * k]
        item = Dataset()
        item.PlanePositionSequence = [position]
        per_frame.append(item)
    orientation = Dataset()
    orientation.ImageOrientationPatient = list(AXIAL)
    shared = Dataset()
    shared.PlaneOrientationSequence = [orientation]
    ds.SharedFunctionalGroupsSequence, ds.PerFrameFunctionalGroupsSequence = [shared], per_frame
    ds.NumberOfFrames, ds.Rows, ds.Columns = len(order), size, size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.stack(frames).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def zipped(entries: dict[str, bytes]) -> bytes:
    """A .zip of ``entries`` (name -> bytes), names kept as given (even ``../`` ones)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()
