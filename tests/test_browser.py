"""The page in a real browser: Debian's chromium, headless, driven by Playwright for Python.

The real app runs on waitress on a free 127.0.0.1 port; a scan is dropped on the page and the chart,
the label and the heat map must appear. Skips when playwright or chromium is not installed.

Also a script that takes the README screenshot with the shipped model and a real sample scan::

    python tests/test_browser.py --out docs/screenshot.png [--model FILE] [--scan FILE]
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = os.environ.get("BRAINTUMOR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NAMES = {"glioma": "Glioma", "meningioma": "Meningioma", "notumor": "No tumour", "pituitary": "Pituitary tumour"}
COLOURS = ["#ef4444", "#f59e0b", "#10b981", "#6366f1"]
SAMPLE = Path(__file__).parent / "data" / "sample"

pytestmark = pytest.mark.slow


def chromium_path() -> str | None:
    path = CHROMIUM if os.path.isfile(CHROMIUM) else shutil.which("chromium")
    return path if path and os.access(path, os.X_OK) else None


def launch(pw):
    return pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)


def drop_file(page, selector: str, path: Path, mime: str = "image/jpeg") -> None:
    """Drop a file on an element as a person dragging it from their desktop would."""
    payload = base64.b64encode(path.read_bytes()).decode("ascii")
    transfer = page.evaluate_handle(
        """([data, name, type]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type }));
            return dt;
        }""",
        [payload, path.name, mime],
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def watch(page, base_url: str) -> dict[str, list[str]]:
    """Collect console errors, page errors and requests to anywhere but the app."""
    seen: dict[str, list[str]] = {"errors": [], "elsewhere": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: None if r.url.startswith((base_url, "data:", "blob:"))
            else seen["elsewhere"].append(r.url))
    return seen


def wait_for_result(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_selector("#result[data-state='done']", state="attached", timeout=timeout_ms)
    page.wait_for_function("() => { const i = document.getElementById('gradcam');"
                           " return i.complete && i.naturalWidth > 0; }", timeout=timeout_ms)
    page.wait_for_timeout(400)  # the doughnut's short animation


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def sync_api():
    api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if chromium_path() is None:
        pytest.skip(f"no chromium at {CHROMIUM}")
    return api


@pytest.fixture(scope="module")
def server(predictor):
    from braintumor.web import create_app
    from braintumor.web.serve import BackgroundServer

    with BackgroundServer(create_app(predictor=predictor), threads=2) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser(sync_api):
    with sync_api.sync_playwright() as pw:
        try:
            b = launch(pw)
        except Exception as exc:  # e.g. a chromium that cannot start in this container
            pytest.skip(f"chromium does not start: {str(exc).splitlines()[0]}")
        yield b
        b.close()


# ------------------------------------------------------------------------------------- tests


def test_the_page_colours_the_heat_map_as_the_server_would(browser, server, predictor, sample_files):
    """The page asks for the heat map's grey levels and colours them itself: the picture it shows is
    the server's overlay (braintumor.inference.cam.render_overlay) to within a grey level or two."""
    from braintumor.imaging import load_image
    from braintumor.inference.cam import render_overlay

    scan = sample_files[4][0]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url)
    drop_file(page, "#dropzone", scan)
    wait_for_result(page)
    shown = page.evaluate("""() => { const i = document.getElementById('gradcam');
        const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(i, 0, 0);
        return Array.from(g.getImageData(0, 0, c.width, c.height).data); }""")
    page.close()
    gray = load_image(scan)
    e = predictor.explain(gray)
    want = np.asarray(render_overlay(np.asarray(gray), e["heatmap"])).astype(int)
    got = np.array(shown, dtype=int).reshape(want.shape[0], want.shape[1], 4)[..., :3]
    assert np.abs(got - want).max() <= 2


