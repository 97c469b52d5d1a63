"""The figures the project reports come from the code that serves users: ``evaluate`` and
``calibrate`` run Predictor.outputs, the batch forward pass behind every answer."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from braintumor.training.calibration import network_outputs
from braintumor.training.checkpoint import load_checkpoint
from braintumor.inference.evaluate import evaluate
from braintumor.inference.predictor import Predictor
from braintumor.web import create_app

try:
    import onnxruntime  # noqa: F401

    BACKENDS = ["torch", "onnx", "int8"]
except ImportError:
    BACKENDS = ["torch"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_gives_the_served_probabilities(random_checkpoint, sample_dir, backend):
    report = evaluate(str(sample_dir), str(random_checkpoint), backend=backend, device="cpu",
                      batch_size=5, show_progress=False)
    assert report["model"]["backend"] == backend and report["n"] == 12
    app = create_app(predictor=Predictor.load(random_checkpoint, backend=backend))
    client = app.test_client()
    for row in report["predictions"]:
        data = (sample_dir / row["file"]).read_bytes()
        served = client.post("/api/predict", data={"file": (io.BytesIO(data), "scan.jpg"), "explain": "false"},
                             content_type="multipart/form-data").get_json()
        assert served["label"] == row["label"] and served["decision"] == row["decision"]
        by_class = {row["label"]: row["probability"] for row in served["predictions"]}
        got = np.array([by_class[c] for c in report["classes"]])
        want = np.array([row["probabilities"][c] for c in report["classes"]])
        # a batch of 5 and a batch of 1 may take other kernels: equal to float rounding
        assert np.abs(got - want).max() < 1e-6
    # the metrics are those of the answers listed
    acc = np.mean([r["label"] == r["true"] for r in report["predictions"]])
    assert report["accuracy"] == pytest.approx(acc)


def test_calibration_fits_on_the_predictors_outputs(random_checkpoint, sample_files):
    ck = load_checkpoint(random_checkpoint)
    files = [p for p, _ in sample_files]
    out = network_outputs(ck, files, batch_size=4, backend="torch")
    p = Predictor.load(random_checkpoint, backend="torch")
    answers = p.predict_batch(files, batch_size=7)
    served = np.array([[a["probabilities"][c] for c in p.classes] for a in answers])
    t = float(ck.meta.get("temperature", 1.0) or 1.0)
    z = out["logits"] / t
    mine = np.exp(z - z.max(1, keepdims=True))
    mine /= mine.sum(1, keepdims=True)
    assert np.abs(mine - served).max() < 1e-6
    assert out["features"].shape == (12, 512) and out["stats"].shape[0] == 12 and out["backend"] == "torch"
    assert [tuple(s) for s in out["sizes"]] == [Image.open(f).size for f in files]


def test_outputs_keeps_order_and_reports_unreadable_images(random_checkpoint, sample_files):
    p = Predictor.load(random_checkpoint, backend="torch")
    files = [sample_files[0][0], b"not an image", sample_files[1][0]]
    out = p.outputs(files, batch_size=2, errors="return")
    assert list(out["index"]) == [0, 2] and "error" in out["answers"][1]
    assert out["probabilities"].shape == (2, 4) and [x.shape for x in out["logits"]] == [(2, 4)]
    alone = p.predict(sample_files[1][0])
    assert out["answers"][2]["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-6)  # batch of 2 vs 1


def test_outputs_of_an_ensemble_whose_members_differ_in_size(random_checkpoint, tmp_path, sample_files):
    import torch

    from braintumor.training.checkpoint import save_checkpoint
    from braintumor.training.models import build_model
    from braintumor.training.transforms import Preprocessing

    torch.manual_seed(3)
    other = tmp_path / "effnet-96.safetensors"  # another architecture, feature width and input size
    save_checkpoint(other, build_model("efficientnet_b0", 4).eval(), "efficientnet_b0", Preprocessing(img_size=96),
                    meta={"name": "effnet"})
    both = Predictor.load([random_checkpoint, other], backend="torch")
    files = [p for p, _ in sample_files[:3]]
    out = both.outputs(files, batch_size=2, keep_pixels=True)
    assert [px.shape for px in out["pixels"]] == [(3, 64, 64), (3, 96, 96)]
    assert [f.shape for f in out["features"]] == [(3, 512), (3, 1280)] and len(out["logits"]) == 2
    assert [a["label"] for a in both.predict_batch(files)] == [a["label"] for a in out["answers"]]
