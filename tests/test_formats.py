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
    from braintumor.data.audit import list_files
    from braintumor.commands.predict import collect_files

    scans = sorted(n for n, (_, scan) in expected(folder).items() if scan)
    assert sorted(name for _, name in collect_files([str(folder)])) == scans
    images, other = list_files(folder)
    assert sorted(p.name for p in images) == scans
    assert "notes.txt" in {p.name for p in other}


def test_training_folders_take_slice_files(folder, tmp_path):
    from braintumor.config import CLASSES
    from braintumor.data.folders import list_samples

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
    # the scan input: every accepted scan, and a study as one .zip; the study-folder input takes a
    # folder, whatever it holds (the server sorts its files)
    assert accept == [formats.accept_attribute() + ",.zip,application/zip", ""]
    entries = accept[0].split(",")
    assert sorted(e for e in entries if e.startswith(".")) == sorted(formats.SCAN_SUFFIXES + (".zip",))
    assert all("/" in e for e in entries if not e.startswith("."))  # the rest are media types


def test_importing_formats_imports_nothing_heavy():
    code = ("import sys, braintumor.formats; "
            "print(sorted(k for k in ('torch', 'numpy', 'PIL', 'braintumor.medical') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _jpeg_with_segments(n: int) -> bytes:
    """A real JPEG with ``n`` empty APP1 segments added after its start marker."""
    data = png_bytes(np.zeros((16, 16), np.uint8), "JPEG")
    return data[:2] + b"\xff\xe1\x00\x02" * n + data[2:]


def _png_with_chunks(n: int) -> bytes:
    """A real PNG with ``n`` empty private chunks before its image data."""
    import struct
    import zlib as z

    data = png_bytes(np.zeros((16, 16), np.uint8))
    chunk = struct.pack(">I", 0) + b"prVt" + struct.pack(">I", z.crc32(b"prVt"))
    return data[:33] + chunk * n + data[33:]  # after the signature and IHDR (8 + 25 bytes)


def _tiff_listing_strips(n: int) -> bytes:
    """A 16 x 16 grey TIFF whose one directory lists ``n`` strips (its size holds one)."""
    import struct

    entries = [(256, 3, 1, 16), (257, 3, 1, 16), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, n, 0), (277, 3, 1, 1), (278, 3, 1, 16), (279, 4, n, 0)]
    ifd = 8
    arrays = ifd + 2 + 12 * len(entries) + 4
    offsets, counts = arrays, arrays + 4 * n
    pixels = counts + 4 * n
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        if tag == 273:
            value = offsets
        elif tag == 279:
            value = counts
        out += struct.pack("<HHII", tag, kind, count, value) if kind == 4 else \
            struct.pack("<HHIHH", tag, kind, count, value, 0)
    out += struct.pack("<I", 0)
    out += struct.pack(f"<{n}I", *([pixels] * n)) + struct.pack(f"<{n}I", *([256] + [0] * (n - 1)))
    return bytes(out + bytes(256))


def test_headers_that_list_too_many_items_are_refused_before_pillow_reads_them():
    from braintumor.errors import ImageError, UnsupportedImageError
    from braintumor.imaging import load_image

    assert formats.jpeg_segments(_jpeg_with_segments(10)) < formats.MAX_JPEG_SEGMENTS
    assert load_image(_jpeg_with_segments(10)).size == (16, 16)  # an ordinary file is read
    with pytest.raises(UnsupportedImageError, match="header segments"):
        load_image(_jpeg_with_segments(formats.MAX_JPEG_SEGMENTS + 5))
    assert load_image(_png_with_chunks(10)).size == (16, 16)
    with pytest.raises(UnsupportedImageError, match="chunks"):
        load_image(_png_with_chunks(formats.MAX_PNG_CHUNKS + 5))
    assert formats.tiff_first_page(png_bytes(np.zeros((16, 16), np.uint8), "TIFF"))[2] is False
    with pytest.raises(ImageError, match="lists 5,000 strips"):
        load_image(_tiff_listing_strips(5000))


def test_pillow_is_never_asked_to_try_every_format():
    """Every Image.open in the package names the formats it may decode: left open, Pillow tries
    all it knows, EPS among them, which runs Ghostscript on the bytes."""
    import re

    src = Path(formats.__file__).parent
    calls = [(p.relative_to(src), line) for p in src.rglob("*.py")
             for line in p.read_text().splitlines() if re.search(r"Image\.open\(", line)]
    assert calls  # the scan sees the package
    assert [c for c in calls if "formats=" not in c[1]] == []
