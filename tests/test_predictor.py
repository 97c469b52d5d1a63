"""The Python API: Predictor.load / predict / explain / predict_batch, with a real (random) ResNet18."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from braintumor import CLASSES, Predictor
from braintumor.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from braintumor.imaging import ImageError, load_image
from braintumor.training.models import build_model
from braintumor.inference.predictor import tta_views
from braintumor.training.transforms import Preprocessing
from conftest import synthetic_scan

try:
    import onnxruntime  # noqa: F401

    HAVE_ORT = True
except ImportError:
    HAVE_ORT = False


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Converted models go to a folder of this module, not the user's cache; torch's thread count
    (set to 1 by ONNX Runtime Predictors) is restored for the tests that follow."""
    import os

    old = os.environ.get("BRAINTUMOR_CACHE")
    threads = torch.get_num_threads()
    folder = tmp_path_factory.mktemp("cache")
    os.environ["BRAINTUMOR_CACHE"] = str(folder)
    yield folder
    torch.set_num_threads(threads)
    if old is None:
        del os.environ["BRAINTUMOR_CACHE"]
    else:
        os.environ["BRAINTUMOR_CACHE"] = old


@pytest.fixture(scope="module")
def predictor(random_checkpoint) -> Predictor:
    return Predictor.load(random_checkpoint, backend="torch")


def _eager_probs(path, image, temperature=1.0) -> np.ndarray:
    ck = load_checkpoint(path)
    model = ck.build()
    with torch.inference_mode():
        logits = model(torch.from_numpy(ck.preprocessing.array([load_image(image)])))
    return torch.softmax(logits.double() / temperature, 1)[0].numpy()


def _probs(r: dict) -> np.ndarray:
    return np.array([r["probabilities"][c] for c in CLASSES])


def _check_result(r: dict) -> None:
    assert set(r) >= {"label", "confidence", "probabilities"}
    assert list(r["probabilities"]) == list(CLASSES)
    assert all(type(v) is float for v in r["probabilities"].values())
    assert type(r["confidence"]) is float and type(r["label"]) is str
    assert abs(sum(r["probabilities"].values()) - 1.0) < 1e-9
    assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
    assert r["confidence"] == r["probabilities"][r["label"]]


def test_predict_equals_the_eager_model_on_the_checkpoints_preprocessing(predictor, random_checkpoint, sample_files):
    for path, _ in sample_files[:4]:
        r = predictor.predict(path)
        _check_result(r)
        assert np.abs(_probs(r) - _eager_probs(random_checkpoint, path)).max() < 1e-5


def test_every_kind_of_input_gives_the_same_answer(predictor, sample_files):
    path = sample_files[0][0]
    data = path.read_bytes()
    pil = Image.open(path)
    ref = _probs(predictor.predict(path))
    for image in (str(path), data, io.BytesIO(data), pil, pil.convert("RGB"), np.asarray(pil.convert("L"))):
        assert np.abs(_probs(predictor.predict(image)) - ref).max() < 1e-6


@pytest.mark.parametrize("make", [
    lambda: Image.fromarray(synthetic_scan(1, 300)).convert("RGBA"),
    lambda: synthetic_scan(2, 90).astype(np.uint16) * 257,  # 16-bit
    lambda: synthetic_scan(3, 50).astype(np.float32) / 255.0,
    lambda: np.stack([synthetic_scan(4, 120)] * 3, axis=-1),  # RGB array
    lambda: Image.fromarray(np.pad(synthetic_scan(5, 100), ((0, 0), (60, 60)))),  # not square
])
def test_any_image_kind_and_size_is_accepted(predictor, make):
    r = predictor.predict(make())
    _check_result(r)


def test_exif_orientation_is_applied(predictor):
    img = Image.fromarray(np.pad(synthetic_scan(6, 64), ((0, 0), (0, 64))))  # 128 wide, 64 high
    rotated = img.transpose(Image.Transpose.ROTATE_90)  # what a camera stores sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view": undoes the ROTATE_90 above
    buf = io.BytesIO()
    rotated.save(buf, format="PNG", exif=exif)
    assert np.abs(_probs(predictor.predict(buf.getvalue())) - _probs(predictor.predict(img))).max() < 1e-6


