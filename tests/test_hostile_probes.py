"""The files benchmarks/hostile.py sends are what its probes say they are: a probe refused because
its file is malformed would prove nothing. Small versions of each are read back with Pillow (no
server is started here)."""

from __future__ import annotations

import gzip
import importlib.util
import io
import sys
from pathlib import Path

import pytest
from PIL import Image

from braintumor.formats import picture_format, refused_format

HOSTILE = Path(__file__).resolve().parents[1] / "benchmarks" / "hostile.py"


@pytest.fixture(scope="module")
def hostile():
    spec = importlib.util.spec_from_file_location("hostile_benchmark", HOSTILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


# What Pillow, left to try every format it knows, takes each refused file for.
PILLOW_SEES = {"EPS": "EPS", "binary (DOS) EPS": "EPS", "FITS": "FITS", "QOI": "QOI", "DDS": "DDS",
               "GIF": "GIF", "ICO": "ICO", "JPEG 2000": "JPEG2000"}


def test_refused_files_are_real_instances_that_no_allowed_decoder_takes(hostile):
    seen = set()
    for up in hostile.refused():
        data = gzip.decompress(up.data) if up.data[:2] == b"\x1f\x8b" else up.data
        assert picture_format(data) is None, up.what
        kind = next((k for k in sorted(PILLOW_SEES, key=len, reverse=True) if up.what.startswith(k)), None)
        if kind:
            with Image.open(io.BytesIO(data)) as img:  # reads the header only: no interpreter is run
                assert img.format == PILLOW_SEES[kind], up.what
            seen.add(kind)
        else:
            assert refused_format(data) or up.what.startswith("PSD"), up.what
    assert seen == set(PILLOW_SEES)


def test_repeated_scans_are_scans_a_decoder_walks(hostile):
    small = hostile.encoded(Image.new("L", (64, 48), 60), "JPEG", progressive=True)
    assert hostile.with_scans(small, 10_000).count(b"\xff\xda") == 10_000
    with Image.open(io.BytesIO(hostile.with_scans(small, 64))) as img:
        img.load()
        assert img.size == (64, 48)


def test_small_versions_of_the_worst_files_decode(hostile):
    for data, size, mode in ((hostile.png_adam7(40, 24), (40, 24), "RGBA"),
                             (hostile.bmp_rle8(300, 7), (300, 7), "L"),  # a grey palette
                             (hostile.jpeg_segments(50), (64, 64), "L"),
                             (hostile.png_chunks(50), (64, 64), "L")):
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            assert (img.size, img.mode) == (size, mode)
    with Image.open(io.BytesIO(hostile.tiff_strips(500))) as img:
        assert img.size == (16, 16) and len(img.tile) == 500  # one piece of work per listed strip
    with Image.open(io.BytesIO(hostile.tiff_pages(4))) as img:
        assert img.n_frames == 4


def test_groups_are_chosen_by_name(hostile):
    assert set(hostile.QUICK) < set(hostile.GROUPS)
    with pytest.raises(SystemExit) as exc:
        hostile.main(["--only", "refused,nonsense"])
    assert exc.value.code == 2
