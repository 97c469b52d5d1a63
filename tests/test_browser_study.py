"""A whole study on the page, in real Chromium (the fixtures of test_browser.py): a synthetic DICOM
series sent as several files, as a .zip, as a chosen folder and as more files than one form may
hold; at 1280 and at 390 px. The answer, one thumbnail per slice in anatomical order bordered in
the colour of its answer, the legend, a slice larger with its heat map and box, the structured
report, and refusals shown in words with no earlier answer left on screen.

The model is a small random one with a box head; a wrapper gives each slice a chosen answer (by
the mark that tells the slices of ``dicom_series.mr_series`` apart), so that every kind of mark is
on the page: classes, an uncertain slice, a blank slice (not analysed) and the most suspicious."""

from __future__ import annotations

import io
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_series import PATIENT_ID, PATIENT_NAME, mark_of, mr_series, zipped
from test_browser import COLOURS, NAMES, browser, drop_file, sync_api, watch  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
RGB = {c: "rgb({}, {}, {})".format(*(int(h[i:i + 2], 16) for i in (1, 3, 5))) for c, h in zip(CLASSES, COLOURS)}
N = 8
BLANK = 5  # the slice whose pixels are all zero
# what the wrapped model answers for the slice with each mark; None: the model's own answer
VERDICTS = {0: ("notumor", 0.91), 1: ("notumor", 0.88), 2: "uncertain", 3: None, 4: None,
            6: ("meningioma", 0.81), 7: ("notumor", 0.93)}
SHOTS = os.environ.get("BRAINTUMOR_SCREENSHOTS")  # a folder to keep the screenshots in, for a person to look at


def shot(page, tmp_path: Path, name: str, full_page: bool = False) -> Path:
    folder = Path(SHOTS) if SHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=full_page)
    assert (folder / name).stat().st_size > 10_000
    return folder / name


def verdict(result: dict, image) -> dict:
    if "error" in result:
        return result
    v = VERDICTS.get(mark_of(image))
    if v is None:
        return result
    if v == "uncertain":
        probs = {"glioma": 0.46, "meningioma": 0.04, "notumor": 0.44, "pituitary": 0.06}
        return {**result, "label": "glioma", "confidence": 0.46, "probabilities": probs, "decision": "uncertain",
                "headline": "Uncertain: refer", "prediction_set": ["glioma", "notumor"], "box": None,
                "reason": "More than one class fits this slice: Glioma or No tumour."}
    label, p = v
    rest = (1 - p) / 3
    probs = {c: (p if c == label else rest) for c in CLASSES}
    return {**result, "label": label, "confidence": p, "probabilities": probs, "decision": "classified",
            "headline": NAMES[label], "prediction_set": [label],
            "box": result.get("box") if label != "notumor" else None, "reason": f"{NAMES[label]} at {p:.0%}."}


class Mixed:
    """The real predictor; each slice's answer as VERDICTS says."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict_batch(self, images, **kw):
        images = list(images)
        return [verdict(r, im) for r, im in zip(self.inner.predict_batch(images, **kw), images)]

    def explain(self, image, **kw):
        return verdict(self.inner.explain(image, **kw), image)


def series_files(n: int = N, blank: int | None = BLANK, size: int = 96) -> list[bytes]:
    files = mr_series(n, size=size)
    if blank is not None:
        ds = pydicom.dcmread(io.BytesIO(files[blank]))
        ds.PixelData = np.zeros((ds.Rows, ds.Columns), np.uint16).tobytes()
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        files[blank] = buf.getvalue()
    return files


def write_shuffled(folder: Path, files: list[bytes], seed: int = 5) -> list[Path]:
    """The files under names that do not give their order away, in a shuffled order."""
    folder.mkdir(parents=True, exist_ok=True)
    order = list(range(len(files)))
    random.Random(seed).shuffle(order)
    paths = []
    for name, k in enumerate(order):
        path = folder / f"IM{name:04d}"
        path.write_bytes(files[k])
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    from conftest import box_checkpoint

    from braintumor.inference.predictor import Predictor

    ck = box_checkpoint(tmp_path_factory.mktemp("box") / "box.safetensors", always=0)
    return Mixed(Predictor.load(ck, backend="torch"))


@pytest.fixture(scope="module")
def server(mixed):
    from braintumor.web import create_app
    from braintumor.web.serve import BackgroundServer

    with BackgroundServer(create_app(predictor=mixed), threads=2) as srv:
        yield srv


@pytest.fixture(scope="module")
def expected(mixed):
    """The study's answer as the library gives it."""
    from braintumor.studies import answer_study, read_study

    return answer_study(mixed, read_study([(f, f"f{i}") for i, f in enumerate(series_files())]))