def test_unreadable_input_raises_a_clear_image_error(predictor):
    with pytest.raises(ImageError, match="not an image"):
        predictor.predict(b"this is not an image at all")
    with pytest.raises(ImageError, match="no such file"):
        predictor.predict("/nonexistent/scan.png")


def test_temperature_in_the_checkpoint_divides_the_logits(tmp_path, sample_files):
    torch.manual_seed(3)
    model = build_model("resnet18", 4).eval()
    path = tmp_path / "t.safetensors"
    save_checkpoint(path, model, "resnet18", Preprocessing(img_size=64), meta={"temperature": 0.25})
    r = Predictor.load(path, backend="torch").predict(sample_files[0][0])
    assert np.abs(_probs(r) - _eager_probs(path, sample_files[0][0], 0.25)).max() < 1e-5
    assert np.abs(_probs(r) - _eager_probs(path, sample_files[0][0], 1.0)).max() > 1e-3


def test_explain_returns_heatmaps_over_the_input_and_the_whole_image(predictor, sample_files):
    e = predictor.explain(sample_files[0][0])
    _check_result(e)
    heat = e["heatmap_input"]
    assert heat.shape == (64, 64) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0 and heat.max() > 0.5
    size = Image.open(sample_files[0][0]).size
    assert e["heatmap"].shape == (size[1], size[0]) and e["heatmap"].dtype == np.float32
    assert isinstance(e["overlay"], Image.Image) and e["overlay"].mode == "RGB" and e["overlay"].size == size
    assert e["target"] == e["label"] and e["cam_method"] == "gradcam"
    assert e["probabilities"] == predictor.predict(sample_files[0][0])["probabilities"]


def test_explain_matches_pytorch_grad_cam_on_the_whole_model(predictor, random_checkpoint, sample_files):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    ck = load_checkpoint(random_checkpoint)
    model = ck.build()
    path = sample_files[5][0]
    for target in ("glioma", "pituitary"):
        with GradCAM(model=model, target_layers=[model.layer4[-1]]) as c:
            ref = c(input_tensor=torch.from_numpy(ck.preprocessing.array([load_image(path)])),
                    targets=[ClassifierOutputTarget(CLASSES.index(target))])[0]
        got = predictor.explain(path, target=target)["heatmap_input"]
        assert np.corrcoef(ref.ravel(), got.ravel())[0, 1] >= 0.999


def test_target_by_name_or_index_and_bad_targets(predictor, sample_files):
    path = sample_files[2][0]
    by_name = predictor.explain(path, target="notumor")
    by_index = predictor.explain(path, target=2)
    assert by_name["target"] == by_index["target"] == "notumor"
    assert np.array_equal(by_name["heatmap"], by_index["heatmap"])
    others = [predictor.explain(path, target=t)["heatmap"] for t in range(4)]
    assert any(np.abs(others[0] - h).max() > 0.05 for h in others[1:])
    for bad in ("cat", 4, -1):
        with pytest.raises(ValueError, match="unknown target class"):
            predictor.explain(path, target=bad)
    with pytest.raises(ValueError, match="unknown CAM method"):
        predictor.explain(path, cam_method="nope")


@pytest.mark.parametrize("method", ["gradcam++", "hirescam", "eigencam", "GradCAM++"])
def test_other_cam_methods(predictor, sample_files, method):
    e = predictor.explain(sample_files[0][0], cam_method=method)
    assert e["cam_method"] == method.lower() and e["heatmap_input"].shape == (64, 64)
    assert 0.0 <= e["heatmap_input"].min() and e["heatmap_input"].max() <= 1.0


