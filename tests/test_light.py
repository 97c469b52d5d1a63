"""The light install: every serving command works with PyTorch hidden, the training commands say in
one line which install they need, and the shipped graphs are checked before they run.

The commands run in a subprocess whose importer refuses PyTorch and the rest of the training install
(so ``import torch`` fails there as in a light virtual environment); ``.ci/run`` also runs this file
in a real light environment, built without them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Run first in the subprocess: imports of the training install fail as where it is not installed.
HIDE_TRAINING = textwrap.dedent('''
    import importlib.abc, sys
    HIDDEN = {"torch", "torchvision", "torchio", "pytorch_grad_cam", "cv2", "onnx", "matplotlib", "tensorboard"}
    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HIDDEN:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Hide())
''')


def light(code: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a Python process without the training install."""
    env_code = HIDE_TRAINING + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", env_code], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "BRAINTUMOR_NO_PROGRESS": "1"})


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return light(f"import sys\nfrom braintumor.cli import main\nsys.exit(main({args!r}))", cwd)


def test_pytorch_is_hidden_in_the_light_process(tmp_path):
    r = light("import torch", tmp_path)
    assert r.returncode == 1 and "No module named 'torch'" in r.stderr


def test_predict_with_every_output_runs_without_pytorch(tmp_path, sample_dir):
    files = [str(p) for p in sorted(sample_dir.rglob("*.jpg"))[::3]]
    code = f"""
        import contextlib, io, json, sys
        from braintumor.cli import main
        out = {{}}
        for name, argv in [
            ("json", ["predict", "--json", "--similar", "2", "--tta", *{files!r}]),
            ("csv", ["predict", "--csv", *{files!r}]),
            ("explain", ["predict", "--explain", "{tmp_path}/explain", "--cam-method", "gradcam++", *{files!r}]),
            ("report", ["predict", "--report", "{tmp_path}/report", {files[0]!r}]),
            ("evaluate", ["evaluate", "--data", {str(sample_dir)!r}, "--json"]),
            ("audit", ["audit", {str(sample_dir)!r}, "--json"]),
            ("index", ["index", {str(sample_dir)!r}, "--out", "{tmp_path}/index.safetensors"]),
        ]:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                code = main(argv)
            out[name] = [code, buf.getvalue()]
        training = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
        print(json.dumps({{"out": out, "training_modules": training}}))
    """
    r = light(code, tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["training_modules"] == []
    out = got["out"]
    assert all(code == 0 for code, _ in out.values()), {k: v[0] for k, v in out.items()}
    answers = json.loads(out["json"][1])["results"]
    assert len(answers) == len(files) and all(len(a["similar"]) == 2 for a in answers)
    assert out["csv"][1].splitlines()[0].startswith("file,")
    assert len(list((tmp_path / "explain").glob("*.png"))) == len(files)
    assert (tmp_path / "report").is_dir() and list((tmp_path / "report").glob("*.pdf"))
    assert json.loads(out["evaluate"][1])["n"] == 12
    assert json.loads(out["audit"][1])["summary"]["images"] == 12
    assert (tmp_path / "index.safetensors").stat().st_size > 0


def test_the_web_app_answers_explains_and_reports_without_pytorch(tmp_path, sample_dir):
    scan = sorted(sample_dir.rglob("*.jpg"))[0]
    code = f"""
        import json, sys
        from braintumor.web import create_app
        app = create_app({{"FEEDBACK_DB": "{tmp_path}/feedback.sqlite"}})
        c = app.test_client()
        data = open({str(scan)!r}, "rb").read()
        def post(path, **fields):
            import io
            return c.post(path, data={{"file": (io.BytesIO(data), "scan.jpg"), **fields}},
                          content_type="multipart/form-data")
        a = post("/api/predict", similar="3")
        b = post("/api/predict", explain="false")
        pdf = post("/api/report")
        fb = c.post("/api/feedback", json={{"id": a.get_json()["id"], "label": "glioma"}})
        print(json.dumps({{"predict": [a.status_code, a.get_json()], "plain": b.status_code,
                          "report": [pdf.status_code, pdf.data[:5].decode("latin-1")],
                          "health": c.get("/api/health").status_code, "feedback": fb.status_code,
                          "training_modules": sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)}}))
    """
    r = light(code, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    status, answer = got["predict"]
    assert status == 200 and answer["gradcam"].startswith("data:image/png;base64,")
    assert answer["label"] == "glioma" and len(answer["similar"]) == 3
    assert got["plain"] == 200 and got["report"] == [200, "%PDF-"] and got["health"] == 200
    assert got["feedback"] in (200, 201)
    assert got["training_modules"] == []
    r = run_cli(["feedback", "stats", "--db", str(tmp_path / "feedback.sqlite"), "--json"], tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)


@pytest.mark.parametrize("command", [["train", "--data", "x"], ["calibrate", "--data", "x", "--split", "y"],
                                     ["fit-boxes", "--model", "m", "--data", "x", "--boxes", "b", "--split", "s"],
                                     ["fit-refiner", "--model", "m", "--data", "x", "--boxes", "b", "--split", "s"],
                                     ["finetune", "--data", "x"], ["export"]])
def test_training_commands_name_the_install_they_need(tmp_path, command):
    r = run_cli(command, tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"braintumor {command[0]}: error: this command needs the training install: "
                                "pip install 'brain-tumor-classifier[train]'")


def test_a_checkpoint_without_graphs_says_which_install_converts_it(tmp_path, sample_dir, monkeypatch):
    from braintumor.inference import shipped

    # an empty cache: graphs converted earlier for the same weights would otherwise answer
    monkeypatch.setenv("BRAINTUMOR_CACHE", str(tmp_path / "cache"))
    own = tmp_path / "own.safetensors"
    shutil.copy(shipped.default_model_path(), own)
    r = run_cli(["predict", "--model", str(own), str(sorted(sample_dir.rglob("*.jpg"))[0])], tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "no int8 ONNX graph" in r.stderr and "pip install 'brain-tumor-classifier[train]'" in r.stderr
    r = run_cli(["predict", "--backend", "torch", str(sorted(sample_dir.rglob("*.jpg"))[0])], tmp_path)
    assert r.returncode == 2 and "the torch backend needs the training install" in r.stderr


def _shipped_copy(tmp_path, monkeypatch) -> Path:
    """The shipped weights folder copied, and the package pointed at the copy."""
    from braintumor.inference import shipped

    folder = tmp_path / "weights"
    shutil.copytree(shipped.weights_dir(), folder)
    monkeypatch.setattr(shipped, "weights_dir", lambda: folder)
    return folder


def test_the_shipped_graphs_are_checked_against_the_manifest(tmp_path, monkeypatch, sample_files):
    from braintumor import Predictor
    from braintumor.inference import shipped
    from braintumor.errors import CheckpointError

    folder = _shipped_copy(tmp_path, monkeypatch)
    graph = folder / shipped.manifest()["graphs"]["int8"]["file"]
    ok = Predictor.load()
    assert ok.backend == "int8"
    answer = ok.predict(sample_files[0][0])
    data = bytearray(graph.read_bytes())
    data[-100] ^= 0xFF  # one byte of a weight changed
    graph.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the recorded"):
        Predictor.load()
    graph.unlink()  # a missing graph: the training install converts the checkpoint again
    if importlib.util.find_spec("torch") is not None:
        monkeypatch.setenv("BRAINTUMOR_CACHE", str(tmp_path / "cache"))
        again = Predictor.load()
        assert again.predict(sample_files[0][0])["label"] == answer["label"]


def test_graphs_made_from_other_weights_are_not_used(tmp_path, monkeypatch, sample_files):
    from braintumor.inference import shipped
    from braintumor.inference import graphs

    _shipped_copy(tmp_path, monkeypatch)
    mf = shipped.load_default()
    assert graphs.recorded_graph(mf, "int8")[0] is not None
    shipped.update_manifest(weights="0" * 64)
    data, why = graphs.recorded_graph(mf, "int8")
    assert data is None and why == "its recorded graphs were made from other weights"