def test_dropped_scan_shows_chart_label_and_heat_map(browser, server, predictor, sample_files, tmp_path):
    from braintumor.imaging import load_image

    scan = sample_files[0][0]
    expected = predictor.predict(load_image(scan))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = watch(page, server.url)
    page.goto(server.url)
    assert "not for diagnosis" in page.text_content(".notice")
    assert page.is_hidden("#result")

    drop_file(page, "#dropzone", scan)
    wait_for_result(page)

    assert page.text_content("#label") == NAMES[expected["label"]]
    assert page.text_content("#confidence").endswith("%")
    assert "ms" in page.text_content("#timing")
    chart = page.evaluate("() => { const c = Chart.getChart('chart');"
                          " return c && {type: c.config.type, data: c.data.datasets[0].data,"
                          " colours: c.data.datasets[0].backgroundColor}; }")
    assert chart["type"] == "doughnut"
    assert chart["data"] == pytest.approx([expected["probabilities"][c] for c in predictor.classes])
    assert chart["colours"] == COLOURS
    width = load_image(scan).size[0]  # both pictures show the whole scan as uploaded
    assert page.evaluate("() => document.getElementById('gradcam').naturalWidth") == width
    assert page.evaluate("() => document.getElementById('original').naturalWidth") == width
    assert page.is_hidden("#box-original")  # this model has no box head
    assert page.is_visible("#preview")

    page.fill("#opacity", "30")
    page.dispatch_event("#opacity", "input")
    assert page.evaluate("() => document.getElementById('gradcam').style.opacity") == "0.3"
    assert page.text_content("#opacity-value") == "30%"

    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    assert not seen["errors"], seen["errors"]  # a CSP violation would show here
    assert not seen["elsewhere"], seen["elsewhere"]
    page.close()


def test_phone_file_picker_and_errors_in_words(browser, server, sample_files, tmp_path):
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                            is_mobile=True, has_touch=True)
    seen = watch(page, server.url)
    page.goto(server.url)

    letter = tmp_path / "letter.txt"
    letter.write_text("Dear doctor, this is not a scan.\n" * 10)
    drop_file(page, "#dropzone", letter, "text/plain")
    page.wait_for_selector("#error:not([hidden])")
    message = page.text_content("#error")
    assert message.startswith("This file cannot be read as a scan. letter.txt: "), message  # the name sent
    assert "upload" not in message and "{" not in message

    page.set_input_files("#file", str(sample_files[-1][0]))  # the file picker
    wait_for_result(page)
    assert page.is_hidden("#error")
    assert page.text_content("#label") in NAMES.values()
    page.wait_for_timeout(300)
    top = page.eval_on_selector("#result-title", "e => e.getBoundingClientRect().top")
    assert -2 <= top < 844 / 2  # the answer was scrolled into view (it starts below the scan on a phone)
    # fits the phone's width; original and heat map side by side
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    left = page.eval_on_selector("#original", "e => e.getBoundingClientRect().toJSON()")
    right = page.eval_on_selector("#gradcam", "e => e.getBoundingClientRect().toJSON()")
    assert right["x"] > left["x"] + left["width"] - 1 and abs(right["y"] - left["y"]) < 2
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    # the 4xx above is logged by chromium as a failed resource load; nothing else may fail
    assert all("status of 415" in e for e in seen["errors"]), seen["errors"]
    page.close()


def test_page_shows_the_votes_of_several_models(browser, sample_files, tmp_path):
    from conftest import box_checkpoint

    from braintumor.inference.predictor import Predictor
    from braintumor.web import create_app
    from braintumor.web.serve import BackgroundServer

    pair = Predictor.load([box_checkpoint(tmp_path / "a.safetensors", always=0),
                           box_checkpoint(tmp_path / "b.safetensors", always=3)])
    with BackgroundServer(create_app(predictor=pair), threads=1) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(srv.url)
        drop_file(page, "#dropzone", sample_files[0][0])
        wait_for_result(page)
        votes = page.text_content("#votes")
        assert votes.startswith("1 of 2 models agree.")
        assert "a: Glioma" in votes and "b: Pituitary tumour" in votes
        assert page.text_content("#label") == "Uncertain: refer" and page.is_hidden("#answer-conf")
        assert "Glioma" in page.text_content("#could-be") and "Pituitary tumour" in page.text_content("#could-be")
        page.close()