def test_no_hooks_or_gradients_are_left_on_the_shared_model(predictor, sample_files):
    model = predictor._members[0].network.module  # the torch backend's network
    for method in ("gradcam", "eigencam"):
        predictor.explain(sample_files[0][0], cam_method=method)
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())


def test_predict_batch_equals_predict_and_reports_bad_items(predictor, sample_files):
    paths = [p for p, _ in sample_files]
    batch = predictor.predict_batch(paths, batch_size=5)
    assert len(batch) == len(paths)
    for path, r in zip(paths, batch):
        _check_result(r)
        assert np.abs(_probs(r) - _probs(predictor.predict(path))).max() < 1e-5
    mixed = predictor.predict_batch([paths[0], b"junk", paths[1]], errors="return")
    assert "error" in mixed[1] and "not an image" in mixed[1]["error"]
    assert mixed[0]["label"] == batch[0]["label"] and mixed[2]["label"] == batch[1]["label"]
    with pytest.raises(ImageError):
        predictor.predict_batch([paths[0], b"junk"])


def test_tta_views_are_the_image_its_mirror_and_shifts():
    img = synthetic_scan(0, 50)
    views = tta_views(img)
    assert views.shape == (6, 50, 50)
    assert np.array_equal(views[0], img) and np.array_equal(views[1], img[:, ::-1])
    d = 2  # 4% of 50
    assert np.array_equal(views[2][:, d:], img[:, :-d]) and not views[2][:, :d].any()
    assert np.array_equal(views[5][:-d], img[d:])


def test_tta_averages_the_views(predictor, random_checkpoint, sample_files):
    path = sample_files[3][0]
    ck = load_checkpoint(random_checkpoint)
    model = ck.build()
    views = tta_views(ck.preprocessing.pixels(load_image(path)))
    with torch.inference_mode():
        want = torch.softmax(model(ck.preprocessing.normalize(torch.from_numpy(views))).double(), 1).mean(0)
    r = predictor.predict(path, tta=True)
    _check_result(r)
    assert np.abs(_probs(r) - want.numpy()).max() < 1e-5
    assert np.abs(_probs(r) - _probs(predictor.predict(path))).max() > 1e-4
    e = predictor.explain(path, tta=True)
    assert e["probabilities"] == r["probabilities"]
    # the map of the unaugmented view (computed in a batch of 6, hence not bit-identical)
    assert np.abs(e["heatmap"] - predictor.explain(path, target=e["target"])["heatmap"]).max() < 1e-4
    b = predictor.predict_batch([path, sample_files[0][0]], tta=True)
    assert np.abs(_probs(b[0]) - _probs(r)).max() < 1e-5


def test_an_ensemble_averages_its_members(random_checkpoint, second_checkpoint, sample_files):
    a = Predictor.load(random_checkpoint, backend="torch")
    b = Predictor.load(second_checkpoint, backend="torch")
    both = Predictor.load([random_checkpoint, second_checkpoint], backend="torch")
    path = sample_files[7][0]
    want = (_probs(a.predict(path)) + _probs(b.predict(path))) / 2
    assert np.abs(_probs(both.predict(path)) - want).max() < 1e-6
    e = both.explain(path)
    assert e["heatmap_input"].shape == (64, 64) and abs(float(e["heatmap_input"].max()) - 1.0) < 1e-6
    assert both.sha256 == f"{a.sha256},{b.sha256}" and both.name == "random-r18-64 + second"
    assert "ensemble" in both.meta


