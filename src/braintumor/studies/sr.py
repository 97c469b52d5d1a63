"""A series' answers as a DICOM Structured Report, and read back from one.

One Comprehensive 3D SR per series, with the content of TID 1500 (Imaging Measurement Report),
made with highdicom. It belongs to the study of the images it describes (patient and study
attributes copied from them, as every SR must), in a series of its own, and lists those images as
its evidence. For each answered slice, one measurement group:

* tracking identifier ``slice N`` (N: the slice's place in anatomical order, as in the JSON);
* finding type: the class as a SNOMED CT concept (:data:`FINDINGS`); for "no tumour", Neoplasm of
  brain with presence Absent (a tumour class has presence Present);
* measurement Probability (DCM 122157, no units): the answer's probability of its class;
* qualitative evaluation Model decision (coding scheme ``99BRAINTUMOR``): classified, uncertain
  (refer) or rejected (not analysed);
* the tumour box, where the answer has one, as a closed SCOORD POLYLINE (image region, TID 1410) on
  the referenced image, in its stored pixels (column, row; 0,0 is the top left corner of the top
  left pixel); a slice without a box refers to its image as the group's source image (TID 1501);
* algorithm identification: the model's name, version and, as its parameter, SHA-256.

The report is preliminary, partial and unverified, and its series description says it is for
research, not for diagnosis. :func:`read_sr` reads the groups back with highdicom.
"""

from __future__ import annotations

from typing import Any

from .errors import StudyError
from .series import Series

MANUFACTURER = "braintumor"
SERIES_DESCRIPTION = "AI findings: research only, not for diagnosis"
SERIES_NUMBER_BASE = 9900  # the report of the study's n-th series gets series number 9900 + n
SCHEME = "99BRAINTUMOR"  # private coding scheme of the model's decisions
FINDINGS = {  # class -> (code, coding scheme, meaning)
    "glioma": ("393564001", "SCT", "Glioma"),
    "meningioma": ("302820008", "SCT", "Intracranial meningioma"),
    "pituitary": ("254956000", "SCT", "Pituitary adenoma"),
}
NEOPLASM_OF_BRAIN = ("126952004", "SCT", "Neoplasm of brain")  # the finding "no tumour" says is absent
DECISIONS = {"classified": "Classified", "uncertain": "Uncertain: refer", "rejected": "Not analysed"}
DECISION_NAME = ("decision", SCHEME, "Model decision")


def _concept(code: tuple[str, str, str]):
    from highdicom.sr import CodedConcept

    value, scheme, meaning = code
    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _rectangle(box: list[float]):
    import numpy as np

    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=np.float32)


def _group(a: dict, s: Any, algorithm: Any, no_tumour: str):
    from highdicom.sr import (
        ImageRegion, Measurement, MeasurementsAndQualitativeEvaluations,
        PlanarROIMeasurementsAndQualitativeEvaluations, QualitativeEvaluation, SourceImageForMeasurementGroup,
        SourceImageForRegion, TrackingIdentifier,
    )
    from pydicom.sr.codedict import codes

    label = a["label"]
    tumour = label != no_tumour
    finding = _concept(FINDINGS[label] if tumour else NEOPLASM_OF_BRAIN)
    evaluations = [
        QualitativeEvaluation(codes.DCM.PresenceOfProperty, codes.SCT.Present if tumour else codes.SCT.Absent),
        QualitativeEvaluation(_concept(DECISION_NAME), _concept((a["decision"], SCHEME, DECISIONS[a["decision"]]))),
    ]
    measurements = [Measurement(name=codes.DCM.Probability, value=round(float(a["confidence"]), 6),
                                unit=codes.UCUM.NoUnits, algorithm_id=algorithm)]
    frames = [s.frame] if s.frame is not None else None
    common = dict(tracking_identifier=TrackingIdentifier(identifier=f"slice {a['index']}"),
                  finding_type=finding, algorithm_id=algorithm, measurements=measurements,
                  qualitative_evaluations=evaluations)
    if a.get("box"):
        region = ImageRegion(graphic_type="POLYLINE", graphic_data=_rectangle(a["box"]),
                             source_image=SourceImageForRegion(s.sop_class_uid, s.sop_instance_uid, frames))
        return PlanarROIMeasurementsAndQualitativeEvaluations(referenced_region=region, **common)
    source = SourceImageForMeasurementGroup(s.sop_class_uid, s.sop_instance_uid, frames)
    return MeasurementsAndQualitativeEvaluations(source_images=[source], **common)


def _evidence(headers: list) -> list:
    """The images' headers, with the patient and study attributes an SR copies filled where a file
    leaves them out (empty, as DICOM allows for these type 2 attributes)."""
    out = []
    for ds in headers:
        ds = ds.copy()
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                   "ReferringPhysicianName", "StudyID", "AccessionNumber"):
            if kw not in ds:
                setattr(ds, kw, None)
        out.append(ds)
    return out


