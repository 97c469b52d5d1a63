"""The one list of accepted files: suffixes, slice files, scan files, and every place that uses it
(training folders, the audit, ``braintumor predict``, the web form and the page's file picker)."""

from __future__ import annotations

import gzip
import html.parser
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from braintumor import formats
from braintumor.formats import is_scan_file, is_slice_file, suffix_of
from test_medical import dicom_bytes, nifti_bytes


@pytest.mark.parametrize("name, suffix", [
    ("a.NII.GZ", ".nii.gz"), ("brain.nii", ".nii"), ("Training/glioma/Tr-gl_0255.jpg", ".jpg"),
    ("scan.JPEG", ".jpeg"), ("x.png", ".png"), ("x.bmp", ".bmp"), ("x.TIF", ".tif"), ("x.tiff", ".tiff"),
    ("IM0001.dcm", ".dcm"), ("IM0001.DICOM", ".dicom"), ("IM0001.dic", ".dic"),
    ("notes.txt", ""), ("anim.gif", ""), ("photo.webp", ""), ("archive.gz", ""), ("IM0001", ""),
    ("1.3.12.2.1107.5.2.30", ""), ("scan.png.bak", ""), ("", ""),
])
def test_suffix_of(name, suffix):
    assert suffix_of(name) == suffix
    assert suffix_of(Path(name)) == suffix


def test_the_lists():
    assert formats.SLICE_SUFFIXES == formats.IMAGE_SUFFIXES + formats.DICOM_SUFFIXES
    assert set(formats.SCAN_SUFFIXES) == {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm", ".dicom",
                                          ".dic", ".nii.gz", ".nii"}
    assert not {".gif", ".webp"} & set(formats.SCAN_SUFFIXES)
    assert formats.has_no_extension("IM0001") and formats.has_no_extension("1.3.12.2.1107.5.2.30")
    assert not formats.has_no_extension("notes.txt") and not formats.has_no_extension("a.png")


def png_bytes(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, sample_files) -> Path:
    """Files with and without extensions, and what each predicate should say of them:
    name -> (slice file, scan file)."""
    root = tmp_path_factory.mktemp("formats")
    pixels = np.asarray(Image.open(sample_files[0][0]).convert("L"))
    volume = np.stack([pixels] * 3, axis=2)
    files = {
        "Tr-gl_0255.jpg": (sample_files[0][0].read_bytes(), True, True),
        "scan.PNG": (png_bytes(pixels), True, True),
        "scan.tif": (png_bytes(pixels, "TIFF"), True, True),
        "IM0001.dcm": (dicom_bytes(pixels), True, True),
        "IM0002.dic": (dicom_bytes(pixels), True, True),
        "brain.nii.gz": (nifti_bytes(volume, gz=True), False, True),
        "brain.nii": (nifti_bytes(volume), False, True),
        # no extension, or a numeric one: recognised by content
        "IM0003": (dicom_bytes(pixels), False, True),  # DICOM with its preamble
        "1.3.12.2.1107.5.2.30": (dicom_bytes(pixels, preamble=False), False, True),  # a raw data set
        "scan": (png_bytes(pixels), False, True),
        "volume": (gzip.compress(nifti_bytes(volume)), False, True),
        "README": (b"plain text, not a scan\n" * 10, False, False),
        "empty": (b"", False, False),
        "anim": (png_bytes(pixels, "GIF"), False, False),  # GIF: neither gathered nor decoded
        # named as something else
        "notes.txt": (b"not an image\n", False, False),
        "anim.gif": (png_bytes(pixels, "GIF"), False, False),
        "photo.webp": (png_bytes(pixels, "WEBP"), False, False),
        "labels.csv": (b"file,label\n", False, False),
        ".hidden.png": (png_bytes(pixels), False, False),
        ".IM0004": (dicom_bytes(pixels), False, False),
    }
    for name, (data, _, _) in files.items():
        (root / name).write_bytes(data)
    (root / "folder.png").mkdir()  # a folder is not a file, whatever its name
    (root / "expected.txt").write_text("\n".join(f"{n} {int(a)} {int(b)}" for n, (_, a, b) in files.items()))
    return root


def expected(folder: Path) -> dict[str, tuple[bool, bool]]:
    rows = (line.split() for line in (folder / "expected.txt").read_text().splitlines())
    return {name: (a == "1", b == "1") for name, a, b in rows}


def test_each_predicate_on_files_with_and_without_extensions(folder):
    for name, (slice_file, scan_file) in expected(folder).items():
        assert is_slice_file(folder / name) is slice_file, name
        assert is_scan_file(folder / name) is scan_file, name
        assert is_scan_file(str(folder / name)) is scan_file, name
    for predicate in (is_slice_file, is_scan_file):
        assert not predicate(folder / "folder.png")
        assert not predicate(folder / "missing.png")