def test_dropped_scan_shows_similar_cases_in_score_order_larger_on_click_and_the_notice(
        browser, random_checkpoint, sample_dir, sample_files, tmp_path):
    from braintumor.inference.predictor import Predictor
    from braintumor.inference.similar import NOTICES, Folder, build_index
    from braintumor.web import create_app
    from braintumor.web.serve import BackgroundServer

    p = Predictor.load(random_checkpoint)
    trained = frozenset(f"{q.parent.name}/{q.name}" for q, _ in sample_files if q != sample_files[9][0])
    build_index(p, [Folder(sample_dir, "", trained)], p.classes, show_progress=False).save(tmp_path / "index.safetensors")
    p.attach_index(tmp_path / "index.safetensors")
    with BackgroundServer(create_app(predictor=p), threads=2) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        seen = watch(page, srv.url)
        page.goto(srv.url)
        page.click(".options summary")  # the field is among the options
        page.fill("#similar", "4")
        drop_file(page, "#dropzone", sample_files[8][0])  # a scan the model trained on
        wait_for_result(page)
        assert page.is_visible("#similar-box")
        items = page.query_selector_all("#similar-list li")
        assert len(items) == 4
        assert page.evaluate("() => Array.from(document.querySelectorAll('#similar-list img'))"
                             ".every(i => i.complete && i.naturalWidth > 0)")
        first = page.text_content("#similar-list li:first-child")
        assert "same picture" in first and "(trained on)" in first and NAMES[sample_files[8][1]] in first
        assert page.text_content("#near-copy") == NOTICES["same picture"]
        # the orange border of "same picture" is explained beside it, and only the marks on screen
        assert page.eval_on_selector("#similar-list li:first-child img", "e => getComputedStyle(e).outlineStyle") \
            == "solid"
        assert page.is_visible("#legend-copy") and "same picture" in page.text_content("#legend-copy")
        assert "Orange border" in page.text_content("#legend-copy")
        dashed = page.evaluate("() => document.querySelectorAll('#similar-list li.neighbour').length")
        assert page.is_visible("#legend-neighbour") == (dashed > 0)
        assert "colour" in page.text_content("#similar-box .hint")  # the line under each caption
        page.click("#similar-list li:first-child button")
        assert page.is_visible("#case-view")
        assert page.eval_on_selector("#case-view-img", "e => e.getBoundingClientRect().width") > 300
        page.click("#case-view button")
        assert page.is_hidden("#case-view")
        drop_file(page, "#dropzone", sample_files[9][0])  # a scan it did not train on: its own picture, no notice
        page.wait_for_function("() => document.getElementById('similar-list').textContent.includes('not') "
                               "|| document.getElementById('near-copy').hidden")
        wait_for_result(page)
        assert page.is_hidden("#near-copy")
        assert not seen["errors"], seen["errors"]
        assert not seen["elsewhere"], seen["elsewhere"]
        page.close()


