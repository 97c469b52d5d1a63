"""Training, evaluation and the `braintumor` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from braintumor.training.checkpoint import load_checkpoint
from braintumor.cli import main as cli_main
from braintumor.config import CLASSES

from conftest import synthetic_scan

FAST = ["--img-size", "32", "--batch-size", "4", "--device", "cpu", "--warmup-epochs", "1"]


def run_cli(*args: str) -> int:
    return cli_main([str(a) for a in args])


@pytest.fixture
def data_copy(sample_dir, tmp_path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(sample_dir, dst, ignore=shutil.ignore_patterns("*.md"))
    return dst


def test_smoke_train_one_epoch_then_evaluate(sample_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", "--data", sample_dir, "--out", out, "--epochs", "1", *FAST) == 0
    for name in ("config.json", "split.json", "best.safetensors", "last.safetensors", "metrics.csv",
                 "summary.json", "curves.png", "confusion_matrix.png", "state.pt"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").iterdir())
    split = json.loads((out / "split.json").read_text())
    assert split["val"] and split["train"] and not set(split["val"]) & set(split["train"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_run"] == 1 and summary["val_images"] == len(split["val"])
    ck = load_checkpoint(out / "best.safetensors")
    assert ck.arch == "resnet18" and ck.classes == CLASSES and ck.preprocessing.img_size == 32
    assert "accuracy" in ck.meta["val"]
    capsys.readouterr()
    assert run_cli("evaluate", "--data", sample_dir, "--model", out / "best.safetensors", "--json") == 0
    report = json.loads(capsys.readouterr().out)  # stdout holds exactly one JSON object
    assert report["n"] == 12 and report["classes"] == list(CLASSES)
    assert set(report["per_class"]) == set(CLASSES)
    assert np.array(report["confusion_matrix"]).sum() == 12
    assert 0 <= report["accuracy"] <= 1 and 0 <= report["ece"] <= 1


def test_resume_continues_after_last_epoch(sample_dir, tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", "--data", sample_dir, "--out", out, "--epochs", "1", "--keep-epochs", *FAST) == 0
    assert run_cli("train", "--data", sample_dir, "--out", out, "--epochs", "2", "--resume") == 0
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    assert json.loads((out / "summary.json").read_text())["epochs_run"] == 2
    # --keep-epochs, kept across the resume: every epoch's weights, each recording its epoch and
    # its tumour-or-not figures per source, to choose by the worst source afterwards
    from braintumor.training.checkpoint import load_checkpoint

    kept = sorted(out.glob("epoch-*.safetensors"))
    assert [p.name for p in kept] == ["epoch-001.safetensors", "epoch-002.safetensors"]
    assert [load_checkpoint(p).meta["epoch"] for p in kept] == [1, 2]


def test_same_seed_same_weights(sample_dir, tmp_path):
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert run_cli("train", "--data", sample_dir, "--out", out, "--epochs", "1", "--seed", "3", *FAST) == 0
        st = load_checkpoint(out / "last.safetensors").state_dict
        digests.append(torch.cat([v.flatten().float() for k, v in sorted(st.items())]))
    assert torch.equal(digests[0], digests[1])


def test_shipped_model_evaluates_sample(sample_dir, capsys):
    from braintumor.inference import shipped

    assert run_cli("evaluate", "--data", sample_dir, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["name"] == shipped.manifest()["name"]
    # twelve validation scans: at most one wrong, and no wrong answer classified
    assert report["accuracy"] >= 11 / 12 and report["classified_accuracy"] == 1.0


def test_evaluate_prints_table(sample_dir, capsys):
    assert run_cli("evaluate", "--data", sample_dir) == 0
    text = capsys.readouterr().out
    for word in ("accuracy", "macro-F1", "ECE", "confusion matrix", *CLASSES):
        assert word in text


def test_unreadable_image_is_skipped_not_fatal(data_copy, tmp_path, capsys):
    (data_copy / "glioma" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "run"
    assert run_cli("train", "--data", data_copy, "--out", out, "--epochs", "1", *FAST) == 0
    assert "broken.jpg" in capsys.readouterr().err
    split = json.loads((out / "split.json").read_text())
    assert not any("broken" in p for p in split["train"] + split["val"])


@pytest.mark.parametrize("problem", ["missing", "no_classes", "unknown_class", "empty_class"])
def test_bad_data_folder_exits_2_with_one_line(problem, data_copy, tmp_path, capsys):
    data = data_copy
    if problem == "missing":
        data = tmp_path / "nowhere"
    elif problem == "no_classes":
        data = tmp_path / "flat"
        data.mkdir()
        Image.fromarray(synthetic_scan(0)).save(data / "x.png")
    elif problem == "unknown_class":
        (data / "astrocytoma").mkdir()
        Image.fromarray(synthetic_scan(1)).save(data / "astrocytoma" / "x.png")
    elif problem == "empty_class":
        for f in (data / "pituitary").iterdir():
            f.unlink()
    assert run_cli("train", "--data", data, "--out", tmp_path / "run", "--epochs", "1", *FAST) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("braintumor train: error:") and len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_checkpoint_with_other_classes_is_refused(sample_dir, tmp_path, capsys):
    from braintumor.training.checkpoint import save_checkpoint
    from braintumor.training.models import build_model
    from braintumor.training.transforms import Preprocessing

    other = tmp_path / "other.safetensors"
    save_checkpoint(other, build_model("resnet18", 3), "resnet18", Preprocessing(32), ("a", "b", "c"))
    assert run_cli("evaluate", "--data", sample_dir, "--model", other) == 2
    assert "unknown class folder" in capsys.readouterr().err
    wrong_arch = tmp_path / "wrong.safetensors"
    save_checkpoint(wrong_arch, build_model("resnet18", 4), "resnet34", Preprocessing(32))
    assert run_cli("evaluate", "--data", sample_dir, "--model", wrong_arch) == 2
    assert "do not fit architecture resnet34" in capsys.readouterr().err


def test_dataset_root_with_training_and_testing(sample_dir, tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(sample_dir, root / "Training", ignore=shutil.ignore_patterns("*.md"))
    shutil.copytree(sample_dir, root / "Testing", ignore=shutil.ignore_patterns("*.md"))
    assert run_cli("evaluate", "--data", root, "--json") == 0
    assert json.loads(capsys.readouterr().out)["data"].endswith("Testing")


def test_images_of_any_mode_and_format(tmp_path):
    from braintumor.data.folders import list_samples

    arr = synthetic_scan(2, 96)
    for cls in CLASSES:
        (tmp_path / cls).mkdir()
    Image.fromarray(arr).save(tmp_path / "glioma" / "l.png")
    Image.fromarray((arr.astype(np.uint16) * 257)).save(tmp_path / "glioma" / "sixteen.png")
    Image.fromarray(np.stack([arr] * 3, -1)).save(tmp_path / "meningioma" / "rgb.bmp")
    Image.fromarray(np.dstack([arr] * 3 + [np.full_like(arr, 255)])).save(tmp_path / "notumor" / "rgba.png")
    Image.fromarray(arr).save(tmp_path / "pituitary" / "t.tiff")
    Image.fromarray(arr).save(tmp_path / "pituitary" / "j.jpeg", quality=95)
    from braintumor.training.image_cache import build_cache

    cache = build_cache(list_samples(tmp_path), 48)
    assert cache.images.shape == (6, 48, 48) and not cache.skipped
    # every mode gives the same pixels (JPEG within compression error)
    ref = cache.images[0].astype(int)
    for img in cache.images[1:]:
        assert np.abs(img.astype(int) - ref).mean() < 2.0


def _state_dict_file(tmp_path: Path, kind: str) -> tuple[Path, torch.Tensor]:
    from braintumor.training.models import build_model

    torch.manual_seed(7)
    model = build_model("resnet18", 1000)
    sd = model.state_dict()
    if kind == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        path = tmp_path / "w.pth"
        torch.save(sd, path)
    return path, sd["conv1.weight"].clone()


@pytest.mark.parametrize("kind", ["safetensors", "pth"])
def test_pretrained_file_is_loaded_and_early_layers_frozen(kind, sample_dir, tmp_path):
    path, conv1 = _state_dict_file(tmp_path, kind)
    out = tmp_path / "run"
    assert run_cli("train", "--data", sample_dir, "--out", out, "--pretrained", path, "--epochs", "1",
                   *FAST) == 0
    st = load_checkpoint(out / "last.safetensors").state_dict
    assert torch.equal(st["conv1.weight"].float(), conv1)  # loaded, and frozen by the recipe
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["lr"] == 3e-4 and cfg["head_lr"] == 1e-3 and cfg["weight_decay"] == 1e-4


def test_pretrained_imagenet_uses_torch_cache(sample_dir, tmp_path, monkeypatch):
    """The real torchvision download path, served from torch's cache by a file we write."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    path, conv1 = _state_dict_file(tmp_path, "pth")
    shutil.copy(path, cache / Path(url).name)
    from braintumor.training.models import build_model, load_pretrained

    model = build_model("resnet18", 4)
    loaded = load_pretrained(model, "resnet18", "imagenet")
    assert "conv1.weight" in loaded and "fc.weight" not in loaded
    assert torch.equal(model.conv1.weight, conv1)