def test_content_kind():
    pixels = np.zeros((8, 8), np.uint8)
    assert formats.content_kind(dicom_bytes(pixels)) == "dicom"
    assert formats.content_kind(dicom_bytes(pixels, preamble=False)) == "dicom"
    assert formats.content_kind(nifti_bytes(np.zeros((4, 4, 4), np.uint8))) == "nifti"
    assert formats.content_kind(nifti_bytes(np.zeros((4, 4, 4), np.uint8), gz=True)) == "nifti"
    for fmt in ("PNG", "JPEG", "BMP", "TIFF"):
        assert formats.content_kind(png_bytes(pixels, fmt)) == "image", fmt
    assert formats.content_kind(png_bytes(pixels, "GIF")) is None
    assert formats.content_kind(b"plain text") is None and formats.content_kind(b"") is None


def test_webp_bytes_are_decoded_and_gif_refused_by_content(folder):
    from braintumor.errors import UnsupportedImageError
    from braintumor.imaging import load_image

    assert load_image(folder / "photo.webp").mode == "L"
    for name in ("anim", "anim.gif"):
        with pytest.raises(UnsupportedImageError, match="a GIF picture, not an image"):
            load_image(folder / name)


def test_picture_format_reads_only_the_allowed_signatures():
    pixels = np.zeros((8, 8), np.uint8)
    for fmt in ("PNG", "JPEG", "BMP", "TIFF", "WEBP"):
        assert formats.picture_format(png_bytes(pixels, fmt)) == fmt
    for fmt in ("GIF", "PPM", "TGA", "PCX", "SGI", "ICO", "QOI", "DDS"):
        try:
            data = png_bytes(pixels, fmt)
        except (KeyError, OSError, ValueError):  # a Pillow without that writer
            continue
        assert formats.picture_format(data) is None, fmt
    for head in (b"%!PS-Adobe-3.0 EPSF-3.0\n", b"%PDF-1.7\n", b"SIMPLE  =                    T"):
        assert formats.picture_format(head) is None and formats.refused_format(head)


def test_jpeg_scans_counts_start_of_scan_markers():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    baseline = png_bytes(pixels, "JPEG")
    assert formats.jpeg_scans(baseline) == 1
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", progressive=True)
    assert 2 <= formats.jpeg_scans(buf.getvalue()) <= formats.MAX_JPEG_SCANS


def test_every_folder_walk_takes_the_same_files(folder):
    from braintumor.audit import list_files
    from braintumor.commands.predict import collect_files

    scans = sorted(n for n, (_, scan) in expected(folder).items() if scan)
    assert sorted(name for _, name in collect_files([str(folder)])) == scans
    images, other = list_files(folder)
    assert sorted(p.name for p in images) == scans
    assert "notes.txt" in {p.name for p in other}


def test_training_folders_take_slice_files(folder, tmp_path):
    from braintumor.config import CLASSES
    from braintumor.data import list_samples

    for cls in CLASSES:
        (tmp_path / cls).mkdir()
    for name in expected(folder):
        (tmp_path / CLASSES[0] / name).write_bytes((folder / name).read_bytes())
    for cls in CLASSES[1:]:
        (tmp_path / cls / "IM0001.dcm").write_bytes((folder / "IM0001.dcm").read_bytes())
    found = [s.path.name for s in list_samples(tmp_path) if s.label == 0]
    assert found == sorted(n for n, (slice_file, _) in expected(folder).items() if slice_file)


def test_the_web_form_keeps_only_accepted_suffixes():
    pytest.importorskip("flask")
    from braintumor.web.forms import suffix

    assert suffix("Brain.NII.GZ") == ".nii.gz" and suffix("IM0001.dic") == ".dic"
    assert suffix("anim.gif") == "" and suffix("photo.webp") == "" and suffix("IM0001") == ""


class FileInputs(html.parser.HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.accept: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "file":
            self.accept.append(a.get("accept") or "")


def test_the_page_accepts_exactly_the_accepted_suffixes(predictor):
    pytest.importorskip("flask")
    from braintumor.web import create_app

    page = create_app(predictor=predictor).test_client().get("/")
    assert page.status_code == 200
    accept = FileInputs(page.get_data(as_text=True)).accept
    assert accept == [formats.accept_attribute()]
    entries = accept[0].split(",")
    assert sorted(e for e in entries if e.startswith(".")) == sorted(formats.SCAN_SUFFIXES)
    assert all("/" in e for e in entries if not e.startswith("."))  # the rest are media types


def test_importing_formats_imports_nothing_heavy():
    code = ("import sys, braintumor.formats; "
            "print(sorted(k for k in ('torch', 'numpy', 'PIL', 'braintumor.medical') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
