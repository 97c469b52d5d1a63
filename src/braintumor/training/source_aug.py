"""Augmentation that breaks the link between a scan's source and its label.

In the Brain Tumor MRI Dataset almost every tumour image is a contrast-enhanced T1 slice from the
figshare collection and no "no tumour" image is, so a network can name the class from the source's
look alone. Three augmentations take that cue away, all on batches of prepared images in [0, 1]:

- :func:`copy_paste`, in both directions, with radiologist boxes: a tumour region pasted at the same
  place into a no-tumour slice makes a tumour image of the donor's class (and source); a tumour
  covered with healthy tissue from a no-tumour slice makes a "no tumour" figshare image. Each patch
  has a feathered edge and is matched to the intensity of the tissue around it, and both directions
  leave the same kind of seam, so the seam is no cue either. A share of the covered tumours is
  instead filled by inpainting (OpenCV's Telea or Navier-Stokes method, the way a reader would erase
  it), so that a smooth patch where a tumour was is not a cue for a tumour either.
- :func:`match_histograms`: an image takes the intensity distribution of an image from the other
  source (style mixing), so contrast and brightness stop telling the class.
- :class:`MriArtefacts`: TorchIO's MRI intensity and artefact transforms (bias field, gamma, blur,
  noise, motion, ghosting), per image.
"""

from __future__ import annotations

import torch

NOTUMOR = 2  # index of "notumor" in braintumor.config.CLASSES
ERASE_MARGIN = 0.35  # a covered tumour's patch: its box grown by this share of its size a side


def soft_box(boxes: torch.Tensor, size: int, margin: float = 0.15, feather: float = 0.08) -> torch.Tensor:
    """(N, 4) x0, y0, x1, y1 fractions -> (N, size, size) masks in [0, 1]: the box grown by ``margin``
    of its size on each side, with edges that fade over ``feather`` of its size."""
    n = boxes.shape[0]
    u = (torch.arange(size, device=boxes.device, dtype=torch.float32) + 0.5) / size
    x0, y0, x1, y1 = (boxes[:, i].view(n, 1) for i in range(4))
    bw, bh = (x1 - x0).clamp(min=1e-3), (y1 - y0).clamp(min=1e-3)
    fx = (feather * bw).clamp(min=2 / size)
    fy = (feather * bh).clamp(min=2 / size)
    gx0, gx1 = x0 - margin * bw, x1 + margin * bw
    gy0, gy1 = y0 - margin * bh, y1 + margin * bh
    mx = ((u - gx0) / fx).clamp(0, 1) * ((gx1 - u) / fx).clamp(0, 1)
    my = ((u - gy0) / fy).clamp(0, 1) * ((gy1 - u) / fy).clamp(0, 1)
    return my.unsqueeze(2) * mx.unsqueeze(1)


def hard_box(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 4) fractions -> (N, size, size) masks of 0 and 1 (all zero where a row is NaN)."""
    u = (torch.arange(size, device=boxes.device, dtype=torch.float32) + 0.5) / size
    n = boxes.shape[0]
    x0, y0, x1, y1 = (boxes[:, i].view(n, 1) for i in range(4))
    mx = (u >= x0) & (u <= x1)
    my = (u >= y0) & (u <= y1)
    return (my.unsqueeze(2) & mx.unsqueeze(1)).float()


def _masked_stats(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = w.sum((1, 2)).clamp(min=1e-6)
    mean = (x * w).sum((1, 2)) / s
    var = ((x - mean.view(-1, 1, 1)) ** 2 * w).sum((1, 2)) / s
    return mean, var.sqrt().clamp(min=1e-3)


def _blend(target: torch.Tensor, patch: torch.Tensor, mask: torch.Tensor, patch_ref, target_ref,
           min_tissue: float, tissue_of_target: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``patch`` shifted and scaled from the statistics of ``patch_ref`` (images, weights) to those
    of ``target_ref``, laid into ``target`` through the soft ``mask``; and which rows have tissue
    where the patch goes (judged on the target's or the patch's reference region)."""
    p_mean, p_std = _masked_stats(*patch_ref)
    t_mean, t_std = _masked_stats(*target_ref)
    restyled = ((patch - p_mean.view(-1, 1, 1)) / p_std.view(-1, 1, 1) * t_std.view(-1, 1, 1)
                + t_mean.view(-1, 1, 1)).clamp(0, 1)
    ok = (t_mean if tissue_of_target else p_mean) > min_tissue
    return target * (1 - mask) + restyled * mask, ok


