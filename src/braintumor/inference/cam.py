"""Heat maps (class activation maps) in NumPy, from the last block's output, and drawing them.

The network ends in global average pooling and one linear layer, so the gradient of class ``t``'s
logit with respect to the last block's activations ``A`` (C x h x w) is the same at every cell:
``W[t, c] / (h w)``. The gradient-based methods then have closed forms:

- Grad-CAM: ``relu(sum_c W[t, c] / (h w) * A[c])`` (channel weights = the mean gradient);
- HiResCAM: ``relu(sum_c grad[c] * A[c])``, the same map here since the gradient is constant;
- Grad-CAM++: channel weights ``h w * relu(g_c) * g_c^2 / (2 g_c^2 + S_c g_c^3 + eps)`` with
  ``g_c = W[t, c] / (h w)`` and ``S_c`` the sum of ``A[c]``;
- EigenCAM: the activations projected on their first principal component (no gradient).

Each map is then normalised to [0, 1], resized to the network's input bilinearly (half-pixel
centres, edges repeated) and normalised again, as pytorch-grad-cam does for the whole model with
the last block as target layer (``tests/test_cam.py`` checks all four against it to 1e-5). The
maps cost a fraction of a millisecond, and nothing here needs PyTorch.

Computing (:func:`cam_maps`) and drawing (:func:`render_overlay`, :func:`explanation_figure`) never
mix: the drawing functions are pure functions of arrays.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..cam_methods import CAM_METHODS

EPS = 1e-7  # pytorch-grad-cam's guard when a map is divided by its maximum
PLUSPLUS_EPS = 1e-6  # ... and in Grad-CAM++'s weights


def canonical_method(method: str) -> str:
    """A CAM method's name as in CAM_METHODS ("GradCAM++", "grad-cam" -> "gradcam++", "gradcam")."""
    key = str(method).lower().replace("_", "").replace("-", "").replace("plusplus", "++")
    if key not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {', '.join(CAM_METHODS)}")
    return key


def raw_maps(features: np.ndarray, weight: np.ndarray, targets, method: str = "gradcam") -> np.ndarray:
    """(N, C, h, w) activations, the classifier's (K, C) weight and one target class per row ->
    (N, h, w) maps before ReLU and scaling (float32)."""
    method = canonical_method(method)
    a = np.asarray(features, dtype=np.float32)
    n, c, h, w = a.shape
    if method == "eigencam":
        return eigen_projection(a)
    grads = (np.asarray(weight, dtype=np.float32)[list(targets)] / np.float32(h * w))  # (N, C)
    if method == "gradcam++":
        sums = a.sum(axis=(2, 3))
        g2 = grads * grads
        aij = g2 / (2 * g2 + sums * g2 * grads + PLUSPLUS_EPS)
        aij = np.where(grads != 0, aij, 0)
        channel = np.maximum(grads, 0) * aij * np.float32(h * w)
    else:  # gradcam, hirescam: the gradient is the same at every cell
        channel = grads
    return np.einsum("nc,nchw->nhw", channel.astype(np.float32), a)


def eigen_projection(activations: np.ndarray) -> np.ndarray:
    """(N, C, h, w) -> (N, h, w): each image's activations on their first principal component."""
    out = []
    for a in np.nan_to_num(np.asarray(activations, dtype=np.float32), nan=0.0):
        x = a.reshape(a.shape[0], -1).T
        x = x - x.mean(axis=0)
        vt = np.linalg.svd(x, full_matrices=True)[2]
        out.append((x @ vt[0]).reshape(a.shape[1:]))
    return np.float32(out)


def _scale(maps: np.ndarray) -> np.ndarray:
    maps = maps - maps.min(axis=(1, 2), keepdims=True)
    return maps / (EPS + maps.max(axis=(1, 2), keepdims=True))


@lru_cache(maxsize=32)
def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of bilinear resizing along one axis: half-pixel centres, the edge
    pixels repeated (as cv2.INTER_LINEAR and Pillow's bilinear filter when enlarging)."""
    pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    m = np.zeros((n_out, n_in), dtype=np.float64)
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m.astype(np.float32)


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w) -> (N, H, W) bilinear (for enlarging; see :func:`_resize_matrix`)."""
    h, w = maps.shape[1:]
    ry, rx = _resize_matrix(h, size[0]), _resize_matrix(w, size[1])
    return np.einsum("yh,nhw,xw->nyx", ry, maps.astype(np.float32), rx, optimize=True)


def cam_maps(features: np.ndarray, weight: np.ndarray, targets, method: str = "gradcam",
             size: tuple[int, int] | None = None) -> np.ndarray:
    """Heat maps from the last block's output: (N, C, h, w) -> (N, H, W) float32 in [0, 1].

    ``weight`` is the classifier's (K, C) matrix and ``targets`` one class index per row; ``size`` is
    (H, W) of the network input (the h x w map is enlarged to it as pytorch-grad-cam does)."""
    maps = _scale(np.maximum(raw_maps(features, weight, targets, method), 0))
    if size is not None:
        maps = _scale(np.maximum(upsample(maps, size), 0))
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
    out = np.zeros((h, w), dtype=np.float32)
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(h, top + n), min(w, left + n)
    if y1 <= y0 or x1 <= x0:
        return out
    # Only the part of the n x n square that lies on the image is resampled (PIL's ``box``: the
    # same sampling as resizing the whole square, then cropping): with fit="pad" the square is the
    # longer side squared, which for a thin image is far more than the image itself.
    heat = np.asarray(heatmap, dtype=np.float32)
    sy, sx = heat.shape[0] / n, heat.shape[1] / n
    box = ((x0 - left) * sx, (y0 - top) * sy, (x1 - left) * sx, (y1 - top) * sy)
    part = Image.fromarray(heat, mode="F").resize((x1 - x0, y1 - y0), Image.BILINEAR, box=box)
    out[y0:y1, x0:x1] = np.clip(np.asarray(part, dtype=np.float32), 0.0, 1.0)
    return out


def heat_levels(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A heat map resized to ``shape`` (H, W) as 8-bit levels (0-255): what the colours index."""
    return (255 * resize_heatmap(np.asarray(heatmap, dtype=np.float32), shape)).astype(np.uint8)


@lru_cache(maxsize=1)
def jet() -> np.ndarray:
    """The jet colour map as a (256, 3) uint8 RGB table: dark blue for 0, red for 0.75, dark red
    for 1 (within one grey level of OpenCV's COLORMAP_JET, which pytorch-grad-cam draws with)."""
    x = np.arange(256) / 255.0
    rgb = [np.clip(1.5 - np.abs(4 * x - k), 0, 1) for k in (3, 2, 1)]
    return np.floor(np.stack(rgb, axis=1) * 255 + 0.5).astype(np.uint8)  # halves up, as the page's script


def render_overlay(gray: np.ndarray, heatmap: np.ndarray, image_weight: float = 0.5) -> Image.Image:
    """The scan (H, W uint8) with the heat map (values in [0, 1]) laid over it in the jet colour map
    (the blend of pytorch-grad-cam's ``show_cam_on_image``)."""
    gray = np.asarray(gray)
    if gray.ndim == 3:
        gray = gray[..., 0]
    colour = jet()[heat_levels(heatmap, gray.shape)].astype(np.float32) / 255.0
    img = (gray.astype(np.float32) / 255.0)[..., None]
    cam = (1 - image_weight) * colour + image_weight * img
    cam /= cam.max()
    return Image.fromarray((255 * cam).astype(np.uint8), "RGB")


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