def test_an_ensemble_answers_with_each_members_vote(tmp_path, sample_files):
    from conftest import box_checkpoint

    glioma = box_checkpoint(tmp_path / "says-glioma.safetensors", always=0)
    glioma2 = box_checkpoint(tmp_path / "says-glioma-too.safetensors", always=0, seed=5)
    pituitary = box_checkpoint(tmp_path / "says-pituitary.safetensors", always=3)
    path = sample_files[0][0]

    agree = Predictor.load([glioma, glioma2], backend="torch").predict(path)
    assert [m["label"] for m in agree["members"]] == ["glioma", "glioma"] and agree["agreement"] == 2
    assert agree["members"][0]["name"] == "says-glioma" and agree["members"][0]["confidence"] > 0.99
    assert "disagree" not in (agree.get("reason") or "")

    split = Predictor.load([glioma, pituitary], backend="torch")
    for r in (split.predict(path), split.explain(path), split.predict_batch([path])[0]):
        assert {m["label"] for m in r["members"]} == {"glioma", "pituitary"} and r["agreement"] == 1
        assert r["decision"] == "uncertain" and "the models disagree" in r["reason"]
        assert {"glioma", "pituitary"} <= set(r["prediction_set"])
    single = Predictor.load(glioma, backend="torch").predict(path)
    assert "members" not in single and "agreement" not in single


def test_an_ensemble_needs_the_same_classes(tmp_path, random_checkpoint):
    model = build_model("resnet18", 3).eval()
    other = tmp_path / "three.safetensors"
    save_checkpoint(other, model, "resnet18", Preprocessing(img_size=64), classes=("a", "b", "c"))
    with pytest.raises(CheckpointError, match="differ"):
        Predictor.load([random_checkpoint, other], backend="torch")