def record_states(page) -> None:
    """Keep every status line and whether the progress bar was determinate at the time."""
    page.evaluate("""() => {
        window.seenStates = [];
        const status = document.getElementById('status'), bar = document.getElementById('progress');
        const note = () => window.seenStates.push({text: status.textContent, bar: !bar.hidden,
                                                   determinate: bar.hasAttribute('value')});
        new MutationObserver(note).observe(status, {childList: true, characterData: true, subtree: true});
    }""")


def wait_for_study(page, timeout_ms: int = 60_000) -> None:
    """The study's answer on screen (an error instead fails at once, with its words)."""
    page.wait_for_function("() => { const s = document.getElementById('study');"
                           " return (!s.hidden && s.dataset.state === 'done')"
                           " || !document.getElementById('error').hidden; }", timeout=timeout_ms)
    assert page.is_hidden("#error"), page.text_content("#error")
    assert page.is_visible("#study")
    page.wait_for_function("() => Array.from(document.querySelectorAll('.strip img'))"
                           ".every(i => i.complete && i.naturalWidth > 0)", timeout=timeout_ms)


def thumbnails(page) -> list[np.ndarray]:
    from PIL import Image
    import base64

    urls = page.eval_on_selector_all(".series[data-series='1'] .strip img", "els => els.map(e => e.src)")
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1])))) for u in urls]


def check_strip(page, expected: dict) -> None:
    """One thumbnail per slice, in anatomical order, each marked as its answer says."""
    series = expected["series"][0]
    items = page.eval_on_selector_all(".series[data-series='1'] .strip li", """els => els.map(li => {
        const b = li.querySelector('button'), s = getComputedStyle(b);
        return {index: +li.dataset.index, mark: li.dataset.mark, label: li.dataset.label || null,
                colour: s.borderTopColor, style: s.borderTopStyle, title: b.title,
                badge: (li.querySelector('.badge') || {}).textContent || null,
                star: !!li.querySelector('.star')}; })""")
    assert [i["index"] for i in items] == list(range(N))
    pictures = thumbnails(page)
    assert len(pictures) == N
    assert [mark_of(p) for k, p in enumerate(pictures) if k != BLANK] == [k for k in range(N) if k != BLANK]
    suspicious = {m["index"] for m in series["most_suspicious"]}
    for item, s in zip(items, series["slices"]):
        if s["blank"] or s.get("decision") == "rejected":
            assert item["mark"] == "not-analysed" and item["badge"] == "\u00d7" and item["style"] == "dotted"
            assert "not analysed" in item["title"]
        elif s["decision"] == "uncertain":
            assert item["mark"] == "uncertain" and item["badge"] == "?" and item["style"] == "dashed"
            assert "uncertain, could be Glioma or No tumour" in item["title"]
        else:
            assert item["mark"] == "classified" and item["label"] == s["label"] and item["badge"] is None
            assert item["colour"] == RGB[s["label"]] and item["style"] == "solid"
            assert NAMES[s["label"]] in item["title"]
        assert item["star"] == (s["index"] in suspicious)
    assert {2, BLANK} <= {i["index"] for i in items if i["mark"] != "classified"}


def check_legend(page) -> None:
    for item, words in (("#legend-classes", "class"), ("#legend-uncertain", "uncertain"),
                        ("#legend-not-analysed", "not analysed"), ("#legend-suspicious", "most suspicious")):
        assert page.is_visible(item), item
        assert words in page.text_content(item), item
    shown = page.text_content("#legend-class-list")
    assert all(NAMES[c] in shown for c in ("glioma", "meningioma", "notumor")) and NAMES["pituitary"] not in shown


