"""The NumPy heat maps equal pytorch-grad-cam on the whole model (training install); drawing is pure."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from braintumor.cam_methods import CAM_METHODS
from braintumor.inference import cam
from conftest import synthetic_scan

torch = pytest.importorskip("torch", reason="the reference needs the training install")


def _input(size: int, seed: int = 0):
    from braintumor.inference.preprocess import Preprocessing

    return torch.from_numpy(Preprocessing(img_size=size).array([Image.fromarray(synthetic_scan(seed, size))]))


def _reference(model, arch, x, target, method):
    """pytorch-grad-cam on the whole model, its last convolutional block as target layer."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from braintumor.training.network_parts import full_model_target_layer

    cls = getattr(pytorch_grad_cam, CAM_METHODS[method])
    with cls(model=model, target_layers=[full_model_target_layer(model, arch)]) as c:
        return c(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]


def _features_and_weight(model, arch, x):
    from braintumor.training.network_parts import split_network

    body, head = split_network(model, arch)
    with torch.inference_mode():
        feats = body(x).numpy()
    linear = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
    return feats, linear.weight.detach().numpy()


@pytest.mark.parametrize("arch,size", [("resnet18", 224), ("resnet18", 96), ("efficientnet_b0", 96),
                                       ("efficientnet_lite0", 224)])
@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_numpy_maps_equal_pytorch_grad_cam_on_the_whole_model(arch, size, method):
    from braintumor.training.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, 4).eval()
    x = _input(size, seed=3)
    feats, weight = _features_and_weight(model, arch, x)
    for target in (0, 2):
        ref = _reference(model, arch, x.clone(), target, method)
        got = cam.cam_maps(feats, weight, [target], method, size=(size, size))[0]
        assert got.shape == (size, size) and got.dtype == np.float32
        assert np.abs(ref - got).max() < 1e-5, (arch, method, target)


def test_the_target_class_changes_the_map():
    rng = np.random.default_rng(0)
    feats = rng.random((1, 16, 7, 7)).astype(np.float32)
    weight = rng.normal(size=(4, 16))
    maps = [cam.cam_maps(feats, weight, [t], size=(56, 56))[0] for t in range(4)]
    assert all(m.min() >= 0 and m.max() <= 1 for m in maps)
    assert any(np.abs(maps[0] - m).max() > 0.05 for m in maps[1:])
    # EigenCAM reads the activations alone: the same map for every target
    eig = [cam.cam_maps(feats, weight, [t], "eigencam", size=(56, 56))[0] for t in range(2)]
    assert np.array_equal(eig[0], eig[1])


def test_a_batch_gives_each_image_its_own_map():
    rng = np.random.default_rng(1)
    feats = rng.random((3, 8, 5, 5)).astype(np.float32)
    weight = rng.normal(size=(4, 8))
    both = cam.cam_maps(feats, weight, [0, 1, 3], "gradcam++", size=(20, 20))
    for i, t in enumerate((0, 1, 3)):
        assert np.allclose(both[i], cam.cam_maps(feats[i:i + 1], weight, [t], "gradcam++", size=(20, 20))[0], atol=1e-6)


def test_bilinear_enlarging_matches_pillow():
    m = np.random.default_rng(2).random((7, 7)).astype(np.float32)
    ours = cam.upsample(m[None], (64, 48))[0]
    pil = np.asarray(Image.fromarray(m, mode="F").resize((48, 64), Image.BILINEAR))
    assert np.abs(ours - pil).max() < 1e-5


def test_unknown_cam_method_is_refused():
    with pytest.raises(ValueError, match="unknown CAM method"):
        cam.canonical_method("scorecam-xyz")
    assert cam.canonical_method("GradCAM++") == "gradcam++"


def test_the_jet_colours_are_opencvs():
    cv2 = pytest.importorskip("cv2")
    want = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, ::-1]
    assert np.abs(cam.jet().astype(int) - want.astype(int)).max() <= 1


def test_render_overlay_draws_hot_regions_red_and_cold_ones_blue():
    gray = np.full((32, 32), 128, np.uint8)
    heat = np.zeros((32, 32), np.float32)
    heat[:, 16:] = 1.0
    over = cam.render_overlay(gray, heat)
    assert isinstance(over, Image.Image) and over.mode == "RGB" and over.size == (32, 32)
    arr = np.asarray(over).astype(int)
    cold, hot = arr[16, 4], arr[16, 28]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # jet: red for 1, blue for 0


def test_render_overlay_is_pytorch_grad_cams_blend():
    from pytorch_grad_cam.utils.image import show_cam_on_image

    gray = synthetic_scan(4, 48)
    heat = np.random.default_rng(3).random((48, 48)).astype(np.float32)
    want = show_cam_on_image(np.repeat((gray / 255.0).astype(np.float32)[..., None], 3, 2), heat, use_rgb=True)
    assert np.abs(np.asarray(cam.render_overlay(gray, heat)).astype(int) - want.astype(int)).max() <= 2


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


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_b0", "efficientnet_lite0"])
def test_split_network_reproduces_the_model(arch):
    from braintumor.training.models import build_model
    from braintumor.training.network_parts import split_network

    torch.manual_seed(1)
    model = build_model(arch, 4).eval()
    body, head = split_network(model, arch)
    x = _input(64)
    with torch.inference_mode():
        assert torch.allclose(head(body(x)), model(x), atol=1e-5)


def test_split_network_refuses_unknown_architectures():
    from braintumor.training.network_parts import split_network

    with pytest.raises(ValueError, match="no body/head split"):
        split_network(torch.nn.Linear(2, 2), "vit_b_16")
