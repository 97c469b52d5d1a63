"""An out-of-distribution validation set: images that are not a brain MRI slice.

    python benchmarks/ood_set.py [--out DIR] [--seed 0]      # write them as PNG files, by category

Built only from what the package registries ship and what this file draws, so it needs no download:

==========  ==================================================================================
category    what
==========  ==================================================================================
photo       the sample photographs of scikit-image (astronaut, camera, coffee, chelsea, rocket,
            ...), scikit-learn (china, flower) and matplotlib (grace_hopper, a gift box), each
            also as a grey, cropped and rotated variant
medical     non-MRI medical images that ship with scikit-image: a fundus photograph (retina),
            a histology slide, microaneurysms, a cell micrograph
document    pages of text, tables, forms and code drawn with PIL; scikit-image's page and text
screenshot  drawn application windows, dark-mode terminals, web pages, matplotlib charts, logos
xray        SYNTHETIC chest X-rays, hand, knee and skull radiographs (procedural drawings, not
            real radiographs)
ct          SYNTHETIC abdominal and head CT slices, and the Shepp-Logan head phantom
noise       Gaussian, uniform, salt-and-pepper, smoothed (blobby), coloured and striped noise,
            gradients
blank       constant images (black, white, grey, colours), nearly constant ones
tiny        images of 8 to 40 pixels a side: shrunken MRI slices, photos, noise
crop        heavy crops of real validation MRI slices (8 to 16% of the area), blown up
==========  ==================================================================================

The synthetic radiographs and CT slices are rough drawings made to have the gross look of those
modalities (bright bone, dark air, soft tissue in between); they stand in for real ones, which no
registry ships. Real out-of-distribution uploads differ from these drawings, so the figures this
set gives are a check of the gate, not a guarantee.

:func:`build` returns ``[(category, name, PIL image)]``; the images keep their colours (a Predictor
turns them into grayscale the way it turns any upload). Used by ``benchmarks/ood_eval.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import REPO, SPLIT, TRAINING  # noqa: E402

Item = tuple[str, str, Image.Image]

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


# ----------------------------------------------------------------------------------- library images


def photos(rng: np.random.Generator) -> list[Item]:
    out: list[Item] = []
    base: list[tuple[str, np.ndarray | Image.Image]] = []
    try:
        import skimage.data as sd

        for name in ("astronaut", "camera", "coffee", "chelsea", "rocket", "horse", "brick", "grass",
                     "gravel", "moon", "clock", "coins", "hubble_deep_field"):
            base.append((name, getattr(sd, name)()))
        left, right = sd.stereo_motorcycle()[:2]
        base.append(("motorcycle", left))
    except ImportError:
        print("scikit-image is not installed: no scikit-image photos (pip install scikit-image)")
    try:
        from sklearn.datasets import load_sample_images

        for name, a in zip(("china", "flower"), load_sample_images().images):
            base.append((name, a))
    except ImportError:
        pass
    import matplotlib.cbook as cbook

    for name, file in (("grace_hopper", "grace_hopper.jpg"), ("gift_box", "Minduka_Present_Blue_Pack.png")):
        with cbook.get_sample_data(file) as f:
            base.append((name, Image.open(io.BytesIO(f.read())).convert("RGB")))
    for name, a in base:
        img = a if isinstance(a, Image.Image) else _pil(a)
        for suffix, v in _variants(rng, img):
            out.append(("photo", name + suffix, v))
    return out


def medical_non_mri(rng: np.random.Generator) -> list[Item]:
    out: list[Item] = []
    try:
        import skimage.data as sd
    except ImportError:
        return out
    for name in ("retina", "immunohistochemistry", "microaneurysms", "cell"):
        img = _pil(getattr(sd, name)())
        for suffix, v in _variants(rng, img)[:3]:
            out.append(("medical", name + suffix, v))
    return out


def scientific(rng: np.random.Generator) -> list[Item]:
    """Elevation maps and other arrays shipped with matplotlib, shown as images."""
    import matplotlib.cbook as cbook

    out: list[Item] = []
    for name, file, key in (("topobathy", "topobathy.npz", "topo"),
                            ("fault_dem", "jacksboro_fault_dem.npz", "elevation")):
        data = cbook.get_sample_data(file)  # matplotlib opens .npz files itself
        out.append(("photo", name, _pil(np.asarray(data[key], dtype=np.float64))))
    return out


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
    kinds = ("text", "table", "form", "code", "scan")
    out = [("document", f"{kinds[i % len(kinds)]}-{i}", document(rng, kinds[i % len(kinds)])) for i in range(n)]
    try:
        import skimage.data as sd

        out += [("document", "skimage-page", _pil(sd.page())), ("document", "skimage-text", _pil(sd.text()))]
    except ImportError:
        pass
    return out


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
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def screenshots(rng: np.random.Generator, n: int = 16) -> list[Item]:
    out = [("screenshot", f"window-{'dark' if i % 2 else 'light'}-{i}", window(rng, bool(i % 2))) for i in range(n)]
    for i, kind in enumerate(("line", "bar", "scatter", "heatmap") * 2):
        out.append(("screenshot", f"chart-{kind}-{i}", chart(rng, kind)))
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("logo2.png") as f:
        out.append(("screenshot", "matplotlib-logo", Image.open(io.BytesIO(f.read())).convert("RGB")))
    try:
        import skimage.data as sd

        out += [("screenshot", "skimage-logo", _pil(sd.logo()).convert("RGB")),
                ("screenshot", "colorwheel", _pil(sd.colorwheel())),
                ("screenshot", "checkerboard", _pil(sd.checkerboard()))]
    except ImportError:
        pass
    return out


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


def radiology(rng: np.random.Generator, n: int = 12) -> list[Item]:
    out: list[Item] = []
    for i in range(n):
        out.append(("xray", f"chest-{i}", chest_xray(rng)))
    for i in range(n // 2):
        out.append(("xray", f"hand-{i}", limb_xray(rng, "hand")))
        out.append(("xray", f"knee-{i}", limb_xray(rng, "knee")))
        out.append(("xray", f"skull-{i}", limb_xray(rng, "skull")))
    for i in range(n):
        out.append(("ct", f"abdomen-{i}", ct_slice(rng, "abdomen")))
        out.append(("ct", f"head-{i}", ct_slice(rng, "head")))
    try:
        from skimage.data import shepp_logan_phantom

        ph = shepp_logan_phantom()
        for i in range(4):
            img = _pil(ph + rng.normal(0, 0.02 * i, ph.shape)).rotate(float(rng.uniform(-20, 20)))
            out.append(("ct", f"shepp-logan-{i}", img))
    except ImportError:
        pass
    return out


# ----------------------------------------------------------------------------------- noise, blank, tiny


def noise(rng: np.random.Generator, size: int = 256) -> list[Item]:
    s = size
    out: list[Item] = []
    for i in range(4):
        out.append(("noise", f"gaussian-{i}", _pil(np.clip(rng.normal(128, 20 + 20 * i, (s, s)), 0, 255).astype(np.uint8))))
        out.append(("noise", f"uniform-{i}", _pil(rng.integers(0, 256, (s, s), dtype=np.uint8))))
        sp = np.full((s, s), 128, np.uint8) if i % 2 else np.zeros((s, s), np.uint8)
        m = rng.random((s, s))
        sp[m < 0.05 * (i + 1)] = 0
        sp[m > 1 - 0.05 * (i + 1)] = 255
        out.append(("noise", f"salt-pepper-{i}", _pil(sp)))
        out.append(("noise", f"blobs-{i}", _pil(_smooth_noise(rng, s, 2.0 + 4 * i))))
        out.append(("noise", f"colour-{i}", _pil(rng.integers(0, 256, (s, s, 3), dtype=np.uint8))))
        yy, xx = np.mgrid[:s, :s]
        out.append(("noise", f"stripes-{i}", _pil(127 + 127 * np.sin(2 * np.pi * (xx * (i + 1) / 32 + yy * i / 64)))))
        ang = rng.uniform(0, 2 * np.pi)
        out.append(("noise", f"gradient-{i}", _pil(np.cos(ang) * xx + np.sin(ang) * yy)))
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


def mri_files(paths: list[Path] | None) -> list[Path]:
    if paths is not None:
        return paths
    if TRAINING.is_dir() and SPLIT.is_file():  # the validation slices, else the 12 sample scans
        return [TRAINING / r for r in json.loads(SPLIT.read_text())["val"]]
    return sorted((REPO / "tests" / "data" / "sample").rglob("*.jpg"))


def tiny_and_crops(rng: np.random.Generator, mri: list[Path], n: int = 40) -> list[Item]:
    from braintumor.imaging import load_image

    out: list[Item] = []
    picks = [mri[int(i)] for i in rng.choice(len(mri), size=min(n, len(mri)), replace=False)]
    for i, p in enumerate(picks):
        img = load_image(p)
        side = int(rng.integers(8, 41))
        out.append(("tiny", f"mri-{side}px-{p.stem}", img.resize((side, side), Image.BILINEAR)))
        w, h = img.size
        frac = rng.uniform(0.28, 0.4)  # a window of 28-40% of the side: 8-16% of the area
        cw, ch = int(w * frac), int(h * frac)
        cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        box = (int(cx - cw / 2), int(cy - ch / 2), int(cx - cw / 2) + cw, int(cy - ch / 2) + ch)
        out.append(("crop", f"mri-crop-{frac:.2f}-{p.stem}", img.crop(box).resize((w, h), Image.BILINEAR)))
    for i in range(10):
        side = int(rng.integers(8, 41))
        out.append(("tiny", f"noise-{side}px", _pil(rng.integers(0, 256, (side, side), dtype=np.uint8))))
    try:
        import skimage.data as sd

        for name in ("astronaut", "camera", "coffee", "chelsea"):
            side = int(rng.integers(12, 41))
            out.append(("tiny", f"{name}-{side}px", _pil(getattr(sd, name)()).resize((side, side))))
    except ImportError:
        pass
    return out


def build(seed: int = 0, mri: list[Path] | None = None) -> list[Item]:
    """The whole set, the same for the same seed: [(category, name, image)]."""
    rng = np.random.default_rng(seed)
    items: list[Item] = []
    for part in (photos, medical_non_mri, scientific, documents, screenshots, radiology, noise, blank):
        items += part(rng)
    items += tiny_and_crops(rng, mri_files(mri))
    return items


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="ood-set", help="folder for the PNG files (default: ood-set)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    counts: dict[str, int] = {}
    for cat, name, img in build(args.seed):
        (out / cat).mkdir(parents=True, exist_ok=True)
        img.save(out / cat / f"{name}.png")
        counts[cat] = counts.get(cat, 0) + 1
    for cat, n in counts.items():
        print(f"{cat:<12}{n:>5}")
    print(f"{'total':<12}{sum(counts.values()):>5}  in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