def test_try_a_sample_scan_shows_its_true_class(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = watch(page, server.url)
    page.goto(server.url)
    assert page.is_hidden("#truth")
    page.click("#try-sample")
    wait_for_result(page)
    truth = page.text_content("#truth")
    assert truth.startswith("Sample scan: its true class is ")
    assert any(name in truth for name in NAMES.values())
    agrees = NAMES.get(next(k for k, v in NAMES.items() if v in truth.split(". ")[0])) == page.text_content("#label")
    assert truth.endswith("agrees.") == agrees
    assert not seen["errors"], seen["errors"]
    assert not seen["elsewhere"], seen["elsewhere"]
    page.close()


def test_download_report(browser, server, sample_files, tmp_path):
    pypdf = pytest.importorskip("pypdf", reason="pypdf is not installed")
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    seen = watch(page, server.url)
    page.goto(server.url)
    drop_file(page, "#dropzone", sample_files[4][0])
    wait_for_result(page)
    with page.expect_download(timeout=60_000) as info:
        page.click("#download-report")
    target = tmp_path / "report.pdf"
    info.value.save_as(target)
    assert info.value.suggested_filename.endswith(".pdf")
    text = pypdf.PdfReader(target).pages[0].extract_text()
    assert "case report" in text and page.text_content("#label") in text
    page.wait_for_function("() => document.getElementById('report-status').textContent === 'Report downloaded.'")
    assert not seen["errors"], seen["errors"]
    assert not seen["elsewhere"], seen["elsewhere"]
    page.close()


def test_feedback_with_and_without_consent(browser, predictor, sample_files, tmp_path):
    """'Was this right?': a correction without consent keeps no image; with consent the pixels."""
    import io
    import sqlite3

    import numpy as np
    from PIL import Image

    from braintumor.imaging import load_image
    from braintumor.web import create_app
    from braintumor.web.serve import BackgroundServer

    db = tmp_path / "feedback.sqlite"
    with BackgroundServer(create_app({"FEEDBACK_DB": str(db)}, predictor=predictor), threads=2) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        seen = watch(page, srv.url)
        page.goto(srv.url)
        assert page.is_hidden("#feedback")

        first, second = sample_files[0], sample_files[6]
        drop_file(page, "#dropzone", first[0])
        wait_for_result(page)
        assert page.is_visible("#feedback")
        shown = page.text_content("#label")
        predicted = next(k for k, v in NAMES.items() if v == shown)
        assert page.evaluate("() => document.querySelectorAll('#feedback input[name=fb-label]:checked').length") == 0
        assert page.is_visible("#feedback input[value='unsure']") and page.is_visible("#feedback input[value='not-mri']")
        assert "Not a brain MRI slice" in page.text_content("#feedback fieldset")
        style = page.eval_on_selector("#fb-send", "e => getComputedStyle(e).backgroundColor")
        assert style == "rgb(37, 99, 235)"  # the page's accent, not the browser's grey button
        corrected = next(c for c in NAMES if c != predicted)
        page.check(f"#feedback input[value='{corrected}']")
        page.fill("#fb-comment", "second reader disagrees")
        assert not page.is_checked("#fb-keep")
        page.click("#fb-send")
        page.wait_for_function("() => document.getElementById('fb-status').textContent.startsWith('Thank you')")
        assert "without the scan" in page.text_content("#fb-status")

        drop_file(page, "#dropzone", second[0])
        wait_for_result(page)
        assert page.text_content("#fb-status") == ""  # a fresh form for the new answer
        page.click("#fb-send")  # nothing chosen: the form asks
        assert "Not sure" in page.text_content("#fb-status")
        page.check(f"#feedback input[value='{second[1]}']")
        page.check("#fb-keep")
        page.click("#fb-send")
        page.wait_for_function("() => document.getElementById('fb-status').textContent.startsWith('Thank you')")
        assert "with the scan" in page.text_content("#fb-status")
        assert not seen["errors"], seen["errors"]
        assert not seen["elsewhere"], seen["elsewhere"]
        page.close()

    rows = sqlite3.connect(db).execute(
        "SELECT predicted, corrected, comment, image_png FROM feedback ORDER BY id").fetchall()
    assert len(rows) == 2
    assert rows[0][:3] == (predicted, corrected, "second reader disagrees") and rows[0][3] is None
    assert rows[1][1] == second[1] and rows[1][3] is not None
    kept = np.asarray(Image.open(io.BytesIO(rows[1][3])))
    assert np.array_equal(kept, np.asarray(load_image(second[0])))


@pytest.mark.parametrize("extra, lead, words, analysed", [
    ({"decision": "uncertain", "prediction_set": ["glioma", "meningioma"], "headline": "Uncertain: refer",
      "reason": "More than one class fits this scan: Glioma or Meningioma."},
     "Uncertain: refer", ["It could be Glioma or Meningioma.", "More than one class fits this scan"], True),
    ({"decision": "rejected", "reason": "This looks like a photograph, not a brain MRI slice.", "headline": "Not analysed",
      "prediction_set": []},
     "Not analysed", ["This looks like a photograph, not a brain MRI slice."], False),
])
def test_page_shows_uncertain_and_rejected_answers_for_what_they_are(browser, predictor, sample_files, extra, lead,
                                                                     words, analysed):
    """An uncertain answer leads with "Uncertain: refer" and the classes it could be; a rejected one
    with "Not analysed" and its reason, and no probability, chart or heat map."""
    from braintumor.web import create_app
    from braintumor.web.serve import BackgroundServer

    class Deciding:  # the real predictor, with a decision added to its results
        def __getattr__(self, name):
            return getattr(predictor, name)

        def explain(self, image, **kw):
            return {**predictor.explain(image, **kw), **extra}

    with BackgroundServer(create_app(predictor=Deciding()), threads=1) as srv:
        page = browser.new_page(viewport={"width": 1024, "height": 800})
        page.goto(srv.url)
        drop_file(page, "#dropzone", sample_files[3][0])
        page.wait_for_selector("#result[data-state='done']", state="attached", timeout=60_000)
        assert page.text_content("#label") == lead and page.is_hidden("#answer-conf")
        text = page.text_content("#result")
        assert all(w in text for w in words), text
        assert text.count("radiologist") <= 1 and "notumor" not in text and "coverage" not in text
        assert page.is_visible("#analysis") == analysed and page.is_visible("#heat-figure") == analysed
        # nothing of an analysed page on one not analysed: no opacity slider, no report to download
        assert page.is_visible("#opacity-row") == analysed and page.is_visible("#download-report") == analysed
        page.close()


def test_an_image_not_analysed_shows_its_reason_and_nothing_of_an_analysed_page(browser, server, tmp_path):
    """A real refusal (a blank image): the headline and the reason; no class, probability, chart,
    heat map, opacity slider or report download. An analysed scan afterwards brings them back."""
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 0).save(blank)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = watch(page, server.url)
    page.goto(server.url)
    drop_file(page, "#dropzone", blank, mime="image/png")
    page.wait_for_selector("#result[data-state='done']", state="attached", timeout=60_000)
    assert page.text_content("#label") == "Not analysed" and page.get_attribute("#result", "data-decision") == "rejected"
    assert "blank" in page.text_content("#reason")
    for hidden in ("#answer-conf", "#analysis", "#heat-figure", "#opacity-row", "#opacity", "#report-row",
                   "#download-report", "#similar-box", "#truth"):
        assert page.is_hidden(hidden), hidden
    text = page.text_content("#result")
    assert not any(name in text for name in NAMES.values()) and "%" not in text.split("Took")[0]
    assert not seen["errors"], seen["errors"]
    page.close()