def inpaint(x: torch.Tensor, boxes: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (N, S, S) in [0, 1] with its box (N, 4 fractions), grown by 15-35% of
    its size a side, filled from the surrounding tissue by OpenCV's inpainting (Telea or
    Navier-Stokes at random, radius 3-7 px)."""
    import cv2
    import numpy as np

    n, size, _ = x.shape
    r = torch.rand(n, 3, generator=gen)
    out = []
    for img, b, (rm, rmeth, rrad) in zip(x.detach().cpu(), boxes.cpu(), r.tolist()):
        margin = 0.15 + 0.2 * rm
        bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
        x0, x1 = int((float(b[0]) - margin * bw) * size), int(np.ceil((float(b[2]) + margin * bw) * size))
        y0, y1 = int((float(b[1]) - margin * bh) * size), int(np.ceil((float(b[3]) + margin * bh) * size))
        arr = (img.numpy() * 255).round().astype(np.uint8)
        mask = np.zeros_like(arr)
        mask[max(0, y0):min(size, y1), max(0, x0):min(size, x1)] = 255
        method = cv2.INPAINT_TELEA if rmeth < 0.5 else cv2.INPAINT_NS
        out.append(torch.from_numpy(cv2.inpaint(arr, mask, 3 + int(rrad * 5), method)))
    return torch.stack(out).to(x.device, x.dtype).div_(255.0)


def mirror_fill(x: torch.Tensor, boxes: torch.Tensor, margin: float = ERASE_MARGIN):
    """Each image of ``x`` (N, S, S) with its box (N, 4 fractions), grown by ``margin`` a side,
    covered by the same place of the image mirrored left to right: the other hemisphere's healthy
    tissue of the same scan, with a feathered edge. Returns the images and which rows it suits
    (the mirrored region must not hold the tumour itself)."""
    size = x.shape[-1]
    bw = (boxes[:, 2] - boxes[:, 0]).clamp(min=0)
    gx0, gx1 = boxes[:, 0] - margin * bw, boxes[:, 2] + margin * bw
    ok = ((1 - gx1) >= boxes[:, 2]) | ((1 - gx0) <= boxes[:, 0])
    mask = soft_box(boxes, size, margin=margin)
    return x * (1 - mask) + x.flip(-1) * mask, ok


def copy_paste(x: torch.Tensor, labels: torch.Tensor, boxes: torch.Tensor, gen: torch.Generator,
               paste: float = 0.3, erase: float = 0.2, min_tissue: float = 0.08, fill: float = 0.0,
               mirror: float = 0.0):
    """Tumour copy-paste within a batch. ``x`` (N, S, S) float in [0, 1]; ``boxes`` (N, 4) fractions,
    NaN where an image has no box. Returns new images, labels and boxes (NaN: no tumour).

    ``paste``: share of no-tumour images that receive a tumour from a boxed image of the batch.
    ``erase``: share of boxed tumour images whose tumour is covered by healthy tissue (label notumor).
    ``fill``: share of those covered tumours that are inpainted (:func:`inpaint`) instead.
    ``mirror``: share covered by the other hemisphere of the same slice (:func:`mirror_fill`), where
    that side is clear of the tumour. Labels of -1 (a tumour of unknown type) stay as they are.
    A patch goes only where the target has tissue (mean above ``min_tissue``), never on background."""
    n, size, _ = x.shape
    x, labels, boxes = x.clone(), labels.clone(), boxes.clone()
    has_box = ~torch.isnan(boxes[:, 0])
    healthy = (labels == NOTUMOR) & ~has_box
    donors = has_box.nonzero().view(-1)
    fillers = healthy.nonzero().view(-1)
    if len(donors) == 0 or len(fillers) == 0:
        return x, labels, boxes
    r = torch.rand(n, generator=gen).to(x.device)
    pick = lambda pool, k: pool[torch.randint(len(pool), (k,), generator=gen).to(pool.device)]  # noqa: E731
    src = x.clone()  # patches always come from the unchanged batch
    # no tumour <- tumour from a donor, at the donor's place
    tgt = (healthy & (r < paste)).nonzero().view(-1)
    if len(tgt):
        d = pick(donors, len(tgt))
        region = soft_box(boxes[d], size, margin=0.15, feather=0.01)
        ring = (soft_box(boxes[d], size, margin=0.6, feather=0.01) - region).clamp(0, 1)
        # the tumour keeps its contrast to its own surroundings, at the target's local level
        blended, ok = _blend(src[tgt], src[d], soft_box(boxes[d], size), (src[d], ring), (src[tgt], region),
                             min_tissue, tissue_of_target=True)
        tgt, d = tgt[ok], d[ok]
        x[tgt] = blended[ok]
        labels[tgt] = labels[d]
        boxes[tgt] = boxes[d]
    # tumour <- healthy tissue from a no-tumour slice, at the same place
    tgt = (has_box & (r < erase)).nonzero().view(-1)
    if len(tgt):
        f = pick(fillers, len(tgt))
        # a wide margin: an infiltrating tumour (glioma) reaches past its box, and what is left
        # of it must not be taught as "no tumour"
        region = soft_box(boxes[tgt], size, margin=ERASE_MARGIN, feather=0.01)
        ring = (soft_box(boxes[tgt], size, margin=ERASE_MARGIN + 0.6, feather=0.01) - region).clamp(0, 1)
        # the healthy tissue takes the level of the tissue around the tumour it covers
        blended, ok = _blend(src[tgt], src[f], soft_box(boxes[tgt], size, margin=ERASE_MARGIN), (src[f], region),
                             (src[tgt], ring), min_tissue, tissue_of_target=False)
        tgt, blended = tgt[ok], blended[ok]
        if (fill > 0 or mirror > 0) and len(tgt):
            u = torch.rand(len(tgt), generator=gen).to(x.device)
            smooth = u < fill
            if smooth.any():
                blended[smooth] = inpaint(src[tgt[smooth]], boxes[tgt[smooth]], gen)
            if mirror > 0:
                mirrored, clear = mirror_fill(src[tgt], boxes[tgt])
                same_scan = (u >= fill) & (u < fill + mirror) & clear
                blended[same_scan] = mirrored[same_scan]
        x[tgt] = blended
        labels[tgt] = NOTUMOR
        boxes[tgt] = float("nan")
    return x, labels, boxes


def match_histograms(x: torch.Tensor, ref: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of ``x`` (N, H, W) given the intensity distribution of the same row of ``ref``
    (exact histogram matching: the k-th darkest pixel takes the k-th darkest value of the reference)."""
    n = x.shape[0]
    flat, rflat = x.reshape(n, -1), ref.reshape(n, -1)
    # Ties (a black background holds thousands of equal pixels) are broken at random, so that the
    # reference's values spread over them as noise rather than as stripes in scan order.
    perm = torch.randperm(flat.shape[1], generator=generator).to(flat.device)
    order = perm[torch.sort(flat[:, perm], dim=1, stable=True).indices]
    out = torch.empty_like(flat)
    out.scatter_(1, order, rflat.sort(1).values)
    return out.view_as(x)