def open_slice(page, index: int) -> None:
    page.click(f".series[data-series='1'] .strip li[data-index='{index}'] button")
    page.wait_for_selector("#slice-view[data-state='done']", timeout=60_000)
    page.wait_for_function("() => { const i = document.getElementById('slice-heat');"
                           " return !i.hidden && i.complete && i.naturalWidth > 0; }", timeout=30_000)


def test_a_study_as_several_files_at_1280(browser, server, expected, tmp_path):
    from braintumor.studies import read_sr

    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    seen = watch(page, server.url)
    page.goto(server.url)
    record_states(page)
    paths = write_shuffled(tmp_path / "exam", series_files())
    page.set_input_files("#file", [str(p) for p in paths])
    wait_for_study(page)

    states = page.evaluate("() => window.seenStates")
    assert any(s["text"].startswith("Uploading 8 files") and s["bar"] for s in states), states
    assert any(s["text"] == "Analysing every slice of 8 files\u2026" and s["bar"] and not s["determinate"]
               for s in states), states
    assert page.is_hidden("#progress") and page.text_content("#status") == ""
    assert page.is_hidden("#result")
    answer = expected["answer"]
    assert page.text_content("#study-headline") == answer["headline"]
    assert page.text_content("#study-reason") == answer["reason"]
    assert "1 series \u00b7 8 slices" in page.text_content("#study-facts")
    assert "8 slices, ordered by position" in page.text_content(".series h3")
    check_strip(page, expected)
    check_legend(page)
    text = page.text_content("#study")
    for secret in (PATIENT_NAME, PATIENT_ID, "IM000", str(tmp_path)):
        assert secret not in text

    shot(page, tmp_path, "study-1280.png", full_page=True)

    # a slice larger, with its heat map and the box the model found (slice 3: the model's own glioma)
    open_slice(page, 3)
    assert page.text_content("#slice-view-title") == "Series 1, slice 3"
    assert page.eval_on_selector("#slice-original", "e => e.getBoundingClientRect().width") > 250
    assert page.is_visible("#slice-box-original") and page.is_visible("#slice-box-heat")
    assert "tumour box" in page.text_content("#slice-original-caption")
    assert page.text_content("#slice-heat-caption").startswith("Grad-CAM")
    assert page.text_content("#slice-view-status").startswith("Glioma")
    shot(page, tmp_path, "study-slice-1280.png")
    page.click("#slice-view button")
    assert page.is_hidden("#slice-view")
    open_slice(page, 6)
    assert page.text_content("#slice-view-status").startswith("Meningioma")
    page.click("#slice-view button")
    open_slice(page, 0)  # no tumour: no box
    assert page.is_hidden("#slice-box-original") and page.text_content("#slice-view-status").startswith("No tumour")
    page.click("#slice-view button")

    # the structured report of the series, as DICOM
    assert page.is_visible("#download-sr")
    with page.expect_download(timeout=60_000) as info:
        page.click("#download-sr")
    target = tmp_path / "report.dcm"
    info.value.save_as(target)
    assert info.value.suggested_filename == "series-1.sr.dcm"
    ds = pydicom.dcmread(target)
    assert ds.Modality == "SR"
    back = read_sr(ds)
    assert [r["index"] for r in back] == list(range(N))
    assert [r["label"] for r in back if r["decision"] == "classified"] == \
        [s["label"] for s in expected["series"][0]["slices"] if s.get("decision") == "classified"]
    page.wait_for_function("() => document.getElementById('sr-status').textContent"
                           ".startsWith('Structured report downloaded')")
    assert not seen["errors"], seen["errors"]
    assert not seen["elsewhere"], seen["elsewhere"]
    page.close()