def test_pretrained_imagenet_offline_gives_one_line(sample_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    assert run_cli("train", "--data", sample_dir, "--out", tmp_path / "r", "--pretrained", "imagenet",
                   "--epochs", "1", *FAST) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(tmp_path / "empty") in err and "--pretrained FILE" in err


def test_pretrained_file_of_other_architecture_is_refused(sample_dir, tmp_path, capsys):
    from safetensors.torch import save_file

    from braintumor.training.models import build_model

    path = tmp_path / "eff.safetensors"
    save_file({k: v.contiguous() for k, v in build_model("efficientnet_b0", 1000).state_dict().items()}, str(path))
    assert run_cli("train", "--data", sample_dir, "--out", tmp_path / "r", "--pretrained", path,
                   "--epochs", "1", *FAST) == 2
    assert "do not fit resnet18" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["resnet34", "efficientnet_b0"])
def test_registry_architectures_build_and_run(arch):
    from braintumor.training.models import build_model

    model = build_model(arch, 4).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 4)


def test_group_split_keeps_groups_whole_and_stratifies():
    from braintumor.data.split import group_split

    labels = np.repeat(np.arange(4), 100)
    groups = np.concatenate([np.repeat(np.arange(c * 50, c * 50 + 50), 2) for c in range(4)])
    is_val = group_split(labels, groups, 0.2, seed=1)
    for g in np.unique(groups):
        assert len(set(is_val[groups == g])) == 1  # never straddles
    for c in range(4):
        assert abs(is_val[labels == c].mean() - 0.2) <= 0.03


