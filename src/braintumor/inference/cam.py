"""Grad-CAM on a network split at its last convolutional block, and drawing heat maps.

The network is cut into a *body* (input -> output of the last convolutional block) and a *head*
(pooling + classifier). The body runs once, without gradients, and is shared with the prediction;
pytorch-grad-cam then runs on a tiny module made for this one call, whose input *is* the block's
output (an ``nn.Identity`` is the target layer) followed by the model's own head. The map is the same
as pytorch-grad-cam on the whole model with ``layer4[-1]`` as target layer (the activations and their
gradients are the same tensors), costs almost nothing beyond the prediction, and no hook ever touches
the shared model.

Computing (:func:`cam_on_features`) and drawing (:func:`render_overlay`, :func:`explanation_figure`)
never mix: the drawing functions are pure functions of arrays.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from ..cam_methods import CAM_METHODS  # name -> pytorch_grad_cam class name (imported on first use)


def split_network(model: nn.Module, arch: str) -> tuple[nn.Module, nn.Module]:
    """(body, head) sharing ``model``'s modules: ``head(body(x)) == model(x)``.

    body ends with the last convolutional block (ResNet ``layer4``, EfficientNet ``features``);
    head is the model's own pooling, flatten and classifier."""
    if arch.startswith("resnet"):
        body = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool,
                             model.layer1, model.layer2, model.layer3, model.layer4)
        head = nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)
    elif arch.startswith("efficientnet"):
        body = model.features
        head = nn.Sequential(model.avgpool, nn.Flatten(1), model.classifier)
    else:
        raise ValueError(f"no Grad-CAM split is known for architecture {arch!r}")
    return body.eval(), head.eval()


def full_model_target_layer(model: nn.Module, arch: str) -> nn.Module:
    """The layer pytorch-grad-cam would hook on the whole model (for reference checks)."""
    if arch.startswith("resnet"):
        return model.layer4[-1]
    if arch.startswith("efficientnet"):
        return model.features[-1]
    raise ValueError(f"no Grad-CAM target layer is known for architecture {arch!r}")


def canonical_method(method: str) -> str:
    """A CAM method's name as in CAM_METHODS ("GradCAM++", "grad-cam" -> "gradcam++", "gradcam")."""
    key = str(method).lower().replace("_", "").replace("-", "").replace("plusplus", "++")
    if key not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {', '.join(CAM_METHODS)}")
    return key


def cam_class(method: str):
    """The pytorch-grad-cam class for a method name (gradcam, gradcam++, hirescam, eigencam)."""
    import pytorch_grad_cam

    return getattr(pytorch_grad_cam, CAM_METHODS[canonical_method(method)])


class _HeadOnFeatures(nn.Module):
    """A private copy of the head (a few kB), fed with the last block's output; ``target`` is where
    pytorch-grad-cam hooks. Nothing in it is shared, so neither hooks nor gradients reach the model."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.target = nn.Identity()
        self.head = copy.deepcopy(head).requires_grad_(False).eval()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.target(features))


def cam_on_features(head: nn.Module, features: torch.Tensor, targets: list[int],
                    method: str = "gradcam", size: tuple[int, int] | None = None) -> np.ndarray:
    """CAMs from the last block's output: (N, C, h, w) features -> (N, H, W) float32 in [0, 1].

    ``targets`` holds one class index per row; ``size`` is (H, W) of the network input (the h x w
    map is upsampled to it exactly as pytorch-grad-cam does for the whole model)."""
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = cam_class(method)
    with torch.inference_mode(False), torch.enable_grad():
        wrapper = _HeadOnFeatures(head)
        # A fresh leaf tensor outside inference mode: gradients flow to it and nowhere else.
        x = features.detach().clone().float().requires_grad_(True)
        with cls(model=wrapper, target_layers=[wrapper.target]) as cam:
            maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    maps = np.asarray(maps, dtype=np.float32)
    if size is not None:
        h, w = size
        maps = scale_cam_image(maps, (w, h))  # normalise each map, then bilinear resize (cv2)
        maps = scale_cam_image(maps)  # as pytorch-grad-cam's final normalisation
    return np.clip(maps, 0.0, 1.0).astype(np.float32)


def resize_heatmap(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A heat map resized to (H, W), bilinear, values kept in [0, 1]."""
    if heatmap.shape == tuple(size):
        return heatmap.astype(np.float32)
    img = Image.fromarray(heatmap.astype(np.float32), mode="F").resize((size[1], size[0]), Image.BILINEAR)
    return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)


def heatmap_on_image(heatmap: np.ndarray, size: tuple[int, int], prep) -> np.ndarray:
    """A heat map over the network's input -> (H, W) over the whole image of ``size`` (width,
    height): the input's centre square gets the map (bilinear), the rest (never seen by the
    network) zero."""
    w, h = size
    left, top, side = prep.input_window(size)
    left, top = round(left), round(top)
    n = max(1, round(side))
    square = resize_heatmap(np.asarray(heatmap, dtype=np.float32), (n, n))
    out = np.zeros((h, w), dtype=np.float32)
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(h, top + n), min(w, left + n)
    out[y0:y1, x0:x1] = square[y0 - top:y1 - top, x0 - left:x1 - left]
    return out


def render_overlay(gray: np.ndarray, heatmap: np.ndarray, image_weight: float = 0.5) -> Image.Image:
    """The scan (H, W uint8) with the heat map (values in [0, 1]) laid over it in the jet colour map."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    gray = np.asarray(gray)
    if gray.ndim == 3:
        gray = gray[..., 0]
    heat = resize_heatmap(np.asarray(heatmap, dtype=np.float32), gray.shape)
    rgb = np.repeat((gray.astype(np.float32) / 255.0)[..., None], 3, axis=2)
    return Image.fromarray(show_cam_on_image(rgb, heat, use_rgb=True, image_weight=image_weight), "RGB")


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def explanation_figure(gray: np.ndarray, overlay: Image.Image, caption: str,
                       subtitle: str = "", box: list[int] | None = None,
                       image_size: tuple[int, int] | None = None) -> Image.Image:
    """Scan and overlay side by side (aspect kept), with a caption bar above (for ``predict
    --explain``); ``box`` ([x0, y0, x1, y1] in pixels of an image of ``image_size``) is drawn on both."""
    gray = np.asarray(gray)
    h, w = gray.shape[:2]
    scale = max(256 / max(h, w), 1.0)
    size = (round(w * scale), round(h * scale))
    scan = Image.fromarray(gray, "L").convert("RGB").resize(size, Image.BILINEAR)
    over = overlay.convert("RGB").resize(size, Image.BILINEAR)
    if box is not None and image_size is not None:
        fx, fy = size[0] / image_size[0], size[1] / image_size[1]
        rect = [box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy]
        for im in (scan, over):
            ImageDraw.Draw(im).rectangle(rect, outline=(0, 255, 0), width=max(2, size[0] // 160))
    bar = 56 if subtitle else 34
    fig = Image.new("RGB", (2 * size[0] + 8, size[1] + bar), (255, 255, 255))
    fig.paste(scan, (0, bar))
    fig.paste(over, (size[0] + 8, bar))
    draw = ImageDraw.Draw(fig)
    draw.text((8, 6), caption, fill=(0, 0, 0), font=_font(20))
    if subtitle:
        draw.text((8, 32), subtitle, fill=(80, 80, 80), font=_font(14))
    return fig
