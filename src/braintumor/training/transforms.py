"""Training's augmentation, on the preprocessing every answer uses
(:mod:`braintumor.inference.preprocess`, re-exported here).

Images are first *prepared*: grayscale, made square (``fit="pad"``: longer side resized, the shorter
padded with black on both sides, so that the whole slice is seen; ``fit="crop"``: shorter side
resized, centre square crop, as models before version 2.0 were trained), uint8. Training
caches prepared images once and augments batches of tensors (one affine warp per image, done with
``affine_grid``/``grid_sample`` on the whole batch); evaluation and prediction centre-crop prepared
images and normalise them with the same mean and std.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..inference.preprocess import FITS, Preprocessing, center_crop, prepare  # noqa: F401 (the one preprocessing)


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
