"""The out-of-distribution benchmark set: images that are not a brain MRI slice, by kind.

    python benchmarks/ood_set.py [--out DIR] [--seed 1]      # write them as PNG files, by kind

Every item says where it comes from (``origin``), so that what the gate never saw while it was
fitted is reported apart from what resembles its fitting negatives:

- ``held-out``: real images no part of the gate was fitted on: sample images that packages ship
  but that :mod:`braintumor.training.gate_negatives` does not use (scikit-image's astronaut, page, text, logo
  and the faces it leaves out, scikit-learn's photographs, matplotlib's Grace Hopper and logo, the Shepp-Logan
  phantom), pydicom's test DICOM files (``pydicom-data``: head and body CT, radiographs,
  ultrasound, a photograph of a face, DICOMs with overlays, non-brain MRI), and screenshots,
  charts and icons that Debian packages install under /usr/share;
- ``generated``: drawn with the generators of :mod:`braintumor.training.gate_negatives` (documents, charts,
  logos, synthetic CT, radiographs, ultrasound, phantoms, patterns) from another seed than the
  gate's negatives: the same kind of drawing, new pictures;
- ``dataset``: the head CT slices that the MRI dataset's no-tumour folder holds
  (``model/not-mri.tsv``), those of the validation split only;
- ``checks``: blank, tiny and heavily cropped images (the size and blank checks' business).

:func:`build` returns ``[(kind, name, image, origin)]``; images keep their colours (a Predictor
turns them into grayscale the way it turns any upload), DICOM files are given as paths.
Used by ``benchmarks/ood_eval.py``.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import REPO, SPLIT, TRAINING  # noqa: E402

from braintumor.training import gate_negatives as neg  # noqa: E402

Item = tuple[str, str, object, str]
NOT_MRI = REPO / "model" / "not-mri.tsv"

# pydicom's test files (pydicom and pydicom-data): one file per distinct picture
DICOMS = {
    "ct-head": ("693_UNCR", "J2K_pixelrep_mismatch", "693_UNCI"),
    "ct-body": ("liver", "CT_small", "explicit_VR-UN", "eCT_Supplemental"),
    "dicom-overlay": ("examples_overlay", "MR-SIEMENS-DICOM-WithOverlays"),
    "xray": ("RG1_UNCR", "RG3_UNCR"),
    "ultrasound": ("US1_UNCR", "gdcm-US-ALOKA-16", "OBXXXX1A", "color3d_jpeg_baseline", "examples_ybr_color"),
    "portrait-grey": ("OT-PAL-8-face",),
    "mri-not-brain": ("MR2_UNCR",),
    "whole-body": ("JPEG2000",),
}


def _dicom_path(name: str) -> Path | None:
    try:
        from pydicom.data import get_testdata_file

        path = get_testdata_file(f"{name}.dcm")
        return Path(path) if path else None
    except Exception:  # noqa: BLE001 - pydicom-data not installed, or offline: the file is left out
        return None


def _skimage():
    try:
        import skimage.data as sd

        return sd
    except ImportError:
        print("scikit-image is not installed: its photographs are left out (pip install scikit-image)",
              file=sys.stderr)
        return None


def _crop(rng: np.random.Generator, img: Image.Image, lo: float = 0.35, hi: float = 0.7) -> Image.Image:
    w, h = img.size
    f = rng.uniform(lo, hi)
    cw, ch = int(w * f), int(h * f)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch))


def held_out(rng: np.random.Generator) -> list[Item]:
    """Real images that no part of the gate was fitted on."""
    items: list[Item] = []
    sd = _skimage()
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = Image.open(io.BytesIO(f.read())).convert("RGB")
    portraits = [("grace-hopper", hopper)]
    if sd is not None:
        portraits.append(("astronaut", neg._pil(sd.astronaut())))
    for name, img in portraits:
        items.append(("portrait-colour", name, img, "held-out"))
        items.append(("portrait-grey", name, img.convert("L"), "held-out"))
        items.append(("photo-crop", f"{name}-crop", _crop(rng, img.convert("L")), "held-out"))
        items.append(("photo-crop", f"{name}-crop-colour", _crop(rng, img), "held-out"))
    if sd is not None:
        faces = sd.lfw_subset()[:100]  # the first 100 are faces (25 x 25), blown up as a photo would be
        for i in neg.FACES + rng.choice(len(faces) - neg.FACES, 8, replace=False):  # the gate fits on the others
            face = neg._pil(faces[int(i)]).resize((200, 200), Image.BICUBIC)
            items.append(("portrait-grey", f"lfw-face-{int(i)}", face, "held-out"))
    try:
        from sklearn.datasets import load_sample_images

        for name, a in zip(("china", "flower"), load_sample_images().images):
            img = Image.fromarray(a)
            items += [("photo", name, img, "held-out"), ("photo", f"{name}-grey", img.convert("L"), "held-out"),
                      ("photo-crop", f"{name}-crop", _crop(rng, img.convert("L")), "held-out")]
    except ImportError:
        pass
    if sd is not None:
        items += [("document", "skimage-page", neg._pil(sd.page()), "held-out"),
                  ("document", "skimage-text", neg._pil(sd.text()), "held-out"),
                  ("logo", "skimage-logo", neg._pil(sd.logo()).convert("RGB"), "held-out"),
                  ("logo", "colorwheel", neg._pil(sd.colorwheel()), "held-out")]
        ph = sd.shepp_logan_phantom()
        for i in range(3):
            img = neg._pil(ph + rng.normal(0, 0.02 * i, ph.shape)).rotate(float(rng.uniform(-20, 20)))
            items.append(("phantom", f"shepp-logan-{i}", img, "held-out"))
    with cbook.get_sample_data("logo2.png") as f:
        items.append(("logo", "matplotlib-logo", Image.open(io.BytesIO(f.read())).convert("RGB"), "held-out"))
    for kind, names in DICOMS.items():
        for name in names:
            path = _dicom_path(name)
            if path is not None:
                items.append((kind, name, path, "held-out"))
    files = sorted(glob.glob("/usr/share/doc/**/*.png", recursive=True))
    items += [("chart", f"debian-{Path(f).stem}", Path(f), "held-out") for f in files]
    icons = sorted(glob.glob("/usr/share/icons/Adwaita/512x512/*/*.png"))[:20]
    items += [("logo", f"icon-{Path(f).stem}", Path(f), "held-out") for f in icons]
    return items


def generated(rng: np.random.Generator) -> list[Item]:
    """New drawings from the generators the gate's negatives come from."""
    kinds = {"document": "document", "graphic": "chart", "ct": "ct-head", "xray": "xray",
             "ultrasound": "ultrasound", "pattern": "noise", "photograph": "photo"}
    items: list[Item] = []
    parts = neg.documents(rng, 10) + neg.graphics(rng, 8) + neg.patterns(rng)
    parts += [("ct", f"head-{i}", neg.head_ct(rng)) for i in range(10)]
    parts += [("ct-body", f"abdomen-{i}", neg.ct_slice(rng, "abdomen")) for i in range(5)]
    parts += [("xray", f"chest-{i}", neg.chest_xray(rng)) for i in range(5)]
    parts += [("ultrasound", f"sector-{i}", neg.ultrasound(rng)) for i in range(5)]
    parts += [("phantom", f"drawn-{i}", neg.phantom(rng)) for i in range(5)]
    for kind, name, img in parts:
        if name.startswith("logo"):
            kind = "logo"
        elif name.startswith("phantom") or kind == "phantom":
            kind = "phantom"
        else:
            kind = kinds.get(kind, kind)
        items.append((kind, name, img, "generated"))
    return items