def test_a_study_as_a_zip_on_a_phone(browser, server, expected, tmp_path):
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                            is_mobile=True, has_touch=True)
    seen = watch(page, server.url)
    page.goto(server.url)
    files = series_files()
    order = list(range(N))
    random.Random(2).shuffle(order)
    archive = tmp_path / "exam.zip"
    archive.write_bytes(zipped({f"exam/series 3/IM{i:04d}": files[k] for i, k in enumerate(order)}))
    drop_file(page, "#dropzone", archive, "application/zip")
    wait_for_study(page)
    page.wait_for_timeout(300)

    # the study's answer is above the fold
    for part in ("#study-headline", "#study-reason"):
        box = page.eval_on_selector(part, "e => e.getBoundingClientRect().toJSON()")
        assert 0 <= box["top"] and box["bottom"] <= 844, (part, box)
    assert page.text_content("#study-headline") == expected["answer"]["headline"]
    check_strip(page, expected)
    check_legend(page)
    # the page fits the phone; the strip scrolls sideways within it
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    strip = page.eval_on_selector(".strip", "e => ({client: e.clientWidth, scroll: e.scrollWidth,"
                                            " overflow: getComputedStyle(e).overflowX})")
    assert strip["scroll"] > strip["client"] and strip["overflow"] == "auto", strip
    page.eval_on_selector(".strip", "e => { e.scrollLeft = e.scrollWidth; }")
    assert page.eval_on_selector(".strip", "e => e.scrollLeft") > 0
    last = page.eval_on_selector(f".strip li[data-index='{N - 1}']", "e => e.getBoundingClientRect().toJSON()")
    assert last["right"] <= 390
    page.eval_on_selector(".strip", "e => { e.scrollLeft = 0; }")
    shot(page, tmp_path, "study-390.png")
    shot(page, tmp_path, "study-390-full.png", full_page=True)

    open_slice(page, 4)
    view = page.eval_on_selector("#slice-view", "e => e.getBoundingClientRect().toJSON()")
    assert view["left"] >= 0 and view["right"] <= 390
    left = page.eval_on_selector("#slice-original", "e => e.getBoundingClientRect().toJSON()")
    right = page.eval_on_selector("#slice-heat", "e => e.getBoundingClientRect().toJSON()")
    assert right["x"] > left["x"] + left["width"] - 1 and left["width"] > 120
    shot(page, tmp_path, "study-slice-390.png")
    assert not seen["errors"], seen["errors"]
    assert not seen["elsewhere"], seen["elsewhere"]
    page.close()


def drop_folder(page, selector: str, folder: Path) -> None:
    """Drop a real folder on an element, as from a file manager (Chromium's DevTools protocol: the
    page sees a directory entry, as it would)."""
    box = page.eval_on_selector(selector, "e => e.getBoundingClientRect().toJSON()")
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    data = {"items": [], "files": [str(folder)], "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        cdp.send("Input.dispatchDragEvent", {"type": kind, "x": x, "y": y, "data": data})
    cdp.detach()


def test_a_folder_dropped_or_chosen_leaves_hidden_files_out_and_counts_the_others(browser, server, expected,
                                                                                  tmp_path):
    folder = tmp_path / "exam"
    write_shuffled(folder / "series 3", series_files())  # a folder within the folder
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 100)
    (folder / "README.txt").write_text("exported by a PACS\n")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = watch(page, server.url)
    page.goto(server.url)

    drop_folder(page, "#dropzone", folder)
    wait_for_study(page)
    assert page.text_content("#study-headline") == expected["answer"]["headline"]
    assert "A folder: 9 files" in page.text_content("#preview-caption")  # the hidden file left out
    assert "1 file left out: not a DICOM or NIfTI file" in page.text_content("#study-facts")
    check_strip(page, expected)

    page.evaluate("() => { document.getElementById('study').dataset.state = 'idle'; }")
    assert page.get_attribute("#folder", "webkitdirectory") is not None
    page.set_input_files("#folder", str(folder))  # "Choose a study folder"
    wait_for_study(page)
    assert "A folder: 9 files" in page.text_content("#preview-caption")
    assert "1 file left out: not a DICOM or NIfTI file" in page.text_content("#study-facts")
    check_strip(page, expected)
    assert not seen["errors"], seen["errors"]
    page.close()


