"""Grad-CAM on the split network matches pytorch-grad-cam on the whole model; drawing is pure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from braintumor.inference import cam
from braintumor.models import build_model
from conftest import synthetic_scan


def _input(size: int, seed: int = 0) -> torch.Tensor:
    from braintumor.transforms import Preprocessing

    return Preprocessing(img_size=size).tensor(Image.fromarray(synthetic_scan(seed, size)))


def _full_model_cam(model, arch, x, target, method="gradcam"):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = cam.cam_class(method)
    with cls(model=model, target_layers=[cam.full_model_target_layer(model, arch)]) as c:
        return c(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks)
               for m in model.modules())


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return build_model("resnet18", 4).eval()


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_b0"])
def test_split_network_reproduces_the_model(arch):
    torch.manual_seed(1)
    model = build_model(arch, 4).eval()
    body, head = cam.split_network(model, arch)
    x = _input(64)
    with torch.inference_mode():
        assert torch.allclose(head(body(x)), model(x), atol=1e-5)


def test_split_network_refuses_unknown_architectures():
    with pytest.raises(ValueError, match="no Grad-CAM split"):
        cam.split_network(torch.nn.Linear(2, 2), "vit_b_16")


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam", "eigencam"])
def test_cam_on_features_matches_whole_model_cam(resnet, method):
    body, head = cam.split_network(resnet, "resnet18")
    x = _input(96, seed=3)
    for target in (0, 2):
        ref = _full_model_cam(resnet, "resnet18", x.clone(), target, method)
        with torch.inference_mode():
            feats = body(x)
        got = cam.cam_on_features(head, feats, [target], method, size=(96, 96))[0]
        assert got.shape == (96, 96) and got.dtype == np.float32
        assert 0.0 <= got.min() and got.max() <= 1.0
        assert np.corrcoef(ref.ravel(), got.ravel())[0, 1] >= 0.999
        assert np.abs(ref - got).max() < 1e-4


def test_cam_on_features_matches_for_efficientnet():
    torch.manual_seed(2)
    model = build_model("efficientnet_b0", 4).eval()
    body, head = cam.split_network(model, "efficientnet_b0")
    x = _input(96, seed=4)
    ref = _full_model_cam(model, "efficientnet_b0", x.clone(), 1)
    with torch.inference_mode():
        got = cam.cam_on_features(head, body(x), [1], size=(96, 96))[0]
    assert np.corrcoef(ref.ravel(), got.ravel())[0, 1] >= 0.999


def test_the_target_class_changes_the_map(resnet):
    body, head = cam.split_network(resnet, "resnet18")
    with torch.inference_mode():
        feats = body(_input(96, seed=5))
    maps = [cam.cam_on_features(head, feats, [t], size=(96, 96))[0] for t in range(4)]
    assert any(np.abs(maps[0] - m).max() > 0.05 for m in maps[1:])


def test_no_hook_and_no_gradient_is_left_on_the_model():
    resnet = build_model("resnet18", 4).eval()  # weights that require gradients, as trained
    body, head = cam.split_network(resnet, "resnet18")
    before = _hooks(resnet)
    with torch.inference_mode():
        feats = body(_input(64))
    for method in cam.CAM_METHODS:
        cam.cam_on_features(head, feats, [1], method, size=(64, 64))
    assert _hooks(resnet) == before == 0
    assert all(p.grad is None for p in resnet.parameters())


def test_unknown_cam_method_is_refused():
    with pytest.raises(ValueError, match="unknown CAM method"):
        cam.cam_class("scorecam-xyz")
    assert cam.cam_class("GradCAM++").__name__ == "GradCAMPlusPlus"


def test_render_overlay_draws_hot_regions_red_and_cold_ones_blue():
    gray = np.full((32, 32), 128, np.uint8)
    heat = np.zeros((32, 32), np.float32)
    heat[:, 16:] = 1.0
    over = cam.render_overlay(gray, heat)
    assert isinstance(over, Image.Image) and over.mode == "RGB" and over.size == (32, 32)
    arr = np.asarray(over).astype(int)
    cold, hot = arr[16, 4], arr[16, 28]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # jet: red for 1, blue for 0


def test_render_overlay_resizes_a_smaller_heatmap():
    over = cam.render_overlay(np.zeros((40, 40), np.uint8), np.ones((7, 7), np.float32))
    assert over.size == (40, 40)


def test_explanation_figure_puts_scan_and_overlay_side_by_side():
    gray = synthetic_scan(0, 64)
    over = cam.render_overlay(gray, np.ones((64, 64), np.float32))
    fig = cam.explanation_figure(gray, over, "glioma 91.0%", "scan.jpg")
    assert fig.mode == "RGB" and fig.size[0] == 2 * 256 + 8 and fig.size[1] > 256
    arr = np.asarray(fig)
    left, right = arr[-128, 128], arr[-128, 256 + 8 + 128]
    assert left[0] == left[1] == left[2]  # the scan stays grey
    assert not (right[0] == right[1] == right[2])  # the overlay is coloured