def style_mix(x: torch.Tensor, source: torch.Tensor, gen: torch.Generator, p: float = 0.3) -> torch.Tensor:
    """With probability ``p`` per image, match its histogram to a random batch image of another
    source (``source``: (N,) source ids, bool or int)."""
    n = x.shape[0]
    r = torch.rand(n, generator=gen).to(x.device)
    out = x.clone()
    for flag in torch.unique(source).tolist():
        tgt = ((source == flag) & (r < p)).nonzero().view(-1)
        pool = (source != flag).nonzero().view(-1)
        if len(tgt) == 0 or len(pool) == 0:
            continue
        ref = pool[torch.randint(len(pool), (len(tgt),), generator=gen).to(pool.device)]
        out[tgt] = match_histograms(x[tgt], x[ref], gen)
    return out


class MriArtefacts:
    """TorchIO's MRI-specific intensity transforms on a batch (N, 1, H, W) in [0, 1], per image.

    ``p`` scales how often each kind of artefact is applied (bias field and gamma most often)."""

    def __init__(self, p: float = 0.3):
        import torchio as tio

        self.p = p
        self.transform = tio.Compose([
            tio.RandomBiasField(coefficients=0.4, p=p),
            tio.RandomGamma(log_gamma=(-0.3, 0.3), p=p),
            tio.OneOf({tio.RandomBlur(std=(0.25, 1.2)): 0.5, tio.RandomNoise(std=(0.0, 0.04)): 0.5}, p=p),
            tio.OneOf({tio.RandomMotion(degrees=4, translation=4, num_transforms=2): 0.5,
                       tio.RandomGhosting(num_ghosts=(2, 6), axes=(0, 1), intensity=(0.1, 0.5)): 0.5},
                      p=p * 0.5),
        ])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.p <= 0:
            return x
        out = []
        for img in x.detach().float().cpu():
            y = self.transform(img.unsqueeze(-1))  # TorchIO wants (C, W, H, D): one slice deep
            out.append(torch.as_tensor(y).squeeze(-1))
        return torch.stack(out).clamp_(0, 1).to(x.device, x.dtype)