def test_two_series_show_two_strips_each_with_its_answer_and_a_zip_of_reports(browser, server, tmp_path):
    from pydicom import uid

    study_uid = uid.generate_uid()
    files = mr_series(3, study_uid=study_uid, series_number=1) + mr_series(4, study_uid=study_uid, series_number=2)
    paths = write_shuffled(tmp_path / "two", files)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    seen = watch(page, server.url)
    page.goto(server.url)
    page.set_input_files("#file", [str(p) for p in paths])
    wait_for_study(page)
    assert "2 series \u00b7 7 slices" in page.text_content("#study-facts")
    counts = page.eval_on_selector_all(".series", "els => els.map(e => e.querySelectorAll('.strip li').length)")
    assert counts == [3, 4]
    answers = page.eval_on_selector_all(".series .series-answer", "els => els.map(e => e.textContent)")
    assert len(answers) == 2 and all(a.strip() for a in answers)
    with page.expect_download(timeout=60_000) as info:
        page.click("#download-sr")
    assert info.value.suggested_filename == "study-sr.zip"
    target = tmp_path / "sr.zip"
    info.value.save_as(target)
    assert zipfile.ZipFile(target).namelist() == ["series-1.sr.dcm", "series-2.sr.dcm"]
    assert not seen["errors"], seen["errors"]
    page.close()


def test_more_files_than_one_form_may_hold_go_as_one_zip(browser, server, tmp_path):
    n = 70
    paths = write_shuffled(tmp_path / "long", mr_series(n, size=48), seed=9)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = watch(page, server.url)
    page.goto(server.url)
    page.evaluate("""() => { window.sentParts = []; const append = FormData.prototype.append;
        FormData.prototype.append = function (key, value, name) {
            if (key === 'file') { window.sentParts.push({name: name, type: value.type}); }
            return append.apply(this, arguments); }; }""")
    page.set_input_files("#file", [str(p) for p in paths])
    wait_for_study(page)  # 70 parts would be refused (over 64 form fields): one .zip made in the page
    assert page.evaluate("() => window.sentParts") == [{"name": "upload-1.zip", "type": "application/zip"}]
    assert page.eval_on_selector_all(".strip li", "els => els.map(e => +e.dataset.index)") == list(range(n))
    assert "70 slices" in page.text_content("#study-facts")
    assert not seen["errors"], seen["errors"]
    page.close()


def test_bad_uploads_show_words_and_no_earlier_answer(browser, server, sample_files, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = watch(page, server.url)
    page.goto(server.url)
    paths = write_shuffled(tmp_path / "exam", series_files(4, blank=None))
    page.set_input_files("#file", [str(p) for p in paths])
    wait_for_study(page)

    evil = tmp_path / "evil.zip"
    evil.write_bytes(zipped({"ok/IM0001": series_files(1, blank=None)[0], "../../etc/IM0002": b"x"}))
    drop_file(page, "#dropzone", evil, "application/zip")
    page.wait_for_selector("#error:not([hidden])")
    message = page.text_content("#error")
    assert message.startswith("evil.zip: Entry 2 is named outside the archive"), message
    assert page.is_hidden("#study") and page.is_hidden("#result")  # nothing of the answer before
    assert "upload" not in message and "{" not in message

    page.set_input_files("#file", [str(paths[0])] + [str(paths[1])])
    wait_for_study(page)
    assert page.is_hidden("#error")
    letters = []
    for i in range(2):
        letters.append(tmp_path / f"letter{i}.txt")
        letters[-1].write_text("Dear doctor, this is not a scan.\n")
    page.set_input_files("#file", [str(p) for p in letters])
    page.wait_for_selector("#error:not([hidden])")
    message = page.text_content("#error")
    assert message.startswith("No DICOM or NIfTI image was found in what was sent (2 not a DICOM or NIfTI file)"), \
        message
    assert message.endswith("Send a study's DICOM files (or NIfTI volumes), a folder of them, or one .zip.")
    assert page.is_hidden("#study") and page.is_hidden("#progress")
    shot(page, tmp_path, "study-error.png")

    page.set_input_files("#file", [str(sample_files[0][0]), str(sample_files[1][0])])  # two photographs of scans
    page.wait_for_function("() => document.getElementById('error').textContent.startsWith('Please drop one image')")

    page.set_input_files("#file", str(letters[0]))  # one ordinary file goes the single-scan way, as before
    page.wait_for_function("() => document.getElementById('error').textContent.startsWith('This file cannot be read')")
    assert "letter0.txt" in page.text_content("#error")
    # the refusals above are logged by chromium as failed loads; nothing else may fail
    assert all("status of 400" in e or "status of 415" in e for e in seen["errors"]), seen["errors"]
    page.close()
