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

from ..config import CLASS_COLOURS, CLASS_NAMES

NOTICE = ("For research and teaching, not for diagnosis. This tool has not been validated for clinical "
          "use. Do not use its output to make decisions about a patient.")
NAMES, COLOURS = CLASS_NAMES, CLASS_COLOURS


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
    """The PDF of one answer, leading as every answer does (:func:`braintumor.inference.decision.headline`).
    ``result`` is a Predictor answer (``explain`` gives the heat map; ``predict`` a report without
    one), ``scan`` the decoded image it was given, ``model`` its name, version and sha256.
    ``similar``: cases from a similar-case index, if any were asked for."""
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
    if result.get("privacy_notice"):  # the scan may show patient text burned into its pixels
        pdf.ln(1)
        pdf.multi_cell(0, 5, _text(result["privacy_notice"]), border=1, fill=True, padding=2,
                       new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    # The scan and the heat map, side by side, each with the tumour box. A scan that was not
    # analysed shows no heat map, no probabilities and no similar cases: only why.
    from ..cam_methods import caption
    from .decision import REFERRAL, could_be, headline

    decision = result.get("decision", "classified")
    rejected = decision == "rejected"
    box = result.get("box")
    top, width = pdf.get_y(), 87.0
    height = width * size[1] / size[0]
    if height > 95:
        height, width = 95.0, 95.0 * size[0] / size[1]
    pdf.image(with_box(scan, box, size), x=15, y=top, w=width, h=height)
    overlay = None if rejected else result.get("overlay")
    if overlay is not None:
        pdf.image(with_box(overlay, box, size), x=108, y=top, w=width, h=height)
    pdf.set_font("Helvetica", "", 8)
    pdf.set_xy(15, top + height + 1)
    pdf.cell(width, 4, "The scan" + (" with the tumour box the model found" if box else ""))
    pdf.set_xy(108, top + height + 1)
    target = NAMES.get(result.get("target"), result.get("target"))
    if overlay is not None:
        pdf.multi_cell(width, 4, _text(caption(result.get("cam_method", "gradcam"), target)))
    elif not rejected:
        pdf.cell(width, 4, "No heat map was computed")
    pdf.set_y(top + height + 10)

    # The answer: the class, "Uncertain: refer" with the classes it could be, or "Not analysed".
    pdf.set_font("Helvetica", "B", 14)
    lead = headline(result)
    if decision == "classified":
        lead += f"  ({100 * float(result['confidence']):.1f}%)"
    pdf.cell(0, 8, _text(lead), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    if could_be(result):
        pdf.cell(0, 6, _text(f"It could be {could_be(result)}."), new_x="LMARGIN", new_y="NEXT")
    if result.get("reason"):
        pdf.multi_cell(0, 5, _text(str(result["reason"])), new_x="LMARGIN", new_y="NEXT")
    if decision == "uncertain":
        pdf.set_font("Helvetica", "B", 10)
        pdf.multi_cell(0, 6, _text(REFERRAL), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
    pdf.ln(2)
    if rejected:
        return _foot(pdf, model, software_version, size)

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

    # Similar cases, most similar first, by collection and class, and whether the model was
    # trained on this picture; no section where none were asked for.
    if similar or result.get("seen_before_notice"):
        from .similar import CLOSENESS_SCALE, case_line

        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(0, 6, "Similar cases, most similar first", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
        if result.get("seen_before_notice"):
            pdf.multi_cell(0, 5, _text(result["seen_before_notice"]), new_x="LMARGIN", new_y="NEXT")
        for s in similar or []:
            pdf.cell(0, 5, _text(case_line(s)), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 8)
        pdf.multi_cell(0, 4, _text(CLOSENESS_SCALE), new_x="LMARGIN", new_y="NEXT")
    return _foot(pdf, model, software_version, size)


def _foot(pdf, model: dict, software_version: str, size: tuple[int, int]) -> bytes:
    """Provenance, at the foot of the page; the finished PDF."""
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
