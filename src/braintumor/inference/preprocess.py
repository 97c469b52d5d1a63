"""The preprocessing every answer uses, written once (NumPy and Pillow): an image is *prepared*
(grayscale, made square by ``fit``: ``"pad"``, longer side resized and the shorter padded with black
on both sides, so that the whole slice is seen; ``"crop"``, shorter side resized, centre square
crop, as models before version 2.0 were trained), centre-cropped to the network's input and
normalised with the model's mean and std. Training (:mod:`braintumor.training.transforms`) uses the same
functions on its cached images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from ..config import IMAGENET_MEAN, IMAGENET_STD


FITS = ("crop", "pad")


def prepare(img: Image.Image, size: int, fit: str = "crop") -> np.ndarray:
    """Grayscale PIL image -> (size, size) uint8.

    ``crop``: shorter side resized to ``size``, centre crop (what lies outside is never seen).
    ``pad``: longer side resized to ``size``, the rest padded with black, centred."""
    if img.mode != "L":
        img = img.convert("L")
    w, h = img.size
    if fit == "pad":
        scale = size / max(w, h)
        nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.BILINEAR)
        out = np.zeros((size, size), dtype=np.uint8)
        left, top = (size - nw) // 2, (size - nh) // 2
        out[top:top + nh, left:left + nw] = np.asarray(img, dtype=np.uint8)
        return out
    if fit != "crop":
        raise ValueError(f"unknown fit {fit!r}; use one of {', '.join(FITS)}")
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.array(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects; stored in every checkpoint so that loading needs nothing else."""

    img_size: int = 224
    resize_ratio: float = 1.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    fit: str = "crop"  # how a slice is made square: "pad" (whole slice seen) or "crop" (centre square)

    @property
    def resize_size(self) -> int:
        return max(self.img_size, round(self.img_size * self.resize_ratio))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(
            img_size=int(d["img_size"]),
            resize_ratio=float(d.get("resize_ratio", 1.0)),
            mean=tuple(float(v) for v in d.get("mean", IMAGENET_MEAN)),
            std=tuple(float(v) for v in d.get("std", IMAGENET_STD)),
            fit=str(d.get("fit", "crop")),  # checkpoints written before padding existed cropped
        )

    def input_window(self, size: tuple[int, int]) -> tuple[float, float, float]:
        """Where the network's square input lies in an image of ``size`` (width, height): its left
        and top edge and its side, in the image's pixels (the centre square :meth:`pixels` keeps).
        With ``fit="pad"`` the window is larger than the image: its left or top edge is negative."""
        w, h = size
        side = (max(w, h) if self.fit == "pad" else min(w, h)) * self.img_size / self.resize_size
        return (w - side) / 2, (h - side) / 2, side

    def pixels(self, img: Image.Image) -> np.ndarray:
        """The (img_size, img_size) uint8 pixels the network sees, before normalisation."""
        return center_crop(prepare(img, self.resize_size, self.fit), self.img_size)

    def normalize(self, x):
        """uint8 or [0, 1] float (N, H, W) or (N, 1, H, W) -> normalised float32 (N, 3, H, W).

        A NumPy array gives a NumPy array (serving); a PyTorch tensor gives a tensor on its own
        device (training), computed with the tensor's own methods, so that this module never
        imports PyTorch and both sides compute the same numbers."""
        if isinstance(x, np.ndarray):
            x = x[:, None] if x.ndim == 3 else x
            x = x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x.astype(np.float32)
            mean = np.asarray(self.mean, dtype=np.float32).reshape(1, 3, 1, 1)
            std = np.asarray(self.std, dtype=np.float32).reshape(1, 3, 1, 1)
            return np.ascontiguousarray((np.broadcast_to(x, (x.shape[0], 3) + x.shape[2:]) - mean) / std)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if not x.dtype.is_floating_point:
            x = x.float().div_(255.0)
        mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
        std = x.new_tensor(self.std).view(1, 3, 1, 1)
        return (x.expand(-1, 3, -1, -1) - mean) / std

    def array(self, images: list[Image.Image]) -> np.ndarray:
        """Grayscale PIL images -> the normalised (N, 3, img_size, img_size) float32 network input."""
        return self.normalize(np.stack([self.pixels(im) for im in images]))


def center_crop(arr: np.ndarray, size: int) -> np.ndarray:
    h, w = arr.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return arr[..., top : top + size, left : left + size]