def dataset_ct(split: Path = SPLIT, training: Path = TRAINING) -> list[Item]:
    """The head CT slices of the MRI dataset that lie in the validation split."""
    if not (NOT_MRI.is_file() and split.is_file() and training.is_dir()):
        return []
    val = set(json.loads(split.read_text())["val"])
    rows = [line.split("\t") for line in NOT_MRI.read_text().splitlines()[1:] if line.strip()]
    return [("ct-head", f"dataset-{Path(f).stem}", training / f, "dataset") for f, kind, *_ in rows
            if f in val and kind == "ct"]


def checks(rng: np.random.Generator, mri: list[Path]) -> list[Item]:
    """Blank, tiny and heavily cropped images."""
    from braintumor.imaging import load_image

    items: list[Item] = [("blank", n, img, "checks") for _, n, img in neg.blank(rng)]
    picks = [mri[int(i)] for i in rng.choice(len(mri), size=min(20, len(mri)), replace=False)]
    for p in picks:
        img = load_image(p)
        side = int(rng.integers(8, 41))
        items.append(("tiny", f"mri-{side}px-{p.stem}", img.resize((side, side), Image.BILINEAR), "checks"))
        w, h = img.size
        frac = rng.uniform(0.28, 0.4)  # a window of 28-40% of the side: 8-16% of the area
        cw, ch = int(w * frac), int(h * frac)
        cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        box = (int(cx - cw / 2), int(cy - ch / 2), int(cx - cw / 2) + cw, int(cy - ch / 2) + ch)
        items.append(("heavy-crop", f"mri-crop-{frac:.2f}-{p.stem}", img.crop(box).resize((w, h), Image.BILINEAR),
                      "checks"))
    return items


def mri_files(paths: list[Path] | None) -> list[Path]:
    if paths is not None:
        return paths
    if TRAINING.is_dir() and SPLIT.is_file():  # the validation slices, else the 12 sample scans
        return [TRAINING / r for r in json.loads(SPLIT.read_text())["val"]]
    return sorted((REPO / "tests" / "data" / "sample").rglob("*.jpg"))


def build(seed: int = 1, mri: list[Path] | None = None) -> list[Item]:
    """The whole set, the same for the same seed: [(kind, name, image or path, origin)]. The
    gate's negatives use seed 0, so any other seed draws new pictures."""
    rng = np.random.default_rng(seed)
    return held_out(rng) + generated(rng) + dataset_ct() + checks(rng, mri_files(mri))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="ood-set", help="folder for the PNG files (default: ood-set)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    from braintumor.imaging import load_image

    out = Path(args.out)
    counts: dict[str, int] = {}
    for kind, name, img, origin in build(args.seed):
        (out / kind).mkdir(parents=True, exist_ok=True)
        (img if isinstance(img, Image.Image) else load_image(img)).save(out / kind / f"{name}.png")
        counts[kind] = counts.get(kind, 0) + 1
    for kind, n in counts.items():
        print(f"{kind:<16}{n:>5}")
    print(f"{'total':<16}{sum(counts.values()):>5}  in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
