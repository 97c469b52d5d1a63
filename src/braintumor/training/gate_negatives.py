"""Images that are not brain MRI slices, made here: the negatives of the gate's brain-MRI-or-not
classifier (:mod:`braintumor.training.gate_fit`), and the drawn part of ``benchmarks/ood_set.py``.

Everything is drawn with PIL and NumPy, or taken from sample images that installed packages ship
(scikit-image's photographs when it is installed, matplotlib's sample data), so fitting needs no
download. Each kind is one of :data:`KINDS` (the names the gate's reasons use):

============  ================================================================================
photograph    sample photographs, cropped, greyed, rotated, shrunk; drawn landscapes and textures
document      pages of text, tables, forms, code and photocopies
graphic       application windows, charts, logos and diagrams
ct            SYNTHETIC head and body CT slices in brain, soft-tissue and bone windows, phantoms
xray          SYNTHETIC chest, hand, knee and skull radiographs
ultrasound    SYNTHETIC sector scans with speckle and a text overlay
pattern       noise, stripes, gradients, checkerboards, blobs
============  ================================================================================

The synthetic CT, radiographs and ultrasound are rough drawings with the gross look of those
modalities; the real head CT slices that the MRI dataset itself holds (``model/not-mri.tsv``)
are added to the CT negatives at fitting time.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

Item = tuple[str, str, Image.Image]
KINDS = ("photograph", "document", "graphic", "ct", "xray", "ultrasound", "pattern")

WORDS = ("patient report radiology department findings impression contrast enhanced axial images "
         "were obtained the quick brown fox jumps over the lazy dog invoice total amount due date "
         "meeting agenda minutes action items quarterly results revenue growth table figure summary "
         "introduction methods discussion conclusion references appendix page section chapter").split()


# ----------------------------------------------------------------------------------- helpers


def _font(size: int, mono: bool = False, bold: bool = False) -> ImageFont.FreeTypeFont:
    import matplotlib

    name = "DejaVuSansMono" if mono else "DejaVuSans"
    if bold:
        name += "-Bold"
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{name}.ttf"
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return ImageFont.load_default(size=size)


def _sentence(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(WORDS, n))


def _to_u8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    return np.zeros(a.shape, np.uint8) if hi <= lo else ((a - lo) / (hi - lo) * 255).round().astype(np.uint8)


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Gaussian noise blurred to blobs of about ``scale`` pixels, in [0, 1]."""
    img = Image.fromarray(_to_u8(rng.normal(size=(size, size))))
    img = img.filter(ImageFilter.GaussianBlur(scale))
    return _to_u8(np.asarray(img)).astype(np.float64) / 255


def _variants(rng: np.random.Generator, img: Image.Image) -> list[tuple[str, Image.Image]]:
    """The image, its grey version, a random crop and a rotated copy."""
    w, h = img.size
    cw, ch = int(w * rng.uniform(0.5, 0.8)), int(h * rng.uniform(0.5, 0.8))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return [
        ("", img),
        ("-grey", img.convert("L")),
        ("-crop", img.crop((x, y, x + cw, y + ch))),
        ("-rot", img.rotate(float(rng.uniform(-30, 30)), resample=Image.BILINEAR, expand=False)),
    ]


def _pil(a: np.ndarray) -> Image.Image:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = _to_u8(a)
    return Image.fromarray(a)


# ----------------------------------------------------------------------------------- documents


def document(rng: np.random.Generator, kind: str, size: tuple[int, int] = (620, 800)) -> Image.Image:
    w, h = size
    paper = tuple(int(v) for v in rng.integers(235, 256, 3)) if kind != "scan" else (215, 212, 200)
    img = Image.new("RGB", (w, h), paper)
    d = ImageDraw.Draw(img)
    ink = tuple(int(v) for v in rng.integers(0, 60, 3))
    y = int(rng.integers(30, 60))
    d.text((40, y), _sentence(rng, 3).title(), fill=ink, font=_font(int(rng.integers(22, 34)), bold=True))
    y += 60
    body = _font(int(rng.integers(11, 17)), mono=kind == "code")
    if kind == "table":
        cols, rows = int(rng.integers(3, 7)), int(rng.integers(8, 20))
        cw, rh = (w - 80) // cols, 26
        for r in range(rows + 1):
            d.line((40, y + r * rh, 40 + cols * cw, y + r * rh), fill=ink, width=1)
        for c in range(cols + 1):
            d.line((40 + c * cw, y, 40 + c * cw, y + rows * rh), fill=ink, width=1)
        for r in range(rows):
            for c in range(cols):
                txt = _sentence(rng, 1) if c == 0 else f"{rng.uniform(0, 1000):.1f}"
                d.text((46 + c * cw, y + r * rh + 6), txt, fill=ink, font=body)
        y += rows * rh + 20
    if kind == "form":
        for _ in range(int(rng.integers(6, 12))):
            d.text((40, y), _sentence(rng, 2).title() + ":", fill=ink, font=body)
            d.rectangle((220, y - 4, w - 40, y + 20), outline=ink)
            y += 40
    while y < h - 40:
        if kind == "code":
            indent = 40 + 24 * int(rng.integers(0, 4))
            line = "def " + "_".join(rng.choice(WORDS, 2)) + "(x):" if rng.random() < 0.2 else \
                "    " + " = ".join(rng.choice(WORDS, 2)) + f"({int(rng.integers(0, 99))})"
            d.text((indent, y), line, fill=ink, font=body)
            y += body.size + 6
        else:
            d.text((40, y), _sentence(rng, int(rng.integers(6, 12))), fill=ink, font=body)
            y += body.size + int(rng.integers(4, 10))
            if rng.random() < 0.1:
                y += 20
    if kind == "scan":  # a photocopied page: tilted, blurred, noisy
        img = img.rotate(float(rng.uniform(-4, 4)), fillcolor=(60, 60, 60)).filter(ImageFilter.GaussianBlur(0.8))
        a = np.asarray(img).astype(np.float64) + rng.normal(0, 8, (h, w, 1))
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return img


