"""Preprocessing, written once: the same code feeds training, evaluation and prediction.

Images are first *prepared*: grayscale, shorter side resized, centre square crop, uint8. Training
caches prepared images once and augments batches of tensors (one affine warp per image, done with
``affine_grid``/``grid_sample`` on the whole batch); evaluation and prediction centre-crop prepared
images and normalise them with the same mean and std.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .config import IMAGENET_MEAN, IMAGENET_STD


def prepare(img: Image.Image, size: int) -> np.ndarray:
    """Grayscale PIL image -> (size, size) uint8: shorter side resized to ``size``, centre crop."""
    if img.mode != "L":
        img = img.convert("L")
    w, h = img.size
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
        )

    def input_window(self, size: tuple[int, int]) -> tuple[float, float, float]:
        """Where the network's square input lies in an image of ``size`` (width, height): its left
        and top edge and its side, in the image's pixels (the centre square :meth:`pixels` keeps)."""
        w, h = size
        side = min(w, h) * self.img_size / self.resize_size
        return (w - side) / 2, (h - side) / 2, side

    def pixels(self, img: Image.Image) -> np.ndarray:
        """The (img_size, img_size) uint8 pixels the network sees, before normalisation."""
        return center_crop(prepare(img, self.resize_size), self.img_size)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float (N, H, W) or (N, 1, H, W) -> normalised float (N, 3, H, W)."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x.expand(-1, 3, -1, -1) - mean) / std

    def tensor(self, img: Image.Image) -> torch.Tensor:
        """One grayscale PIL image -> normalised (1, 3, img_size, img_size) float tensor."""
        return self.normalize(torch.from_numpy(self.pixels(img)).unsqueeze(0))

    def batch(self, images: list[Image.Image]) -> torch.Tensor:
        arr = np.stack([self.pixels(im) for im in images])
        return self.normalize(torch.from_numpy(arr))


def center_crop(arr: np.ndarray, size: int) -> np.ndarray:
    h, w = arr.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return arr[..., top : top + size, left : left + size]


@dataclass(frozen=True)
class Augment:
    """Random augmentation of a batch of prepared uint8 images, all on the batch's device."""

    img_size: int
    crop_scale: tuple[float, float] = (0.6, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotation: float = 15.0
    hflip: bool = True
    jitter: float = 0.15

    def __call__(self, x: torch.Tensor, gen: torch.Generator, masks: torch.Tensor | None = None):
        """(N, H, W) uint8 -> (N, 1, img_size, img_size) float in [0, 1].

        With ``masks`` ((N, H, W) float, e.g. tumour boxes drawn as 1s), returns ``(images, masks)``
        with the masks moved by the same warp (and not jittered)."""
        n = x.shape[0]
        dev = x.device

        def rand(*shape):
            return torch.rand(*shape, generator=gen).to(dev)

        area = self.crop_scale[0] + (self.crop_scale[1] - self.crop_scale[0]) * rand(n)
        log_r = math.log(self.ratio[0]) + (math.log(self.ratio[1]) - math.log(self.ratio[0])) * rand(n)
        r = torch.exp(log_r)
        sx = torch.sqrt(area * r).clamp(max=1.0)  # half-extent of the crop, in [-1, 1] units
        sy = torch.sqrt(area / r).clamp(max=1.0)
        tx = (1 - sx) * (2 * rand(n) - 1)
        ty = (1 - sy) * (2 * rand(n) - 1)
        ang = torch.deg2rad(self.rotation * (2 * rand(n) - 1))
        flip = torch.where(rand(n) < 0.5, -1.0, 1.0) if self.hflip else torch.ones(n, device=dev)
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.stack(
            [
                torch.stack([sx * cos * flip, -sy * sin, tx], dim=1),
                torch.stack([sx * sin * flip, sy * cos, ty], dim=1),
            ],
            dim=1,
        )
        xf = x.unsqueeze(1).float() if x.dtype != torch.uint8 else x.unsqueeze(1).float().div_(255.0)
        if masks is not None:
            xf = torch.cat([xf, masks.unsqueeze(1).to(xf.dtype)], dim=1)
        grid = F.affine_grid(theta, [n, xf.shape[1], self.img_size, self.img_size], align_corners=False)
        out = F.grid_sample(xf, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        warped_masks = out[:, 1] if masks is not None else None
        out = out[:, :1]
        if self.jitter > 0:
            b = 1 + self.jitter * (2 * rand(n, 1, 1, 1) - 1)
            c = 1 + self.jitter * (2 * rand(n, 1, 1, 1) - 1)
            out = out * b
            m = out.mean(dim=(2, 3), keepdim=True)
            out = ((out - m) * c + m).clamp_(0, 1)
        return out if masks is None else (out, warped_masks)
