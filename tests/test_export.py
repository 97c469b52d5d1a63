"""``braintumor export``: a checkpoint's ONNX graphs written beside it with their SHA-256, used by
the Predictor without converting again, by the light install too; and the int8 answers that lie
too close to a decision boundary, answered again in float32."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="exporting needs the training install")


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Converted graphs go to a folder of this module, not the user's cache."""
    old = os.environ.get("BRAINTUMOR_CACHE")
    os.environ["BRAINTUMOR_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        del os.environ["BRAINTUMOR_CACHE"]
    else:
        os.environ["BRAINTUMOR_CACHE"] = old


@pytest.fixture(scope="module")
def exported(tmp_path_factory, sample_dir):
    """A ResNet18 with a box head and a one-stage box refiner (random weights, 64 px), exported."""
    from braintumor.training.checkpoint import save_checkpoint
    from braintumor.cli import main
    from braintumor.inference.preprocess import Preprocessing
    from braintumor.training.models import build_model

    torch.manual_seed(3)
    model = build_model("resnet18", 4, box_head=True, box_refiner=1).eval()
    with torch.no_grad():
        model.fc.bias.copy_(torch.tensor([3.0, 0.0, 0.0, 0.0]))  # mostly glioma: answers with a box
    path = tmp_path_factory.mktemp("export") / "boxes.safetensors"
    save_checkpoint(path, model, "resnet18", Preprocessing(img_size=64, fit="pad"), meta={"name": "boxes"})
    os.environ["BRAINTUMOR_CALIBRATION"] = str(sample_dir)
    try:
        assert main(["export", "--model", str(path)]) == 0
    finally:
        del os.environ["BRAINTUMOR_CALIBRATION"]
    return path


def test_export_writes_every_graph_beside_the_checkpoint_with_its_digest(exported):
    from braintumor.inference.model_file import sha256_file, weights_digest

    record = json.loads(exported.with_suffix(".onnx.json").read_text())
    assert record["format"] == "braintumor-graphs/1" and record["checkpoint"] == exported.name
    assert record["weights"] == weights_digest(exported)
    assert set(record["graphs"]) == {"int8", "onnx", "refiner"}
    for entry in record["graphs"].values():
        assert sha256_file(exported.parent / entry["file"]) == entry["sha256"]


def test_the_recorded_graphs_are_used_without_converting(exported, sample_files, monkeypatch):
    from braintumor import Predictor
    from braintumor.training import conversion

    def no(*args, **kwargs):
        raise AssertionError("converted again instead of using the recorded graph")

    monkeypatch.setattr(conversion, "export_network", no)
    monkeypatch.setattr(conversion, "export_refiner", no)
    p = Predictor.load(exported)
    assert p.backend == "int8"
    answers = p.predict_batch([f for f, _ in sample_files])
    assert any(a["box"] is not None for a in answers)


def test_the_float32_graph_gives_eager_pytorchs_numbers(exported, sample_files):
    """Its first convolution reads the grey pixels (one channel, normalised inside the graph) and its
    weights are stored in float16 (the checkpoint's own values): the numbers stay eager PyTorch's."""
    from braintumor.training.conversion import TorchNetwork
    from braintumor.inference.backends import OnnxNetwork
    from braintumor.inference.graphs import recorded_graph
    from braintumor.inference.model_file import read_model_file
    from braintumor.imaging import load_image

    mf = read_model_file(exported)
    pixels = np.stack([mf.preprocessing.pixels(load_image(f)) for f, _ in sample_files])
    want = TorchNetwork(mf)(pixels)
    got = OnnxNetwork(recorded_graph(mf, "onnx")[0], "onnx")(pixels)
    for k, v in want.items():
        assert np.abs(got[k] - v).max() <= 1e-5 * max(1.0, float(np.abs(v).max())), k


def test_the_light_install_answers_as_the_training_install(exported, sample_files, tmp_path):
    from braintumor import Predictor

    from test_light import HIDE_TRAINING

    files = [str(f) for f, _ in sample_files]
    want = Predictor.load(exported).predict_batch(files)
    code = HIDE_TRAINING + (
        "import json, sys\nfrom braintumor import Predictor\n"
        f"a = Predictor.load({str(exported)!r}).predict_batch({files!r})\n"
        "print(json.dumps({'a': a, 'torch': 'torch' in sys.modules}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["torch"] is False
    assert got["a"] == json.loads(json.dumps(want))  # labels, probabilities, decisions and boxes


def test_graphs_of_other_weights_are_refused_and_damaged_ones_too(exported, tmp_path, sample_files):
    import shutil

    from braintumor import Predictor
    from braintumor.training.checkpoint import load_checkpoint, save_checkpoint
    from braintumor.errors import CheckpointError
    from braintumor.inference import graphs
    from braintumor.inference.model_file import read_model_file

    own = tmp_path / exported.name
    for f in exported.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    ck = load_checkpoint(own)
    model = ck.build()
    with torch.no_grad():
        model.fc.weight.mul_(2.0)
    save_checkpoint(own, model, ck.arch, ck.preprocessing, meta=ck.meta)  # new weights, the old record
    data, why = graphs.recorded_graph(read_model_file(own), "int8")
    assert data is None and why == "its recorded graphs were made from other weights"
    record = json.loads(exported.with_suffix(".onnx.json").read_text())
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for f in exported.parent.iterdir():
        shutil.copy(f, damaged / f.name)
    graph = damaged / record["graphs"]["int8"]["file"]
    graph.write_bytes(graph.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="does not match the recorded"):
        Predictor.load(damaged / exported.name)


def test_borderline_answers_are_those_near_a_boundary():
    from braintumor.inference.decision import Decider
    from braintumor.inference.recheck import borderline

    classes = ("glioma", "meningioma", "notumor", "pituitary")
    scores = np.linspace(0.0, 0.2, 200)  # conformal threshold near 0.2: a class is in the set when p >= ~0.8
    decider = Decider([{"conformal": {"scores": scores.tolist()}}], classes)

    def answer(p):
        from braintumor.inference.decision import decide

        return decide(np.asarray(p), classes, decider.threshold, decider.policy)

    sure, edge = [0.99, 0.004, 0.003, 0.003], [0.81, 0.17, 0.01, 0.01]
    assert not borderline(decider, np.asarray(sure), answer(sure))
    assert borderline(decider, np.asarray(edge), answer(edge))
    assert borderline(decider, np.asarray(sure), {**answer(sure), "ood_score": 0.9})  # near the gate's limit
    assert not borderline(decider, np.asarray(sure), {**answer(sure), "ood_score": 3.0, "decision": "rejected"})
    assert borderline(decider, np.asarray(sure), answer(sure), member_probs=[[0.5, 0.48, 0.01, 0.01]])


def assert_same_answers(got: list[dict], want: list[dict]) -> None:
    """The same answers; probabilities to 1e-6, since a batch of 5 and a batch of 12 may differ
    in the last digits on CPUs whose kernels block the batch differently."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for k in g:
            if k in ("confidence", "probabilities", "ood_score", "box_score"):
                a, b = (np.array(list(x.values()) if isinstance(x, dict) else [x], dtype=float)
                        if x is not None else None for x in (g[k], w[k]))
                assert (a is None and b is None) or np.allclose(a, b, atol=1e-6), k
            else:
                assert g[k] == w[k], k


def test_rechecked_answers_are_the_float32_graphs(exported, sample_files, monkeypatch):
    """With every answer borderline, the int8 Predictor answers exactly as the float32 graph does,
    heat maps and boxes included."""
    from braintumor import Predictor
    from braintumor.inference import recheck

    files = [f for f, _ in sample_files]
    fast, exact = Predictor.load(exported), Predictor.load(exported, backend="onnx")
    assert fast.predict_batch(files) != exact.predict_batch(files)  # int8 is not float32
    monkeypatch.setattr(recheck, "borderline", lambda *a, **k: True)
    assert_same_answers(fast.predict_batch(files, batch_size=5), exact.predict_batch(files))
    e1, e2 = fast.explain(files[0]), exact.explain(files[0])
    assert np.array_equal(e1["heatmap"], e2["heatmap"]) and e1["box"] == e2["box"]