def documents(rng: np.random.Generator, n: int = 24) -> list[Item]:
    """Drawn pages: text, tables, forms, code and photocopies."""
    kinds = ("text", "table", "form", "code", "scan")
    return [("document", f"{kinds[i % len(kinds)]}-{i}", document(rng, kinds[i % len(kinds)])) for i in range(n)]


# ----------------------------------------------------------------------------------- screenshots


def window(rng: np.random.Generator, dark: bool) -> Image.Image:
    w, h = int(rng.integers(800, 1280)), int(rng.integers(500, 800))
    bg = (30, 30, 36) if dark else (246, 246, 248)
    fg = (220, 220, 220) if dark else (30, 30, 30)
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    bar = tuple(int(v) for v in rng.integers(40, 200, 3))
    d.rectangle((0, 0, w, 36), fill=bar)
    for i, c in enumerate(((255, 95, 86), (255, 189, 46), (39, 201, 63))):
        d.ellipse((12 + 22 * i, 11, 26 + 22 * i, 25), fill=c)
    d.text((100, 9), _sentence(rng, 3), fill=(255, 255, 255), font=_font(14))
    side = int(rng.integers(150, 260))
    d.rectangle((0, 36, side, h), fill=tuple(max(0, v - 12) for v in bg))
    f = _font(13, mono=dark)
    for i in range(int(rng.integers(8, 20))):
        d.text((14, 52 + 26 * i), _sentence(rng, 2), fill=fg, font=f)
    y = 60
    while y < h - 60:
        r = rng.random()
        if r < 0.15:  # a button
            c = tuple(int(v) for v in rng.integers(0, 255, 3))
            d.rounded_rectangle((side + 30, y, side + 170, y + 34), radius=6, fill=c)
            d.text((side + 48, y + 9), _sentence(rng, 1), fill=(255, 255, 255), font=f)
            y += 50
        elif r < 0.25:  # an image placeholder
            c = tuple(int(v) for v in rng.integers(60, 220, 3))
            d.rectangle((side + 30, y, side + 30 + int(rng.integers(120, 400)), y + 100), fill=c)
            y += 120
        else:
            d.text((side + 30, y), _sentence(rng, int(rng.integers(5, 14))), fill=fg, font=f)
            y += 22
    return img


def chart(rng: np.random.Generator, kind: str) -> Image.Image:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    x = np.arange(20)
    if kind == "line":
        for _ in range(3):
            ax.plot(x, np.cumsum(rng.normal(size=20)))
    elif kind == "bar":
        ax.bar(list("ABCDEFG"), rng.uniform(1, 10, 7))
    elif kind == "scatter":
        ax.scatter(rng.normal(size=200), rng.normal(size=200), c=rng.uniform(size=200), s=12)
    else:
        ax.imshow(rng.normal(size=(12, 12)), cmap="viridis")
    ax.set_title(_sentence(rng, 3))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return Image.open(io.BytesIO(buf.getvalue()), formats=("PNG",)).convert("RGB")


def graphics(rng: np.random.Generator, n: int = 16) -> list[Item]:
    """Drawn application windows (light and dark), matplotlib charts, logos and diagrams."""
    out = [("graphic", f"window-{'dark' if i % 2 else 'light'}-{i}", window(rng, bool(i % 2))) for i in range(n)]
    for i, kind in enumerate(("line", "bar", "scatter", "heatmap") * max(1, n // 8)):
        out.append(("graphic", f"chart-{kind}-{i}", chart(rng, kind)))
    for i in range(max(2, n // 2)):
        out.append(("graphic", f"logo-{i}", logo(rng)))
        out.append(("graphic", f"diagram-{i}", diagram(rng)))
    return out


def logo(rng: np.random.Generator) -> Image.Image:
    """A made-up logo: a few flat shapes and a word on a plain (often white or black) ground."""
    w, h = int(rng.integers(200, 700)), int(rng.integers(150, 500))
    ground = [(255, 255, 255), (0, 0, 0), tuple(int(v) for v in rng.integers(0, 256, 3))][int(rng.integers(0, 3))]
    img = Image.new("RGB", (w, h), ground)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 5))):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        x0, y0 = rng.uniform(0, 0.6) * w, rng.uniform(0, 0.6) * h
        x1, y1 = x0 + rng.uniform(0.15, 0.4) * w, y0 + rng.uniform(0.15, 0.4) * h
        shape = int(rng.integers(0, 3))
        if shape == 0:
            d.ellipse((x0, y0, x1, y1), fill=c)
        elif shape == 1:
            d.rounded_rectangle((x0, y0, x1, y1), radius=int(min(x1 - x0, y1 - y0) / 4), fill=c)
        else:
            d.polygon([(x0, y1), ((x0 + x1) / 2, y0), (x1, y1)], fill=c)
    ink = tuple(255 - v for v in ground)
    d.text((w * rng.uniform(0.05, 0.4), h * rng.uniform(0.55, 0.8)), _sentence(rng, 1).upper(), fill=ink,
           font=_font(int(h * rng.uniform(0.1, 0.2)), bold=True))
    return img


def diagram(rng: np.random.Generator) -> Image.Image:
    """Boxes joined by arrows, with labels: a flow chart or a slide."""
    w, h = int(rng.integers(500, 1000)), int(rng.integers(350, 700))
    dark = rng.random() < 0.3
    img = Image.new("RGB", (w, h), (25, 25, 30) if dark else (255, 255, 255))
    d = ImageDraw.Draw(img)
    ink = (230, 230, 230) if dark else (30, 30, 30)
    boxes = []
    for _ in range(int(rng.integers(3, 8))):
        x, y = rng.uniform(0.05, 0.75) * w, rng.uniform(0.05, 0.8) * h
        bw, bh = rng.uniform(0.12, 0.22) * w, rng.uniform(0.08, 0.15) * h
        fill = tuple(int(v) for v in rng.integers(120, 256, 3))
        d.rounded_rectangle((x, y, x + bw, y + bh), radius=8, fill=fill, outline=ink, width=2)
        d.text((x + 8, y + bh / 3), _sentence(rng, 2), fill=(0, 0, 0), font=_font(13))
        boxes.append((x + bw / 2, y + bh / 2))
    for (x0, y0), (x1, y1) in zip(boxes, boxes[1:]):
        d.line((x0, y0, x1, y1), fill=ink, width=2)
    return img


# ----------------------------------------------------------------------------------- radiographs and CT


def _blur(a: np.ndarray, r: float) -> np.ndarray:
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(r))
    return np.asarray(img).astype(np.float64)