def build_sr(series: Series, answer: dict, model: dict, number: int | None = None):
    """The SR (a pydicom Dataset) of one DICOM series and its answer
    (:func:`braintumor.studies.answer.answer_series`); ``model``: ``{"name", "version", "sha256"}``.
    StudyError for a NIfTI volume or images without UIDs (there is nothing to refer to)."""
    from highdicom import UID
    from highdicom.sr import (
        AlgorithmIdentification, Comprehensive3DSR, DeviceObserverIdentifyingAttributes, MeasurementReport,
        ObservationContext, ObserverContext,
    )
    from pydicom.dataset import Dataset
    from pydicom.sr.codedict import codes

    from ..inference.decision import NO_TUMOUR
    from ..medical.quiet import quiet

    number = number or answer["series"]
    if series.kind != "dicom":
        raise StudyError(f"series {number} is a NIfTI volume: a DICOM structured report can only refer to "
                         "DICOM images")
    if not series.study_uid or not series.series_uid or any(not s.sop_instance_uid or not s.sop_class_uid
                                                            for s in series.slices):
        raise StudyError(f"series {number}: its DICOM files lack the UIDs a report must refer to")
    algorithm = AlgorithmIdentification(name=str(model["name"])[:64], version=str(model["version"])[:64],
                                        parameters=[f"SHA-256 {model['sha256']}"])
    observer = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=UID(), name=MANUFACTURER, manufacturer_name=MANUFACTURER, model_name=str(model["name"])[:64]))
    by_index = dict(enumerate(series.slices))
    groups = [_group(a, by_index[a["index"]], algorithm, NO_TUMOUR) for a in answer["slices"] if "label" in a]
    report = MeasurementReport(observation_context=ObservationContext(observer_device_context=observer),
                               procedure_reported=codes.LN.BrainMRI, imaging_measurements=groups)
    with quiet():
        sr = Comprehensive3DSR(
            evidence=_evidence(series.headers), content=report, series_instance_uid=UID(),
            series_number=SERIES_NUMBER_BASE + number, sop_instance_uid=UID(), instance_number=1,
            manufacturer=MANUFACTURER, is_complete=False, is_final=False, is_verified=False,
            series_description=SERIES_DESCRIPTION)
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "braintumor model decisions"
    scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def sr_bytes(ds) -> bytes:
    """A report as the bytes of a DICOM file."""
    import io

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _code_to_label() -> dict[tuple[str, str], str]:
    return {(v, s): label for label, (v, s, _) in FINDINGS.items()}


def read_sr(ds) -> list[dict]:
    """The findings of a report made by :func:`build_sr`, read with highdicom: one dict per slice in
    slice order, ``{"index", "label", "decision", "probability", "box", "sop_instance_uid",
    "frame"}`` (``box``: [x0, y0, x1, y1] in the image's stored pixels, or None)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from ..inference.decision import NO_TUMOUR

    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    groups = list(sr.content.get_planar_roi_measurement_groups()) + list(sr.content.get_image_measurement_groups())
    labels = _code_to_label()
    out = []
    for g in groups:
        finding = g.finding_type
        evaluations = {(e.name.value, e.name.scheme_designator): e.value for e in g.get_qualitative_evaluations()}
        present = evaluations.get((codes.DCM.PresenceOfProperty.value, "DCM"))
        label = labels.get((finding.value, finding.scheme_designator))
        if label is None and (finding.value, finding.scheme_designator) == NEOPLASM_OF_BRAIN[:2] \
                and present is not None and present.value == codes.SCT.Absent.value:
            label = NO_TUMOUR
        decision = evaluations.get(DECISION_NAME[:2])
        probability = [m.value for m in g.get_measurements(name=codes.DCM.Probability)]
        roi = getattr(g, "roi", None)
        if roi is not None:
            points = roi.value
            box = [round(float(v), 1) for v in (points[:, 0].min(), points[:, 1].min(),
                                                points[:, 0].max(), points[:, 1].max())]
            ref = roi.ContentSequence[0].ReferencedSOPSequence[0]
        else:
            box = None
            ref = g.source_images[0].ReferencedSOPSequence[0]
        frames = ref.get("ReferencedFrameNumber")
        if frames is not None and not isinstance(frames, int):
            frames = frames[0] if len(frames) else None
        out.append({"index": int(str(g.tracking_identifier).split()[-1]), "label": label,
                    "decision": decision.value if decision is not None else None,
                    "probability": float(probability[0]) if probability else None, "box": box,
                    "sop_instance_uid": str(ref.ReferencedSOPInstanceUID),
                    "frame": int(frames) if frames is not None else None})
    return sorted(out, key=lambda r: r["index"])


__all__ = ["build_sr", "sr_bytes", "read_sr", "FINDINGS", "NEOPLASM_OF_BRAIN", "SERIES_DESCRIPTION"]