def test_a_sample_scan_referred_is_not_called_agreeing(browser, predictor):
    """"Try a sample scan" on an uncertain answer: the check compares the decision with the truth
    ("referred; the true class is ..."), never "agrees", and not in the colour of agreement."""
    from braintumor.web import create_app
    from braintumor.web.serve import BackgroundServer

    class Referring:  # the real predictor, every answer uncertain between No tumour and Glioma
        def __getattr__(self, name):
            return getattr(predictor, name)

        def explain(self, image, **kw):
            return {**predictor.explain(image, **kw), "decision": "uncertain", "headline": "Uncertain: refer",
                    "prediction_set": ["notumor", "glioma"], "reason": "A tumour cannot be ruled out."}

    with BackgroundServer(create_app(predictor=Referring()), threads=1) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(srv.url)
        page.click("#try-sample")
        wait_for_result(page)
        truth = page.text_content("#truth")
        assert truth.startswith("Sample scan: referred; the true class is "), truth
        true_name = truth.split("the true class is ")[1].split(",")[0]
        among = true_name in ("No tumour", "Glioma")
        assert truth.endswith(", one of the classes it could be." if among else ", not one of the classes it could be.")
        assert "agrees" not in truth and "differs" not in truth
        assert page.get_attribute("#truth", "data-outcome") == "referred"
        assert page.eval_on_selector("#truth", "e => getComputedStyle(e).color") != "rgb(6, 95, 70)"  # not green
        assert page.is_visible("#opacity-row") and page.is_visible("#download-report")  # an analysed scan
        page.close()