def _ellipse_mask(shape, cy, cx, ry, rx, angle=0.0) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    c, s = math.cos(angle), math.sin(angle)
    y, x = yy - cy, xx - cx
    u, v = x * c + y * s, -x * s + y * c
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1


def chest_xray(rng: np.random.Generator, size: int = 512) -> Image.Image:
    """SYNTHETIC: a bright torso, two dark lung fields, ribs, spine, heart and clavicles."""
    s = size
    a = np.full((s, s), rng.uniform(5, 30))
    body = _ellipse_mask((s, s), s * 0.62, s / 2, s * 0.55, s * rng.uniform(0.40, 0.47))
    a[body] = rng.uniform(150, 190)
    a[: int(s * 0.12)] *= 0.4
    for side in (-1, 1):
        lung = _ellipse_mask((s, s), s * 0.5, s / 2 + side * s * 0.19, s * 0.3, s * 0.13, side * 0.1)
        a[lung] = rng.uniform(40, 80)
    a[_ellipse_mask((s, s), s * 0.64, s * 0.45, s * 0.14, s * 0.16)] = rng.uniform(160, 200)  # heart
    a[:, int(s * 0.47) : int(s * 0.53)] += 40 * body[:, int(s * 0.47) : int(s * 0.53)]  # spine
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for k in range(9):  # ribs: arcs over the lungs
        y = s * (0.26 + 0.055 * k)
        for side in (-1, 1):
            x0 = s / 2 + side * s * 0.04
            x1 = s / 2 + side * s * 0.36
            box = (min(x0, x1), y - s * 0.05, max(x0, x1), y + s * 0.09)
            d.arc(box, 180 if side > 0 else 270, 270 if side > 0 else 360, fill=200, width=max(2, s // 90))
    for side in (-1, 1):  # clavicles
        d.line((s / 2 + side * s * 0.04, s * 0.22, s / 2 + side * s * 0.3, s * 0.17), fill=220, width=s // 60)
    a = _blur(np.asarray(img).astype(np.float64), s / 200) + rng.normal(0, 6, (s, s))
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    ImageDraw.Draw(img).text((s * 0.06, s * 0.06), "L" if rng.random() < 0.5 else "R", fill=255, font=_font(s // 14, bold=True))
    return img


def limb_xray(rng: np.random.Generator, kind: str, size: int = 512) -> Image.Image:
    """SYNTHETIC: a hand (finger bones), a knee (two long bones) or a lateral skull radiograph."""
    s = size
    img = Image.new("L", (s, s), int(rng.uniform(5, 25)))
    d = ImageDraw.Draw(img)
    if kind == "hand":
        d.ellipse((s * 0.25, s * 0.55, s * 0.75, s * 0.98), fill=110)  # palm soft tissue
        for i in range(5):
            ang = math.radians(-50 + 25 * i)
            x0, y0 = s / 2 + math.sin(ang) * s * 0.15, s * 0.7
            for j in range(3):
                x1 = x0 + math.sin(ang) * s * 0.1
                y1 = y0 - math.cos(ang) * s * 0.1
                d.line((x0, y0, x1, y1), fill=110, width=s // 12)
                d.line((x0, y0, x1, y1), fill=int(rng.uniform(190, 240)), width=s // 40)
                x0, y0 = x1 + math.sin(ang) * 4, y1 - math.cos(ang) * 4
        for i in range(5):
            x = s * (0.37 + 0.065 * i)
            d.line((x, s * 0.72, x + (i - 2) * 4, s * 0.92), fill=210, width=s // 36)  # metacarpals
    elif kind == "knee":
        d.rectangle((s * 0.28, 0, s * 0.72, s), fill=100)
        d.rounded_rectangle((s * 0.38, -20, s * 0.62, s * 0.46), radius=s // 10, fill=215)  # femur
        d.rounded_rectangle((s * 0.39, s * 0.52, s * 0.61, s + 20), radius=s // 12, fill=205)  # tibia
        d.ellipse((s * 0.44, s * 0.33, s * 0.58, s * 0.47), fill=230)  # patella
    else:  # lateral skull radiograph
        d.ellipse((s * 0.12, s * 0.1, s * 0.88, s * 0.8), fill=230)
        d.ellipse((s * 0.15, s * 0.13, s * 0.85, s * 0.77), fill=120)
        d.polygon([(s * 0.2, s * 0.6), (s * 0.45, s * 0.95), (s * 0.7, s * 0.9), (s * 0.6, s * 0.62)], fill=170)
        for _ in range(8):
            x, y = rng.uniform(0.3, 0.6) * s, rng.uniform(0.78, 0.92) * s
            d.rectangle((x, y, x + s * 0.03, y + s * 0.05), fill=245)  # teeth
    a = _blur(np.asarray(img).astype(np.float64), s / 150) + rng.normal(0, 5, (s, s))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def ct_slice(rng: np.random.Generator, kind: str, size: int = 512) -> Image.Image:
    """SYNTHETIC: an abdominal CT slice (body, fat ring, liver, kidneys, spine, bowel gas, table) or a
    head CT slice (bright skull, grey brain, dark ventricles), in a soft-tissue window."""
    s = size
    a = np.zeros((s, s))
    tex = _smooth_noise(rng, s, 3.0)
    if kind == "abdomen":
        ry, rx = s * rng.uniform(0.28, 0.34), s * rng.uniform(0.40, 0.45)
        body = _ellipse_mask((s, s), s / 2, s / 2, ry, rx)
        a[body] = 70  # fat
        inner = _ellipse_mask((s, s), s / 2, s / 2, ry * 0.88, rx * 0.9)
        a[inner] = 120 + 15 * tex[inner]
        a[_ellipse_mask((s, s), s * 0.45, s * 0.35, s * 0.15, s * 0.17)] = 140  # liver
        a[_ellipse_mask((s, s), s * 0.6, s * 0.63, s * 0.07, s * 0.05)] = 150  # spleen/kidney
        a[_ellipse_mask((s, s), s * 0.62, s * 0.38, s * 0.06, s * 0.045)] = 150
        a[_ellipse_mask((s, s), s * 0.68, s * 0.5, s * 0.06, s * 0.06)] = 235  # vertebra
        a[_ellipse_mask((s, s), s * 0.68, s * 0.5, s * 0.035, s * 0.035)] = 160
        a[_ellipse_mask((s, s), s * 0.56, s * 0.47, s * 0.02, s * 0.02)] = 210  # aorta with contrast
        for _ in range(int(rng.integers(4, 10))):  # bowel gas
            cy, cx = rng.uniform(0.35, 0.6) * s, rng.uniform(0.4, 0.7) * s
            a[_ellipse_mask((s, s), cy, cx, rng.uniform(0.01, 0.04) * s, rng.uniform(0.01, 0.04) * s)] = 5
        a[int(s * 0.86) : int(s * 0.88)] = 90  # the table
    else:
        ry, rx = s * rng.uniform(0.38, 0.44), s * rng.uniform(0.32, 0.36)
        a[_ellipse_mask((s, s), s / 2, s / 2, ry, rx)] = 80  # scalp
        a[_ellipse_mask((s, s), s / 2, s / 2, ry * 0.95, rx * 0.94)] = 250  # skull
        brain = _ellipse_mask((s, s), s / 2, s / 2, ry * 0.88, rx * 0.86)
        a[brain] = 105 + 12 * tex[brain]
        for side in (-1, 1):
            a[_ellipse_mask((s, s), s * 0.47, s / 2 + side * s * 0.05, s * 0.09, s * 0.025, side * 0.3)] = 60
        a[int(s * 0.2) : int(s * 0.8), s // 2 - 1 : s // 2 + 1] = 140  # falx
    a = _blur(a, 1.0) + rng.normal(0, 5, (s, s))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def head_ct(rng: np.random.Generator, size: int = 512) -> Image.Image:
    """SYNTHETIC: an axial head CT slice: a thick bright skull, a nearly uniform grey brain with a
    faint grey-white contrast, dark ventricles and sulci; brain, subdural or bone window; sometimes
    the head holder and corner text."""
    s = size
    a = np.zeros((s, s))
    cy, cx = s * rng.uniform(0.45, 0.55), s * rng.uniform(0.45, 0.55)
    ry, rx = s * rng.uniform(0.33, 0.45), s * rng.uniform(0.27, 0.37)
    ang = rng.uniform(-0.15, 0.15)
    a[_ellipse_mask((s, s), cy, cx, ry * 1.04, rx * 1.05, ang)] = rng.uniform(60, 110)  # scalp
    skull = rng.uniform(0.88, 0.95)
    a[_ellipse_mask((s, s), cy, cx, ry, rx, ang)] = 255  # bone
    brain = _ellipse_mask((s, s), cy, cx, ry * skull, rx * skull, ang)
    tex = _smooth_noise(rng, s, rng.uniform(2, 6))
    grey = rng.uniform(95, 140)
    a[brain] = grey + rng.uniform(4, 14) * (tex[brain] - 0.5)
    white = _ellipse_mask((s, s), cy, cx, ry * skull * 0.7, rx * skull * 0.7, ang) & (tex > 0.45)
    a[white] -= rng.uniform(4, 12)
    csf = grey - rng.uniform(50, 90)
    for side in (-1, 1):  # lateral ventricles
        a[_ellipse_mask((s, s), cy - s * 0.02, cx + side * s * rng.uniform(0.03, 0.07), s * rng.uniform(0.05, 0.12),
                        s * rng.uniform(0.015, 0.04), side * rng.uniform(0.1, 0.5))] = csf
    rim = brain & ~_ellipse_mask((s, s), cy, cx, ry * skull * 0.93, rx * skull * 0.93, ang)
    a[rim & (tex > 0.6)] = csf  # sulci at the surface
    if rng.random() < 0.4:  # calcification, bleed or contrast
        y, x = cy + rng.uniform(-0.2, 0.2) * s, cx + rng.uniform(-0.2, 0.2) * s
        a[_ellipse_mask((s, s), y, x, rng.uniform(0.01, 0.06) * s, rng.uniform(0.01, 0.06) * s)] = rng.uniform(170, 255)
    window = rng.random()
    if window < 0.2:  # bone window: the brain flattens to one dark grey
        a = np.where(a >= 250, 255, a * 0.35 + 20)
    elif window < 0.35:  # a wide window: everything softer
        a = a * 0.7 + 20
    a = _blur(a, rng.uniform(0.5, 1.5)) + rng.normal(0, rng.uniform(2, 7), (s, s))
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    if rng.random() < 0.5:  # the head holder under the head
        d.arc((cx - rx * 1.3, cy - ry * 1.1, cx + rx * 1.3, cy + ry * 1.25), 20, 160, fill=int(rng.uniform(90, 200)),
              width=max(2, s // 100))
    if rng.random() < 0.4:  # corner text
        f = _font(s // 40)
        for y in (0.02, 0.05, 0.9, 0.94):
            d.text((s * 0.02, s * y), _sentence(rng, 2), fill=230, font=f)
    return img


def ultrasound(rng: np.random.Generator, size: int = 512) -> Image.Image:
    """SYNTHETIC: a sector scan: a fan of speckle that fades with depth, a few dark cysts and
    bright boundaries, on black, with scale marks and text."""
    s = size
    yy, xx = np.mgrid[:s, :s].astype(np.float64)
    apex = (s * 0.05, s / 2)
    r = np.hypot(yy - apex[0], xx - apex[1])
    theta = np.arctan2(xx - apex[1], yy - apex[0])
    half = rng.uniform(0.5, 0.8)
    fan = (np.abs(theta) < half) & (r < s * 0.9) & (r > s * 0.05)
    speckle = rng.rayleigh(1.0, (s, s))
    speckle = _blur(speckle * 60, 1.2) / 60
    tissue = 0.5 + 0.5 * _smooth_noise(rng, s, rng.uniform(6, 20))
    a = np.where(fan, 120 * speckle * tissue * np.exp(-r / (s * rng.uniform(0.6, 1.5))), 0)
    for _ in range(int(rng.integers(0, 4))):
        cy, cx = rng.uniform(0.3, 0.7) * s, rng.uniform(0.35, 0.65) * s
        m = _ellipse_mask((s, s), cy, cx, rng.uniform(0.03, 0.1) * s, rng.uniform(0.03, 0.12) * s) & fan
        a[m] *= 0.15
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for k in range(6):  # depth marks
        d.line((s * 0.95, s * (0.1 + 0.13 * k), s * 0.97, s * (0.1 + 0.13 * k)), fill=200)
    d.text((s * 0.02, s * 0.02), _sentence(rng, 2).upper(), fill=220, font=_font(s // 35))
    return img


def phantom(rng: np.random.Generator, size: int = 256) -> Image.Image:
    """A test-object drawing: nested ellipses of flat grey levels (in the manner of the
    Shepp-Logan head phantom), or rods and bars on a disc."""
    s = size
    a = np.zeros((s, s))
    for _ in range(int(rng.integers(4, 11))):
        cy, cx = rng.uniform(0.3, 0.7) * s, rng.uniform(0.3, 0.7) * s
        m = _ellipse_mask((s, s), cy, cx, rng.uniform(0.05, 0.42) * s, rng.uniform(0.05, 0.35) * s, rng.uniform(-1, 1))
        a[m] += rng.uniform(-0.4, 1.0)
    if rng.random() < 0.5:
        for _ in range(int(rng.integers(3, 9))):
            cy, cx = rng.uniform(0.25, 0.75) * s, rng.uniform(0.25, 0.75) * s
            a[_ellipse_mask((s, s), cy, cx, 0.02 * s, 0.02 * s)] = a.max() * rng.uniform(0.5, 1.2)
    a = a + rng.normal(0, rng.uniform(0, 0.03), a.shape)
    return _pil(np.clip(a, 0, None))


def radiology(rng: np.random.Generator, n: int = 12) -> list[Item]:
    """Synthetic radiographs, CT slices (body and head) and ultrasound."""
    out: list[Item] = []
    for i in range(n):
        out.append(("xray", f"chest-{i}", chest_xray(rng)))
    for i in range(n // 2):
        out.append(("xray", f"hand-{i}", limb_xray(rng, "hand")))
        out.append(("xray", f"knee-{i}", limb_xray(rng, "knee")))
        out.append(("xray", f"skull-{i}", limb_xray(rng, "skull")))
    for i in range(n):
        out.append(("ct", f"abdomen-{i}", ct_slice(rng, "abdomen")))
        out.append(("ct", f"head-drawn-{i}", ct_slice(rng, "head")))
        out.append(("ct", f"head-{i}", head_ct(rng)))
        out.append(("ct", f"head-b-{i}", head_ct(rng)))
        out.append(("ultrasound", f"sector-{i}", ultrasound(rng)))
    for i in range(n):
        out.append(("graphic", f"phantom-{i}", phantom(rng)))
    return out


# ----------------------------------------------------------------------------------- photographs


def landscape(rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A drawn colour 'photograph': sky, sun, textured hills, a house, a tree, camera noise."""
    w, h = size
    yy = np.linspace(0, 1, h)[:, None, None]
    top, low = rng.integers(40, 240, 3), rng.integers(120, 256, 3)
    sky = (top * (1 - yy) + low * yy) * np.ones((1, w, 1))
    img = Image.fromarray(sky.astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.ellipse((w * 0.75, h * 0.08, w * 0.88, h * 0.25), fill=(255, 230, 90))
    horizon = rng.uniform(0.4, 0.7)
    ground = tuple(int(v) for v in rng.integers(30, 200, 3))
    d.polygon([(0, h * horizon), (w * 0.3, h * (horizon - 0.15)), (w * 0.6, h * (horizon - 0.02)), (w, h * (horizon - 0.1)),
               (w, h), (0, h)], fill=ground)
    for _ in range(int(rng.integers(1, 6))):
        x, y = rng.uniform(0, 0.9) * w, rng.uniform(horizon - 0.1, 0.9) * h
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        d.rectangle((x, y, x + rng.uniform(0.05, 0.2) * w, y + rng.uniform(0.05, 0.25) * h), fill=c)
    a = np.asarray(img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2)))).astype(np.float64)
    g = int(h * horizon)
    a[g:] += rng.normal(0, rng.uniform(5, 25), (h - g, w, 1))
    a += rng.normal(0, 3, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def texture(rng: np.random.Generator, size: int = 384) -> Image.Image:
    """A natural-looking texture: 1/f noise (bark, sand, clouds), in colour or grey."""
    s = size
    f = np.fft.fftfreq(s)
    k = np.hypot(*np.meshgrid(f, f))
    k[0, 0] = 1
    spec = (rng.normal(size=(s, s)) + 1j * rng.normal(size=(s, s))) / k ** rng.uniform(0.8, 1.6)
    a = np.real(np.fft.ifft2(spec))
    a = (a - a.min()) / (a.max() - a.min() + 1e-9)
    if rng.random() < 0.5:
        return _pil(a)
    tint = rng.uniform(0.3, 1.0, 3)
    return Image.fromarray((np.clip(a[..., None] * tint * 255, 0, 255)).astype(np.uint8))


LIBRARY_PHOTOS = ("camera", "coffee", "chelsea", "rocket", "horse", "brick", "grass", "gravel", "moon", "clock",
                  "coins", "hubble_deep_field", "cell", "immunohistochemistry", "retina", "microaneurysms")
"""scikit-image's bundled sample photographs the gate is fitted on (when scikit-image is installed);
others (the astronaut, its logo, page and text) are kept for the benchmark."""


def library_photos(names: tuple[str, ...] = LIBRARY_PHOTOS) -> list[tuple[str, Image.Image]]:
    """Sample photographs that installed packages ship: scikit-image's ``names`` (when installed)
    and matplotlib's gift box."""
    out: list[tuple[str, Image.Image]] = []
    try:
        import skimage.data as sd

        for name in names:
            out.append((name, _pil(getattr(sd, name)())))
        out.append(("motorcycle", _pil(sd.stereo_motorcycle()[0])))
    except ImportError:
        pass
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("Minduka_Present_Blue_Pack.png") as f:
        out.append(("gift_box", Image.open(io.BytesIO(f.read()), formats=("PNG",)).convert("RGB")))
    return out


def photo_variant(rng: np.random.Generator, img: Image.Image) -> Image.Image:
    """A random crop (30-100% of the side), sometimes greyed, rotated, mirrored or shrunk."""
    w, h = img.size
    f = rng.uniform(0.3, 1.0)
    cw, ch = max(16, int(w * f)), max(16, int(h * f * rng.uniform(0.7, 1.3)))
    cw, ch = min(cw, w), min(ch, h)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        out = out.convert("L")
    if rng.random() < 0.3:
        out = out.rotate(float(rng.uniform(-30, 30)), resample=Image.BILINEAR)
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    if rng.random() < 0.3:
        scale = rng.uniform(0.3, 0.7)
        out = out.resize((max(64, int(out.width * scale)), max(64, int(out.height * scale))), Image.BILINEAR)
    return out


def portrait(rng: np.random.Generator, size: tuple[int, int] = (360, 440)) -> Image.Image:
    """A drawn head-and-shoulders portrait: a lit face oval with hair, eyes, brows, nose shadow and
    mouth over a neck and dark clothes, on a plain, graded or textured ground; blurred, with grain."""
    w, h = size
    ground = rng.integers(20, 230, 3)
    yy = np.linspace(0, 1, h)[:, None, None]
    bg = ground * (0.7 + 0.6 * yy) * np.ones((1, w, 1))
    if rng.random() < 0.4:
        bg = bg * (0.6 + 0.8 * np.asarray(texture(rng, max(w, h)).convert("L").resize((w, h)))[..., None] / 255)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    skin = np.array([rng.uniform(120, 240), rng.uniform(90, 200), rng.uniform(70, 170)])
    cx, cy = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.35, 0.45)
    fw, fh = w * rng.uniform(0.18, 0.28), h * rng.uniform(0.2, 0.28)
    cloth = tuple(int(v) for v in rng.integers(0, 120, 3))
    d.polygon([(cx - fw * 2.2, h), (cx - fw * 1.2, cy + fh * 1.5), (cx + fw * 1.2, cy + fh * 1.5), (cx + fw * 2.2, h)], fill=cloth)
    d.rectangle((cx - fw * 0.35, cy + fh * 0.6, cx + fw * 0.35, cy + fh * 1.6), fill=tuple(int(v * 0.85) for v in skin))
    hair = tuple(int(v) for v in rng.integers(10, 160, 3))
    d.ellipse((cx - fw * 1.15, cy - fh * 1.2, cx + fw * 1.15, cy + fh * 0.6), fill=hair)
    d.ellipse((cx - fw, cy - fh, cx + fw, cy + fh), fill=tuple(int(v) for v in skin))
    dark = tuple(int(v * 0.35) for v in skin)
    for side in (-1, 1):
        ex = cx + side * fw * 0.4
        d.ellipse((ex - fw * 0.15, cy - fh * 0.2, ex + fw * 0.15, cy - fh * 0.08), fill=(245, 245, 245))
        d.ellipse((ex - fw * 0.07, cy - fh * 0.2, ex + fw * 0.07, cy - fh * 0.08), fill=dark)
        d.line((ex - fw * 0.2, cy - fh * 0.32, ex + fw * 0.2, cy - fh * 0.3), fill=hair, width=max(2, w // 90))
    d.polygon([(cx, cy - fh * 0.05), (cx - fw * 0.12, cy + fh * 0.3), (cx + fw * 0.1, cy + fh * 0.3)],
              fill=tuple(int(v * 0.8) for v in skin))
    d.chord((cx - fw * 0.35, cy + fh * 0.35, cx + fw * 0.35, cy + fh * 0.65), 0, 180, fill=(150, 60, 60))
    a = np.asarray(img.filter(ImageFilter.GaussianBlur(rng.uniform(1, 3)))).astype(np.float64)
    shade = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.2), w)[None, :, None]  # light from one side
    a = a * shade + rng.normal(0, rng.uniform(2, 8), a.shape)
    out = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return out.convert("L") if rng.random() < 0.5 else out


FACES = 50
"""scikit-image's small face photographs (``lfw_subset``) the gate is fitted on: the first
:data:`FACES`; the benchmark takes others."""


def face_photos(rng: np.random.Generator, n: int) -> list[Item]:
    """``n`` of the first :data:`FACES` face photographs of scikit-image (25 x 25), blown up and
    cropped as a portrait would be (none without scikit-image)."""
    try:
        import skimage.data as sd
    except ImportError:
        return []
    faces = sd.lfw_subset()[:FACES]
    out: list[Item] = []
    for i in range(n):
        k = int(rng.integers(0, len(faces)))
        side = int(rng.integers(120, 400))
        img = _pil(faces[k]).resize((side, int(side * rng.uniform(1.0, 1.3))), Image.BICUBIC)
        out.append(("photograph", f"face-{k}-{i}", photo_variant(rng, img) if rng.random() < 0.5 else img))
    return out


def photographs(rng: np.random.Generator, n: int = 120) -> list[Item]:
    """``n`` photographs: variants of the library photographs, drawn landscapes and textures."""
    lib = library_photos()
    out: list[Item] = []
    for i in range(n):
        r = rng.random()
        if lib and r < 0.7:
            name, img = lib[int(rng.integers(0, len(lib)))]
            out.append(("photograph", f"{name}-{i}", photo_variant(rng, img)))
        elif r < 0.85:
            out.append(("photograph", f"landscape-{i}", photo_variant(rng, landscape(rng))))
        else:
            out.append(("photograph", f"texture-{i}", texture(rng)))
    out += [("photograph", f"portrait-{i}", portrait(rng)) for i in range(n // 4)]
    return out + face_photos(rng, n // 4)


# ----------------------------------------------------------------------------------- noise, blank, tiny


def patterns(rng: np.random.Generator, size: int = 256) -> list[Item]:
    """Noise of several kinds, stripes, gradients and checkerboards."""
    s = size
    out: list[Item] = []
    for i in range(4):
        out.append(("pattern", f"gaussian-{i}", _pil(np.clip(rng.normal(128, 20 + 20 * i, (s, s)), 0, 255).astype(np.uint8))))
        out.append(("pattern", f"uniform-{i}", _pil(rng.integers(0, 256, (s, s), dtype=np.uint8))))
        sp = np.full((s, s), 128, np.uint8) if i % 2 else np.zeros((s, s), np.uint8)
        m = rng.random((s, s))
        sp[m < 0.05 * (i + 1)] = 0
        sp[m > 1 - 0.05 * (i + 1)] = 255
        out.append(("pattern", f"salt-pepper-{i}", _pil(sp)))
        out.append(("pattern", f"blobs-{i}", _pil(_smooth_noise(rng, s, 2.0 + 4 * i))))
        out.append(("pattern", f"colour-{i}", _pil(rng.integers(0, 256, (s, s, 3), dtype=np.uint8))))
        yy, xx = np.mgrid[:s, :s]
        out.append(("pattern", f"stripes-{i}", _pil(127 + 127 * np.sin(2 * np.pi * (xx * (i + 1) / 32 + yy * i / 64)))))
        ang = rng.uniform(0, 2 * np.pi)
        out.append(("pattern", f"gradient-{i}", _pil(np.cos(ang) * xx + np.sin(ang) * yy)))
        k = int(rng.integers(4, 24))
        out.append(("pattern", f"checker-{i}", _pil(((yy // k + xx // k) % 2).astype(np.float64))))
    return out


def blank(rng: np.random.Generator, size: int = 256) -> list[Item]:
    s = size
    out: list[Item] = []
    for v in (0, 1, 32, 128, 200, 255):
        out.append(("blank", f"grey-{v}", Image.new("L", (s, s), v)))
    for c in ((255, 0, 0), (0, 128, 255), (30, 200, 60), (250, 250, 240)):
        out.append(("blank", f"rgb-{c[0]}-{c[1]}-{c[2]}", Image.new("RGB", (s, s), c)))
    for v in (0, 100, 240):
        a = np.clip(v + rng.normal(0, 1.5, (s, s)), 0, 255).astype(np.uint8)
        out.append(("blank", f"almost-{v}", _pil(a)))
    return out




def training_set(seed: int = 0, scale: int = 1) -> list[Item]:
    """The negatives the gate's classifier is fitted on, the same for the same seed: about
    ``scale`` x 700 images of every kind in :data:`KINDS` (blank and tiny images are the size and
    blank checks' business, not the classifier's)."""
    rng = np.random.default_rng(seed)
    items: list[Item] = []
    for _ in range(scale):
        items += photographs(rng, 160)
        items += documents(rng, 40)
        items += graphics(rng, 24)
        items += radiology(rng, 16)
        items += patterns(rng)
    return items


# ----------------------------------------------------------------------------------- real MRI, as sent

# The ways a real brain MRI slice arrives changed, that the gate must still take for brain MRI: the
# gate's classifier is fitted on such copies of the *training* slices as brain MRI
# (:func:`braintumor.training.gate_fit.mri_variant_inputs`), and ``benchmarks/gate_mri.py`` measures its
# refusals on such copies of the validation slices.
MRI_VARIANTS = ("white frame", "grey frame", "annotated", "framed and annotated", "tight crop", "loose crop",
                "odd aspect", "rotated 90", "gamma", "contrast", "small JPEG")

NAMES = ("DOE^JANE", "SMITH^JOHN", "MUSTERMANN^ERIKA", "ROSSI^MARIO", "NGUYEN^AN", "GARCIA^LUCIA")


def _annotate(rng: np.random.Generator, img: Image.Image) -> Image.Image:
    """Burnt-in text, a scale bar, an arrow and a line or two, as a viewer or a slide adds them."""
    img = img.convert("L")
    w, h = img.size
    d = ImageDraw.Draw(img)
    fill = int(rng.choice([255, 230, 200]))
    font = _font(max(8, int(min(w, h) * rng.uniform(0.03, 0.06))), mono=bool(rng.random() < 0.5))
    lines = [str(rng.choice(NAMES)), f"ID {int(rng.integers(10 ** 5, 10 ** 7))}",
             f"{int(rng.integers(1950, 2020))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
             str(rng.choice(["T1 +C", "T2", "FLAIR", "T1W_SE", "AX T2 FSE", "COR T1 POST", "SAG T1"])),
             f"SL {rng.uniform(1, 8):.1f} mm", f"W {int(rng.integers(200, 2000))} L {int(rng.integers(100, 900))}"]
    step = font.size + 2
    for corner in rng.choice(4, int(rng.integers(1, 5)), replace=False):
        k = int(rng.integers(1, 4))
        text = [lines[int(i)] for i in rng.choice(len(lines), k, replace=False)]
        for j, t in enumerate(text):
            tw = int(d.textlength(t, font=font))
            x = 3 if corner in (0, 2) else max(0, w - tw - 3)
            y = 3 + j * step if corner in (0, 1) else max(0, h - (k - j) * step - 3)
            d.text((x, y), t, fill=fill, font=font)
    if rng.random() < 0.7:  # a scale bar with ticks
        x0, y0, length = int(w * rng.uniform(0.05, 0.6)), int(h * rng.uniform(0.8, 0.95)), int(w * rng.uniform(0.1, 0.3))
        d.line([(x0, y0), (x0 + length, y0)], fill=fill, width=max(1, w // 200))
        for t in range(6):
            xt = x0 + t * length // 5
            d.line([(xt, y0 - 3), (xt, y0 + 3)], fill=fill, width=1)
        d.text((x0 + length + 4, y0 - font.size // 2), f"{int(rng.choice([1, 2, 5, 10]))} cm", fill=fill, font=font)
    for _ in range(int(rng.integers(0, 3))):  # arrows pointing into the picture
        x1, y1 = w * rng.uniform(0.25, 0.75), h * rng.uniform(0.25, 0.75)
        a = rng.uniform(0, 2 * math.pi)
        r = min(w, h) * rng.uniform(0.08, 0.2)
        x0, y0 = x1 + r * math.cos(a), y1 + r * math.sin(a)
        d.line([(x0, y0), (x1, y1)], fill=fill, width=max(1, w // 150))
        for da in (0.4, -0.4):
            d.line([(x1, y1), (x1 + 0.3 * r * math.cos(a + da), y1 + 0.3 * r * math.sin(a + da))], fill=fill,
                   width=max(1, w // 150))
    if rng.random() < 0.4:  # a measurement line or a letter marking a side
        d.line([(w * rng.uniform(0.3, 0.5), h * rng.uniform(0.3, 0.7)), (w * rng.uniform(0.5, 0.7), h * rng.uniform(0.3, 0.7))],
               fill=fill, width=1)
        d.text((int(w * 0.02), int(h * 0.45)), str(rng.choice(["R", "L", "A", "P"])), fill=fill, font=font)
    return img


def _frame(rng: np.random.Generator, img: Image.Image, grey: bool) -> Image.Image:
    """A white or grey frame: a margin around the slice, or a line drawn over its edge."""
    g = img.convert("L")
    level = int(rng.integers(90, 200)) if grey else int(rng.integers(225, 256))
    if rng.random() < 0.6:  # a margin (a slide or a printed film)
        m = max(2, int(min(g.size) * rng.uniform(0.02, 0.1)))
        return ImageOps.expand(g, border=m, fill=level)
    a = np.asarray(g).copy()  # a line over the picture's edge (a viewer's viewport)
    t = max(1, int(min(a.shape) * rng.uniform(0.005, 0.03)))
    inset = int(min(a.shape) * rng.uniform(0, 0.05))
    a[inset:inset + t, inset:a.shape[1] - inset] = level
    a[a.shape[0] - inset - t:a.shape[0] - inset, inset:a.shape[1] - inset] = level
    a[inset:a.shape[0] - inset, inset:inset + t] = level
    a[inset:a.shape[0] - inset, a.shape[1] - inset - t:a.shape[1] - inset] = level
    return Image.fromarray(a)


def _head_box(a: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box (left, top, right, bottom) of the bright region of a slice."""
    on = a > max(20, 0.15 * float(np.percentile(a, 99)))
    rows, cols = np.flatnonzero(on.mean(1) > 0.02), np.flatnonzero(on.mean(0) > 0.02)
    if not len(rows) or not len(cols):
        return 0, 0, a.shape[1], a.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def mri_variant(rng: np.random.Generator, img: Image.Image, name: str) -> Image.Image:
    """A brain MRI slice (a PIL image) changed the way :data:`MRI_VARIANTS` ``name`` says, with
    random strength: what the gate must still take for brain MRI."""
    g = img.convert("L")
    w, h = g.size
    if name in ("white frame", "grey frame"):
        return _frame(rng, g, grey=name == "grey frame")
    if name == "annotated":
        return _annotate(rng, g)
    if name == "framed and annotated":
        return _frame(rng, _annotate(rng, g), grey=bool(rng.random() < 0.4))
    if name == "tight crop":  # cut into the head, or right around it
        l, t, r, b = _head_box(np.asarray(g))
        f = rng.uniform(0.0, 0.15)
        dx, dy = int((r - l) * f), int((b - t) * f)
        box = (l + dx, t + dy, r - dx, b - dy)
        return g.crop(box) if box[2] - box[0] >= 48 and box[3] - box[1] >= 48 else g
    if name == "loose crop":  # more of the dark ground around the head, off centre
        m = int(min(w, h) * rng.uniform(0.1, 0.4))
        ox, oy = int(rng.integers(0, m + 1)), int(rng.integers(0, m + 1))
        out = Image.new("L", (w + m, h + m), int(rng.integers(0, 12)))
        out.paste(g, (ox, oy))
        return out
    if name == "odd aspect":  # padded to a wide or tall picture (a slide, a viewer's window)
        ratio = rng.uniform(1.3, 2.2)
        level = int(rng.choice([0, 0, int(rng.integers(0, 40)), int(rng.integers(180, 256))]))
        size = (int(w * ratio), h) if rng.random() < 0.6 else (w, int(h * ratio))
        out = Image.new("L", size, level)
        out.paste(g, (int(rng.integers(0, size[0] - w + 1)), int(rng.integers(0, size[1] - h + 1))))
        return out
    if name == "rotated 90":
        out = g.transpose(Image.Transpose.ROTATE_90 if rng.random() < 0.5 else Image.Transpose.ROTATE_270)
        return ImageOps.mirror(out) if rng.random() < 0.5 else out
    if name == "gamma":
        gamma = float(np.exp(rng.uniform(np.log(0.45), np.log(2.2))))
        return Image.fromarray((255 * (np.asarray(g) / 255.0) ** gamma).round().astype(np.uint8))
    if name == "contrast":
        a = np.asarray(g).astype(np.float64)
        out = (a - a.mean()) * rng.uniform(0.5, 1.6) + a.mean() + rng.uniform(-25, 25)
        return Image.fromarray(np.clip(out, 0, 255).round().astype(np.uint8))
    if name == "small JPEG":
        side = int(rng.integers(80, 200))
        s = side / max(w, h)
        small = g.resize((max(64, int(w * s)), max(64, int(h * s))), Image.BILINEAR)
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=int(rng.integers(20, 70)))
        return Image.open(io.BytesIO(buf.getvalue()), formats=("JPEG",))
    raise ValueError(f"unknown MRI variant {name!r}; one of {', '.join(MRI_VARIANTS)}")
