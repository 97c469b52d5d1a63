"""A one-page A4 case report (PDF, with fpdf2) of one answer: the scan and its heat map with the
tumour box, the probabilities, the decision and its reason, similar cases where an index gave
them, the model (name, version, SHA-256), the software version, the date and time, and the
"not for diagnosis" notice.

What it never holds: a patient's name, identifier, date of birth or any other DICOM field (the
report is drawn from decoded pixels and the model's answer only), and the uploaded file's name
unless the caller passes ``title``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

from PIL import Image, ImageDraw

from .config import CLASS_COLOURS, CLASS_NAMES

NOTICE = ("For research and teaching, not for diagnosis. This tool has not been validated for clinical "
          "use. Do not use its output to make decisions about a patient.")
NAMES, COLOURS = CLASS_NAMES, CLASS_COLOURS
DECISIONS = {"classified": "Classified", "uncertain": "Uncertain: refer to a radiologist",
             "rejected": "Not classified"}


def _text(value: object) -> str:
    """Text the PDF's core fonts can draw (Latin-1); anything else becomes '?'."""
    return str(value).replace("\u2014", "-").replace("\u2013", "-").replace("\u2026", "...") \
        .encode("latin-1", "replace").decode("latin-1")


def with_box(image: Image.Image, box: Sequence[int] | None, size: tuple[int, int]) -> Image.Image:
    """``image`` (RGB) with the tumour box drawn; ``box`` is in pixels of an image of ``size``."""
    img = image.convert("RGB")
    if box:
        sx, sy = img.width / size[0], img.height / size[1]
        draw = ImageDraw.Draw(img)
        width = max(2, round(img.width / 200))
        draw.rectangle([box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy], outline=(34, 211, 238), width=width)
    return img


def case_report(result: dict, scan: Image.Image, model: dict, software_version: str,
                title: str | None = None, similar: Sequence[dict] | None = None,
                when: datetime | None = None) -> bytes:
    """The PDF of one answer. ``result`` is a Predictor answer (``explain`` gives the heat map;
    ``predict`` a report without one), ``scan`` the decoded image it was given, ``model`` its name,
    version and sha256. ``similar``: cases from a similar-case index, if any."""
    from fpdf import FPDF

    when = when or datetime.now(timezone.utc)
    size = scan.size
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_title("Brain tumour MRI classifier: case report")
    pdf.set_creator(f"braintumor {software_version}")
    pdf.set_author("braintumor")
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_margins(15, 15, 15)

    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, "Brain tumour MRI classifier: case report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    line = f"Generated {when.strftime('%Y-%m-%d %H:%M')} UTC"
    if title:
        line += f"  |  {title}"
    pdf.cell(0, 5, _text(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_fill_color(254, 243, 199)
    pdf.set_draw_color(217, 119, 6)
    pdf.set_font("Helvetica", "B", 9)
    pdf.multi_cell(0, 5, _text(NOTICE), border=1, fill=True, padding=2, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    # The scan and the heat map, side by side, each with the tumour box.
    box = result.get("box")
    top, width = pdf.get_y(), 87.0
    height = width * size[1] / size[0]
    if height > 95:
        height, width = 95.0, 95.0 * size[0] / size[1]
    pdf.image(with_box(scan, box, size), x=15, y=top, w=width, h=height)
    overlay = result.get("overlay")
    if overlay is not None:
        pdf.image(with_box(overlay, box, size), x=108, y=top, w=width, h=height)
    pdf.set_font("Helvetica", "", 8)
    pdf.set_xy(15, top + height + 1)
    pdf.cell(width, 4, "The scan" + (" with the tumour box the model found" if box else ""))
    pdf.set_xy(108, top + height + 1)
    cam = result.get("cam_method", "gradcam")
    pdf.cell(width, 4, _text(f"Heat map ({cam}) for {NAMES.get(result.get('target'), result.get('target'))}")
             if overlay is not None else "No heat map was computed")
    pdf.set_y(top + height + 8)

    # The answer.
    label = str(result["label"])
    decision = result.get("decision", "classified")
    pdf.set_font("Helvetica", "B", 13)
    shown = "Not classified" if decision == "rejected" else NAMES.get(label, label)
    pdf.cell(0, 7, _text(f"Answer: {shown}  ({100 * float(result['confidence']):.1f}% confidence)"),
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    words = DECISIONS.get(decision, decision)
    if result.get("prediction_set") and decision == "uncertain":
        words += ". It could be any of: " + ", ".join(NAMES.get(c, c) for c in result["prediction_set"])
    if result.get("reason"):
        reason = str(result["reason"])
        words += ". " + reason[:1].upper() + reason[1:]
    pdf.multi_cell(0, 5, _text("Decision: " + words), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    # Probabilities with bars.
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, "Probabilities (calibrated)", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    for cls, p in result["probabilities"].items():
        y = pdf.get_y()
        pdf.cell(40, 6, _text(NAMES.get(cls, cls)))
        pdf.set_fill_color(226, 232, 240)
        pdf.rect(57, y + 1.2, 100, 3.6, style="F")
        pdf.set_fill_color(*COLOURS.get(cls, (100, 116, 139)))
        if float(p) > 0:
            pdf.rect(57, y + 1.2, max(0.3, 100 * float(p)), 3.6, style="F")
        pdf.set_x(160)
        pdf.cell(0, 6, f"{100 * float(p):.1f}%", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    # Similar cases.
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, "Similar cases", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    if similar:
        for s in similar:
            note = "  (a near copy of this scan: the answer reflects memory)" if s.get("near_copy") else ""
            pdf.cell(0, 5, _text(f"{s['id']}: {NAMES.get(s['label'], s['label'])}, similarity "
                                 f"{float(s['similarity']):.2f}{note}"), new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.cell(0, 5, "No similar-case index was used for this answer.", new_x="LMARGIN", new_y="NEXT")

    # Provenance, at the foot of the page.
    pdf.set_y(-32)
    pdf.set_draw_color(203, 213, 225)
    pdf.line(15, pdf.get_y(), 195, pdf.get_y())
    pdf.ln(1.5)
    pdf.set_font("Helvetica", "", 8)
    pdf.cell(0, 4, _text(f"Model: {model.get('name')}, version {model.get('version')}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Courier", "", 7.5)
    pdf.cell(0, 4, _text(f"SHA-256 {model.get('sha256')}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 8)
    pdf.cell(0, 4, _text(f"Software: braintumor {software_version}. Image: {size[0]} x {size[1]} pixels."),
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 8)
    pdf.cell(0, 4, "Not for diagnosis.", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