def test_the_heat_map_follows_the_chosen_method_at_once(browser, server, sample_files):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = watch(page, server.url)
    page.goto(server.url)
    drop_file(page, "#dropzone", sample_files[0][0])
    wait_for_result(page)
    assert page.text_content("#gradcam-caption").startswith("Grad-CAM: where the model looked for ")
    page.click(".options summary")
    with page.expect_response(lambda r: r.url.endswith("/api/predict")) as info:
        page.select_option("#cam_method", "eigencam")  # no new drop: the page asks again itself
    assert info.value.status == 200
    page.wait_for_function("() => document.getElementById('gradcam-caption').textContent.startsWith('EigenCAM')")
    caption = page.text_content("#gradcam-caption")
    assert "the same for every class" in caption and "looked for" not in caption
    assert not seen["errors"], seen["errors"]
    page.close()


def test_an_error_clears_the_previous_answer(browser, server, sample_files, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url)
    drop_file(page, "#dropzone", sample_files[0][0])
    wait_for_result(page)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    drop_file(page, "#dropzone", broken)
    page.wait_for_selector("#error:not([hidden])")
    assert page.is_hidden("#result")  # no earlier answer beside the new error
    page.wait_for_timeout(300)
    assert page.is_hidden("#preview")  # and no broken picture
    page.close()


# -------------------------------------------------------------------- the README screenshot


def take_screenshot(out: Path, models: list[str] | None, scan: Path, width: int = 1280) -> dict:
    """Serve ``models`` (None: the shipped model), drop ``scan`` on the page, save a screenshot."""
    from playwright.sync_api import sync_playwright

    from braintumor.inference.predictor import Predictor
    from braintumor.web import create_app
    from braintumor.web.serve import BackgroundServer

    from braintumor.web.serve import warm_up

    predictor = Predictor.load(models or None)
    warm_up(predictor)  # the time shown is that of a running server, not of its first request
    with BackgroundServer(create_app(predictor=predictor), threads=2) as srv, sync_playwright() as pw:
        b = launch(pw)
        page = b.new_page(viewport={"width": width, "height": 860})
        page.goto(srv.url)
        drop_file(page, "#dropzone", scan)
        wait_for_result(page)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        label = page.text_content("#label")
        b.close()
    return {"out": str(out), "model": predictor.name, "scan": str(scan), "label": label}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Take the README screenshot of the page.")
    ap.add_argument("--out", type=Path, default=Path("docs/screenshot.png"))
    ap.add_argument("--model", action="append", default=None, help="checkpoint (default: shipped)")
    ap.add_argument("--scan", type=Path, default=SAMPLE / "glioma" / "Tr-gl_0118.jpg")
    args = ap.parse_args()
    print(take_screenshot(args.out, args.model, args.scan))


def test_the_tumour_box_is_drawn_over_both_pictures(browser, sample_files, tmp_path):
    from PIL import Image

    from braintumor.inference.predictor import Predictor
    from braintumor.web import create_app
    from braintumor.web.serve import BackgroundServer
    from conftest import box_checkpoint

    p = Predictor.load(box_checkpoint(tmp_path / "box.safetensors", always=0), backend="torch")
    scan = tmp_path / "wide.png"
    Image.open(sample_files[0][0]).convert("L").resize((400, 300)).save(scan)
    expected = p.predict(scan)["box"]
    with BackgroundServer(create_app(predictor=p), threads=2) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(srv.url)
        drop_file(page, "#dropzone", scan, mime="image/png")
        wait_for_result(page)
        for fig in ("original", "gradcam"):
            assert page.is_visible(f"#box-{fig}")
            left = page.evaluate(f"() => document.getElementById('box-{fig}').style.left")
            assert float(left.rstrip("%")) == pytest.approx(100 * expected[0] / 400, abs=0.01)
            # the box sits where it should on the picture as displayed
            pic = page.evaluate(f"() => document.getElementById('box-{fig}').parentElement.getBoundingClientRect().width")
            box = page.evaluate(f"() => document.getElementById('box-{fig}').getBoundingClientRect().width")
            assert box == pytest.approx(pic * (expected[2] - expected[0]) / 400, abs=2)
        assert "tumour box" in page.text_content("#original-caption")
        page.close()