def test_description_of_the_model(predictor, random_checkpoint):
    ck = load_checkpoint(random_checkpoint)
    assert predictor.classes == CLASSES
    assert predictor.preprocessing == ck.preprocessing
    assert predictor.sha256 == ck.sha256 and len(predictor.sha256) == 64
    assert predictor.name == "random-r18-64" and predictor.meta["name"] == "random-r18-64"
    assert predictor.version and predictor.backend == "torch"
    assert predictor.info()["img_size"] == 64


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        Predictor.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        Predictor.load(bad)
    with pytest.raises(ValueError, match="unknown backend"):
        Predictor.load(bad, backend="tpu")


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_one_predictor_shared_by_eight_threads_answers_as_if_alone(random_checkpoint, sample_files, backend):
    if backend == "onnx" and not HAVE_ORT:
        pytest.skip("onnxruntime is not installed")
    predictor = Predictor.load(random_checkpoint, backend=backend)
    images = [p for p, _ in sample_files[:8]]
    alone = [predictor.explain(img, target=i % 4) for i, img in enumerate(images)]
    alone_p = [predictor.predict(img) for img in images]
    got: dict[int, tuple] = {}
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait()  # all eight start together
        got[i] = (predictor.explain(images[i], target=i % 4), predictor.predict(images[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        e, p = got[i]
        assert p == alone_p[i]
        assert e["probabilities"] == alone[i]["probabilities"] and e["target"] == alone[i]["target"]
        assert np.array_equal(e["heatmap"], alone[i]["heatmap"])
        assert np.array_equal(np.asarray(e["overlay"]), np.asarray(alone[i]["overlay"]))


@pytest.mark.skipif(not HAVE_ORT, reason="onnxruntime is not installed")
def test_onnx_backend_agrees_with_eager(random_checkpoint, predictor, sample_files):
    before = torch.get_num_threads()
    fast = Predictor.load(random_checkpoint, backend="onnx")
    assert fast.backend == "onnx"
    assert torch.get_num_threads() == before  # a library leaves the process's threads alone
    for path, _ in sample_files[::3]:
        assert np.abs(_probs(fast.predict(path)) - _probs(predictor.predict(path))).max() < 1e-4
        h1, h2 = fast.explain(path)["heatmap"], predictor.explain(path)["heatmap"]
        assert np.corrcoef(h1.ravel(), h2.ravel())[0, 1] >= 0.99


@pytest.mark.skipif(not HAVE_ORT, reason="onnxruntime is not installed")
def test_int8_backend_stays_close_to_eager(random_checkpoint, predictor, sample_dir, sample_files, monkeypatch):
    from braintumor.inference.graphs import default_calibration

    monkeypatch.setenv("BRAINTUMOR_CALIBRATION", str(sample_dir))  # calibration scans by default
    assert len(default_calibration()) == 12
    fast = Predictor.load(random_checkpoint)
    assert fast.backend == "int8"
    for path, _ in sample_files[1::2]:
        assert np.abs(_probs(fast.predict(path)) - _probs(predictor.predict(path))).max() < 0.03
        h1, h2 = fast.explain(path)["heatmap"], predictor.explain(path)["heatmap"]
        assert np.corrcoef(h1.ravel(), h2.ravel())[0, 1] >= 0.95
    with pytest.raises(CheckpointError, match="calibration"):
        Predictor.load(random_checkpoint, backend="int8", calibration=[])


@pytest.mark.skipif(not HAVE_ORT, reason="onnxruntime is not installed")
def test_converted_models_are_cached(random_checkpoint, private_cache, monkeypatch, sample_files):
    from braintumor.training import conversion

    first = Predictor.load(random_checkpoint, backend="onnx")
    assert any("-onnx-" in f.name for f in private_cache.iterdir())

    def no_export(*args, **kwargs):
        raise AssertionError("exported again instead of reading the cache")

    monkeypatch.setattr(conversion, "export_network", no_export)
    again = Predictor.load(random_checkpoint, backend="onnx")
    path = sample_files[0][0]
    assert again.predict(path) == first.predict(path)
    # the same weights with other metadata (a temperature) reuse the converted model
    ck = load_checkpoint(random_checkpoint)
    retuned = private_cache.parent / "retuned.safetensors"
    save_checkpoint(retuned, ck.build(), ck.arch, ck.preprocessing, meta={"temperature": 2.0})
    assert Predictor.load(retuned, backend="onnx").backend == "onnx"
    monkeypatch.setenv("BRAINTUMOR_CACHE", "")  # no cache: the export runs (and fails here)
    with pytest.raises(CheckpointError, match="onnx backend is unavailable"):
        Predictor.load(random_checkpoint, backend="onnx")


def test_the_cache_keeps_the_newest_files(private_cache, monkeypatch):
    import time

    import braintumor.inference.graphs as mod

    monkeypatch.setattr(mod, "CACHE_KEEP", 2)
    for i, name in enumerate(("a", "b", "c")):
        assert mod.cached(f"test-{name}", lambda: name.encode()) == name.encode()
        time.sleep(0.01)
    names = sorted(f.name for f in private_cache.glob("test-*.onnx"))
    assert names == ["test-b.onnx", "test-c.onnx"]
    assert mod.cached("test-c", lambda: b"rebuilt") == b"c"  # read back, not rebuilt


def test_auto_backend_falls_back_to_torch_without_onnxruntime(random_checkpoint, monkeypatch):
    import braintumor.inference.backends as mod

    monkeypatch.setattr(mod, "onnx_available", lambda: False)
    assert Predictor.load(random_checkpoint).backend == "torch"
    with pytest.raises(ValueError, match="unknown backend"):
        Predictor.load(random_checkpoint, backend="tensorrt")


# ---------------------------------------------------------------- the shipped model
def _shipped_available() -> bool:
    from braintumor.inference import shipped

    return (shipped.weights_dir() / shipped.MANIFEST).is_file()


@pytest.mark.skipif(not _shipped_available(), reason="no model ships in src/braintumor/weights yet")
def test_the_shipped_model_labels_the_sample_scans(sample_files):
    p = Predictor.load()
    results = p.predict_batch([path for path, _ in sample_files])
    # right, or referred with the right class among those it could be: never confidently wrong
    wrong = [(path.name, r["label"], r["decision"]) for (path, label), r in zip(sample_files, results)
             if r["label"] != label and (r["decision"] == "classified" or label not in r["prediction_set"])]
    assert not wrong
    assert sum(r["label"] == label for (_, label), r in zip(sample_files, results)) >= 11
    e = p.explain(sample_files[0][0])
    assert e["heatmap_input"].shape == (p.preprocessing.img_size,) * 2