def test_split_puts_near_duplicates_on_one_side(tmp_path):
    """A re-encoded, flipped copy of a validation image must not sit in the training part."""
    from braintumor.data.folders import list_samples
    from braintumor.data.split import make_split

    for cls in CLASSES:
        (tmp_path / cls).mkdir()
    for i in range(40):
        cls = CLASSES[i % 4]
        img = Image.fromarray(synthetic_scan(100 + i, 128))
        img.save(tmp_path / cls / f"{i}.png")
        img.transpose(Image.FLIP_LEFT_RIGHT).save(tmp_path / cls / f"{i}-flip.jpg", quality=70)
    split = make_split(list_samples(tmp_path), tmp_path, 0.25, seed=0)
    val = set(split.val)
    for p in split.val:
        stem = p.rsplit("/", 1)[1].split("-")[0].split(".")[0]
        twins = [q for q in split.train if q.rsplit("/", 1)[1].split("-")[0].split(".")[0] == stem]
        assert not twins, (p, twins)
    assert val


def test_two_process_gloo_training_ends_with_equal_weights(sample_dir, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "BRAINTUMOR_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "braintumor", "train", "--data", str(sample_dir), "--out", str(out), "--epochs", "2",
           "--img-size", "32", "--batch-size", "4", "--device", "cpu", "--warmup-epochs", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranks = [json.loads((out / f"ddp-rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert ranks[0]["parameters_sha256"] == ranks[1]["parameters_sha256"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs_run"] == 2


def test_python_m_braintumor_runs():
    proc = subprocess.run([sys.executable, "-m", "braintumor", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("braintumor ")
